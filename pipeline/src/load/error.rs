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
