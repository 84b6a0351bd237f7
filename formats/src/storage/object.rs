//! A prefix in an object store, as gdt uses it: whole small objects (`dataset.json`, the pack
//! state), ranged reads of shards, shard uploads (multipart when large), listings.
//!
//! The client is the Apache Arrow project's `object_store` (S3 and S3-compatible stores, GCS,
//! Azure, with one API): credentials, region and endpoint come the way the ecosystem's tools
//! take them (`AWS_*`, `GOOGLE_*`, `AZURE_*` variables). Requests are retried with
//! exponential backoff for `GDT_STORAGE_RETRY_SECONDS` (60) before they fail naming the
//! object; a server that is gone is reported within that bound, never waited on forever.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, ObjectStoreScheme, RetryConfig, WriteMultipart,
};

use super::runtime::block_on;
use super::StorageError;

/// Requests made and bytes fetched from object stores by this process.
pub(crate) static REQUESTS: AtomicU64 = AtomicU64::new(0);
pub(crate) static BYTES: AtomicU64 = AtomicU64::new(0);

/// The size of an upload's parts (`GDT_STORAGE_PART_MB`, 16; S3 takes 5 at least); objects
/// larger than two parts are uploaded in parts.
fn part_size() -> usize {
    std::env::var("GDT_STORAGE_PART_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(16)
        .max(5)
        << 20
}

/// A prefix of an object store (`s3://bucket/k400`): where one dataset's objects are.
pub struct ObjectDir {
    /// For requests that may wait for a slow server (retries up to the long bound).
    store: Arc<dyn ObjectStore>,
    /// For the first request of a command, which answers quickly whether the store is there.
    probe: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
    /// Settings given beside the environment's (see [`ObjectDir::open_with`]).
    options: Vec<(String, String)>,
}

impl std::fmt::Debug for ObjectDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// How long a request is retried before it fails (`GDT_STORAGE_RETRY_SECONDS`).
fn retry_seconds() -> f64 {
    std::env::var("GDT_STORAGE_RETRY_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s: &f64| *s >= 0.0)
        .unwrap_or(60.0)
}

fn retry(seconds: f64) -> RetryConfig {
    RetryConfig {
        max_retries: 10,
        retry_timeout: Duration::from_secs_f64(seconds),
        ..RetryConfig::default()
    }
}

fn client(request_seconds: f64) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs_f64(request_seconds.max(5.0)))
}

/// The S3 endpoints the environment names (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT`, in that order; empty ones left out): a store of one's own rather than AWS.
pub fn s3_endpoints() -> impl Iterator<Item = String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .filter(|e| !e.is_empty())
}

/// Whether the environment names an S3 endpoint over plain HTTP (a store on the cluster or
/// on this machine): then HTTP is allowed, as the endpoint asks for it.
fn http_endpoint() -> bool {
    s3_endpoints().any(|e| e.starts_with("http://"))
}

/// Refuses an S3 store with a custom endpoint and no credentials in the environment at once,
/// rather than after the instance-metadata lookup times out.
fn s3_credentials_given(options: &[(String, String)]) -> bool {
    if options.iter().any(|(k, _)| k == "aws_access_key_id") {
        return true;
    }
    let set = |v: &str| std::env::var(v).is_ok_and(|x| !x.is_empty());
    s3_endpoints().next().is_none()
        || (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"))
        || set("AWS_SKIP_SIGNATURE")
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
}

fn build(
    url: &url::Url,
    scheme: &ObjectStoreScheme,
    seconds: f64,
    given: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>, String> {
    let (options, retry) = (client(seconds), retry(seconds));
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, v) in given {
                b = b.with_config(k.parse().map_err(|e: object_store::Error| e.to_string())?, v);
            }
            let http = http_endpoint()
                || given
                    .iter()
                    .any(|(k, v)| k == "aws_endpoint" && v.starts_with("http://"));
            Arc::new(
                b.with_client_options(options.with_allow_http(http))
                    .with_retry(retry)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        }
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        other => {
            return Err(format!(
                "{other:?} URLs are not a dataset location (use s3://, gs:// or az://)"
            ))
        }
    };
    Ok(store)
}

impl ObjectDir {
    /// The prefix `url` names (`s3://bucket/prefix`, `gs://...`, `az://...`), configured from
    /// the environment.
    pub fn open(url: &str) -> Result<ObjectDir, StorageError> {
        ObjectDir::open_with(url, &[])
    }

