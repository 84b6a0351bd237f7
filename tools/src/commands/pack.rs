//! `gdt pack`: decode videos once into a packed dataset.

use anyhow::{anyhow, bail, Context, Result};
use gdt_formats::params::{FrameCodec, PackParams};

use crate::cli::{Codec, PackArgs};

/// Parses sizes such as `1GiB`, `512MiB`, `200MB`, `4096`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("size {s:?}: no number"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => bail!("size {s:?}: unknown unit {other:?}"),
    };
    Ok((n * mult as f64) as u64)
}

pub fn params_from(args: &PackArgs) -> PackParams {
    let base = if args.fast_load {
        PackParams::fast_load()
    } else {
        PackParams {
            chunk_frames: args.chunk_frames,
            ..PackParams::default()
        }
    };
    let codec = match (args.codec, &base.codec) {
        (Codec::Raw, FrameCodec::RawZstd { level, .. }) => {
            let level = if args.fast_load { *level } else { args.zstd_level };
            FrameCodec::raw_zstd(level, !args.no_delta, args.zstd_accel)
        }
        _ => FrameCodec::Jpeg {
            quality: args.quality,
        },
    };
    PackParams {
        fps: args.fps,
        short_side: args.short_side,
        max_long_side: args.max_long_side,
        max_seconds: args.max_seconds,
        codec,
        mels: args.mels,
        pcm: args.pcm.into(),
        ..base
    }
}

pub fn run(args: PackArgs) -> Result<i32> {
    let params = params_from(&args);
    params
        .validate()
        .map_err(|e| anyhow!("invalid packing parameters: {e}"))?;
    let shard_size = parse_size(&args.shard_size)?;
    if shard_size < 1 << 20 {
        bail!("--shard-size {} is below 1 MiB", args.shard_size);
    }
    run_pack(args, params, shard_size)
}

#[cfg(not(feature = "ffmpeg"))]
fn run_pack(_args: PackArgs, _params: PackParams, _shard_size: u64) -> Result<i32> {
    eprintln!("gdt pack: this gdt was built without FFmpeg (cargo feature `ffmpeg`), so it cannot decode videos. Pack on a machine with FFmpeg and copy the dataset here.");
    Ok(crate::EXIT_USAGE)
}

#[cfg(feature = "ffmpeg")]
fn run_pack(args: PackArgs, params: PackParams, shard_size: u64) -> Result<i32> {
    use std::time::{Duration, Instant};

    use gdt_pipeline::pack::{list_inputs, pack, source_root, PackConfig, PackError};

    let inputs =
        list_inputs(&args.input).with_context(|| format!("listing inputs from {}", args.input.display()))?;
    if inputs.is_empty() {
        bail!("{}: no video files found", args.input.display());
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // A part goes into its own directory inside OUT, so every task of a cluster job can be
    // given the same -o.
    let out = match args.part {
        Some(part) => args.out.join(part.dir_name()),
        None => args.out.clone(),
    };
    let config = PackConfig {
        params,
        jobs,
        shard_size,
        max_windows: args.windows.max(1),
        time_limit: (args.time_limit > 0.0).then(|| Duration::from_secs_f64(args.time_limit)),
        silence_for_missing_audio: args.no_audio == crate::cli::NoAudio::Silence,
        force: args.force,
        source_root: source_root(&args.input),
        part: args.part,
        staging: args.staging.clone(),
        ..PackConfig::new(out.clone())
    };
    let mine = args.part.map_or(0..inputs.len(), |p| p.range(inputs.len()));
    if let Some(part) = args.part {
        eprintln!(
            "gdt pack: part {part}: inputs {}..{} of {} into {}",
            mine.start,
            mine.end,
            inputs.len(),
            out.display()
        );
    }
    let todo = mine.len();
    let cancel = ctrl_c_cancels();
    let bar = Bar::new(todo);
    let start = Instant::now();
    let result = pack(&inputs, &config, &bar, &cancel);
    bar.bar.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(PackError::Interrupted) => {
            eprintln!(
                "gdt pack: interrupted. Completed shards are kept; run the same command again to resume:\n  gdt pack {} -o {}{}",
                args.input.display(),
                args.out.display(),
                args.part.map(|p| format!(" --part {p}")).unwrap_or_default()
            );
            return Ok(130);
        }
        Err(e) => return Err(e).with_context(|| format!("packing into {}", out.display())),
    };
    print_summary(&out, &summary, start.elapsed().as_secs_f64(), jobs);
    let t = &summary.manifest.totals;
    if todo == 0 {
        eprintln!("gdt pack: this part has no inputs (more parts than inputs); it merges as empty");
        return Ok(0);
    }
    if t.packed == 0 {
        eprintln!("gdt pack: no input could be packed");
        return Ok(1);
    }
    if args.strict && t.skipped > 0 {
        eprintln!("gdt pack: {} inputs skipped (--strict)", t.skipped);
        return Ok(1);
    }
    Ok(0)
}

/// The progress bar: videos done, packed and skipped, clips so far.
#[cfg(feature = "ffmpeg")]
struct Bar {
    bar: indicatif::ProgressBar,
    packed: std::sync::atomic::AtomicUsize,
    skipped: std::sync::atomic::AtomicUsize,
    clips: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "ffmpeg")]
