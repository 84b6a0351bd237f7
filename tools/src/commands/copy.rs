//! `gdt copy`: a packed dataset into an object store or out of one, with a progress bar.

use anyhow::{Context, Result};
use gdt_formats::dataset::copy;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::CopyArgs;

pub fn run(args: CopyArgs) -> Result<i32> {
    let what = || format!("copying {} to {}", args.from.display(), args.to.display());
    // Its length comes with the first shard: the copy reads the description once.
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} copying [{bar:30}] {bytes}/{total_bytes}  {bytes_per_sec}  {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let copied = copy(&args.from, &args.to, &mut |name, bytes, total| {
        bar.set_length(total);
        bar.set_message(name.to_string());
        bar.inc(bytes);
    })
    .with_context(what)?;
    bar.finish_and_clear();
    println!(
        "Copied {} into {}: {} shards, {} records, {:.1} MB",
        args.from.display(),
        args.to.display(),
        copied.manifest.shards.len(),
        copied.manifest.totals.counts.records,
        copied.bytes as f64 / 1e6
    );
    Ok(0)
}
