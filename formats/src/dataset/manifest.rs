//! `dataset.json`: the directory-level description of a packed dataset.
//!
//! It names the shards (plain file names inside the dataset directory, nothing else is
//! accepted; in an object store, also objects below the dataset's prefix, as a merge of
//! parts names them), the parameters, the label names and the totals a person wants to see.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
use crate::params::PackParams;
use crate::shard::FORMAT_VERSION;
use crate::storage::{Location, ObjectDir, StorageError};

use super::files::DATASET_FILE;
use super::tally::{InputCounts, InputTally};

/// One shard as `dataset.json` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the dataset directory.
    pub file: String,
    /// Records it holds.
    pub records: usize,
    /// Its size.
    pub bytes: u64,
}

/// What a dataset holds and what it came from, for people and `gdt inspect`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Inputs considered.
    pub inputs: usize,
    /// Inputs packed into at least one record.
    pub packed: usize,
    /// Inputs skipped (see `skipped` for why).
    pub skipped: usize,
    /// The packed inputs' counters, summed.
    #[serde(flatten)]
    pub counts: InputCounts,
    /// Bytes of all shards.
    pub stored_bytes: u64,
}

/// The contents of `dataset.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// The shard format version of every shard.
    pub format_version: u32,
    /// The gdt that wrote it, for people; readers go by `format_version`.
    pub writer: String,
    /// The parameters every shard was packed with.
    pub params: PackParams,
    /// The shards, in record order.
    pub shards: Vec<ShardInfo>,
    /// Sorted label names; a record's `label_index` points in here.
    pub labels: Vec<String>,
    /// Records per label name.
    pub label_counts: BTreeMap<String, usize>,
    /// What the dataset holds and came from.
    pub totals: Totals,
    /// Skipped inputs per reason.
    pub skipped: BTreeMap<String, usize>,
    /// The folder the records' `source` paths are relative to (absolute, as the packer saw
    /// it), so tools can find the original videos: `gdt bench load`'s baseline decodes them.
    /// Absent for datasets rendered without source files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_root: Option<std::path::PathBuf>,
}

impl DatasetManifest {
    /// The description of `shards` (in record order) packed from `inputs` (in input order):
    /// the totals, label counts and skip reasons follow from the inputs' tallies, so every
    /// writer (one pack, or the merge of a pack's parts) describes the same inputs alike.
    pub fn describe(
        params: PackParams,
        shards: Vec<ShardInfo>,
        labels: Vec<String>,
        inputs: &[InputTally],
        writer: &str,
        source_root: Option<PathBuf>,
    ) -> DatasetManifest {
        let mut totals = Totals {
            inputs: inputs.len(),
            ..Totals::default()
        };
        let mut skipped = BTreeMap::new();
        let mut label_counts = BTreeMap::new();
        for t in inputs {
            if let Some(reason) = &t.skipped {
                totals.skipped += 1;
                *skipped.entry(reason.clone()).or_insert(0) += 1;
                continue;
            }
            totals.packed += 1;
            totals.counts += t.counts;
            if let Some(l) = &t.label {
                *label_counts.entry(l.clone()).or_insert(0) += t.counts.records;
            }
        }
        totals.stored_bytes = shards.iter().map(|s| s.bytes).sum();
        DatasetManifest {
            format_version: FORMAT_VERSION,
            writer: writer.to_string(),
            params,
            shards,
            labels,
            label_counts,
            totals,
            skipped,
            source_root,
        }
    }

    /// Reads and checks `DIR/dataset.json`; `DIR` may be an object-store URL.
    pub fn load(dir: &Path) -> Result<DatasetManifest> {
        match Location::of(dir).map_err(|e| FormatError::storage(dir, e))? {
            Location::Local(dir) => {
                let path = dir.join(DATASET_FILE);
                let bytes = std::fs::read(&path).map_err(FormatError::io(&path))?;
                Self::parse(&path, &bytes, |m, file| m.shard_path(&dir, file).map(|_| ()))
            }
            Location::Object(objects) => Self::load_object(&objects),
        }
    }

