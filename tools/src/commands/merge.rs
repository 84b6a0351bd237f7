//! `gdt merge`: the parts of a cluster pack into one dataset.

use anyhow::{Context, Result};
use gdt_pipeline::pack::merge;

use crate::cli::MergeArgs;

pub fn run(args: MergeArgs) -> Result<i32> {
    let summary =
        merge(&args.parts, &args.out).with_context(|| format!("merging into {}", args.out.display()))?;
    let m = &summary.manifest;
    let t = &m.totals;
    println!(
        "Merged {} parts into {}: {} records from {} of {} videos, {} shards {} ({:.1} MB, no copy)",
        summary.parts,
        args.out.display(),
        t.counts.records,
        t.packed,
        t.inputs,
        m.shards.len(),
        if gdt_formats::storage::Location::is_url(&args.out) {
            "named"
        } else {
            "linked"
        },
        t.stored_bytes as f64 / 1e6
    );
    Ok(0)
}
