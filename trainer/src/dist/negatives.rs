//! Global negatives: the other ranks' embeddings of a step join every denominator of this
//! rank's loss, so a data-parallel run contrasts against the global batch, as one process
//! would (the reference's `dist_collect_other`).

use tch::{Kind, Tensor};

use super::{DistError, ProcessGroup};

/// The other ranks' embeddings of this step as extra negatives for this rank's anchors (the
/// reference's `dist_collect_other`; detached unless `with_grad`), and which anchor's
/// denominator holds which (`[2n, m]`: with cross-modal pairs, a video anchor meets the
/// other ranks' audio and an audio anchor their video). Every rank sends `[video rows;
/// audio rows]`, each padded with zero rows to `max_views` (a rank that skipped a damaged
/// record has fewer); embeddings are unit vectors, so a zero row is padding and takes part
/// in no denominator.
pub fn other_ranks_negatives(
    group: &ProcessGroup,
    embeddings: &Tensor,
    max_views: usize,
    cross_modal_only: bool,
    with_grad: bool,
) -> Result<(Tensor, Tensor), DistError> {
    let (n, m) = (embeddings.size()[0] / 2, max_views as i64);
    let local = if with_grad {
        embeddings.shallow_clone()
    } else {
        embeddings.detach()
    };
    let pad = |rows: Tensor| rows.constant_pad_nd([0, 0, 0, m - n]);
    let padded = Tensor::cat(&[pad(local.narrow(0, 0, n)), pad(local.narrow(0, n, n))], 0);
    let all = if with_grad {
        group.all_gather_with_grad(&padded)?
    } else {
        group.all_gather(&padded)?
    };
    let others: Vec<i64> = (0..group.world() as i64)
        .filter(|&r| r != group.rank() as i64)
        .collect();
    let keys = all
        .index_select(0, &Tensor::from_slice(&others).to_device(all.device()))
        .flatten(0, 1);
    let device = embeddings.device();
    // Rows: this rank's n video anchors, then its n audio anchors. Keys: per other rank, m
    // video rows, then m audio rows.
    let anchor_is_video = Tensor::arange(2 * n, (Kind::Int64, device)).lt(n).unsqueeze(1);
    let key_is_video = Tensor::arange(keys.size()[0], (Kind::Int64, device))
        .remainder(2 * m)
        .lt(m)
        .unsqueeze(0);
    let present = keys
        .square()
        .sum_dim_intlist(1, false, Kind::Float)
        .gt(0.0)
        .unsqueeze(0);
    let keys_w = if cross_modal_only {
        anchor_is_video.ne_tensor(&key_is_video).logical_and(&present)
    } else {
        present.expand([2 * n, keys.size()[0]], false)
    };
    Ok((keys, keys_w.to_kind(Kind::Float)))
}
