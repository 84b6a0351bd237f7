//! The proof-of-learning protocol: does GDT training make features better than the same
//! architecture at random initialisation, on data the project generates itself?
//!
//! A synthetic corpus with its own seed (so nothing was tuned on it) is packed directly, a
//! small model trains on the CPU (or CUDA) for a bounded number of steps, and the trained and
//! the randomly initialised model are evaluated with [`super::evaluate`] on the same records.
//! The test suite asserts on it (`trainer/tests/proof_of_learning.rs`); the example
//! `proof_of_learning` runs it with any settings.
//!
//! Why the defaults are what they are: on 2 CPU cores five minutes buy about 2000 steps of
//! a quarter-width model on 8 clips of 8x32x32. At the corpus's default object size
//! (radius 5-8% of the frame height) an object is 2-4 pixels across at that size and no
//! audio-visual signal survives; three times larger objects keep it, with the same classes,
//! sounds, bounces and noisy drifting background.

use std::path::Path;
use std::time::Instant;

use gdt_formats::params::PackParams;
use gdt_pipeline::load::augment::VideoAugment;
use gdt_pipeline::load::error::LoadError;
use gdt_pipeline::synth::packed::write_packed;
use gdt_pipeline::synth::{plan, CorpusConfig};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::eval::{evaluate, EvalOptions, EvalReport, Weights};
use crate::train::{self, Silent};

/// Everything that defines one run of the protocol.
#[derive(Clone, Debug)]
pub struct ProofSettings {
    /// Records in the synthetic corpus.
    pub records: usize,
    /// Corpus seed: keep it apart from the seeds settings were chosen on.
    pub corpus_seed: u64,
    /// Object size (see `gdt synth --object-scale`).
    pub object_scale: f32,
    /// Stored short side, pixels.
    pub short_side: u32,
    /// Crop side, pixels.
    pub crop: u32,
    /// Frames per clip.
    pub clip: usize,
    /// Model width multiplier.
    pub width: f64,
    /// The GDT preset trained.
    pub preset: String,
    /// Time shifts per record; `None`: the preset's.
    pub shifts: Option<usize>,
    /// Records per step.
    pub batch_size: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Learning rate.
    pub lr: f64,
    /// NCE temperature.
    pub temperature: f64,
    /// Training seed (loader draws and initialisation).
    pub seed: u64,
    /// `cpu`, `cuda`, `auto`.
    pub device: String,
    /// Clips per record in evaluation.
    pub eval_clips: usize,
}

impl Default for ProofSettings {
    fn default() -> Self {
        ProofSettings {
            records: 160,
            // Settings were chosen on corpus seeds 11 and 29; 47 was first run by the test.
            corpus_seed: 47,
            object_scale: 3.0,
            short_side: 48,
            crop: 32,
            clip: 8,
            width: 0.25,
            // Why this preset and layout: `trainer/tests/proof_of_learning.rs`.
            preset: "cross-modal".into(),
            shifts: Some(2),
            batch_size: 4,
            steps: 2000,
            lr: 0.02,
            temperature: 0.1,
            seed: 0,
            device: "cpu".into(),
            eval_clips: 4,
        }
    }
}

/// The two evaluations, side by side.
#[derive(Clone, Debug)]
pub struct ProofResult {
    /// The trained model's evaluation.
    pub trained: EvalReport,
    /// The same architecture at random initialisation.
    pub random: EvalReport,
    /// The last training step's loss.
    pub final_loss: f64,
    /// The training run alone.
    pub train_seconds: f64,
    /// Corpus, packing, training and both evaluations.
    pub total_seconds: f64,
}

/// Runs the protocol in `work` (a scratch directory: the dataset and the run go there).
pub fn run(settings: &ProofSettings, work: &Path) -> Result<ProofResult, TrainError> {
    let start = Instant::now();
    let s = settings;
    let data = work.join("data");
    let videos = plan(&CorpusConfig {
        count: s.records,
        seed: s.corpus_seed,
        min_duration_s: 3.0,
        max_duration_s: 5.0,
        object_scale: s.object_scale,
        ..CorpusConfig::default()
    });
    let params = PackParams {
        short_side: s.short_side,
        max_long_side: s.short_side * 4 / 3,
        mels: 40,
        max_seconds: 5.0,
        ..PackParams::default()
    };
    write_packed(&data, &videos, &params, 1 << 30).map_err(LoadError::from)?;

    let jitter = VideoAugment::at_crop(s.crop);
    let overrides = [
        format!("steps={}", s.steps),
        format!("seed={}", s.seed),
        format!("device=\"{}\"", s.device),
        format!("loss.preset=\"{}\"", s.preset),
        format!("loss.temperature={}", s.temperature),
        format!("data.batch_size={}", s.batch_size),
        format!("data.clip={}", s.clip),
        format!("data.crop={}", s.crop),
        // The default scale jitter (short side 128..160 for a 112 crop), at this crop.
        format!("data.scale_min={}", jitter.scale_min),
        format!("data.scale_max={}", jitter.scale_max),
        format!("model.width={}", s.width),
        format!("optim.lr={}", s.lr),
        "optim.warmup_steps=10".to_string(),
        "run.checkpoint_every=100000".to_string(),
    ];
    let shifts = s.shifts.map(|n| format!("data.shifts={n}"));
    let overrides: Vec<String> = overrides.into_iter().chain(shifts).collect();
    let mut cfg = TrainConfig::from_toml("", "proof of learning", &overrides)?;
    cfg.dataset = Some(data.clone());
    let resolved = cfg.resolve()?;
    let training = Instant::now();
    let summary = train::train(&resolved, &work.join("run"), false, &mut Silent)?;
    let train_seconds = training.elapsed().as_secs_f64();

    let opts = EvalOptions {
        clips: s.eval_clips,
        device: crate::device::parse_device(&resolved.config.device)?,
        few_shot_draws: 2,
    };
    let trained = evaluate(
        &resolved.config,
        &Weights::Checkpoint(summary.checkpoint),
        &data,
        &opts,
        |_, _| {},
    )?;
    let random = evaluate(&resolved.config, &Weights::RandomInit, &data, &opts, |_, _| {})?;
    Ok(ProofResult {
        trained,
        random,
        final_loss: summary.final_loss,
        train_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
    })
}

/// One line per model with the figures the protocol reads.
pub fn summary_line(name: &str, r: &EvalReport) -> String {
    let pct = |x: f64| 100.0 * x;
    let opt = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{:.0}", 100.0 * v));
    format!(
        "{name:<8} a->v R@1 {:.0} R@5 {:.0}  v->a R@1 {:.0}  video kNN {:.0} (head {:.0}) linear {:.0}  \
         audio kNN {:.0}  sync {}  direction {}",
        pct(r.audio_to_video["R@1"]),
        pct(r.audio_to_video["R@5"]),
        pct(r.video_to_audio["R@1"]),
        pct(r.video_knn_top1),
        pct(r.video_head_knn_top1),
        pct(r.video_linear_top1),
        pct(r.audio_knn_top1),
        opt(r.sync_accuracy),
        opt(r.direction_accuracy),
    )
}
