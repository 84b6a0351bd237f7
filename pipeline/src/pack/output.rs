//! The output directory of a pack: where a run starts (fresh, resumed or already complete)
//! and what an interrupted run leaves to delete.

use std::path::Path;

use gdt_formats::dataset::{is_dataset_temporary, remove_dataset_files, shard_index};
use gdt_formats::FileError;

use super::state::{Fingerprint, PackState};
use super::PackError;

/// Decides where to start: fresh, resumed, or already complete. Refuses to touch a
/// directory it does not recognise, or to resume with different settings.
pub(super) fn prepare(out: &Path, fingerprint: &Fingerprint, force: bool) -> Result<PackState, PackError> {
    std::fs::create_dir_all(out).map_err(FileError::at(out))?;
    // A fresh pack records its state before writing anything else, so a run killed at any
    // later moment leaves a directory the next run recognises and resumes.
    let start_fresh = || -> Result<PackState, PackError> {
        let st = PackState {
            fingerprint: fingerprint.clone(),
            shards: vec![],
            next_input: 0,
            outcomes: vec![],
            complete: false,
        };
        st.save(out)?;
        Ok(st)
    };
    if force {
        remove_dataset_files(out)?;
        return start_fresh();
    }
    match PackState::load(out)? {
        Some(st) => {
            if let Some(what) = st.fingerprint.difference(fingerprint) {
                return Err(PackError::Refused {
                    path: out.to_path_buf(),
                    what: format!(
                        "holds a pack made with {what}; refusing to mix them. Use the original settings to resume, or --force to start over"
                    ),
                });
            }
            if !st.complete {
                remove_partial_shards(out, st.shards.len());
            }
            Ok(st)
        }
        None => {
            let entries = std::fs::read_dir(out).map_err(FileError::at(out))?;
            // Only a run killed while writing its first state file leaves our temporary
            // behind with no state beside it; anything else belongs to someone else.
            let foreign = entries
                .flatten()
                .any(|e| !is_dataset_temporary(&e.file_name().to_string_lossy()));
            if foreign {
                return Err(PackError::Refused {
                    path: out.to_path_buf(),
                    what: "is not empty and holds no gdt pack in progress; choose an empty directory or pass --force".into(),
                });
            }
            remove_partial_shards(out, 0);
            start_fresh()
        }
    }
}

/// Removes shards numbered `from` and up, and every temporary file: what a run that
/// stopped after completing `from` shards may have left.
pub(super) fn remove_partial_shards(out: &Path, from: usize) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let numbered = shard_index(&name).is_some_and(|n| n >= from);
        if numbered || name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
