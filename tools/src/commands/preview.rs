//! `gdt preview`: a record's frames above its spectrogram, sharing one time axis, so a
//! person can see at a glance that picture and sound line up.
//!
//! Layout: 100 pixels per second horizontally, which is one pixel per spectrogram frame.
//! Each thumbnail starts at its frame's time, one every k frames so they do not overlap.
//! Below them the spectrogram (low frequencies at the bottom, empty filter rows black), and
//! a tick under every second.

use anyhow::{anyhow, bail, Context, Result};
use gdt_formats::dataset::Dataset;
use gdt_formats::field::frames::ChunkDecoder;
use image::{Rgb, RgbImage};

use crate::cli::PreviewArgs;

const PX_PER_SECOND: f64 = 100.0;
const THUMB_HEIGHT: u32 = 64;
const MARGIN: u32 = 8;
const GAP: u32 = 6;
const AXIS: u32 = 10;

pub fn run(args: PreviewArgs) -> Result<i32> {
    let ds = Dataset::open(&args.dataset).with_context(|| format!("opening {}", args.dataset.display()))?;
    let (s, r) = ds.locate(args.record).ok_or_else(|| {
        anyhow!(
            "record {} does not exist: {} has {} records",
            args.record,
            args.dataset.display(),
            ds.len()
        )
    })?;
    let shard = &ds.shards[s];
    let rec = shard.record(r)?;
    let e = *rec.entry();
    let fps = ds.manifest.params.fps as f64;
    let mut frames = Vec::new();
    rec.read_frames(&mut ChunkDecoder::new()?, 0, e.frames as usize, &mut frames)?;
    let spec = rec.spectrogram()?;
    let meta = rec.meta()?;

    let thumb_w = ((e.width as f64 * THUMB_HEIGHT as f64 / e.height as f64).round() as u32).max(1);
    let every = ((thumb_w as f64 / PX_PER_SECOND * fps).ceil() as usize).max(1);
    let x_of = |seconds: f64| MARGIN + (seconds * PX_PER_SECOND).round() as u32;
    let spec_rate = ds.manifest.params.spectrogram_rate();
    let last_thumb = ((e.frames as usize - 1) / every) * every;
    let width = x_of(last_thumb as f64 / fps).max(x_of(e.spec_frames as f64 / spec_rate)) + thumb_w + MARGIN;
    let spec_top = MARGIN + THUMB_HEIGHT + GAP;
    let height = spec_top + e.mels + AXIS + MARGIN;
    if width > 20_000 {
        bail!(
            "record {} is too long to preview ({} px wide)",
            args.record,
            width
        );
    }
    let mut img = RgbImage::from_pixel(width, height, Rgb([24, 24, 24]));

    let plane = (e.width * e.height) as usize;
    for j in (0..e.frames as usize).step_by(every) {
        let f = &frames[j * 3 * plane..(j + 1) * 3 * plane];
        let x0 = x_of(j as f64 / fps);
        for ty in 0..THUMB_HEIGHT {
            let sy = (ty as u64 * e.height as u64 / THUMB_HEIGHT as u64) as usize;
            for tx in 0..thumb_w {
                let sx = (tx as u64 * e.width as u64 / thumb_w as u64) as usize;
                let i = sy * e.width as usize + sx;
                img.put_pixel(x0 + tx, MARGIN + ty, Rgb([f[i], f[plane + i], f[2 * plane + i]]));
            }
        }
        // A marker at the thumbnail's exact time, on the spectrogram's top edge.
        for y in spec_top - GAP / 2..spec_top {
            img.put_pixel(x0, y, Rgb([255, 255, 255]));
        }
    }

    let frames_n = e.spec_frames as usize;
    let live = |v: f32| v > gdt_pipeline::source::spectrogram::LOG_EPS + 1.0;
    // Colour range from the 5th to the 99.9th percentile of the live rows, so a steady noise
    // floor shows dark and onsets stand out.
    let mut sorted: Vec<f32> = spec.iter().copied().filter(|&v| live(v)).collect();
    sorted.sort_by(f32::total_cmp);
    let at = |q: f64| {
        sorted
            .get(((sorted.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let (lo, hi) = (at(0.05), at(0.999));
    for m in 0..e.mels as usize {
        let y = spec_top + e.mels - 1 - m as u32;
        for t in 0..frames_n {
            let v = spec[m * frames_n + t];
            let c = if live(v) && hi > lo {
                colormap((v - lo) / (hi - lo))
            } else {
                [0, 0, 0]
            };
            img.put_pixel(x_of(t as f64 / spec_rate), y, Rgb(c));
        }
    }
    let seconds = (e.frames as f64 / fps).ceil() as u32;
    for sec in 0..=seconds {
        let x = x_of(sec as f64);
        if x < width {
            for y in spec_top + e.mels + 2..spec_top + e.mels + AXIS {
                img.put_pixel(x, y, Rgb([220, 220, 220]));
            }
        }
    }

    let tmp = gdt_formats::atomic_file::temp_path(&args.out);
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: record {} ({}, label {}), {} frames, {} spectrogram frames; a thumbnail every {} frames",
        args.out.display(),
        args.record,
        meta.source,
        meta.label.as_deref().unwrap_or("none"),
        e.frames,
        e.spec_frames,
        every
    );
    Ok(0)
}

/// Dark blue through magenta and orange to pale yellow, for values in [0, 1].
fn colormap(x: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 0.2],
        [0.35, 0.05, 0.5],
        [0.8, 0.2, 0.4],
        [1.0, 0.6, 0.1],
        [1.0, 1.0, 0.7],
    ];
    let x = x.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = ((STOPS[i][c] + (STOPS[i + 1][c] - STOPS[i][c]) * f) * 255.0) as u8;
    }
    out
}
