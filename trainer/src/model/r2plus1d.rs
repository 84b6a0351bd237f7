//! R(2+1)D-18, the video encoder, as torchvision builds it (`r2plus1d_18`).
//!
//! Each 3x3x3 convolution is factorised into a 1x3x3 spatial convolution and a 3x1x1
//! temporal one with a ReLU between them, with the intermediate width chosen so the pair has
//! about as many parameters as the full 3-D convolution. Parameter paths follow torchvision's
//! names (`stem.0.weight`, `layer2.0.conv1.0.0.weight`, ...) so that weights can be compared.
//!
//! `width` scales every channel count (1.0 is the real model) so tests and CPU demos run the
//! same architecture small.

use tch::nn::{self, ModuleT};

use super::layers::{batch_norm3d, conv3d, scaled, BnSync};

/// Output width of the encoder at `width` (512 for the full model).
pub fn feature_dim(width: f64) -> i64 {
    scaled(512, width)
}

/// `(in*out*27) // (in*9 + 3*out)`: the mid width that gives a (2+1)D pair the parameter count
/// of one 3x3x3 convolution.
pub fn midplanes(inplanes: i64, planes: i64) -> i64 {
    (inplanes * planes * 27) / (inplanes * 9 + 3 * planes)
}

/// Spatial 1x3x3 (stride 1,s,s), BN, ReLU, temporal 3x1x1 (stride s,1,1).
fn conv2plus1d(p: nn::Path, cin: i64, cout: i64, mid: i64, stride: i64, bn: &BnSync) -> nn::SequentialT {
    nn::seq_t()
        .add(conv3d(
            &p / 0,
            cin,
            mid,
            [1, 3, 3],
            [1, stride, stride],
            [0, 1, 1],
        ))
        .add(batch_norm3d(&p / 1, mid, bn))
        .add_fn(|x| x.relu())
        .add(conv3d(&p / 3, mid, cout, [3, 1, 1], [stride, 1, 1], [1, 0, 0]))
}

/// torchvision's `BasicBlock` with a `Conv2Plus1D` builder.
fn basic_block(p: nn::Path, cin: i64, cout: i64, stride: i64, bn: &BnSync) -> impl ModuleT {
    let mid = midplanes(cin, cout);
    let conv1 = nn::seq_t()
        .add(conv2plus1d(&p / "conv1" / 0, cin, cout, mid, stride, bn))
        .add(batch_norm3d(&p / "conv1" / 1, cout, bn))
        .add_fn(|x| x.relu());
    let conv2 = nn::seq_t()
        .add(conv2plus1d(&p / "conv2" / 0, cout, cout, mid, 1, bn))
        .add(batch_norm3d(&p / "conv2" / 1, cout, bn));
    let downsample = (stride != 1 || cin != cout).then(|| {
        nn::seq_t()
            .add(conv3d(
                &p / "downsample" / 0,
                cin,
                cout,
                [1, 1, 1],
                [stride; 3],
                [0, 0, 0],
            ))
            .add(batch_norm3d(&p / "downsample" / 1, cout, bn))
    });
    nn::func_t(move |x, train| {
        let shortcut = match &downsample {
            Some(d) => x.apply_t(d, train),
            None => x.shallow_clone(),
        };
        (x.apply_t(&conv1, train).apply_t(&conv2, train) + shortcut).relu()
    })
}

fn layer(p: nn::Path, cin: i64, cout: i64, stride: i64, blocks: usize, bn: &BnSync) -> nn::SequentialT {
    (0..blocks).fold(nn::seq_t(), |seq, i| {
        let (cin, stride) = if i == 0 { (cin, stride) } else { (cout, 1) };
        seq.add(basic_block(&p / i, cin, cout, stride, bn))
    })
}

/// The encoder: `[N, 3, T, H, W]` float (normalised) -> `[N, feature_dim(width)]`.
pub fn r2plus1d_18(p: &nn::Path, width: f64, bn: &BnSync) -> impl ModuleT {
    let w = |c: i64| scaled(c, width);
    let stem = nn::seq_t()
        .add(conv3d(p / "stem" / 0, 3, w(45), [1, 7, 7], [1, 2, 2], [0, 3, 3]))
        .add(batch_norm3d(p / "stem" / 1, w(45), bn))
        .add_fn(|x| x.relu())
        .add(conv3d(
            p / "stem" / 3,
            w(45),
            w(64),
            [3, 1, 1],
            [1, 1, 1],
            [1, 0, 0],
        ))
        .add(batch_norm3d(p / "stem" / 4, w(64), bn))
        .add_fn(|x| x.relu());
    stem.add(layer(p / "layer1", w(64), w(64), 1, 2, bn))
        .add(layer(p / "layer2", w(64), w(128), 2, 2, bn))
        .add(layer(p / "layer3", w(128), w(256), 2, 2, bn))
        .add(layer(p / "layer4", w(256), w(512), 2, 2, bn))
        .add_fn(|x| x.mean_dim(&[2i64, 3, 4][..], false, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn midplanes_match_torchvision() {
        // torchvision r2plus1d_18: 64->64 gives 144, 64->128 gives 230, 512->512 gives 1152.
        assert_eq!(midplanes(64, 64), 144);
        assert_eq!(midplanes(64, 128), 230);
        assert_eq!(midplanes(512, 512), 1152);
    }

    #[test]
    fn full_model_has_torchvision_parameter_count() {
        // torchvision.models.video.r2plus1d_18 without its fc layer: 31,300,125 parameters,
        // its reported 31,505,325 less the 400-class fc (512 x 400 weights + 400 biases).
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = r2plus1d_18(&vs.root(), 1.0, &None);
        let n: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(n, 31_505_325 - 205_200);
    }

    #[test]
    fn output_shape_at_default_geometry() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = r2plus1d_18(&vs.root(), 1.0, &None);
        let x = Tensor::zeros([1, 3, 30, 112, 112], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| x.apply_t(&m, false));
        assert_eq!(y.size(), [1, 512]);
    }
}
