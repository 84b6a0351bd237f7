//! Shard files: a self-describing header, the records' blobs, an index and a footer.
//!
//! The byte layout is specified in `formats/FORMAT.md`; [`layout`] holds one type per
//! fixed-size structure of that spec (write and parse side by side), [`writer`] appends
//! records and seals a shard, [`reader`] validates and memory-maps one.

pub mod layout;
pub mod reader;
pub mod writer;

pub use layout::{BlobEntry, Footer, Header, RecordEntry, FIRST_CHUNK_BLOB, FORMAT_VERSION, MAX_META_LEN};
pub use reader::{Damage, RecordView, Shard};
pub use writer::{EncodedRecord, ShardSummary, ShardWriter};
