//! One optimizer step on a batch: embeddings, GDT-NCE over the batch's masks (with the other
//! ranks' negatives in a data-parallel run), backward (gradients averaged over the ranks),
//! SGD. Everything is launched, nothing waited for: on CUDA the step runs while the host
//! goes on to the next batch.

use tch::{Kind, Tensor};

use super::feed::Ready;
use crate::config::Resolved;
use crate::dist::DataParallel;
use crate::error::TrainError;
use crate::gdt_loss::{gdt_nce, gdt_nce_with_negatives};
use crate::input::normalise_video;
use crate::model::GdtModel;
use crate::precision::bf16_autocast;
use crate::sgd::Sgd;
use crate::spec::Pairs;

/// How every step of a run computes its loss.
pub(super) struct StepRule {
    /// NCE temperature.
    temperature: f64,
    /// Gradients through the query side only.
    detach_keys: bool,
    /// The other ranks' embeddings join the denominators.
    global_negatives: bool,
    /// ... with gradients.
    global_negatives_grad: bool,
    /// Only cross-modal pairs take part (which other ranks' rows meet which anchors).
    cross_modal: bool,
    /// Views a rank's full batch holds (the gathered negatives are padded to it).
    max_views: usize,
    /// bf16 autocast.
    pub bf16: bool,
    /// Channels-last-3d video.
    pub channels_last: bool,
}

impl StepRule {
    pub fn new(resolved: &Resolved, views_per_record: usize, bf16: bool, channels_last: bool) -> StepRule {
        let cfg = &resolved.config;
        StepRule {
            temperature: cfg.loss.temperature,
            detach_keys: cfg.loss.detach_keys,
            global_negatives: cfg.loss.global_negatives,
            global_negatives_grad: cfg.loss.global_negatives_grad,
            cross_modal: resolved.spec.pairs == Pairs::CrossModal,
            max_views: cfg.data.batch_size * views_per_record,
            bf16,
            channels_last,
        }
    }

    /// Launches one step on `ready` at learning rate `lr`; returns its loss (this rank's)
    /// without waiting for the device.
    pub fn step(
        &self,
        model: &GdtModel,
        sgd: &mut Sgd,
        ready: &Ready,
        lr: f64,
        mut parallel: Option<&mut DataParallel>,
    ) -> Result<Tensor, TrainError> {
        let (batch, masks) = (&ready.batch, &ready.masks);
        let device = batch.video.device();
        let (c, w) = masks.as_f32();
        let n = masks.n as i64;
        let c = Tensor::from_slice(&c).reshape([n, n]).to_device(device);
        let w = Tensor::from_slice(&w).reshape([n, n]).to_device(device);
        if let Some(p) = parallel.as_mut() {
            p.before_forward()?;
        }
        batch.ready()?; // on CUDA: this stream waits for the batch's copy
        let embeddings = bf16_autocast(self.bf16, device, || {
            let video = normalise_video(&batch.video, self.channels_last);
            model.forward(&video, &batch.audio, true)
        })?;
        if let Some(p) = parallel.as_ref() {
            p.after_forward()?; // a sync-BN collective in the forward pass
        }
        let embeddings = embeddings.to_kind(Kind::Float);
        let (t, detach) = (self.temperature, self.detach_keys);
        let negatives = match parallel.as_mut() {
            Some(p) if self.global_negatives => p.negatives(
                &embeddings,
                self.max_views,
                self.cross_modal,
                self.global_negatives_grad,
            )?,
            _ => None,
        };
        let loss = match negatives {
            Some((keys, keys_w)) => gdt_nce_with_negatives(&embeddings, &c, &w, t, detach, &keys, &keys_w),
            None => gdt_nce(&embeddings, &c, &w, t, detach),
        };
        sgd.zero_grad();
        if let Some(p) = parallel.as_mut() {
            p.before_backward()?;
        }
        if let Err(e) = loss.f_backward() {
            return Err(match parallel.as_ref() {
                Some(p) => p.backward_failed(e).into(),
                None => e.into(),
            });
        }
        if let Some(p) = parallel.as_mut() {
            p.after_backward(sgd.parameters())?;
        }
        sgd.step(lr);
        Ok(loss)
    }
}
