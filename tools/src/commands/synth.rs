//! `gdt synth`: write the synthetic corpus as video files plus a manifest, or (`--packed`)
//! straight into a packed dataset.

use anyhow::{anyhow, Context, Result};
use gdt_pipeline::synth::CorpusConfig;

use crate::cli::SynthArgs;

pub fn run(args: SynthArgs) -> Result<i32> {
    let config = corpus_config(&args)?;
    config
        .validate()
        .map_err(|e| anyhow!("invalid synth settings: {e}"))?;
    if args.packed {
        return write_packed(&args, &config);
    }
    #[cfg(feature = "ffmpeg")]
    return files::write_files(&args, &config);
    #[cfg(not(feature = "ffmpeg"))]
    return Ok(without_ffmpeg());
}

/// `--packed`: the corpus rendered straight into a dataset.
fn write_packed(args: &SynthArgs, config: &CorpusConfig) -> Result<i32> {
    let params = gdt_formats::params::PackParams {
        mels: args.mels,
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let m = gdt_pipeline::synth::packed::write_packed_corpus(&args.out, config, &params, args.force)?;
    println!(
        "Wrote {} synthetic records ({:.1} min of video, {} shards, {:.1} MB) to {} in {:.1} s, without FFmpeg",
        m.totals.counts.records,
        m.totals.counts.seconds / 60.0,
        m.shards.len(),
        m.totals.stored_bytes as f64 / 1e6,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(0)
}

fn corpus_config(args: &SynthArgs) -> Result<CorpusConfig> {
    let resolutions = args
        .resolutions
        .iter()
        .map(|r| {
            let (w, h) = r
                .split_once(['x', 'X'])
                .ok_or_else(|| anyhow!("resolution {r:?} is not WIDTHxHEIGHT"))?;
            Ok((w.trim().parse()?, h.trim().parse()?))
        })
        .collect::<Result<Vec<(u32, u32)>>>()
        .context("parsing --resolutions")?;
    Ok(CorpusConfig {
        count: args.count,
        seed: args.seed,
        classes: args.classes,
        min_duration_s: args.min_seconds,
        max_duration_s: args.max_seconds,
        resolutions,
        frame_rates: args.fps.clone(),
        sample_rates: args.sample_rates.clone(),
        containers: args.containers.clone(),
        vfr_fraction: args.vfr,
        object_scale: args.object_scale,
    })
}

#[cfg(not(feature = "ffmpeg"))]
fn without_ffmpeg() -> i32 {
    eprintln!(
        "gdt synth: this gdt was built without FFmpeg (cargo feature `ffmpeg`), so it cannot write video files. \
         Build with default features on a machine with FFmpeg's libraries."
    );
    crate::EXIT_USAGE
}

/// Writing container files: everything here needs FFmpeg.
#[cfg(feature = "ffmpeg")]
mod files {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Instant;

    use anyhow::{Context, Result};
    use gdt_pipeline::synth::files::{write_corpus, Written, DESCRIPTION_FILE, MANIFEST_FILE};
    use gdt_pipeline::synth::{CorpusConfig, PlannedVideo};

    use crate::cli::SynthArgs;

    pub fn write_files(args: &SynthArgs, config: &CorpusConfig) -> Result<i32> {
        let jobs = args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let start = Instant::now();
        let bar = indicatif::ProgressBar::new(config.count as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} encoding [{bar:30}] {pos}/{len} videos  {per_sec}  ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        let written = write_corpus(&args.out, config, jobs, args.force, &|| bar.inc(1));
        bar.finish_and_clear();
        let written = written.with_context(|| format!("writing the corpus into {}", args.out.display()))?;
        print_summary(&args.out, &written, start.elapsed().as_secs_f64(), jobs);
        Ok(0)
    }

    fn print_summary(out: &Path, written: &[(PlannedVideo, Written)], seconds: f64, jobs: usize) {
        fn histogram<K: Ord + std::fmt::Display>(items: impl Iterator<Item = K>) -> String {
            let mut h: BTreeMap<K, usize> = BTreeMap::new();
            for k in items {
                *h.entry(k).or_default() += 1;
            }
            h.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
        let videos = || written.iter().map(|(v, _)| v);
        let total_s: f64 = videos().map(|v| v.scenario.duration_s).sum();
        let (min_s, max_s) = videos().fold((f64::MAX, 0f64), |(a, b), v| {
            (a.min(v.scenario.duration_s), b.max(v.scenario.duration_s))
        });
        let bytes: u64 = written.iter().map(|(_, w)| w.bytes).sum();
        let impacts: usize = written.iter().map(|(_, w)| w.impacts).sum();
        println!(
            "Wrote {} synthetic videos to {} in {seconds:.1} s ({jobs} jobs)",
            written.len(),
            out.display()
        );
        println!(
            "  duration     {:.1} min in all, {min_s:.1}-{max_s:.1} s each",
            total_s / 60.0
        );
        println!(
            "  labels       {}",
            histogram(videos().map(|v| v.label_name.as_str()))
        );
        println!("  splits       {}", histogram(videos().map(|v| v.split.as_str())));
        println!(
            "  containers   {}",
            histogram(videos().map(|v| v.container.extension()))
        );
        println!(
            "  frame rates  {}",
            histogram(videos().map(|v| format!(
                "{}{} fps",
                v.scenario.fps,
                if v.scenario.variable_frame_rate {
                    " (vfr)"
                } else {
                    ""
                }
            )))
        );
        println!(
            "  frame sizes  {}",
            histogram(videos().map(|v| format!("{}x{}", v.scenario.width, v.scenario.height)))
        );
        println!(
            "  audio        {}",
            histogram(videos().map(|v| format!(
                "{} Hz {}",
                v.scenario.sample_rate,
                if v.scenario.channels == 1 {
                    "mono"
                } else {
                    "stereo"
                }
            )))
        );
        println!("  impacts      {impacts} (each a flash and a sound onset on the same frame)");
        println!("  bytes        {:.1} MB", bytes as f64 / 1e6);
        println!("  manifest     {}", out.join(MANIFEST_FILE).display());
        println!("  description  {}", out.join(DESCRIPTION_FILE).display());
    }
}
