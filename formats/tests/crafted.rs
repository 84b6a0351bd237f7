//! Crafted shards: valid files whose index or blobs were changed *and whose checksums were
//! recomputed*, so every check that is not a checksum gets exercised (checksums alone are
//! covered exhaustively in `shard.rs`). For every case: no panic, no allocation beyond what
//! the format allows for the test's geometry, and either a typed error or data whose
//! checksums verify. Case counts are reported in docs/RELIABILITY.md.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::write_shard;
use gdt_formats::field::frames::ChunkDecoder;
use gdt_formats::params::FrameCodec;
use gdt_formats::shard::Shard;
use proptest::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

/// Tracks the largest single allocation, so a length field that makes the reader allocate
/// what the file claims (instead of what the geometry allows) fails the test.
struct Largest;
static LARGEST: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LARGEST.fetch_max(n, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}
#[global_allocator]
static GLOBAL: Largest = Largest;

/// Far above any buffer the test shard's geometry needs (a few KiB), far below what a trusted
/// bad length would ask for.
const ALLOCATION_CAP: usize = 8 << 20;

const FOOTER: usize = 48;

struct Layout_ {
    index_offset: usize,
    records: usize,
    blobs: usize,
}

fn layout(b: &[u8]) -> Layout_ {
    let f = b.len() - FOOTER;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    Layout_ {
        index_offset: u64_at(f) as usize,
        records: u32_at(f + 8) as usize,
        blobs: u32_at(f + 12) as usize,
    }
}

/// Recomputes the index and footer checksums (and the file length field) so the file passes
/// every checksum again.
fn reseal(b: &mut [u8]) {
    let f = b.len() - FOOTER;
    let l = layout(b);
    let index_end = (l.index_offset + l.records * 32 + l.blobs * 24).min(f);
    if l.index_offset <= index_end {
        let sum = xxh3_64(&b[l.index_offset..index_end]);
        b[f + 16..f + 24].copy_from_slice(&sum.to_le_bytes());
    }
    let len = b.len() as u64;
    b[f + 24..f + 32].copy_from_slice(&len.to_le_bytes());
    let sum = xxh3_64(&b[f..f + 32]);
    b[f + 32..f + 40].copy_from_slice(&sum.to_le_bytes());
}

/// Interesting values for a length, count or offset field.
fn field_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u32::MAX as u64),
        Just(u32::MAX as u64 + 1),
        Just(u64::MAX),
        Just(1 << 31),
        Just(1 << 40),
        0u64..4096,
        any::<u64>(),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Overwrite the u32 at a record entry's field.
    RecordField {
        record: usize,
        field: usize,
        value: u64,
    },
    /// Overwrite a blob entry's offset (u64), len or raw_len (u32).
    BlobField {
        blob: usize,
        field: usize,
        value: u64,
    },
    SwapBlobs(usize, usize),
    DuplicateBlob(usize, usize),
    SwapRecords(usize, usize),
    /// Random bytes over a blob's stored bytes, with its checksum recomputed: garbage that
    /// passes the checksum (bad zstd, bad JSON, bad JPEG).
    BlobGarbage {
        blob: usize,
        seed: u64,
        partial: bool,
    },
    /// Footer counts changed (the index then spans other bytes).
    Counts {
        records: u64,
        blobs: u64,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..3usize, 0..8usize, field_value()).prop_map(|(record, field, value)| Mutation::RecordField {
            record,
            field,
            value
        }),
        (0..32usize, 0..3usize, field_value()).prop_map(|(blob, field, value)| Mutation::BlobField {
            blob,
            field,
            value
        }),
        (0..32usize, 0..32usize).prop_map(|(a, b)| Mutation::SwapBlobs(a, b)),
        (0..32usize, 0..32usize).prop_map(|(a, b)| Mutation::DuplicateBlob(a, b)),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Mutation::SwapRecords(a, b)),
        (0..32usize, any::<u64>(), any::<bool>()).prop_map(|(blob, seed, partial)| Mutation::BlobGarbage {
            blob,
            seed,
            partial
        }),
        (field_value(), field_value()).prop_map(|(records, blobs)| Mutation::Counts { records, blobs }),
    ]
}

