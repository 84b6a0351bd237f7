//! `gdt synth`: write the synthetic corpus as video files plus a manifest, or (`--packed`)
//! straight into a packed dataset.

use anyhow::{anyhow, Context, Result};
use gdt_pipeline::synth::{Container, CorpusConfig};

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
    use gdt_formats::params::PackParams;
    use gdt_pipeline::synth::{packed, plan};

    if args.out.join(gdt_formats::dataset::DATASET_FILE).exists() && !args.force {
        anyhow::bail!(
            "{} already holds a dataset; pass --force to replace it",
            args.out.display()
        );
    }
    if args.force && args.out.exists() {
        for e in std::fs::read_dir(&args.out)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if gdt_formats::dataset::is_shard_file(&name) || name == gdt_formats::dataset::DATASET_FILE {
                std::fs::remove_file(e.path()).with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
    }
    let params = PackParams {
        mels: args.mels,
        ..PackParams::default()
    };
    params.validate().map_err(|e| anyhow!("invalid settings: {e}"))?;
    let start = std::time::Instant::now();
    let videos = plan(config);
    let m = packed::write_packed(&args.out, &videos, &params, 1 << 30)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "Wrote {} synthetic records ({:.1} min of video, {} shards, {:.1} MB) to {} in {:.1} s, without FFmpeg",
        m.totals.records,
        m.totals.seconds / 60.0,
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
    let containers = args
        .containers
        .iter()
        .map(|c| Container::parse(c).ok_or_else(|| anyhow!("unknown container {c:?}: use mp4, mkv or avi")))
        .collect::<Result<Vec<_>>>()?;
    Ok(CorpusConfig {
        count: args.count,
        seed: args.seed,
        classes: args.classes,
        min_duration_s: args.min_seconds,
        max_duration_s: args.max_seconds,
        resolutions,
        frame_rates: args.fps.clone(),
        sample_rates: args.sample_rates.clone(),
        containers,
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Instant;

    use anyhow::{bail, Context, Result};
    use gdt_pipeline::synth::{encode::write_video, manifest_csv, plan, CorpusConfig, PlannedVideo, Scene};

    use crate::cli::SynthArgs;

    /// What one encoded video came to.
    #[derive(Clone, Copy)]
    struct Written {
        bytes: u64,
        impacts: usize,
    }

    pub fn write_files(args: &SynthArgs, config: &CorpusConfig) -> Result<i32> {
        prepare_dir(&args.out, args.force)?;
        let videos = plan(config);
        let jobs = args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let start = Instant::now();
        let bar = indicatif::ProgressBar::new(videos.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} encoding [{bar:30}] {pos}/{len} videos  {per_sec}  ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Written, String>>>> = Mutex::new(vec![None; videos.len()]);
        std::thread::scope(|s| {
            for _ in 0..jobs.min(videos.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(v) = videos.get(i) else { break };
                    let path = args.out.join(&v.file_name);
                    let scene = Scene::new(&v.spec);
                    let outcome = write_video(&path, v.container, &scene)
                        .map_err(|e| e.to_string())
                        .and_then(|()| {
                            std::fs::metadata(&path)
                                .map(|m| Written {
                                    bytes: m.len(),
                                    impacts: scene.impacts().len(),
                                })
                                .map_err(|e| e.to_string())
                        });
                    results.lock().expect("no panics while holding the lock")[i] = Some(outcome);
                    bar.inc(1);
                });
            }
        });
        bar.finish_and_clear();
        let results: Vec<Result<Written, String>> = results
            .into_inner()
            .expect("no panics while holding the lock")
            .into_iter()
            .map(|r| r.expect("every video ran"))
            .collect();

        let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        for f in &failures {
            eprintln!("gdt synth: {f}");
        }
        if !failures.is_empty() {
            bail!(
                "{} of {} videos could not be written; no manifest was written",
                failures.len(),
                videos.len()
            );
        }
        let written: Vec<Written> = results
            .into_iter()
            .map(|r| r.expect("failures handled above"))
            .collect();

        let manifest = args.out.join("manifest.csv");
        gdt_formats::atomic_file::write_atomic(&manifest, manifest_csv(&videos).as_bytes())
            .with_context(|| format!("writing {}", manifest.display()))?;
        let description = serde_json::json!({
            "generator": concat!("gdt synth ", env!("CARGO_PKG_VERSION")),
            "config": config,
            "videos": videos.iter().zip(&written).map(|(v, w)| serde_json::json!({
                "file": v.file_name,
                "label": v.label_name,
                "split": v.split,
                "container": v.container,
                "spec": v.spec,
                "impacts": w.impacts,
                "bytes": w.bytes,
            })).collect::<Vec<_>>(),
        });
        let json_path = args.out.join("synth.json");
        gdt_formats::atomic_file::write_atomic(
            &json_path,
            serde_json::to_string_pretty(&description)?.as_bytes(),
        )
        .with_context(|| format!("writing {}", json_path.display()))?;

        print_summary(&args.out, &videos, &written, start.elapsed().as_secs_f64(), jobs);
        Ok(0)
    }

    /// Creates OUT, or with `force` clears what an earlier `gdt synth` left there. Anything else
    /// in a non-empty OUT makes us stop rather than mix two corpora.
    fn prepare_dir(out: &Path, force: bool) -> Result<()> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let entries: Vec<_> = std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", out.display()))?;
        if entries.is_empty() {
            return Ok(());
        }
        if !force {
            bail!(
                "{} is not empty ({} entries); pass --force to replace an earlier synthetic corpus there",
                out.display(),
                entries.len()
            );
        }
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name == "manifest.csv"
                || name == "synth.json"
                || name.starts_with("synth-")
                || name.starts_with(".synth-")
                || name.starts_with(".manifest.csv")
                || name.starts_with(".synth.json");
            if ours {
                std::fs::remove_file(e.path()).with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
        Ok(())
    }

    fn print_summary(out: &Path, videos: &[PlannedVideo], written: &[Written], seconds: f64, jobs: usize) {
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
        let total_s: f64 = videos.iter().map(|v| v.spec.duration_s).sum();
        let (min_s, max_s) = videos.iter().fold((f64::MAX, 0f64), |(a, b), v| {
            (a.min(v.spec.duration_s), b.max(v.spec.duration_s))
        });
        let bytes: u64 = written.iter().map(|w| w.bytes).sum();
        let impacts: usize = written.iter().map(|w| w.impacts).sum();
        println!(
            "Wrote {} synthetic videos to {} in {seconds:.1} s ({jobs} jobs)",
            videos.len(),
            out.display()
        );
        println!(
            "  duration     {:.1} min in all, {min_s:.1}-{max_s:.1} s each",
            total_s / 60.0
        );
        println!(
            "  labels       {}",
            histogram(videos.iter().map(|v| v.label_name.as_str()))
        );
        println!(
            "  splits       {}",
            histogram(videos.iter().map(|v| v.split.as_str()))
        );
        println!(
            "  containers   {}",
            histogram(videos.iter().map(|v| v.container.extension()))
        );
        println!(
            "  frame rates  {}",
            histogram(videos.iter().map(|v| format!(
                "{}{} fps",
                v.spec.fps,
                if v.spec.variable_frame_rate { " (vfr)" } else { "" }
            )))
        );
        println!(
            "  frame sizes  {}",
            histogram(
                videos
                    .iter()
                    .map(|v| format!("{}x{}", v.spec.width, v.spec.height))
            )
        );
        println!(
            "  audio        {}",
            histogram(videos.iter().map(|v| format!(
                "{} Hz {}",
                v.spec.sample_rate,
                if v.spec.channels == 1 { "mono" } else { "stereo" }
            )))
        );
        println!("  impacts      {impacts} (each a flash and a sound onset on the same frame)");
        println!("  bytes        {:.1} MB", bytes as f64 / 1e6);
        println!("  manifest     {}", out.join("manifest.csv").display());
        println!("  description  {}", out.join("synth.json").display());
    }
}
