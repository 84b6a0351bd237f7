//! The output of a pack: a local directory, or an object-store prefix written through a
//! local staging directory (see [`super::upload`]); where a run starts (fresh, resumed or
//! already complete) and what an interrupted run leaves to delete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gdt_formats::dataset::{
    is_dataset_file, is_dataset_temporary, remove_dataset_files, shard_index, STATE_FILE,
};
use gdt_formats::storage::{Location, ObjectDir};
use gdt_formats::FileError;

use super::state::{Fingerprint, PackState};
use super::upload::Uploader;
use super::{PackConfig, PackError};

/// Where a pack writes.
pub(super) struct Output {
    /// The directory the packer writes into: the dataset itself, or the staging directory
    /// of a pack into an object store.
    pub dir: PathBuf,
    uploader: Option<Uploader>,
}

impl Output {
    /// Opens the pack's output and decides where to start (see [`prepare`]).
    pub(super) fn open(
        config: &PackConfig,
        fingerprint: &Fingerprint,
    ) -> Result<(Output, PackState), PackError> {
        let out = &config.output;
        let objects = match Location::of(out)? {
            Location::Local(dir) => {
                let st = prepare(&dir, fingerprint, config.force)?;
                return Ok((Output { dir, uploader: None }, st));
            }
            Location::Object(objects) => objects,
        };
        let staging = staging_dir(config.staging.as_deref(), objects.url());
        let st = prepare_remote(&objects, &staging, fingerprint, config.force)?;
        let uploader = (!st.complete).then(|| Uploader::new(objects, &staging, st.shards.len()));
        Ok((
            Output {
                dir: staging,
                uploader,
            },
            st,
        ))
    }

    /// Records `st` (after a shard completed): saved here, and, for an object store, queued
    /// behind the shard's upload.
    pub(super) fn save(&mut self, st: &PackState) -> Result<(), PackError> {
        st.save(&self.dir)?;
        if let Some(u) = &mut self.uploader {
            u.publish(st.shards.len(), st.to_json())?;
        }
        Ok(())
    }

    /// Records the complete pack, whose report and `dataset.json` are written in `dir`.
    pub(super) fn finish(mut self, st: &PackState) -> Result<(), PackError> {
        match self.uploader.take() {
            Some(u) => u.finish(st.shards.len(), st.to_json()),
            None => st.save(&self.dir),
        }
    }
}

/// Where a pack into `url` stages its shards (about three at a time): a directory of its
/// own below `parent` (`--staging`; default: the system's temporary directory), which the
/// pack empties at its start and removes when it completes, so that nothing else in the
/// directory a user named is ever touched.
fn staging_dir(parent: Option<&Path>, url: &str) -> PathBuf {
    parent
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
        .join(format!(
            "gdt-pack-{:016x}",
            xxhash_rust::xxh3::xxh3_64(url.as_bytes())
        ))
}

/// [`prepare`] for an object store: the store's state is the truth (the staging directory
/// may be another machine's, or stale), so it is copied into the emptied staging directory
/// before the local rules run; a fresh pack's state is uploaded before anything else.
fn prepare_remote(
    objects: &Arc<ObjectDir>,
    staging: &Path,
    fingerprint: &Fingerprint,
    force: bool,
) -> Result<PackState, PackError> {
    // The first request gives up quickly: a wrong endpoint or bad credentials are one line.
    let remote = objects.probe(STATE_FILE)?;
    std::fs::create_dir_all(staging).map_err(FileError::at(staging))?;
    remove_dataset_files(staging)?;
    if force {
        for (name, _) in objects.list()? {
            if is_dataset_file(&name) {
                objects.delete(&name)?;
            }
        }
    } else if let Some(bytes) = &remote {
        let path = staging.join(STATE_FILE);
        gdt_formats::atomic_file::write_atomic(&path, bytes).map_err(FileError::at(&path))?;
    } else if let Some((name, _)) = objects.list()?.into_iter().next() {
        return Err(PackError::Refused {
            path: PathBuf::from(objects.url()),
            what: format!(
                "holds objects ({name}, ...) and no gdt pack in progress; choose an empty prefix or pass --force"
            ),
        });
    }
    let fresh = force || remote.is_none();
    // A refusal names the store, not the staging directory.
    let st = prepare(staging, fingerprint, false).map_err(|e| match e {
        PackError::Refused { what, .. } => PackError::Refused {
            path: PathBuf::from(objects.url()),
            what,
        },
        other => other,
    })?;
    if fresh {
        objects.write(STATE_FILE, st.to_json())?;
    }
    Ok(st)
}

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
