//! Ready batches and the pool their buffers come from and return to.
//!
//! Layouts (row-major, documented contract with the trainer):
//! - video: u8 `[records, views, 3, clip, crop, crop]`, RGB, not normalised;
//! - audio: f32 `[records, views, mels, audio_frames]`, z-normalised log-mel.
//!
//! Dropping a batch hands its buffers back to the pool, so a loader in steady state
//! allocates nothing per batch. Every buffer holds a whole batch and comes from the loader's
//! [`HostMemory`] (the heap, or page-locked memory a GPU copies from).

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use super::error::LoadError;
use super::host::{HostBuffer, HostMemory, Plain};
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
    video: ArrayQueue<HostBuffer<u8>>,
    audio: ArrayQueue<HostBuffer<f32>>,
    views: ArrayQueue<Vec<ViewMeta>>,
    memory: Arc<dyn HostMemory>,
    /// Elements of a whole batch's video and audio.
    video_len: usize,
    audio_len: usize,
    /// Buffers handed out new because the pool had none to reuse.
    allocations: AtomicUsize,
}

impl Pool {
    /// A pool of up to `capacity` batches' buffers of `shape` (and `records` records), from
    /// `memory`: all of them at once when the memory asks for that, else as needed.
    pub(crate) fn new(
        capacity: usize,
        memory: Arc<dyn HostMemory>,
        shape: &BatchShape,
        records: usize,
    ) -> Result<Arc<Pool>, LoadError> {
        let pool = Arc::new(Pool {
            video: ArrayQueue::new(capacity),
            audio: ArrayQueue::new(capacity),
            views: ArrayQueue::new(capacity),
            video_len: records * shape.views * shape.video_per_view(),
            audio_len: records * shape.views * shape.audio_per_view(),
            memory,
            allocations: AtomicUsize::new(0),
        });
        if pool.memory.up_front() {
            for _ in 0..capacity {
                let _ = pool.video.push(pool.buffer(pool.video_len)?);
                let _ = pool.audio.push(pool.buffer(pool.audio_len)?);
            }
        }
        Ok(pool)
    }

    pub(crate) fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }

    /// A new whole-batch buffer (counted), or why the memory had none.
    fn buffer<T: Plain>(&self, len: usize) -> Result<HostBuffer<T>, LoadError> {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        HostBuffer::new(&self.memory, len).ok_or_else(|| {
            LoadError::Worker(format!(
                "no {} memory for a batch buffer of {} bytes",
                self.memory.name(),
                len * std::mem::size_of::<T>()
            ))
        })
    }

    /// A pooled buffer, or a new one when none is free.
    fn reuse<T: Plain>(
        &self,
        queue: &ArrayQueue<HostBuffer<T>>,
        len: usize,
    ) -> Result<HostBuffer<T>, LoadError> {
        match queue.pop() {
            Some(b) => Ok(b),
            None => self.buffer(len),
        }
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
    /// Taken back into the pool on drop (hence `ManuallyDrop`: no placeholder is allocated).
    pub(crate) video: ManuallyDrop<HostBuffer<u8>>,
    pub(crate) audio: ManuallyDrop<HostBuffer<f32>>,
    pub(crate) views: Vec<ViewMeta>,
    pub(crate) pool: Arc<Pool>,
}

impl Batch {
    /// Creates an empty batch from pooled buffers (allocating only when the pool is empty).
    /// Video and audio keep their length from the batch before: `build_batch` sets it
    /// without zero-filling what it is about to overwrite.
    pub(crate) fn take(
        pool: &Arc<Pool>,
        epoch: u64,
        index: usize,
        shape: BatchShape,
    ) -> Result<Batch, LoadError> {
        let mut views = pool.views.pop().unwrap_or_default();
        views.clear();
        Ok(Batch {
            epoch,
            index,
            records: 0,
            shape,
            video: ManuallyDrop::new(pool.reuse(&pool.video, pool.video_len)?),
            audio: ManuallyDrop::new(pool.reuse(&pool.audio, pool.audio_len)?),
            views,
            pool: pool.clone(),
        })
    }

    /// `[records, views, 3, clip, crop, crop]` u8.
    pub fn video(&self) -> &[u8] {
        &self.video
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
        // SAFETY: taken once, here, and never used again.
        let (video, audio) = unsafe {
            (
                ManuallyDrop::take(&mut self.video),
                ManuallyDrop::take(&mut self.audio),
            )
        };
        // A full pool just lets the buffer go (back to its memory).
        let _ = self.pool.video.push(video);
        let _ = self.pool.audio.push(audio);
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
