//! What every end-to-end test needs: run the `gdt` binary and read what it said.

use std::process::{Command, Output};

/// Runs the `gdt` built for these tests.
pub fn gdt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gdt"))
        .args(args)
        .output()
        .expect("gdt runs")
}

/// `gdt synth --packed` of `count` videos of up to `max_seconds` into `dir/ds` (40 mels).
#[allow(dead_code)] // not every test binary packs
pub fn packed_dataset(dir: &std::path::Path, count: usize, max_seconds: u32) -> std::path::PathBuf {
    let ds = dir.join("ds");
    let (count, max_seconds) = (count.to_string(), max_seconds.to_string());
    let o = gdt(&[
        "synth",
        "--packed",
        "-o",
        ds.to_str().unwrap(),
        "--count",
        &count,
        "--max-seconds",
        &max_seconds,
        "--mels",
        "40",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    ds
}

/// `gdt synth` of `flags` into `dir/corpus` (video files and `manifest.csv`, FFmpeg
/// needed); returns the corpus directory.
#[allow(dead_code)] // not every test binary encodes
pub fn synth_corpus(dir: &std::path::Path, flags: &[&str]) -> std::path::PathBuf {
    let corpus = dir.join("corpus");
    let o = gdt(&[&["synth", "-o", corpus.to_str().unwrap()][..], flags].concat());
    assert!(o.status.success(), "{}", text(&o));
    corpus
}

/// Standard output alone.
#[allow(dead_code)]
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error alone.
#[allow(dead_code)]
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output and standard error together, for messages and asserts.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `gdt train` settings for a run of seconds on a CPU: the real architecture at 1/16 width
/// on 8x32x32 clips, 3 records per step, a checkpoint every 2 steps.
#[allow(dead_code)] // not every test binary trains
pub const SMALL_TRAIN: [&str; 16] = [
    "--set",
    "data.batch_size=3",
    "--set",
    "data.clip=8",
    "--set",
    "data.crop=32",
    "--set",
    "data.scale_min=36",
    "--set",
    "data.scale_max=44",
    "--set",
    "model.width=0.0625",
    "--set",
    "run.checkpoint_every=2",
    "--set",
    "optim.warmup_steps=1",
];
