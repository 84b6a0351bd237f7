//! `gdt synth --packed` and `gdt bench load`, as a user runs them (no FFmpeg needed).

mod common;
use common::{gdt, text};

#[test]
fn synth_packed_then_bench_load_reports_throughput_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    let d = ds.to_str().unwrap();
    let o = gdt(&[
        "synth",
        "--packed",
        "-o",
        d,
        "--count",
        "10",
        "--max-seconds",
        "3",
        "--mels",
        "40",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Wrote 10 synthetic records"), "{}", text(&o));
    assert!(gdt(&["verify", d]).status.success());
    let again = gdt(&["synth", "--packed", "-o", d, "--count", "10"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "must not overwrite a dataset without --force"
    );

    let o = gdt(&[
        "bench",
        "load",
        d,
        "--batches",
        "3",
        "--warmup",
        "1",
        "--batch-size",
        "2",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["clips_per_s", "samples_per_s", "floor_clips_per_s", "mb_per_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    assert_eq!(v["threads"], 2);
    assert_eq!(v["scaling"].as_array().unwrap().len(), 2);
    // What the figures depend on: the stored codec and this CPU's resample kernel.
    let stored = v["stored"].as_str().unwrap();
    assert!(
        stored.starts_with("zstd level 1 + delta, accel 1024, 8-frame chunks, "),
        "{stored}"
    );
    let kernel = v["resample_kernel"].as_str().unwrap();
    assert!(["avx2", "ssse3", "scalar"].contains(&kernel), "{kernel}");
    // 4 views per record: clips/s is four times samples/s.
    let ratio = v["clips_per_s"].as_f64().unwrap() / v["samples_per_s"].as_f64().unwrap();
    assert!((ratio - 4.0).abs() < 1e-9);
    // Packed directly, the dataset has no source files: the baseline says why it is missing.
    assert!(v["baseline_clips_per_s"].is_null());
    assert!(v["baseline_error"].as_str().unwrap().contains("not found") || !cfg!(feature = "ffmpeg"));

    let o = gdt(&[
        "bench",
        "load",
        d,
        "--batches",
        "1",
        "--warmup",
        "0",
        "--batch-size",
        "2",
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("floor")
            && text(&o).contains("clips/s")
            && text(&o).contains("stored as zstd level 1"),
        "{}",
        text(&o)
    );
}

#[cfg(feature = "ffmpeg")]
#[test]
fn bench_load_measures_the_ffmpeg_baseline_when_sources_are_at_hand() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = common::synth_corpus(
        dir.path(),
        &["--count", "4", "--min-seconds", "2", "--max-seconds", "3"],
    );
    let ds = dir.path().join("ds");
    let o = gdt(&[
        "pack",
        corpus.join("manifest.csv").to_str().unwrap(),
        "-o",
        ds.to_str().unwrap(),
        "--mels",
        "40",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gdt(&[
        "bench",
        "load",
        ds.to_str().unwrap(),
        "--batches",
        "2",
        "--warmup",
        "1",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--baseline-records",
        "2",
        "--sources",
        corpus.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["baseline_clips_per_s"].as_f64().unwrap() > 0.0, "{v}");

    // Without --sources, from another working directory: the folder `gdt pack` recorded.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gdt"))
        .args([
            "bench",
            "load",
            ds.to_str().unwrap(),
            "--batches",
            "1",
            "--warmup",
            "0",
        ])
        .args([
            "--batch-size",
            "2",
            "--threads",
            "1",
            "--baseline-records",
            "1",
            "--json",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["baseline_clips_per_s"].as_f64().unwrap() > 0.0, "{v}");
}