    /// [`ObjectDir::open`] with S3 settings given beside the environment's, by the client's
    /// names (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`, `aws_region`):
    /// for a program that talks to several stores at once.
    pub fn open_with(url: &str, options: &[(String, String)]) -> Result<ObjectDir, StorageError> {
        let url = url.trim_end_matches('/');
        let fail = |what: String| StorageError {
            url: url.to_string(),
            what,
        };
        let parsed = url::Url::parse(url).map_err(|e| fail(format!("not a URL: {e}")))?;
        let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| fail(e.to_string()))?;
        if scheme == ObjectStoreScheme::AmazonS3 && !s3_credentials_given(options) {
            return Err(fail(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the endpoint in AWS_ENDPOINT_URL \
                 (or AWS_SKIP_SIGNATURE=true for a public bucket)"
                    .into(),
            ));
        }
        let seconds = retry_seconds();
        Ok(ObjectDir {
            store: build(&parsed, &scheme, seconds, options).map_err(&fail)?,
            probe: build(&parsed, &scheme, seconds.min(5.0), options).map_err(&fail)?,
            prefix,
            url: url.to_string(),
            options: options.to_vec(),
        })
    }

    /// The URL of the prefix.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of object `name` (a path below the prefix).
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    fn key(&self, name: &str) -> Key {
        name.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |k, part| k.join(part))
    }

    fn error(&self, name: &str, e: object_store::Error) -> StorageError {
        StorageError {
            url: self.url_of(name),
            what: cause(&e),
        }
    }

    /// The whole object `name`, or `None` when there is none.
    pub fn read(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        self.read_with(&self.store, name)
    }

    /// [`ObjectDir::read`] that gives up quickly: the first request a command makes, so a
    /// wrong endpoint, a missing bucket or bad credentials are one clear line at once.
    pub fn probe(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        self.read_with(&self.probe, name)
    }

    fn read_with(&self, store: &Arc<dyn ObjectStore>, name: &str) -> Result<Option<Bytes>, StorageError> {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        let key = self.key(name);
        let got = block_on(async { store.get(&key).await?.bytes().await });
        match got {
            Ok(b) => {
                BYTES.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok(Some(b))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// Bytes `offset..offset + len` of `name`; a response of another length (a truncated
    /// transfer) is retried like a failed one.
    pub async fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        let key = self.key(name);
        let mut last = String::new();
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            match self.store.get_range(&key, offset..offset + len).await {
                Ok(b) if b.len() as u64 == len => {
                    BYTES.fetch_add(len, Ordering::Relaxed);
                    return Ok(b);
                }
                Ok(b) => last = format!("bytes {offset}..{}: {} bytes came back", offset + len, b.len()),
                // The client has retried transport errors already, with backoff.
                Err(e) => return Err(self.error(name, e)),
            }
        }
        Err(StorageError {
            url: self.url_of(name),
            what: last,
        })
    }

    /// The size of `name`.
    pub async fn size(&self, name: &str) -> Result<u64, StorageError> {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        let meta = self
            .store
            .head(&self.key(name))
            .await
            .map_err(|e| self.error(name, e))?;
        Ok(meta.size)
    }

    /// Writes `name` whole (atomically: readers see the old object or the new one).
    pub fn write(&self, name: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        block_on(self.store.put(&self.key(name), bytes.into()))
            .map(|_| ())
            .map_err(|e| self.error(name, e))
    }

    /// Uploads the local file `path` as `name`: in parts when it is large, so no upload holds
    /// a whole shard in memory.
    pub fn upload(&self, name: &str, path: &Path) -> Result<(), StorageError> {
        let io = |e: std::io::Error| StorageError {
            url: self.url_of(name),
            what: format!("reading {}: {e}", path.display()),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        let part = part_size();
        if len <= 2 * part as u64 {
            return self.write(name, std::fs::read(path).map_err(io)?);
        }
        let key = self.key(name);
        block_on(async {
            let upload = self
                .store
                .put_multipart(&key)
                .await
                .map_err(|e| self.error(name, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
            let sent = async {
                let mut file = std::fs::File::open(path).map_err(io)?;
                let mut buf = vec![0u8; part];
                loop {
                    let n = std::io::Read::read(&mut file, &mut buf).map_err(io)?;
                    if n == 0 {
                        return Ok(());
                    }
                    writer
                        .wait_for_capacity(4)
                        .await
                        .map_err(|e| self.error(name, e))?;
                    writer.write(&buf[..n]);
                    REQUESTS.fetch_add(1, Ordering::Relaxed);
                }
            }
            .await;
            match sent {
                Ok(()) => writer.finish().await.map(|_| ()).map_err(|e| self.error(name, e)),
                Err(e) => {
                    // The parts sent so far would otherwise be kept (and billed) by the store.
                    let _ = writer.abort().await;
                    Err(e)
                }
            }
        })
    }

    /// Downloads `name` whole into the local file `path` (written under a temporary name and
    /// renamed when complete), streaming.
    pub fn download(&self, name: &str, path: &Path) -> Result<(), StorageError> {
        use std::io::Write;
        let io = |e: std::io::Error| StorageError {
            url: self.url_of(name),
            what: format!("writing {}: {e}", path.display()),
        };
        // The project's temporary name: `remove_dataset_files` and the cache's eviction know it.
        let tmp = crate::atomic_file::temp_path(path);
        let key = self.key(name);
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        let result = block_on(async {
            let mut stream = self
                .store
                .get(&key)
                .await
                .map_err(|e| self.error(name, e))?
                .into_stream();
            let mut file = std::fs::File::create(&tmp).map_err(io)?;
            while let Some(chunk) = stream.try_next().await.map_err(|e| self.error(name, e))? {
                BYTES.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                file.write_all(&chunk).map_err(io)?;
            }
            file.sync_all().map_err(io)
        });
        match result {
            Ok(()) => std::fs::rename(&tmp, path).map_err(io),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Deletes `name` (no error when it is not there).
    pub fn delete(&self, name: &str) -> Result<(), StorageError> {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        match block_on(self.store.delete(&self.key(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// Every object below the prefix: its name relative to the prefix, and its size.
    pub fn list(&self) -> Result<Vec<(String, u64)>, StorageError> {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        let metas: Vec<object_store::ObjectMeta> =
            block_on(self.store.list(Some(&self.prefix)).try_collect()).map_err(|e| self.error("", e))?;
        let base: Vec<_> = self.prefix.parts().collect();
        let mut out: Vec<(String, u64)> = metas
            .into_iter()
            .map(|m| {
                let parts: Vec<String> = m
                    .location
                    .parts()
                    .skip(base.len())
                    .map(|p| p.as_ref().to_string())
                    .collect();
                (parts.join("/"), m.size)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The prefix `name` below this one.
    pub fn child(&self, name: &str) -> Result<ObjectDir, StorageError> {
        ObjectDir::open_with(&self.url_of(name), &self.options)
    }
}

/// What went wrong, in one line: the client's messages carry whole XML response bodies,
/// from which the service's error code and message are taken.
fn cause(e: &object_store::Error) -> String {
    let full = e.to_string();
    let tag = |t: &str| {
        let (open, close) = (format!("<{t}>"), format!("</{t}>"));
        let from = full.find(&open)? + open.len();
        Some(full[from..].split(close.as_str()).next()?.to_string())
    };
    let (code, message) = (tag("Code"), tag("Message"));
    let first_line = full.lines().next().unwrap_or_default().trim();
    match (e, code.as_deref()) {
        (_, Some("NoSuchBucket")) => "no such bucket".to_string(),
        (object_store::Error::NotFound { .. }, _) => "not found".to_string(),
        (
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. },
            _,
        )
        | (_, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidSignature")) => format!(
            "access denied ({}): check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's permissions",
            message.or(code).unwrap_or_else(|| "no reason given".into())
        ),
        _ if full.contains("error sending request") => format!(
            "no answer from the store (is the endpoint right and the server up?): {}",
            first_line.split("  - ").next().unwrap_or(first_line)
        ),
        _ => match (code, message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => first_line.split(": <?xml").next().unwrap_or(first_line).to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.into(),
        }
    }

    #[test]
    fn a_service_error_is_one_line_with_its_code_and_message() {
        let body = "Error performing GET http://h/b/k in 1ms - Server returned non-2xx status code: 404 Not Found: \
                    <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>Bucket not found: b</Message></Error>";
        assert_eq!(cause(&generic(body)), "no such bucket");
        let denied = body
            .replace("NoSuchBucket", "AccessDenied")
            .replace("Bucket not found: b", "Invalid signature");
        let what = cause(&generic(&denied));
        assert!(
            what.starts_with("access denied (Invalid signature)") && what.contains("AWS_SECRET_ACCESS_KEY"),
            "{what}"
        );
        let slow = body
            .replace("NoSuchBucket", "SlowDown")
            .replace("Bucket not found: b", "Reduce your rate");
        assert_eq!(cause(&generic(&slow)), "SlowDown: Reduce your rate");
        let gone = "Error performing GET http://127.0.0.1:9/b/k in 5s, after 10 retries  - HTTP error: error sending request";
        let what = cause(&generic(gone));
        assert!(
            what.starts_with("no answer from the store")
                && what.contains("127.0.0.1:9")
                && !what.contains("  - "),
            "{what}"
        );
        let missing = object_store::Error::NotFound {
            path: "k".into(),
            source: "404".into(),
        };
        assert_eq!(cause(&missing), "not found");
    }
}
