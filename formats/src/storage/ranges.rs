//! Reading a shard in an object store by byte ranges: a view reads a few hundred KB of a
//! record (its spectrogram, the chunks of its clips), never a whole shard.
//!
//! The loader says ahead which ranges its next batches need (it knows its order): those are
//! fetched concurrently (at most `GDT_STORAGE_REQUESTS`, 64, at once) into a memory cache of
//! at most `GDT_STORAGE_MEMORY_MB` (1024) MB, least recently used first out. A read finds its
//! bytes there, waits for them if their request is under way, or fetches them itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;

use super::object::ObjectDir;
use super::runtime::{block_on, runtime};
use super::StorageError;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or(default)
}

/// A request under way: its bytes (or why there are none) once it is done.
#[derive(Default)]
struct Pending {
    done: Mutex<Option<Result<Bytes, StorageError>>>,
    arrived: Condvar,
}

impl Pending {
    fn finish(&self, result: Result<Bytes, StorageError>) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        self.arrived.notify_all();
    }

    fn wait(&self) -> Result<Bytes, StorageError> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match done.as_ref() {
                Some(result) => return result.clone(),
                None => done = self.arrived.wait(done).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

enum State {
    Ready(Bytes),
    Fetching(Arc<Pending>),
}

struct Span {
    end: u64,
    state: State,
    /// When it was last read (a tick of the cache's clock; a key of `Spans::by_use` once ready).
    used: u64,
}

/// A span's key: (file, first byte).
type Key = (u32, u64);

#[derive(Default)]
struct Spans {
    map: BTreeMap<Key, Span>,
    /// Ready spans by when they were last read: the least recently read first out.
    by_use: BTreeMap<u64, Key>,
    /// Bytes held by ready spans.
    bytes: u64,
    tick: u64,
}

impl Spans {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The key of the span of `file` holding `offset..end`, if any, marked as read now.
    fn find(&mut self, file: u32, offset: u64, end: u64) -> Option<Key> {
        let tick = self.next_tick();
        let (&key, span) = self.map.range_mut(..=(file, offset)).next_back()?;
        if key.0 != file || span.end < end {
            return None;
        }
        if matches!(span.state, State::Ready(_)) {
            self.by_use.remove(&span.used);
            self.by_use.insert(tick, key);
        }
        span.used = tick;
        Some(key)
    }

    /// Holds `bytes` as the ready span at `key`, in place of whatever was there, dropping the
    /// least recently read spans to stay within `budget`.
    fn hold(&mut self, key: Key, bytes: Bytes, budget: u64) {
        self.remove(key);
        let len = bytes.len() as u64;
        while self.bytes + len > budget {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(span) = self.map.remove(&oldest) {
                self.bytes -= span.end - oldest.1;
            }
        }
        let tick = self.next_tick();
        self.bytes += len;
        self.by_use.insert(tick, key);
        self.map.insert(
            key,
            Span {
                end: key.1 + len,
                state: State::Ready(bytes),
                used: tick,
            },
        );
    }

    /// Drops the span at `key`, ready or not.
    fn remove(&mut self, key: Key) {
        if let Some(span) = self.map.remove(&key) {
            if matches!(span.state, State::Ready(_)) {
                self.by_use.remove(&span.used);
                self.bytes -= span.end - key.1;
            }
        }
    }
}

/// The memory cache and request limit every remote shard of a dataset shares.
pub struct RangeCache {
    spans: Mutex<Spans>,
    budget: u64,
    requests: Arc<tokio::sync::Semaphore>,
}

impl Default for RangeCache {
    fn default() -> Self {
        RangeCache {
            spans: Mutex::new(Spans::default()),
            budget: env_number("GDT_STORAGE_MEMORY_MB", 1024) as u64 * (1 << 20),
            requests: Arc::new(tokio::sync::Semaphore::new(env_number(
                "GDT_STORAGE_REQUESTS",
                64,
            ))),
        }
    }
}

impl RangeCache {
    fn spans(&self) -> std::sync::MutexGuard<'_, Spans> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.spans().bytes
    }
}

/// One object (a shard) read by ranges.
pub struct RemoteFile {
    dir: Arc<ObjectDir>,
    name: String,
    len: u64,
    id: u32,
    cache: Arc<RangeCache>,
}

