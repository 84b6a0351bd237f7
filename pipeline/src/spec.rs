//! Which transformations the representation must be invariant or distinctive to: the
//! declarative spec behind the GDT-NCE loss, its presets, and the masks it gives a batch.
//!
//! A batch of `N` views yields `2N` samples: every view's video clip (samples `0..N`) and its
//! audio clip (samples `N..2N`). Each sample carries the factors of its transformation
//! T = (i, tau, r, m, g): record, time shift, reversal, modality and the augmentation drawn. A
//! spec gives each factor a relation: `invariant` (any two values match) or `distinct` (only
//! equal values match). The contrast mask is their product,
//! `c(T,T') = prod_f c_f(t_f, t'_f)`, so a pair is positive when it agrees on every distinct
//! factor. `pairs` picks the weight mask `w`: cross-modal pairs only (the paper's default) or
//! all pairs. A sample is never paired with itself.
//!
//! Augmentation factors (`flip`, `scale`, `crop`, `jitter`) belong to the *view*: a view's
//! audio clip carries the same values as its video clip, so declaring `flip` distinct makes a
//! flipped view's video and audio a positive pair and separates them from unflipped views.

use std::collections::BTreeMap;
use std::fmt;

use crate::load::batch::ViewMeta;

/// A per-sample factor a spec can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Factor {
    /// The record (video) index i: always distinct.
    Sample,
    /// Video or audio: always invariant (there would be no cross-modal positive otherwise).
    Modality,
    /// Which of the record's time shifts (tau).
    Shift,
    /// Forward or time-reversed (r).
    Reversal,
    /// Horizontal flip of the video clip.
    Flip,
    /// The short side the frame was scaled to (scale jitter).
    Scale,
    /// The crop box.
    Crop,
    /// Colour jitter applied or not.
    Jitter,
}

impl Factor {
    /// Every factor, in a fixed order.
    pub const ALL: [Factor; 8] = [
        Factor::Sample,
        Factor::Modality,
        Factor::Shift,
        Factor::Reversal,
        Factor::Flip,
        Factor::Scale,
        Factor::Crop,
        Factor::Jitter,
    ];

    /// Its name in configs.
    pub fn name(self) -> &'static str {
        match self {
            Factor::Sample => "sample",
            Factor::Modality => "modality",
            Factor::Shift => "shift",
            Factor::Reversal => "reversal",
            Factor::Flip => "flip",
            Factor::Scale => "scale",
            Factor::Crop => "crop",
            Factor::Jitter => "jitter",
        }
    }

    /// The factor of a config name.
    pub fn parse(name: &str) -> Result<Factor, SpecError> {
        Factor::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| {
            SpecError::Invalid(format!(
                "unknown factor `{name}`; known factors: {}",
                known_factors()
            ))
        })
    }

    /// The factor's value for sample `s` of a batch with `n` views: equal keys, equal values.
    fn key(self, views: &[ViewMeta], s: usize) -> u64 {
        let n = views.len();
        let v = &views[s % n];
        match self {
            Factor::Sample => v.record as u64,
            Factor::Modality => (s / n) as u64,
            Factor::Shift => v.shift as u64,
            Factor::Reversal => v.reversed as u64,
            Factor::Flip => v.video.flip as u64,
            Factor::Scale => v.video.scale.to_bits() as u64,
            Factor::Crop => {
                let b = v.video.crop_box.map(f32::to_bits);
                let lo = (b[0] as u64) << 32 | b[1] as u64;
                let hi = (b[2] as u64) << 32 | b[3] as u64;
                lo.rotate_left(17) ^ hi.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            }
            Factor::Jitter => v.video.jitter.is_some() as u64,
        }
    }
}

fn known_factors() -> String {
    Factor::ALL.map(Factor::name).join(", ")
}

/// What the representation must be to a factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// The same whatever the factor's value.
    Invariant,
    /// Different when the factor's value differs.
    Distinct,
}

impl Relation {
    /// `invariant` or `distinct`.
    pub fn parse(s: &str) -> Result<Relation, SpecError> {
        match s {
            "invariant" => Ok(Relation::Invariant),
            "distinct" => Ok(Relation::Distinct),
            _ => Err(SpecError::Invalid(format!(
                "`{s}` is not a relation; use `invariant` or `distinct`"
            ))),
        }
    }
}