fn apply(good: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = good.to_vec();
    let l = layout(&b);
    let rec = |r: usize| l.index_offset + (r % l.records) * 32;
    let blob = |k: usize| l.index_offset + l.records * 32 + (k % l.blobs) * 24;
    match *m {
        Mutation::RecordField { record, field, value } => {
            let o = rec(record) + field * 4;
            b[o..o + 4].copy_from_slice(&(value as u32).to_le_bytes());
        }
        Mutation::BlobField {
            blob: k,
            field,
            value,
        } => {
            let o = blob(k);
            match field {
                0 => b[o..o + 8].copy_from_slice(&value.to_le_bytes()),
                1 => b[o + 8..o + 12].copy_from_slice(&(value as u32).to_le_bytes()),
                _ => b[o + 12..o + 16].copy_from_slice(&(value as u32).to_le_bytes()),
            }
        }
        Mutation::SwapBlobs(x, y) => {
            let (x, y) = (blob(x), blob(y));
            let (ex, ey) = (b[x..x + 24].to_vec(), b[y..y + 24].to_vec());
            b[x..x + 24].copy_from_slice(&ey);
            b[y..y + 24].copy_from_slice(&ex);
        }
        Mutation::DuplicateBlob(x, y) => {
            let e = b[blob(x)..blob(x) + 24].to_vec();
            let y = blob(y);
            b[y..y + 24].copy_from_slice(&e);
        }
        Mutation::SwapRecords(x, y) => {
            let (x, y) = (rec(x), rec(y));
            let (ex, ey) = (b[x..x + 32].to_vec(), b[y..y + 32].to_vec());
            b[x..x + 32].copy_from_slice(&ey);
            b[y..y + 32].copy_from_slice(&ex);
        }
        Mutation::BlobGarbage {
            blob: k,
            seed,
            partial,
        } => {
            let o = blob(k);
            let off = u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
            let len = u32::from_le_bytes(b[o + 8..o + 12].try_into().unwrap()) as usize;
            let mut x = seed | 1;
            let from = if partial { off + len / 2 } else { off };
            for byte in &mut b[from..off + len] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            let sum = xxh3_64(&b[off..off + len]);
            b[o + 16..o + 24].copy_from_slice(&sum.to_le_bytes());
        }
        Mutation::Counts { records, blobs } => {
            let f = b.len() - FOOTER;
            b[f + 8..f + 12].copy_from_slice(&(records as u32).to_le_bytes());
            b[f + 12..f + 16].copy_from_slice(&(blobs as u32).to_le_bytes());
        }
    }
    reseal(&mut b);
    b
}

/// Opens and reads everything; `Ok(true)` when all of it was served. Any panic fails the test.
fn read_all(path: &std::path::Path) -> Result<bool, String> {
    let shard = Shard::open(path).map_err(|e| e.to_string())?;
    let mut decoder = ChunkDecoder::new().unwrap();
    let mut served = true;
    for r in 0..shard.len() {
        let view = match shard.record(r) {
            Ok(v) => v,
            Err(_) => {
                served = false;
                continue;
            }
        };
        served &= view.meta().is_ok();
        served &= view.spectrogram().is_ok();
        let frames = view.entry().frames as usize;
        let mut out = Vec::new();
        served &= view.read_frames(&mut decoder, 0, frames, &mut out).is_ok();
    }
    Ok(served && shard.verify().map_err(|e| e.to_string())?.is_empty())
}

fn campaign(codec: FrameCodec, cases: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.gdt");
    let name = format!("{codec:?}");
    write_shard(&path, 3, codec);
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("crafted.gdt");
    let (rejected, served) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(m in mutation())| {
        let bytes = apply(&good, &m);
        std::fs::write(&bad, &bytes).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        match read_all(&bad) {
            Err(e) => {
                prop_assert!(e.contains("crafted.gdt"), "error does not name the file: {e} ({m:?})");
                rejected.set(rejected.get() + 1);
            }
            Ok(_) => served.set(served.get() + 1),
        }
        let largest = LARGEST.load(Ordering::Relaxed);
        prop_assert!(largest <= ALLOCATION_CAP, "{m:?} made the reader allocate {largest} bytes");
    });
    let (rejected, served) = (rejected.get(), served.get());
    println!("{name}: {cases} crafted shards, {rejected} rejected on open, {served} opened (each record then served or refused)");
    assert!(
        rejected > 0 && served > 0,
        "the campaign must reach both outcomes"
    );
}

#[test]
fn crafted_raw_zstd_shards_never_panic_or_overallocate() {
    campaign(FrameCodec::default(), 20_000);
}

#[test]
fn crafted_jpeg_shards_never_panic_or_overallocate() {
    campaign(FrameCodec::Jpeg { quality: 80 }, 8_000);
}

