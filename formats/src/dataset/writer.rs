//! Writing a dataset: records appended in order, grouped by input, into shards of about a
//! target size, then `dataset.json` with the shard list, labels and totals. The packer and
//! the synthetic corpus both write through it, so every dataset is laid out by one rule.
use std::path::{Path, PathBuf};

use super::files::shard_file_name;
use super::manifest::{DatasetManifest, ShardInfo};
use super::tally::InputTally;
use crate::error::{FileError, FormatError, Result};
use crate::params::PackParams;
use crate::shard::{EncodedRecord, ShardWriter};

/// Where [`DatasetWriter::append`] put an input's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The shard they are in.
    pub shard: usize,
    /// Whether the shard before had to close first: the shards listed by
    /// [`DatasetWriter::shards`] are then a resume point just before this input.
    pub closed_shard: bool,
    /// What they add to the shard, index entries included.
    pub bytes: u64,
}

/// Appends records into numbered shards in a dataset directory and describes them.
///
/// Shards roll over only between inputs: all records of one [`DatasetWriter::append`] land
/// in the same shard, and a shard closes before the input that would take it past the target
/// size (a single input larger than that gets a shard of its own). So "shards 0..k are
/// complete" is a resume point a packer can record.
pub struct DatasetWriter {
    dir: PathBuf,
    params: PackParams,
    shard_size: u64,
    labels: Vec<String>,
    shards: Vec<ShardInfo>,
    open: Option<ShardWriter>,
}

impl DatasetWriter {
    /// Starts writing into `dir` (created if missing) after the `done` shards an earlier
    /// run completed (empty for a new dataset). `labels` are the dataset's sorted label
    /// names; records' `label_index` point into them.
    pub fn new(
        dir: &Path,
        params: &PackParams,
        shard_size: u64,
        labels: Vec<String>,
        done: Vec<ShardInfo>,
    ) -> Result<DatasetWriter> {
        params
            .validate()
            .map_err(|e| FormatError::malformed(dir, format!("parameters: {e}")))?;
        std::fs::create_dir_all(dir).map_err(FileError::at(dir))?;
        Ok(DatasetWriter {
            dir: dir.to_path_buf(),
            params: params.clone(),
            shard_size,
            labels,
            shards: done,
            open: None,
        })
    }

    /// The label names, sorted.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Where `label` is in [`DatasetWriter::labels`].
    pub fn label_index(&self, label: &str) -> Option<u32> {
        self.labels.iter().position(|l| l == label).map(|i| i as u32)
    }

    /// Shards completed so far.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// Appends one input's records, all to the same shard.
    pub fn append(&mut self, records: &[EncodedRecord]) -> Result<Appended> {
        let mut closed = false;
        let bytes: u64 = records.iter().map(EncodedRecord::stored_bytes).sum();
        if self
            .open
            .as_ref()
            .is_some_and(|w| w.record_count() > 0 && w.bytes() + bytes > self.shard_size)
        {
            closed = self.close_shard()?;
        }
        if self.open.is_none() {
            let path = self.dir.join(shard_file_name(self.shards.len()));
            self.open = Some(ShardWriter::create(&path, &self.params)?);
        }
        let w = self.open.as_mut().expect("opened above");
        for r in records {
            w.append(r)?;
        }
        Ok(Appended {
            shard: self.shards.len(),
            closed_shard: closed,
            bytes,
        })
    }

    /// Finishes the open shard, if any; returns whether there was one.
    pub fn close_shard(&mut self) -> Result<bool> {
        let Some(w) = self.open.take() else {
            return Ok(false);
        };
        let file = shard_file_name(self.shards.len());
        let summary = w.finish()?;
        self.shards.push(ShardInfo {
            file,
            records: summary.records,
            bytes: summary.bytes,
        });
        Ok(true)
    }

    /// Closes the open shard and writes `dataset.json`: the shards, the labels, and totals
    /// over `inputs` (every input considered, packed or skipped). `writer` names the program
    /// for people; `source_root` is where the inputs' relative paths start.
    pub fn finish(
        mut self,
        inputs: &[InputTally],
        writer: &str,
        source_root: Option<PathBuf>,
    ) -> Result<DatasetManifest> {
        self.close_shard()?;
        let manifest =
            DatasetManifest::describe(self.params, self.shards, self.labels, inputs, writer, source_root);
        manifest.save(&self.dir)?;
        Ok(manifest)
    }
}
