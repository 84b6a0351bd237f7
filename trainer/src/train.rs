//! The training loop: loader batches in, SGD steps on the GDT-NCE loss out, with a JSONL log,
//! checkpoints and a plot in the run directory.
//!
//! Each step launches its forward, backward and update (asynchronous on CUDA), then takes the
//! next batch from the loader and starts its upload while the GPU computes, and only then
//! reads the loss, which waits for the step to finish. Data wait is the time spent blocked on
//! the loader inside a step; on a GPU that is fed well it is zero.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gdt_formats::FileError;
use gdt_pipeline::load::augment::VideoAugment;
use gdt_pipeline::load::loader::{LoadError, Loader, LoaderBuilder, LoaderState};
use tch::{nn, Device, Kind, Tensor};

use crate::checkpoint::{self, CheckpointError, CheckpointState, CHECKPOINT_VERSION};
use crate::config::{ConfigError, Resolved, TrainConfig};
use crate::dist::{DistError, ProcessGroup, Reducer};
use crate::eval::is_held_out;
use crate::gdt_loss::{gdt_nce, gdt_nce_with_negatives};
use crate::gpu_memory::GpuMemory;
use crate::input::{normalise_video, DeviceBatch};
use crate::layers::BnSync;
use crate::model::{weights_to_channels_last_3d, GdtModel};
use crate::precision::bf16_autocast;
use crate::run_log::{self, RunLog, StepRecord};
use crate::schedule::Schedule;
use crate::sgd::Sgd;
use crate::spec::{Masks, Pairs, SpecError, TransformSpec};

/// The resolved config a run directory keeps.
pub const CONFIG_FILE: &str = "config.toml";
/// The loss and throughput plot a run directory gets at the end.
pub const PLOT_FILE: &str = "plot.png";

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The loss spec is invalid, or a batch cannot give it its masks.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The loader failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Reading or writing a run file failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The device asked for is not there.
    #[error("{0}")]
    Device(String),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The run cannot go on (refused start, loss not finite, ...).
    #[error("{0}")]
    Run(String),
    /// A collective or the rendezvous of a data-parallel run failed (the reason names the
    /// rank and c10d's cause).
    #[error(transparent)]
    Dist(#[from] DistError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| FileError::at(path)(source).into()
}

/// What a run is about to do, for the caller to show.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The device, as libtorch names it.
    pub device: String,
    /// Steps done before this invocation (0, or the resumed checkpoint's).
    pub start_step: u64,
    /// The step the run ends at.
    pub total_steps: u64,
    /// The loss spec in words.
    pub spec: String,
    /// Views (clip pairs) per step.
    pub clips_per_batch: usize,
    /// Trainable parameters.
    pub parameters: i64,
    /// Whether bf16 autocast is on.
    pub bf16: bool,
    /// Whether channels-last-3d is on.
    pub channels_last: bool,
    /// Where the run writes.
    pub run_dir: PathBuf,
}

/// Progress callbacks (the command line draws a progress bar with them).
pub trait Observer {
    /// Before the first step.
    fn started(&mut self, _info: &RunInfo) {}
    /// After every step.
    fn step(&mut self, _record: &StepRecord) {}
    /// After every checkpoint is complete.
    fn checkpoint(&mut self, _step: u64, _dir: &Path) {}
}

/// An observer that ignores everything (tests, library use).
pub struct Silent;
impl Observer for Silent {}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The step it ended at.
    pub steps: u64,
    /// The last step's loss.
    pub final_loss: f64,
    /// Mean over the steps of this invocation, first step excluded (it carries start-up).
    pub clips_per_s: f64,
    /// Mean share of a step spent waiting for the loader.
    pub data_wait: f64,
    /// Mean share of a step spent blocked in collectives outside the backward pass: the
    /// negatives' all-gather, the loss's mean, and with `dist.overlap` off the gradient
    /// all-reduce (0 on one process).
    pub all_reduce: f64,
    /// Highest GPU memory in use (NVML), when on CUDA.
    pub peak_gpu_memory_mib: Option<f64>,
    /// The last checkpoint written (by rank 0, in a data-parallel run).
    pub checkpoint: PathBuf,
    /// The sum of every trainable parameter at the end: the same on every rank of a
    /// data-parallel run, whose replicas must not drift apart (a cheap check of that).
    pub parameter_sum: f64,
    /// The plot, unless turned off.
    pub plot: Option<PathBuf>,
    /// Records the loader skipped as damaged, with the reason (shard and record named).
    pub skipped_records: Vec<String>,
    /// Batches not trained on because some sample had no negative (left with too few
    /// records after damaged ones were skipped), with the reason.
    pub passed_over_batches: Vec<String>,
}

