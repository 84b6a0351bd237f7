//! The loader: GDT views sampled from a packed dataset on worker threads, augmented, and
//! handed out as ready batches, in order, bit-identical for any thread count.
//!
//! ```no_run
//! use gdt_pipeline::load::loader::LoaderBuilder;
//! let mut loader = LoaderBuilder::new("dataset").batch_size(8).threads(2).seed(1).build()?;
//! for batch in loader.by_ref().take(10) {
//!     let batch = batch?;
//!     // batch.video(): u8 [8, 4, 3, 30, 112, 112]; batch.audio(): f32 [8, 4, 257, 99]
//!     let _ = (batch.video().len(), batch.views()[0].reversed);
//! }
//! let resume_from = loader.state(); // LoaderBuilder::resume(resume_from) continues exactly
//! # Ok::<(), gdt_pipeline::load::loader::LoadError>(())
//! ```
//!
//! Threads: workers claim batch numbers from an atomic counter, but never more than
//! `prefetch` batches ahead of the consumer (backpressure); each builds a whole batch into
//! pooled buffers and sends it over a bounded channel; the consumer puts batches back in
//! order with a fixed ring. Peak memory is about `prefetch + 2` batches plus one record's
//! decoded clips per worker. Dropping the loader stops and joins every worker; a worker's
//! panic or error reaches the consumer as an `Err`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver};
use gdt_formats::dataset::Dataset;
use gdt_formats::FormatError;

use super::augment::{AudioAugment, VideoAugment};
use super::batch::{Batch, BatchShape, Pool, ViewMeta};
use super::sampler::{shifts_stream, time_shifts, view_stream, EpochPlan, Epochs};
use super::view::{RecordViews, Render, ViewScratch};

/// Why the loader could not give a batch.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The dataset or a shard could not be opened, or a blob failed its checksum.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A record cannot give the views asked for.
    #[error("{shard}: record {record} (dataset record {global}): {what}")]
    Record {
        /// Its shard.
        shard: PathBuf,
        /// Its number within the shard.
        record: usize,
        /// Its number in the dataset.
        global: u32,
        /// Why.
        what: String,
    },
    /// A worker thread failed (or panicked) outside any one record.
    #[error("loader worker failed: {0}")]
    Worker(String),
    /// The loader's settings do not fit together or the dataset.
    #[error("invalid loader settings: {0}")]
    Config(String),
}

/// Where a loader is: the next batch it would yield.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderState {
    /// The epoch.
    pub epoch: u64,
    /// The batch within it.
    pub batch: usize,
}

/// Where the loader's time goes, summed over workers (nanoseconds) and, for `wait`, over
/// the consumer's blocking. `gdt bench load` reports these as a split.
#[derive(Debug, Default)]
pub struct LoaderStats {
    /// Reading and decompressing chunks and spectrograms (checksums included).
    pub read_ns: AtomicU64,
    /// Crop, scale, flip and colour jitter.
    pub video_ns: AtomicU64,
    /// Spectrogram slice, volume, masks and normalisation.
    pub audio_ns: AtomicU64,
    /// The consumer waiting for a batch that was not ready.
    pub wait_ns: AtomicU64,
}

/// A snapshot of [`LoaderStats`], seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct StageSeconds {
    /// Reading and decompressing.
    pub read: f64,
    /// Video augmentation.
    pub video: f64,
    /// Audio augmentation.
    pub audio: f64,
    /// The consumer waiting.
    pub wait: f64,
}

/// A record left out of a batch because it could not be read (skip mode).
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// The epoch of the batch it was left out of.
    pub epoch: u64,
    /// That batch within its epoch.
    pub batch: usize,
    /// Why (shard and record named).
    pub error: String,
}

