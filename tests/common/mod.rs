//! What every end-to-end test needs: run the `gdt` binary and read what it said.

use std::process::{Command, Output};

/// Runs the `gdt` built for these tests.
pub fn gdt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gdt"))
        .args(args)
        .output()
        .expect("gdt runs")
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
