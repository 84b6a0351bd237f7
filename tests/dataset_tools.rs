//! `gdt inspect`, `gdt verify` and `gdt preview` on a dataset written through the format
//! crate (so these run in builds without FFmpeg too), and `gdt pack` end to end with FFmpeg.

use std::path::Path;

use gdt_formats::dataset::{DatasetManifest, InputCounts, ShardInfo, Totals};
use gdt_formats::field::meta::{AudioOrigin, RecordMeta};
use gdt_formats::params::PackParams;
use gdt_formats::shard::{EncodedRecord, ShardWriter, FORMAT_VERSION};

mod common;
use common::{gdt, text};

/// Two shards of two records each: 40x32 frames, 45 frames, 40 mels.
fn write_dataset(dir: &Path) {
    let params = PackParams {
        mels: 40,
        short_side: 32,
        max_long_side: 64,
        ..PackParams::default()
    };
    let mut shards = Vec::new();
    for s in 0..2 {
        let file = format!("shard-{s:05}.gdt");
        let mut w = ShardWriter::create(&dir.join(&file), &params).unwrap();
        for r in 0..2 {
            let meta = RecordMeta {
                source: format!("v{s}{r}.mp4"),
                label: Some("a".into()),
                label_index: Some(0),
                split: Some("train".into()),
                source_duration_s: Some(1.5),
                source_fps: Some(30.0),
                source_width: 80,
                source_height: 64,
                source_video_codec: "h264".into(),
                source_audio_codec: Some("aac".into()),
                source_sample_rate: Some(48_000),
                source_channels: Some(1),
                window_start_s: 0.0,
                window_index: 0,
                audio: AudioOrigin::Decoded,
            };
            let frames: Vec<u8> = (0..45 * 3 * 40 * 32).map(|i| (i % 253) as u8).collect();
            let mel: Vec<f32> = (0..40 * 149).map(|i| (i % 17) as f32).collect();
            w.append(&EncodedRecord::encode(&meta, &frames, 40, 32, &mel, 149, &params).unwrap())
                .unwrap();
        }
        let sum = w.finish().unwrap();
        shards.push(ShardInfo {
            file,
            records: sum.records,
            bytes: sum.bytes,
        });
    }
    let stored = shards.iter().map(|s| s.bytes).sum();
    DatasetManifest {
        format_version: FORMAT_VERSION,
        writer: "test".into(),
        params,
        shards,
        labels: vec!["a".into()],
        label_counts: [("a".to_string(), 4)].into_iter().collect(),
        totals: Totals {
            inputs: 4,
            packed: 4,
            counts: InputCounts {
                records: 4,
                frames: 180,
                seconds: 6.0,
                raw_frame_bytes: 4 * 45 * 3 * 40 * 32,
                source_bytes: 0,
            },
            stored_bytes: stored,
            ..Totals::default()
        },
        skipped: Default::default(),
        source_root: None,
    }
    .save(dir)
    .unwrap();
}

