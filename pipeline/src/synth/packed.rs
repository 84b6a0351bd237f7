//! `gdt synth --packed`: the synthetic corpus written straight into the packed format,
//! without encoding video, so machines without FFmpeg (GPU nodes) and fast tests can make
//! data too.
//!
//! Each planned video is rendered directly at the dataset's frame rate and stored frame
//! size, with its soundtrack at the dataset's sample rate, then analysed and written exactly
//! as `gdt pack` writes a decoded window. Timing is therefore exact: frame j is at j / fps
//! and its impact sound starts on the same instant.

use std::collections::BTreeSet;
use std::path::Path;

use gdt_formats::dataset::{DatasetManifest, DatasetWriter, InputCounts, InputTally};
use gdt_formats::field::meta::{AudioOrigin, RecordMeta};
use gdt_formats::params::PackParams;
use gdt_formats::shard::EncodedRecord;
use gdt_formats::{FileError, FormatError};

use super::{CorpusConfig, PlannedVideo, Scenario, Scene, SynthError};
use crate::source::spectrogram::MelSpectrogram;

/// The scenario a planned video is rendered with when packed directly: the dataset's frame rate,
/// stored frame size and sample rate, mono, at most `max_seconds` long. Its [`Scene`] tells
/// exactly where every impact is in the stored record.
pub fn packed_scenario(scenario: &Scenario, params: &PackParams) -> Scenario {
    let (_, _, width, height) = params.stored_geometry(scenario.width, scenario.height);
    Scenario {
        width,
        height,
        fps: params.fps,
        variable_frame_rate: false,
        duration_s: scenario.duration_s.min(params.max_seconds),
        sample_rate: params.sample_rate,
        channels: 1,
        ..scenario.clone()
    }
}

/// `gdt synth --packed`: the corpus `config` plans, rendered into a dataset in `out` with
/// `params` (1 GiB shards). A dataset already there is refused unless `force`, which
/// replaces its files (and leaves anything else in `out` alone).
pub fn write_packed_corpus(
    out: &Path,
    config: &CorpusConfig,
    params: &PackParams,
    force: bool,
) -> Result<DatasetManifest, SynthError> {
    if out.join(gdt_formats::dataset::DATASET_FILE).exists() && !force {
        return Err(SynthError::Refused {
            path: out.to_path_buf(),
            what: "already holds a dataset; pass --force to replace it".into(),
        });
    }
    if force && out.exists() {
        gdt_formats::dataset::remove_dataset_files(out)?;
    }
    Ok(write_packed(out, &super::plan(config), params, 1 << 30)?)
}

/// Renders `videos` into a dataset in `out` (created; must hold no dataset yet), one shard
/// per `shard_size` bytes. Returns the dataset description.
pub fn write_packed(
    out: &Path,
    videos: &[PlannedVideo],
    params: &PackParams,
    shard_size: u64,
) -> Result<DatasetManifest, FormatError> {
    let labels: Vec<String> = videos
        .iter()
        .map(|v| v.label_name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut writer = DatasetWriter::new(out, params, shard_size, labels, Vec::new())?;
    let mels = MelSpectrogram::new(params);
    let mut tallies = Vec::with_capacity(videos.len());
    for v in videos {
        let scenario = packed_scenario(&v.scenario, params);
        let (w, h) = (scenario.width, scenario.height);
        let scene = Scene::new(&scenario);
        let n = scene.frame_times().len();
        let plane = (w * h) as usize;
        let mut frames = vec![0u8; n * 3 * plane];
        let mut rgb = vec![0u8; 3 * plane];
        for j in 0..n {
            scene.render_frame(j, &mut rgb);
            let f = &mut frames[j * 3 * plane..(j + 1) * 3 * plane];
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                f[i] = px[0];
                f[plane + i] = px[1];
                f[2 * plane + i] = px[2];
            }
        }
        let mut audio = scene.render_audio();
        audio.resize(
            (n as f64 / params.fps as f64 * params.sample_rate as f64).round() as usize,
            0.0,
        );
        let (spectrogram, mel_frames) = mels.compute(&audio);
        let label_index = writer.label_index(&v.label_name);
        let meta = RecordMeta {
            source: v.file_name.clone(),
            label: Some(v.label_name.clone()),
            label_index,
            split: Some(v.split.as_str().to_string()),
            source_duration_s: Some(v.scenario.duration_s),
            source_fps: Some(params.fps as f64),
            source_width: v.scenario.width,
            source_height: v.scenario.height,
            source_video_codec: "synthetic".into(),
            source_audio_codec: Some("synthetic".into()),
            source_sample_rate: Some(params.sample_rate),
            source_channels: Some(1),
            window_start_s: 0.0,
            window_index: 0,
            audio: AudioOrigin::Decoded,
        };
        let record = EncodedRecord::encode(&meta, &frames, w, h, &spectrogram, mel_frames as u32, params)
            .map_err(FileError::at(out))?;
        writer.append(std::slice::from_ref(&record))?;
        tallies.push(InputTally {
            label: Some(v.label_name.clone()),
            skipped: None,
            counts: InputCounts {
                records: 1,
                frames: n as u64,
                seconds: n as f64 / params.fps as f64,
                raw_frame_bytes: frames.len() as u64,
                source_bytes: 0,
            },
        });
    }
    writer.finish(
        &tallies,
        concat!("gdt synth --packed ", env!("CARGO_PKG_VERSION")),
        None,
    )
}

/// A small synthetic dataset for tests, examples and benchmarks: `count` videos of
/// `min_seconds..=max_seconds`, 40 mels, records up to `max_seconds`. One definition, so
/// that every test's data is built the same way.
#[derive(Clone, Debug)]
pub struct SmallDataset {
    /// Videos (one record each).
    pub count: usize,
    /// The corpus seed.
    pub seed: u64,
    /// Shortest video, seconds.
    pub min_seconds: f64,
    /// Longest video and longest record, seconds.
    pub max_seconds: f64,
    /// Stored short side and long side cap, pixels.
    pub frame_size: (u32, u32),
    /// Target shard size, bytes.
    pub shard_size: u64,
}

impl Default for SmallDataset {
    fn default() -> Self {
        let p = PackParams::default();
        SmallDataset {
            count: 12,
            seed: 1,
            min_seconds: 2.0,
            max_seconds: 3.0,
            frame_size: (p.short_side, p.max_long_side),
            shard_size: 1 << 30,
        }
    }
}

impl SmallDataset {
    /// Frames stored at short side 48 (long side at most 64), for models that train on the CPU.
    pub fn small_frames(self) -> SmallDataset {
        SmallDataset {
            frame_size: (48, 64),
            ..self
        }
    }

    /// The packing parameters it is written with.
    pub fn params(&self) -> PackParams {
        PackParams {
            short_side: self.frame_size.0,
            max_long_side: self.frame_size.1,
            mels: 40,
            max_seconds: self.max_seconds,
            ..PackParams::default()
        }
    }

    /// Renders it into `dir`.
    pub fn write(&self, dir: &Path) -> Result<DatasetManifest, FormatError> {
        let videos = super::plan(&super::CorpusConfig {
            count: self.count,
            seed: self.seed,
            min_duration_s: self.min_seconds,
            max_duration_s: self.max_seconds,
            ..super::CorpusConfig::default()
        });
        write_packed(dir, &videos, &self.params(), self.shard_size)
    }
}
