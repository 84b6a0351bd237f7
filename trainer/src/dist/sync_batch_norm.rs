//! Synchronised batch norm: in training, the statistics are the global batch's, as if one
//! process held every rank's rows. Each rank's per-channel mean, variance and row count are
//! all-gathered with gradients and combined (Chan's parallel formula, exact for unequal
//! counts), so the backward pass carries every rank's share of the gradient through the
//! statistics, as PyTorch's SyncBatchNorm does. In f32 whatever the input's precision.

use tch::{nn, Kind, Tensor};

use super::ProcessGroup;

/// `x` (`[N, C, ...]`) normalised with the global batch's statistics, scaled and shifted by
/// `bn`'s weights; `bn`'s running statistics move towards the global ones (unbiased
/// variance over the global count). A failed collective is recorded on `group` (see
/// [`ProcessGroup::take_failure`]) and `x` comes back unnormalised: a forward pass cannot
/// return an error, so the training loop checks the group after it.
pub fn sync_batch_norm(
    x: &Tensor,
    bn: &nn::BatchNorm,
    group: &ProcessGroup,
    eps: f64,
    momentum: f64,
) -> Tensor {
    if group.has_failed() {
        return x.shallow_clone();
    }
    let c = x.size()[1];
    let dims: Vec<i64> = (0..x.dim() as i64).filter(|&d| d != 1).collect();
    let xf = x.to_kind(Kind::Float);
    let (var, mean) = xf.var_mean_correction(dims.as_slice(), 0, false);
    let rows = Tensor::full([1], (x.numel() as i64 / c) as f64, (Kind::Float, x.device()));
    let all = match group.all_gather_with_grad(&Tensor::cat(&[mean, var, rows], 0)) {
        Ok(all) => all,
        Err(e) => {
            group.record_failure(e);
            return x.shallow_clone();
        }
    };
    let (means, vars, counts) = (all.narrow(1, 0, c), all.narrow(1, c, c), all.narrow(1, 2 * c, 1));
    let total = counts.sum(Kind::Float);
    let mean = (&means * &counts).sum_dim_intlist(0, false, Kind::Float) / &total;
    let spread = (vars + (means - mean.unsqueeze(0)).square()) * &counts;
    let var = spread.sum_dim_intlist(0, false, Kind::Float) / &total;

    tch::no_grad(|| {
        let n = total.double_value(&[]);
        let unbiased = &var * (n / (n - 1.0).max(1.0));
        let (mut rm, mut rv) = (bn.running_mean.shallow_clone(), bn.running_var.shallow_clone());
        rm.copy_(&(&bn.running_mean * (1.0 - momentum) + &mean * momentum));
        rv.copy_(&(&bn.running_var * (1.0 - momentum) + unbiased * momentum));
    });

    let mut shape = vec![1i64; x.dim()];
    shape[1] = c;
    let mut y = (xf - mean.view(shape.as_slice())) * (var + eps).rsqrt().view(shape.as_slice());
    if let (Some(w), Some(b)) = (&bn.ws, &bn.bs) {
        y = y * w.view(shape.as_slice()) + b.view(shape.as_slice());
    }
    y.to_kind(x.kind())
}
