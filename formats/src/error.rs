//! What can be wrong with a file gdt reads, always with the file's name.

use std::path::PathBuf;

/// A format error. Every variant names the file; record-level variants also name the record.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a gdt shard (bad magic {found:?})")]
    NotAShard { path: PathBuf, found: Vec<u8> },
    #[error("{path}: incompatible format version: the file has version {found}, this gdt reads version {supported}")]
    Version {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: malformed: {what}")]
    Malformed { path: PathBuf, what: String },
    #[error("{path}: checksum mismatch in the {region}")]
    Checksum { path: PathBuf, region: &'static str },
    #[error("{path}: record {record}: {what}")]
    Record {
        path: PathBuf,
        record: usize,
        what: String,
    },
    #[error("{path}: {what}: {source}")]
    Json {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },
}

impl FormatError {
    pub(crate) fn malformed(path: &std::path::Path, what: impl Into<String>) -> FormatError {
        FormatError::Malformed {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> FormatError + '_ {
        move |source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;
