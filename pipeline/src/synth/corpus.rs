//! Planning a synthetic corpus: which videos, with which properties, labels and splits.
//!
//! Planning is separate from rendering and encoding so that the same plan can be written as
//! container files (through FFmpeg) or, on machines without FFmpeg, straight into packed form.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::class::CLASSES;
use super::scene::Scenario;

/// The container (and with it the codecs) a synthetic video is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// H.264 video (yuv420p) and AAC audio.
    Mp4,
    /// H.264 video and AAC audio in Matroska.
    Mkv,
    /// MPEG-4 Part 2 video and 16-bit PCM audio in AVI.
    Avi,
    /// H.264 video and 16-bit PCM audio in QuickTime.
    Mov,
    /// VP9 video and Vorbis audio in WebM.
    Webm,
}

impl Container {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mkv => "mkv",
            Container::Avi => "avi",
            Container::Mov => "mov",
            Container::Webm => "webm",
        }
    }

    /// The container of an extension.
    pub fn parse(s: &str) -> Option<Container> {
        match s.to_ascii_lowercase().as_str() {
            "mp4" => Some(Container::Mp4),
            "mkv" => Some(Container::Mkv),
            "avi" => Some(Container::Avi),
            "mov" => Some(Container::Mov),
            "webm" => Some(Container::Webm),
            _ => None,
        }
    }
}

/// Train or test. Splits are stratified: one record in five of each class is test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Held-out data.
    Test,
}

impl Split {
    /// The name in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// What `gdt synth` is asked to make.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorpusConfig {
    /// Videos.
    pub count: usize,
    /// The seed: the same plan for the same seed.
    pub seed: u64,
    /// Object classes (labels), at most 8.
    pub classes: usize,
    /// Shortest video, seconds.
    pub min_duration_s: f64,
    /// Longest video, seconds.
    pub max_duration_s: f64,
    /// Frame sizes drawn from, uniformly.
    pub resolutions: Vec<(u32, u32)>,
    /// Frame rates drawn from.
    pub frame_rates: Vec<u32>,
    /// Audio rates drawn from.
    pub sample_rates: Vec<u32>,
    /// Containers used in turn (video i gets `containers[i % len]`).
    pub containers: Vec<Container>,
    /// Fraction of videos with a variable frame rate.
    pub vfr_fraction: f64,
    /// Object size relative to the default (radius 5-8% of the frame height).
    #[serde(default = "default_object_scale")]
    pub object_scale: f32,
}

fn default_object_scale() -> f32 {
    1.0
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            count: 24,
            seed: 0,
            classes: 4,
            min_duration_s: 2.0,
            max_duration_s: 12.0,
            resolutions: vec![(320, 240), (480, 270), (480, 360), (640, 360)],
            frame_rates: vec![24, 25, 30],
            sample_rates: vec![44_100, 48_000],
            containers: vec![Container::Mp4],
            vfr_fraction: 0.0,
            object_scale: 1.0,
        }
    }
}

impl CorpusConfig {
    /// Checks the ranges a user can set from the command line.
    pub fn validate(&self) -> Result<(), String> {
        if self.classes == 0 || self.classes > CLASSES.len() {
            return Err(format!(
                "classes must be 1..={}, got {}",
                CLASSES.len(),
                self.classes
            ));
        }
        if !(self.min_duration_s > 0.0 && self.min_duration_s <= self.max_duration_s) {
            return Err(format!(
                "duration range must satisfy 0 < min <= max, got {}..{}",
                self.min_duration_s, self.max_duration_s
            ));
        }
        if self.max_duration_s > 3600.0 {
            return Err("durations over an hour are not supported".into());
        }
        for &(w, h) in &self.resolutions {
            if w < 64 || h < 64 || w % 2 != 0 || h % 2 != 0 || w > 4096 || h > 4096 {
                return Err(format!("resolution {w}x{h}: sides must be even and in 64..=4096"));
            }
        }
        if self.resolutions.is_empty()
            || self.frame_rates.is_empty()
            || self.sample_rates.is_empty()
            || self.containers.is_empty()
        {
            return Err("resolutions, frame rates, sample rates and containers must not be empty".into());
        }
        if self.frame_rates.iter().any(|&f| f == 0 || f > 240) {
            return Err("frame rates must be in 1..=240".into());
        }
        if self.sample_rates.iter().any(|&r| !(8_000..=192_000).contains(&r)) {
            return Err("sample rates must be in 8000..=192000".into());
        }
        if !(0.0..=1.0).contains(&self.vfr_fraction) {
            return Err("vfr fraction must be in 0..=1".into());
        }
        if !(0.25..=4.0).contains(&self.object_scale) {
            return Err(format!(
                "object scale must be in 0.25..=4 (objects must fit the frame), got {}",
                self.object_scale
            ));
        }
        Ok(())
    }
}

