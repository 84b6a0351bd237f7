//! The audio encoder: a ResNet with one BasicBlock per stage ("ResNet-9") over a
//! one-channel log-mel spectrogram `[N, 1, mels, frames]`.
//!
//! Stem conv 7x7 stride 2, BN, ReLU, max-pool 3/2; stages of widths 64/128/256/512 with strides
//! 1/2/2/2; global average pool. Parameter paths follow torchvision's ResNet names.

use tch::nn::{self, ModuleT};

use super::layers::{batch_norm2d, conv2d, scaled, BnSync};

/// Output width of the encoder at `width` (512 for the full model).
pub fn feature_dim(width: f64) -> i64 {
    scaled(512, width)
}

fn basic_block(p: nn::Path, cin: i64, cout: i64, stride: i64, bn: &BnSync) -> impl ModuleT {
    let body = nn::seq_t()
        .add(conv2d(&p / "conv1", cin, cout, 3, stride, 1))
        .add(batch_norm2d(&p / "bn1", cout, bn))
        .add_fn(|x| x.relu())
        .add(conv2d(&p / "conv2", cout, cout, 3, 1, 1))
        .add(batch_norm2d(&p / "bn2", cout, bn));
    let downsample = (stride != 1 || cin != cout).then(|| {
        nn::seq_t()
            .add(conv2d(&p / "downsample" / 0, cin, cout, 1, stride, 0))
            .add(batch_norm2d(&p / "downsample" / 1, cout, bn))
    });
    nn::func_t(move |x, train| {
        let shortcut = match &downsample {
            Some(d) => x.apply_t(d, train),
            None => x.shallow_clone(),
        };
        (x.apply_t(&body, train) + shortcut).relu()
    })
}

/// The encoder: `[N, 1, mels, frames]` -> `[N, feature_dim(width)]`.
pub fn resnet9(p: &nn::Path, width: f64, bn: &BnSync) -> impl ModuleT {
    let w = |c: i64| scaled(c, width);
    nn::seq_t()
        .add(conv2d(p / "conv1", 1, w(64), 7, 2, 3))
        .add(batch_norm2d(p / "bn1", w(64), bn))
        .add_fn(|x| x.relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false))
        .add(basic_block(p / "layer1" / 0, w(64), w(64), 1, bn))
        .add(basic_block(p / "layer2" / 0, w(64), w(128), 2, bn))
        .add(basic_block(p / "layer3" / 0, w(128), w(256), 2, bn))
        .add(basic_block(p / "layer4" / 0, w(256), w(512), 2, bn))
        .add_fn(|x| x.mean_dim(&[2i64, 3][..], false, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn output_shape_at_default_geometry() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = resnet9(&vs.root(), 1.0, &None);
        let x = Tensor::zeros([2, 1, 257, 99], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| x.apply_t(&m, false));
        assert_eq!(y.size(), [2, 512]);
    }

    #[test]
    fn parameter_count_follows_the_table() {
        // Stem 7x7x1x64 + BN; one BasicBlock per stage: two 3x3 convs, two BNs, a 1x1
        // downsample + BN where the width or stride changes.
        let block = |cin: i64, cout: i64, down: bool| {
            9 * cin * cout + 9 * cout * cout + 4 * cout + if down { cin * cout + 2 * cout } else { 0 }
        };
        let expect = 49 * 64
            + 2 * 64
            + block(64, 64, false)
            + block(64, 128, true)
            + block(128, 256, true)
            + block(256, 512, true);
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = resnet9(&vs.root(), 1.0, &None);
        let n: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(n, expect);
    }
}
