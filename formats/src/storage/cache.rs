//! A local cache of a remote dataset's shards (`--cache-dir`), for datasets that fit on a
//! local disk: once a shard is here, it is read as a local one (memory-mapped) from the next
//! time the dataset is opened on. Shards are downloaded whole, one at a time, in the
//! background while the loader reads by ranges; the cache never holds more than its bound
//! (by default half the free space of its file system when the dataset is opened), and makes
//! room by deleting the shards read least recently, of any dataset in it.
//!
//! Layout: `DIR/<xxh3 of the dataset's URL>/<shard name>` and `.../url` (the URL, for people).
//! A shard is written under a temporary name and renamed when complete, and checked like any
//! local shard when it is opened; one that fails is deleted and read remotely again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::error::FileError;

use super::object::ObjectDir;

/// One dataset's part of a cache directory.
pub struct DiskCache {
    root: PathBuf,
    dir: PathBuf,
    bound: u64,
    stop: Arc<AtomicBool>,
    filler: Option<JoinHandle<()>>,
}

/// The default bound: half of what the file system holding `root` has free.
fn default_bound(root: &Path) -> u64 {
    free_bytes(root).map_or(10 << 30, |free| free / 2)
}

#[cfg(unix)]
fn free_bytes(root: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid C string and a zeroed out-parameter of the right type.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_root: &Path) -> Option<u64> {
    None
}

impl DiskCache {
    /// The part of `root` (created if missing) for the dataset at `url`, holding at most
    /// `bound` bytes in all (every dataset of `root` counted).
    pub fn new(root: &Path, url: &str, bound: Option<u64>) -> Result<DiskCache, FileError> {
        let dir = root.join(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(url.as_bytes())));
        std::fs::create_dir_all(&dir).map_err(FileError::at(&dir))?;
        let label = dir.join("url");
        std::fs::write(&label, url).map_err(FileError::at(&label))?;
        Ok(DiskCache {
            root: root.to_path_buf(),
            bound: bound.unwrap_or_else(|| default_bound(root)),
            dir,
            stop: Arc::new(AtomicBool::new(false)),
            filler: None,
        })
    }

    /// Where shard `name` is kept.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name.replace('/', "__"))
    }

    /// The cached copy of shard `name`, when it is there whole (`len` bytes); marked as read.
    pub fn get(&self, name: &str, len: u64) -> Option<PathBuf> {
        let path = self.path(name);
        let meta = std::fs::metadata(&path).ok()?;
        if meta.len() != len {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let _ = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(path)
    }

    /// Drops a cached shard that failed its checks.
    pub fn discard(&self, name: &str) {
        let _ = std::fs::remove_file(self.path(name));
    }

    /// Downloads the `shards` (name, length) not cached yet, one at a time on a thread of
    /// its own, making room within the bound; stops when the cache is dropped.
    pub fn fill(&mut self, objects: Arc<ObjectDir>, shards: Vec<(String, u64)>) {
        let (stop, root, bound) = (self.stop.clone(), self.root.clone(), self.bound);
        let paths: Vec<(String, u64, PathBuf)> = shards
            .into_iter()
            .filter(|(name, len)| self.get(name, *len).is_none())
            .map(|(name, len)| {
                let path = self.path(&name);
                (name, len, path)
            })
            .collect();
        let handle = std::thread::Builder::new()
            .name("gdt-cache-fill".into())
            .spawn(move || {
                for (name, len, path) in paths {
                    if stop.load(Ordering::Acquire) || !make_room(&root, bound, len) {
                        return;
                    }
                    if objects.download(&name, &path).is_err() {
                        return; // the ranged reads report storage errors; the cache just stops
                    }
                }
            });
        self.filler = handle.ok();
    }
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.filler.take() {
            let _ = h.join();
        }
    }
}

/// Deletes the least recently read shards under `root` until `bytes` more fit within
/// `bound`; false when they cannot fit at all.
fn make_room(root: &Path, bound: u64, bytes: u64) -> bool {
    if bytes > bound {
        return false;
    }
    let mut files: Vec<(SystemTime, u64, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let keep = meta.is_file() && e.file_name() != "url";
            keep.then_some(())?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total + bytes <= bound {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    total + bytes <= bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_made_by_deleting_the_least_recently_read_shards() {
        let root = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(root.path(), "s3://b/d", Some(300)).unwrap();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            std::fs::write(cache.path(name), vec![0u8; 100]).unwrap();
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .append(true)
                .open(cache.path(name))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        // Reading "a" makes it the most recent: "b" goes first.
        assert!(cache.get("a", 100).is_some());
        assert!(make_room(root.path(), 300, 100));
        assert!(
            cache.get("b", 100).is_none() && cache.get("a", 100).is_some() && cache.get("c", 100).is_some()
        );
        assert!(!make_room(root.path(), 300, 400), "larger than the bound");
        // A copy of the wrong length is not a cached shard.
        assert!(cache.get("c", 99).is_none() && !cache.path("c").exists());
    }
}
