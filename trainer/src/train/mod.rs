//! The training loop: loader batches in, SGD steps on the GDT-NCE loss out, with a JSONL log,
//! checkpoints and a plot in the run directory.
//!
//! A run reads as its steps: [`Trainer::open`] (config, resume point, loader, model,
//! optimizer, process group), then for every step [`Trainer::train_step`] (launch the step,
//! take the next batch while it runs, log it, maybe checkpoint), then [`Trainer::finish`].
//!
//! Each step launches its forward, backward and update (asynchronous on CUDA), then takes the
//! next batch from the loader and starts its upload while the GPU computes, and only then
//! reads the loss, which waits for the step to finish. Data wait is the time spent blocked on
//! the loader inside a step; on a GPU that is fed well it is zero.
//!
//! - `start`: where a run starts (a new directory or the latest checkpoint);
//! - `feed`: the batches trained on, with their masks, on the device;
//! - `step`: one optimizer step;
//! - `report`: what a run tells its caller.

mod feed;
mod report;
mod start;
mod step;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gdt_formats::dataset::Dataset;
use gdt_formats::FileError;
use gdt_pipeline::load::error::LoadError;
use gdt_pipeline::load::loader::{LoaderBuilder, LoaderState};
use tch::{nn, Device, Kind};

pub use report::{Observer, RunInfo, Silent, Summary};

use crate::checkpoint::{self, CheckpointState, CHECKPOINT_VERSION};
use crate::config::{Resolved, TrainConfig, CONFIG_FILE};
use crate::device::parse_device_for_rank;
use crate::dist::{CudaBackend, DataParallel, Launch, ProcessGroup};
use crate::error::TrainError;
use crate::gpu_memory::GpuMemory;
use crate::input::Uploader;
use crate::model::{self, weights_to_channels_last_3d, GdtModel};
use crate::run_log::{self, RunLog, StepRecord};
use crate::schedule::Schedule;
use crate::sgd::Sgd;
use crate::splits::pretraining_splits;
use feed::{Feed, Ready};
use report::Rates;
use start::Start;
use step::StepRule;

pub use crate::config::run_config;

/// The loss and throughput plot a run directory gets at the end.
pub const PLOT_FILE: &str = "plot.png";

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
    Trainer::open(resolved, run_dir, resume, observer, None)?.run()
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
    Trainer::open(resolved, run_dir, resume, observer, Some(group))?.run()
}

/// How the ranks of a data-parallel run find each other.
#[derive(Clone, Copy, Debug)]
pub struct DistOptions {
    /// How long a rank waits for the others (rendezvous, collectives) before it gives up.
    pub timeout: Duration,
    /// Gloo rather than NCCL for CUDA tensors.
    pub gloo_on_cuda: bool,
}

/// [`train`], or [`train_data_parallel`] when the process was started by torchrun, Slurm
/// or with `RANK`/`WORLD_SIZE` set (see [`Launch`]): the process group is joined here.
/// Returns the summary and this process's place in the run, if it is one rank of several.
pub fn train_as_launched(
    resolved: &Resolved,
    run_dir: &Path,
    resume: bool,
    observer: &mut dyn Observer,
    dist: DistOptions,
) -> Result<(Summary, Option<Launch>), TrainError> {
    let Some(launch) = Launch::from_env()? else {
        return Ok((train(resolved, run_dir, resume, observer)?, None));
    };
    let device = parse_device_for_rank(&resolved.config.device, launch.local_rank)?;
    let cuda = CudaBackend::for_device(device, dist.gloo_on_cuda);
    let group = ProcessGroup::join(&launch, dist.timeout, cuda)?;
    let summary = train_data_parallel(resolved, run_dir, resume, observer, &group)?;
    Ok((summary, Some(launch)))
}

/// The head's dropout masks follow from (seed, step) alone, so a resumed run draws the ones
/// an unbroken run would have.
fn dropout_seed(seed: u64, step: u64) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step) as i64
}

/// A run in progress: everything its steps use.
struct Trainer<'o> {
    resolved: Resolved,
    run_dir: PathBuf,
    device: Device,
    world: usize,
    /// Rank 0: writes the run directory and reports to the observer.
    lead: bool,
    start: Start,
    feed: Feed,
    vs: nn::VarStore,
    model: GdtModel,
    sgd: Sgd,
    rule: StepRule,
    parallel: Option<DataParallel>,
    schedule: Schedule,
    log: Option<RunLog>,
    gpu_memory: Option<GpuMemory>,
    observer: &'o mut dyn Observer,
    rates: Rates,
    final_loss: f64,
    last_checkpoint: Option<PathBuf>,
    /// Read each step's loss while the next one runs (`run.pipelined`).
    pipelined: bool,
    /// When the last step finished (its bookkeeping done).
    mark: Instant,
    /// Seconds blocked on the loader since then.
    waited: f64,
}

