//! Evaluation of frozen features, with the field's protocols: video retrieval (test queries
//! against the train gallery), cross-modal retrieval, weighted kNN and linear probes (full and
//! few-shot) on video and audio features, and two probes of what GDT's temporal factors
//! should teach: synchrony and direction.
//!
//! Definitions (all on records of the test split, features from `clips` uniformly spaced clips
//! per record, centre crop, eval mode):
//! - *video retrieval R@k*: a test record hits at k when one of its k nearest train records
//!   (cosine of averaged encoder features) has its label.
//! - *audio->video R@k*: a test record's audio embedding hits when its own record's video
//!   embedding is among the k nearest test video embeddings (head space); video->audio alike.
//! - *synchrony*: for a clip and audio from the same record, the aligned audio scores higher
//!   (cosine of head embeddings) than audio starting >= 1 s away, at the far half of the record.
//! - *direction*: a forward clip with its forward audio scores higher than the time-reversed
//!   clip with the same forward audio.
//!
//! A random-initialised model of the same architecture and seed is the reference every figure
//! should be read against (`gdt eval --compare random`).

pub mod features;
pub mod metrics;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gdt_pipeline::load::clips::ClipReader;
use serde::Serialize;
use tch::{Device, Tensor};

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::model;
use crate::splits::evaluation_partition;
use features::{Counts, RecordFeatures};
use metrics::{knn_top1, linear_probe, recall_at};

/// The k of video retrieval's recall@k.
pub const RETRIEVAL_KS: [usize; 4] = [1, 5, 10, 20];
/// The k of cross-modal retrieval's recall@k.
pub const CROSS_MODAL_KS: [usize; 3] = [1, 5, 10];
/// Labelled examples per class in the few-shot probes.
pub const FEW_SHOTS: [usize; 3] = [1, 5, 20];
/// Neighbours of the kNN probe.
pub const KNN_K: usize = 20;

/// Which weights to evaluate.
#[derive(Clone, Debug)]
pub enum Weights {
    /// A checkpoint directory (`RUN/checkpoints/step-N`).
    Checkpoint(PathBuf),
    /// The architecture of a config, freshly initialised with its seed.
    RandomInit,
}

/// How to evaluate.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Uniformly spaced clips per record, features averaged.
    pub clips: usize,
    /// Where the model runs.
    pub device: Device,
    /// Draws averaged per few-shot setting.
    pub few_shot_draws: usize,
}

/// Every figure of one model's evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The model evaluated (checkpoint, or random init).
    pub model: String,
    /// The dataset.
    pub dataset: String,
    /// What pretraining read, from the checkpoint's config: the dataset and its splits, so
    /// a reader sees whether the test records were held out. `None` for random init.
    pub pretrained_on: Option<String>,
    /// Records evaluated.
    pub records: usize,
    /// Of them, the gallery and probe training set.
    pub train_records: usize,
    /// Of them, the queries and probe test set.
    pub test_records: usize,
    /// Classes.
    pub classes: usize,
    /// Clips averaged per record.
    pub clips_per_record: usize,
    /// "R@1" ... "R@20".
    pub video_retrieval: BTreeMap<String, f64>,
    /// Audio-query, video-gallery recall@k.
    pub audio_to_video: BTreeMap<String, f64>,
    /// Video-query, audio-gallery recall@k.
    pub video_to_audio: BTreeMap<String, f64>,
    /// kNN top-1 on video encoder features.
    pub video_knn_top1: f64,
    /// The same kNN on the video head's 256-d embeddings, the space the loss shapes.
    pub video_head_knn_top1: f64,
    /// Linear probe top-1 on video encoder features.
    pub video_linear_top1: f64,
    /// Shots per class ("1", "5", "20") -> linear probe top-1, averaged over draws.
    pub video_few_shot_top1: BTreeMap<String, f64>,
    /// kNN top-1 on audio encoder features.
    pub audio_knn_top1: f64,
    /// Linear probe top-1 on audio encoder features.
    pub audio_linear_top1: f64,
    /// Synchrony probe counts.
    pub sync: Counts,
    /// Synchrony probe accuracy.
    pub sync_accuracy: Option<f64>,
    /// Direction probe counts.
    pub direction: Counts,
    /// Direction probe accuracy.
    pub direction_accuracy: Option<f64>,
}

