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

use super::augment::{AudioAugment, VideoAugment};
use super::batch::{Batch, BatchShape, Pool, ViewMeta};
pub use super::error::LoadError;
use super::host::{Heap, HostMemory};
use super::sampler::{shifts_stream, time_shifts, view_stream, EpochPlan, Epochs};
use super::settings::LoaderSettings;
use super::view::{RecordViews, Render, ViewScratch};

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

/// Where a loader reads from: a dataset directory it opens, or a dataset already open
/// (shared with its record index, so nothing is read twice).
#[derive(Clone)]
enum Source {
    Path(PathBuf),
    Open(Arc<Dataset>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Open(ds) => write!(f, "{} (open)", ds.dir.display()),
        }
    }
}

/// How to load: [`LoaderSettings`] (the reference setup unless changed) and where this
/// loader stands (seed, epochs, rank, resume point), then `build`.
#[derive(Clone, Debug)]
pub struct LoaderBuilder {
    source: Source,
    settings: LoaderSettings,
    seed: u64,
    start: LoaderState,
    epochs: u64,
    rank: usize,
    world: usize,
    /// Replaces the settings' crop, scale and colour jitter (and the flip probability).
    video: Option<VideoAugment>,
    audio: AudioAugment,
    drop_last: bool,
    render: Render,
    readahead: bool,
    memory: Arc<dyn HostMemory>,
    /// A worker panics on this record: how the tests reach the panic path.
    #[cfg(test)]
    panic_at_record: Option<u32>,
}

impl LoaderBuilder {
    /// A dataset directory or object-store URL (`s3://bucket/k400`), with the default
    /// settings (see [`LoaderSettings`]).
    pub fn new(dataset: impl AsRef<Path>) -> LoaderBuilder {
        LoaderBuilder::from_source(Source::Path(dataset.as_ref().to_path_buf()))
    }

    /// A dataset that is already open: the loader shares it, and its record index, with
    /// whoever opened it.
    pub fn open(dataset: Arc<Dataset>) -> LoaderBuilder {
        LoaderBuilder::from_source(Source::Open(dataset))
    }

    fn from_source(source: Source) -> LoaderBuilder {
        LoaderBuilder {
            source,
            settings: LoaderSettings::default(),
            seed: 0,
            start: LoaderState { epoch: 0, batch: 0 },
            epochs: 1,
            rank: 0,
            world: 1,
            video: None,
            audio: AudioAugment::default(),
            drop_last: true,
            render: Render::Augment,
            readahead: true,
            memory: Arc::new(Heap),
            #[cfg(test)]
            panic_at_record: None,
        }
    }

    /// Every setting at once (the setters below change one each).
    pub fn settings(mut self, settings: &LoaderSettings) -> Self {
        self.settings = settings.clone();
        self
    }

