//! The record index: every record's frame count, label and split, read once per open
//! dataset. The loader (which records to serve, their labels), the evaluation's clip reader
//! (train and test records) and the trainer (which splits pretraining reads) all need it;
//! reading it costs one JSON parse per record (about 240k on a Kinetics-size dataset), so it
//! is read the first time one of them asks and kept with the [`super::Dataset`].

use std::collections::BTreeSet;

use super::reader::Dataset;

/// What the index knows of one record.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordInfo {
    /// Stored frames (at the dataset's fps).
    pub frames: usize,
    /// Its label's index into the dataset's label names, if it has one.
    pub label: Option<u32>,
    /// Its split (`train`, `test`, ...), if the dataset has splits.
    pub split: Option<String>,
}

/// A record whose metadata could not be read: its label and split are unknown.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    /// Its global record number.
    pub record: usize,
    /// Why, naming the shard and the record.
    pub error: String,
}

/// Every record of a dataset, by global record number.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordIndex {
    records: Vec<RecordInfo>,
    unreadable: Vec<Unreadable>,
}

impl RecordIndex {
    /// Reads every record's entry and metadata. A record whose metadata is damaged is listed
    /// in [`RecordIndex::unreadable`] (with no label and no split) rather than failing the
    /// whole index: the loader skips such a record when it reads it, and whoever needs its
    /// split decides what to do.
    pub fn read(ds: &Dataset) -> RecordIndex {
        let mut index = RecordIndex {
            records: Vec::with_capacity(ds.len()),
            unreadable: Vec::new(),
        };
        // A remote shard's metadata is asked for all at once, so its requests overlap.
        for shard in ds.shards.iter().filter(|s| s.is_remote()) {
            let mut metas: Vec<(u64, u64)> = (0..shard.len())
                .filter_map(|r| shard.record(r).ok())
                .map(|view| view.blob_location(0))
                .map(|(offset, len)| (offset, len as u64))
                .collect();
            shard.will_need(&mut metas);
        }
        for shard in &ds.shards {
            for r in 0..shard.len() {
                let view = shard.record(r).expect("a record number below the shard's count");
                let frames = view.entry().frames as usize;
                let (label, split) = match view.meta() {
                    Ok(meta) => (meta.label_index, meta.split),
                    Err(e) => {
                        index.unreadable.push(Unreadable {
                            record: index.records.len(),
                            error: e.to_string(),
                        });
                        (None, None)
                    }
                };
                index.records.push(RecordInfo { frames, label, split });
            }
        }
        index
    }

    /// Every record, by global record number.
    pub fn records(&self) -> &[RecordInfo] {
        &self.records
    }

    /// Records whose metadata could not be read.
    pub fn unreadable(&self) -> &[Unreadable] {
        &self.unreadable
    }

    /// The split names the records carry, sorted.
    pub fn split_names(&self) -> BTreeSet<&str> {
        self.records.iter().filter_map(|r| r.split.as_deref()).collect()
    }

    /// Whether any record carries a split.
    pub fn has_splits(&self) -> bool {
        self.records.iter().any(|r| r.split.is_some())
    }
}
