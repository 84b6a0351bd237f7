//! The synthetic audio-visual corpus behind every test, demo and benchmark.
//!
//! Real datasets cannot be downloaded everywhere gdt is built, so gdt makes its own: objects
//! of K classes fall, bounce and flash, and each impact makes a class-specific sound at the
//! exact frame of the impact. See [`scene`] for the content, [`corpus`] for the plan (labels,
//! splits, variety of formats) and `encode` (feature `ffmpeg`) for writing container files.

pub mod class;
pub mod corpus;
#[cfg(feature = "ffmpeg")]
pub mod encode;
pub mod packed;
pub mod scene;

use std::path::PathBuf;

pub use class::{ClassStyle, Shape, CLASSES};
pub use corpus::{manifest_csv, plan, Container, CorpusConfig, PlannedVideo, Split};
pub use scene::{Impact, Scene, VideoSpec, FLASH_THRESHOLD};

/// Why a synthetic video could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[cfg(feature = "ffmpeg")]
    #[error("{path}: FFmpeg failed while {what}: {source}")]
    Encode {
        path: PathBuf,
        what: &'static str,
        source: ffmpeg_next::Error,
    },
    #[error("{path}: this FFmpeg build has no {codec} encoder")]
    MissingEncoder { path: PathBuf, codec: String },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
}
