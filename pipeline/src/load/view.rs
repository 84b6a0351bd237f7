//! One view of a record, rendered into its slot of a batch: the clip at a start frame
//! decoded, cropped and scaled (and maybe reversed) into `[3, clip, crop, crop]`, and the
//! spectrogram slice aligned with it into `[mels, audio_frames]`.
//!
//! The loader (random draws) and evaluation's [`super::clips::ClipReader`] (fixed positions)
//! both render through here, so an evaluated clip is made exactly as a trained one.
//! [`Render::Floor`] is the benchmark's floor: the same reads and the same bytes out, by
//! plain copies.

use std::path::Path;

use gdt_formats::dataset::Dataset;
use gdt_formats::field::frames::ChunkDecoder;
use gdt_formats::shard::{RecordEntry, RecordView};

use super::augment::{crop_resize, AudioAugment, AudioDraw, ResizeScratch, VideoAugment, VideoDraw};
use super::error::LoadError;
use super::sampler::aligned_audio_start;

/// Per-thread buffers for rendering views, reused for every record, and how views are made.
pub struct ViewScratch {
    render: Render,
    decoder: ChunkDecoder,
    frames: Vec<u8>,
    mel: Vec<f32>,
    /// The record whose spectrogram `mel` holds: every view of a record slices the same
    /// decoded spectrogram instead of decompressing it again.
    mel_of: Option<usize>,
    resize: ResizeScratch,
}

impl ViewScratch {
    /// Empty buffers and a zstd context, for views made by `render`.
    pub fn new(render: Render) -> Result<ViewScratch, LoadError> {
        Ok(ViewScratch {
            render,
            decoder: ChunkDecoder::new().map_err(|e| LoadError::Worker(format!("zstd context: {e}")))?,
            frames: Vec::new(),
            mel: Vec::new(),
            mel_of: None,
            resize: ResizeScratch::default(),
        })
    }
}

/// How a view's bytes are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Render {
    /// Crop, scale, flip and jitter the video; slice, jitter, mask and normalise the audio.
    Augment,
    /// The benchmark floor: copy the decoded bytes, nothing computed. Not meaningful data.
    Floor,
}

/// One record of a dataset, opened for rendering views of it.
pub struct RecordViews<'d> {
    record: RecordView<'d>,
    shard: &'d Path,
    index: usize,
    global: usize,
    /// Spectrogram frames per video frame.
    spec_per_frame: f64,
}

impl<'d> RecordViews<'d> {
    /// Opens record `global` (counted across shards).
    pub fn open(ds: &'d Dataset, global: usize) -> Result<RecordViews<'d>, LoadError> {
        let (si, ri) = ds
            .locate(global)
            .ok_or_else(|| LoadError::Config(format!("no record {global} in the dataset")))?;
        let shard = &ds.shards[si];
        let p = shard.params();
        Ok(RecordViews {
            record: shard.record(ri)?,
            shard: shard.path(),
            index: ri,
            global,
            spec_per_frame: p.spectrogram_rate() / p.fps as f64,
        })
    }

    /// The record's index entry.
    pub fn entry(&self) -> &RecordEntry {
        self.record.entry()
    }

    /// An error about this record, naming its shard and both record numbers.
    pub fn error(&self, what: String) -> LoadError {
        LoadError::Record {
            shard: self.shard.to_path_buf(),
            record: self.index,
            global: self.global as u32,
            what,
        }
    }

    /// Asks for what views at clip starts `starts` will read to be brought close ahead of
    /// use: the frame chunks of each clip and the spectrogram, into the page cache or, for a
    /// shard in an object store, fetched (see [`Shard::will_need`]). `ranges` is scratch.
    ///
    /// [`Shard::will_need`]: gdt_formats::shard::Shard::will_need
    pub fn will_need(&self, starts: &[usize], clip: usize, ranges: &mut Vec<(u64, u64)>) {
        ranges.clear();
        let (offset, len) = self.record.spectrogram_range();
        ranges.push((offset, len as u64));
        for &start in starts {
            ranges.extend(
                self.record
                    .frame_ranges(start, clip)
                    .map(|(offset, len)| (offset, len as u64)),
            );
        }
        self.record.shard().will_need(ranges);
    }

    /// Decodes the record's spectrogram into `s`, unless it is there already.
    pub fn read_spectrogram(&self, s: &mut ViewScratch) -> Result<(), LoadError> {
        if s.mel_of != Some(self.global) {
            s.mel_of = None; // a failed decode must not leave a half-valid cache
            self.record.spectrogram_into(&mut s.decoder, &mut s.mel)?;
            s.mel_of = Some(self.global);
        }
        Ok(())
    }

    /// Decodes frames `start..start + clip` into `s`.
    pub fn read_clip(&self, s: &mut ViewScratch, start: usize, clip: usize) -> Result<(), LoadError> {
        Ok(self
            .record
            .read_frames(&mut s.decoder, start, clip, &mut s.frames)?)
    }

    /// The first spectrogram frame of the `audio_frames` slice aligned with video frame
    /// `start`.
    pub fn audio_start(&self, start: usize, audio_frames: usize) -> Result<usize, LoadError> {
        let e = self.entry();
        aligned_audio_start(start, self.spec_per_frame, e.mel_frames as usize, audio_frames).ok_or_else(
            || {
                self.error(format!(
                    "spectrogram has {} frames, too few for the clip at frame {start}",
                    e.mel_frames
                ))
            },
        )
    }

    /// Renders the clip last read by [`RecordViews::read_clip`] into `out`
    /// (`[3, clip, crop, crop]`), reversed in time if asked.
    pub fn video(
        &self,
        s: &mut ViewScratch,
        aug: &VideoAugment,
        draw: &VideoDraw,
        reversed: bool,
        out: &mut [u8],
    ) {
        match s.render {
            Render::Augment => crop_resize(
                &s.frames,
                self.record.shape(),
                aug.crop,
                draw,
                reversed,
                &mut s.resize,
                out,
            ),
            Render::Floor => {
                let n = out.len().min(s.frames.len());
                out[..n].copy_from_slice(&s.frames[..n]);
            }
        }
    }

    /// Renders the spectrogram slice starting at frame `audio_start` into `out`
    /// (`[mels, out.len() / mels]`), reversed in time if asked.
    pub fn audio(
        &self,
        s: &ViewScratch,
        aug: &AudioAugment,
        draw: &AudioDraw,
        audio_start: usize,
        reversed: bool,
        out: &mut [f32],
    ) {
        let e = self.entry();
        match s.render {
            Render::Augment => aug.apply(
                &s.mel,
                e.mel_frames as usize,
                e.mels as usize,
                audio_start,
                out.len() / e.mels as usize,
                reversed,
                draw,
                out,
            ),
            Render::Floor => {
                let from = audio_start * e.mels as usize;
                out.copy_from_slice(&s.mel[from..from + out.len()]);
            }
        }
    }
}
