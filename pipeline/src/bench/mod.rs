//! `gdt bench load`: how many clips per second the loader gives on this machine, measured so
//! that the figure sizes machines honestly.
//!
//! For each thread count (1, 2, 4, ... up to the cores and the core count itself, or the
//! counts asked for) it runs several rounds, each a loader run and a floor run
//! (decompress-and-copy, the same reads with no augmentation), alternated so that drift in
//! the machine's speed hits both alike; the report gives each one's median, minimum and
//! maximum and keeps every round. Each run measures the steady state ([`steady`]): the
//! warm-up takes the first wave of batches and the rate is fitted to the arrival times.
//! `cold` drops the dataset's pages from the page cache before each run (a dataset larger
//! than memory) and reports what a clip costs the storage. Given what one GPU consumes, the
//! report says how many GPUs each thread count feeds. The on-the-fly FFmpeg baseline (with
//! the `ffmpeg` feature) is measured once, at the most threads.
//!
//! - [`steady`]: the steady-state rate from arrival times;
//! - [`storage`]: dropping cached pages, bytes read from storage;
//! - [`machine`]: what the machine is.

pub mod machine;
pub mod steady;
pub mod storage;

use std::path::PathBuf;
use std::time::Instant;

use gdt_formats::dataset::{Dataset, DatasetManifest};
use gdt_formats::params::FrameCodec;
use gdt_formats::storage::Location;
use gdt_formats::{FileError, FormatError};
use serde::Serialize;

use crate::load::batch::BatchShape;
use crate::load::error::LoadError;
use crate::load::loader::{Loader, LoaderBuilder, StageSeconds};
use crate::load::settings::LoaderSettings;
pub use machine::Machine;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The dataset could not be read, or the loader failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The page cache could not be told to drop a shard.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The settings make no measurement.
    #[error("{0}")]
    Settings(String),
}

impl From<FormatError> for BenchError {
    fn from(e: FormatError) -> Self {
        BenchError::Load(e.into())
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct LoadBench {
    /// The packed dataset.
    pub dataset: PathBuf,
    /// What the loader serves (its `threads` is ignored: see `threads`).
    pub settings: LoaderSettings,
    /// Seed of every draw.
    pub seed: u64,
    /// Batches skipped before the clock starts (at least one per worker: [`steady`]).
    pub warmup: usize,
    /// Batches measured per run (whole waves of one batch per worker, at least two).
    pub batches: usize,
    /// Measure for this long per run instead (still at least two batches per worker).
    pub seconds: Option<f64>,
    /// Rounds of (loader, floor) per thread count.
    pub rounds: usize,
    /// Thread counts to measure.
    pub threads: Vec<usize>,
    /// Drop the dataset's pages from the page cache before each run.
    pub cold: bool,
    /// The loader reads ahead in its own order (see [`LoaderBuilder::readahead`]).
    pub readahead: bool,
    /// Also digest batches `warmup..warmup + batches` per thread count (an unmeasured pass).
    pub digest: bool,
    /// Clips per second one GPU consumes: the report says how many GPUs each count feeds.
    pub gpu_clips_per_s: Option<f64>,
    /// Records decoded on the fly for the FFmpeg baseline.
    pub baseline_records: usize,
    /// Where the source videos are, for the baseline (default: as the pack recorded).
    pub sources: Option<PathBuf>,
    /// The build's features, for the report's machine line.
    pub build_features: Vec<String>,
}

/// 1, 2, 4, ... up to `max`, and `max` itself: enough points to see the scaling on a
/// 128-core node without measuring all 128.
pub fn thread_counts(max: usize) -> Vec<usize> {
    let max = max.max(1);
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n < max)
        .collect();
    counts.push(max);
    counts
}

/// One run: a loader (or the floor) with some threads, measured in steady state.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// Which round (0-based).
    pub round: usize,
    /// The copy-only floor rather than the loader.
    pub floor: bool,
    /// Clips per second (a clip: one view's video with its audio).
    pub clips_per_s: f64,
    /// Records per second.
    pub samples_per_s: f64,
    /// Bytes of batches per second, MB.
    pub mb_per_s: f64,
    /// Batches skipped before the clock started.
    pub warmup: usize,
    /// Batches measured.
    pub batches: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// Shares of worker time (read, video, audio) and of the consumer's time (wait).
    pub stages: StageSeconds,
    /// Bytes read from storage per clip, over the whole run (warm-up included): what a cold
    /// clip costs the disk. Records read twice in a run come from the page cache, so on a
    /// dataset smaller than the run's reads this is a lower bound; warm runs read ~0.
    pub storage_bytes_per_clip: Option<f64>,
    /// From an object store: requests made per clip, over the whole run (each run opens
    /// the dataset anew, so its memory cache starts empty).
    pub requests_per_clip: Option<f64>,
    /// From an object store: bytes fetched per clip, over the whole run.
    pub fetched_bytes_per_clip: Option<f64>,
    /// Records left out of the run's batches because they are damaged (skip mode).
    pub skipped_records: usize,
}

