//! The training configuration: a TOML file, command-line overrides on top, and the resolved
//! form a run directory keeps (`config.toml`), so a run can be repeated or resumed from its
//! directory alone.
//!
//! Every section and key is optional; unknown keys are errors (a typo must not silently train
//! the default). Overrides are `section.key=value`, with `value` read as a TOML value (a bare
//! word that is not one is taken as a string): `--set optim.lr=0.05 --set loss.preset=simclr`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gdt_formats::FileError;
use gdt_pipeline::load::settings::LoaderSettings;
use serde::{Deserialize, Serialize};

use crate::model::ModelConfig;
use crate::schedule::Decay;
use crate::spec::{Pairs, Preset, SpecError, TransformSpec, DEFAULT_PRESET};

/// What can be wrong with a training config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// The TOML does not parse or names unknown keys.
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or `--set`) it came from.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A `--set` override is not `section.key=value`.
    #[error("override `{0}`: expected section.key=value")]
    Override(String),
    /// The loss spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A value is out of range or settings contradict each other.
    #[error("{0}")]
    Invalid(String),
}

/// A training run's settings: the TOML file's sections, plus `--set` overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The packed dataset (the command line's positional argument wins).
    pub dataset: Option<PathBuf>,
    /// Seeds the model's initialisation and the loader's draws.
    pub seed: u64,
    /// Optimizer steps in the whole run (a resumed run continues up to this).
    pub steps: u64,
    /// `auto` (CUDA when present), `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// `[data]`: what the loader serves (the pipeline's [`LoaderSettings`], so its defaults
    /// are `gdt bench load`'s and `gdt.Loader`'s). `data.splits` unset: every split that
    /// evaluation does not hold out (`splits`) when the dataset has splits, every record when
    /// it has none; a run directory's config records the choice. `[]`: every record.
    pub data: LoaderSettings,
    /// `[model]`: the encoders and heads.
    pub model: ModelConfig,
    /// `[loss]`: the GDT spec and its temperature.
    pub loss: LossConfig,
    /// `[optim]`: SGD and the learning-rate schedule.
    pub optim: OptimConfig,
    /// `[run]`: checkpoints, precision, layout, plot.
    pub run: RunConfig,
    /// `[dist]`: how data-parallel runs average gradients (ignored on one process).
    pub dist: DistConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: None,
            seed: 0,
            steps: 1000,
            device: "auto".into(),
            data: LoaderSettings::default(),
            model: ModelConfig::default(),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            run: RunConfig::default(),
            dist: DistConfig::default(),
        }
    }
}

/// `[loss]`: which transformations the representation is invariant or distinct to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// A named experiment (see `gdt train --list-presets`); unset with no `factors`: the default.
    pub preset: Option<String>,
    /// Factor -> `invariant` | `distinct`, applied on top of the preset.
    pub factors: BTreeMap<String, String>,
    /// `cross-modal` | `all`; unset: the preset's.
    pub pairs: Option<String>,
    /// The NCE temperature rho (0.07 in the paper).
    pub temperature: f64,
    /// Gradients through the query side only, as the reference code does.
    pub detach_keys: bool,
    /// With more than one rank, the other ranks' embeddings join every denominator as
    /// negatives (detached), as the reference's `dist_collect_other` does, so the loss
    /// sees the global batch's negatives; off: each rank's own batch only.
    pub global_negatives: bool,
    /// With global negatives, gradients also flow through the other ranks' embeddings (an
    /// all-gather with gradients, all-reduced in the backward pass): the global batch's loss
    /// exactly as one process would train it. Off by default, as in the reference, whose
    /// results gdt reproduces: there they are constants, and the backward pass has one
    /// collective less.
    pub global_negatives_grad: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            preset: None,
            factors: BTreeMap::new(),
            pairs: None,
            temperature: 0.07,
            detach_keys: false,
            global_negatives: true,
            global_negatives_grad: false,
        }
    }
}

/// `[optim]`: SGD with momentum and a warm-up schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Steps of linear warm-up from 0 to `lr`.
    pub warmup_steps: u64,
    /// What the rate does after warm-up.
    pub decay: Decay,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 1e-5,
            warmup_steps: 100,
            decay: Decay::Constant,
        }
    }
}

/// A setting that can follow the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Switch {
    /// On for CUDA, off for the CPU.
    Auto,
    /// Always on.
    On,
    /// Always off.
    Off,
}

