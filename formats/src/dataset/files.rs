//! The files of a dataset directory and which of them belong to gdt: the one place that
//! decides what a writer may replace, a resume may delete and `--force` may remove.

use std::path::Path;

use crate::error::FileError;

/// The dataset's description.
pub const DATASET_FILE: &str = "dataset.json";
/// One JSON line per input: packed or skipped, with the reason.
pub const REPORT_FILE: &str = "pack-report.jsonl";
/// The packer's resume point while a pack is in progress (and after, marked complete).
pub const STATE_FILE: &str = ".pack-state.json";

/// The file name of shard `index` in a dataset directory, as every writer names it.
pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:05}.gdt")
}

/// The index of a file named like a shard (`shard-NNNNN.gdt`), if it is one.
pub fn shard_index(name: &str) -> Option<usize> {
    name.strip_prefix("shard-")?.strip_suffix(".gdt")?.parse().ok()
}

/// Whether a file name has the shape of a shard's.
pub fn is_shard_file(name: &str) -> bool {
    name.starts_with("shard-") && name.ends_with(".gdt")
}

/// Whether `name` is a file a gdt writer puts in a dataset directory.
pub fn is_dataset_file(name: &str) -> bool {
    is_shard_file(name) || [DATASET_FILE, REPORT_FILE, STATE_FILE].contains(&name)
}

/// Whether `name` is the temporary name (see [`crate::atomic_file::temp_path`]) of a file a
/// gdt writer puts in a dataset directory.
pub fn is_dataset_temporary(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .is_some_and(is_dataset_file)
}

/// Removes every dataset file and temporary from `dir` (what `--force` replaces), and
/// nothing else: a user's own files beside a dataset stay.
pub fn remove_dataset_files(dir: &Path) -> Result<(), FileError> {
    let entries = std::fs::read_dir(dir).map_err(FileError::at(dir))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_dataset_file(&name) || name.ends_with(".tmp") {
            std::fs::remove_file(e.path()).map_err(FileError::at(&e.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_round_trip() {
        assert_eq!(shard_file_name(7), "shard-00007.gdt");
        assert_eq!(shard_index(&shard_file_name(123)), Some(123));
        assert_eq!(shard_index("shard-x.gdt"), None);
        assert!(is_shard_file("shard-x.gdt") && !is_shard_file("dataset.json"));
    }

    #[test]
    fn only_what_a_writer_makes_is_ours() {
        for ours in [
            "shard-00001.gdt",
            "dataset.json",
            "pack-report.jsonl",
            ".pack-state.json",
        ] {
            assert!(is_dataset_file(ours), "{ours}");
            assert!(is_dataset_temporary(&format!(".{ours}.tmp")), "{ours}");
        }
        for theirs in ["notes.txt", ".draft.tex.tmp", "dataset.json.bak"] {
            assert!(
                !is_dataset_file(theirs) && !is_dataset_temporary(theirs),
                "{theirs}"
            );
        }
    }
}