/// Finds the checkpoint a path names (a run directory means its newest) and the config that
/// trained it.
pub fn resolve_checkpoint(path: &Path) -> Result<(PathBuf, TrainConfig), TrainError> {
    let dir = if path.join("state.json").is_file() {
        path.to_path_buf()
    } else {
        checkpoint::latest(path)?
    };
    let state = checkpoint::read_state(&dir)?;
    let origin = dir.join("state.json").display().to_string();
    Ok((dir, TrainConfig::from_toml(&state.config, &origin, &[])?))
}

/// What a checkpoint's pretraining read: its dataset, and the splits (`data.splits`) or
/// every record, held-out ones included.
fn pretrained_on(cfg: &TrainConfig) -> String {
    let dataset = cfg
        .dataset
        .as_ref()
        .map_or("its dataset".to_string(), |d| d.display().to_string());
    match cfg.data.splits.as_deref() {
        Some(splits) if !splits.is_empty() => format!("{dataset}, splits {}", splits.join(", ")),
        Some(_) => format!("{dataset}, every record (test records included)"),
        None => format!("{dataset}, every record (a run from before data.splits; test records included)"),
    }
}

/// Evaluates the model's frozen features on the dataset's splits.
pub fn evaluate(
    cfg: &TrainConfig,
    weights: &Weights,
    dataset: &Path,
    opts: &EvalOptions,
    progress: impl FnMut(usize, usize),
) -> Result<EvalReport, TrainError> {
    let (vs, model) = model::build(&cfg.model, cfg.seed, opts.device, &None);
    let name = match weights {
        Weights::Checkpoint(dir) => {
            checkpoint::load_model(dir, &vs)?;
            dir.display().to_string()
        }
        Weights::RandomInit => format!("random init (seed {})", cfg.seed),
    };
    let channels_last = cfg.run.channels_last.on(opts.device.is_cuda());
    if channels_last {
        crate::model::weights_to_channels_last_3d(&vs);
    }
    let mut reader = ClipReader::open(dataset, cfg.data.clip, cfg.data.crop)?;
    let (train, test) = evaluation_partition(reader.records());
    let mut is_test = vec![false; reader.records().len()];
    test.iter().for_each(|&i| is_test[i] = true);
    let f = features::extract(
        &model,
        &mut reader,
        opts.clips,
        opts.device,
        channels_last,
        |r| is_test[r],
        progress,
    )?;
    let labels: Vec<Option<u32>> = reader.records().iter().map(|r| r.label).collect();
    let scores = Scores::new(&f, &labels, &train, &test);
    Ok(EvalReport {
        model: name,
        dataset: dataset.display().to_string(),
        pretrained_on: matches!(weights, Weights::Checkpoint(_)).then(|| pretrained_on(cfg)),
        records: labels.len(),
        train_records: train.len(),
        test_records: test.len(),
        classes: scores.classes,
        clips_per_record: opts.clips,
        video_retrieval: scores.video_retrieval(),
        audio_to_video: scores.cross_modal(&f.audio_embedding, &f.video_embedding),
        video_to_audio: scores.cross_modal(&f.video_embedding, &f.audio_embedding),
        video_knn_top1: scores.knn(&f.video),
        video_head_knn_top1: scores.knn(&f.video_embedding),
        video_linear_top1: scores.linear(&f.video),
        video_few_shot_top1: scores.few_shot(&f.video, opts.few_shot_draws),
        audio_knn_top1: scores.knn(&f.audio),
        audio_linear_top1: scores.linear(&f.audio),
        sync_accuracy: f.sync.rate(),
        sync: f.sync,
        direction_accuracy: f.direction.rate(),
        direction: f.direction,
    })
}

/// The records every score is computed on: train and test records (all, for cross-modal
/// retrieval, which needs no label), and the labelled ones with their labels (for
/// retrieval by class and the probes).
struct Scores<'a> {
    test: &'a [usize],
    labelled_train: Vec<usize>,
    labelled_test: Vec<usize>,
    train_labels: Vec<u32>,
    test_labels: Vec<u32>,
    classes: usize,
    features: &'a RecordFeatures,
}