/// How to load: set what differs from the defaults (the reference setup), then `build`.
#[derive(Clone, Debug)]
pub struct LoaderBuilder {
    dataset: PathBuf,
    batch_size: usize,
    shifts: usize,
    reversal: bool,
    clip: usize,
    threads: usize,
    prefetch: usize,
    seed: u64,
    start: LoaderState,
    epochs: u64,
    rank: usize,
    world: usize,
    video: VideoAugment,
    audio: AudioAugment,
    drop_last: bool,
    min_gap: usize,
    strict: bool,
    normalised: bool,
    render: Render,
    splits: Vec<String>,
    /// A worker panics on this record: how the tests reach the panic path.
    #[cfg(test)]
    panic_at_record: Option<u32>,
}

impl LoaderBuilder {
    /// The defaults for a dataset directory: batch 8, 2 shifts x forward/reversed, 30-frame clips, all cores.
    pub fn new(dataset: impl AsRef<Path>) -> LoaderBuilder {
        LoaderBuilder {
            dataset: dataset.as_ref().to_path_buf(),
            batch_size: 8,
            shifts: 2,
            reversal: true,
            clip: 30,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            prefetch: 4,
            seed: 0,
            start: LoaderState { epoch: 0, batch: 0 },
            epochs: 1,
            rank: 0,
            world: 1,
            video: VideoAugment::default(),
            audio: AudioAugment::default(),
            drop_last: true,
            min_gap: 0,
            strict: false,
            normalised: false,
            render: Render::Augment,
            splits: Vec::new(),
            #[cfg(test)]
            panic_at_record: None,
        }
    }