impl Switch {
    /// Whether it is on for a run on CUDA (`cuda`) or the CPU.
    pub fn on(self, cuda: bool) -> bool {
        match self {
            Switch::Auto => cuda,
            Switch::On => true,
            Switch::Off => false,
        }
    }
}

/// `[run]`: what a run writes and how it computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Write a checkpoint every this many steps (and always at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept; older ones are deleted once a newer one is complete.
    pub keep_checkpoints: usize,
    /// bf16 autocast (auto: on CUDA; `on` also on the CPU, through CPU autocast).
    pub bf16: Switch,
    /// Channels-last-3d input and conv weights (auto: on CUDA).
    pub channels_last: Switch,
    /// Launch each step before the previous step's loss is read, so the device always has
    /// work queued while the host logs (auto: on CUDA). Losses and checkpoints are the same
    /// either way; a step that is checkpointed is always finished before the next starts.
    pub pipelined: Switch,
    /// Write `plot.png` at the end of the run.
    pub plot: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            checkpoint_every: 500,
            keep_checkpoints: 3,
            bf16: Switch::Auto,
            channels_last: Switch::Auto,
            pipelined: Switch::Auto,
            plot: true,
        }
    }
}

/// `[dist]`: gradient averaging in data-parallel runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistConfig {
    /// Average gradients in buckets whose all-reduce overlaps the rest of the backward pass
    /// (DDP's Reducer); off: one all-reduce of every gradient after the backward pass, which
    /// the log then times exactly (what the overlap saves).
    pub overlap: bool,
    /// Bucket size, MiB (DDP's default, 25).
    pub bucket_mb: f64,
}

impl Default for DistConfig {
    fn default() -> Self {
        DistConfig {
            overlap: true,
            bucket_mb: 25.0,
        }
    }
}

/// A config's spec and layout after presets and overrides, checked against each other.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The config itself.
    pub config: TrainConfig,
    /// The loss spec, from the preset or the factors.
    pub spec: TransformSpec,
    /// Time shifts per record the loader samples.
    pub shifts: usize,
    /// Whether each shift also gets a reversed view.
    pub reversal: bool,
}

/// Finite and above zero (NaN is neither).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl TrainConfig {
    /// Reads a TOML file (or nothing) and applies `section.key=value` overrides.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<TrainConfig, ConfigError> {
        let (text, origin) = match file {
            Some(p) => (
                std::fs::read_to_string(p).map_err(FileError::at(p))?,
                p.display().to_string(),
            ),
            None => (String::new(), "config".to_string()),
        };
        Self::from_toml(&text, &origin, overrides)
    }

    /// Parses TOML text (`origin` names it in errors) and applies the overrides.
    pub fn from_toml(text: &str, origin: &str, overrides: &[String]) -> Result<TrainConfig, ConfigError> {
        let parse_err = |origin: &str, e: &dyn std::fmt::Display| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim().to_string(),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(origin, &e))?;
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::Override(o.clone()))?;
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_string()));
            let mut at = &mut table;
            let parts: Vec<&str> = key.trim().split('.').collect();
            for part in &parts[..parts.len() - 1] {
                at = at
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| ConfigError::Override(o.clone()))?;
            }
            at.insert(parts[parts.len() - 1].to_string(), value);
        }
        let origin = if overrides.is_empty() {
            origin.to_string()
        } else {
            format!("{origin} with overrides")
        };
        table.try_into().map_err(|e| parse_err(&origin, &e))
    }

    /// Applies the preset, checks the spec against the view layout and the numbers against
    /// their ranges, and fills every `None` with the value used.
    pub fn resolve(mut self) -> Result<Resolved, ConfigError> {
        // Factors without a preset start from the basecase spec on the loader's default layout.
        let (preset_name, layout) = match (&self.loss.preset, self.loss.factors.is_empty()) {
            (Some(p), _) => (p.clone(), None),
            (None, true) => (DEFAULT_PRESET.to_string(), None),
            (None, false) => ("cross-modal".to_string(), Some((2, true))),
        };
        let Preset {
            spec,
            shifts,
            reversal,
            ..
        } = TransformSpec::preset(&preset_name)?;
        let (shifts, reversal) = layout.unwrap_or((shifts, reversal));
        let mut factors = spec.to_map();
        factors.extend(self.loss.factors.clone());
        let pairs = match &self.loss.pairs {
            Some(p) => Pairs::parse(p)?,
            None => spec.pairs,
        };
        let spec = TransformSpec::new(&factors, pairs)?;
        let shifts = *self.data.shifts.get_or_insert(shifts);
        let reversal = *self.data.reversal.get_or_insert(reversal);
        // The run directory records the scale jitter used, not "the crop's".
        let video = self.data.video_augment();
        self.data.scale_min = Some(video.scale_min);
        self.data.scale_max = Some(video.scale_max);
        spec.check_layout(shifts, reversal)?;
        spec.check_batch(self.data.batch_size, shifts, reversal)?;
        self.loss.preset = Some(preset_name);
        self.loss.factors = spec.to_map();
        self.loss.pairs = Some(pairs.name().to_string());
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.steps == 0 {
            return bad("steps must be at least 1");
        }
        if !positive(self.loss.temperature) {
            return bad("loss.temperature must be positive");
        }
        if !positive(self.model.width) {
            return bad("model.width must be positive");
        }
        if !positive(self.optim.lr) {
            return bad("optim.lr must be positive");
        }
        if !positive(self.dist.bucket_mb) {
            return bad("dist.bucket_mb must be positive");
        }
        if self.run.checkpoint_every == 0 {
            return bad("run.checkpoint_every must be at least 1");
        }
        Ok(Resolved {
            config: self,
            spec,
            shifts,
            reversal,
        })
    }

    /// The config as TOML, as a run directory keeps it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }
}

