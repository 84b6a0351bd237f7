//! The soak: many loader epochs, then many CPU training steps with a small model, watching
//! what the process holds. Resident memory, open files and threads must stay flat; a leak of
//! any of them shows as a steady climb in the table. Not run in CI (minutes); the figures
//! go to `docs/RELIABILITY.md`.
//!
//! `cargo bench --bench soak [-- EPOCHS [STEPS]]` (defaults: 200 epochs of 64 records at the
//! default geometry, 2 threads; 3000 training steps at 1/16 width on 8x32x32 clips).

#[path = "../tests/common/process.rs"]
mod process;

use std::time::Instant;

use gdt_formats::params::PackParams;
use gdt_pipeline::load::loader::LoaderBuilder;
use gdt_pipeline::synth::packed::write_packed;
use gdt_pipeline::synth::{plan, CorpusConfig};
use gdt_trainer::config::TrainConfig;
use gdt_trainer::run_log::StepRecord;
use gdt_trainer::train::{self, Observer};
use process::Usage;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn header(unit: &str) {
    println!(
        "{unit:>8} {:>10} {:>10} {:>10} {:>10} {:>6} {:>8}",
        "anon MiB", "file MiB", "peak MiB", "clips/s", "files", "threads"
    );
}

fn row(at: u64, u: &Usage, clips_per_s: f64) {
    println!(
        "{at:>8} {:>10.1} {:>10.1} {:>10.1} {clips_per_s:>10.0} {:>6} {:>8}",
        mib(u.rss_anon_kib),
        mib(u.rss_file_kib),
        mib(u.peak_rss_kib),
        u.open_files,
        u.threads
    );
}

/// Samples usage every `every` steps and keeps the first and last readings.
struct Watch {
    every: u64,
    first: Option<Usage>,
    last: Option<Usage>,
}

impl Observer for Watch {
    fn step(&mut self, r: &StepRecord) {
        if r.step % self.every == 0 {
            let u = Usage::now();
            row(r.step, &u, r.clips_per_s);
            self.first.get_or_insert(u);
            self.last = Some(u);
        }
    }
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let epochs = args.first().copied().unwrap_or(200);
    let steps = args.get(1).copied().unwrap_or(3000);

    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let videos = plan(&CorpusConfig {
        count: 64,
        seed: 21,
        min_duration_s: 3.0,
        max_duration_s: 8.0,
        ..CorpusConfig::default()
    });
    write_packed(&data, &videos, &PackParams::default(), 64 << 20).expect("synthetic dataset");

    println!("loader: {epochs} epochs of 64 records, batch 8 x 4 views, 2 threads");
    let start = Usage::now();
    header("epoch");
    let loader = LoaderBuilder::new(&data)
        .batch_size(8)
        .threads(2)
        .epochs(epochs)
        .build()
        .expect("loader");
    let every = (epochs / 10).max(1);
    let (mut epoch, mut clips, mut t) = (0, 0usize, Instant::now());
    let mut after_first: Option<Usage> = None;
    let mut worst_anon = 0;
    for batch in loader {
        let batch = batch.expect("batch");
        if batch.epoch != epoch {
            let u = Usage::now();
            worst_anon = worst_anon.max(u.rss_anon_kib);
            after_first.get_or_insert(u);
            if batch.epoch % every == 0 {
                row(batch.epoch, &u, clips as f64 / t.elapsed().as_secs_f64());
                (clips, t) = (0, Instant::now());
            }
            epoch = batch.epoch;
        }
        clips += batch.views().len();
    }
    let end = Usage::now();
    let first = after_first.expect("more than one epoch");
    println!(
        "loader: anonymous RSS {:.1} MiB after epoch 1, at most {:.1} MiB up to epoch {epochs}; \
         peak RSS {:.1} MiB; files {} -> {}, threads {} -> {} (before -> after the loader)",
        mib(first.rss_anon_kib),
        mib(worst_anon),
        mib(end.peak_rss_kib),
        start.open_files,
        end.open_files,
        start.threads,
        end.threads
    );

    println!("\ntrainer: {steps} CPU steps, width 1/16, 8x32x32 clips, 4 records x 4 views");
    header("step");
    let overrides = [
        format!("steps={steps}"),
        "device=\"cpu\"".to_string(),
        "data.batch_size=4".to_string(),
        "data.clip=8".to_string(),
        "data.crop=32".to_string(),
        "data.scale_min=36".to_string(),
        "data.scale_max=44".to_string(),
        "model.width=0.0625".to_string(),
        format!("run.checkpoint_every={}", (steps / 5).max(1)),
    ];
    let mut cfg = TrainConfig::from_toml("", "soak", &overrides).expect("config");
    cfg.dataset = Some(data.clone());
    let resolved = cfg.resolve().expect("config resolves");
    let mut watch = Watch {
        every: (steps / 15).max(1),
        first: None,
        last: None,
    };
    train::train(&resolved, &tmp.path().join("run"), false, &mut watch).expect("training");
    let (first, last) = (watch.first.expect("readings"), watch.last.expect("readings"));
    println!(
        "trainer: anonymous RSS {:.1} MiB at the first reading, {:.1} MiB at the last; peak RSS \
         {:.1} MiB; files {} -> {}, threads {} -> {}",
        mib(first.rss_anon_kib),
        mib(last.rss_anon_kib),
        mib(Usage::now().peak_rss_kib),
        first.open_files,
        last.open_files,
        first.threads,
        last.threads
    );
}
