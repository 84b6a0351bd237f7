//! The networks: a video encoder and an audio encoder, each with its projection head, mapping
//! a batch's clips into one contrastive space, and the one function that builds them.
//!
//! - [`r2plus1d`]: R(2+1)D-18, the video encoder;
//! - [`resnet9`]: the audio encoder;
//! - [`head`]: the projection heads;
//! - [`layers`]: convolutions and batch norm with the reference's initialisation;
//! - here: [`GdtModel`] (both encoders and heads), [`build`], and the channels-last-3d layout.
//!
//! VarStore paths: `video.*` (R(2+1)D-18), `audio.*` (ResNet-9), `video_head.*`, `audio_head.*`.

pub mod head;
pub mod layers;
pub mod r2plus1d;
pub mod resnet9;

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use layers::BnSync;

/// `[model]`: the networks' size and head.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Channel multiplier for both encoders (1.0 is the real model; tests use 1/16).
    pub width: f64,
    /// Dropout before each head layer: the reference's MLP head uses 0.3 at both places.
    /// Its masks are drawn from torch's generator, which the trainer reseeds from (seed,
    /// step) before every step, so a resumed run draws the masks an unbroken one would.
    pub head_dropout: f64,
    /// In data-parallel training, batch norm over the global batch instead of each rank's
    /// (the reference's setting; one all-gather per BN layer per step). Off by default:
    /// on 8 or more clips per rank, per-rank statistics train as well and cost nothing.
    pub sync_bn: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            width: 1.0,
            head_dropout: 0.3,
            sync_bn: false,
        }
    }
}

/// Both encoders and both heads.
pub struct GdtModel {
    video: Box<dyn ModuleT>,
    audio: Box<dyn ModuleT>,
    video_head: Box<dyn ModuleT>,
    audio_head: Box<dyn ModuleT>,
}

impl std::fmt::Debug for GdtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GdtModel")
    }
}

impl GdtModel {
    /// Builds the networks under `root`, their batch norm synchronised over `bn` when given.
    pub fn new(root: &nn::Path, cfg: &ModelConfig, bn: &BnSync) -> GdtModel {
        let v = r2plus1d::feature_dim(cfg.width);
        let a = resnet9::feature_dim(cfg.width);
        let dropout = cfg.head_dropout;
        GdtModel {
            video: Box::new(r2plus1d::r2plus1d_18(&(root / "video"), cfg.width, bn)),
            audio: Box::new(resnet9::resnet9(&(root / "audio"), cfg.width, bn)),
            video_head: Box::new(head::head(&(root / "video_head"), v, dropout, bn)),
            audio_head: Box::new(head::head(&(root / "audio_head"), a, dropout, bn)),
        }
    }

    /// Encoder features before the head: `[N, 512 * width]` (what evaluation uses).
    pub fn video_features(&self, video: &Tensor, train: bool) -> Tensor {
        self.video.forward_t(video, train)
    }

    /// The audio encoder's pooled features.
    pub fn audio_features(&self, audio: &Tensor, train: bool) -> Tensor {
        self.audio.forward_t(audio, train)
    }

    /// The video head on encoder features: `[N, 256]`, L2-normalised.
    pub fn video_head(&self, features: &Tensor, train: bool) -> Tensor {
        self.video_head.forward_t(features, train)
    }

    /// The audio head's embeddings of encoder features.
    pub fn audio_head(&self, features: &Tensor, train: bool) -> Tensor {
        self.audio_head.forward_t(features, train)
    }

    /// Embeddings of `N` views: `[2N, 256]`, video rows first, then audio, L2-normalised.
    /// `video`: `[N, 3, T, H, W]` normalised float; `audio`: `[N, 1, mels, frames]`.
    pub fn forward(&self, video: &Tensor, audio: &Tensor, train: bool) -> Tensor {
        let zv = self
            .video_head
            .forward_t(&self.video_features(video, train), train);
        let za = self
            .audio_head
            .forward_t(&self.audio_features(audio, train), train);
        Tensor::cat(&[zv, za], 0)
    }
}

/// The model a config describes, on `device`, initialised from `seed` (training and
/// evaluation build it alike), its batch norm synchronised over `bn` when given.
pub fn build(cfg: &ModelConfig, seed: u64, device: Device, bn: &BnSync) -> (nn::VarStore, GdtModel) {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let model = GdtModel::new(&vs.root(), cfg, bn);
    (vs, model)
}

/// The same values with channels-last-3d strides (NDHWC in memory, NCDHW in shape). cuDNN
/// picks its faster NDHWC kernels when both input and weight have this layout; tch 0.24 has
/// no memory-format call, and the permute/contiguous/permute round trip produces exactly the
/// strides `torch.channels_last_3d` would.
pub fn channels_last_3d(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 4, 1]).contiguous().permute([0, 4, 1, 2, 3])
}

/// Gives every 5-D variable (the 3-D convolution weights) channels-last-3d strides, in place,
/// so the optimizer and checkpoints keep working on the same tensors.
pub fn weights_to_channels_last_3d(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut t) in vs.variables() {
            if t.dim() == 5 {
                let converted = channels_last_3d(&t);
                t.set_data(&converted);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The model at 1/16 width, as the CPU tests train it.
    fn small_model(vs: &nn::VarStore) -> GdtModel {
        let config = ModelConfig {
            width: 0.0625,
            head_dropout: 0.0,
            sync_bn: false,
        };
        GdtModel::new(&vs.root(), &config, &None)
    }

    #[test]
    fn small_model_embeds_into_unit_vectors() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = small_model(&vs);
        let v = Tensor::randn([3, 3, 8, 32, 32], (Kind::Float, Device::Cpu));
        let a = Tensor::randn([3, 1, 40, 99], (Kind::Float, Device::Cpu));
        let z = m.forward(&v, &a, true);
        assert_eq!(z.size(), [6, head::EMBEDDING_DIM]);
        let norms = z.square().sum_dim_intlist(-1, false, None).sqrt();
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn channels_last_keeps_values_and_changes_strides() {
        let x = Tensor::randn([2, 3, 4, 5, 6], (Kind::Float, Device::Cpu));
        let y = channels_last_3d(&x);
        assert_eq!(y.size(), x.size());
        assert_eq!(y.stride(), [360, 1, 90, 18, 3]);
        assert!(y.equal(&x));
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = small_model(&vs);
        let before = vs.variables()["video.stem.0.weight"].copy();
        weights_to_channels_last_3d(&vs);
        let after = &vs.variables()["video.stem.0.weight"];
        assert_eq!(after.stride()[1], 1);
        assert!(after.equal(&before));
    }
}
