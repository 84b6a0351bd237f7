//! What the trainer's test files share.
#![allow(dead_code)] // not every test file uses everything

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use gdt_pipeline::synth::packed::SmallDataset;

/// Training seeds torch's process-wide generator (initialisation, then dropout before every
/// step), as PyTorch does; two trainings at once in one process would draw from each other's
/// streams. The test harness runs tests on parallel threads, so each test trains alone.
pub fn one_training_at_a_time() -> MutexGuard<'static, ()> {
    static TORCH: Mutex<()> = Mutex::new(());
    TORCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// 12 records: 8 in the train split (records 0-3 and 8-11), 4 in the test split (4-7).
pub fn dataset(dir: &Path) {
    SmallDataset {
        count: 12,
        seed: 5,
        ..SmallDataset::default()
    }
    .small_frames()
    .write(dir)
    .unwrap();
}

/// Flips a byte in the middle of record `record`'s spectrogram in the first shard: the
/// loader then skips that record as damaged.
pub fn damage_spectrogram(data: &Path, record: usize) {
    let shard = data.join("shard-00000.gdt");
    let (offset, len) = gdt_formats::shard::Shard::open(&shard)
        .unwrap()
        .record(record)
        .unwrap()
        .blob_location(1);
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[offset as usize + len as usize / 2] ^= 0xff;
    std::fs::write(&shard, &bytes).unwrap();
}