/// Which pairs take part in the loss (w).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairs {
    /// Only video-audio pairs (the paper's default).
    CrossModal,
    /// Every pair, within and across modalities.
    All,
}

impl Pairs {
    /// `cross-modal` or `all`.
    pub fn parse(s: &str) -> Result<Pairs, SpecError> {
        match s {
            "cross-modal" => Ok(Pairs::CrossModal),
            "all" => Ok(Pairs::All),
            _ => Err(SpecError::Invalid(format!(
                "`{s}` is not a pair set; use `cross-modal` or `all`"
            ))),
        }
    }

    /// Its name in configs.
    pub fn name(self) -> &'static str {
        match self {
            Pairs::CrossModal => "cross-modal",
            Pairs::All => "all",
        }
    }
}

/// An invalid spec or batch, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec, its layout or hand-built masks break a rule.
    #[error("invalid GDT spec: {0}")]
    Invalid(String),
    /// A sample has no negative among the pairs that take part: its loss term is exactly 0
    /// and the batch trains nothing (a batch of one record under a spec invariant to all but
    /// the sample, for instance).
    #[error(
        "sample {sample} has no negative among the pairs that take part: the GDT-NCE loss is exactly 0 and trains nothing{hint}"
    )]
    NoNegative {
        /// The first such sample.
        sample: usize,
        /// What to change, when known.
        hint: String,
    },
}

/// A validated spec. Factors it does not name are invariant, except `sample` (distinct).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformSpec {
    relations: BTreeMap<Factor, Relation>,
    /// Which pairs take part.
    pub pairs: Pairs,
}

/// A named experiment of the paper's study, with the view layout it needs.
#[derive(Clone, Debug)]
pub struct Preset {
    /// Its name.
    pub name: &'static str,
    /// What it is, in words.
    pub about: &'static str,
    /// Its spec.
    pub spec: TransformSpec,
    /// Time shifts per record and whether each gets a reversed view.
    pub shifts: usize,
    /// Whether each shift also gets a reversed view.
    pub reversal: bool,
}

/// One row of the presets table: a named experiment of the paper, the relations it
/// declares for time shift and reversal (every other factor keeps its default), which pairs
/// take part, and the views per record it needs.
struct PresetRow {
    name: &'static str,
    about: &'static str,
    shift: Relation,
    reversal: Relation,
    pairs: Pairs,
    shifts: usize,
    reversed_views: bool,
}

const fn row(
    name: &'static str,
    about: &'static str,
    (shift, reversal): (Relation, Relation),
    pairs: Pairs,
    (shifts, reversed_views): (usize, bool),
) -> PresetRow {
    PresetRow {
        name,
        about,
        shift,
        reversal,
        pairs,
        shifts,
        reversed_views,
    }
}

use Relation::{Distinct as D, Invariant as I};

/// The presets: (shift, reversal), pairs, (shifts, reversed views).
const PRESETS: [PresetRow; 7] = [
    row(
        "simclr",
        "distinct on sample only, all pairs",
        (I, I),
        Pairs::All,
        (2, false),
    ),
    row(
        "cross-modal",
        "the basecase: invariant to all but sample, cross-modal",
        (I, I),
        Pairs::CrossModal,
        (1, false),
    ),
    row(
        "tr-distinct",
        "distinct to time reversal, one shift",
        (I, D),
        Pairs::CrossModal,
        (1, true),
    ),
    row(
        "ts-distinct",
        "distinct to time shift, forward only",
        (D, I),
        Pairs::CrossModal,
        (2, false),
    ),
    row(
        "tr-distinct-ts-distinct",
        "distinct to shift and reversal",
        (D, D),
        Pairs::CrossModal,
        (2, true),
    ),
    row(
        "tr-distinct-ts-invariant",
        "distinct to reversal, invariant to shift",
        (I, D),
        Pairs::CrossModal,
        (2, true),
    ),
    row(
        "tr-invariant-ts-distinct",
        "invariant to reversal, distinct to shift",
        (D, I),
        Pairs::CrossModal,
        (2, true),
    ),
];

/// The presets' names, in the table's order.
pub fn preset_names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|p| p.name)
}

/// The preset `gdt train` uses when none is named: the paper's best configuration.
pub const DEFAULT_PRESET: &str = "tr-distinct-ts-distinct";