#[test]
fn inspect_reports_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let o = gdt(&["inspect", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("records      4"), "{}", text(&o));
    let o = gdt(&["inspect", "--json", dir.path().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["records"], 4);
    assert!(v["derived"]["compression_vs_raw"].as_f64().unwrap() > 1.0);
    let o = gdt(&["inspect", "/nonexistent/dataset"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("/nonexistent/dataset/dataset.json"),
        "{}",
        text(&o)
    );
}

#[test]
fn verify_passes_clean_data_and_names_each_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let d = dir.path().to_str().unwrap();
    let o = gdt(&["verify", d]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("OK: 2 shards, 4 records"), "{}", text(&o));

    // One flipped bit inside a frame chunk of the second shard's first record.
    let shard = dir.path().join("shard-00001.gdt");
    let mut bytes = std::fs::read(&shard).unwrap();
    let params_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let first_record = 24 + params_len;
    bytes[first_record + 1500] ^= 0x10;
    std::fs::write(&shard, &bytes).unwrap();
    let o = gdt(&["verify", "--json", d]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let damage = v["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(damage[0]["shard"], "shard-00001.gdt");
    assert_eq!(damage[0]["record"], 0);

    // A truncated shard is reported as a whole.
    std::fs::write(&shard, &bytes[..bytes.len() - 10]).unwrap();
    let o = gdt(&["verify", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("shard-00001.gdt"), "{}", text(&o));
}

#[test]
fn preview_draws_frames_above_the_spectrogram() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let png = dir.path().join("p.png");
    let o = gdt(&[
        "preview",
        dir.path().to_str().unwrap(),
        "--record",
        "3",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("v11.mp4"),
        "record 3 is the second shard's second record: {}",
        text(&o)
    );
    let img = image::open(&png).unwrap().to_rgb8();
    let (width, height) = img.dimensions();
    // 1.49 s of spectrogram at 100 px/s plus a thumbnail and margins; the title, two rows of
    // thumbnails (64 px), a gap, 40 mel rows, the time axis and margins.
    assert!((149 + 80..=149 + 80 + 40).contains(&width), "width {width}");
    // The title wraps to the figure's width, 20 px a line: this one (about 440 px of text
    // at 14 px) needs more than one line on a 229-239 px figure.
    let below_title = 64 + 2 + 64 + 6 + 40 + 2 + 24 + 8;
    assert_eq!((height - 8 - below_title) % 20, 0, "height {height}");
    let title_lines = (height - 8 - below_title) / 20;
    assert_eq!(
        title_lines > 1,
        gdt_pipeline::figure::font_available(),
        "{title_lines} title lines"
    );
    let (title_top, spec_top) = (8, 8 + 20 * title_lines + 64 + 2 + 64 + 6);
    let axis_top = spec_top + 40 + 2;
    assert_eq!(height, axis_top + 24 + 8);
    let bright = |x: u32, y: u32| img.get_pixel(x, y).0.iter().all(|&c| c > 200);
    // The axis: a tick every half second of the 45 frames (1.5 s), 50 px apart.
    let ticks: Vec<u32> = (0..width).filter(|&x| bright(x, axis_top)).collect();
    assert_eq!(ticks, [8, 58, 108, 158]);
    // Thumbnails from both rows: 1.49 s holds more than one per row.
    let thumbnails: usize = text(&o)
        .split(" thumbnails")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(thumbnails >= 4, "{}", text(&o));
    // The title is written when the machine has a font (`make setup` installs one).
    let title_pixels = (title_top..title_top + 20)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| bright(x, y))
        .count();
    assert_eq!(
        title_pixels > 20,
        gdt_pipeline::figure::font_available(),
        "{title_pixels} bright pixels in the title"
    );
    let o = gdt(&[
        "preview",
        dir.path().to_str().unwrap(),
        "--record",
        "4",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("has 4 records"), "{}", text(&o));
}

#[cfg(not(feature = "ffmpeg"))]
#[test]
fn pack_without_ffmpeg_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let o = gdt(&[
        "pack",
        dir.path().to_str().unwrap(),
        "-o",
        dir.path().join("ds").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("without FFmpeg"), "{}", text(&o));
}

#[cfg(feature = "ffmpeg")]
#[test]
fn pack_then_inspect_verify_preview_as_a_user_would() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = common::synth_corpus(
        dir.path(),
        &["--count", "4", "--max-seconds", "3", "--containers", "mp4,avi"],
    );
    let ds = dir.path().join("ds");
    std::fs::write(corpus.join("broken.mp4"), b"not a video").unwrap();
    // A folder input: the synthetic files plus the broken one.
    let o = gdt(&[
        "pack",
        corpus.to_str().unwrap(),
        "-o",
        ds.to_str().unwrap(),
        "--mels",
        "40",
        "-j",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Packed 4 of 5 videos"), "{}", text(&o));
    assert!(text(&o).contains("not a readable video file 1"), "{}", text(&o));
    let report = std::fs::read_to_string(ds.join("pack-report.jsonl")).unwrap();
    assert_eq!(report.lines().count(), 5);

    let o = gdt(&[
        "pack",
        corpus.to_str().unwrap(),
        "-o",
        ds.to_str().unwrap(),
        "--mels",
        "40",
    ]);
    assert!(
        o.status.success() && text(&o).contains("already complete"),
        "{}",
        text(&o)
    );
    let o = gdt(&[
        "pack",
        corpus.to_str().unwrap(),
        "-o",
        ds.to_str().unwrap(),
        "--mels",
        "257",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("different packing parameters"), "{}", text(&o));
    let o = gdt(&[
        "pack",
        corpus.to_str().unwrap(),
        "-o",
        dir.path().join("strict").to_str().unwrap(),
        "--strict",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "--strict fails on a skipped input: {}",
        text(&o)
    );

    assert!(gdt(&["verify", ds.to_str().unwrap()]).status.success());
    let o = gdt(&["inspect", "--json", ds.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["records"], 4);
    assert_eq!(v["skipped"]["not a readable video file"], 1);
    let png = dir.path().join("p.png");
    assert!(
        gdt(&["preview", ds.to_str().unwrap(), "-o", png.to_str().unwrap()])
            .status
            .success()
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = gdt(&[
        "pack",
        empty.to_str().unwrap(),
        "-o",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no video files found"), "{}", text(&o));
}

/// A synthetic corpus of two videos of up to 2.5 s in `dir/corpus`; returns its manifest.
#[cfg(feature = "ffmpeg")]
fn two_short_videos(dir: &Path) -> std::path::PathBuf {
    common::synth_corpus(dir, &["--count", "2", "--max-seconds", "2.5"]).join("manifest.csv")
}

#[cfg(feature = "ffmpeg")]
#[test]
fn jpeg_codec_packs_smaller_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let m = two_short_videos(dir.path());
    let (raw, jpeg) = (dir.path().join("raw"), dir.path().join("jpeg"));
    assert!(gdt(&[
        "pack",
        m.to_str().unwrap(),
        "-o",
        raw.to_str().unwrap(),
        "--mels",
        "40"
    ])
    .status
    .success());
    let o = gdt(&[
        "pack",
        m.to_str().unwrap(),
        "-o",
        jpeg.to_str().unwrap(),
        "--mels",
        "40",
        "--codec",
        "jpeg",
        "--quality",
        "80",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(gdt(&["verify", jpeg.to_str().unwrap()]).status.success());
    let size = |d: &Path| DatasetManifest::load(d).unwrap().totals.stored_bytes;
    assert!(
        size(&jpeg) * 2 < size(&raw),
        "jpeg {} vs raw {}",
        size(&jpeg),
        size(&raw)
    );
    let png = dir.path().join("p.png");
    assert!(
        gdt(&["preview", jpeg.to_str().unwrap(), "-o", png.to_str().unwrap()])
            .status
            .success()
    );
    let o = gdt(&[
        "pack",
        m.to_str().unwrap(),
        "-o",
        dir.path().join("x").to_str().unwrap(),
        "--codec",
        "webp",
    ]);
    // A usage error like any other: clap names the values it takes.
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("possible values: raw, jpeg"), "{}", text(&o));
}

#[cfg(feature = "ffmpeg")]
#[test]
fn zstd_settings_change_the_size_never_the_frames() {
    use gdt_formats::dataset::Dataset;
    use gdt_formats::field::frames::ChunkDecoder;
    use gdt_formats::params::FrameCodec;

    let dir = tempfile::tempdir().unwrap();
    let m = two_short_videos(dir.path());
    let pack = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "pack",
            m.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--mels",
            "40",
        ];
        args.extend_from_slice(extra);
        let o = gdt(&args);
        assert!(o.status.success(), "{}", text(&o));
        assert!(gdt(&["verify", out.to_str().unwrap()]).status.success());
        Dataset::open(out).unwrap()
    };
    let default = pack(&dir.path().join("default"), &[]);
    // A negative level written as a user would, with a space before it.
    let minus_one = pack(&dir.path().join("minus-one"), &["--zstd-level", "-1"]);
    let fast = pack(&dir.path().join("fast"), &["--fast-load"]);
    let full_search = pack(&dir.path().join("full-search"), &["--zstd-accel", "0"]);
    assert_eq!(
        minus_one.manifest.params.codec,
        FrameCodec::RawZstd {
            level: -1,
            delta: true,
            accel: 0
        }
    );
    assert_eq!(default.manifest.params.codec, FrameCodec::default());
    assert_eq!(
        full_search.manifest.params.codec,
        FrameCodec::RawZstd {
            level: 1,
            delta: true,
            accel: 0
        }
    );
    assert_eq!(fast.manifest.params.codec, minus_one.manifest.params.codec);
    assert_eq!(fast.manifest.params.chunk_frames, 4);
    let size = |d: &Dataset| d.manifest.totals.stored_bytes;
    assert!(size(&default) < size(&minus_one) && size(&minus_one) < size(&fast));
    // The synthetic frames are noisy: the default's accelerated search writes other bytes,
    // within a few percent of the full search's size.
    assert!(size(&default) != size(&full_search));
    assert!(size(&default) * 100 < size(&full_search) * 105);
    let mut dec = ChunkDecoder::new().unwrap();
    let (mut x, mut y) = (vec![], vec![]);
    for other in [&minus_one, &fast, &full_search] {
        for r in 0..default.len() {
            let (a, b) = (
                default.shards[0].record(r).unwrap(),
                other.shards[0].record(r).unwrap(),
            );
            let n = a.entry().frames as usize;
            a.read_frames(&mut dec, 0, n, &mut x).unwrap();
            b.read_frames(&mut dec, 0, n, &mut y).unwrap();
            assert!(x == y, "record {r}: frames differ from the default pack");
        }
    }
    // --fast-load names its own chunk size and level: giving either as well is a usage error.
    let o = gdt(&[
        "pack",
        m.to_str().unwrap(),
        "-o",
        "x",
        "--fast-load",
        "--zstd-level",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // Negative levels are accelerated already: asking for both is refused before any work.
    let refused = dir.path().join("refused");
    let o = gdt(&[
        "pack",
        m.to_str().unwrap(),
        "-o",
        refused.to_str().unwrap(),
        "--zstd-level",
        "-1",
        "--zstd-accel",
        "64",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("zstd accel needs a zstd level >= 1"),
        "{}",
        text(&o)
    );
    assert!(!refused.exists());
}
