//! Convolution and batch-norm constructors with the reference's initialisation.
//!
//! tch's defaults differ from torchvision's: convolutions get Kaiming *uniform* over fan-in
//! and batch norm draws its scale from U(0, 1). The reference models use Kaiming normal over
//! fan-out and BN scale 1, shift 0; every encoder builds its layers here so that rule lives in
//! one place.
//!
//! Batch norm takes its statistics from this process's batch, or, with `model.sync_bn` in a
//! data-parallel run, from the global batch (the reference trained with sync-BN): the choice
//! is made here, once, for every encoder.

use tch::nn::{self, ConvConfigND, Init, ModuleT};
use tch::Tensor;

use crate::dist::{sync_batch_norm, ProcessGroup};

/// Kaiming normal, fan-out, ReLU gain (torchvision's video and audio ResNets).
pub const KAIMING_FAN_OUT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// A channel count times the width multiplier, never below one channel.
pub fn scaled(channels: i64, width: f64) -> i64 {
    ((channels as f64 * width).round() as i64).max(1)
}

/// A bias-free convolution (every one in these networks is followed by batch norm).
pub fn conv<const N: usize>(
    p: nn::Path,
    cin: i64,
    cout: i64,
    kernel: [i64; N],
    stride: [i64; N],
    padding: [i64; N],
) -> nn::Conv<[i64; N]>
where
    [i64; N]: AsRef<[i64]>,
{
    let config = ConvConfigND {
        stride,
        padding,
        dilation: [1; N],
        groups: 1,
        bias: false,
        ws_init: KAIMING_FAN_OUT,
        bs_init: Init::Const(0.0),
        padding_mode: nn::PaddingMode::Zeros,
    };
    nn::conv(p, cin, cout, kernel, config)
}

/// A 3-D convolution without bias, Kaiming-initialised.
pub fn conv3d(p: nn::Path, cin: i64, cout: i64, k: [i64; 3], s: [i64; 3], pad: [i64; 3]) -> nn::Conv3D {
    conv(p, cin, cout, k, s, pad)
}

/// A 2-D convolution without bias, Kaiming-initialised.
pub fn conv2d(p: nn::Path, cin: i64, cout: i64, k: i64, s: i64, pad: i64) -> nn::Conv2D {
    conv(p, cin, cout, [k, k], [s, s], [pad, pad])
}

/// Where batch norm takes its training statistics from: `None`, this process's batch; a
/// group (of more than one rank), the global batch of the data-parallel run.
pub type BnSync = Option<ProcessGroup>;

/// torch's BatchNorm defaults, which the reference keeps.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Batch norm with the reference's initialisation, per rank or synchronised (see [`BnSync`]).
/// The variables are the same either way, so checkpoints do not depend on the choice.
#[derive(Debug)]
pub struct BatchNorm {
    bn: nn::BatchNorm,
    sync: BnSync,
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match &self.sync {
            Some(group) if train => sync_batch_norm(xs, &self.bn, group, BN_EPS, BN_MOMENTUM),
            _ => xs.apply_t(&self.bn, train),
        }
    }
}

fn batch_norm(bn: nn::BatchNorm, sync: &BnSync) -> BatchNorm {
    // At world size 1 the global batch is this batch: keep libtorch's own kernel.
    let sync = sync.as_ref().filter(|g| g.world() > 1).cloned();
    BatchNorm { bn, sync }
}

fn bn_config() -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        eps: BN_EPS,
        momentum: BN_MOMENTUM,
        ..Default::default()
    }
}

/// BatchNorm over video feature maps.
pub fn batch_norm3d(p: nn::Path, channels: i64, sync: &BnSync) -> BatchNorm {
    batch_norm(nn::batch_norm3d(p, channels, bn_config()), sync)
}

/// BatchNorm over spectrogram feature maps.
pub fn batch_norm2d(p: nn::Path, channels: i64, sync: &BnSync) -> BatchNorm {
    batch_norm(nn::batch_norm2d(p, channels, bn_config()), sync)
}

/// BatchNorm over feature vectors (the heads).
pub fn batch_norm1d(p: nn::Path, channels: i64, sync: &BnSync) -> BatchNorm {
    batch_norm(nn::batch_norm1d(p, channels, bn_config()), sync)
}
