//! `gdt copy`: a packed dataset from a local directory into an object store, or back (onto a
//! node's local disk before a long run). Only what `dataset.json` names is copied, shards
//! first and `dataset.json` last, so the copy is visible only complete; each shard is
//! checked against the description's size before it counts.

use std::path::{Path, PathBuf};

use super::files::{DATASET_FILE, REPORT_FILE};
use super::manifest::DatasetManifest;
use crate::error::{FileError, FormatError, Result};
use crate::storage::{Location, ObjectDir};

/// What a copy moved.
#[derive(Clone, Debug)]
pub struct Copied {
    /// The dataset's description.
    pub manifest: DatasetManifest,
    /// Bytes of shards copied.
    pub bytes: u64,
}

fn refused(path: &Path, what: &str) -> FormatError {
    FormatError::Refused {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// What `progress` is told after each shard: its name, its bytes, and the bytes of every
/// shard of the dataset (the description's total, known once it is read).
pub type Progress<'a> = dyn FnMut(&str, u64, u64) + 'a;

/// Copies the dataset at `from` to `to`: one of them a local directory, the other an
/// object-store URL. Refuses a destination that holds a dataset already.
pub fn copy(from: &Path, to: &Path, progress: &mut Progress) -> Result<Copied> {
    let storage = |p: &Path| Location::of(p).map_err(|e| FormatError::storage(p, e));
    match (storage(from)?, storage(to)?) {
        (Location::Local(src), Location::Object(dst)) => upload(&src, &dst, progress),
        (Location::Object(src), Location::Local(dst)) => download(&src, &dst, progress),
        (Location::Local(_), Location::Local(_)) => Err(refused(
            to,
            "both places are local: copy the directory with cp -r (or hard-link its shards)",
        )),
        (Location::Object(_), Location::Object(_)) => Err(refused(
            to,
            "both places are object stores: copy with the store's own tools (server-side), or through a local copy",
        )),
    }
}

fn upload(src: &Path, dst: &ObjectDir, progress: &mut Progress) -> Result<Copied> {
    let url = PathBuf::from(dst.url());
    let manifest = DatasetManifest::load(src)?;
    if dst
        .probe(DATASET_FILE)
        .map_err(|e| FormatError::storage(&url, e))?
        .is_some()
    {
        return Err(refused(
            &url,
            "holds a dataset already; copy into an empty prefix",
        ));
    }
    let mut bytes = 0;
    for info in &manifest.shards {
        let path = manifest
            .shard_path(src, &info.file)
            .map_err(|what| FormatError::malformed(&src.join(DATASET_FILE), what))?;
        let len = std::fs::metadata(&path).map_err(FileError::at(&path))?.len();
        if len != info.bytes {
            return Err(FormatError::malformed(
                &path,
                format!("holds {len} bytes, dataset.json says {}", info.bytes),
            ));
        }
        dst.upload(&info.file, &path)
            .map_err(|e| FormatError::storage(&url, e))?;
        bytes += len;
        progress(&info.file, len, manifest.totals.stored_bytes);
    }
    let report = src.join(REPORT_FILE);
    if report.exists() {
        dst.upload(REPORT_FILE, &report)
            .map_err(|e| FormatError::storage(&url, e))?;
    }
    dst.write(DATASET_FILE, manifest.to_json())
        .map_err(|e| FormatError::storage(&url, e))?;
    Ok(Copied { manifest, bytes })
}

fn download(src: &ObjectDir, dst: &Path, progress: &mut Progress) -> Result<Copied> {
    let manifest = DatasetManifest::load_object(src)?;
    if dst.join(DATASET_FILE).exists() {
        return Err(refused(
            dst,
            "holds a dataset already; copy into an empty directory",
        ));
    }
    std::fs::create_dir_all(dst).map_err(FileError::at(dst))?;
    let url = PathBuf::from(src.url());
    let mut local = manifest.clone();
    let mut bytes = 0;
    for (k, info) in manifest.shards.iter().enumerate() {
        let name = manifest
            .object_name(&info.file)
            .map_err(|what| FormatError::malformed(&url, what))?;
        // A merge's description names `part-i/shard-...`: locally every shard is a plain
        // file name, so they are numbered anew.
        let file = super::files::shard_file_name(k);
        let path = dst.join(&file);
        src.download(&name, &path)
            .map_err(|e| FormatError::storage(&url, e))?;
        let len = std::fs::metadata(&path).map_err(FileError::at(&path))?.len();
        if len != info.bytes {
            return Err(FormatError::malformed(
                &path,
                format!("{len} bytes came, dataset.json says {}", info.bytes),
            ));
        }
        local.shards[k].file = file;
        bytes += len;
        progress(&name, len, manifest.totals.stored_bytes);
    }
    if let Some(report) = src.read(REPORT_FILE).map_err(|e| FormatError::storage(&url, e))? {
        let path = dst.join(REPORT_FILE);
        crate::atomic_file::write_atomic(&path, &report).map_err(FileError::at(&path))?;
    }
    local.save(dst)?;
    Ok(Copied {
        manifest: local,
        bytes,
    })
}