impl TransformSpec {
    /// Builds and validates a spec from factor names to relation names.
    pub fn new(entries: &BTreeMap<String, String>, pairs: Pairs) -> Result<TransformSpec, SpecError> {
        let mut relations = BTreeMap::new();
        for (name, relation) in entries {
            relations.insert(Factor::parse(name)?, Relation::parse(relation)?);
        }
        TransformSpec::from_relations(relations, pairs)
    }

    fn from_relations(
        mut relations: BTreeMap<Factor, Relation>,
        pairs: Pairs,
    ) -> Result<TransformSpec, SpecError> {
        relations.entry(Factor::Sample).or_insert(Relation::Distinct);
        if relations[&Factor::Sample] == Relation::Invariant {
            return Err(SpecError::Invalid(
                "sample must be distinct: with sample invariant every pair is positive and the loss \
                 has no negatives"
                    .into(),
            ));
        }
        if relations.get(&Factor::Modality) == Some(&Relation::Distinct) && pairs == Pairs::CrossModal {
            return Err(SpecError::Invalid(
                "modality distinct with cross-modal pairs leaves no positive pair (every pair that \
                 takes part crosses modalities); use pairs = \"all\" or modality invariant"
                    .into(),
            ));
        }
        Ok(TransformSpec { relations, pairs })
    }

    /// What the representation must be to `f` (invariant unless declared).
    pub fn relation(&self, f: Factor) -> Relation {
        self.relations.get(&f).copied().unwrap_or(Relation::Invariant)
    }

    /// The factors declared distinct, in a fixed order.
    pub fn distinct(&self) -> Vec<Factor> {
        Factor::ALL
            .into_iter()
            .filter(|&f| self.relation(f) == Relation::Distinct)
            .collect()
    }

    /// Factor name -> relation name for every factor (for the resolved config and logs).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        Factor::ALL
            .into_iter()
            .map(|f| {
                let r = match self.relation(f) {
                    Relation::Invariant => "invariant",
                    Relation::Distinct => "distinct",
                };
                (f.name().to_string(), r.to_string())
            })
            .collect()
    }

    /// The named experiment `name` (see [`preset_names`]).
    pub fn preset(name: &str) -> Result<Preset, SpecError> {
        let row = PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
            SpecError::Invalid(format!(
                "unknown preset `{name}`; presets: {}",
                preset_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let relations = BTreeMap::from([(Factor::Shift, row.shift), (Factor::Reversal, row.reversal)]);
        Ok(Preset {
            name: row.name,
            about: row.about,
            spec: TransformSpec::from_relations(relations, row.pairs)?,
            shifts: row.shifts,
            reversal: row.reversed_views,
        })
    }

    /// Rejects a view layout that cannot express the spec: a factor declared distinct that
    /// never varies inside a record makes the experiment silently the same as invariant.
    pub fn check_layout(&self, shifts: usize, reversal: bool) -> Result<(), SpecError> {
        if self.relation(Factor::Shift) == Relation::Distinct && shifts < 2 {
            return Err(SpecError::Invalid(
                "shift is distinct but each record gets one time shift; set shifts to 2 or more".into(),
            ));
        }
        if self.relation(Factor::Reversal) == Relation::Distinct && !reversal {
            return Err(SpecError::Invalid(
                "reversal is distinct but the loader makes no reversed views".into(),
            ));
        }
        Ok(())
    }

    /// Refuses a batch size whose batches could have no negative: `records` records of
    /// `shifts` shifts (and reversed views) each, with identical augmentation draws (the
    /// worst case), must give every sample a negative.
    pub fn check_batch(&self, records: usize, shifts: usize, reversal: bool) -> Result<(), SpecError> {
        match self.masks(&uniform_views(records, shifts, reversal)) {
            Err(SpecError::NoNegative { sample, .. }) => Err(SpecError::NoNegative {
                sample,
                hint: format!(
                    " in a batch of {records} record(s) under this spec ({self}); use data.batch_size of 2 or more"
                ),
            }),
            other => other.map(|_| ()),
        }
    }

    /// The contrast and weight masks for a batch's views (video samples first, then audio).
    pub fn masks(&self, views: &[ViewMeta]) -> Result<Masks, SpecError> {
        let n = 2 * views.len();
        let distinct = self.distinct();
        let keys: Vec<Vec<u64>> = (0..n)
            .map(|s| distinct.iter().map(|f| f.key(views, s)).collect())
            .collect();
        let half = views.len();
        let mut c = vec![false; n * n];
        let mut w = vec![false; n * n];
        for s in 0..n {
            for t in 0..n {
                c[s * n + t] = keys[s] == keys[t];
                w[s * n + t] = s != t && (self.pairs == Pairs::All || (s < half) != (t < half));
            }
        }
        Masks::new(n, c, w)
    }
}

impl fmt::Display for TransformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d: Vec<_> = self.distinct().into_iter().map(Factor::name).collect();
        write!(f, "distinct: {}; pairs: {}", d.join(", "), self.pairs.name())
    }
}

