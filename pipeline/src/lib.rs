//! gdt's data pipeline: everything between a video file and a ready batch, without torch.
//!
//! - Packing (feature `ffmpeg`): `decode` (probe, raw decode), `window` (a source as aligned
//!   windows at 30 fps and 24 kHz), `pack` (the parallel, resumable packer).
//! - Audio features: [`resample`] (rubato), [`spectrogram`] (the reference log-mel).
//! - Loading: [`sampler`] (epoch order, ranks, time shifts), [`augment`], [`batch`],
//!   [`loader`]; `baseline` (feature `ffmpeg`) is the on-the-fly reference for benchmarks;
//!   [`clips`] reads clips at chosen positions without randomness (evaluation).
//! - [`synth`]: the synthetic audio-visual corpus (scenes, plans; container files with the
//!   `ffmpeg` feature, or straight into packed form).
//!
//! See ARCHITECTURE.md for the data flow.
//!
//! ```
//! use gdt_pipeline::synth::{plan, CorpusConfig, Scene};
//! let videos = plan(&CorpusConfig { count: 2, seed: 1, ..CorpusConfig::default() });
//! let scene = Scene::new(&videos[0].spec);
//! assert!(!scene.frame_times().is_empty());
//! ```

pub mod augment;
#[cfg(feature = "ffmpeg")]
pub mod baseline;
pub mod batch;
pub mod clips;
#[cfg(feature = "ffmpeg")]
pub mod decode;
pub mod loader;
#[cfg(feature = "ffmpeg")]
pub mod pack;
pub mod resample;
pub mod sampler;
pub mod spectrogram;
pub mod synth;
#[cfg(feature = "ffmpeg")]
pub mod window;

/// Initialises FFmpeg once per process and keeps its logging to real errors: gdt reports
/// problems itself, with the file's name.
#[cfg(feature = "ffmpeg")]
pub fn ffmpeg_init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Registration cannot fail on FFmpeg >= 4; the error type is historical.
        let _ = ffmpeg_next::init();
        ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Fatal);
    });
}

/// Whether this build can decode and encode video files (the `ffmpeg` cargo feature).
pub const HAS_FFMPEG: bool = cfg!(feature = "ffmpeg");
