//! Why the loader (or evaluation's clip reader) could not give what was asked: one error type
//! for every module of stage 3, in a module of its own so that none of them imports another
//! for it.

use std::path::PathBuf;

use gdt_formats::FormatError;

/// Why the loader could not give a batch.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The dataset or a shard could not be opened, or a blob failed its checksum.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A record cannot give the views asked for.
    #[error("{shard}: record {record} (dataset record {global}): {what}")]
    Record {
        /// Its shard.
        shard: PathBuf,
        /// Its number within the shard.
        record: usize,
        /// Its number in the dataset.
        global: u32,
        /// Why.
        what: String,
    },
    /// A worker thread failed (or panicked) outside any one record.
    #[error("loader worker failed: {0}")]
    Worker(String),
    /// The loader's settings do not fit together or the dataset.
    #[error("invalid loader settings: {0}")]
    Config(String),
}

impl LoadError {
    /// Whether the error is a record's damage (skipped in skip mode), rather than the
    /// dataset being unreachable (an object store that failed after its retries, which ends
    /// the run) or the loader itself failing.
    pub fn is_damage(&self) -> bool {
        match self {
            LoadError::Record { .. } => true,
            LoadError::Format(e) => e.is_damage(),
            LoadError::Worker(_) | LoadError::Config(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_skippable_and_an_unreachable_store_is_not() {
        let record = LoadError::Record {
            shard: "s.gdt".into(),
            record: 0,
            global: 0,
            what: "checksum".into(),
        };
        assert!(record.is_damage());
        let checksum = LoadError::Format(FormatError::Checksum {
            path: "s.gdt".into(),
            region: "index",
        });
        assert!(checksum.is_damage());
        let storage = LoadError::Format(FormatError::Storage {
            path: "s3://b/k/s.gdt".into(),
            source: gdt_formats::storage::StorageError {
                url: "s3://b/k/s.gdt".into(),
                what: "no answer from the store".into(),
            },
        });
        assert!(!storage.is_damage());
        assert!(!LoadError::Worker("panicked".into()).is_damage());
    }
}