impl RemoteFile {
    /// Object `name` of `dir`, `len` bytes long, the `id`-th file sharing `cache`.
    pub fn new(dir: Arc<ObjectDir>, name: &str, len: u64, id: u32, cache: Arc<RangeCache>) -> RemoteFile {
        RemoteFile {
            dir,
            name: name.to_string(),
            len,
            id,
            cache,
        }
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its URL.
    pub fn url(&self) -> String {
        self.dir.url_of(&self.name)
    }

    /// Bytes `offset..offset + len`: from the cache, from a request under way, or fetched now.
    pub fn read(&self, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        let end = offset + len;
        let pending = {
            let mut spans = self.cache.spans();
            let Some(key) = spans.find(self.id, offset, end) else {
                drop(spans);
                return self.fetch_now(offset, len);
            };
            match &spans.map[&key].state {
                State::Ready(b) => return Ok(b.slice((offset - key.1) as usize..(end - key.1) as usize)),
                State::Fetching(p) => (key.1, p.clone()),
            }
        };
        let (start, pending) = pending;
        // A read-ahead that failed had its retries already: its error is this read's.
        pending
            .wait()
            .map(|b| b.slice((offset - start) as usize..(end - start) as usize))
    }

    fn fetch_now(&self, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        let bytes = block_on(self.dir.read_range(&self.name, offset, len))?;
        self.cache
            .spans()
            .hold((self.id, offset), bytes.clone(), self.cache.budget);
        Ok(bytes)
    }

    /// Drops the cached bytes that hold `offset..offset + len` (their checksum failed: the
    /// next read fetches them again).
    pub fn forget(&self, offset: u64, len: u64) {
        let mut spans = self.cache.spans();
        if let Some(key) = spans.find(self.id, offset, offset + len) {
            spans.remove(key);
        }
    }

    /// Starts fetching `ranges` (sorted, merged) unless they are held or under way: the
    /// loader's read-ahead. Returns at once.
    pub fn prefetch(&self, ranges: &[(u64, u64)]) {
        for &(offset, len) in ranges {
            let end = (offset + len).min(self.len);
            if end <= offset {
                continue;
            }
            let key = (self.id, offset);
            let pending = Arc::new(Pending::default());
            {
                let mut spans = self.cache.spans();
                if spans.find(self.id, offset, end).is_some() {
                    continue;
                }
                spans.remove(key);
                let used = spans.next_tick();
                spans.map.insert(
                    key,
                    Span {
                        end,
                        state: State::Fetching(pending.clone()),
                        used,
                    },
                );
            }
            let (dir, name, cache) = (self.dir.clone(), self.name.clone(), self.cache.clone());
            runtime().spawn(async move {
                let permit = cache.requests.clone().acquire_owned().await;
                let result = dir.read_range(&name, offset, end - offset).await;
                drop(permit);
                {
                    let mut spans = cache.spans();
                    // Only if it is still this request's span (not dropped and fetched anew).
                    let ours = spans
                        .map
                        .get(&key)
                        .is_some_and(|s| matches!(&s.state, State::Fetching(p) if Arc::ptr_eq(p, &pending)));
                    if ours {
                        match &result {
                            Ok(b) => spans.hold(key, b.clone(), cache.budget),
                            Err(_) => spans.remove(key),
                        }
                    }
                }
                pending.finish(result);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(spans: &mut Spans, offset: u64, len: usize, budget: u64) {
        spans.hold((0, offset), Bytes::from(vec![offset as u8; len]), budget);
    }

    #[test]
    fn the_least_recently_read_spans_go_first_and_the_budget_holds() {
        let mut spans = Spans::default();
        for offset in [0, 100, 200] {
            span(&mut spans, offset, 100, 300);
        }
        assert!(spans.find(0, 10, 50).is_some(), "inside the first span");
        assert!(spans.find(0, 150, 250).is_none(), "across two spans is not held");
        span(&mut spans, 300, 100, 300);
        // 0 was read after 100 was held: 100 went.
        let held: Vec<u64> = spans.map.keys().map(|k| k.1).collect();
        assert_eq!(held, [0, 200, 300]);
        assert_eq!(spans.bytes, 300);
        assert_eq!(spans.by_use.len(), 3);
        spans.remove((0, 200));
        assert_eq!((spans.bytes, spans.by_use.len()), (200, 2));
        // A span larger than the budget empties the cache and is held alone, briefly over.
        span(&mut spans, 400, 500, 300);
        assert_eq!((spans.bytes, spans.map.len()), (500, 1));
    }
}
