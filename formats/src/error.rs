//! What can be wrong with a file gdt reads, always with the file's name.

use std::path::{Path, PathBuf};

/// An I/O failure on a named file. Every gdt library reports I/O in this one shape, so a
/// message always names the file once, followed by the system's cause.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileError {
    /// The file (or directory) the operation was on.
    pub path: PathBuf,
    /// What the system said.
    pub source: std::io::Error,
}

impl FileError {
    /// For `map_err`: wraps an I/O error on `path`.
    pub fn at(path: &Path) -> impl Fn(std::io::Error) -> FileError + '_ {
        move |source| FileError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A format error. Every variant names the file; record-level variants also name the record.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading or writing the file failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The file does not start with a shard's magic.
    #[error("{path}: not a gdt shard (bad magic {found:?})")]
    NotAShard {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        found: Vec<u8>,
    },
    /// The file is of a format version this gdt does not read.
    #[error("{path}: incompatible format version: the file has version {found}, this gdt reads version {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The version this gdt reads.
        supported: u32,
    },
    /// A field or structure breaks the format's rules.
    #[error("{path}: malformed: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Which rule, and how.
        what: String,
    },
    /// A checksummed region does not match its checksum.
    #[error("{path}: checksum mismatch in the {region}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Header, index or footer.
        region: &'static str,
    },
    /// One record is damaged or inconsistent.
    #[error("{path}: record {record}: {what}")]
    Record {
        /// The shard.
        path: PathBuf,
        /// The record within the shard.
        record: usize,
        /// What is wrong with it.
        what: String,
    },
    /// An object store could not give the bytes (after retries): a transport or service
    /// failure, not damage, so a loader in skip mode stops on it rather than skipping.
    #[error("{source}")]
    Storage {
        /// The object's URL.
        path: PathBuf,
        /// The store's error.
        source: crate::storage::StorageError,
    },
    /// A writer will not do what was asked (a destination holds a dataset already, ...).
    #[error("{path}: {what}")]
    Refused {
        /// The destination.
        path: PathBuf,
        /// Why, and what to do instead.
        what: String,
    },
    /// A JSON document (parameters, `dataset.json`) does not parse.
    #[error("{path}: {what}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Which document.
        what: &'static str,
        /// The parser's message.
        source: serde_json::Error,
    },
}

impl FormatError {
    /// Whether the error says the data is damaged or not gdt's (skippable, one record at a
    /// time), rather than that it could not be reached (an object store that failed).
    pub fn is_damage(&self) -> bool {
        match self {
            FormatError::NotAShard { .. }
            | FormatError::Version { .. }
            | FormatError::Malformed { .. }
            | FormatError::Checksum { .. }
            | FormatError::Record { .. }
            | FormatError::Json { .. } => true,
            FormatError::Io(_) | FormatError::Storage { .. } | FormatError::Refused { .. } => false,
        }
    }

    pub(crate) fn malformed(path: &Path, what: impl Into<String>) -> FormatError {
        FormatError::Malformed {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    pub(crate) fn storage(path: &Path, source: crate::storage::StorageError) -> FormatError {
        FormatError::Storage {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> FormatError + '_ {
        move |source| FileError::at(path)(source).into()
    }
}

/// The formats crate's result.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