/// The median, smallest and largest of a figure over the rounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Every figure for one thread count.
#[derive(Clone, Debug, Serialize)]
pub struct AtThreads {
    /// Worker threads.
    pub threads: usize,
    /// The loader's clips per second, median of the rounds.
    pub clips_per_s: f64,
    /// Its records per second, median.
    pub samples_per_s: f64,
    /// Its MB per second, median.
    pub mb_per_s: f64,
    /// Its clips per second over the rounds.
    pub loader: Spread,
    /// The floor's clips per second over the rounds.
    pub floor: Spread,
    /// The stage shares of the round whose rate is the median's.
    pub stages: StageSeconds,
    /// Bytes read from storage per clip, median of the loader's rounds.
    pub storage_bytes_per_clip: Option<f64>,
    /// The storage read rate the median clips/s needs, MB/s.
    pub storage_mb_per_s: Option<f64>,
    /// From an object store: requests per clip, median of the loader's rounds.
    pub requests_per_clip: Option<f64>,
    /// From an object store: bytes fetched per clip, median of the loader's rounds.
    pub fetched_bytes_per_clip: Option<f64>,
    /// GPUs this many threads feed (with `gpu_clips_per_s`).
    pub gpus_fed: Option<f64>,
    /// Cores each GPU needs at this count (with `gpu_clips_per_s`).
    pub cores_per_gpu: Option<f64>,
    /// xxh3-64 of the batches' bytes (with `digest`): the same for every thread count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Every run, loader and floor, in the order run.
    pub rounds: Vec<Run>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The most threads measured: its loader's clips per second, median.
    pub clips_per_s: f64,
    /// Its records per second.
    pub samples_per_s: f64,
    /// Its MB per second.
    pub mb_per_s: f64,
    /// That thread count.
    pub threads: usize,
    /// Its stage shares.
    pub stages: StageSeconds,
    /// Every thread count measured.
    pub scaling: Vec<AtThreads>,
    /// The floor at the most threads, median.
    pub floor_clips_per_s: f64,
    /// The on-the-fly FFmpeg baseline's clips per second, when it could be measured.
    pub baseline_clips_per_s: Option<f64>,
    /// Why it was not.
    pub baseline_error: Option<String>,
    /// Records per batch.
    pub batch_size: usize,
    /// Views per record.
    pub views_per_record: usize,
    /// Frames, height, width of a clip.
    pub clip: [usize; 3],
    /// Mels and frames of a view's audio.
    pub audio: [usize; 2],
    /// How frames are stored.
    pub stored: String,
    /// The resample kernel this CPU runs.
    pub resample_kernel: &'static str,
    /// Warm-up asked for (each run skips at least one batch per worker).
    pub warmup: usize,
    /// Batches asked for per run (each run measures at least two per worker).
    pub batches: usize,
    /// Seconds asked for per run, instead of batches.
    pub seconds: Option<f64>,
    /// Rounds per thread count.
    pub rounds: usize,
    /// Pages dropped from the page cache before each run.
    pub cold: bool,
    /// The loader read ahead in its order.
    pub readahead: bool,
    /// What one GPU consumes, as given.
    pub gpu_clips_per_s: Option<f64>,
    /// Damaged records skipped, the most in any run: batches were short of them.
    pub skipped_records: usize,
    /// The process's peak resident memory over the whole benchmark, MiB.
    pub peak_memory_mib: Option<f64>,
    /// The machine and build.
    pub machine: Machine,
}

