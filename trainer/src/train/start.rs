//! Where a run starts: step 0 of an empty run directory, or the latest checkpoint of the
//! run directory being resumed. Read before anything is written, so a refused start leaves
//! no trace.

use std::path::{Path, PathBuf};

use gdt_pipeline::load::loader::LoaderState;

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::error::TrainError;

/// The step a run starts at and what it continues from.
pub(super) struct Start {
    /// The checkpoint resumed, if any.
    pub checkpoint: Option<PathBuf>,
    /// Steps done before this invocation.
    pub step: u64,
    /// The loader position after those steps.
    pub loader: LoaderState,
    /// The global batch (records) the checkpoint's loader position counts in.
    pub global_batch: Option<usize>,
}

impl Start {
    /// A new run (refused where the directory holds checkpoints) or the latest checkpoint
    /// (with `resume`); refused when no step is left before `total`.
    pub fn find(run_dir: &Path, resume: bool, total: u64) -> Result<Start, TrainError> {
        if !resume && !checkpoint::list(run_dir)?.is_empty() {
            return Err(TrainError::RunDirTaken {
                dir: run_dir.to_path_buf(),
            });
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
            return Err(TrainError::AlreadyDone {
                step: start.step,
                total,
            });
        }
        Ok(start)
    }

    /// A resume at another world size continues at the same global position only with the
    /// same global batch.
    pub fn check_world(&self, batch_size: usize, world: usize) -> Result<(), TrainError> {
        match self.global_batch {
            Some(global) if batch_size * world != global => Err(TrainError::GlobalBatch {
                global,
                world,
                batch_size,
            }),
            _ => Ok(()),
        }
    }
}
