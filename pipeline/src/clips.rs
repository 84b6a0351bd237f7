//! Clips at chosen positions, without randomness: what evaluation reads.
//!
//! The loader draws time shifts and augmentations; evaluation instead needs N uniformly spaced
//! clips per record, a fixed centre crop, and audio it can misalign on purpose (the synchrony
//! probe pairs a clip with audio from elsewhere in the same record). `ClipReader` reads exactly
//! that through the same decoding, crop and spectrogram code the loader uses, so evaluated
//! clips look like trained ones.

use std::path::Path;

use gdt_formats::dataset::Dataset;
use gdt_formats::field::frames::ChunkDecoder;

use crate::augment::{crop_resize, AudioAugment, ResizeScratch, VideoAugment};
use crate::batch::BatchShape;
use crate::loader::LoadError;
use crate::sampler::aligned_audio_start;

/// What evaluation needs to know about a record up front.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordInfo {
    /// Stored frames (at the dataset's fps).
    pub frames: usize,
    pub label: Option<u32>,
    pub split: Option<String>,
}

pub struct ClipReader {
    ds: Dataset,
    shape: BatchShape,
    video: VideoAugment,
    audio: AudioAugment,
    records: Vec<RecordInfo>,
    decoder: ChunkDecoder,
    frames: Vec<u8>,
    spec: Vec<f32>,
    /// The record whose spectrogram `spec` holds: every clip of a record slices the same
    /// decoded spectrogram, as the loader's workers do, instead of decompressing it per clip.
    spec_record: Option<usize>,
    resize: ResizeScratch,
}

impl ClipReader {
    /// `crop` is taken centred after scaling the short side to `crop * 128 / 112`, the
    /// test-time counterpart of the training scale jitter U(128, 160) for a 112 crop.
    pub fn open(dataset: impl AsRef<Path>, clip: usize, crop: u32) -> Result<ClipReader, LoadError> {
        let ds = Dataset::open(dataset.as_ref())?;
        let p = &ds.manifest.params;
        if crop > p.short_side {
            return Err(LoadError::Config(format!(
                "crop {crop} is larger than the stored short side {}",
                p.short_side
            )));
        }
        let shape = BatchShape::for_dataset(p, 1, clip, crop as usize);
        let mut records = Vec::with_capacity(ds.len());
        for shard in &ds.shards {
            for r in 0..shard.len() {
                let view = shard.record(r)?;
                let meta = view.meta()?;
                records.push(RecordInfo {
                    frames: view.entry().frames as usize,
                    label: meta.label_index,
                    split: meta.split,
                });
            }
        }
        let scale = (crop as f32 * 128.0 / 112.0).min(p.short_side as f32);
        let decoder = ChunkDecoder::new().map_err(|e| LoadError::Worker(format!("zstd context: {e}")))?;
        Ok(ClipReader {
            ds,
            shape,
            video: VideoAugment {
                crop,
                scale_min: scale,
                scale_max: scale,
                flip_probability: 0.0,
                color_jitter: None,
            },
            audio: AudioAugment::off(),
            records,
            decoder,
            frames: Vec::new(),
            spec: Vec::new(),
            spec_record: None,
            resize: ResizeScratch::default(),
        })
    }

    pub fn records(&self) -> &[RecordInfo] {
        &self.records
    }

    pub fn dataset(&self) -> &Dataset {
        &self.ds
    }

    /// The geometry of one clip (`views` is 1).
    pub fn shape(&self) -> BatchShape {
        self.shape
    }

    /// `n` clip starts spread evenly from the record's first to its last possible start.
    pub fn uniform_starts(&self, record: usize, n: usize) -> Vec<usize> {
        let last = self.records[record].frames.saturating_sub(self.shape.clip);
        if n <= 1 {
            return vec![last / 2];
        }
        (0..n)
            .map(|i| ((i * last) as f64 / (n - 1) as f64).round() as usize)
            .collect()
    }

    /// Reads record `record`'s clip starting at frame `video_start` into `video`
    /// (`[3, clip, crop, crop]` u8) and the spectrogram slice aligned with frame `audio_start`
    /// into `audio` (`[mels, audio_frames]`, z-normalised). `reversed` flips the time axis of
    /// both, as the loader's reversed views do.
    pub fn read(
        &mut self,
        record: usize,
        video_start: usize,
        audio_start: usize,
        reversed: bool,
        video: &mut [u8],
        audio: &mut [f32],
    ) -> Result<(), LoadError> {
        let (si, ri) = self
            .ds
            .locate(record)
            .ok_or_else(|| LoadError::Config(format!("no record {record} in the dataset")))?;
        let shard = &self.ds.shards[si];
        let err = |what: String| LoadError::Record {
            shard: shard.path().to_path_buf(),
            record: ri,
            global: record as u32,
            what,
        };
        let view = shard.record(ri)?;
        let e = *view.entry();
        let clip = self.shape.clip;
        for start in [video_start, audio_start] {
            if start + clip > e.frames as usize {
                return Err(err(format!(
                    "a {clip}-frame clip at frame {start} does not fit in {} frames",
                    e.frames
                )));
            }
        }
        view.read_frames(&mut self.decoder, video_start, clip, &mut self.frames)?;
        let mut rng = crate::sampler::draw_stream(0, 0, record as u64, 0);
        let draw = self.video.draw(&mut rng, e.width, e.height);
        crop_resize(
            &self.frames,
            view.shape(),
            self.video.crop,
            &draw,
            reversed,
            &mut self.resize,
            video,
        );
        if self.spec_record != Some(record) {
            self.spec_record = None; // a failed decode must not leave a half-valid cache
            view.spectrogram_into(&mut self.decoder, &mut self.spec)?;
            self.spec_record = Some(record);
        }
        let p = shard.params();
        let per_frame = p.spectrogram_rate() / p.fps as f64;
        let af = self.shape.audio_frames;
        let at =
            aligned_audio_start(audio_start, per_frame, e.spec_frames as usize, af).ok_or_else(|| {
                err(format!(
                    "spectrogram has {} frames, too few for the clip at frame {audio_start}",
                    e.spec_frames
                ))
            })?;
        let none = self.audio.draw(&mut rng, e.mels, af as u32);
        self.audio.apply(
            &self.spec,
            e.spec_frames as usize,
            e.mels as usize,
            at,
            af,
            reversed,
            &none,
            audio,
        );
        Ok(())
    }
}
