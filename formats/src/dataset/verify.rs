//! The full integrity pass (`gdt verify`): every check [`super::Dataset::open`] makes, plus
//! every blob's checksum, collected rather than stopping at the first problem, so that one
//! run names every damaged file and record.

use std::path::Path;

use serde::Serialize;

use super::files::DATASET_FILE;
use super::manifest::DatasetManifest;
use super::reader::mismatch;
use crate::shard::Shard;

/// One problem found: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The shard's file name, or `dataset.json`.
    pub shard: String,
    /// The record within the shard, when the problem is in one.
    pub record: Option<usize>,
    /// What failed.
    pub what: String,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Shards `dataset.json` names.
    pub shards: usize,
    /// Records in the shards that could be opened.
    pub records: usize,
    /// Every problem, in file order; empty when the dataset is intact.
    #[serde(rename = "damage")]
    pub problems: Vec<Problem>,
}

impl Verification {
    /// Whether nothing was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every shard of the dataset in `dir` against `dataset.json` and every blob against
/// its checksum. Never fails: an unreadable description or shard is itself a problem found.
pub fn verify(dir: &Path) -> Verification {
    let mut v = Verification::default();
    let m = match DatasetManifest::load(dir) {
        Ok(m) => m,
        Err(e) => {
            v.problems.push(Problem {
                shard: DATASET_FILE.into(),
                record: None,
                what: e.to_string(),
            });
            return v;
        }
    };
    for info in &m.shards {
        v.shards += 1;
        let problem = |record, what| Problem {
            shard: info.file.clone(),
            record,
            what,
        };
        let shard = match m.shard_path(dir, &info.file).map(|p| Shard::open(&p)) {
            Ok(Ok(shard)) => shard,
            Ok(Err(e)) => {
                v.problems.push(problem(None, e.to_string()));
                continue;
            }
            Err(what) => {
                v.problems.push(problem(None, what));
                continue;
            }
        };
        v.records += shard.len();
        if let Some(what) = mismatch(&m, info, &shard) {
            v.problems.push(problem(None, what));
        }
        for d in shard.verify() {
            v.problems.push(problem(Some(d.record), d.what));
        }
    }
    v
}