/// Runs the benchmark; `progress` hears one line per run.
pub fn run(b: &LoadBench, progress: &mut dyn FnMut(&str)) -> Result<BenchReport, BenchError> {
    if b.batches == 0 && b.seconds.is_none_or(|s| s <= 0.0) {
        return Err(BenchError::Settings(
            "measure at least one batch or some seconds".into(),
        ));
    }
    if b.rounds == 0 || b.threads.is_empty() || b.threads.contains(&0) {
        return Err(BenchError::Settings(
            "at least one round and thread counts of at least 1".into(),
        ));
    }
    let remote = Location::is_url(&b.dataset);
    if remote && b.cold {
        return Err(BenchError::Settings(
            "--cold drops a local dataset's pages from the page cache; an object store's \
             dataset is read cold already (every run opens it with an empty memory cache)"
                .into(),
        ));
    }
    let manifest = DatasetManifest::load(&b.dataset)?;
    let shards: Vec<PathBuf> = if b.cold {
        let ds = Dataset::open(&b.dataset)?;
        ds.shards.iter().map(|s| s.path().to_path_buf()).collect()
    } else {
        Vec::new()
    };
    let mut scaling = Vec::new();
    let mut shape = None;
    for &threads in &b.threads {
        let (at, s) = at_threads(b, threads, &shards, progress)?;
        shape = Some(s);
        scaling.push(at);
    }
    let shape = shape.expect("at least one thread count");
    let best = scaling.last().expect("at least one thread count").clone();
    let baseline = baseline(b, best.threads, &shape);
    Ok(BenchReport {
        clips_per_s: best.clips_per_s,
        samples_per_s: best.samples_per_s,
        mb_per_s: best.mb_per_s,
        threads: best.threads,
        stages: best.stages,
        floor_clips_per_s: best.floor.median,
        baseline_clips_per_s: baseline.as_ref().ok().copied(),
        baseline_error: baseline.err(),
        batch_size: b.settings.batch_size,
        views_per_record: shape.views,
        clip: [shape.clip, shape.crop, shape.crop],
        audio: [shape.mels, shape.audio_frames],
        stored: stored(&manifest),
        resample_kernel: crate::load::augment::resample_kernel(),
        warmup: b.warmup,
        batches: b.batches,
        seconds: b.seconds,
        rounds: b.rounds,
        cold: b.cold,
        readahead: b.readahead,
        gpu_clips_per_s: b.gpu_clips_per_s,
        skipped_records: scaling
            .iter()
            .flat_map(|t| &t.rounds)
            .map(|r| r.skipped_records)
            .max()
            .unwrap_or(0),
        peak_memory_mib: machine::peak_resident_bytes().map(|b| b as f64 / (1 << 20) as f64),
        machine: Machine::describe(&b.dataset, b.build_features.clone()),
        scaling,
    })
}