    /// Records per batch (each gives `shifts x (2 if reversal else 1)` views).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Time shifts per record (K_tau, default 2) and whether each gets a reversed view.
    pub fn views(mut self, shifts: usize, reversal: bool) -> Self {
        self.shifts = shifts;
        self.reversal = reversal;
        self
    }
    /// Clip length in frames (default 30: one second).
    pub fn clip(mut self, frames: usize) -> Self {
        self.clip = frames;
        self
    }
    /// Worker threads (default: all cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
    /// Batches in flight at most (built or being built, not yet taken).
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }
    /// Seed of every draw: the same seed gives the same batches.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// First epoch (its first batch).
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.start = LoaderState { epoch, batch: 0 };
        self
    }
    /// Continue exactly where a loader's `state()` was.
    pub fn resume(mut self, state: LoaderState) -> Self {
        self.start = state;
        self
    }
    /// Epochs to run from the start epoch (default 1).
    pub fn epochs(mut self, n: u64) -> Self {
        self.epochs = n;
        self
    }
    /// This process's share: rank `rank` of `world` ranks. `batch_size` is per rank; the
    /// ranks' batch k together are global batch k, the same records and views for any world
    /// size with the same global batch (see `Epochs::plan`), and a `LoaderState` means the
    /// same global position at any world size.
    pub fn rank(mut self, rank: usize, world: usize) -> Self {
        self.rank = rank;
        self.world = world;
        self
    }
    /// Video augmentation (default: the reference's).
    pub fn video_augment(mut self, a: VideoAugment) -> Self {
        self.video = a;
        self
    }
    /// Audio augmentation (default: the reference's).
    pub fn audio_augment(mut self, a: AudioAugment) -> Self {
        self.audio = a;
        self
    }
    /// Leave out each epoch's last, short batch (default: yes).
    pub fn drop_last(mut self, yes: bool) -> Self {
        self.drop_last = yes;
        self
    }
    /// Minimum distance between a record's time shifts, frames.
    pub fn min_gap(mut self, frames: usize) -> Self {
        self.min_gap = frames;
        self
    }
    /// Fail the batch on a damaged record instead of skipping it.
    pub fn strict(mut self, yes: bool) -> Self {
        self.strict = yes;
        self
    }
    /// Benchmark floor: read and decompress the same chunks and fill the same output bytes
    /// by plain copies, with no augmentation logic. Batches are not meaningful data.
    pub fn floor(mut self, yes: bool) -> Self {
        self.render = if yes { Render::Floor } else { Render::Augment };
        self
    }
    /// Serve only records of these splits (`train`, ...), so that pretraining never sees
    /// the records evaluation holds out. Empty (the default): every record.
    pub fn splits(mut self, names: Vec<String>) -> Self {
        self.splits = names;
        self
    }
    /// Also produce normalised f32 video (mean 0.45, std 0.225).
    pub fn normalised_video(mut self, yes: bool) -> Self {
        self.normalised = yes;
        self
    }

    /// Opens the dataset and starts the workers.
    ///
    /// The dataset's shards are memory-mapped (see `Dataset::open`): they must not be
    /// rewritten or truncated while the loader runs, or the process may crash with SIGBUS.
    /// gdt never modifies a finished shard.
    pub fn build(self) -> Result<Loader, LoadError> {
        let bad = |m: &str| Err(LoadError::Config(m.to_string()));
        if self.batch_size == 0
            || self.shifts == 0
            || self.clip == 0
            || self.threads == 0
            || self.prefetch == 0
        {
            return bad("batch size, shifts, clip, threads and prefetch must be at least 1");
        }
        if self.world == 0 || self.rank >= self.world {
            return bad("rank must be below world");
        }
        let ds = Dataset::open(&self.dataset)?;
        let p = &ds.manifest.params;
        let views = self.shifts * if self.reversal { 2 } else { 1 };
        let shape = BatchShape::for_dataset(p, views, self.clip, self.video.crop as usize);
        if self.video.crop > p.short_side {
            return bad("crop is larger than the stored short side");
        }
        // Labels and the records served once, up front: the hot path never parses metadata.
        let mut labels = Vec::with_capacity(ds.len());
        let mut records = Vec::with_capacity(ds.len());
        for s in &ds.shards {
            for r in 0..s.len() {
                let meta = s.record(r)?.meta().ok();
                let wanted = self.splits.is_empty()
                    || meta
                        .as_ref()
                        .and_then(|m| m.split.as_ref())
                        .is_some_and(|split| self.splits.contains(split));
                if wanted {
                    records.push(labels.len() as u32);
                }
                labels.push(meta.and_then(|m| m.label_index));
            }
        }
        if records.is_empty() && !labels.is_empty() {
            return Err(LoadError::Config(format!(
                "{}: no record of split {} (the manifest's split column)",
                self.dataset.display(),
                self.splits.join(" or ")
            )));
        }
        let epochs = Epochs {
            records: records.len(),
            seed: self.seed,
            rank: self.rank,
            world: self.world,
            batch_size: self.batch_size,
            drop_last: self.drop_last,
        };
        let per_epoch = epochs.plan(self.start.epoch).batches as u64;
        if per_epoch == 0 {
            return bad("the dataset has fewer records per rank than one batch");
        }
        if self.start.batch as u64 > per_epoch {
            return bad("resume point is past the end of its epoch");
        }
        let total = self.epochs * per_epoch - self.start.batch as u64;
        let window = self.prefetch.max(self.threads);
        let shared = Arc::new(Shared {
            ds,
            labels,
            records,
            cfg: self,
            epochs,
            shape,
            per_epoch,
            total,
            window: window as u64,
            next_claim: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            pool: Pool::new(window + 4),
            skipped: Mutex::new(Vec::new()),
            stats: LoaderStats::default(),
        });
        let (tx, rx) = bounded(window);
        let workers = (0..shared.cfg.threads)
            .map(|i| {
                let (shared, tx) = (shared.clone(), tx.clone());
                std::thread::Builder::new()
                    .name(format!("gdt-loader-{i}"))
                    .spawn(move || worker(&shared, tx))
                    .map_err(|e| LoadError::Worker(format!("starting a worker: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loader {
            shared,
            rx: Some(rx),
            ring: (0..window).map(|_| None).collect(),
            next: 0,
            workers,
        })
    }
}

struct Shared {
    ds: Dataset,
    labels: Vec<Option<u32>>,
    /// The records served (all, or those of the chosen splits); epochs shuffle positions in it.
    records: Vec<u32>,
    cfg: LoaderBuilder,
    epochs: Epochs,
    shape: BatchShape,
    per_epoch: u64,
    total: u64,
    window: u64,
    next_claim: AtomicU64,
    delivered: AtomicU64,
    stop: AtomicBool,
    pool: Arc<Pool>,
    skipped: Mutex<Vec<Skipped>>,
    stats: LoaderStats,
}

impl Shared {
    /// (epoch, batch) of the n-th batch this loader yields.
    fn position(&self, seq: u64) -> LoaderState {
        let abs = self.cfg.start.batch as u64 + seq;
        LoaderState {
            epoch: self.cfg.start.epoch + abs / self.per_epoch,
            batch: (abs % self.per_epoch) as usize,
        }
    }
}

type Item = (u64, Result<Batch, LoadError>);

/// A running loader: an iterator of batches, in order.
pub struct Loader {
    shared: Arc<Shared>,
    rx: Option<Receiver<Item>>,
    ring: Vec<Option<Result<Batch, LoadError>>>,
    next: u64,
    workers: Vec<JoinHandle<()>>,
}

impl Loader {
    /// The next batch this loader would yield; a loader built with `resume(state)` yields
    /// exactly the batches this one would have yielded from here on.
    pub fn state(&self) -> LoaderState {
        self.shared.position(self.next)
    }

    /// The geometry of its batches.
    pub fn shape(&self) -> BatchShape {
        self.shared.shape
    }

    /// Batches per epoch for this rank.
    pub fn batches_per_epoch(&self) -> usize {
        self.shared.per_epoch as usize
    }

    /// Records left out so far because they could not be read (skip mode).
    pub fn skipped(&self) -> Vec<Skipped> {
        self.shared.skipped.lock().expect("skip list").clone()
    }

    /// The dataset it reads.
    pub fn dataset(&self) -> &Dataset {
        &self.shared.ds
    }

    /// Time spent per stage so far.
    pub fn stage_seconds(&self) -> StageSeconds {
        let st = &self.shared.stats;
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 * 1e-9;
        StageSeconds {
            read: s(&st.read_ns),
            video: s(&st.video_ns),
            audio: s(&st.audio_ns),
            wait: s(&st.wait_ns),
        }
    }
}

/// What waiting a bounded time for the next batch gave ([`Loader::next_within`]).
#[derive(Debug)]
pub enum Poll {
    /// The next batch, in order (or the error in its place).
    Ready(Result<Batch, LoadError>),
    /// Not ready yet: ask again (a caller that must stay responsive, e.g. to Ctrl-C, waits
    /// in slices).
    Pending,
    /// Every batch has been yielded.
    Done,
}

impl Loader {
    /// The next batch, waiting at most `timeout` for it.
    pub fn next_within(&mut self, timeout: std::time::Duration) -> Poll {
        self.poll(Some(std::time::Instant::now() + timeout))
    }

    /// Buffers the batch pool has had to allocate so far: constant in steady state, when
    /// every batch's buffers come back to the pool once it is dropped.
    pub fn buffer_allocations(&self) -> usize {
        self.shared.pool.allocations()
    }

    fn poll(&mut self, deadline: Option<std::time::Instant>) -> Poll {
        if self.next >= self.shared.total {
            return Poll::Done;
        }
        let w = self.ring.len() as u64;
        loop {
            if let Some(item) = self.ring[(self.next % w) as usize].take() {
                self.next += 1;
                self.shared.delivered.store(self.next, Ordering::Release);
                return Poll::Ready(item);
            }
            let waited = std::time::Instant::now();
            let rx = self.rx.as_ref().expect("receiver lives until drop");
            let got = match deadline {
                None => rx.recv().map_err(|_| true),
                Some(d) => rx.recv_deadline(d).map_err(|e| e.is_disconnected()),
            };
            self.shared
                .stats
                .wait_ns
                .fetch_add(waited.elapsed().as_nanos() as u64, Ordering::Relaxed);
            match got {
                Ok((seq, item)) => self.ring[(seq % w) as usize] = Some(item),
                Err(false) => return Poll::Pending,
                Err(true) => {
                    self.next = self.shared.total;
                    return Poll::Ready(Err(LoadError::Worker("every worker stopped".into())));
                }
            }
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, LoadError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.poll(None) {
            Poll::Ready(item) => Some(item),
            Poll::Pending => unreachable!("an unbounded wait is never pending"),
            Poll::Done => None,
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Dropping the receiver unblocks any worker waiting to send.
        self.rx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Per-worker state, reused for every record.
struct Scratch {
    views: ViewScratch,
    starts: Vec<usize>,
    plan: Option<(u64, EpochPlan)>,
}

fn worker(shared: &Shared, tx: crossbeam::channel::Sender<Item>) {
    let mut scratch = match ViewScratch::new(shared.cfg.render) {
        Ok(views) => Scratch {
            views,
            starts: vec![0; shared.cfg.shifts],
            plan: None,
        },
        Err(e) => {
            let _ = tx.send((0, Err(e)));
            return;
        }
    };
    loop {
        let seq = shared.next_claim.fetch_add(1, Ordering::AcqRel);
        if seq >= shared.total {
            return;
        }
        // Backpressure: never more than `window` batches ahead of the consumer.
        while seq >= shared.delivered.load(Ordering::Acquire) + shared.window {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::park_timeout(Duration::from_micros(200));
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            build_batch(shared, seq, &mut scratch)
        }))
        .unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned());
            Err(LoadError::Worker(format!(
                "panicked: {}",
                msg.unwrap_or_default()
            )))
        });
        if tx.send((seq, result)).is_err() {
            return;
        }
    }
}

fn build_batch(shared: &Shared, seq: u64, s: &mut Scratch) -> Result<Batch, LoadError> {
    let cfg = &shared.cfg;
    let LoaderState { epoch, batch: index } = shared.position(seq);
    if s.plan.as_ref().is_none_or(|(e, _)| *e != epoch) {
        s.plan = Some((epoch, shared.epochs.plan(epoch)));
    }
    let mut batch = Batch::take(&shared.pool, epoch, index, shared.shape, cfg.normalised);
    let plan = &s.plan.as_ref().expect("set above").1;
    let records = plan.batch(index).len();
    // Views write straight into their slots. A pooled buffer keeps its length from the last
    // batch, so a full batch never zero-fills (1.1 MB per view at the defaults) what it is
    // about to overwrite; a batch that skipped a record is cut to what it holds at the end.
    let views = records * shared.shape.views;
    batch.video.resize(views * shared.shape.video_per_view(), 0);
    batch.audio.resize(views * shared.shape.audio_per_view(), 0.0);
    for i in 0..records {
        let record = shared.records[s.plan.as_ref().expect("set above").1.batch(index)[i] as usize];
        let before = batch.views.len();
        match add_record(shared, epoch, record, s, &mut batch) {
            Ok(()) => batch.records += 1,
            Err(e) if !cfg.strict && matches!(e, LoadError::Record { .. } | LoadError::Format(_)) => {
                batch.views.truncate(before);
                shared.skipped.lock().expect("skip list").push(Skipped {
                    epoch,
                    batch: index,
                    error: e.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    batch
        .video
        .truncate(batch.views.len() * shared.shape.video_per_view());
    batch
        .audio
        .truncate(batch.views.len() * shared.shape.audio_per_view());
    if let Some(out) = batch.video_f32.as_mut() {
        out.clear();
        out.extend(batch.video.iter().map(|&v| (v as f32 / 255.0 - 0.45) / 0.225));
    }
    Ok(batch)
}

fn add_record(
    shared: &Shared,
    epoch: u64,
    record: u32,
    s: &mut Scratch,
    batch: &mut Batch,
) -> Result<(), LoadError> {
    let cfg = &shared.cfg;
    let shape = shared.shape;
    let rv = RecordViews::open(&shared.ds, record as usize)?;
    #[cfg(test)]
    if cfg.panic_at_record == Some(record) {
        panic!("injected for record {record}");
    }
    let e = *rv.entry();
    if (e.frames as usize) < cfg.clip {
        return Err(rv.error(format!(
            "{} frames cannot hold a {}-frame clip",
            e.frames, cfg.clip
        )));
    }
    let stats = &shared.stats;
    let lap = |counter: &AtomicU64, since: std::time::Instant| {
        counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        std::time::Instant::now()
    };
    let clock = std::time::Instant::now();
    rv.read_spectrogram(&mut s.views)?;
    lap(&stats.read_ns, clock);
    time_shifts(
        &mut shifts_stream(cfg.seed, epoch, record as u64),
        e.frames as usize,
        cfg.clip,
        cfg.shifts,
        cfg.min_gap,
        &mut s.starts,
    );
    let (vpv, apv) = (shape.video_per_view(), shape.audio_per_view());
    let directions = if cfg.reversal { 2 } else { 1 };
    for k in 0..cfg.shifts {
        let start = s.starts[k];
        let clock = std::time::Instant::now();
        rv.read_clip(&mut s.views, start, cfg.clip)?;
        lap(&stats.read_ns, clock);
        let audio_start = rv.audio_start(start, shape.audio_frames)?;
        for reversed in [false, true].into_iter().take(directions) {
            let v = (k * directions + reversed as usize) as u64;
            let mut rng = view_stream(cfg.seed, epoch, record as u64, v);
            let vd = cfg.video.draw(&mut rng, e.width, e.height);
            let ad = cfg.audio.draw(&mut rng, e.mels, shape.audio_frames as u32);
            // This view's slots (see `build_batch`: the buffers already have full length).
            let slot = batch.views.len();
            let clock = std::time::Instant::now();
            let video = &mut batch.video[slot * vpv..(slot + 1) * vpv];
            rv.video(&mut s.views, &cfg.video, &vd, reversed, video);
            let clock = lap(&stats.video_ns, clock);
            let audio = &mut batch.audio[slot * apv..(slot + 1) * apv];
            rv.audio(&s.views, &cfg.audio, &ad, audio_start, reversed, audio);
            lap(&stats.audio_ns, clock);
            batch.views.push(ViewMeta {
                record,
                label: shared.labels[record as usize],
                shift: k as u8,
                start_frame: start as u32,
                audio_start: audio_start as u32,
                reversed,
                video: vd,
                audio: ad,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::packed::SmallDataset;

    #[test]
    fn a_worker_panic_fails_its_batch_only_and_names_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        SmallDataset {
            count: 6,
            seed: 3,
            ..SmallDataset::default()
        }
        .write(dir.path())
        .unwrap();
        let builder = || LoaderBuilder::new(dir.path()).batch_size(2).threads(2).epochs(2);
        let order: Vec<Vec<u32>> = builder()
            .build()
            .unwrap()
            .map(|b| b.unwrap().views().iter().step_by(4).map(|v| v.record).collect())
            .collect();
        let victim = order[1][0];
        let mut faulty = builder();
        faulty.panic_at_record = Some(victim);
        let loader = faulty.build().unwrap();
        // On another thread, so that a hang fails the test instead of stalling it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let results: Vec<Result<Vec<u32>, String>> = loader
                .map(|b| {
                    b.map(|b| b.views().iter().step_by(4).map(|v| v.record).collect())
                        .map_err(|e| e.to_string())
                })
                .collect();
            let _ = tx.send(results);
        });
        let results = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the loader hung after a worker panic");
        assert_eq!(results.len(), order.len(), "every batch is still delivered");
        for (got, want) in results.iter().zip(&order) {
            match got {
                Err(e) => {
                    assert!(want.contains(&victim), "a batch without the record failed: {e}");
                    assert!(
                        e.contains("panicked") && e.contains(&format!("injected for record {victim}")),
                        "{e}"
                    );
                }
                Ok(records) => {
                    assert!(!want.contains(&victim), "the victim's batch succeeded");
                    assert_eq!(records, want);
                }
            }
        }
    }
}
