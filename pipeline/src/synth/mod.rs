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
#[cfg(feature = "ffmpeg")]
pub mod files;
pub mod packed;
pub mod scene;

use std::path::PathBuf;

use gdt_formats::FileError;

pub use class::{ClassStyle, Shape, CLASSES};
pub use corpus::{manifest_csv, plan, Container, CorpusConfig, PlannedVideo, Split};
pub use scene::{Impact, Scenario, Scene, FLASH_THRESHOLD};

/// Why a synthetic video could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A dataset's files could not be written.
    #[error(transparent)]
    Format(#[from] gdt_formats::FormatError),
    /// The output directory holds something else.
    #[error("{path} {what}")]
    Refused {
        /// The directory.
        path: PathBuf,
        /// Why it was not used.
        what: String,
    },
    /// Some videos could not be written (each message names its file).
    #[error("{} of {total} videos could not be written; no manifest was written:\n  {}", failures.len(), failures.join("\n  "))]
    Failed {
        /// Videos planned.
        total: usize,
        /// One message per video that failed.
        failures: Vec<String>,
    },
    /// An FFmpeg call failed while encoding.
    #[cfg(feature = "ffmpeg")]
    #[error("{path}: FFmpeg failed while {what}: {source}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// What gdt was doing.
        what: &'static str,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
    /// FFmpeg here lacks an encoder the container needs.
    #[error("{path}: this FFmpeg build has no {codec} encoder")]
    MissingEncoder {
        /// The file being written.
        path: PathBuf,
        /// The encoder's name.
        codec: String,
    },
    /// The container cannot carry what the video asks for.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file being written.
        path: PathBuf,
        /// What it cannot carry.
        reason: String,
    },
}