/// The rounds at one thread count, their spread, sizing and digest.
fn at_threads(
    b: &LoadBench,
    threads: usize,
    shards: &[PathBuf],
    progress: &mut dyn FnMut(&str),
) -> Result<(AtThreads, BatchShape), BenchError> {
    let mut rounds = Vec::new();
    let mut shape = None;
    for round in 0..b.rounds {
        for floor in [false, true] {
            if b.cold {
                storage::drop_cached(shards)?;
            }
            let (run, s) = measure(b, threads, floor, round)?;
            progress(&format!(
                "{threads} threads, round {}/{}: {} {:.0} clips/s",
                round + 1,
                b.rounds,
                if floor { "floor " } else { "loader" },
                run.clips_per_s
            ));
            shape = Some(s);
            rounds.push(run);
        }
    }
    let loader: Vec<&Run> = rounds.iter().filter(|r| !r.floor).collect();
    let floor: Vec<f64> = rounds.iter().filter(|r| r.floor).map(|r| r.clips_per_s).collect();
    let rates: Vec<f64> = loader.iter().map(|r| r.clips_per_s).collect();
    let spread = Spread::of(&rates);
    let median_run = loader
        .iter()
        .min_by(|a, c| {
            (a.clips_per_s - spread.median)
                .abs()
                .total_cmp(&(c.clips_per_s - spread.median).abs())
        })
        .expect("at least one round");
    let median_of = |f: fn(&Run) -> Option<f64>| {
        let v: Vec<f64> = loader.iter().filter_map(|r| f(r)).collect();
        (!v.is_empty()).then(|| Spread::of(&v).median)
    };
    let storage_bytes_per_clip = median_of(|r| r.storage_bytes_per_clip);
    let gpus_fed = b.gpu_clips_per_s.map(|g| spread.median / g);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let at = AtThreads {
        threads,
        clips_per_s: spread.median,
        samples_per_s: Spread::of(&loader.iter().map(|r| r.samples_per_s).collect::<Vec<_>>()).median,
        mb_per_s: Spread::of(&loader.iter().map(|r| r.mb_per_s).collect::<Vec<_>>()).median,
        loader: spread,
        floor: Spread::of(&floor),
        stages: median_run.stages,
        storage_bytes_per_clip,
        storage_mb_per_s: storage_bytes_per_clip.map(|bytes| bytes * spread.median / 1e6),
        requests_per_clip: median_of(|r| r.requests_per_clip),
        fetched_bytes_per_clip: median_of(|r| r.fetched_bytes_per_clip),
        gpus_fed,
        cores_per_gpu: gpus_fed.map(|g| threads.min(cores) as f64 / g),
        digest: if b.digest { Some(digest(b, threads)?) } else { None },
        rounds,
    };
    Ok((at, shape.expect("at least one run")))
}

/// A loader for the benchmark's settings with `threads` workers, good for `batches`.
fn loader(b: &LoadBench, threads: usize, floor: bool, batches: usize) -> Result<Loader, LoadError> {
    // Enough epochs for the run even if an epoch is a single batch.
    LoaderBuilder::new(&b.dataset)
        .settings(&b.settings)
        .threads(threads)
        .seed(b.seed)
        .epochs(batches as u64 + 1)
        .floor(floor)
        .readahead(b.readahead)
        .build()
}

