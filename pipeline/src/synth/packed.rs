//! `gdt synth --packed`: the synthetic corpus written straight into the packed format,
//! without encoding video, so machines without FFmpeg (GPU nodes) and fast tests can make
//! data too.
//!
//! Each planned video is rendered directly at the dataset's frame rate and stored frame
//! size, with its soundtrack at the dataset's sample rate, then analysed and written exactly
//! as `gdt pack` writes a decoded window. Timing is therefore exact: frame j is at j / fps
//! and its impact sound starts on the same instant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gdt_formats::dataset::{shard_file_name, DatasetManifest, ShardInfo, Totals};
use gdt_formats::field::meta::{AudioOrigin, RecordMeta};
use gdt_formats::params::PackParams;
use gdt_formats::shard::{EncodedRecord, ShardWriter, FORMAT_VERSION};
use gdt_formats::FormatError;

use super::{PlannedVideo, Scene, VideoSpec};
use crate::spectrogram::MelSpectrogram;

/// The spec a planned video is rendered with when packed directly: the dataset's frame rate,
/// stored frame size and sample rate, mono, at most `max_seconds` long. Its [`Scene`] tells
/// exactly where every impact is in the stored record.
pub fn packed_spec(spec: &VideoSpec, params: &PackParams) -> VideoSpec {
    let (_, _, width, height) = params.stored_geometry(spec.width, spec.height);
    VideoSpec {
        width,
        height,
        fps: params.fps,
        variable_frame_rate: false,
        duration_s: spec.duration_s.min(params.max_seconds),
        sample_rate: params.sample_rate,
        channels: 1,
        ..spec.clone()
    }
}

/// Renders `videos` into a dataset in `out` (created; must hold no dataset yet), one shard
/// per `shard_size` bytes. Returns the dataset description.
pub fn write_packed(
    out: &Path,
    videos: &[PlannedVideo],
    params: &PackParams,
    shard_size: u64,
) -> Result<DatasetManifest, FormatError> {
    params.validate().map_err(|e| FormatError::Malformed {
        path: out.to_path_buf(),
        what: e,
    })?;
    std::fs::create_dir_all(out).map_err(|source| FormatError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let labels: Vec<String> = videos
        .iter()
        .map(|v| v.label_name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mels = MelSpectrogram::new(params);
    let mut shards: Vec<ShardInfo> = Vec::new();
    let mut writer: Option<ShardWriter> = None;
    let mut totals = Totals {
        inputs: videos.len(),
        ..Totals::default()
    };
    let mut label_counts = BTreeMap::new();
    let finish = |w: ShardWriter, shards: &mut Vec<ShardInfo>| -> Result<(), FormatError> {
        let file = shard_file_name(shards.len());
        let s = w.finish()?;
        shards.push(ShardInfo {
            file,
            records: s.records,
            bytes: s.bytes,
        });
        Ok(())
    };
    for v in videos {
        let spec = packed_spec(&v.spec, params);
        let (w, h) = (spec.width, spec.height);
        let scene = Scene::new(&spec);
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
        let (spectrogram, spec_frames) = mels.compute(&audio);
        let label_index = labels.iter().position(|l| *l == v.label_name).map(|i| i as u32);
        let meta = RecordMeta {
            source: v.file_name.clone(),
            label: Some(v.label_name.clone()),
            label_index,
            split: Some(v.split.as_str().to_string()),
            source_duration_s: Some(v.spec.duration_s),
            source_fps: Some(params.fps as f64),
            source_width: v.spec.width,
            source_height: v.spec.height,
            source_video_codec: "synthetic".into(),
            source_audio_codec: Some("synthetic".into()),
            source_sample_rate: Some(params.sample_rate),
            source_channels: Some(1),
            window_start_s: 0.0,
            window_index: 0,
            audio: AudioOrigin::Decoded,
        };
        let io = |source| FormatError::Io {
            path: out.to_path_buf(),
            source,
        };
        let record = EncodedRecord::encode(&meta, &frames, w, h, &spectrogram, spec_frames as u32, params)
            .map_err(io)?;
        if writer
            .as_ref()
            .is_some_and(|wr| wr.record_count() > 0 && wr.bytes() + record.stored_bytes() > shard_size)
        {
            finish(writer.take().expect("checked"), &mut shards)?;
        }
        if writer.is_none() {
            writer = Some(ShardWriter::create(
                &out.join(shard_file_name(shards.len())),
                params,
            )?);
        }
        writer.as_mut().expect("created above").append(&record)?;
        totals.packed += 1;
        totals.records += 1;
        totals.frames += n as u64;
        totals.seconds += n as f64 / params.fps as f64;
        totals.raw_frame_bytes += frames.len() as u64;
        *label_counts.entry(v.label_name.clone()).or_insert(0) += 1;
    }
    if let Some(w) = writer {
        finish(w, &mut shards)?;
    }
    totals.stored_bytes = shards.iter().map(|s| s.bytes).sum();
    let manifest = DatasetManifest {
        format_version: FORMAT_VERSION,
        writer: concat!("gdt synth --packed ", env!("CARGO_PKG_VERSION")).to_string(),
        params: params.clone(),
        shards,
        labels,
        label_counts,
        totals,
        skipped: BTreeMap::new(),
        source_root: None,
    };
    manifest.save(out)?;
    Ok(manifest)
}
