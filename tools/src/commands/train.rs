//! `gdt train`: flags -> the trainer's [`Invocation`] -> a resolved config -> the trainer,
//! with a progress bar.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gdt_trainer::config::Invocation;
use gdt_trainer::dist::Launch;
use gdt_trainer::run_log::StepRecord;
use gdt_trainer::spec::{preset_names, TransformSpec};
use gdt_trainer::train::{self, DistOptions, Observer, RunInfo};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{DistBackend, TrainArgs};

/// `s` as a quoted string for an override's value (a JSON string is a TOML basic string).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn run(args: TrainArgs) -> Result<i32> {
    if args.list_presets {
        for name in preset_names() {
            let p = TransformSpec::preset(name)?;
            println!(
                "{name:<26} {} ({}; {} shift(s){})",
                p.about,
                p.spec,
                p.shifts,
                if p.reversal { ", reversed views" } else { "" }
            );
        }
        return Ok(0);
    }
    let Some(run_dir) = args.run_dir.clone() else {
        bail!("--run-dir is required (except with --list-presets)");
    };
    let mut overrides = args.overrides.clone();
    if let Some(dir) = &args.cache.cache_dir {
        overrides.push(format!(
            "data.cache_dir={}",
            toml_string(&dir.display().to_string())
        ));
    }
    if let Some(gib) = args.cache.cache_gib {
        overrides.push(format!("data.cache_gib={gib}"));
    }
    let invocation = Invocation {
        run_dir: run_dir.clone(),
        resume: args.resume,
        config: args.config.clone(),
        preset: args.preset.clone(),
        overrides,
        dataset: args.dataset.clone(),
        steps: args.steps,
        device: args.device.clone(),
    };
    let resolved = invocation
        .config()
        .with_context(|| match args.resume {
            true => format!("resuming {}", run_dir.display()),
            false => format!("configuring a run in {}", run_dir.display()),
        })?
        .resolve()?;
    let lead = Launch::from_env()?.is_none_or(|l| l.rank == 0);
    let mut observer = Progress {
        bar: None,
        quiet: args.quiet || !lead,
    };
    let dist = DistOptions {
        timeout: Duration::from_secs(args.dist_timeout),
        gloo_on_cuda: args.dist_backend == DistBackend::Gloo,
    };
    let (summary, launch) = train::train_as_launched(&resolved, &run_dir, args.resume, &mut observer, dist)
        .with_context(|| format!("training into {}", run_dir.display()))?;
    if !lead {
        return Ok(0);
    }
    if let Some(bar) = observer.bar.take() {
        bar.finish_and_clear();
    }
    println!(
        "trained to step {}: loss {:.4}, {:.1} clips/s, data wait {:.1}%{}{}",
        summary.steps,
        summary.final_loss,
        summary.clips_per_s,
        100.0 * summary.data_wait,
        if launch.is_some() {
            format!(
                ", blocked in collectives {:.1}% of a step",
                100.0 * summary.all_reduce
            )
        } else {
            String::new()
        },
        summary
            .peak_gpu_memory_mib
            .map(|m| format!(", peak GPU memory {m:.0} MiB"))
            .unwrap_or_default()
    );
    println!("checkpoint {}", summary.checkpoint.display());
    if let Some(p) = &summary.plot {
        println!("plot {}", p.display());
    }
    if !summary.skipped_records.is_empty() {
        println!(
            "{} record read(s) failed and were skipped:",
            summary.skipped_records.len()
        );
        for e in &summary.skipped_records {
            println!("  {e}");
        }
    }
    if !summary.passed_over_batches.is_empty() {
        println!(
            "{} batch(es) were passed over, the loss could not learn from them:",
            summary.passed_over_batches.len()
        );
        for e in &summary.passed_over_batches {
            println!("  {e}");
        }
    }
    Ok(0)
}

struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Observer for Progress {
    fn started(&mut self, info: &RunInfo) {
        eprintln!(
            "training {} parameters on {} ({}{}), {} clips per step, spec: {}",
            info.parameters,
            info.device,
            if info.bf16 { "bf16 autocast" } else { "f32" },
            if info.channels_last {
                ", channels-last-3d"
            } else {
                ""
            },
            info.clips_per_batch,
            info.spec
        );
        if info.start_step > 0 {
            eprintln!("resuming at step {} of {}", info.start_step, info.total_steps);
        }
        if !self.quiet {
            let bar = ProgressBar::new(info.total_steps).with_position(info.start_step);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}]")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, r: &StepRecord) {
        if let Some(bar) = &self.bar {
            bar.set_position(r.step);
            bar.set_message(format!(
                "loss {:.4}  {:.1} clips/s  data wait {:.1}%",
                r.loss,
                r.clips_per_s,
                100.0 * r.data_wait
            ));
        }
    }

    fn checkpoint(&mut self, step: u64, dir: &Path) {
        let line = format!("checkpoint at step {step}: {}", dir.display());
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
