//! `gdt preview`: a record's frames above its spectrogram, sharing one time axis, so a
//! person can see at a glance that picture and sound line up (`gdt_pipeline::figure::preview`).

use anyhow::{Context, Result};
use gdt_pipeline::figure::preview;

use crate::cli::PreviewArgs;

pub fn run(args: PreviewArgs) -> Result<i32> {
    let p = preview::draw(&args.dataset, args.record)
        .with_context(|| format!("previewing {}", args.dataset.display()))?;
    p.save(&args.out)?;
    println!(
        "{}: record {} ({}, label {}), {} frames, {} spectrogram frames; {} thumbnails, one every {} frames",
        args.out.display(),
        args.record,
        p.source,
        p.label.as_deref().unwrap_or("none"),
        p.frames,
        p.mel_frames,
        p.thumbnails,
        p.thumbnail_step
    );
    Ok(0)
}
