//! `gdt eval`: features of a checkpoint (and optionally a second model) on a packed dataset,
//! as a table, JSON, or both.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use gdt_trainer::config::TrainConfig;
use gdt_trainer::eval::{self, EvalOptions, EvalReport, Weights};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::EvalArgs;

pub fn run(args: EvalArgs) -> Result<i32> {
    let (dir, cfg) = eval::resolve_checkpoint(&args.checkpoint)
        .with_context(|| format!("reading the checkpoint {}", args.checkpoint.display()))?;
    let device_name = args.device.clone().unwrap_or_else(|| cfg.device.clone());
    let device = gdt_trainer::device::parse_device(&device_name).map_err(anyhow::Error::msg)?;
    let opts = EvalOptions {
        clips: args.clips,
        device,
        few_shot_draws: args.few_shot_draws,
    };
    let mut reports = vec![one(
        &cfg,
        Weights::Checkpoint(dir),
        &args.data,
        &opts,
        args.quiet,
    )?];
    if let Some(other) = &args.compare {
        let report = if other == "random" {
            one(&cfg, Weights::RandomInit, &args.data, &opts, args.quiet)?
        } else {
            let (dir, cfg2) = eval::resolve_checkpoint(Path::new(other))
                .with_context(|| format!("reading the checkpoint {other}"))?;
            one(&cfg2, Weights::Checkpoint(dir), &args.data, &opts, args.quiet)?
        };
        reports.push(report);
    }
    let json = if reports.len() == 1 {
        serde_json::to_string_pretty(&reports[0])?
    } else {
        serde_json::to_string_pretty(&reports)?
    };
    if let Some(out) = &args.out {
        gdt_formats::atomic_file::write_atomic(out, json.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", table(&reports));
    }
    Ok(0)
}

fn one(
    cfg: &TrainConfig,
    weights: Weights,
    data: &Path,
    opts: &EvalOptions,
    quiet: bool,
) -> Result<EvalReport> {
    let bar = (!quiet).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} records [{elapsed} < {eta}]")
                .expect("valid template"),
        );
        bar.set_message(match &weights {
            Weights::Checkpoint(_) => "features (checkpoint)",
            Weights::RandomInit => "features (random init)",
        });
        bar.enable_steady_tick(Duration::from_millis(500));
        bar
    });
    let report = eval::evaluate(cfg, &weights, data, opts, |done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    })
    .with_context(|| format!("evaluating on {}", data.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(report)
}

/// Metrics as rows, one column per model.
fn table(reports: &[EvalReport]) -> String {
    let pct = |x: f64| {
        if x.is_nan() {
            "n/a".to_string()
        } else {
            format!("{:.1}", 100.0 * x)
        }
    };
    let opt = |x: Option<f64>| x.map_or("n/a".to_string(), pct);
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: &str, f: &dyn Fn(&EvalReport) -> String| {
        rows.push((name.to_string(), reports.iter().map(f).collect()));
    };
    for k in eval::RETRIEVAL_KS {
        add(&format!("video retrieval R@{k} (%)"), &|r| {
            pct(r.video_retrieval[&format!("R@{k}")])
        });
    }
    for k in eval::CROSS_MODAL_KS {
        add(&format!("audio->video R@{k} (%)"), &|r| {
            pct(r.audio_to_video[&format!("R@{k}")])
        });
    }
    for k in eval::CROSS_MODAL_KS {
        add(&format!("video->audio R@{k} (%)"), &|r| {
            pct(r.video_to_audio[&format!("R@{k}")])
        });
    }
    add("video kNN top-1 (%)", &|r| pct(r.video_knn_top1));
    add("video kNN top-1, head space (%)", &|r| pct(r.video_head_knn_top1));
    add("video linear top-1 (%)", &|r| pct(r.video_linear_top1));
    for s in eval::FEW_SHOTS {
        add(&format!("video {s}-shot linear top-1 (%)"), &|r| {
            pct(r.video_few_shot_top1[&s.to_string()])
        });
    }
    add("audio kNN top-1 (%)", &|r| pct(r.audio_knn_top1));
    add("audio linear top-1 (%)", &|r| pct(r.audio_linear_top1));
    add("synchrony (%)", &|r| {
        format!("{} of {}", opt(r.sync_accuracy), r.sync.trials)
    });
    add("direction (%)", &|r| {
        format!("{} of {}", opt(r.direction_accuracy), r.direction.trials)
    });

    let first = &reports[0];
    let mut out = format!(
        "{} records ({} train, {} test), {} classes, {} clips per record\n",
        first.records, first.train_records, first.test_records, first.classes, first.clips_per_record
    );
    for r in reports {
        if let Some(p) = &r.pretrained_on {
            out.push_str(&format!("{} pretrained on {p}\n", short(&r.model)));
        }
    }
    let names: Vec<String> = reports.iter().map(|r| short(&r.model)).collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let col = names.iter().map(|n| n.len()).max().unwrap_or(0).max(12);
    out.push_str(&format!("{:width$}", ""));
    for n in &names {
        out.push_str(&format!("  {n:>col$}"));
    }
    out.push('\n');
    for (name, vals) in rows {
        out.push_str(&format!("{name:width$}"));
        for v in vals {
            out.push_str(&format!("  {v:>col$}"));
        }
        out.push('\n');
    }
    out
}

/// The last two path components of a checkpoint (`run/step-N`), or the name as is.
fn short(model: &str) -> String {
    let p = Path::new(model);
    match (
        p.parent().and_then(|x| x.parent()).and_then(|x| x.file_name()),
        p.file_name(),
    ) {
        (Some(run), Some(step)) if model.contains("step-") => {
            format!("{}/{}", run.to_string_lossy(), step.to_string_lossy())
        }
        _ => model.to_string(),
    }
}
