//! `gdt bench load`: loader throughput by thread count, where the time goes, and two
//! references measured in the same run on the same data: the on-the-fly FFmpeg baseline
//! and the decompress-and-copy floor.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use gdt_formats::dataset::DatasetManifest;
use gdt_formats::params::FrameCodec;
use gdt_pipeline::load::augment::VideoAugment;
use gdt_pipeline::load::batch::BatchShape;
use gdt_pipeline::load::loader::{LoaderBuilder, StageSeconds};
use serde::Serialize;

use crate::cli::{BenchArgs, BenchLoadArgs, BenchWhat};

pub fn run(args: BenchArgs) -> Result<i32> {
    match args.what {
        BenchWhat::Load(a) => load(a),
    }
}

#[derive(Clone, Debug, Serialize)]
struct Run {
    threads: usize,
    clips_per_s: f64,
    samples_per_s: f64,
    mb_per_s: f64,
    /// Fractions of worker time (read, video, audio) and of the consumer's wall time (wait).
    stages: StageSeconds,
    /// xxh3-64 of the measured batches' bytes, with --digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip)]
    shape: BatchShape,
}

fn measure(a: &BenchLoadArgs, threads: usize, floor: bool) -> Result<Run> {
    // Enough epochs for the run even if an epoch is a single batch.
    let epochs = (a.warmup + a.batches) as u64 + 1;
    let mut loader = LoaderBuilder::new(&a.dataset)
        .batch_size(a.batch_size)
        .clip(a.clip)
        .video_augment(VideoAugment::at_crop(a.crop))
        .threads(threads)
        .seed(a.seed)
        .epochs(epochs)
        .floor(floor)
        .build()
        .with_context(|| format!("opening {}", a.dataset.display()))?;
    for _ in 0..a.warmup {
        loader.next().context("dataset too small for the warm-up")??;
    }
    let before = loader.stage_seconds();
    let start = Instant::now();
    let (mut clips, mut samples, mut bytes) = (0usize, 0usize, 0usize);
    let mut digest = a.digest.then(xxhash_rust::xxh3::Xxh3::new);
    for _ in 0..a.batches {
        let b = loader.next().context("ran out of batches")??;
        clips += b.views().len();
        samples += b.records;
        bytes += b.video().len() + b.audio().len() * 4;
        if let Some(d) = digest.as_mut() {
            d.update(b.video());
            let audio: Vec<u8> = b.audio().iter().flat_map(|x| x.to_le_bytes()).collect();
            d.update(&audio);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let after = loader.stage_seconds();
    let work = (after.read - before.read) + (after.video - before.video) + (after.audio - before.audio);
    let frac = |x: f64| if work > 0.0 { x / work } else { 0.0 };
    Ok(Run {
        shape: loader.shape(),
        threads,
        clips_per_s: clips as f64 / secs,
        samples_per_s: samples as f64 / secs,
        mb_per_s: bytes as f64 / secs / 1e6,
        digest: digest.map(|d| format!("{:016x}", d.digest())),
        stages: StageSeconds {
            read: frac(after.read - before.read),
            video: frac(after.video - before.video),
            audio: frac(after.audio - before.audio),
            wait: (after.wait - before.wait) / secs,
        },
    })
}

fn load(a: BenchLoadArgs) -> Result<i32> {
    if a.batches == 0 {
        bail!("--batches must be at least 1");
    }
    let max_threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runs: Vec<Run> = (1..=max_threads)
        .map(|t| measure(&a, t, false))
        .collect::<Result<_>>()?;
    let best = runs.last().expect("at least one run").clone();
    let floor = measure(&a, max_threads, true)?;
    let shape = floor.shape;
    let baseline = baseline(&a, max_threads, &shape);
    // What the figures depend on besides the machine: how frames are stored, and which
    // resample kernel this CPU runs.
    let manifest =
        DatasetManifest::load(&a.dataset).with_context(|| format!("reading {}", a.dataset.display()))?;
    let t = &manifest.totals;
    let stored = format!(
        "{}, {}-frame chunks, {:.2}x vs raw frames",
        codec_name(&manifest.params.codec),
        manifest.params.chunk_frames,
        t.raw_frame_bytes as f64 / t.stored_bytes.max(1) as f64
    );
    let kernel = gdt_pipeline::load::augment::resample_kernel();

    if a.json {
        let v = serde_json::json!({
            "clips_per_s": best.clips_per_s,
            "samples_per_s": best.samples_per_s,
            "mb_per_s": best.mb_per_s,
            "threads": best.threads,
            "stages": best.stages,
            "scaling": runs,
            "floor_clips_per_s": floor.clips_per_s,
            "baseline_clips_per_s": baseline.as_ref().ok(),
            "baseline_error": baseline.as_ref().err().map(|e| format!("{e:#}")),
            "batch_size": a.batch_size,
            "views_per_record": shape.views,
            "clip": [shape.clip, shape.crop, shape.crop],
            "audio": [shape.mels, shape.audio_frames],
            "stored": stored,
            "resample_kernel": kernel,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "gdt bench load {}: {} records x {} views per batch ({}x{}x{} video, {}x{} audio), {} batches after {} warm-up",
        a.dataset.display(),
        a.batch_size,
        shape.views,
        shape.clip,
        shape.crop,
        shape.crop,
        shape.mels,
        shape.audio_frames,
        a.batches,
        a.warmup
    );
    println!("stored as {stored}; resample kernel {kernel}");
    println!("threads   clips/s  samples/s     MB/s   read%  video%  audio%  wait%");
    for r in &runs {
        println!(
            "{:>7} {:>9.0} {:>10.0} {:>8.0} {:>7.0} {:>7.0} {:>7.0} {:>6.0}",
            r.threads,
            r.clips_per_s,
            r.samples_per_s,
            r.mb_per_s,
            100.0 * r.stages.read,
            100.0 * r.stages.video,
            100.0 * r.stages.audio,
            100.0 * r.stages.wait
        );
    }
    if runs.len() > 1 {
        println!(
            "scaling   {} threads = {:.2}x one thread",
            best.threads,
            best.clips_per_s / runs[0].clips_per_s
        );
    }
    println!(
        "floor     {:.0} clips/s (decompress + copy, {} threads): loader at {:.0}% of the floor",
        floor.clips_per_s,
        max_threads,
        100.0 * best.clips_per_s / floor.clips_per_s
    );
    match baseline {
        Ok(b) => println!(
            "baseline  {b:.0} clips/s (FFmpeg decode per sample, {max_threads} threads): loader {:.1}x faster",
            best.clips_per_s / b
        ),
        Err(e) => println!("baseline  not measured: {e:#}"),
    }
    for r in runs.iter().filter(|r| r.digest.is_some()) {
        println!(
            "digest    {} ({} threads)",
            r.digest.as_deref().unwrap_or_default(),
            r.threads
        );
    }
    Ok(0)
}

fn codec_name(codec: &FrameCodec) -> String {
    match *codec {
        FrameCodec::RawZstd { level, delta, accel } => format!(
            "zstd level {level}{}{}",
            if delta { " + delta" } else { "" },
            if accel > 0 {
                format!(", accel {accel}")
            } else {
                String::new()
            }
        ),
        FrameCodec::Jpeg { quality } => format!("JPEG quality {quality}"),
    }
}

#[cfg(not(feature = "ffmpeg"))]
fn baseline(_a: &BenchLoadArgs, _threads: usize, _shape: &BatchShape) -> Result<f64> {
    bail!("this gdt was built without FFmpeg")
}

/// Clips per second when every record is decoded from its source file for each sample.
#[cfg(feature = "ffmpeg")]
fn baseline(a: &BenchLoadArgs, threads: usize, shape: &BatchShape) -> Result<f64> {
    use gdt_formats::dataset::Dataset;
    use gdt_pipeline::baseline::{clips_per_second, source_paths};

    let ds = Dataset::open(&a.dataset)?;
    let sources = source_paths(&ds, a.baseline_records, a.sources.as_deref())?;
    Ok(clips_per_second(
        &sources,
        &ds.manifest.params,
        threads,
        a.seed,
        shape,
    )?)
}
