//! Sources as real data comes: other codecs, containers, channel layouts, sample rates and
//! frame rates. Each is packed, and in every stored record the picture and the sound still
//! line up: each flash frame has its impact onset in the spectrogram where the format says.
#![cfg(feature = "ffmpeg")]

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use gdt_formats::dataset::Dataset;
use gdt_formats::field::frames::ChunkDecoder;
use gdt_formats::params::PackParams;
use gdt_pipeline::pack::{list_inputs, pack, PackConfig, Quiet, Status};
use gdt_pipeline::synth::encode::{write_video_with, EncodeOptions};
use gdt_pipeline::synth::{Container, Scenario, Scene, FLASH_THRESHOLD};

use common::scenario;

fn params() -> PackParams {
    PackParams {
        short_side: 96,
        max_long_side: 128,
        mels: 40,
        ..PackParams::default()
    }
}

/// Flash frames of a stored record (planar RGB) and onset frames of its spectrogram.
fn flashes_and_onsets(
    frames: &[u8],
    n: usize,
    plane: usize,
    mel: &[f32],
    mels: usize,
    t: usize,
) -> (Vec<usize>, Vec<usize>) {
    let thr = FLASH_THRESHOLD - 25;
    let flashes = (0..n)
        .filter(|k| {
            let f = &frames[k * 3 * plane..(k + 1) * 3 * plane];
            (0..plane)
                .filter(|&i| f[i] >= thr && f[plane + i] >= thr && f[2 * plane + i] >= thr)
                .count()
                >= 6
        })
        .collect();
    // Total energy per spectrogram frame (log-sum over mels), onset = jump over the frames
    // just before.
    let energy: Vec<f32> = (0..t)
        .map(|j| (0..mels).map(|m| mel[m * t + j].exp()).sum::<f32>().ln())
        .collect();
    let mut onsets = Vec::new();
    for j in 3..t {
        let before = energy[j - 3..j].iter().cloned().fold(f32::MIN, f32::max);
        if energy[j] > before + 1.5 && onsets.last().is_none_or(|&l| j > l + 5) {
            onsets.push(j);
        }
    }
    (flashes, onsets)
}

#[test]
fn every_kind_of_source_packs_in_sync() {
    let src = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Container, Scenario, bool)> = vec![
        (
            "hevc.mp4",
            Container::Mp4,
            scenario(1, 30, false, 4.0, 48_000, 2),
            true,
        ),
        (
            "vp9.webm",
            Container::Webm,
            scenario(2, 25, false, 4.0, 48_000, 2),
            false,
        ),
        (
            "pcm.mov",
            Container::Mov,
            scenario(3, 24, false, 4.0, 44_100, 2),
            false,
        ),
        (
            "surround.mkv",
            Container::Mkv,
            scenario(4, 30, false, 4.0, 48_000, 6),
            false,
        ),
        (
            "odd-rate.mp4",
            Container::Mp4,
            scenario(5, 25, false, 4.0, 22_050, 1),
            false,
        ),
        (
            "low-rate.avi",
            Container::Avi,
            scenario(6, 24, false, 4.0, 8_000, 1),
            false,
        ),
        (
            "vfr.mkv",
            Container::Mkv,
            scenario(7, 30, true, 4.0, 44_100, 2),
            false,
        ),
    ];
    let mut csv = String::new();
    for (name, container, s, hevc) in &cases {
        let opts = EncodeOptions {
            hevc: *hevc,
            ..EncodeOptions::default()
        };
        write_video_with(&src.path().join(name), *container, &Scene::new(s), &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        csv.push_str(&format!("{name},c\n"));
    }
    std::fs::write(src.path().join("m.csv"), csv).unwrap();
    let out = tempfile::tempdir().unwrap();
    let ds_dir = out.path().join("ds");
    let config = PackConfig {
        params: params(),
        jobs: 2,
        ..PackConfig::new(ds_dir.clone())
    };
    let summary = pack(
        &list_inputs(&src.path().join("m.csv")).unwrap(),
        &config,
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    let report = std::fs::read_to_string(ds_dir.join("pack-report.jsonl")).unwrap();
    assert_eq!(summary.manifest.totals.packed, cases.len(), "{report}");

    let ds = Dataset::open(&ds_dir).unwrap();
    let mut dec = ChunkDecoder::new().unwrap();
    let mut frames = Vec::new();
    for g in 0..ds.len() {
        let (s, r) = ds.locate(g).unwrap();
        let rec = ds.shards[s].record(r).unwrap();
        let e = *rec.entry();
        let name = rec.meta().unwrap().source;
        rec.read_frames(&mut dec, 0, e.frames as usize, &mut frames)
            .unwrap();
        assert_eq!(e.frames, 120, "{name}: 4 s at 30 fps");
        let mel = rec.spectrogram().unwrap();
        let (flashes, onsets) = flashes_and_onsets(
            &frames,
            e.frames as usize,
            (e.width * e.height) as usize,
            &mel,
            e.mels as usize,
            e.mel_frames as usize,
        );
        let isolated: Vec<usize> = flashes
            .iter()
            .enumerate()
            .filter(|(i, &k)| *i == 0 || k - flashes[i - 1] > 9)
            .map(|(_, &k)| k)
            .collect();
        assert!(!isolated.is_empty(), "{name}: no flashes found");
        for k in isolated {
            // Video frame k lines up with spectrogram frame round(k * 100 / 30); a source
            // frame lasts up to 1/24 s, so allow that plus one spectrogram frame.
            let expected = (k as f64 * 100.0 / 30.0).round() as i64;
            let nearest = onsets
                .iter()
                .map(|&o| (o as i64 - expected).abs())
                .min()
                .unwrap_or(i64::MAX);
            assert!(nearest <= 5, "{name}: flash at frame {k} (spectrogram {expected}), nearest onset {nearest} frames away; onsets {onsets:?}");
        }
    }
}

#[test]
fn a_file_over_the_time_limit_is_cut_off_and_reported() {
    let src = tempfile::tempdir().unwrap();
    write_video_with(
        &src.path().join("slow.mp4"),
        Container::Mp4,
        &Scene::new(&scenario(8, 30, false, 4.0, 48_000, 2)),
        &EncodeOptions::default(),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let config = PackConfig {
        params: params(),
        jobs: 1,
        time_limit: Some(Duration::from_nanos(1)),
        ..PackConfig::new(out.path().join("ds"))
    };
    let summary = pack(
        &list_inputs(src.path()).unwrap(),
        &config,
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(summary.manifest.totals.packed, 0);
    let report: gdt_pipeline::pack::Outcome = serde_json::from_str(
        std::fs::read_to_string(out.path().join("ds/pack-report.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (report.status, report.reason.as_deref()),
        (Status::Skipped, Some("decoder time limit"))
    );
    assert!(report.detail.unwrap().contains("slow.mp4"));
}
