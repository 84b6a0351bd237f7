//! Ready batches and the pool their buffers come from and return to.
//!
//! Layouts (row-major, documented contract with the trainer):
//! - video: u8 `[records, views, 3, clip, crop, crop]`, RGB, not normalised;
//! - video_f32 (optional): the same, `(x / 255 - 0.45) / 0.225`;
//! - audio: f32 `[records, views, mels, audio_frames]`, z-normalised log-mel.
//!
//! Dropping a batch hands its buffers back to the pool, so a loader in steady state
//! allocates nothing per batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use crate::load::augment::{AudioDraw, VideoDraw};

/// What one view is: which record, which time shift, which direction, which augmentation.
/// Every field is a GDT factor the trainer may declare invariant or distinct.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewMeta {
    /// Global record number in the dataset.
    pub record: u32,
    /// The record's label index, if it has one.
    pub label: Option<u32>,
    /// Which of the record's time shifts (0..K_tau).
    pub shift: u8,
    /// First stored frame of the clip (in the record, at the dataset's fps).
    pub start_frame: u32,
    /// First spectrogram frame of the audio slice.
    pub audio_start: u32,
    /// Time-reversed (video frames and spectrogram frames).
    pub reversed: bool,
    /// The video augmentation drawn.
    pub video: VideoDraw,
    /// The audio augmentation drawn.
    pub audio: AudioDraw,
}

pub(crate) struct Pool {
    video: ArrayQueue<Vec<u8>>,
    video_f32: ArrayQueue<Vec<f32>>,
    audio: ArrayQueue<Vec<f32>>,
    views: ArrayQueue<Vec<ViewMeta>>,
    /// Buffers handed out new because the pool had none to reuse.
    allocations: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(capacity: usize) -> Arc<Pool> {
        Arc::new(Pool {
            video: ArrayQueue::new(capacity),
            video_f32: ArrayQueue::new(capacity),
            audio: ArrayQueue::new(capacity),
            views: ArrayQueue::new(capacity),
            allocations: AtomicUsize::new(0),
        })
    }

    pub(crate) fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }

    /// A pooled buffer, or a new one (counted) when none is free.
    fn reuse<T: Default>(&self, queue: &ArrayQueue<T>) -> T {
        queue.pop().unwrap_or_else(|| {
            self.allocations.fetch_add(1, Ordering::Relaxed);
            T::default()
        })
    }
}

/// The shape of every batch a loader yields (the last batch of an epoch, or one with
/// skipped records, may hold fewer records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    /// Views per record.
    pub views: usize,
    /// Frames per clip.
    pub clip: usize,
    /// Side of the square crop, pixels.
    pub crop: usize,
    /// Spectrogram rows.
    pub mels: usize,
    /// Spectrogram frames per view.
    pub audio_frames: usize,
}

impl BatchShape {
    /// The shape of `clip`-frame views of a dataset packed with `params`: the spectrogram
    /// slice covers the clip's audio (99 frames for one second at the reference settings).
    pub fn for_dataset(
        params: &gdt_formats::params::PackParams,
        views: usize,
        clip: usize,
        crop: usize,
    ) -> BatchShape {
        let samples = (clip as f64 / params.fps as f64 * params.sample_rate as f64).round() as usize;
        let (w, h) = (params.window_samples as usize, params.hop_samples as usize);
        BatchShape {
            views,
            clip,
            crop,
            mels: params.mels as usize,
            audio_frames: if samples <= w {
                1
            } else {
                1 + (samples - w).div_ceil(h)
            },
        }
    }

    /// Bytes of one view's video.
    pub fn video_per_view(&self) -> usize {
        3 * self.clip * self.crop * self.crop
    }

    /// Values of one view's spectrogram.
    pub fn audio_per_view(&self) -> usize {
        self.mels * self.audio_frames
    }
}

/// A ready batch; its buffers go back to the pool when it is dropped.
pub struct Batch {
    /// The epoch it belongs to.
    pub epoch: u64,
    /// Batch number within the epoch (for this rank).
    pub index: usize,
    /// Records in this batch.
    pub records: usize,
    /// Its geometry.
    pub shape: BatchShape,
    pub(crate) video: Vec<u8>,
    pub(crate) video_f32: Option<Vec<f32>>,
    pub(crate) audio: Vec<f32>,
    pub(crate) views: Vec<ViewMeta>,
    pub(crate) pool: Arc<Pool>,
}

impl Batch {
    /// Creates an empty batch from pooled buffers (allocating only when the pool is empty).
    pub(crate) fn take(
        pool: &Arc<Pool>,
        epoch: u64,
        index: usize,
        shape: BatchShape,
        normalised: bool,
    ) -> Batch {
        let mut b = Batch {
            epoch,
            index,
            records: 0,
            shape,
            video: pool.reuse(&pool.video),
            video_f32: normalised.then(|| pool.reuse(&pool.video_f32)),
            audio: pool.reuse(&pool.audio),
            views: pool.reuse(&pool.views),
            pool: pool.clone(),
        };
        // Video and audio keep their length: `build_batch` sizes them without zero-filling
        // what it is about to overwrite.
        b.views.clear();
        b
    }

    /// `[records, views, 3, clip, crop, crop]` u8.
    pub fn video(&self) -> &[u8] {
        &self.video
    }

    /// `[records, views, 3, clip, crop, crop]` f32, normalised, when the loader was asked for it.
    pub fn video_f32(&self) -> Option<&[f32]> {
        self.video_f32.as_deref()
    }

    /// `[records, views, mels, audio_frames]` f32.
    pub fn audio(&self) -> &[f32] {
        &self.audio
    }

    /// One entry per view, record-major: `views()[r * shape.views + v]`.
    pub fn views(&self) -> &[ViewMeta] {
        &self.views
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // A full pool just lets the buffer go.
        let _ = self.pool.video.push(std::mem::take(&mut self.video));
        if let Some(v) = self.video_f32.take() {
            let _ = self.pool.video_f32.push(v);
        }
        let _ = self.pool.audio.push(std::mem::take(&mut self.audio));
        let _ = self.pool.views.push(std::mem::take(&mut self.views));
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("epoch", &self.epoch)
            .field("index", &self.index)
            .field("records", &self.records)
            .field("shape", &self.shape)
            .finish()
    }
}
