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
