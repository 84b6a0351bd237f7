//! What a run tells its caller: what it is about to do ([`RunInfo`]), each step and
//! checkpoint as they happen ([`Observer`]), and what it came to ([`Summary`]).

use std::path::{Path, PathBuf};

use crate::run_log::StepRecord;

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

/// Means over the steps of one invocation, its first step excluded (it carries start-up).
#[derive(Default)]
pub(super) struct Rates {
    clips_per_s: f64,
    data_wait: f64,
    all_reduce: f64,
    steps: u64,
    pub(super) peak_gpu_mib: Option<f64>,
}

impl Rates {
    pub(super) fn add(&mut self, record: &StepRecord, first: bool) {
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

    pub(super) fn means(&self) -> (f64, f64, f64) {
        let n = self.steps.max(1) as f64;
        (self.clips_per_s / n, self.data_wait / n, self.all_reduce / n)
    }
}
