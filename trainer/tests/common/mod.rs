//! What the trainer's test files share.

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