/// The resolved config a run directory keeps.
pub const CONFIG_FILE: &str = "config.toml";

/// Reads the resolved config a run directory keeps (what `--resume` continues with).
pub fn run_config(run_dir: &Path) -> Result<TrainConfig, ConfigError> {
    let path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(FileError::at(&path))?;
    TrainConfig::from_toml(&text, &path.display().to_string(), &[])
}

/// What one `gdt train` invocation asks for: a new run (a config file, a preset and
/// overrides) or the continuation of a run directory (its saved config and overrides), with
/// the command line's dataset, steps and device on top.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Continue the run directory's latest checkpoint with its saved config.
    pub resume: bool,
    /// A TOML config file (new runs only).
    pub config: Option<PathBuf>,
    /// A preset, as `loss.preset` (new runs only).
    pub preset: Option<String>,
    /// `section.key=value` overrides.
    pub overrides: Vec<String>,
    /// The dataset, over the config's.
    pub dataset: Option<PathBuf>,
    /// Total steps, over the config's.
    pub steps: Option<u64>,
    /// The device, over the config's.
    pub device: Option<String>,
}

impl Invocation {
    /// The config this invocation trains with, before resolution.
    pub fn config(&self) -> Result<TrainConfig, ConfigError> {
        let mut cfg = if self.resume {
            if self.config.is_some() || self.preset.is_some() {
                return Err(ConfigError::Invalid(
                    "--resume continues with the run's saved config; change it with --set, --steps or --device"
                        .into(),
                ));
            }
            let saved = run_config(&self.run_dir)?;
            if self.overrides.is_empty() {
                saved
            } else {
                TrainConfig::from_toml(&saved.to_toml(), "saved config", &self.overrides)?
            }
        } else {
            let mut overrides = self.overrides.clone();
            if let Some(p) = &self.preset {
                overrides.push(format!("loss.preset={p}"));
            }
            TrainConfig::load(self.config.as_deref(), &overrides)?
        };
        if let Some(d) = &self.dataset {
            cfg.dataset = Some(d.clone());
        }
        if let Some(s) = self.steps {
            cfg.steps = s;
        }
        if let Some(d) = &self.device {
            cfg.device = d.clone();
        }
        Ok(cfg)
    }
}

