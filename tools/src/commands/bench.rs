//! `gdt bench load`: flags -> [`LoadBench`] -> the pipeline's benchmark -> a table or JSON.

use anyhow::{Context, Result};
use gdt_pipeline::bench::{self, AtThreads, BenchReport, LoadBench};
use gdt_pipeline::load::settings::LoaderSettings;

use crate::cli::{BenchArgs, BenchLoadArgs, BenchWhat};

pub fn run(args: BenchArgs) -> Result<i32> {
    match args.what {
        BenchWhat::Load(a) => load(a),
    }
}

fn load(a: BenchLoadArgs) -> Result<i32> {
    let b = bench_of(&a);
    let quiet = a.json;
    let report = bench::run(&b, &mut |line| {
        if !quiet {
            eprintln!("  {line}");
        }
    })
    .with_context(|| format!("benchmarking {}", a.dataset.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&a, &report));
    }
    Ok(0)
}

/// What the flags ask to measure.
fn bench_of(a: &BenchLoadArgs) -> LoadBench {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match a.threads.as_slice() {
        [] => bench::thread_counts(cores),
        [max] => bench::thread_counts(*max),
        list => list.to_vec(),
    };
    let mut features = Vec::new();
    if gdt_pipeline::HAS_FFMPEG {
        features.push("ffmpeg".to_string());
    }
    if cfg!(feature = "nccl") {
        features.push("nccl".to_string());
    }
    LoadBench {
        dataset: a.dataset.clone(),
        settings: LoaderSettings {
            batch_size: a.batch_size,
            clip: a.clip,
            crop: a.crop,
            cache_dir: a.cache.cache_dir.clone(),
            cache_gib: a.cache.cache_gib,
            ..LoaderSettings::default()
        },
        seed: a.seed,
        warmup: a.warmup,
        batches: a.batches,
        seconds: a.seconds,
        rounds: a.rounds,
        threads,
        cold: a.cold,
        readahead: !a.no_readahead,
        digest: a.digest,
        gpu_clips_per_s: a.gpu_clips_per_s,
        baseline_records: a.baseline_records,
        sources: a.sources.clone(),
        build_features: features,
    }
}

/// The report as people read it.
fn table(a: &BenchLoadArgs, r: &BenchReport) -> String {
    let mut out = format!(
        "gdt bench load {}: {} records x {} views per batch ({}x{}x{} video, {}x{} audio); {} round(s) per thread count, \
         each {} after a warm-up of at least one batch per thread ({})\n",
        a.dataset.display(),
        r.batch_size,
        r.views_per_record,
        r.clip[0],
        r.clip[1],
        r.clip[2],
        r.audio[0],
        r.audio[1],
        r.rounds,
        match r.seconds {
            Some(s) => format!("{s} s"),
            None => format!("{} batches or more", r.batches),
        },
        if r.cold { "cold: pages dropped before each run" } else { "warm page cache" }
    );
    out += &format!("machine: {}\n", r.machine.line());
    out += &format!(
        "stored as {}; resample kernel {}; read-ahead {}\n",
        r.stored,
        r.resample_kernel,
        if r.readahead { "on" } else { "off" }
    );
    out +=
        "threads   clips/s (min-max)       floor (min-max)     samples/s     MB/s  read% video% audio% wait%";
    if r.cold {
        out += "  KB/clip read  MB/s needed";
    }
    let remote = r.scaling.iter().any(|t| t.requests_per_clip.is_some());
    if remote {
        out += "  requests/clip  KB/clip fetched";
    }
    if r.gpu_clips_per_s.is_some() {
        out += "  GPUs fed  cores/GPU";
    }
    out.push('\n');
    for t in &r.scaling {
        out += &row(t, r);
    }
    if let (Some(first), Some(last)) = (r.scaling.first(), r.scaling.last()) {
        if r.scaling.len() > 1 {
            out += &format!(
                "scaling   {} threads = {:.2}x {} thread(s)\n",
                last.threads,
                last.clips_per_s / first.clips_per_s,
                first.threads
            );
        }
    }
    out += &format!(
        "floor     {:.0} clips/s (decompress + copy, {} threads): loader at {:.0}% of the floor\n",
        r.floor_clips_per_s,
        r.threads,
        100.0 * r.clips_per_s / r.floor_clips_per_s
    );
    match (&r.baseline_clips_per_s, &r.baseline_error) {
        (Some(b), _) => {
            out += &format!(
                "baseline  {b:.0} clips/s (FFmpeg decode per sample, {} threads): loader {:.1}x faster\n",
                r.threads,
                r.clips_per_s / b
            )
        }
        (None, e) => out += &format!("baseline  not measured: {}\n", e.as_deref().unwrap_or("unknown")),
    }
    if let Some(g) = r.gpu_clips_per_s {
        out += &format!(
            "sizing    at {g:.0} clips/s per GPU, {} threads feed {:.1} GPUs\n",
            r.threads,
            r.clips_per_s / g
        );
    }
    if r.skipped_records > 0 {
        out += &format!(
            "skipped   up to {} damaged record(s) per run (skip mode): `gdt verify` names them\n",
            r.skipped_records
        );
    }
    if let Some(mib) = r.peak_memory_mib {
        out += &format!("memory    peak resident {mib:.0} MiB (the whole benchmark process)\n");
    }
    for t in r.scaling.iter().filter(|t| t.digest.is_some()) {
        out += &format!(
            "digest    {} ({} threads)\n",
            t.digest.as_deref().unwrap_or_default(),
            t.threads
        );
    }
    out
}

