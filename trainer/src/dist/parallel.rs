//! What a training step does differently as one rank of a data-parallel run: gradients
//! averaged over the ranks (in buckets during the backward pass through DDP's reducer, or in
//! one all-reduce after it), the other ranks' embeddings as negatives, a forward-pass failure
//! of a sync-BN collective reported, and the logged loss the ranks' mean.

use std::time::Instant;

use tch::{nn, Tensor};

use super::negatives::other_ranks_negatives;
use super::{DistError, ProcessGroup, Reducer};

/// One rank's side of a data-parallel step.
pub struct DataParallel {
    group: ProcessGroup,
    /// DDP's reducer when gradients are averaged during the backward pass.
    reducer: Option<Reducer>,
    /// Seconds of this step spent blocked in collectives outside the backward pass.
    blocked_s: f64,
}

impl DataParallel {
    /// Joins `vs`'s trainable variables to `group`: with `overlap`, DDP's reducer averages
    /// them in buckets of about `bucket_mb` while the backward pass runs; without, one
    /// all-reduce of every gradient follows it.
    pub fn new(
        group: &ProcessGroup,
        vs: &nn::VarStore,
        overlap: bool,
        bucket_mb: f64,
    ) -> Result<Self, DistError> {
        let reducer = if overlap {
            let mut named: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .collect();
            // The same order on every rank (the map's is not).
            named.sort_by(|a, b| a.0.cmp(&b.0));
            Some(Reducer::new(group, &named, bucket_mb)?)
        } else {
            None
        };
        Ok(DataParallel {
            group: group.clone(),
            reducer,
            blocked_s: 0.0,
        })
    }

    /// The process group.
    pub fn group(&self) -> &ProcessGroup {
        &self.group
    }

    /// Before the step's forward pass (the reducer rebuilds its buckets once, after step 1).
    pub fn before_forward(&mut self) -> Result<(), DistError> {
        self.blocked_s = 0.0;
        match self.reducer.as_mut() {
            Some(r) => r.before_forward(),
            None => Ok(()),
        }
    }

    /// After the forward pass: a sync-BN collective that failed inside it (where it could
    /// not return its error).
    pub fn after_forward(&self) -> Result<(), DistError> {
        self.group.take_failure().map_or(Ok(()), Err)
    }

    /// The other ranks' embeddings as negatives for this rank's (see
    /// [`other_ranks_negatives`]); `None` at world size 1.
    pub fn negatives(
        &mut self,
        embeddings: &Tensor,
        max_views: usize,
        cross_modal_only: bool,
        with_grad: bool,
    ) -> Result<Option<(Tensor, Tensor)>, DistError> {
        if self.group.world() < 2 {
            return Ok(None);
        }
        let start = Instant::now();
        let keys = other_ranks_negatives(&self.group, embeddings, max_views, cross_modal_only, with_grad)?;
        self.blocked_s += start.elapsed().as_secs_f64();
        Ok(Some(keys))
    }

    /// Before the backward pass: arms the reducer's hooks.
    pub fn before_backward(&mut self) -> Result<(), DistError> {
        match self.reducer.as_mut() {
            Some(r) => r.before_backward(),
            None => Ok(()),
        }
    }

    /// The backward pass holds collectives (gradient buckets, sync-BN, the gather's
    /// gradient): its failure is the group's.
    pub fn backward_failed(&self, e: tch::TchError) -> DistError {
        self.group.error("backward pass", e.to_string())
    }

    /// After the backward pass: without the reducer, every gradient averaged in one
    /// all-reduce.
    pub fn after_backward<'a>(&mut self, params: impl Iterator<Item = &'a Tensor>) -> Result<(), DistError> {
        if self.reducer.is_some() {
            return Ok(());
        }
        let start = Instant::now();
        average_gradients(&self.group, params)?;
        self.blocked_s += start.elapsed().as_secs_f64();
        Ok(())
    }

    /// The loss averaged over the ranks: the global batch's loss, as logged.
    pub fn mean_loss(&mut self, loss: &Tensor) -> Result<Tensor, DistError> {
        let start = Instant::now();
        let mut sum = loss.detach().reshape([1]);
        self.group.all_reduce_sum(&mut sum)?;
        self.blocked_s += start.elapsed().as_secs_f64();
        Ok(sum / self.group.world() as f64)
    }

    /// Seconds of the current step spent blocked in collectives outside the backward pass.
    pub fn blocked_seconds(&self) -> f64 {
        self.blocked_s
    }
}

/// Replaces every rank's gradients by their mean over the ranks: one all-reduce of all
/// gradients packed into one buffer.
fn average_gradients<'a>(
    group: &ProcessGroup,
    params: impl Iterator<Item = &'a Tensor>,
) -> Result<(), DistError> {
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
