//! A packed dataset: a directory (or object-store prefix) of shards described by
//! `dataset.json`.
//!
//! - [`copy`]: a dataset into an object store or out of one (`gdt copy`).
//! - [`files`]: the names of a dataset's files and which of them are gdt's.
//! - [`manifest`]: `dataset.json` (shards, parameters, labels, totals).
//! - [`tally`]: what each input adds to a dataset's totals.
//! - [`writer`]: [`DatasetWriter`], the one way records become shards and a description.
//! - [`index`]: every record's frames, label and split, read once per open dataset.
//! - [`opener`]: where shards are opened from: a directory, or an object store (with an
//!   optional local cache).
//! - [`reader`]: [`Dataset`], every shard opened and cross-checked, global record numbers.
//! - [`mod@verify`]: the full integrity pass.

pub mod copy;
pub mod files;
pub mod index;
pub mod manifest;
pub mod opener;
pub mod reader;
pub mod tally;
pub mod verify;
pub mod writer;

pub use copy::{copy, Copied};
pub use files::{
    is_dataset_file, is_dataset_temporary, is_shard_file, remove_dataset_files, shard_file_name, shard_index,
    DATASET_FILE, REPORT_FILE, STATE_FILE,
};
pub use index::{RecordIndex, RecordInfo, Unreadable};
pub use manifest::{DatasetManifest, ShardInfo, Totals};
pub use opener::OpenOptions;
pub use reader::Dataset;
pub use tally::{InputCounts, InputTally};
pub use verify::{verify, Problem, Verification};
pub use writer::{Appended, DatasetWriter};