/// `records` records in the loader's layout (shift-major, forward then reversed), every
/// augmentation draw the same: a batch's views without the draws, for checks and tests.
pub fn uniform_views(records: usize, shifts: usize, reversal: bool) -> Vec<ViewMeta> {
    use crate::load::augment::{AudioDraw, VideoDraw};
    let mut views = Vec::new();
    for record in 0..records as u32 {
        for shift in 0..shifts as u8 {
            for reversed in [false, true].into_iter().take(1 + reversal as usize) {
                views.push(ViewMeta {
                    record,
                    label: None,
                    shift,
                    start_frame: 0,
                    audio_start: 0,
                    reversed,
                    video: VideoDraw {
                        crop_box: [0.0; 4],
                        scale: 128.0,
                        flip: false,
                        jitter: None,
                    },
                    audio: AudioDraw {
                        gain_log: 0.0,
                        freq_mask: (0, 0),
                        time_mask: (0, 0),
                    },
                });
            }
        }
    }
    views
}

/// The c and w masks of one batch, `n x n` row-major, checked: c is an equivalence relation,
/// no sample is paired with itself, and every sample has at least one positive and one
/// negative among the pairs that take part.
#[derive(Clone, Debug, PartialEq)]
pub struct Masks {
    /// Samples (rows): video rows first, then audio rows.
    pub n: usize,
    /// c(i, j): the pair must match (positive).
    pub c: Vec<bool>,
    /// w(i, j): the pair takes part in the loss.
    pub w: Vec<bool>,
}

impl Masks {
    /// Validates hand-built masks too, so an experiment with its own c gets the same guarantee.
    pub fn new(n: usize, c: Vec<bool>, w: Vec<bool>) -> Result<Masks, SpecError> {
        if c.len() != n * n || w.len() != n * n {
            return Err(SpecError::Invalid(format!("masks must be {n}x{n}")));
        }
        let at = |m: &[bool], s: usize, t: usize| m[s * n + t];
        for s in 0..n {
            if !at(&c, s, s) {
                return Err(SpecError::Invalid(format!(
                    "c is not reflexive: sample {s} does not match itself"
                )));
            }
            for t in 0..n {
                if at(&c, s, t) != at(&c, t, s) {
                    return Err(SpecError::Invalid(format!(
                        "c is not symmetric at samples {s} and {t}"
                    )));
                }
                if at(&w, s, t) != at(&w, t, s) {
                    return Err(SpecError::Invalid(format!(
                        "w is not symmetric at samples {s} and {t}"
                    )));
                }
                // Transitivity, in O(n^2) per positive pair's rows: s ~ t must mean s and t
                // match exactly the same samples.
                if at(&c, s, t) && c[s * n..(s + 1) * n] != c[t * n..(t + 1) * n] {
                    let u = (0..n)
                        .find(|&u| at(&c, s, u) != at(&c, t, u))
                        .expect("rows differ");
                    return Err(SpecError::Invalid(format!(
                        "c is not transitive: samples {s} and {t} match, but only one of them matches {u}"
                    )));
                }
            }
            if at(&w, s, s) {
                return Err(SpecError::Invalid(format!(
                    "w pairs sample {s} with itself: a sample is its own positive only by definition, not a pair to learn from"
                )));
            }
            if !(0..n).any(|t| at(&c, s, t) && at(&w, s, t)) {
                return Err(SpecError::Invalid(format!(
                    "sample {s} has no positive among the pairs that take part"
                )));
            }
        }
        // Checked last: every other rule is about the spec, this one about the batch.
        if let Some(s) = (0..n).find(|&s| !(0..n).any(|t| !at(&c, s, t) && at(&w, s, t))) {
            return Err(SpecError::NoNegative {
                sample: s,
                hint: String::new(),
            });
        }
        Ok(Masks { n, c, w })
    }

