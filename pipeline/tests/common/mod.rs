//! What the pipeline's test files share: the synthetic scenarios and small datasets they
//! build their inputs from.
#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;

use gdt_pipeline::synth::packed::SmallDataset;
use gdt_pipeline::synth::Scenario;

/// A 320x240 video of one class among two, at `fps` (jittered with `vfr`), `duration_s` long,
/// with `channels` of audio at `sample_rate`: the base every file test varies.
pub fn scenario(
    seed: u64,
    fps: u32,
    vfr: bool,
    duration_s: f64,
    sample_rate: u32,
    channels: u16,
) -> Scenario {
    Scenario {
        seed,
        width: 320,
        height: 240,
        fps,
        variable_frame_rate: vfr,
        duration_s,
        sample_rate,
        channels,
        label: 0,
        classes: 2,
        object_scale: 1.0,
    }
}

/// `count` records of the synthetic corpus with `seed`, packed straight into `dir` at small
/// frames (see [`SmallDataset::small_frames`]).
pub fn small_dataset(dir: &Path, count: usize, seed: u64) {
    SmallDataset {
        count,
        seed,
        ..SmallDataset::default()
    }
    .small_frames()
    .write(dir)
    .unwrap();
}