fn row(t: &AtThreads, r: &BenchReport) -> String {
    let mut line = format!(
        "{:>7} {:>9.0} ({:>5.0}-{:<5.0}) {:>9.0} ({:>5.0}-{:<5.0}) {:>9.0} {:>8.0} {:>6.0} {:>5.0} {:>6.0} {:>5.0}",
        t.threads,
        t.clips_per_s,
        t.loader.min,
        t.loader.max,
        t.floor.median,
        t.floor.min,
        t.floor.max,
        t.samples_per_s,
        t.mb_per_s,
        100.0 * t.stages.read,
        100.0 * t.stages.video,
        100.0 * t.stages.audio,
        100.0 * t.stages.wait
    );
    if r.cold {
        let kb = t
            .storage_bytes_per_clip
            .map_or("?".into(), |b| format!("{:.0}", b / 1e3));
        let mbs = t.storage_mb_per_s.map_or("?".into(), |m| format!("{m:.0}"));
        line += &format!("  {kb:>12}  {mbs:>11}");
    }
    if let (Some(n), Some(b)) = (t.requests_per_clip, t.fetched_bytes_per_clip) {
        line += &format!("  {n:>13.1}  {:>15.0}", b / 1e3);
    }
    if let (Some(g), Some(c)) = (t.gpus_fed, t.cores_per_gpu) {
        line += &format!("  {g:>8.1}  {c:>9.1}");
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parsed(flags: &[&str]) -> LoadBench {
        let args = [&["gdt", "bench", "load", "ds"], flags].concat();
        match Cli::try_parse_from(args).unwrap().command {
            Command::Bench(BenchArgs {
                what: BenchWhat::Load(a),
            }) => bench_of(&a),
            _ => unreachable!("parsed as bench load"),
        }
    }

    /// `gdt bench load`'s defaults are the loader's own (`LoaderSettings::default()`, which
    /// `gdt train`'s `[data]` and `gdt.Loader` also take): a default changed there changes here.
    #[test]
    fn the_defaults_are_the_loader_settings() {
        assert_eq!(parsed(&[]).settings, LoaderSettings::default());
        let b = parsed(&["--batch-size", "3", "--crop", "32"]);
        assert_eq!((b.settings.batch_size, b.settings.crop), (3, 32));
    }

    #[test]
    fn one_thread_count_is_a_maximum_and_a_list_is_exact() {
        assert_eq!(parsed(&["--threads", "8"]).threads, [1, 2, 4, 8]);
        assert_eq!(parsed(&["--threads", "1,8,32"]).threads, [1, 8, 32]);
    }
}
