//! Where a dataset's shards are opened from: a local directory (memory-mapped files), or an
//! object-store prefix (ranged reads, with an optional local cache of whole shards). Both
//! [`super::Dataset::open_with`] and [`super::verify`] open shards through it, so a dataset
//! is checked the same way wherever it lives.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::files::DATASET_FILE;
use super::manifest::DatasetManifest;
use crate::error::{FormatError, Result};
use crate::shard::Shard;
use crate::storage::cache::DiskCache;
use crate::storage::{Location, ObjectDir, RangeCache, RemoteFile};

/// How a dataset is opened.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// A local directory that keeps a remote dataset's shards (`--cache-dir`): from the
    /// second open on, cached shards are read as local files. None by default: a remote
    /// dataset is read by ranges only. Ignored for a local dataset.
    pub cache_dir: Option<PathBuf>,
    /// The cache's bound in bytes (every dataset in the directory counted); by default half
    /// of what its file system has free when the dataset is opened.
    pub cache_bytes: Option<u64>,
}

/// Shards a remote dataset opens at once: each open is three small ranged requests, so a
/// dataset of a thousand shards opens in about a second rather than a minute.
const OPENS_AT_ONCE: usize = 32;

/// A dataset's place, ready to open its shards.
pub(crate) enum Opener {
    Local(PathBuf),
    Remote {
        objects: Arc<ObjectDir>,
        ranges: Arc<RangeCache>,
        cache: Option<DiskCache>,
    },
}

impl Opener {
    /// Reads `dir`'s `dataset.json` (a path or an object-store URL).
    pub(crate) fn new(dir: &Path, options: &OpenOptions) -> Result<(Opener, DatasetManifest)> {
        match Location::of(dir).map_err(|e| FormatError::storage(dir, e))? {
            Location::Local(dir) => {
                let manifest = DatasetManifest::load(&dir)?;
                Ok((Opener::Local(dir), manifest))
            }
            Location::Object(objects) => {
                let manifest = DatasetManifest::load_object(&objects)?;
                let cache = match &options.cache_dir {
                    Some(root) => Some(DiskCache::new(root, objects.url(), options.cache_bytes)?),
                    None => None,
                };
                let ranges = Arc::new(RangeCache::default());
                Ok((
                    Opener::Remote {
                        objects,
                        ranges,
                        cache,
                    },
                    manifest,
                ))
            }
        }
    }

    /// Shard `i` of `manifest`: the cached copy when there is a good one, else the remote
    /// object (or the local file).
    fn open(&self, manifest: &DatasetManifest, i: usize) -> Result<Shard> {
        let info = &manifest.shards[i];
        match self {
            Opener::Local(dir) => {
                let path = manifest
                    .shard_path(dir, &info.file)
                    .map_err(|what| FormatError::malformed(&dir.join(DATASET_FILE), what))?;
                Shard::open(&path)
            }
            Opener::Remote {
                objects,
                ranges,
                cache,
            } => {
                let name = manifest
                    .object_name(&info.file)
                    .map_err(|what| FormatError::malformed(Path::new(&objects.url_of(DATASET_FILE)), what))?;
                if let Some(path) = cache.as_ref().and_then(|c| c.get(&name, info.bytes)) {
                    match Shard::open(&path) {
                        Ok(shard) if super::reader::mismatch(manifest, info, &shard).is_none() => {
                            return Ok(shard)
                        }
                        _ => cache.as_ref().expect("a cache").discard(&name),
                    }
                }
                let file = RemoteFile::new(objects.clone(), &name, info.bytes, i as u32, ranges.clone());
                Shard::open_remote(file)
            }
        }
    }

    /// Every shard of `manifest`, in its order: remote ones opened [`OPENS_AT_ONCE`] at a time.
    pub(crate) fn open_all(&self, manifest: &DatasetManifest) -> Vec<Result<Shard>> {
        let n = manifest.shards.len();
        if matches!(self, Opener::Local(_)) || n < 2 {
            return (0..n).map(|i| self.open(manifest, i)).collect();
        }
        let next = AtomicUsize::new(0);
        let mut opened: Vec<(usize, Result<Shard>)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..OPENS_AT_ONCE.min(n))
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                return mine;
                            }
                            mine.push((i, self.open(manifest, i)));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a shard opener does not panic"))
                .collect()
        });
        opened.sort_by_key(|(i, _)| *i);
        opened.into_iter().map(|(_, shard)| shard).collect()
    }

    /// Starts copying the remote shards not read from the cache into it, in the background.
    pub(crate) fn fill_cache(&mut self, manifest: &DatasetManifest, shards: &[Shard]) {
        if let Opener::Remote {
            objects,
            cache: Some(cache),
            ..
        } = self
        {
            let missing = manifest
                .shards
                .iter()
                .zip(shards)
                .filter(|(_, shard)| shard.is_remote())
                .filter_map(|(info, _)| Some((manifest.object_name(&info.file).ok()?, info.bytes)))
                .collect();
            cache.fill(objects.clone(), missing);
        }
    }

    /// The local cache, to keep while the dataset is open (its filler stops when dropped).
    pub(crate) fn into_cache(self) -> Option<DiskCache> {
        match self {
            Opener::Remote { cache, .. } => cache,
            Opener::Local(_) => None,
        }
    }
}
