//! Stage 1, video file -> decoded window: what `gdt pack` does to each source before anything
//! is stored.
//!
//! - `colour` (feature `ffmpeg`): which Y'CbCr matrix and range a stream's pixels use.
//! - `decode` (feature `ffmpeg`): what a file holds (`probe`), its frames and audio, by
//!   timestamp.
//! - `window` (feature `ffmpeg`): a source as aligned windows at the dataset's frame rate,
//!   frame size and sample rate.
//! - [`resample`]: audio rate conversion (rubato).
//! - [`spectrogram`]: the reference's log-mel filterbank.

#[cfg(feature = "ffmpeg")]
pub(crate) mod colour;
#[cfg(feature = "ffmpeg")]
pub mod decode;
pub mod resample;
pub mod spectrogram;
#[cfg(feature = "ffmpeg")]
pub mod window;
