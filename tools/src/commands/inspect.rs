//! `gdt inspect`: what a packed dataset holds.

use anyhow::{Context, Result};
use gdt_formats::dataset::DatasetManifest;

use crate::cli::InspectArgs;

pub fn run(args: InspectArgs) -> Result<i32> {
    let m = DatasetManifest::load(&args.dataset)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    let t = &m.totals;
    let ratio = t.counts.raw_frame_bytes as f64 / t.stored_bytes.max(1) as f64;
    let bytes_per_second = t.stored_bytes as f64 / t.counts.seconds.max(1e-9);
    if args.json {
        let mut v = serde_json::to_value(&m)?;
        v["derived"] = serde_json::json!({
            "hours": t.counts.seconds / 3600.0,
            "bytes_per_stored_second": bytes_per_second,
            "compression_vs_raw": ratio,
            "compression_vs_source": t.counts.source_bytes as f64 / t.stored_bytes.max(1) as f64,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let p = &m.params;
    println!(
        "{} (format version {}, written by {})",
        args.dataset.display(),
        m.format_version,
        m.writer
    );
    println!(
        "  records      {} from {} inputs ({} skipped)",
        t.counts.records, t.inputs, t.skipped
    );
    println!(
        "  video        {:.3} h, {} frames at {} fps, short side {} (long side up to {})",
        t.counts.seconds / 3600.0,
        t.counts.frames,
        p.fps,
        p.short_side,
        p.max_long_side
    );
    println!(
        "  audio        {} Hz, {} mel log-filterbank, {} ms window, {} ms hop",
        p.sample_rate,
        p.mels,
        p.window_samples * 1000 / p.sample_rate,
        p.hop_samples * 1000 / p.sample_rate
    );
    println!(
        "  storage      {:?}, {} frames per chunk",
        p.codec, p.chunk_frames
    );
    println!(
        "  shards       {}, {:.1} MB in all, {:.0} KB per stored second",
        m.shards.len(),
        t.stored_bytes as f64 / 1e6,
        bytes_per_second / 1e3
    );
    println!(
        "  compression  {ratio:.2}x vs raw u8 frames; source files {:.1} MB",
        t.counts.source_bytes as f64 / 1e6
    );
    if !m.label_counts.is_empty() {
        println!(
            "  labels       {}",
            m.label_counts
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !m.skipped.is_empty() {
        println!(
            "  skipped      {}",
            m.skipped
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(0)
}
