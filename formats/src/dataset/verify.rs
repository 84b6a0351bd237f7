//! The full integrity pass (`gdt verify`): every check [`super::Dataset::open`] makes, plus
//! every blob's checksum, collected rather than stopping at the first problem, so that one
//! run names every damaged file and record.

use std::path::Path;

use serde::Serialize;

use super::files::DATASET_FILE;
use super::opener::{OpenOptions, Opener};
use super::reader::mismatch;
use crate::error::FormatError;

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
    /// Why the pass stopped before the end, when an object store failed (after its
    /// retries): what was not read is neither damaged nor verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl Verification {
    /// Whether everything was read and nothing was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.stopped.is_none()
    }
}

/// Checks every shard of the dataset in `dir` (a directory or an object-store URL) against
/// `dataset.json` and every blob against its checksum. Never fails: an unreadable description
/// or shard is itself a problem found. An object store that fails (after its retries) ends
/// the pass, saying why in [`Verification::stopped`]: every later read would wait out its
/// retries too.
pub fn verify(dir: &Path) -> Verification {
    let mut v = Verification::default();
    let (opener, m) = match Opener::new(dir, &OpenOptions::default()) {
        Ok(opened) => opened,
        Err(e @ FormatError::Storage { .. }) => {
            v.stopped = Some(e.to_string());
            return v;
        }
        Err(e) => {
            v.problems.push(Problem {
                shard: DATASET_FILE.into(),
                record: None,
                what: e.to_string(),
            });
            return v;
        }
    };
    for (info, shard) in m.shards.iter().zip(opener.open_all(&m)) {
        v.shards += 1;
        let problem = |record, what| Problem {
            shard: info.file.clone(),
            record,
            what,
        };
        let shard = match shard {
            Ok(shard) => shard,
            Err(e @ FormatError::Storage { .. }) => {
                v.stopped = Some(e.to_string());
                return v;
            }
            Err(e) => {
                v.problems.push(problem(None, e.to_string()));
                continue;
            }
        };
        v.records += shard.len();
        if let Some(what) = mismatch(&m, info, &shard) {
            v.problems.push(problem(None, what));
        }
        match shard.verify() {
            Ok(damage) => v
                .problems
                .extend(damage.into_iter().map(|d| problem(Some(d.record), d.what))),
            Err(e) => {
                v.stopped = Some(e.to_string());
                return v;
            }
        }
    }
    v
}