/// One run in steady state (see [`steady`]).
fn measure(
    b: &LoadBench,
    threads: usize,
    floor: bool,
    round: usize,
) -> Result<(Run, BatchShape), BenchError> {
    let warmup = steady::warmup_batches(b.warmup, threads);
    let at_least = steady::measured_batches(b.batches, threads);
    // With `seconds`, batches come until the time is up (and at least `at_least` came).
    let most = match b.seconds {
        Some(_) => usize::MAX / 2,
        None => at_least,
    };
    // Storage reads are counted from the loader's start: in a cold run the warm-up's reads
    // are as cold as the rest.
    let read_before = storage::storage_read_bytes();
    let fetched_before = gdt_formats::storage::fetched();
    let mut loader = loader(b, threads, floor, warmup + most.min(1 << 30))?;
    let remote = loader.dataset().is_remote();
    let mut warm_clips = 0;
    for _ in 0..warmup {
        warm_clips += next(&mut loader, "during the warm-up")?.views().len();
    }
    let before = loader.stage_seconds();
    let start = Instant::now();
    let (mut clips, mut samples, mut bytes, mut arrivals) = (0usize, 0usize, 0usize, Vec::new());
    while arrivals.len() < most {
        let batch = next(&mut loader, "while measuring")?;
        clips += batch.views().len();
        samples += batch.records;
        bytes += batch.video().len() + batch.audio().len() * 4;
        let t = start.elapsed().as_secs_f64();
        arrivals.push((t, clips as f64));
        if b.seconds.is_some_and(|s| t >= s) && arrivals.len() >= at_least {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let read = storage::storage_read_bytes()
        .zip(read_before)
        .map(|(a, b)| a.saturating_sub(b));
    let fetched = gdt_formats::storage::fetched();
    let after = loader.stage_seconds();
    let shape = loader.shape();
    // The fitted rate of clips; records and bytes follow it in proportion.
    let clips_per_s = steady::slope_rate(&arrivals).unwrap_or(clips as f64 / seconds);
    let per_clip = |x: usize| x as f64 / clips.max(1) as f64;
    let all_clips = (warm_clips + clips).max(1) as f64;
    let work = (after.read - before.read) + (after.video - before.video) + (after.audio - before.audio);
    let frac = |x: f64| if work > 0.0 { x / work } else { 0.0 };
    let run = Run {
        round,
        floor,
        clips_per_s,
        samples_per_s: clips_per_s * per_clip(samples),
        mb_per_s: clips_per_s * per_clip(bytes) / 1e6,
        warmup,
        batches: arrivals.len(),
        seconds,
        stages: StageSeconds {
            read: frac(after.read - before.read),
            video: frac(after.video - before.video),
            audio: frac(after.audio - before.audio),
            wait: (after.wait - before.wait) / seconds,
        },
        storage_bytes_per_clip: read.map(|r| r as f64 / all_clips),
        requests_per_clip: remote.then(|| (fetched.0 - fetched_before.0) as f64 / all_clips),
        fetched_bytes_per_clip: remote.then(|| (fetched.1 - fetched_before.1) as f64 / all_clips),
        skipped_records: loader.skipped().len(),
    };
    Ok((run, shape))
}

/// The loader's next batch; running out is an error saying when.
fn next(loader: &mut Loader, when: &str) -> Result<crate::load::batch::Batch, BenchError> {
    match loader.next() {
        Some(batch) => Ok(batch?),
        None => Err(BenchError::Settings(format!(
            "the dataset ran out of batches {when}"
        ))),
    }
}

/// xxh3-64 of batches `warmup..warmup + batches`' video and audio bytes (audio as
/// little-endian f32), in an unmeasured pass: `gdt.Digest` computes the same in Python.
fn digest(b: &LoadBench, threads: usize) -> Result<String, BenchError> {
    let mut loader = loader(b, threads, false, b.warmup + b.batches)?;
    let mut d = xxhash_rust::xxh3::Xxh3::new();
    for i in 0..b.warmup + b.batches {
        let batch = next(&mut loader, "while digesting")?;
        if i >= b.warmup {
            d.update(batch.video());
            let audio: Vec<u8> = batch.audio().iter().flat_map(|x| x.to_le_bytes()).collect();
            d.update(&audio);
        }
    }
    Ok(format!("{:016x}", d.digest()))
}

/// How the dataset stores frames: the codec, chunk size and ratio to raw frames.
fn stored(m: &DatasetManifest) -> String {
    let codec = match m.params.codec {
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
    };
    let t = &m.totals;
    format!(
        "{codec}, {}-frame chunks, {:.2}x vs raw frames",
        m.params.chunk_frames,
        t.counts.raw_frame_bytes as f64 / t.stored_bytes.max(1) as f64
    )
}

/// The on-the-fly FFmpeg baseline's clips per second, or why it was not measured.
#[cfg(feature = "ffmpeg")]
fn baseline(b: &LoadBench, threads: usize, shape: &BatchShape) -> Result<f64, String> {
    use crate::baseline::{clips_per_second, source_paths};
    let run = || -> Result<f64, crate::baseline::BaselineError> {
        let ds = Dataset::open(&b.dataset).map_err(LoadError::from)?;
        let sources = source_paths(&ds, b.baseline_records, b.sources.as_deref())?;
        clips_per_second(&sources, &ds.manifest.params, threads, b.seed, shape)
    };
    run().map_err(|e| e.to_string())
}

#[cfg(not(feature = "ffmpeg"))]
fn baseline(_b: &LoadBench, _threads: usize, _shape: &BatchShape) -> Result<f64, String> {
    Err("this gdt was built without FFmpeg".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_double_up_to_the_cores_and_end_on_them() {
        assert_eq!(thread_counts(1), [1]);
        assert_eq!(thread_counts(2), [1, 2]);
        assert_eq!(thread_counts(16), [1, 2, 4, 8, 16]);
        assert_eq!(thread_counts(24), [1, 2, 4, 8, 16, 24]);
        assert_eq!(thread_counts(128).len(), 8);
    }

    #[test]
    fn spreads_take_the_median() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of(&[1.0, 4.0]).median, 2.5);
    }
}
