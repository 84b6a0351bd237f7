//! The projection head that maps an encoder's pooled features into the contrastive space:
//! (dropout) Linear no bias, BN1d, ReLU, (dropout), Linear to 256, then L2 normalisation so
//! that dot products are cosine similarities and the temperature means what it says.

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::layers::{batch_norm1d, BnSync};

/// The contrastive embedding's width.
pub const EMBEDDING_DIM: i64 = 256;

/// The projection head: (dropout) Linear, BN, ReLU, (dropout), Linear to 256, L2-normalised.
pub fn head(p: &nn::Path, features: i64, dropout: f64, bn: &BnSync) -> impl ModuleT {
    let no_bias = nn::LinearConfig {
        bias: false,
        ..Default::default()
    };
    let fc1 = nn::linear(p / "fc1", features, features, no_bias);
    let bn = batch_norm1d(p / "bn", features, bn);
    let fc2 = nn::linear(p / "fc2", features, EMBEDDING_DIM, Default::default());
    nn::func_t(move |x, train| {
        let h = x.dropout(dropout, train).apply(&fc1).apply_t(&bn, train).relu();
        l2_normalise(&h.dropout(dropout, train).apply(&fc2))
    })
}

/// Rows scaled to unit length (a zero row stays zero instead of becoming NaN).
pub fn l2_normalise(x: &Tensor) -> Tensor {
    let norm = x.square().sum_dim_intlist(-1, true, None).sqrt().clamp_min(1e-12);
    x / norm
}
