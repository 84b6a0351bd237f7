//! The batches a run trains on, in order: taken from the loader, given their loss masks,
//! and started on their way to the device (see [`Uploader`]). A batch the loss cannot learn
//! from is passed over and listed.

use gdt_pipeline::load::loader::{Loader, LoaderState};

use crate::error::TrainError;
use crate::input::{DeviceBatch, Uploader};
use crate::spec::{Masks, SpecError, TransformSpec};

/// A batch ready for a step: on the device, its masks, and the loader position after it
/// (what a checkpoint taken after training on it must record).
pub(super) struct Ready {
    pub batch: DeviceBatch,
    pub masks: Masks,
    pub state: LoaderState,
}

/// The loader, the spec its batches' masks come from, and where batches go.
pub(super) struct Feed {
    pub loader: Loader,
    spec: TransformSpec,
    uploader: Uploader,
    /// This rank and the ranks in all: a data-parallel rank cannot pass over a batch alone.
    rank: usize,
    world: usize,
    /// Batches passed over, with the reason.
    pub passed_over: Vec<String>,
}

impl Feed {
    pub fn new(
        loader: Loader,
        spec: TransformSpec,
        uploader: Uploader,
        (rank, world): (usize, usize),
    ) -> Feed {
        Feed {
            loader,
            spec,
            uploader,
            rank,
            world,
            passed_over: Vec::new(),
        }
    }

    /// The next batch the loss can learn from. Passed over, and listed: a batch whose
    /// records were all skipped as damaged (the loader lists those), and one left without a
    /// negative for some sample (a damaged record skipped out of a two-record batch under a
    /// spec invariant to all but the sample): its loss would be exactly 0. Ranks must step
    /// together (one that passed over a batch the others train on would pair its collectives
    /// with the wrong step), so in a data-parallel run that ends the run.
    pub fn next(&mut self) -> Result<Ready, TrainError> {
        let ready = self.next_learnable()?;
        match self.passed_over.last() {
            Some(why) if self.world > 1 => Err(TrainError::RanksOutOfStep {
                rank: self.rank,
                world: self.world,
                why: why.clone(),
            }),
            _ => Ok(ready),
        }
    }

    fn next_learnable(&mut self) -> Result<Ready, TrainError> {
        loop {
            let batch = self.loader.next().ok_or(TrainError::LoaderExhausted)??;
            if batch.records == 0 {
                continue;
            }
            let masks = match self.spec.masks(batch.views()) {
                Ok(m) => m,
                Err(e @ SpecError::NoNegative { .. }) => {
                    self.passed_over.push(format!(
                        "epoch {} batch {} ({} records): {e}",
                        batch.epoch, batch.index, batch.records
                    ));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let state = self.loader.state();
            return Ok(Ready {
                batch: self.uploader.upload(batch)?,
                masks,
                state,
            });
        }
    }
}
