//! A packed dataset opened for reading: `dataset.json` and every shard it names, checked
//! against each other.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::index::RecordIndex;
use super::manifest::{DatasetManifest, ShardInfo};
use super::opener::{OpenOptions, Opener};
use crate::error::{FormatError, Result};
use crate::shard::Shard;
use crate::storage::cache::DiskCache;

/// What is wrong between a shard and its line in `dataset.json`, if anything: the cross-check
/// both [`Dataset::open`] and [`super::verify`] make.
pub(crate) fn mismatch(manifest: &DatasetManifest, info: &ShardInfo, shard: &Shard) -> Option<String> {
    if shard.len() != info.records || shard.file_len() != info.bytes {
        return Some(format!(
            "holds {} records in {} bytes, dataset.json says {} in {}",
            shard.len(),
            shard.file_len(),
            info.records,
            info.bytes
        ));
    }
    (shard.params() != &manifest.params)
        .then(|| "was packed with other parameters than dataset.json names".to_string())
}

/// A packed dataset opened for reading: its description and every shard, validated.
pub struct Dataset {
    /// The dataset directory, or its object-store URL.
    pub dir: PathBuf,
    /// Its `dataset.json`.
    pub manifest: DatasetManifest,
    /// Every shard, validated, in record order: memory-mapped, or read by ranges from an
    /// object store.
    pub shards: Vec<Shard>,
    /// Global index of each shard's first record.
    starts: Vec<usize>,
    /// Read on first use (see [`Dataset::index`]).
    index: OnceLock<RecordIndex>,
    /// A remote dataset's local cache, filling while the dataset is open.
    _cache: Option<DiskCache>,
}

impl Dataset {
    /// Opens `dir` (a directory, or an object-store URL such as `s3://bucket/k400`): reads
    /// `dataset.json`, opens every shard it names and checks that each holds the records and
    /// bytes the description says.
    ///
    /// Local shards are memory-mapped, not read: a dataset must not be modified while it is
    /// open (gdt never rewrites a finished shard). A shard truncated or rewritten under an
    /// open dataset can crash the process with SIGBUS instead of returning an error.
    pub fn open(dir: &Path) -> Result<Dataset> {
        Dataset::open_with(dir, &OpenOptions::default())
    }

    /// [`Dataset::open`] with a local cache for a remote dataset.
    pub fn open_with(dir: &Path, options: &OpenOptions) -> Result<Dataset> {
        let (mut opener, manifest) = Opener::new(dir, options)?;
        let mut shards = Vec::with_capacity(manifest.shards.len());
        let mut starts = Vec::with_capacity(manifest.shards.len());
        let mut total = 0;
        for (info, shard) in manifest.shards.iter().zip(opener.open_all(&manifest)) {
            let shard = shard?;
            if let Some(what) = mismatch(&manifest, info, &shard) {
                return Err(FormatError::malformed(shard.path(), what));
            }
            starts.push(total);
            total += shard.len();
            shards.push(shard);
        }
        opener.fill_cache(&manifest, &shards);
        Ok(Dataset {
            dir: dir.to_path_buf(),
            manifest,
            shards,
            starts,
            index: OnceLock::new(),
            _cache: opener.into_cache(),
        })
    }

    /// Whether the dataset is read from an object store (some of its shards, at least).
    pub fn is_remote(&self) -> bool {
        self.shards.iter().any(Shard::is_remote)
    }

    /// Every record's frame count, label and split, read on the first call (one metadata
    /// parse per record) and shared by every later caller of this dataset.
    pub fn index(&self) -> &RecordIndex {
        self.index.get_or_init(|| RecordIndex::read(self))
    }

    /// Records in the whole dataset.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Whether the dataset holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (shard, record within the shard) of a global record index.
    pub fn locate(&self, record: usize) -> Option<(usize, usize)> {
        if record >= self.len() {
            return None;
        }
        let shard = self.starts.partition_point(|&s| s <= record) - 1;
        Some((shard, record - self.starts[shard]))
    }
}