    /// Reads and checks `dataset.json` of an object-store prefix. Its first request gives up
    /// quickly, so a wrong endpoint, bad credentials or a missing bucket are one line at once.
    pub fn load_object(objects: &ObjectDir) -> Result<DatasetManifest> {
        let path = PathBuf::from(objects.url_of(DATASET_FILE));
        let bytes = match objects.probe(DATASET_FILE) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                // Not found: no such dataset, or no such bucket; a listing tells which.
                let what = match objects.list() {
                    Ok(names) if names.is_empty() => {
                        "not found: nothing is stored under this prefix".to_string()
                    }
                    Ok(_) => {
                        "not found: the prefix holds objects but no dataset (an unfinished pack?)".to_string()
                    }
                    Err(e) => e.what,
                };
                return Err(FormatError::storage(
                    &path,
                    StorageError {
                        url: path.display().to_string(),
                        what,
                    },
                ));
            }
            Err(e) => return Err(FormatError::storage(&path, e)),
        };
        Self::parse(&path, &bytes, |_, file| object_shard_name(file).map(|_| ()))
    }

    /// `dataset.json`'s bytes, checked; `shard_ok` checks each shard's name.
    fn parse(
        path: &Path,
        bytes: &[u8],
        shard_ok: impl Fn(&DatasetManifest, &str) -> std::result::Result<(), String>,
    ) -> Result<DatasetManifest> {
        let m: DatasetManifest = serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            path: path.to_path_buf(),
            what: "dataset description",
            source,
        })?;
        if m.format_version != FORMAT_VERSION {
            return Err(FormatError::Version {
                path: path.to_path_buf(),
                found: m.format_version,
                supported: FORMAT_VERSION,
            });
        }
        m.params
            .validate()
            .map_err(|e| FormatError::malformed(path, format!("parameters: {e}")))?;
        for s in &m.shards {
            shard_ok(&m, &s.file).map_err(|what| FormatError::malformed(path, what))?;
        }
        Ok(m)
    }

    /// Writes `DIR/dataset.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(DATASET_FILE);
        crate::atomic_file::write_atomic(&path, &self.to_json()).map_err(FormatError::io(&path))
    }

    /// The description as `dataset.json` holds it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serialises")
    }

    /// The object name (below the dataset's prefix) of a shard named in the manifest.
    pub fn object_name(&self, file: &str) -> std::result::Result<String, String> {
        object_shard_name(file)
    }

    /// The path of a shard named in the manifest. Only a plain file name directly inside the
    /// dataset directory is accepted: no absolute paths, no `..`, no subdirectories, and no
    /// symbolic link that leads out of the directory.
    pub fn shard_path(&self, dir: &Path, file: &str) -> std::result::Result<PathBuf, String> {
        let p = Path::new(file);
        let mut components = p.components();
        let plain = matches!(
            (components.next(), components.next()),
            (Some(Component::Normal(_)), None)
        );
        if !plain || file.is_empty() {
            return Err(format!(
                "shard {file:?} is not a plain file name inside the dataset directory"
            ));
        }
        let full = dir.join(p);
        if let Ok(meta) = std::fs::symlink_metadata(&full) {
            if meta.file_type().is_symlink() {
                let target = std::fs::canonicalize(&full).map_err(|e| format!("shard {file:?}: {e}"))?;
                let root = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                if target.parent() != Some(root.as_path()) {
                    return Err(format!(
                        "shard {file:?} is a link that leads out of the dataset directory"
                    ));
                }
            }
        }
        Ok(full)
    }
}

/// A shard's name in an object store's dataset: a path below the dataset's prefix, of plain
/// components only (`shard-00000.gdt`, or `part-3/shard-00000.gdt` after a merge of parts):
/// nothing absolute, no `..`, so a description can only name objects of its own dataset.
fn object_shard_name(file: &str) -> std::result::Result<String, String> {
    let plain = !file.is_empty()
        && file
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
    if plain {
        Ok(file.to_string())
    } else {
        Err(format!(
            "shard {file:?} is not an object below the dataset's prefix"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[&str]) -> DatasetManifest {
        DatasetManifest {
            format_version: FORMAT_VERSION,
            writer: "test".into(),
            params: PackParams::default(),
            shards: files
                .iter()
                .map(|f| ShardInfo {
                    file: f.to_string(),
                    records: 1,
                    bytes: 1,
                })
                .collect(),
            labels: vec![],
            label_counts: BTreeMap::new(),
            totals: Totals::default(),
            skipped: BTreeMap::new(),
            source_root: None,
        }
    }

    #[test]
    fn round_trips_and_rejects_shards_outside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        manifest(&["shard-00000.gdt"]).save(dir.path()).unwrap();
        assert_eq!(
            DatasetManifest::load(dir.path()).unwrap(),
            manifest(&["shard-00000.gdt"])
        );
        for bad in ["/etc/passwd", "../x.gdt", "sub/x.gdt", "", ".."] {
            manifest(&[bad]).save(dir.path()).unwrap();
            let err = DatasetManifest::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains("not a plain file name"), "{bad}: {err}");
        }
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            std::fs::write(outside.path().join("x.gdt"), b"x").unwrap();
            std::os::unix::fs::symlink(outside.path().join("x.gdt"), dir.path().join("link.gdt")).unwrap();
            manifest(&["link.gdt"]).save(dir.path()).unwrap();
            let err = DatasetManifest::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains("leads out"), "{err}");
        }
    }

    #[test]
    fn object_store_shards_may_only_name_objects_below_the_prefix() {
        for ok in ["shard-00000.gdt", "part-3/shard-00001.gdt"] {
            assert_eq!(object_shard_name(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "/shard.gdt",
            "../x/shard.gdt",
            "a//b",
            "./shard.gdt",
            "part-0/../../x",
        ] {
            assert!(object_shard_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_foreign_version_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = manifest(&[]);
        m.format_version = 99;
        m.save(dir.path()).unwrap();
        let err = DatasetManifest::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("version 99") && err.contains("dataset.json"),
            "{err}"
        );
    }
}