/// Every config key with its default, by section, for `gdt train --help`: generated from
/// [`TrainConfig::default`], so a key added to a section appears without anyone listing it.
pub fn keys_help() -> String {
    let value = serde_json::to_value(TrainConfig::default()).expect("the config serialises");
    let serde_json::Value::Object(top) = value else {
        unreachable!("a struct serialises to an object")
    };
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "unset".to_string(),
        serde_json::Value::Object(m) if m.is_empty() => "{}".to_string(),
        serde_json::Value::Array(a) if a.is_empty() => "[]".to_string(),
        other => other.to_string(),
    };
    let (mut plain, mut sections) = (Vec::new(), Vec::new());
    for (key, v) in &top {
        match v {
            serde_json::Value::Object(keys) if !keys.is_empty() => {
                let list: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
                sections.push(format!("[{key}] {}", list.join(" ")));
            }
            _ => plain.push(format!("{key}={}", show(v))),
        }
    }
    format!(
        "Config keys (TOML; all optional; defaults shown): {}; {}.",
        plain.join(" "),
        sections.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Factor;

    #[test]
    fn default_is_the_papers_best_preset_with_four_views() {
        let r = TrainConfig::default().resolve().unwrap();
        assert_eq!((r.shifts, r.reversal), (2, true));
        assert_eq!(
            r.spec.distinct(),
            [Factor::Sample, Factor::Shift, Factor::Reversal]
        );
        assert_eq!(r.config.loss.preset.as_deref(), Some(DEFAULT_PRESET));
    }

    #[test]
    fn file_overrides_and_factors_combine() {
        let text = "steps = 10\n[loss]\npreset = \"tr-distinct\"\n[loss.factors]\nflip = \"distinct\"\n";
        let c = TrainConfig::from_toml(
            text,
            "t.toml",
            &["optim.lr=0.5".into(), "data.batch_size=3".into()],
        )
        .unwrap();
        assert_eq!((c.steps, c.optim.lr, c.data.batch_size), (10, 0.5, 3));
        let r = c.resolve().unwrap();
        assert_eq!(
            r.spec.distinct(),
            [Factor::Sample, Factor::Reversal, Factor::Flip]
        );
        assert_eq!((r.shifts, r.reversal), (1, true));
        // The resolved config round-trips and resolves to the same spec.
        let again = TrainConfig::from_toml(&r.config.to_toml(), "resolved", &[])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(again.spec, r.spec);
        assert_eq!(again.config, r.config);
    }

    #[test]
    fn the_help_lists_every_key_of_every_section() {
        let help = keys_help();
        for key in [
            "steps=1000",
            "[data] batch_size=8",
            "shifts=unset",
            "crop=112",
            "[model] ",
            "sync_bn=false",
        ] {
            assert!(help.contains(key), "{key} missing from {help}");
        }
        for section in ["[loss]", "[optim]", "[run]", "[dist]"] {
            assert!(help.contains(section), "{section} missing from {help}");
        }
        // Every key a config file may set is listed.
        let table: toml::Table = toml::from_str(&TrainConfig::default().to_toml()).unwrap();
        for (section, v) in &table {
            match v.as_table() {
                Some(keys) => keys
                    .keys()
                    .for_each(|k| assert!(help.contains(&format!(" {k}=")), "{section}.{k}")),
                None => assert!(help.contains(&format!("{section}=")), "{section}"),
            }
        }
    }

    #[test]
    fn the_data_section_is_the_loaders_settings_with_their_defaults() {
        assert_eq!(TrainConfig::default().data, LoaderSettings::default());
        let r = TrainConfig::default().resolve().unwrap();
        assert_eq!(
            (r.config.data.scale_min, r.config.data.scale_max),
            (Some(128.0), Some(160.0))
        );
    }

    #[test]
    fn a_resume_keeps_the_saved_config_under_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let saved = TrainConfig::from_toml("steps = 5\n[optim]\nlr = 0.5\n", "t", &[]).unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), saved.to_toml()).unwrap();
        let inv = Invocation {
            run_dir: dir.path().to_path_buf(),
            resume: true,
            overrides: vec!["optim.momentum=0.5".into()],
            steps: Some(9),
            ..Invocation::default()
        };
        let c = inv.config().unwrap();
        assert_eq!((c.steps, c.optim.lr, c.optim.momentum), (9, 0.5, 0.5));
        let refused = Invocation {
            preset: Some("simclr".into()),
            ..inv
        };
        assert!(refused
            .config()
            .unwrap_err()
            .to_string()
            .contains("--resume continues"));
    }

    #[test]
    fn mistakes_are_named() {
        let e = TrainConfig::from_toml("[optim]\nlearning_rate = 1\n", "t.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:") && e.contains("learning_rate"), "{e}");
        let e = TrainConfig::from_toml("", "t.toml", &["optim".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("section.key=value"), "{e}");
        let c = TrainConfig::from_toml("", "t", &["loss.factors.hue=distinct".into()]).unwrap();
        assert!(c
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("unknown factor `hue`"));
        let c = TrainConfig::from_toml(
            "",
            "t",
            &["loss.preset=ts-distinct".into(), "data.shifts=1".into()],
        )
        .unwrap();
        assert!(c.resolve().unwrap_err().to_string().contains("one time shift"));
        let c = TrainConfig::from_toml("", "t", &["loss.temperature=0".into()]).unwrap();
        assert!(c.resolve().unwrap_err().to_string().contains("temperature"));
    }
}