    /// The masks as f32 0/1 values (c first, then w), ready to become tensors.
    pub fn as_f32(&self) -> (Vec<f32>, Vec<f32>) {
        let f = |m: &[bool]| m.iter().map(|&b| b as u8 as f32).collect();
        (f(&self.c), f(&self.w))
    }
}

impl Masks {
    /// GDT-NCE of `z` (one row per sample, `2N` rows) written as the paper's formula with
    /// loops over plain f64, with `extra` keys in the denominators where `extra_w(row, key)`:
    /// slow and exact, the oracle that the libtorch loss (`gdt-trainer`) and the PyTorch one
    /// (the Python package) are both tested against.
    pub fn reference_loss(
        &self,
        z: &[Vec<f64>],
        rho: f64,
        extra: &[Vec<f64>],
        extra_w: &dyn Fn(usize, usize) -> bool,
    ) -> f64 {
        let n = z.len();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / rho;
        let (mut total, mut count) = (0.0, 0.0);
        for s in 0..n {
            let denom: f64 = (0..n)
                .filter(|&u| self.w[s * n + u])
                .map(|u| dot(&z[s], &z[u]).exp())
                .sum::<f64>()
                + (0..extra.len())
                    .filter(|&k| extra_w(s, k))
                    .map(|k| dot(&z[s], &extra[k]).exp())
                    .sum::<f64>();
            for t in 0..n {
                if self.c[s * n + t] && self.w[s * n + t] {
                    total -= (dot(&z[s], &z[t]).exp() / denom).ln();
                    count += 1.0;
                }
            }
        }
        total / count
    }
}

