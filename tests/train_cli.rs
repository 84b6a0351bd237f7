//! `gdt train` as a user runs it: a small CPU run over `gdt synth --packed`, its run directory,
//! `--resume`, and the errors a user can provoke.

mod common;
use common::{gdt, packed_dataset, text, SMALL_TRAIN as SMALL};

/// A port free on 127.0.0.1 now, for a run's rendezvous.
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port().to_string()
}

#[test]
fn train_writes_a_run_directory_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let ds = packed_dataset(dir.path(), 6, 2);
    let d = ds.to_str().unwrap();
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();

    let mut args = vec![
        "train",
        d,
        "--run-dir",
        r,
        "--device",
        "cpu",
        "--steps",
        "3",
        "--preset",
        "ts-distinct",
        "-q",
    ];
    args.extend(SMALL);
    let o = gdt(&args);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("trained to step 3: loss"), "{out}");
    assert!(
        out.contains("distinct: sample, shift; pairs: cross-modal"),
        "{out}"
    );
    for f in [
        "config.toml",
        "log.jsonl",
        "plot.png",
        "checkpoints/step-00000002/model.safetensors",
        "checkpoints/step-00000003/state.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        config.contains("preset = \"ts-distinct\"") && config.contains("shifts = 2"),
        "{config}"
    );
    let lines = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    for key in ["step", "loss", "lr", "clips_per_s", "data_wait", "gpu_memory_mib"] {
        assert!(first.get(key).is_some(), "log lacks {key}: {first}");
    }

    // Starting over in the same directory is refused; --resume continues to the new total.
    let o = gdt(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--resume"), "{}", text(&o));
    let o = gdt(&["train", "--run-dir", r, "--resume", "--steps", "5", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resuming at step 3 of 5"), "{}", text(&o));
    let steps: Vec<u64> = std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5]);

    // Evaluation of that run against random init, as JSON and as a table.
    let out = dir.path().join("eval.json");
    let o = gdt(&[
        "eval",
        "--checkpoint",
        r,
        "--data",
        d,
        "--compare",
        "random",
        "--clips",
        "2",
        "--few-shot-draws",
        "1",
        "--device",
        "cpu",
        "-q",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let reports: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(reports.as_array().unwrap().len(), 2);
    let (trained, random) = (&reports[0], &reports[1]);
    assert!(
        trained["model"].as_str().unwrap().ends_with("step-00000005"),
        "{trained}"
    );
    assert!(random["model"].as_str().unwrap().starts_with("random init"));
    // The report says what pretraining read: the train split, so test records were held out.
    let pretrained = trained["pretrained_on"].as_str().unwrap();
    assert!(pretrained.ends_with("ds, splits train"), "{pretrained}");
    assert!(random["pretrained_on"].is_null());
    assert_eq!(trained["records"], 6);
    for key in [
        "video_retrieval",
        "audio_to_video",
        "video_to_audio",
        "video_few_shot_top1",
    ] {
        assert!(trained[key].is_object(), "{key}");
    }
    for key in [
        "video_knn_top1",
        "video_linear_top1",
        "audio_knn_top1",
        "audio_linear_top1",
    ] {
        assert!(trained[key].is_number(), "{key}");
    }
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&out).unwrap()).unwrap(),
        reports
    );
    let o = gdt(&[
        "eval",
        "--checkpoint",
        r,
        "--data",
        d,
        "--clips",
        "2",
        "--few-shot-draws",
        "1",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    for row in [
        "video retrieval R@1",
        "audio->video R@5",
        "video 20-shot linear top-1",
        "synchrony",
        "direction",
        "step-00000005 pretrained on ",
    ] {
        assert!(text(&o).contains(row), "table lacks {row}: {}", text(&o));
    }
    let o = gdt(&["eval", "--checkpoint", d, "--data", d, "-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no complete checkpoint"), "{}", text(&o));
}

#[test]
fn train_refuses_bad_requests_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("run");
    let r = r.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--preset", "byol"], "unknown preset `byol`"),
        (
            &["--set", "loss.factors.hue=distinct"],
            "known factors: sample, modality",
        ),
        (&["--set", "optim.learning_rate=1"], "learning_rate"),
        (
            &["--set", "loss.preset=ts-distinct", "--set", "data.shifts=1"],
            "one time shift",
        ),
        (&["--device", "tpu"], "unknown device `tpu`"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["train", "missing-dataset", "--run-dir", r];
        args.extend(extra);
        let o = gdt(&args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        assert!(text(&o).contains(want), "{extra:?}: {}", text(&o));
    }
    let o = gdt(&["train", "missing-dataset", "--run-dir", r, "--device", "cpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("missing-dataset"), "{}", text(&o));
    let info = text(&gdt(&["info"]));
    let no_cuda = info
        .lines()
        .any(|l| l.trim_start().starts_with("cuda ") && l.trim_end().ends_with("no"));
    if no_cuda {
        let o = gdt(&["train", "missing-dataset", "--run-dir", r, "--device", "cuda"]);
        assert!(text(&o).contains("no CUDA device"), "{}", text(&o));
    }
    let o = gdt(&["train", "--list-presets"]);
    assert!(o.status.success());
    for p in ["simclr", "cross-modal", "tr-distinct-ts-invariant"] {
        assert!(text(&o).contains(p), "{}", text(&o));
    }
}

/// torchrun starts `gdt` itself (`--no-python`), two ranks on this machine that train as one
/// data-parallel run: rank 0 writes the run directory and reports the global batch.
#[test]
fn torchrun_no_python_starts_a_two_rank_run() {
    let dir = tempfile::tempdir().unwrap();
    let ds = packed_dataset(dir.path(), 16, 2);
    let d = ds.to_str().unwrap();
    let run = dir.path().join("run");
    let port = free_port();
    // The project's venv (make test exports VIRTUAL_ENV) has torch, and so torchrun.
    let torchrun = std::env::var("VIRTUAL_ENV")
        .map(|v| std::path::Path::new(&v).join("bin/torchrun"))
        .unwrap_or_else(|_| "torchrun".into());
    let mut args = vec![
        "--no-python",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        &port,
        env!("CARGO_BIN_EXE_gdt"),
        "train",
        d,
        "--run-dir",
        run.to_str().unwrap(),
        "--device",
        "cpu",
        "--steps",
        "3",
        "-q",
        "--dist-timeout",
        "60",
    ];
    args.extend(SMALL);
    let mut child = std::process::Command::new(&torchrun)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (make setup installs it in .venv)", torchrun.display()));
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("torchrun did not finish in 180 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // 3 records per rank x 4 views, both ranks: the global batch.
    assert!(out.contains("24 clips per step"), "{out}");
    assert_eq!(
        out.matches("trained to step 3").count(),
        1,
        "rank 0 alone reports: {out}"
    );
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
    assert!(run.join("checkpoints/step-00000003/model.safetensors").is_file());
}

/// A rank killed with SIGKILL mid-run: the other fails its next collective and exits
/// non-zero with the reason instead of waiting forever; no process is left behind.
#[test]
fn a_rank_killed_mid_run_makes_the_other_exit_with_the_reason() {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let ds = packed_dataset(dir.path(), 16, 2);
    let d = ds.to_str().unwrap();
    let run = dir.path().join("run");
    let port = free_port();
    let rank = |r: &str| -> Child {
        let mut args = vec![
            "train",
            d,
            "--run-dir",
            run.to_str().unwrap(),
            "--device",
            "cpu",
            "--steps",
            "100000",
            "-q",
            "--dist-timeout",
            "30",
        ];
        args.extend(SMALL);
        Command::new(env!("CARGO_BIN_EXE_gdt"))
            .args(&args)
            .env("RANK", r)
            .env("WORLD_SIZE", "2")
            .env("LOCAL_RANK", r)
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut r0, mut r1) = (rank("0"), rank("1"));
    // Both are training once rank 0 has logged two steps.
    let start = Instant::now();
    let log = run.join("log.jsonl");
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 2 {
        if start.elapsed() > Duration::from_secs(120) || r0.try_wait().unwrap().is_some() {
            let _ = (r0.kill(), r1.kill(), r0.wait(), r1.wait());
            panic!("the run did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    r1.kill().unwrap(); // SIGKILL
    r1.wait().unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = r0.try_wait().unwrap() {
            break Some(s);
        }
        if killed.elapsed() > Duration::from_secs(90) {
            let _ = (r0.kill(), r0.wait());
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = r0.wait_with_output().unwrap();
    let out = text(&o);
    let status = status.unwrap_or_else(|| panic!("rank 0 still ran 90 s after rank 1 died: {out}"));
    assert_eq!(status.code(), Some(1), "{out}");
    // Its next collective: the step's all-gather (global negatives) or all-reduce.
    assert!(
        out.contains("rank 0 of 2: all-gather:") || out.contains("rank 0 of 2: all-reduce:"),
        "{out}"
    );
    eprintln!(
        "rank 0 exited {:.1} s after rank 1 was killed: {}",
        killed.elapsed().as_secs_f64(),
        out.trim()
    );
}