/// One video of the plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlannedVideo {
    /// File name relative to the corpus directory, e.g. `synth-0007.mp4`.
    pub file_name: String,
    /// Its container.
    pub container: Container,
    /// Its class name.
    pub label_name: String,
    /// Its split.
    pub split: Split,
    /// What to render.
    pub scenario: Scenario,
}

/// Plans the corpus. Deterministic in `config` (seed included).
pub fn plan(config: &CorpusConfig) -> Vec<PlannedVideo> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    (0..config.count)
        .map(|i| {
            // Labels round-robin, so classes are balanced; one round in five is test.
            let label = i % config.classes;
            // Round 1 (not 4) so that even a corpus of two rounds has test videos.
            let split = if (i / config.classes) % 5 == 1 {
                Split::Test
            } else {
                Split::Train
            };
            let (width, height) = config.resolutions[rng.random_range(0..config.resolutions.len())];
            let fps = config.frame_rates[rng.random_range(0..config.frame_rates.len())];
            let sample_rate = config.sample_rates[rng.random_range(0..config.sample_rates.len())];
            let channels = if rng.random_bool(0.5) { 2 } else { 1 };
            let duration_s = if config.max_duration_s > config.min_duration_s {
                rng.random_range(config.min_duration_s..config.max_duration_s)
            } else {
                config.min_duration_s
            };
            // Whole milliseconds keep durations readable in manifests and reports.
            let duration_s = (duration_s * 1000.0).round() / 1000.0;
            let container = config.containers[i % config.containers.len()];
            // AVI has no variable frame rate; the draw happens anyway so that the plan of
            // the other videos does not depend on the container list.
            let vfr_draw = rng.random_bool(config.vfr_fraction);
            let variable_frame_rate = vfr_draw && container != Container::Avi;
            let scenario = Scenario {
                seed: rng.random(),
                width,
                height,
                fps,
                variable_frame_rate,
                duration_s,
                sample_rate,
                channels,
                label,
                classes: config.classes,
                object_scale: config.object_scale,
            };
            PlannedVideo {
                file_name: format!("synth-{i:05}.{}", container.extension()),
                container,
                label_name: CLASSES[label].name.to_string(),
                split,
                scenario,
            }
        })
        .collect()
}

/// The manifest `gdt pack` reads: a header line, then `path,label,split` per video, paths
/// relative to the manifest's directory.
pub fn manifest_csv(videos: &[PlannedVideo]) -> String {
    let mut out = String::from("path,label,split\n");
    for v in videos {
        out.push_str(&format!(
            "{},{},{}\n",
            v.file_name,
            v.label_name,
            v.split.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_balanced_and_varied() {
        let config = CorpusConfig {
            count: 40,
            seed: 9,
            ..CorpusConfig::default()
        };
        let a = plan(&config);
        let b = plan(&config);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        for c in 0..config.classes {
            let of_class: Vec<_> = a.iter().filter(|v| v.scenario.label == c).collect();
            assert_eq!(of_class.len(), 10);
            assert_eq!(of_class.iter().filter(|v| v.split == Split::Test).count(), 2);
        }
        let fps: std::collections::BTreeSet<u32> = a.iter().map(|v| v.scenario.fps).collect();
        assert_eq!(fps.len(), 3);
        assert!(a.iter().all(|v| (2.0..=12.0).contains(&v.scenario.duration_s)));
        assert!(a.iter().any(|v| v.scenario.channels == 1) && a.iter().any(|v| v.scenario.channels == 2));
        let other = plan(&CorpusConfig { seed: 10, ..config });
        assert_ne!(a[0].scenario, other[0].scenario);
    }

    #[test]
    fn manifest_lists_every_video() {
        let videos = plan(&CorpusConfig {
            count: 3,
            ..CorpusConfig::default()
        });
        let csv = manifest_csv(&videos);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "path,label,split");
        assert_eq!(lines[1], "synth-00000.mp4,red-circle,train");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn bad_configs_are_rejected_with_a_reason() {
        let bad = CorpusConfig {
            classes: 99,
            ..CorpusConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("classes"));
        let bad = CorpusConfig {
            min_duration_s: 5.0,
            max_duration_s: 2.0,
            ..CorpusConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("duration"));
        let bad = CorpusConfig {
            resolutions: vec![(321, 240)],
            ..CorpusConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("even"));
        let bad = CorpusConfig {
            object_scale: 5.0,
            ..CorpusConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("object scale"));
    }
}
