//! `gdt bench load`'s measurement (`gdt_pipeline::bench`) on a real loader: steady-state
//! rates that do not depend on the run's length, and cold runs that read from storage.

mod common;

use gdt_pipeline::bench::{self, LoadBench};
use gdt_pipeline::load::settings::LoaderSettings;

fn bench(dir: &std::path::Path, threads: Vec<usize>, batches: usize, cold: bool) -> LoadBench {
    LoadBench {
        dataset: dir.to_path_buf(),
        settings: LoaderSettings {
            batch_size: 4,
            clip: 8,
            crop: 32,
            ..LoaderSettings::default()
        },
        seed: 1,
        warmup: 5,
        batches,
        seconds: None,
        rounds: 3,
        threads,
        cold,
        readahead: true,
        digest: false,
        gpu_clips_per_s: Some(100.0),
        baseline_records: 0,
        sources: None,
        build_features: vec![],
    }
}

/// 16 workers on a 2-core machine finish their first batches together; the method before
/// this one counted that wave in no time and read 1.4x high on a 24-batch run. Measured in
/// steady state, a short and a long run agree within the spread of their rounds (the
/// machine's noise) and a margin.
#[test]
fn a_short_and_a_long_run_at_many_threads_report_the_same_rate() {
    let dir = tempfile::tempdir().unwrap();
    common::small_dataset(dir.path(), 12, 4);
    let noop = &mut |_: &str| {};
    let short = bench::run(&bench(dir.path(), vec![16], 24, false), noop).unwrap();
    let long = bench::run(&bench(dir.path(), vec![16], 200, false), noop).unwrap();
    let (s, l) = (&short.scaling[0], &long.scaling[0]);
    assert_eq!(s.rounds.len(), 6, "3 rounds of loader and floor");
    assert!(s
        .rounds
        .iter()
        .all(|r| r.warmup >= 16 && r.batches % 16 == 0 && r.batches >= 32));
    let noise = (s.loader.max - s.loader.min).max(l.loader.max - l.loader.min) / l.clips_per_s;
    let ratio = s.clips_per_s / l.clips_per_s;
    assert!(
        (ratio - 1.0).abs() <= noise + 0.2,
        "short {:.0} vs long {:.0} clips/s (noise {:.0}%)",
        s.clips_per_s,
        l.clips_per_s,
        100.0 * noise
    );
    // The sizing answer follows the rate.
    let gpus = s.gpus_fed.unwrap();
    assert!((gpus - s.clips_per_s / 100.0).abs() < 1e-9 && s.cores_per_gpu.unwrap() > 0.0);
}

#[cfg(target_os = "linux")]
#[test]
fn a_cold_run_reads_its_clips_from_storage_and_a_warm_one_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    common::small_dataset(dir.path(), 12, 5);
    let noop = &mut |_: &str| {};
    let cold = bench::run(&bench(dir.path(), vec![1], 8, true), noop).unwrap();
    let warm = bench::run(&bench(dir.path(), vec![1], 8, false), noop).unwrap();
    let (c, w) = (&cold.scaling[0], &warm.scaling[0]);
    let cold_bytes = c.storage_bytes_per_clip.unwrap();
    assert!(
        cold_bytes > 1000.0,
        "{cold_bytes} bytes per clip from storage, cold"
    );
    assert!(w.storage_bytes_per_clip.unwrap() < cold_bytes / 10.0, "{w:?}");
    assert!(c.storage_mb_per_s.unwrap() > 0.0);
    assert!(cold.cold && cold.machine.cores >= 1);
}