    /// Records per batch (each gives `shifts x (2 if reversal else 1)` views).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.settings.batch_size = n;
        self
    }
    /// Time shifts per record (K_tau, default 2) and whether each gets a reversed view.
    pub fn views(mut self, shifts: usize, reversal: bool) -> Self {
        self.settings.shifts = Some(shifts);
        self.settings.reversal = Some(reversal);
        self
    }
    /// Clip length in frames (default 30: one second).
    pub fn clip(mut self, frames: usize) -> Self {
        self.settings.clip = frames;
        self
    }
    /// Worker threads (default: all cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.settings.threads = Some(n);
        self
    }
    /// Batches in flight at most (built or being built, not yet taken).
    pub fn prefetch(mut self, n: usize) -> Self {
        self.settings.prefetch = n;
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
    /// Video augmentation, replacing the settings' crop, scale range and colour jitter
    /// (default: the reference's at the settings' crop).
    pub fn video_augment(mut self, a: VideoAugment) -> Self {
        self.video = Some(a);
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
        self.settings.min_gap = frames;
        self
    }
    /// Fail the batch on a damaged record instead of skipping it.
    pub fn strict(mut self, yes: bool) -> Self {
        self.settings.strict = yes;
        self
    }
    /// Benchmark floor: read and decompress the same chunks and fill the same output bytes
    /// by plain copies, with no augmentation logic. Batches are not meaningful data.
    pub fn floor(mut self, yes: bool) -> Self {
        self.render = if yes { Render::Floor } else { Render::Augment };
        self
    }
    /// Read ahead in loader order (default: on): before building a batch, a worker asks for
    /// the bytes of the batch one window later: the kernel brings them into the page cache
    /// (`madvise(MADV_WILLNEED)`), or, from an object store, their ranged requests start. So
    /// the disk or the network works ahead of the workers. Batches are the same either way.
    pub fn readahead(mut self, yes: bool) -> Self {
        self.readahead = yes;
        self
    }
    /// Where batch buffers come from (default: the heap). A trainer that copies batches to a
    /// GPU gives page-locked memory, so the copy needs no staging (see [`HostMemory`]).
    pub fn host_memory(mut self, memory: Arc<dyn HostMemory>) -> Self {
        self.memory = memory;
        self
    }
    /// Serve only records of these splits (`train`, ...), so that pretraining never sees
    /// the records evaluation holds out. Empty (the default): every record.
    pub fn splits(mut self, names: Vec<String>) -> Self {
        self.settings.splits = Some(names);
        self
    }

    /// Opens the dataset (unless it is open already) and starts the workers.
    ///
    /// A local dataset's shards are memory-mapped (see `Dataset::open`): they must not be
    /// rewritten or truncated while the loader runs, or the process may crash with SIGBUS.
    /// gdt never modifies a finished shard.
    pub fn build(self) -> Result<Loader, LoadError> {
        let ds = match &self.source {
            Source::Path(p) => Arc::new(Dataset::open_with(p, &self.settings.open_options())?),
            Source::Open(ds) => ds.clone(),
        };
        let cfg = self.resolve(&ds)?;
        let records = served_records(&ds, &cfg.splits)?;
        let epochs = Epochs {
            records: records.len(),
            seed: cfg.seed,
            rank: self.rank,
            world: self.world,
            batch_size: self.settings.batch_size,
            drop_last: self.drop_last,
        };
        let per_epoch = epochs.plan(cfg.start.epoch).batches as u64;
        if per_epoch == 0 {
            return Err(LoadError::Config(
                "the dataset has fewer records per rank than one batch".into(),
            ));
        }
        if cfg.start.batch as u64 > per_epoch {
            return Err(LoadError::Config(
                "resume point is past the end of its epoch".into(),
            ));
        }
        let total = self.epochs * per_epoch - cfg.start.batch as u64;
        let window = cfg.prefetch.max(cfg.threads);
        let shape = cfg.shape;
        let threads = cfg.threads;
        let pool = Pool::new(window + 4, self.memory.clone(), &shape, self.settings.batch_size)?;
        let shared = Arc::new(Shared {
            ds,
            records,
            cfg,
            epochs,
            shape,
            per_epoch,
            total,
            window: window as u64,
            next_claim: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            pool,
            skipped: Mutex::new(Vec::new()),
            stats: LoaderStats::default(),
        });
        let (tx, rx) = bounded(window);
        let workers = (0..threads)
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

    /// The settings made concrete for `ds`, or why they do not fit it.
    fn resolve(&self, ds: &Dataset) -> Result<Resolved, LoadError> {
        let bad = |m: &str| Err(LoadError::Config(m.to_string()));
        let s = &self.settings;
        let (shifts, reversal) = s.layout();
        let threads = s.thread_count();
        if s.batch_size == 0 || shifts == 0 || s.clip == 0 || threads == 0 || s.prefetch == 0 {
            return bad("batch size, shifts, clip, threads and prefetch must be at least 1");
        }
        if self.world == 0 || self.rank >= self.world {
            return bad("rank must be below world");
        }
        let video = self.video.clone().unwrap_or_else(|| s.video_augment());
        let p = &ds.manifest.params;
        if video.crop > p.short_side {
            return bad("crop is larger than the stored short side");
        }
        let views = shifts * if reversal { 2 } else { 1 };
        Ok(Resolved {
            shape: BatchShape::for_dataset(p, views, s.clip, video.crop as usize),
            seed: self.seed,
            start: self.start,
            shifts,
            reversal,
            clip: s.clip,
            threads,
            prefetch: s.prefetch,
            min_gap: s.min_gap,
            strict: s.strict,
            splits: s.served_splits().to_vec(),
            video,
            audio: self.audio.clone(),
            render: self.render,
            readahead: self.readahead,
            #[cfg(test)]
            panic_at_record: self.panic_at_record,
        })
    }
}

/// The records a loader serves: every record, or those of the chosen splits (from the
/// dataset's record index, so the hot path never parses metadata).
fn served_records(ds: &Dataset, splits: &[String]) -> Result<Vec<u32>, LoadError> {
    let index = ds.index().records();
    let records: Vec<u32> = (0..index.len() as u32)
        .filter(|&r| {
            splits.is_empty()
                || index[r as usize]
                    .split
                    .as_ref()
                    .is_some_and(|split| splits.contains(split))
        })
        .collect();
    if records.is_empty() && !index.is_empty() {
        return Err(LoadError::Config(format!(
            "{}: no record of split {} (the manifest's split column)",
            ds.dir.display(),
            splits.join(" or ")
        )));
    }
    Ok(records)
}

/// A loader's settings made concrete: what the workers read.
struct Resolved {
    shape: BatchShape,
    seed: u64,
    start: LoaderState,
    shifts: usize,
    reversal: bool,
    clip: usize,
    threads: usize,
    prefetch: usize,
    min_gap: usize,
    strict: bool,
    splits: Vec<String>,
    video: VideoAugment,
    audio: AudioAugment,
    render: Render,
    readahead: bool,
    #[cfg(test)]
    panic_at_record: Option<u32>,
}

struct Shared {
    ds: Arc<Dataset>,
    /// The records served (all, or those of the chosen splits); epochs shuffle positions in it.
    records: Vec<u32>,
    cfg: Resolved,
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
    /// The plan of the epoch read ahead in (the next one, near an epoch's end).
    ahead: Option<(u64, EpochPlan)>,
    /// Byte ranges a record's views will read, asked for ahead.
    ranges: Vec<(u64, u64)>,
}

fn worker(shared: &Shared, tx: crossbeam::channel::Sender<Item>) {
    let mut scratch = match ViewScratch::new(shared.cfg.render) {
        Ok(views) => Scratch {
            views,
            starts: vec![0; shared.cfg.shifts],
            plan: None,
            ahead: None,
            ranges: Vec::new(),
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
        if shared.cfg.readahead {
            // The first window's batches have had nobody read ahead for them: asking for a
            // batch's ranges at once still overlaps its requests (on an object store).
            if seq < shared.window {
                read_ahead(shared, seq, &mut scratch);
            }
            read_ahead(shared, seq + shared.window, &mut scratch);
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

/// Asks the kernel to bring in what batch `seq` will read (see [`LoaderBuilder::readahead`]):
/// the same records and time shifts its worker will draw. A hint only: a record that cannot
/// be opened is left to the worker that builds the batch to report.
fn read_ahead(shared: &Shared, seq: u64, s: &mut Scratch) {
    if seq >= shared.total {
        return;
    }
    let cfg = &shared.cfg;
    let LoaderState { epoch, batch } = shared.position(seq);
    if s.ahead.as_ref().is_none_or(|(e, _)| *e != epoch) {
        s.ahead = Some((epoch, shared.epochs.plan(epoch)));
    }
    let plan = &s.ahead.as_ref().expect("set above").1;
    for &position in plan.batch(batch) {
        let record = shared.records[position as usize];
        let Ok(rv) = RecordViews::open(&shared.ds, record as usize) else {
            continue;
        };
        let frames = rv.entry().frames as usize;
        if frames < cfg.clip {
            continue;
        }
        let mut rng = shifts_stream(cfg.seed, epoch, record as u64);
        time_shifts(&mut rng, frames, cfg.clip, cfg.shifts, cfg.min_gap, &mut s.starts);
        rv.will_need(&s.starts, cfg.clip, &mut s.ranges);
    }
}

fn build_batch(shared: &Shared, seq: u64, s: &mut Scratch) -> Result<Batch, LoadError> {
    let cfg = &shared.cfg;
    let LoaderState { epoch, batch: index } = shared.position(seq);
    if s.plan.as_ref().is_none_or(|(e, _)| *e != epoch) {
        s.plan = Some((epoch, shared.epochs.plan(epoch)));
    }
    let mut batch = Batch::take(&shared.pool, epoch, index, shared.shape)?;
    let plan = &s.plan.as_ref().expect("set above").1;
    let records = plan.batch(index).len();
    // Views write straight into their slots. A pooled buffer keeps its length from the last
    // batch, so a full batch never zero-fills (1.1 MB per view at the defaults) what it is
    // about to overwrite; a batch that skipped a record is cut to what it holds at the end.
    let views = records * shared.shape.views;
    batch.video.set_len(views * shared.shape.video_per_view());
    batch.audio.set_len(views * shared.shape.audio_per_view());
    for i in 0..records {
        let record = shared.records[s.plan.as_ref().expect("set above").1.batch(index)[i] as usize];
        let before = batch.views.len();
        match add_record(shared, epoch, record, s, &mut batch) {
            Ok(()) => batch.records += 1,
            Err(e) if !cfg.strict && e.is_damage() => {
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
        .set_len(batch.views.len() * shared.shape.video_per_view());
    batch
        .audio
        .set_len(batch.views.len() * shared.shape.audio_per_view());
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
                label: shared.ds.index().records()[record as usize].label,
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
