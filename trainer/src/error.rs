//! The trainer's one error type. Every way a run, an evaluation or the proof of learning
//! can stop is a variant of its own that names what failed; the libraries' errors (config,
//! spec, loader, checkpoint, c10d, libtorch) are wrapped as they are, with their own messages.

use std::path::PathBuf;

use gdt_formats::FileError;
use gdt_pipeline::load::error::LoadError;

use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;
use crate::device::DeviceError;
use crate::dist::launch::LaunchError;
use crate::dist::DistError;
use crate::spec::SpecError;

/// Why a run (or an evaluation) stopped.
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
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A collective or the rendezvous of a data-parallel run failed (the reason names the
    /// rank and c10d's cause).
    #[error(transparent)]
    Dist(#[from] DistError),
    /// The launcher's variables (torchrun, Slurm) cannot be used.
    #[error("launch variables: {0}")]
    Launch(#[from] LaunchError),
    /// Neither the command line nor the config names a dataset.
    #[error("no dataset: give one on the command line or as `dataset` in the config")]
    NoDataset,
    /// A new run was asked for in a directory that already holds one.
    #[error("{} already holds checkpoints; continue it with --resume or choose another run directory", dir.display())]
    RunDirTaken {
        /// The run directory.
        dir: PathBuf,
    },
    /// A resume was asked for with no step left to train.
    #[error("the run is already at step {step} of {total}; raise `steps` to train further")]
    AlreadyDone {
        /// The checkpoint's step.
        step: u64,
        /// The run's `steps`.
        total: u64,
    },
    /// A resume at another world size that would not keep the checkpoint's global batch.
    #[error(
        "the checkpoint's global batch is {global} records; {world} rank(s) x data.batch_size {batch_size} is {}: {}",
        .world * .batch_size,
        global_batch_hint(*.global, *.world)
    )]
    GlobalBatch {
        /// Records per global step in the checkpoint's run.
        global: usize,
        /// Ranks now.
        world: usize,
        /// Records per rank now.
        batch_size: usize,
    },
    /// Every split of the dataset is one evaluation holds out.
    #[error("{}: every split is held out for evaluation ({splits}); set data.splits to pretrain on them anyway", dataset.display())]
    AllSplitsHeldOut {
        /// The dataset.
        dataset: PathBuf,
        /// Its splits.
        splits: String,
    },
    /// A record's split cannot be read, so the splits pretraining reads cannot be told.
    #[error("{error}: the splits pretraining reads cannot be told; set data.splits ([] for every record)")]
    UnreadableSplit {
        /// The metadata's error, naming the shard and record.
        error: String,
    },
    /// A data-parallel run on CUDA whose process group carries CPU tensors only.
    #[error(
        "the process group was joined for CPU tensors only, but the run is on {device}; \
         join it with a CUDA backend (NCCL, or Gloo on CUDA tensors) or use --device cpu"
    )]
    CpuOnlyGroup {
        /// The run's device.
        device: String,
    },
    /// The loss is NaN or infinite.
    #[error("the loss became {value} at step {step} (lr {lr}); the last checkpoint is intact")]
    LossNotFinite {
        /// The loss.
        value: f64,
        /// The step (1-based) it was computed in.
        step: u64,
        /// That step's learning rate.
        lr: f64,
    },
    /// The loader ended before the run did.
    #[error("the loader ran out of batches before the last step")]
    LoaderExhausted,
    /// One rank of a data-parallel run cannot train on its share of a step.
    #[error("rank {rank} of {world}: a batch cannot be trained on and data-parallel runs cannot pass over one yet: {why}")]
    RanksOutOfStep {
        /// This rank.
        rank: usize,
        /// Ranks in all.
        world: usize,
        /// Why its batch was passed over.
        why: String,
    },
    /// The plot could not be drawn.
    #[error("{}: {message}", path.display())]
    Plot {
        /// The plot file.
        path: PathBuf,
        /// The drawing library's message.
        message: String,
    },
}

/// What to do about a global batch that the ranks cannot keep.
fn global_batch_hint(global: usize, world: usize) -> String {
    if global.is_multiple_of(world) {
        format!("use --set data.batch_size={}", global / world)
    } else {
        format!("{world} ranks cannot share it equally")
    }
}
