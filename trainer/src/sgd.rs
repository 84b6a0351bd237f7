//! SGD with momentum and weight decay, PyTorch's update rule (no dampening, no Nesterov):
//!
//! ```text
//! d = grad + weight_decay * p;   buf = momentum * buf + d;   p -= lr * buf
//! ```
//!
//! Hand-written rather than tch's `nn::Optimizer` because that one keeps its momentum buffers
//! inside libtorch with no way to read or restore them, and a checkpoint without them cannot
//! resume exactly.

use tch::{TchError, Tensor};

/// SGD with momentum and weight decay, whose momentum buffers a checkpoint can hold.
pub struct Sgd {
    /// Trainable parameters by VarStore name, sorted, so the state file is stable.
    params: Vec<(String, Tensor)>,
    buffers: Vec<Tensor>,
    /// Momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
}

/// The prefix of momentum buffers in a checkpoint's optimizer file.
const BUFFER_PREFIX: &str = "momentum.";

impl Sgd {
    /// An optimizer over every trainable variable of `vs`.
    pub fn new(vs: &tch::nn::VarStore, momentum: f64, weight_decay: f64) -> Sgd {
        let vars = vs.variables();
        let mut params: Vec<(String, Tensor)> = vars.into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        // zeros_like keeps each parameter's strides (channels-last weights stay channels-last).
        let buffers = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Sgd {
            params,
            buffers,
            momentum,
            weight_decay,
        }
    }

    /// The parameters it updates, in its (name) order: the same on every rank.
    pub fn parameters(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().map(|(_, p)| p)
    }

    /// One update at rate `lr`.
    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(&mut self.buffers) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let d = g + p.shallow_clone() * self.weight_decay;
                let _ = buf.g_mul_scalar_(self.momentum).g_add_(&d);
                let _ = p.g_sub_(&(buf.shallow_clone() * lr));
            }
        });
    }

    /// Clears every gradient, in place: in a data-parallel run the gradients are views into
    /// DDP's buckets, which must stay where they are (tch's `zero_grad` detaches them in
    /// place, which a view refuses).
    pub fn zero_grad(&mut self) {
        tch::no_grad(|| {
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
        });
    }

    /// Momentum buffers by name, for a checkpoint (on the CPU, contiguous).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .map(|((name, _), b)| {
                (
                    format!("{BUFFER_PREFIX}{name}"),
                    b.to_device(tch::Device::Cpu).contiguous(),
                )
            })
            .collect()
    }

    /// Restores buffers saved by [`Sgd::state`]; every parameter must have its buffer.
    pub fn load_state(&mut self, saved: &[(String, Tensor)]) -> Result<(), TchError> {
        for ((name, _), buf) in self.params.iter().zip(&mut self.buffers) {
            let key = format!("{BUFFER_PREFIX}{name}");
            let src = saved
                .iter()
                .find(|(n, _)| *n == key)
                .ok_or_else(|| TchError::TensorNameNotFound(key.clone(), "optimizer state".into()))?;
            tch::no_grad(|| buf.f_copy_(&src.1))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn matches_the_pytorch_update_rule_by_hand() {
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs.root().var("p", &[3], nn::Init::Const(1.0));
        let mut opt = Sgd::new(&vs, 0.9, 0.1);
        let target = Tensor::from_slice(&[0.0f32, 2.0, -1.0]);
        let (mut x, mut buf) = ([1.0f64; 3], [0.0f64; 3]);
        for _ in 0..3 {
            opt.zero_grad();
            (&p - &target).square().sum(Kind::Float).backward();
            opt.step(0.05);
            for i in 0..3 {
                let t = [0.0, 2.0, -1.0][i];
                let d = 2.0 * (x[i] - t) + 0.1 * x[i];
                buf[i] = 0.9 * buf[i] + d;
                x[i] -= 0.05 * buf[i];
            }
        }
        let got = Vec::<f32>::try_from(&p).unwrap();
        for i in 0..3 {
            assert!((got[i] as f64 - x[i]).abs() < 1e-5, "{got:?} vs {x:?}");
        }
        let state = opt.state();
        assert_eq!(state[0].0, "momentum.p");
        let mut fresh = Sgd::new(&vs, 0.9, 0.1);
        fresh.load_state(&state).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(&fresh.buffers[0]).unwrap(),
            Vec::<f32>::try_from(&opt.buffers[0]).unwrap()
        );
        assert!(fresh.load_state(&[]).is_err());
    }
}