/// `records` records in the loader's default layout (shift-major, forward then reversed),
/// even records' views flipped: the batch layout the loss tests use.
pub fn test_layout(records: u32, shifts: u8, reversal: bool) -> Vec<ViewMeta> {
    let mut v = uniform_views(records as usize, shifts as usize, reversal);
    for view in &mut v {
        view.video.flip = view.record % 2 == 0;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(records: u32, shifts: u8, reversal: bool) -> Vec<ViewMeta> {
        test_layout(records, shifts, reversal)
    }

    fn positives(m: &Masks, s: usize) -> Vec<usize> {
        (0..m.n)
            .filter(|&t| m.c[s * m.n + t] && m.w[s * m.n + t])
            .collect()
    }

    #[test]
    fn basecase_positives_are_the_other_modality_of_the_same_record() {
        let spec = TransformSpec::preset("cross-modal").unwrap().spec;
        let views = layout(3, 2, true); // 12 views, 24 samples
        let m = spec.masks(&views).unwrap();
        // Video view 0 (record 0) matches the audio of record 0's four views.
        assert_eq!(positives(&m, 0), vec![12, 13, 14, 15]);
    }

    #[test]
    fn distinct_shift_and_reversal_leave_one_positive() {
        let spec = TransformSpec::preset("tr-distinct-ts-distinct").unwrap().spec;
        let m = spec.masks(&layout(3, 2, true)).unwrap();
        for s in 0..12 {
            assert_eq!(positives(&m, s), vec![s + 12]);
        }
    }

    #[test]
    fn simclr_pairs_within_and_across_modalities() {
        let spec = TransformSpec::preset("simclr").unwrap().spec;
        let m = spec.masks(&layout(2, 2, false)).unwrap(); // 4 views, 8 samples
        assert_eq!(positives(&m, 0), vec![1, 4, 5]);
    }

    #[test]
    fn a_user_declared_factor_changes_the_masks() {
        let entries = BTreeMap::from([("flip".to_string(), "distinct".to_string())]);
        let spec = TransformSpec::new(&entries, Pairs::CrossModal).unwrap();
        let mut views = layout(1, 2, false);
        views[1].video.flip = !views[0].video.flip;
        let m = spec.masks(&views).unwrap();
        assert_eq!(positives(&m, 0), vec![2]);
    }

    #[test]
    fn bad_specs_are_rejected_with_the_reason() {
        let e = |k: &str, v: &str, p| TransformSpec::new(&BTreeMap::from([(k.into(), v.into())]), p);
        let err = e("hue", "distinct", Pairs::CrossModal).unwrap_err().to_string();
        assert!(
            err.contains("unknown factor `hue`") && err.contains("reversal"),
            "{err}"
        );
        assert!(e("shift", "maybe", Pairs::CrossModal)
            .unwrap_err()
            .to_string()
            .contains("invariant"));
        assert!(e("sample", "invariant", Pairs::All)
            .unwrap_err()
            .to_string()
            .contains("no negatives"));
        assert!(e("modality", "distinct", Pairs::CrossModal)
            .unwrap_err()
            .to_string()
            .contains("no positive"));
        assert!(e("modality", "distinct", Pairs::All).is_ok());
        assert!(TransformSpec::preset("byol")
            .unwrap_err()
            .to_string()
            .contains("tr-distinct"));
    }

    #[test]
    fn layouts_that_cannot_express_the_spec_are_rejected() {
        let spec = TransformSpec::preset("tr-distinct-ts-distinct").unwrap().spec;
        assert!(spec
            .check_layout(1, true)
            .unwrap_err()
            .to_string()
            .contains("shift"));
        assert!(spec
            .check_layout(2, false)
            .unwrap_err()
            .to_string()
            .contains("reversed"));
        assert!(spec.check_layout(2, true).is_ok());
    }

    #[test]
    fn every_preset_matches_its_layout() {
        for name in preset_names() {
            let p = TransformSpec::preset(name).unwrap();
            p.spec.check_layout(p.shifts, p.reversal).unwrap();
            let views = layout(2, p.shifts as u8, p.reversal);
            p.spec.masks(&views).unwrap();
        }
    }

    #[test]
    fn non_equivalence_masks_are_rejected() {
        // 0~1 and 1~2 but not 0~2: not transitive.
        let n = 3;
        let mut c = vec![false; 9];
        for (s, t) in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 0), (1, 2), (2, 1)] {
            c[s * n + t] = true;
        }
        let w: Vec<bool> = (0..9).map(|i| i / n != i % n).collect();
        let err = Masks::new(n, c.clone(), w.clone()).unwrap_err().to_string();
        assert!(err.contains("not transitive"), "{err}");
        c[n] = false; // break symmetry at (1, 0)
        assert!(Masks::new(n, c, w).unwrap_err().to_string().contains("symmetric"));
        let no_self = vec![false; 9];
        let w: Vec<bool> = (0..9).map(|i| i / n != i % n).collect();
        assert!(Masks::new(n, no_self, w)
            .unwrap_err()
            .to_string()
            .contains("reflexive"));
    }

    #[test]
    fn masks_without_negatives_or_with_self_pairs_are_refused() {
        // Two samples that match, one pair: a positive and no negative, so the loss is 0.
        let n = 2;
        let c = vec![true; 4];
        let w = vec![false, true, true, false];
        let err = Masks::new(n, c.clone(), w.clone()).unwrap_err();
        assert!(matches!(err, SpecError::NoNegative { sample: 0, .. }), "{err}");
        // A sample paired with itself is refused, whatever else holds.
        let mut with_self = w.clone();
        with_self[0] = true;
        let err = Masks::new(n, c, with_self).unwrap_err().to_string();
        assert!(err.contains("with itself"), "{err}");
        // A sample without a positive is refused before negatives are looked at.
        let n = 3;
        let c: Vec<bool> = (0..9)
            .map(|i| i / n == i % n || (i / n < 2 && i % n < 2))
            .collect();
        let w: Vec<bool> = (0..9).map(|i| i / n != i % n).collect();
        let err = Masks::new(n, c, w).unwrap_err().to_string();
        assert!(err.contains("sample 2 has no positive"), "{err}");
    }

    #[test]
    fn one_record_batches_without_negatives_are_refused_up_front() {
        // cross-modal: invariant to all but the sample, so one record's views all match.
        let p = TransformSpec::preset("cross-modal").unwrap();
        let err = p.spec.check_batch(1, p.shifts, p.reversal).unwrap_err();
        assert!(
            matches!(err, SpecError::NoNegative { .. }) && err.to_string().contains("data.batch_size of 2"),
            "{err}"
        );
        p.spec.check_batch(2, p.shifts, p.reversal).unwrap();
        // The default preset is distinct to shift and reversal: one record has negatives.
        let p = TransformSpec::preset(DEFAULT_PRESET).unwrap();
        p.spec.check_batch(1, p.shifts, p.reversal).unwrap();
        // Every preset is usable at the loader's default batch.
        for name in preset_names() {
            let p = TransformSpec::preset(name).unwrap();
            p.spec.check_batch(8, p.shifts, p.reversal).unwrap();
        }
    }
}