/// `dataset.json` with random byte edits (flips, deletions, insertions, truncation) over a
/// real two-shard dataset: opening never panics or over-allocates; it fails with the file
/// named, or opens a dataset whose shards all passed their own validation.
#[test]
fn mutated_dataset_json_never_panics() {
    use gdt_formats::dataset::{Dataset, DatasetManifest, ShardInfo, Totals};
    use gdt_formats::shard::FORMAT_VERSION;
    let dir = tempfile::tempdir().unwrap();
    let mut shards = Vec::new();
    for s in 0..2 {
        let file = gdt_formats::dataset::shard_file_name(s);
        write_shard(&dir.path().join(&file), 2, FrameCodec::default());
        let bytes = std::fs::metadata(dir.path().join(&file)).unwrap().len();
        shards.push(ShardInfo {
            file,
            records: 2,
            bytes,
        });
    }
    let manifest = DatasetManifest {
        format_version: FORMAT_VERSION,
        writer: "test".into(),
        params: common::params(),
        shards,
        labels: vec!["class-0".into(), "class-1".into()],
        label_counts: Default::default(),
        totals: Totals::default(),
        skipped: Default::default(),
        source_root: None,
    };
    manifest.save(dir.path()).unwrap();
    let path = dir.path().join(gdt_formats::dataset::DATASET_FILE);
    let good = std::fs::read(&path).unwrap();
    assert_eq!(Dataset::open(dir.path()).unwrap().len(), 4);

    let (rejected, opened) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let cases = 3000;
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let edit = prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, bit)| (0u8, i, bit as u32)),
        (any::<prop::sample::Index>(), Just(0u32)).prop_map(|(i, _)| (1u8, i, 0)),
        (any::<prop::sample::Index>(), any::<u32>()).prop_map(|(i, c)| (2u8, i, c)),
        (any::<prop::sample::Index>(), Just(0u32)).prop_map(|(i, _)| (3u8, i, 0)),
    ];
    proptest!(config, |(edits in prop::collection::vec(edit, 1..4))| {
        let mut b = good.clone();
        for (kind, at, value) in &edits {
            if b.is_empty() {
                break;
            }
            let i = at.index(b.len());
            match kind {
                0 => b[i] ^= 1 << value,
                1 => { b.remove(i); }
                2 => b.insert(i, b"0123456789-.,:{}[]\"e"[(*value as usize) % 20]),
                _ => b.truncate(i),
            }
        }
        std::fs::write(&path, &b).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        match Dataset::open(dir.path()) {
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains(&*dir.path().to_string_lossy()), "error names no file: {e}");
                rejected.set(rejected.get() + 1);
            }
            Ok(ds) => {
                prop_assert!(ds.len() <= 4);
                opened.set(opened.get() + 1);
            }
        }
        let largest = LARGEST.load(Ordering::Relaxed);
        prop_assert!(largest <= ALLOCATION_CAP, "{edits:?} made the reader allocate {largest} bytes");
    });
    println!(
        "dataset.json: {cases} mutated files, {} rejected, {} opened",
        rejected.get(),
        opened.get()
    );
    assert!(rejected.get() > 0);
}

/// Two rules a reader written from FORMAT.md must also check, each broken alone in a file
/// whose checksums all verify: the reserved field of a record entry is 0, and blobs fill the
/// region between header and index back to back (no unchecked bytes between them).
#[test]
fn a_reserved_field_or_a_gap_between_blobs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.gdt");
    write_shard(&path, 3, FrameCodec::default());
    let good = std::fs::read(&path).unwrap();
    let l = layout(&good);

    let mut b = good.clone();
    b[l.index_offset + 32 + 28] = 7; // record 1's reserved u32
    reseal(&mut b);
    std::fs::write(&path, &b).unwrap();
    let err = Shard::open(&path).err().expect("refused").to_string();
    assert!(err.contains("record 1") && err.contains("reserved"), "{err}");

    // Blob 2 (record 0's first frame chunk) one byte shorter: a byte between it and blob 3
    // belongs to no blob.
    let mut b = good.clone();
    let at = l.index_offset + l.records * 32 + 2 * 24 + 8;
    let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    b[at..at + 4].copy_from_slice(&(len - 1).to_le_bytes());
    reseal(&mut b);
    std::fs::write(&path, &b).unwrap();
    let err = Shard::open(&path).err().expect("refused").to_string();
    assert!(
        err.contains("blob 3 starts at") && err.contains("previous blob ends"),
        "{err}"
    );
}
