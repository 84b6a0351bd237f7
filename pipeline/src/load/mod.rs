//! Stage 3, shard record -> sampled views -> batch: the loader.
//!
//! - [`sampler`]: which records, which time shifts (epochs, ranks, the draw streams).
//! - [`augment`]: crop, scale, flip and colour jitter for video; volume, SpecAugment and
//!   normalisation for audio.
//! - [`view`]: one view of a record rendered into its slot of a batch (the loader's and
//!   evaluation's shared path), and the benchmark's copy-only floor.
//! - [`batch`]: batch layouts and the buffer pool; [`host`]: where the buffers live (the
//!   heap, or page-locked memory a GPU copies from).
//! - [`settings`]: what a loader serves ([`settings::LoaderSettings`], the reference setup
//!   by default).
//! - [`error`]: [`error::LoadError`], shared by every module here.
//! - [`loader`]: worker threads, order, resume and damaged records.
//! - [`clips`]: clips at chosen positions without randomness, for evaluation.

pub mod augment;
pub mod batch;
pub mod clips;
pub mod error;
pub mod host;
pub mod loader;
pub mod sampler;
pub mod settings;
pub mod view;
