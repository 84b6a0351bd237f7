//! gdt's data pipeline: everything between a video file and a ready batch, without torch.
//! The folders follow the data:
//!
//! - [`source`]: a video file decoded into aligned windows (frames at 30 fps, log-mel audio);
//!   decoding needs the `ffmpeg` feature, the audio features do not.
//! - `pack` (feature `ffmpeg`): windows compressed into a dataset's shards, in parallel,
//!   resumably.
//! - [`load`]: records sampled into GDT views, augmented and batched on worker threads.
//! - [`synth`]: the synthetic audio-visual corpus (scenes, plans; container files with the
//!   `ffmpeg` feature, or straight into packed form).
//! - [`bench`]: `gdt bench load`, the loader measured in steady state, cold or warm, with
//!   the machine it ran on; `baseline` (feature `ffmpeg`): the on-the-fly decoder it
//!   compares with.
//! - [`figure`]: figures for people: a record's preview, and the font figures are labelled with.
//!
//! See ARCHITECTURE.md for the data flow.
//!
//! ```
//! use gdt_pipeline::synth::{plan, CorpusConfig, Scene};
//! let videos = plan(&CorpusConfig { count: 2, seed: 1, ..CorpusConfig::default() });
//! let scene = Scene::new(&videos[0].scenario);
//! assert!(!scene.frame_times().is_empty());
//! ```

#![deny(missing_docs)]

#[cfg(feature = "ffmpeg")]
pub mod baseline;
pub mod bench;
pub mod figure;
pub mod load;
pub mod pack;
pub mod source;
pub mod spec;
pub mod synth;

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
