//! Where a dataset lives: a local directory, or a prefix in an object store (S3 and
//! S3-compatible stores such as Ceph RGW, MinIO, Garage or R2; GCS; Azure), named by a URL
//! wherever gdt takes a dataset path: `s3://bucket/k400`.
//!
//! - [`object`]: [`ObjectDir`], a prefix of an object store (whole objects, ranged reads,
//!   uploads, listings), on the Apache Arrow project's `object_store` client;
//! - [`ranges`]: a shard read by byte ranges, with read-ahead and a bounded memory cache;
//! - [`cache`]: a local disk cache of whole shards (`--cache-dir`);
//! - `runtime`: the async runtime the clients run on.
//!
//! How a dataset maps onto objects: `formats/FORMAT.md`.

pub mod cache;
pub mod object;
pub mod ranges;
mod runtime;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use object::ObjectDir;
pub use ranges::{RangeCache, RemoteFile};

/// Why an object-store operation failed, after retries: the object's URL and the cause.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{url}: {what}")]
pub struct StorageError {
    /// The object (or prefix).
    pub url: String,
    /// What the store or the client said.
    pub what: String,
}

/// The URL schemes that name an object store.
const SCHEMES: [&str; 6] = ["s3://", "s3a://", "gs://", "az://", "abfs://", "azure://"];

/// A dataset's place: a local path, or an object-store prefix.
pub enum Location {
    /// A directory on a local (or mounted) file system.
    Local(PathBuf),
    /// A prefix in an object store.
    Object(Arc<ObjectDir>),
}

impl Location {
    /// Whether `path` is an object-store URL (`s3://...`, `gs://...`, `az://...`).
    pub fn is_url(path: &Path) -> bool {
        path.to_str()
            .is_some_and(|s| SCHEMES.iter().any(|p| s.starts_with(p)))
    }

    /// `path` as gdt's commands take it: an object-store URL or a local path.
    pub fn of(path: &Path) -> Result<Location, StorageError> {
        match path.to_str() {
            Some(s) if Location::is_url(path) => Ok(Location::Object(Arc::new(ObjectDir::open(s)?))),
            _ => Ok(Location::Local(path.to_path_buf())),
        }
    }
}

/// Requests made and bytes fetched from object stores by this process so far.
pub fn fetched() -> (u64, u64) {
    (
        object::REQUESTS.load(Ordering::Relaxed),
        object::BYTES.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for url in ["s3://bucket/k400", "gs://b/x", "az://container/ds"] {
            assert!(Location::is_url(Path::new(url)), "{url}");
        }
        for path in ["data/k400", "/mnt/s3/k400", "s3:/x", "./s3://x"] {
            assert!(!Location::is_url(Path::new(path)), "{path}");
        }
        assert!(matches!(
            Location::of(Path::new("data")).unwrap(),
            Location::Local(_)
        ));
    }

    #[test]
    fn a_store_without_credentials_for_its_endpoint_is_one_clear_line() {
        // Set for this process only; the other tests here do not read the AWS variables.
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
        std::env::remove_var("AWS_ACCESS_KEY_ID");
        std::env::remove_var("AWS_SECRET_ACCESS_KEY");
        let e = ObjectDir::open("s3://bucket/k400").unwrap_err().to_string();
        std::env::remove_var("AWS_ENDPOINT_URL");
        assert!(
            e.starts_with("s3://bucket/k400: no credentials") && !e.contains('\n'),
            "{e}"
        );
    }
}