/// Reads the resolved config a run directory keeps (for `--resume`).
pub fn run_config(run_dir: &Path) -> Result<TrainConfig, TrainError> {
    let path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    Ok(TrainConfig::from_toml(&text, &path.display().to_string(), &[])?)
}

/// Builds the model a config describes, on `device` (shared with evaluation), its batch
/// norm synchronised over `bn` when given.
pub fn build_model(cfg: &TrainConfig, device: Device, bn: &BnSync) -> (nn::VarStore, GdtModel) {
    tch::manual_seed(cfg.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = GdtModel::new(&vs.root(), &cfg.model, bn);
    (vs, model)
}

/// Where a run starts: step 0, or the latest checkpoint of its run directory.
struct Start {
    checkpoint: Option<PathBuf>,
    step: u64,
    loader: LoaderState,
    /// The global batch (records) the checkpoint's loader position counts in.
    global_batch: Option<usize>,
}

impl Start {
    /// Read before anything is written, so that a refused start leaves no trace.
    fn find(run_dir: &Path, resume: bool, total: u64) -> Result<Start, TrainError> {
        let existing = checkpoint::list(run_dir)?;
        if !resume && !existing.is_empty() {
            return Err(TrainError::Run(format!(
                "{} already holds checkpoints; continue it with --resume or choose another run directory",
                run_dir.display()
            )));
        }
        let start = if resume {
            let dir = checkpoint::latest(run_dir)?;
            let state = checkpoint::read_state(&dir)?;
            let origin = dir.join("state.json").display().to_string();
            let saved = TrainConfig::from_toml(&state.config, &origin, &[])?;
            Start {
                checkpoint: Some(dir),
                step: state.step,
                loader: state.loader,
                global_batch: Some(saved.data.batch_size * state.world),
            }
        } else {
            Start {
                checkpoint: None,
                step: 0,
                loader: LoaderState { epoch: 0, batch: 0 },
                global_batch: None,
            }
        };
        if start.step >= total {
            return Err(TrainError::Run(format!(
                "the run is already at step {} of {total}; raise `steps` to train further",
                start.step
            )));
        }
        Ok(start)
    }
}

/// `resolved` with `data.splits` made explicit: unset, it becomes every split of the dataset
/// that evaluation does not hold out, or `[]` (every record) when the dataset has no splits.
fn with_pretraining_splits(resolved: &Resolved, dataset: &Path) -> Result<Resolved, TrainError> {
    let mut resolved = resolved.clone();
    if resolved.config.data.splits.is_none() {
        let ds = gdt_formats::dataset::Dataset::open(dataset).map_err(LoadError::from)?;
        let mut names = std::collections::BTreeSet::new();
        for shard in &ds.shards {
            for r in 0..shard.len() {
                if let Some(split) = shard
                    .record(r)
                    .and_then(|v| v.meta())
                    .map_err(LoadError::from)?
                    .split
                {
                    names.insert(split);
                }
            }
        }
        let train: Vec<String> = names.iter().filter(|s| !is_held_out(s)).cloned().collect();
        if train.is_empty() && !names.is_empty() {
            return Err(TrainError::Run(format!(
                "{}: every split is held out for evaluation ({}); set data.splits to pretrain on them anyway",
                dataset.display(),
                names.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        resolved.config.data.splits = Some(train);
    }
    Ok(resolved)
}

/// The loader for the run's data settings, resumed at `state`, good for `steps` more steps.
fn open_loader(
    resolved: &Resolved,
    dataset: &Path,
    state: LoaderState,
    steps: u64,
    (rank, world): (usize, usize),
) -> Result<Loader, TrainError> {
    let (cfg, d) = (&resolved.config, &resolved.config.data);
    let video_aug = VideoAugment {
        crop: d.crop,
        scale_min: d.scale_min,
        scale_max: d.scale_max,
        color_jitter: d.color_jitter,
        ..VideoAugment::default()
    };
    let mut builder = LoaderBuilder::new(dataset)
        .batch_size(d.batch_size)
        .views(resolved.shifts, resolved.reversal)
        .clip(d.clip)
        .prefetch(d.prefetch)
        .seed(cfg.seed)
        .resume(state)
        // Each epoch yields at least one batch, so this many always covers the steps left.
        .epochs(steps + 1)
        .video_augment(video_aug)
        .min_gap(d.min_gap)
        .strict(d.strict)
        .splits(d.splits.clone().unwrap_or_default())
        .rank(rank, world);
    if let Some(t) = d.threads {
        builder = builder.threads(t);
    }
    Ok(builder.build()?)
}

/// The model and its optimizer on `device`, loaded from `checkpoint` when resuming.
fn build_trainable(
    cfg: &TrainConfig,
    device: Device,
    channels_last: bool,
    checkpoint: Option<&Path>,
    group: Option<&ProcessGroup>,
) -> Result<(nn::VarStore, GdtModel, Sgd), TrainError> {
    if device.is_cuda() {
        // Fixed input shapes: let cuDNN time its algorithms once and keep the fastest.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let bn = group.filter(|_| cfg.model.sync_bn).cloned();
    let (vs, model) = build_model(cfg, device, &bn);
    if channels_last {
        weights_to_channels_last_3d(&vs);
    }
    let mut sgd = Sgd::new(&vs, cfg.optim.momentum, cfg.optim.weight_decay);
    if let Some(dir) = checkpoint {
        checkpoint::load(dir, &vs, &mut sgd)?;
    }
    Ok((vs, model, sgd))
}

/// How a data-parallel step talks to the other ranks: the group, and DDP's reducer when
/// gradients are averaged during the backward pass (`dist.overlap`).
struct Parallel<'a> {
    group: &'a ProcessGroup,
    reducer: Option<Reducer>,
}

/// One optimizer step on a batch: embeddings, GDT-NCE over its masks, backward (gradients
/// averaged over the ranks), SGD. Returns the loss without waiting for the device, and the
/// seconds spent blocked in collectives outside the backward pass.
#[allow(clippy::too_many_arguments)]
fn gdt_step(
    cfg: &TrainConfig,
    model: &GdtModel,
    sgd: &mut Sgd,
    batch: &DeviceBatch,
    masks: &Masks,
    lr: f64,
    bf16: bool,
    channels_last: bool,
    mut parallel: Option<&mut Parallel>,
    (max_views, masks_pairs): (usize, Pairs),
) -> Result<(Tensor, f64), TrainError> {
    let device = batch.video.device();
    let (c, w) = masks.as_f32();
    let n = masks.n as i64;
    let c = Tensor::from_slice(&c).reshape([n, n]).to_device(device);
    let w = Tensor::from_slice(&w).reshape([n, n]).to_device(device);
    if let Some(reducer) = parallel.as_mut().and_then(|p| p.reducer.as_mut()) {
        reducer.before_forward()?;
    }
    let embeddings = bf16_autocast(bf16, || {
        let video = normalise_video(&batch.video, channels_last);
        model.forward(&video, &batch.audio, true)
    });
    if let Some(failure) = parallel.as_ref().and_then(|p| p.group.take_failure()) {
        return Err(failure.into()); // a sync-BN collective in the forward pass
    }
    let embeddings = embeddings.to_kind(Kind::Float);
    let (t, detach) = (cfg.loss.temperature, cfg.loss.detach_keys);
    let mut blocked_s = 0.0;
    let loss = match parallel.as_deref() {
        Some(p) if p.group.world() > 1 && cfg.loss.global_negatives => {
            let start = Instant::now();
            let (keys, keys_w) = other_ranks_negatives(
                p.group,
                &embeddings,
                max_views,
                masks_pairs == Pairs::CrossModal,
                cfg.loss.global_negatives_grad,
            )?;
            blocked_s += start.elapsed().as_secs_f64();
            gdt_nce_with_negatives(&embeddings, &c, &w, t, detach, &keys, &keys_w)
        }
        _ => gdt_nce(&embeddings, &c, &w, t, detach),
    };
    sgd.zero_grad();
    if let Some(reducer) = parallel.as_mut().and_then(|p| p.reducer.as_mut()) {
        reducer.before_backward()?;
    }
    if let Err(e) = loss.f_backward() {
        // In a data-parallel run the backward pass holds collectives (gradient buckets,
        // sync-BN, the gather's gradient): its failure is the group's.
        return Err(match parallel.as_deref() {
            Some(p) => p.group.error("backward pass", e.to_string()).into(),
            None => e.into(),
        });
    }
    if let Some(p) = parallel.filter(|p| p.reducer.is_none()) {
        let start = Instant::now();
        average_gradients(p.group, sgd.parameters())?;
        blocked_s += start.elapsed().as_secs_f64();
    }
    sgd.step(lr);
    Ok((loss, blocked_s))
}

/// The other ranks' embeddings of this step as extra negatives for this rank's anchors (the
/// reference's `dist_collect_other`; detached unless `with_grad`), and which anchor's
/// denominator holds which (`[2n, m]`: with cross-modal pairs, a video anchor meets the
/// other ranks' audio and an audio anchor their video). Every rank sends `[video rows;
/// audio rows]`, each padded with zero rows to `max_views` (a rank that skipped a damaged
/// record has fewer); embeddings are unit vectors, so a zero row is padding and takes part
/// in no denominator.
fn other_ranks_negatives(
    group: &ProcessGroup,
    embeddings: &Tensor,
    max_views: usize,
    cross_modal_only: bool,
    with_grad: bool,
) -> Result<(Tensor, Tensor), TrainError> {
    let (n, m) = (embeddings.size()[0] / 2, max_views as i64);
    let local = if with_grad {
        embeddings.shallow_clone()
    } else {
        embeddings.detach()
    };
    let pad = |rows: Tensor| rows.constant_pad_nd([0, 0, 0, m - n]);
    let padded = Tensor::cat(&[pad(local.narrow(0, 0, n)), pad(local.narrow(0, n, n))], 0);
    let all = if with_grad {
        group.all_gather_with_grad(&padded)?
    } else {
        group.all_gather(&padded)?
    };
    let others: Vec<i64> = (0..group.world() as i64)
        .filter(|&r| r != group.rank() as i64)
        .collect();
    let keys = all
        .index_select(0, &Tensor::from_slice(&others).to_device(all.device()))
        .flatten(0, 1);
    let device = embeddings.device();
    // Rows: this rank's n video anchors, then its n audio anchors. Keys: per other rank, m
    // video rows, then m audio rows.
    let anchor_is_video = Tensor::arange(2 * n, (Kind::Int64, device)).lt(n).unsqueeze(1);
    let key_is_video = Tensor::arange(keys.size()[0], (Kind::Int64, device))
        .remainder(2 * m)
        .lt(m)
        .unsqueeze(0);
    let present = keys
        .square()
        .sum_dim_intlist(1, false, Kind::Float)
        .gt(0.0)
        .unsqueeze(0);
    let keys_w = if cross_modal_only {
        anchor_is_video.ne_tensor(&key_is_video).logical_and(&present)
    } else {
        present.expand([2 * n, keys.size()[0]], false)
    };
    Ok((keys, keys_w.to_kind(Kind::Float)))
}

/// Replaces every rank's gradients by their mean over the ranks after the backward pass: one
/// all-reduce of all gradients packed into one buffer (`dist.overlap = false`).
fn average_gradients<'a>(
    group: &ProcessGroup,
    params: impl Iterator<Item = &'a Tensor>,
) -> Result<(), TrainError> {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params.map(|p| p.grad()).filter(|g| g.defined()).collect();
        let mut flat = Tensor::cat(&grads.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(), 0);
        group.all_reduce_sum(&mut flat)?;
        let flat = flat / group.world() as f64;
        let mut offset = 0;
        for mut g in grads {
            let n = g.numel() as i64;
            g.copy_(&flat.narrow(0, offset, n).view_as(&g));
            offset += n;
        }
        Ok(())
    })
}

/// Means over the steps of one invocation, its first step excluded (it carries start-up).
#[derive(Default)]
struct Rates {
    clips_per_s: f64,
    data_wait: f64,
    all_reduce: f64,
    steps: u64,
    peak_gpu_mib: Option<f64>,
}

impl Rates {
    fn add(&mut self, record: &StepRecord, first: bool) {
        if let Some(m) = record.gpu_memory_mib {
            self.peak_gpu_mib = Some(self.peak_gpu_mib.map_or(m, |p| p.max(m)));
        }
        if !first {
            self.clips_per_s += record.clips_per_s;
            self.data_wait += record.data_wait;
            self.all_reduce += record.all_reduce;
            self.steps += 1;
        }
    }

    fn means(&self) -> (f64, f64, f64) {
        let n = self.steps.max(1) as f64;
        (self.clips_per_s / n, self.data_wait / n, self.all_reduce / n)
    }
}

/// Draws `plot.png` from the run's whole log.
fn write_plot(run_dir: &Path) -> Result<PathBuf, TrainError> {
    let records = run_log::read(&run_dir.join(run_log::LOG_FILE)).map_err(io(run_dir))?;
    let path = run_dir.join(PLOT_FILE);
    crate::plot::write(&path, &records).map_err(|e| TrainError::Run(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// Trains from scratch into `run_dir`, or continues its latest checkpoint when `resume`.
///
/// Seeds torch's process-wide generator (initialisation, then the head's dropout before
/// every step): runs are exact only with one training at a time per process.
pub fn train(
    resolved: &Resolved,
    run_dir: &Path,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<Summary, TrainError> {
    run(resolved, run_dir, resume, observer, None)
}

/// [`train`] as one rank of a data-parallel run over `group`: this rank reads its share of
/// every global batch (`data.batch_size` is per rank), on `cuda:LOCAL_RANK` when the device
/// is `cuda` or `auto`; gradients are averaged over the ranks in every step (`[dist]`), the
/// logged loss is the ranks' mean, and only rank 0 writes the run directory (config, log,
/// checkpoints, plot) and reports to `observer`. Negatives are the global batch's
/// (`loss.global_negatives`, `loss.global_negatives_grad`); batch norm is per rank unless
/// `model.sync_bn`.
pub fn train_data_parallel(
    resolved: &Resolved,
    run_dir: &Path,
    resume: bool,
    observer: &mut dyn Observer,
    group: &ProcessGroup,
) -> Result<Summary, TrainError> {
    run(resolved, run_dir, resume, observer, Some(group))
}

fn run(
    resolved: &Resolved,
    run_dir: &Path,
    resume: bool,
    observer: &mut dyn Observer,
    group: Option<&ProcessGroup>,
) -> Result<Summary, TrainError> {
    let (rank, world) = group.map_or((0, 1), |g| (g.rank(), g.world()));
    let lead = rank == 0;
    // The device first: a bad one is refused before the dataset is read.
    let local_rank = group.map_or(0, |g| g.local_rank());
    let device = crate::device::parse_device_for_rank(&resolved.config.device, local_rank)
        .map_err(TrainError::Device)?;
    if let Some(g) = group {
        if device.is_cuda() && !g.carries_cuda() {
            return Err(TrainError::Run(format!(
                "the process group was joined for CPU tensors only, but the run is on {device:?}; \
                 join it with a CUDA backend (NCCL, or Gloo on CUDA tensors) or use --device cpu"
            )));
        }
    }
    let dataset = resolved.config.dataset.clone().ok_or_else(|| {
        TrainError::Run("no dataset: give one on the command line or as `dataset` in the config".into())
    })?;
    let resolved = &with_pretraining_splits(resolved, &dataset)?;
    let cfg = &resolved.config;
    let cuda = device.is_cuda();
    let bf16 = cfg.run.bf16.on(cuda) && cuda;
    let channels_last = cfg.run.channels_last.on(cuda);
    let total = cfg.steps;
    let start = Start::find(run_dir, resume, total)?;
    // A resume at another world size continues at the same global position only with the
    // same global batch.
    if let Some(global) = start.global_batch {
        if cfg.data.batch_size * world != global {
            let hint = if global % world == 0 {
                format!("use --set data.batch_size={}", global / world)
            } else {
                format!("{world} ranks cannot share it equally")
            };
            return Err(TrainError::Run(format!(
                "the checkpoint's global batch is {global} records; {world} rank(s) x data.batch_size {} is {}: {hint}",
                cfg.data.batch_size,
                cfg.data.batch_size * world
            )));
        }
    }
    let mut loader = open_loader(
        resolved,
        &dataset,
        start.loader,
        total - start.step,
        (rank, world),
    )?;
    let (vs, model, mut sgd) =
        build_trainable(cfg, device, channels_last, start.checkpoint.as_deref(), group)?;
    let mut parallel = match group {
        Some(group) => Some(Parallel {
            group,
            reducer: if cfg.dist.overlap {
                let mut named: Vec<(String, Tensor)> = vs
                    .variables()
                    .into_iter()
                    .filter(|(_, t)| t.requires_grad())
                    .collect();
                // The same order on every rank (the map's is not).
                named.sort_by(|a, b| a.0.cmp(&b.0));
                Some(Reducer::new(group, &named, cfg.dist.bucket_mb)?)
            } else {
                None
            },
        }),
        None => None,
    };
    // Written only once the checkpoint fits the model, so a refused resume leaves it as it was.
    if lead {
        std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
        let config_path = run_dir.join(CONFIG_FILE);
        gdt_formats::atomic_file::write_atomic(&config_path, cfg.to_toml().as_bytes())
            .map_err(io(&config_path))?;
    }
    let schedule = Schedule {
        lr: cfg.optim.lr,
        warmup_steps: cfg.optim.warmup_steps,
        decay: cfg.optim.decay,
        total_steps: total,
    };
    let mut log = if lead {
        Some(RunLog::open(run_dir, start.step).map_err(io(run_dir))?)
    } else {
        None
    };
    let gpu_memory = match device {
        Device::Cuda(i) => GpuMemory::open(i),
        _ => None,
    };
    let views_per_record = loader.shape().views;
    let mut quiet = Silent;
    let observer: &mut dyn Observer = if lead { observer } else { &mut quiet };
    observer.started(&RunInfo {
        device: format!("{device:?}"),
        start_step: start.step,
        total_steps: total,
        spec: resolved.spec.to_string(),
        // Global: every rank's share of the step.
        clips_per_batch: cfg.data.batch_size * views_per_record * world,
        parameters: vs.trainable_variables().iter().map(|t| t.numel() as i64).sum(),
        bf16,
        channels_last,
        run_dir: run_dir.to_path_buf(),
    });

    let mut passed_over = Vec::new();
    // Ranks must step together: one that passed over a batch the others train on would pair
    // its collectives with the wrong step. Until ranks agree on it, that ends the run.
    let in_step = |passed_over: &Vec<String>| -> Result<(), TrainError> {
        match passed_over.last() {
            Some(why) if world > 1 => Err(TrainError::Run(format!(
                "rank {rank} of {world}: a batch cannot be trained on and data-parallel runs cannot pass over one yet: {why}"
            ))),
            _ => Ok(()),
        }
    };
    let mut next = Some(fetch(&mut loader, &resolved.spec, device, &mut passed_over)?);
    in_step(&passed_over)?;
    let (mut final_loss, mut last_checkpoint, mut rates) = (f64::NAN, None, Rates::default());
    for step in start.step..total {
        let t0 = Instant::now();
        let Ready {
            batch,
            masks,
            state: state_after,
        } = next.take().expect("fetched before each step");
        let lr = schedule.lr(step);
        // The head's dropout masks follow from (seed, step) alone, so a resumed run draws
        // the ones an unbroken run would have.
        tch::manual_seed((cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step) as i64);
        let (mut loss, mut all_reduce_s) = gdt_step(
            cfg,
            &model,
            &mut sgd,
            &batch,
            &masks,
            lr,
            bf16,
            channels_last,
            parallel.as_mut(),
            (cfg.data.batch_size * views_per_record, resolved.spec.pairs),
        )?;
        if let Some(g) = group {
            // The logged loss is the mean over the ranks' batches, the global batch's loss.
            let started = Instant::now();
            loss = loss.detach().reshape([1]);
            g.all_reduce_sum(&mut loss)?;
            loss /= world as f64;
            all_reduce_s += started.elapsed().as_secs_f64();
        }
        // Overlap: the next batch is taken and its upload queued while the device works.
        let waited = Instant::now();
        if step + 1 < total {
            next = Some(fetch(&mut loader, &resolved.spec, device, &mut passed_over)?);
            in_step(&passed_over)?;
        }
        let wait = waited.elapsed().as_secs_f64();
        let loss_value = loss.double_value(&[]); // waits for the step to finish
        let seconds = t0.elapsed().as_secs_f64();
        if !loss_value.is_finite() {
            return Err(TrainError::Run(format!(
                "the loss became {loss_value} at step {} (lr {lr}); the last checkpoint is intact",
                step + 1
            )));
        }
        final_loss = loss_value;
        let record = StepRecord {
            step: step + 1,
            epoch: batch.epoch,
            batch: batch.index,
            loss: loss_value,
            lr,
            // Global: the ranks step together, each on a batch of the same size.
            clips_per_s: (batch.len() * world) as f64 / seconds,
            data_wait: wait / seconds,
            step_seconds: seconds,
            gpu_memory_mib: gpu_memory.as_ref().and_then(GpuMemory::used_mib),
            all_reduce: all_reduce_s / seconds,
        };
        rates.add(&record, step == start.step);
        if let Some(log) = log.as_mut() {
            log.append(&record).map_err(io(log.path()))?;
        }
        observer.step(&record);
        drop(batch);

        if lead && ((step + 1) % cfg.run.checkpoint_every == 0 || step + 1 == total) {
            let state = CheckpointState {
                version: CHECKPOINT_VERSION,
                step: step + 1,
                loader: state_after,
                config: cfg.to_toml(),
                world,
            };
            let dir = checkpoint::save(run_dir, &vs, &sgd, &state, cfg.run.keep_checkpoints)?;
            observer.checkpoint(step + 1, &dir);
            last_checkpoint = Some(dir);
        }
    }
    let skipped_records = loader.skipped().into_iter().map(|s| s.error).collect();
    let passed_over_batches = passed_over;
    drop(loader);
    let plot = if cfg.run.plot && lead {
        Some(write_plot(run_dir)?)
    } else {
        None
    };
    let (clips_per_s, data_wait, all_reduce) = rates.means();
    Ok(Summary {
        steps: total,
        final_loss,
        clips_per_s,
        data_wait,
        all_reduce,
        peak_gpu_memory_mib: rates.peak_gpu_mib,
        // Rank 0 writes the last checkpoint; every rank names it.
        checkpoint: last_checkpoint.unwrap_or_else(|| {
            run_dir
                .join(checkpoint::CHECKPOINT_DIR)
                .join(checkpoint::step_dir_name(total))
        }),
        parameter_sum: tch::no_grad(|| {
            vs.trainable_variables()
                .iter()
                .map(|t| t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]))
                .sum()
        }),
        plot,
        skipped_records,
        passed_over_batches,
    })
}

/// A batch ready for a step: on the device, its masks, and the loader position after it
/// (what a checkpoint taken after training on it must record).
struct Ready {
    batch: DeviceBatch,
    masks: Masks,
    state: LoaderState,
}

/// The next batch the loss can learn from. Passed over, and listed in `passed_over`: a batch
/// whose records were all skipped as damaged (the loader lists those), and one left without
/// a negative for some sample (a damaged record skipped out of a two-record batch under a
/// spec invariant to all but the sample): its loss would be exactly 0.
fn fetch(
    loader: &mut Loader,
    spec: &TransformSpec,
    device: Device,
    passed_over: &mut Vec<String>,
) -> Result<Ready, TrainError> {
    loop {
        let batch = loader
            .next()
            .ok_or_else(|| TrainError::Run("the loader ran out of batches before the last step".into()))??;
        if batch.records == 0 {
            continue;
        }
        let masks = match spec.masks(batch.views()) {
            Ok(m) => m,
            Err(e @ SpecError::NoNegative { .. }) => {
                passed_over.push(format!(
                    "epoch {} batch {} ({} records): {e}",
                    batch.epoch, batch.index, batch.records
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let state = loader.state();
        return Ok(Ready {
            batch: DeviceBatch::upload(batch, device),
            masks,
            state,
        });
    }
}