impl<'a> Scores<'a> {
    fn new(features: &'a RecordFeatures, labels: &[Option<u32>], train: &[usize], test: &'a [usize]) -> Self {
        let labelled =
            |idx: &[usize]| -> Vec<usize> { idx.iter().copied().filter(|&i| labels[i].is_some()).collect() };
        let (labelled_train, labelled_test) = (labelled(train), labelled(test));
        let of = |idx: &[usize]| -> Vec<u32> { idx.iter().map(|&i| labels[i].expect("labelled")).collect() };
        Scores {
            test,
            train_labels: of(&labelled_train),
            test_labels: of(&labelled_test),
            labelled_train,
            labelled_test,
            classes: labels
                .iter()
                .flatten()
                .map(|&l| l as usize + 1)
                .max()
                .unwrap_or(0),
            features,
        }
    }

    /// Test records' video features against the train gallery, a hit being the same label.
    fn video_retrieval(&self) -> BTreeMap<String, f64> {
        let v = &self.features.video;
        let r = recall_at(
            &rows(v, &self.labelled_test),
            &rows(v, &self.labelled_train),
            &RETRIEVAL_KS,
            |q, g| self.test_labels[q] == self.train_labels[g],
        );
        keyed(&RETRIEVAL_KS, r)
    }

    /// Test records' `queries` embeddings against their `gallery` embeddings, a hit being
    /// the same record.
    fn cross_modal(&self, queries: &Tensor, gallery: &Tensor) -> BTreeMap<String, f64> {
        let r = recall_at(
            &rows(queries, self.test),
            &rows(gallery, self.test),
            &CROSS_MODAL_KS,
            |q, g| q == g,
        );
        keyed(&CROSS_MODAL_KS, r)
    }

    /// kNN top-1 of the test records on `feats`.
    fn knn(&self, feats: &Tensor) -> f64 {
        knn_top1(
            &rows(feats, &self.labelled_train),
            &self.train_labels,
            &rows(feats, &self.labelled_test),
            &self.test_labels,
            KNN_K,
            self.classes,
        )
    }

    /// Linear probe top-1 of the test records on `feats`.
    fn linear(&self, feats: &Tensor) -> f64 {
        linear_probe(
            &rows(feats, &self.labelled_train),
            &self.train_labels,
            &rows(feats, &self.labelled_test),
            &self.test_labels,
            self.classes,
            0,
        )
    }

    /// Linear probes trained on a few examples per class, averaged over `draws`.
    fn few_shot(&self, feats: &Tensor, draws: usize) -> BTreeMap<String, f64> {
        let test = rows(feats, &self.labelled_test);
        let mut out = BTreeMap::new();
        for shots in FEW_SHOTS {
            let mut total = 0.0;
            for draw in 0..draws {
                let picked = few_shot_pick(
                    &self.labelled_train,
                    &self.train_labels,
                    self.classes,
                    shots,
                    draw as u64,
                );
                let y: Vec<u32> = picked.iter().map(|&i| self.train_labels[i]).collect();
                let idx: Vec<usize> = picked.iter().map(|&i| self.labelled_train[i]).collect();
                total += linear_probe(
                    &rows(feats, &idx),
                    &y,
                    &test,
                    &self.test_labels,
                    self.classes,
                    draw as i64,
                );
            }
            out.insert(shots.to_string(), total / draws.max(1) as f64);
        }
        out
    }
}

/// The rows `idx` of `t`.
fn rows(t: &Tensor, idx: &[usize]) -> Tensor {
    t.index_select(
        0,
        &Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>()),
    )
}

/// Recalls keyed "R@k".
fn keyed(ks: &[usize], recalls: Vec<f64>) -> BTreeMap<String, f64> {
    ks.iter()
        .zip(recalls)
        .map(|(k, r)| (format!("R@{k}"), r))
        .collect()
}

/// Up to `shots` training rows per class, drawn with a seeded shuffle (positions into `labels`).
fn few_shot_pick(rows: &[usize], labels: &[u32], classes: usize, shots: usize, draw: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(draw));
    let mut taken = vec![0; classes];
    order
        .into_iter()
        .filter(|&i| {
            let c = labels[i] as usize;
            taken[c] += 1;
            taken[c] <= shots
        })
        .collect()
}