/// A step launched on the device whose loss has not been read yet.
struct Launched {
    step: u64,
    lr: f64,
    loss: tch::Tensor,
    ready: Ready,
    /// Seconds its launch spent blocked in collectives (data-parallel).
    blocked: f64,
}

impl<'o> Trainer<'o> {
    /// Everything a run needs, in the order that refuses a bad start before anything is
    /// written: the device, the dataset and its splits, the resume point, the loader, the
    /// model and optimizer (loaded from the checkpoint), the data-parallel hooks; then the
    /// run directory's config and log.
    fn open(
        resolved: &Resolved,
        run_dir: &Path,
        resume: bool,
        observer: &'o mut dyn Observer,
        group: Option<&ProcessGroup>,
    ) -> Result<Trainer<'o>, TrainError> {
        let (rank, world) = group.map_or((0, 1), |g| (g.rank(), g.world()));
        let device = parse_device_for_rank(&resolved.config.device, group.map_or(0, |g| g.local_rank()))?;
        if group.is_some_and(|g| device.is_cuda() && !g.carries_cuda()) {
            return Err(TrainError::CpuOnlyGroup {
                device: format!("{device:?}"),
            });
        }
        let dir = resolved.config.dataset.clone().ok_or(TrainError::NoDataset)?;
        let ds = Arc::new(
            Dataset::open_with(&dir, &resolved.config.data.open_options()).map_err(LoadError::from)?,
        );
        let resolved = with_pretraining_splits(resolved, &ds)?;
        let cfg = &resolved.config;
        let start = Start::find(run_dir, resume, cfg.steps)?;
        start.check_world(cfg.data.batch_size, world)?;
        // On CUDA the loader writes into page-locked memory the uploader copies from.
        let uploader = Uploader::new(device)?;
        let loader = open_loader(&resolved, ds, start.loader, cfg.steps - start.step, (rank, world))?;
        let loader = match uploader.host_memory() {
            Some(memory) => loader.host_memory(memory),
            None => loader,
        }
        .build()?;
        let cuda = device.is_cuda();
        let (bf16, channels_last) = (cfg.run.bf16.on(cuda), cfg.run.channels_last.on(cuda));
        let (vs, model, sgd) =
            build_trainable(cfg, device, channels_last, start.checkpoint.as_deref(), group)?;
        let parallel = group
            .map(|g| DataParallel::new(g, &vs, cfg.dist.overlap, cfg.dist.bucket_mb))
            .transpose()?;
        let lead = rank == 0;
        let log = lead
            .then(|| write_run_files(run_dir, cfg, start.step))
            .transpose()?;
        let rule = StepRule::new(&resolved, loader.shape().views, bf16, channels_last);
        let pipelined = cfg.run.pipelined.on(cuda);
        let mut trainer = Trainer {
            schedule: Schedule {
                lr: cfg.optim.lr,
                warmup_steps: cfg.optim.warmup_steps,
                decay: cfg.optim.decay,
                total_steps: cfg.steps,
            },
            feed: Feed::new(loader, resolved.spec.clone(), uploader, (rank, world)),
            gpu_memory: match device {
                Device::Cuda(i) => GpuMemory::open(i),
                _ => None,
            },
            resolved,
            run_dir: run_dir.to_path_buf(),
            device,
            world,
            lead,
            start,
            vs,
            model,
            sgd,
            rule,
            parallel,
            log,
            observer,
            rates: Rates::default(),
            final_loss: f64::NAN,
            last_checkpoint: None,
            pipelined,
            mark: Instant::now(),
            waited: 0.0,
        };
        trainer.announce();
        Ok(trainer)
    }

    /// Tells the observer (rank 0's) what the run is about to do.
    fn announce(&mut self) {
        if !self.lead {
            return;
        }
        let cfg = &self.resolved.config;
        let info = RunInfo {
            device: format!("{:?}", self.device),
            start_step: self.start.step,
            total_steps: cfg.steps,
            spec: self.resolved.spec.to_string(),
            // Global: every rank's share of the step.
            clips_per_batch: cfg.data.batch_size * self.feed.loader.shape().views * self.world,
            parameters: self
                .vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum(),
            bf16: self.rule.bf16,
            channels_last: self.rule.channels_last,
            run_dir: self.run_dir.clone(),
        };
        self.observer.started(&info);
    }

    /// Every step from the start to `steps`, then the summary.
    ///
    /// Iteration k launches step k, takes the next batch (its copy to the device starts),
    /// then finishes a step: reads its loss (which waits for it), logs it, maybe
    /// checkpoints. Pipelined (`run.pipelined`, on for CUDA), the step finished is k - 1,
    /// read while step k runs, so the device always has the next step queued while the host
    /// logs; a step that is checkpointed (or the last) is finished in its own iteration, so a
    /// checkpoint holds exactly the weights after it.
    fn run(mut self) -> Result<Summary, TrainError> {
        let total = self.resolved.config.steps;
        let mut next = Some(self.feed.next()?);
        let mut pending: Option<Launched> = None;
        self.mark = Instant::now();
        for step in self.start.step..total {
            let ready = next.take().expect("fetched before each step");
            let launched = self.launch(step, ready)?;
            let waited = Instant::now();
            next = (step + 1 < total).then(|| self.feed.next()).transpose()?;
            self.waited += waited.elapsed().as_secs_f64();
            if let Some(previous) = pending.take() {
                self.finish_step(previous)?;
            }
            if self.pipelined && step + 1 < total && !self.checkpoints_after(step + 1) {
                pending = Some(launched);
            } else {
                self.finish_step(launched)?;
            }
        }
        self.finish()
    }

    /// Step `step` (0-based) on `ready`, launched: on CUDA it runs on while this returns.
    fn launch(&mut self, step: u64, ready: Ready) -> Result<Launched, TrainError> {
        let lr = self.schedule.lr(step);
        tch::manual_seed(dropout_seed(self.resolved.config.seed, step));
        let mut loss = self
            .rule
            .step(&self.model, &mut self.sgd, &ready, lr, self.parallel.as_mut())?;
        if let Some(p) = self.parallel.as_mut() {
            // The logged loss is the mean over the ranks' batches, the global batch's loss.
            loss = p.mean_loss(&loss)?;
        }
        let blocked = self.parallel.as_ref().map_or(0.0, |p| p.blocked_seconds());
        Ok(Launched {
            step,
            lr,
            loss,
            ready,
            blocked,
        })
    }

    /// Reads a launched step's loss (waiting for the step), logs it and checkpoints when
    /// due. Its time is the wall time since the step finished before it (so a pipelined
    /// run's figures are its throughput), and its data wait the time blocked on the loader
    /// in that span.
    fn finish_step(&mut self, launched: Launched) -> Result<(), TrainError> {
        let Launched {
            step,
            lr,
            loss,
            ready,
            blocked,
        } = launched;
        let value = loss.double_value(&[]); // waits for the step to finish
        let seconds = self.mark.elapsed().as_secs_f64();
        if !value.is_finite() {
            return Err(TrainError::LossNotFinite {
                value,
                step: step + 1,
                lr,
            });
        }
        let record = StepRecord {
            step: step + 1,
            epoch: ready.batch.epoch,
            batch: ready.batch.index,
            loss: value,
            lr,
            // Global: the ranks step together, each on a batch of the same size.
            clips_per_s: (ready.batch.len() * self.world) as f64 / seconds,
            data_wait: std::mem::take(&mut self.waited) / seconds,
            step_seconds: seconds,
            gpu_memory_mib: self.gpu_memory.as_ref().and_then(GpuMemory::used_mib),
            all_reduce: blocked / seconds,
        };
        self.record(&record, step == self.start.step)?;
        let Ready { batch, state, .. } = ready;
        drop(batch);
        self.maybe_checkpoint(step + 1, state)?;
        self.mark = Instant::now();
        Ok(())
    }

    /// Whether a checkpoint follows step `done` (1-based): every `run.checkpoint_every`
    /// steps and after the last, written by rank 0.
    fn checkpoints_after(&self, done: u64) -> bool {
        let cfg = &self.resolved.config;
        done.is_multiple_of(cfg.run.checkpoint_every) || done == cfg.steps
    }

    /// A step's record into the rates, the log and the observer.
    fn record(&mut self, record: &StepRecord, first: bool) -> Result<(), TrainError> {
        self.final_loss = record.loss;
        self.rates.add(record, first);
        if let Some(log) = self.log.as_mut() {
            log.append(record).map_err(FileError::at(log.path()))?;
        }
        if self.lead {
            self.observer.step(record);
        }
        Ok(())
    }

    /// Rank 0 writes a checkpoint every `run.checkpoint_every` steps and after the last.
    fn maybe_checkpoint(&mut self, done: u64, loader: LoaderState) -> Result<(), TrainError> {
        if !self.lead || !self.checkpoints_after(done) {
            return Ok(());
        }
        let cfg = &self.resolved.config;
        let state = CheckpointState {
            version: CHECKPOINT_VERSION,
            step: done,
            loader,
            config: cfg.to_toml(),
            world: self.world,
        };
        let dir = checkpoint::save(
            &self.run_dir,
            &self.vs,
            &self.sgd,
            &state,
            cfg.run.keep_checkpoints,
        )?;
        self.observer.checkpoint(done, &dir);
        self.last_checkpoint = Some(dir);
        Ok(())
    }

    /// The loader stopped, the plot (rank 0) and the summary.
    fn finish(self) -> Result<Summary, TrainError> {
        let Feed {
            loader, passed_over, ..
        } = self.feed;
        let skipped_records = loader.skipped().into_iter().map(|s| s.error).collect();
        drop(loader);
        let cfg = &self.resolved.config;
        let plot = (cfg.run.plot && self.lead)
            .then(|| write_plot(&self.run_dir))
            .transpose()?;
        let (clips_per_s, data_wait, all_reduce) = self.rates.means();
        let vs = &self.vs;
        Ok(Summary {
            steps: cfg.steps,
            final_loss: self.final_loss,
            clips_per_s,
            data_wait,
            all_reduce,
            peak_gpu_memory_mib: self.rates.peak_gpu_mib,
            // Rank 0 writes the last checkpoint; every rank names it.
            checkpoint: self.last_checkpoint.unwrap_or_else(|| {
                self.run_dir
                    .join(checkpoint::CHECKPOINT_DIR)
                    .join(checkpoint::step_dir_name(cfg.steps))
            }),
            parameter_sum: tch::no_grad(|| {
                vs.trainable_variables()
                    .iter()
                    .map(|t| t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]))
                    .sum()
            }),
            plot,
            skipped_records,
            passed_over_batches: passed_over,
        })
    }
}

