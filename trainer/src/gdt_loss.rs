//! GDT-NCE, the generalised contrastive loss, written as the paper's formula:
//!
//! ```text
//! L = - 1/P  sum_{T,T'} c(T,T') w(T,T') log( exp(<f_T, f_T'>/rho) / sum_{T''} w(T,T'') exp(<f_T, f_T''>/rho) )
//! ```
//!
//! with `P = sum c w` the number of positive pairs, so the loss does not scale with the batch
//! (the paper's sum divided by its number of terms). Several positives per row are allowed.
//! The denominator is a masked log-sum-exp, stable for any temperature. The masks come from
//! [`crate::spec`].
//!
//! `detach_keys` gives gradients only through the query side `f_T`, as the reference code
//! does; by default both sides receive gradients, as the formula reads.

use tch::{Kind, Tensor};

/// `embeddings`: `[n, d]` (L2-normalised in training, any values here). `c`, `w`: `[n, n]`
/// 0/1 masks on the same device. Computed in f32 (f64 if the embeddings are f64), whatever
/// autocast did upstream.
pub fn gdt_nce(embeddings: &Tensor, c: &Tensor, w: &Tensor, temperature: f64, detach_keys: bool) -> Tensor {
    nce(embeddings, c, w, temperature, detach_keys, None)
}

/// [`gdt_nce`] whose denominators also hold `extra` keys `[m, d]`: the other ranks'
/// embeddings in a data-parallel run (the reference's `dist_collect_other`), other samples,
/// so never positives. `extra_w`: `[n, m]`, whether row i's denominator holds key k.
pub fn gdt_nce_with_negatives(
    embeddings: &Tensor,
    c: &Tensor,
    w: &Tensor,
    temperature: f64,
    detach_keys: bool,
    extra: &Tensor,
    extra_w: &Tensor,
) -> Tensor {
    nce(embeddings, c, w, temperature, detach_keys, Some((extra, extra_w)))
}

