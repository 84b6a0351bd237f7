//! Clips at chosen positions, without randomness: what evaluation reads.
//!
//! The loader draws time shifts and augmentations; evaluation instead needs N uniformly spaced
//! clips per record, a fixed centre crop, and audio it can misalign on purpose (the synchrony
//! probe pairs a clip with audio from elsewhere in the same record). `ClipReader` reads exactly
//! that through the same decoding, crop and spectrogram code the loader uses, so evaluated
//! clips look like trained ones.

use std::path::Path;
use std::sync::Arc;

use gdt_formats::dataset::Dataset;
pub use gdt_formats::dataset::RecordInfo;

use super::augment::{AudioAugment, VideoAugment};
use super::batch::BatchShape;
use super::error::LoadError;
use super::sampler::view_stream;
use super::view::{RecordViews, Render, ViewScratch};

/// Reads clips of a dataset's records at chosen frames, centre-cropped, without randomness.
pub struct ClipReader {
    ds: Arc<Dataset>,
    shape: BatchShape,
    video: VideoAugment,
    audio: AudioAugment,
    scratch: ViewScratch,
}

impl ClipReader {
    /// `crop` is taken centred after scaling the short side to `crop * 128 / 112`, the
    /// test-time counterpart of the training scale jitter U(128, 160) for a 112 crop.
    pub fn open(dataset: impl AsRef<Path>, clip: usize, crop: u32) -> Result<ClipReader, LoadError> {
        ClipReader::shared(Arc::new(Dataset::open(dataset.as_ref())?), clip, crop)
    }

    /// [`ClipReader::open`] on a dataset that is already open (its record index is shared).
    /// Every record's label and split must be readable: evaluation decides with them which
    /// records are train and test.
    pub fn shared(ds: Arc<Dataset>, clip: usize, crop: u32) -> Result<ClipReader, LoadError> {
        let p = &ds.manifest.params;
        if crop > p.short_side {
            return Err(LoadError::Config(format!(
                "crop {crop} is larger than the stored short side {}",
                p.short_side
            )));
        }
        if let Some(u) = ds.index().unreadable().first() {
            return Err(LoadError::Config(format!(
                "{}: evaluation needs every record's label and split",
                u.error
            )));
        }
        let shape = BatchShape::for_dataset(p, 1, clip, crop as usize);
        let scale = (crop as f32 * 128.0 / 112.0).min(p.short_side as f32);
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
            scratch: ViewScratch::new(Render::Augment)?,
        })
    }

    /// What each record holds, by global record number.
    pub fn records(&self) -> &[RecordInfo] {
        self.ds.index().records()
    }

    /// The dataset read from.
    pub fn dataset(&self) -> &Dataset {
        &self.ds
    }

    /// The geometry of one clip (`views` is 1).
    pub fn shape(&self) -> BatchShape {
        self.shape
    }

    /// `n` clip starts spread evenly from the record's first to its last possible start.
    pub fn uniform_starts(&self, record: usize, n: usize) -> Vec<usize> {
        let last = self.records()[record].frames.saturating_sub(self.shape.clip);
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
        let rv = RecordViews::open(&self.ds, record)?;
        let e = *rv.entry();
        let clip = self.shape.clip;
        for start in [video_start, audio_start] {
            if start + clip > e.frames as usize {
                return Err(rv.error(format!(
                    "a {clip}-frame clip at frame {start} does not fit in {} frames",
                    e.frames
                )));
            }
        }
        let s = &mut self.scratch;
        rv.read_clip(s, video_start, clip)?;
        let mut rng = view_stream(0, 0, record as u64, 0);
        let draw = self.video.draw(&mut rng, e.width, e.height);
        rv.video(s, &self.video, &draw, reversed, video);
        rv.read_spectrogram(s)?;
        let at = rv.audio_start(audio_start, self.shape.audio_frames)?;
        let none = self.audio.draw(&mut rng, e.mels, self.shape.audio_frames as u32);
        rv.audio(s, &self.audio, &none, at, reversed, audio);
        Ok(())
    }
}
