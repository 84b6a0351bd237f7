//! The scores themselves, on plain feature matrices (rows L2-normalised where cosine is
//! meant): recall@k, weighted kNN, and the linear probe. Kept apart from feature extraction
//! so each is tested on hand-made features.

use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Rows scaled to unit length.
pub fn normalise(x: &Tensor) -> Tensor {
    crate::model::head::l2_normalise(&x.to_kind(Kind::Float))
}

/// Recall@k for each k: the share of queries with a hit among their k most similar gallery
/// rows (cosine; rows must be normalised). `hit(q, g)` says whether gallery row g answers
/// query q.
pub fn recall_at(
    queries: &Tensor,
    gallery: &Tensor,
    ks: &[usize],
    hit: impl Fn(usize, usize) -> bool,
) -> Vec<f64> {
    let n_q = queries.size()[0] as usize;
    let n_g = gallery.size()[0] as usize;
    if n_q == 0 || n_g == 0 {
        return vec![f64::NAN; ks.len()];
    }
    let sims = queries.matmul(&gallery.tr());
    let kmax = ks.iter().copied().max().unwrap_or(1).min(n_g) as i64;
    let (_, idx) = sims.topk(kmax, 1, true, true);
    let idx = Vec::<Vec<i64>>::try_from(&idx).expect("topk indices");
    ks.iter()
        .map(|&k| {
            let hits = idx
                .iter()
                .enumerate()
                .filter(|(q, row)| row.iter().take(k).any(|&g| hit(*q, g as usize)))
                .count();
            hits as f64 / n_q as f64
        })
        .collect()
}

/// Weighted k-nearest-neighbour top-1 accuracy: each of the k most similar training rows votes
/// for its label with weight exp(cos / 0.07) (the instance-discrimination convention).
pub fn knn_top1(
    train: &Tensor,
    train_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    k: usize,
    classes: usize,
) -> f64 {
    if test_labels.is_empty() || train_labels.is_empty() {
        return f64::NAN;
    }
    let sims = test.matmul(&train.tr());
    let k = k.min(train_labels.len()) as i64;
    let (vals, idx) = sims.topk(k, 1, true, true);
    let vals = Vec::<Vec<f32>>::try_from(&vals).expect("topk values");
    let idx = Vec::<Vec<i64>>::try_from(&idx).expect("topk indices");
    let mut correct = 0;
    for (q, (v, i)) in vals.iter().zip(&idx).enumerate() {
        let mut votes = vec![0.0f64; classes];
        for (s, g) in v.iter().zip(i) {
            votes[train_labels[*g as usize] as usize] += ((*s as f64) / 0.07).exp();
        }
        let best = (0..classes)
            .max_by(|a, b| votes[*a].total_cmp(&votes[*b]))
            .unwrap_or(0);
        correct += (best as u32 == test_labels[q]) as usize;
    }
    correct as f64 / test_labels.len() as f64
}

/// Linear probe: multinomial logistic regression on standardised frozen features (train
/// statistics), full-batch Adam with a little weight decay; returns test top-1.
pub fn linear_probe(
    train: &Tensor,
    train_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    classes: usize,
    seed: i64,
) -> f64 {
    if test_labels.is_empty() || train_labels.is_empty() {
        return f64::NAN;
    }
    tch::manual_seed(seed);
    let train = train.to_kind(Kind::Float).to_device(Device::Cpu);
    let test = test.to_kind(Kind::Float).to_device(Device::Cpu);
    let mean = train.mean_dim(0, true, Kind::Float);
    let std = if train.size()[0] > 1 {
        train.std_dim(0, false, true) + 1e-6
    } else {
        train.ones_like()
    };
    let x = (&train - &mean) / &std;
    let xt = (&test - &mean) / &std;
    let y = Tensor::from_slice(&train_labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = nn::linear(vs.root(), x.size()[1], classes as i64, Default::default());
    let mut opt = nn::Adam {
        wd: 1e-4,
        ..Default::default()
    }
    .build(&vs, 0.01)
    .expect("Adam");
    for _ in 0..300 {
        let loss = x.apply(&layer).cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
    }
    let pred = Vec::<i64>::try_from(tch::no_grad(|| xt.apply(&layer).argmax(1, false))).expect("predictions");
    let correct = pred
        .iter()
        .zip(test_labels)
        .filter(|(p, l)| **p == **l as i64)
        .count();
    correct as f64 / test_labels.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[[f32; 2]]) -> Tensor {
        normalise(&Tensor::from_slice(&v.concat()).reshape([v.len() as i64, 2]))
    }

    #[test]
    fn recall_counts_hits_within_k() {
        let gallery = rows(&[[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]);
        let queries = rows(&[[1.0, 0.1], [0.1, 1.0]]);
        // Query 0 is answered by gallery 1 only (its third nearest), query 1 by gallery 0.
        let r = recall_at(&queries, &gallery, &[1, 2, 3], |q, g| {
            (q, g) == (0, 1) || (q, g) == (1, 0)
        });
        assert_eq!(r, [0.0, 0.0, 1.0]);
        let r = recall_at(&queries, &gallery, &[1], |q, g| q == g);
        assert_eq!(r, [1.0]);
    }

    #[test]
    fn knn_and_linear_probe_separate_separable_classes() {
        tch::manual_seed(1);
        let make = |n: usize| {
            let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
            let centres =
                Tensor::from_slice(&[4.0f32, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 4.0]).reshape([3, 3]);
            let idx = Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
            let x = centres.index_select(0, &idx) + Tensor::randn([n as i64, 3], (Kind::Float, Device::Cpu));
            (x, labels)
        };
        let (xtr, ytr) = make(60);
        let (xte, yte) = make(30);
        assert!(knn_top1(&normalise(&xtr), &ytr, &normalise(&xte), &yte, 20, 3) > 0.85);
        assert!(linear_probe(&xtr, &ytr, &xte, &yte, 3, 0) > 0.85);
        // Shuffled labels carry nothing: close to chance (1/3).
        let shuffled: Vec<u32> = ytr.iter().map(|l| (l + 1) % 3).collect();
        assert!(knn_top1(&normalise(&xtr), &shuffled, &normalise(&xte), &yte, 20, 3) < 0.2);
    }
}