fn nce(
    embeddings: &Tensor,
    c: &Tensor,
    w: &Tensor,
    temperature: f64,
    detach_keys: bool,
    extra: Option<(&Tensor, &Tensor)>,
) -> Tensor {
    let kind = if embeddings.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let q = embeddings.to_kind(kind);
    let k = if detach_keys {
        q.detach()
    } else {
        q.shallow_clone()
    };
    let logits = q.matmul(&k.tr()) / temperature;
    let c = c.to_kind(kind);
    let w = w.to_kind(kind);
    let absent = w.eq(0.0);
    let in_batch = logits.masked_fill(&absent, f64::NEG_INFINITY);
    let log_denominator = match extra {
        None => in_batch.logsumexp([1i64], true),
        Some((keys, extra_w)) => {
            let outside = (q.matmul(&keys.to_kind(kind).tr()) / temperature)
                .masked_fill(&extra_w.to_kind(kind).eq(0.0), f64::NEG_INFINITY);
            Tensor::cat(&[in_batch, outside], 1).logsumexp([1i64], true)
        }
    };
    let positive = &c * &w;
    let log_p = (logits - log_denominator).masked_fill(&positive.eq(0.0), 0.0);
    -(positive.shallow_clone() * log_p).sum(kind) / positive.sum(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{preset_names, Masks, TransformSpec};
    use tch::Device;

    /// The formula with loops over plain f64, nothing shared with the tensor version.
    fn reference(z: &[Vec<f64>], m: &Masks, rho: f64) -> f64 {
        m.reference_loss(z, rho, &[], &|_, _| false)
    }

    fn tensors(m: &Masks, kind: Kind) -> (Tensor, Tensor) {
        let (c, w) = m.as_f32();
        let n = m.n as i64;
        (
            Tensor::from_slice(&c).reshape([n, n]).to_kind(kind),
            Tensor::from_slice(&w).reshape([n, n]).to_kind(kind),
        )
    }

    /// Random batch layouts: 2-5 records, 1-3 shifts, reversal on or off, random flips.
    fn random_layout(rng: &mut u64) -> (Vec<gdt_pipeline::load::batch::ViewMeta>, usize, bool) {
        let mut next = || {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng
        };
        let records = 2 + (next() % 4) as u32;
        let shifts = 1 + (next() % 3) as u8;
        let reversal = next() % 2 == 0;
        let mut views = crate::spec::test_layout(records, shifts, reversal);
        for v in &mut views {
            v.video.flip = next() % 2 == 0;
        }
        (views, shifts as usize, reversal)
    }

    #[test]
    fn equals_the_f64_reference_for_every_preset_on_random_layouts() {
        tch::manual_seed(7);
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for name in preset_names() {
            let spec = TransformSpec::preset(name).unwrap().spec;
            for trial in 0..4 {
                let (views, _, _) = random_layout(&mut rng);
                let m = spec.masks(&views).unwrap();
                let z = crate::model::head::l2_normalise(&Tensor::randn(
                    [m.n as i64, 16],
                    (Kind::Double, Device::Cpu),
                ));
                let rows: Vec<Vec<f64>> = (0..m.n as i64)
                    .map(|i| Vec::<f64>::try_from(z.get(i)).unwrap())
                    .collect();
                for (rho, detach) in [(0.07, false), (0.5, true)] {
                    let (c, w) = tensors(&m, Kind::Double);
                    let got = gdt_nce(&z, &c, &w, rho, detach).double_value(&[]);
                    let want = reference(&rows, &m, rho);
                    assert!(
                        (got - want).abs() < 1e-9 * want.abs().max(1.0),
                        "{name} #{trial}: {got} vs {want}"
                    );
                }
                // f32 agrees to f32 precision.
                let (c, w) = tensors(&m, Kind::Float);
                let got = gdt_nce(&z.to_kind(Kind::Float), &c, &w, 0.07, false).double_value(&[]);
                let want = reference(&rows, &m, 0.07);
                assert!(
                    (got - want).abs() < 1e-4 * want.abs().max(1.0),
                    "{name} f32: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn extra_negatives_join_every_denominator_they_are_allowed_in() {
        tch::manual_seed(11);
        let spec = TransformSpec::preset("tr-distinct-ts-distinct").unwrap().spec;
        let m = spec.masks(&crate::spec::test_layout(3, 2, true)).unwrap();
        let unit = |rows: i64| {
            crate::model::head::l2_normalise(&Tensor::randn([rows, 16], (Kind::Double, Device::Cpu)))
        };
        let (z, x) = (unit(m.n as i64), unit(10));
        let rows = |t: &Tensor| -> Vec<Vec<f64>> {
            (0..t.size()[0])
                .map(|i| Vec::<f64>::try_from(t.get(i)).unwrap())
                .collect()
        };
        // Cross-modal: the first half of the rows (video) meets the last 5 keys (audio).
        let allowed = |row: usize, key: usize| (row < m.n / 2) == (key >= 5);
        let ew: Vec<f64> = (0..m.n)
            .flat_map(|r| (0..10).map(move |k| allowed(r, k) as u8 as f64))
            .collect();
        let ew = Tensor::from_slice(&ew).reshape([m.n as i64, 10]);
        let (c, w) = tensors(&m, Kind::Double);
        let got = gdt_nce_with_negatives(&z, &c, &w, 0.1, true, &x, &ew).double_value(&[]);
        let want = m.reference_loss(&rows(&z), 0.1, &rows(&x), &allowed);
        assert!((got - want).abs() < 1e-9 * want.abs(), "{got} vs {want}");
        // More negatives, a larger loss; none allowed, the plain loss.
        assert!(got > gdt_nce(&z, &c, &w, 0.1, true).double_value(&[]));
        let none = gdt_nce_with_negatives(&z, &c, &w, 0.1, true, &x, &ew.zeros_like()).double_value(&[]);
        assert!((none - reference(&rows(&z), &m, 0.1)).abs() < 1e-9 * none.abs());
    }

    #[test]
    fn stays_finite_at_tiny_temperature() {
        let spec = TransformSpec::preset("tr-distinct-ts-distinct").unwrap().spec;
        let m = spec.masks(&crate::spec::test_layout(2, 2, true)).unwrap();
        let (c, w) = tensors(&m, Kind::Float);
        let z = crate::model::head::l2_normalise(&Tensor::randn([m.n as i64, 8], (Kind::Float, Device::Cpu)));
        let l = gdt_nce(&z, &c, &w, 1e-4, false).double_value(&[]);
        assert!(l.is_finite(), "{l}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        tch::manual_seed(3);
        let spec = TransformSpec::preset("tr-distinct-ts-invariant").unwrap().spec;
        let m = spec.masks(&crate::spec::test_layout(2, 2, true)).unwrap();
        let (c, w) = tensors(&m, Kind::Double);
        let z0 = Tensor::randn([m.n as i64, 4], (Kind::Double, Device::Cpu)) * 0.5;
        let z = z0.copy().set_requires_grad(true);
        gdt_nce(&z, &c, &w, 0.3, false).backward();
        let grad = Vec::<f64>::try_from(z.grad().flatten(0, -1)).unwrap();
        let flat = Vec::<f64>::try_from(z0.flatten(0, -1)).unwrap();
        let eps = 1e-6;
        for (i, g) in grad.iter().enumerate() {
            let at = |d: f64| {
                let mut v = flat.clone();
                v[i] += d;
                let t = Tensor::from_slice(&v).reshape([m.n as i64, 4]);
                gdt_nce(&t, &c, &w, 0.3, false).double_value(&[])
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (numeric - g).abs() < 1e-6,
                "element {i}: autograd {g}, numeric {numeric}"
            );
        }
    }

    #[test]
    fn detached_keys_change_the_gradient_not_the_value() {
        let spec = TransformSpec::preset("cross-modal").unwrap().spec;
        let m = spec.masks(&crate::spec::test_layout(2, 1, false)).unwrap();
        let (c, w) = tensors(&m, Kind::Double);
        let z0 = Tensor::randn([m.n as i64, 4], (Kind::Double, Device::Cpu));
        let run = |detach| {
            let z = z0.copy().set_requires_grad(true);
            let l = gdt_nce(&z, &c, &w, 0.2, detach);
            l.backward();
            (l.double_value(&[]), z.grad())
        };
        let (a, ga) = run(false);
        let (b, gb) = run(true);
        assert!((a - b).abs() < 1e-12);
        assert!((ga - gb).abs().max().double_value(&[]) > 1e-6);
    }
}