impl Bar {
    fn new(inputs: usize) -> Bar {
        Bar {
            bar: indicatif::ProgressBar::new(inputs as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} packing [{bar:30}] {pos}/{len} videos  {per_sec}  {msg}  ETA {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            ),
            packed: Default::default(),
            skipped: Default::default(),
            clips: Default::default(),
        }
    }
}

#[cfg(feature = "ffmpeg")]
impl gdt_pipeline::pack::Progress for Bar {
    fn input_done(&self, o: &gdt_pipeline::pack::Outcome) {
        use gdt_pipeline::pack::Status;
        use std::sync::atomic::Ordering;
        match o.status {
            Status::Packed => self.packed.fetch_add(1, Ordering::Relaxed),
            Status::Skipped => self.skipped.fetch_add(1, Ordering::Relaxed),
        };
        // Clips: whole 1-second clips the stored frames hold.
        self.clips.fetch_add(
            (o.counts.seconds as usize).max(o.counts.records),
            Ordering::Relaxed,
        );
        self.bar.set_message(format!(
            "packed {} skipped {} clips {}",
            self.packed.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            self.clips.load(Ordering::Relaxed)
        ));
        self.bar.inc(1);
    }
    fn resumed(&self, done: usize) {
        let line = format!("resuming: {done} inputs were finished by an earlier run");
        // A hidden bar (no terminal: a batch job's log) prints nothing; the line still goes.
        if self.bar.is_hidden() {
            eprintln!("gdt pack: {line}");
        } else {
            self.bar.println(line);
        }
        self.bar.inc(done as u64);
    }
}

/// A flag the first Ctrl-C raises (the pack stops after the current inputs, resumable); a
/// second Ctrl-C exits at once.
#[cfg(feature = "ffmpeg")]
fn ctrl_c_cancels() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let cancel = std::sync::Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ngdt pack: stopping after the current inputs (Ctrl-C again to quit at once)...");
    });
    cancel
}

/// What was packed, skipped and written, and how fast.
#[cfg(feature = "ffmpeg")]
fn print_summary(out: &std::path::Path, summary: &gdt_pipeline::pack::PackSummary, secs: f64, jobs: usize) {
    use gdt_pipeline::pack::REPORT_FILE;

    let m = &summary.manifest;
    let t = &m.totals;
    if summary.already_complete {
        println!(
            "{} is already complete ({} records); nothing to do. Use --force to repack.",
            out.display(),
            t.counts.records
        );
    } else {
        println!(
            "Packed {} of {} videos into {} in {secs:.1} s ({jobs} jobs)",
            t.packed,
            t.inputs,
            out.display()
        );
    }
    println!(
        "  records      {} ({:.3} h of video, {} frames)",
        t.counts.records,
        t.counts.seconds / 3600.0,
        t.counts.frames
    );
    if t.skipped > 0 {
        let list = m
            .skipped
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  skipped      {}: {list} (details: {})",
            t.skipped,
            out.join(REPORT_FILE).display()
        );
    }
    println!(
        "  written      {} shards, {:.1} MB",
        m.shards.len(),
        t.stored_bytes as f64 / 1e6
    );
    if t.stored_bytes > 0 {
        println!(
            "  compression  {:.2}x vs raw u8 frames ({:.0}% of raw); source files {:.1} MB ({:.2}x the packed size)",
            t.counts.raw_frame_bytes as f64 / t.stored_bytes as f64,
            100.0 * t.stored_bytes as f64 / t.counts.raw_frame_bytes.max(1) as f64,
            t.counts.source_bytes as f64 / 1e6,
            t.counts.source_bytes as f64 / t.stored_bytes as f64
        );
    }
    if !summary.already_complete && secs > 0.0 {
        println!(
            "  throughput   {:.2} videos/s, {:.1} s of video per second",
            summary.processed_now as f64 / secs,
            t.counts.seconds * summary.processed_now as f64 / t.inputs.max(1) as f64 / secs
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{params_from, parse_size};
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use gdt_formats::params::FrameCodec;

    fn codec(flags: &[&str]) -> FrameCodec {
        let args = [&["gdt", "pack", "in", "-o", "out"], flags].concat();
        match Cli::try_parse_from(args).unwrap().command {
            Command::Pack(a) => params_from(&a).codec,
            _ => unreachable!("parsed as pack"),
        }
    }

    #[test]
    fn accel_defaults_to_the_default_level_with_delta_only() {
        let raw = |level, delta, accel| FrameCodec::RawZstd { level, delta, accel };
        assert_eq!(codec(&[]), FrameCodec::default());
        assert_eq!(codec(&[]), raw(1, true, 1024));
        // A level or the raw frames asked for by name get the level's own search...
        assert_eq!(codec(&["--zstd-level", "3"]), raw(3, true, 0));
        assert_eq!(codec(&["--no-delta"]), raw(1, false, 0));
        assert_eq!(codec(&["--fast-load"]), raw(-1, true, 0));
        // ...unless accel is asked for as well.
        assert_eq!(
            codec(&["--zstd-level", "3", "--zstd-accel", "64"]),
            raw(3, true, 64)
        );
        assert_eq!(codec(&["--zstd-accel", "0"]), raw(1, true, 0));
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("200MB").unwrap(), 200_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1.5G").unwrap(), 1_500_000_000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