/// `resolved` with `data.splits` made explicit: unset, it becomes the splits pretraining
/// reads by the split policy (see [`crate::splits`]).
fn with_pretraining_splits(resolved: &Resolved, ds: &Dataset) -> Result<Resolved, TrainError> {
    let mut resolved = resolved.clone();
    if resolved.config.data.splits.is_none() {
        resolved.config.data.splits = Some(pretraining_splits(ds)?);
    }
    Ok(resolved)
}

/// The loader for the run's data settings over `ds`, resumed at `state`, good for `steps`
/// more steps (to be built).
fn open_loader(
    resolved: &Resolved,
    ds: Arc<Dataset>,
    state: LoaderState,
    steps: u64,
    (rank, world): (usize, usize),
) -> Result<LoaderBuilder, TrainError> {
    Ok(LoaderBuilder::open(ds)
        .settings(&resolved.config.data)
        .views(resolved.shifts, resolved.reversal)
        .seed(resolved.config.seed)
        .resume(state)
        // Each epoch yields at least one batch, so this many always covers the steps left.
        .epochs(steps + 1)
        .rank(rank, world))
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
    let (vs, model) = model::build(&cfg.model, cfg.seed, device, &bn);
    if channels_last {
        weights_to_channels_last_3d(&vs);
    }
    let mut sgd = Sgd::new(&vs, cfg.optim.momentum, cfg.optim.weight_decay);
    if let Some(dir) = checkpoint {
        checkpoint::load(dir, &vs, &mut sgd)?;
    }
    Ok((vs, model, sgd))
}

/// The run directory's config (written only once the checkpoint fits the model, so a
/// refused resume leaves it as it was) and its log, kept through step `keep_through`.
fn write_run_files(run_dir: &Path, cfg: &TrainConfig, keep_through: u64) -> Result<RunLog, TrainError> {
    std::fs::create_dir_all(run_dir).map_err(FileError::at(run_dir))?;
    let config_path = run_dir.join(CONFIG_FILE);
    gdt_formats::atomic_file::write_atomic(&config_path, cfg.to_toml().as_bytes())
        .map_err(FileError::at(&config_path))?;
    Ok(RunLog::open(run_dir, keep_through).map_err(FileError::at(run_dir))?)
}

/// Draws `plot.png` from the run's whole log.
fn write_plot(run_dir: &Path) -> Result<PathBuf, TrainError> {
    let records = run_log::read(&run_dir.join(run_log::LOG_FILE)).map_err(FileError::at(run_dir))?;
    let path = run_dir.join(PLOT_FILE);
    crate::plot::write(&path, &records).map_err(|e| TrainError::Plot {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(path)
}
