//! Training end to end on the CPU at a small width over a synthetic packed dataset: the loss
//! goes down, a resumed run is bit-identical to a straight one, and the run directory holds
//! what the docs promise.

mod common;

use std::path::Path;

use common::{damage_spectrogram, dataset, one_training_at_a_time};

use gdt_pipeline::synth::packed::SmallDataset;
use gdt_trainer::config::TrainConfig;
use gdt_trainer::train::{self, Silent};
use gdt_trainer::{checkpoint, run_log};

/// A small model on small clips: the real architecture at 1/16 width.
fn config(dataset: &Path, steps: u64, extra: &[&str]) -> TrainConfig {
    let text = r#"
        device = "cpu"
        [data]
        batch_size = 4
        clip = 8
        crop = 32
        scale_min = 36.0
        scale_max = 44.0
        threads = 2
        [model]
        width = 0.0625
        [optim]
        lr = 0.05
        warmup_steps = 2
        [run]
        checkpoint_every = 3
        plot = false
    "#;
    let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let mut c = TrainConfig::from_toml(text, "test", &overrides).unwrap();
    c.steps = steps;
    c.dataset = Some(dataset.to_path_buf());
    c
}

/// SimCLR's objective (tell records apart, all pairs) is learnable by a 1/16-width model in
/// 40 CPU steps (measured: mean loss 5.6 over the first 8 steps, 3.0 over the last 8). The
/// audio-visual presets need longer runs than a unit test can afford: their loss is still near
/// chance after 40 steps at this size.
#[test]
fn a_few_steps_reduce_the_loss() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    dataset(&dir.path().join("data"));
    let run = dir.path().join("run");
    let resolved = config(
        &dir.path().join("data"),
        40,
        &["run.plot=true", "loss.preset=simclr"],
    )
    .resolve()
    .unwrap();
    let summary = train::train(&resolved, &run, false, &mut Silent).unwrap();
    let log = run_log::read(&run.join(run_log::LOG_FILE)).unwrap();
    assert_eq!(log.len(), 40);
    assert_eq!(
        log.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    let mean = |rs: &[run_log::StepRecord]| rs.iter().map(|r| r.loss).sum::<f64>() / rs.len() as f64;
    let (first, last) = (mean(&log[..8]), mean(&log[32..]));
    assert!(
        last < first * 0.9,
        "loss did not fall: first 8 steps {first:.4}, last 8 {last:.4}"
    );
    assert!(log
        .iter()
        .all(|r| r.clips_per_s > 0.0 && (0.0..=1.0).contains(&r.data_wait)));
    assert_eq!(summary.final_loss, log[39].loss);
    // Plot, resolved config and the newest checkpoints (keep 3 of 14).
    let png = std::fs::read(run.join(train::PLOT_FILE)).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let kept: Vec<u64> = checkpoint::list(&run)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, [36, 39, 40]);
    // The resolved config names the splits pretraining read: the corpus's train split.
    let saved = train::run_config(&run).unwrap();
    let mut expected = resolved.config.clone();
    expected.data.splits = Some(vec!["train".into()]);
    assert_eq!(saved, expected);
}

#[test]
fn resume_continues_exactly() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    // Straight: 6 steps. Interrupted: 3 steps, then --resume up to 6. The loader crosses an
    // epoch boundary (8 train records / 4 per batch = 2 batches per epoch) after the resume
    // point; the head's dropout (0.3 by default) draws its masks on both sides of it.
    let straight = dir.path().join("straight");
    let cfg = config(&data, 6, &[]).resolve().unwrap();
    train::train(&cfg, &straight, false, &mut Silent).unwrap();

    let resumed = dir.path().join("resumed");
    train::train(
        &config(&data, 3, &[]).resolve().unwrap(),
        &resumed,
        false,
        &mut Silent,
    )
    .unwrap();
    // A second fresh start in the same directory is refused: it would mix two runs.
    let err = train::train(&cfg, &resumed, false, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
    let mut again = train::run_config(&resumed).unwrap();
    again.steps = 6;
    train::train(&again.clone().resolve().unwrap(), &resumed, true, &mut Silent).unwrap();

    let read = |run: &Path| std::fs::read(run.join("checkpoints/step-00000006/model.safetensors")).unwrap();
    assert!(
        read(&straight) == read(&resumed),
        "weights after resume differ from a straight run"
    );
    let opt =
        |run: &Path| std::fs::read(run.join("checkpoints/step-00000006/optimizer.safetensors")).unwrap();
    assert!(opt(&straight) == opt(&resumed));
    let losses = |run: &Path| -> Vec<u64> {
        run_log::read(&run.join(run_log::LOG_FILE))
            .unwrap()
            .iter()
            .map(|r| r.loss.to_bits())
            .collect()
    };
    assert_eq!(losses(&straight), losses(&resumed));
    // Resuming a finished run says so instead of doing nothing silently.
    let err = train::train(&again.resolve().unwrap(), &resumed, true, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already at step 6"), "{err}");
}

#[test]
fn a_checkpoint_from_another_model_size_is_refused_with_the_file_named() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let run = dir.path().join("run");
    train::train(
        &config(&data, 1, &[]).resolve().unwrap(),
        &run,
        false,
        &mut Silent,
    )
    .unwrap();
    let before = train::run_config(&run).unwrap();
    let mut wider = before.clone();
    wider.model.width = 0.125;
    wider.steps = 2;
    let err = train::train(&wider.resolve().unwrap(), &run, true, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("the model has"),
        "{err}"
    );
    assert_eq!(
        train::run_config(&run).unwrap(),
        before,
        "a refused resume rewrote the config"
    );
}

/// What a kill during a checkpoint write leaves behind is a `.tmp` directory with some of
/// the files, some cut short: `--resume` must ignore it and continue from the newest complete
/// checkpoint, and the next save of that step must replace the leftover.
#[test]
fn a_checkpoint_interrupted_mid_write_is_ignored_on_resume() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let run = dir.path().join("run");
    train::train(
        &config(&data, 3, &[]).resolve().unwrap(),
        &run,
        false,
        &mut Silent,
    )
    .unwrap();
    let complete = run.join("checkpoints/step-00000003");
    let partial = run.join("checkpoints/step-00000006.tmp");
    std::fs::create_dir(&partial).unwrap();
    let model = std::fs::read(complete.join("model.safetensors")).unwrap();
    std::fs::write(partial.join("model.safetensors"), &model[..model.len() / 2]).unwrap();
    assert_eq!(checkpoint::latest(&run).unwrap(), complete);

    let mut cfg = train::run_config(&run).unwrap();
    cfg.steps = 6;
    train::train(&cfg.resolve().unwrap(), &run, true, &mut Silent).unwrap();
    let steps: Vec<u64> = checkpoint::list(&run)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(steps, [3, 6]);
    assert!(!partial.exists(), "the leftover .tmp directory was not replaced");
    assert_eq!(
        checkpoint::read_state(&run.join("checkpoints/step-00000006"))
            .unwrap()
            .step,
        6
    );
}

/// A damaged record is skipped by the loader; with one record per batch that leaves an empty
/// batch, which the trainer must pass over (not turn into a NaN loss), and the run reports
/// the skipped record by shard and number.
#[test]
fn a_batch_of_only_damaged_records_is_passed_over_and_reported() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    damage_spectrogram(&data, 9);

    // 8 train records, one per step: 14 steps cross an epoch, so record 9 comes up at least once.
    let cfg = config(&data, 14, &["data.batch_size=1"]).resolve().unwrap();
    let summary = train::train(&cfg, &dir.path().join("run"), false, &mut Silent).unwrap();
    assert!(summary.final_loss.is_finite());
    assert!(!summary.skipped_records.is_empty());
    for e in &summary.skipped_records {
        assert!(e.contains("shard-00000.gdt") && e.contains("record 9"), "{e}");
    }
    let log = run_log::read(&dir.path().join("run").join(run_log::LOG_FILE)).unwrap();
    assert_eq!(log.len(), 14, "every step trained on a record");
    assert!(log.iter().all(|r| r.loss.is_finite()));
}

/// Under a spec invariant to all but the sample, a batch left with one record (its partner
/// skipped as damaged) has no negative: its loss would be exactly 0. The trainer passes over
/// it and reports it; a config whose every batch is like that is refused up front.
#[test]
fn batches_without_negatives_are_passed_over_and_such_configs_refused() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let err = config(&data, 2, &["data.batch_size=1", "loss.preset=\"cross-modal\""])
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no negative") && err.contains("data.batch_size of 2"),
        "{err}"
    );

    damage_spectrogram(&data, 9);
    // 8 train records, 2 per step: 8 steps cross an epoch, so record 9's batch comes up.
    let cfg = config(&data, 8, &["data.batch_size=2", "loss.preset=\"cross-modal\""])
        .resolve()
        .unwrap();
    let summary = train::train(&cfg, &dir.path().join("run"), false, &mut Silent).unwrap();
    assert!(!summary.passed_over_batches.is_empty());
    for e in &summary.passed_over_batches {
        assert!(e.contains("1 records") && e.contains("no negative"), "{e}");
    }
    let log = run_log::read(&dir.path().join("run").join(run_log::LOG_FILE)).unwrap();
    assert_eq!(log.len(), 8, "every step trained on a batch with negatives");
    assert!(log.iter().all(|r| r.loss.is_finite() && r.loss > 0.0));
}

/// By default pretraining reads the train split (`a_few_steps_reduce_the_loss` checks the
/// resolved config); `[]` reads every record, and a dataset with nothing but held-out
/// records is refused rather than silently pretrained on.
#[test]
fn pretraining_leaves_out_held_out_splits_unless_told_otherwise() {
    let _alone = one_training_at_a_time();
    use gdt_pipeline::synth::packed::write_packed;
    use gdt_pipeline::synth::{plan, CorpusConfig, Split};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let run = dir.path().join("all");
    let cfg = config(&data, 2, &["data.splits=[]"]).resolve().unwrap();
    train::train(&cfg, &run, false, &mut Silent).unwrap();
    assert_eq!(train::run_config(&run).unwrap().data.splits, Some(vec![]));

    let only_test = dir.path().join("only-test");
    let videos: Vec<_> = plan(&CorpusConfig {
        count: 4,
        seed: 5,
        ..CorpusConfig::default()
    })
    .into_iter()
    .map(|v| gdt_pipeline::synth::PlannedVideo {
        split: Split::Test,
        ..v
    })
    .collect();
    let params = SmallDataset::default().small_frames().params();
    write_packed(&only_test, &videos, &params, 1 << 30).unwrap();
    let cfg = config(&only_test, 2, &[]).resolve().unwrap();
    let err = train::train(&cfg, &dir.path().join("refused"), false, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("every split is held out for evaluation (test)") && err.contains("data.splits"),
        "{err}"
    );
}

/// Pipelined (`run.pipelined`, CUDA's default: each step launched before the previous one's
/// loss is read) trains exactly as step by step: the same losses to the bit, the same
/// checkpoints, including one in the middle of the run, which must hold the weights after
/// its own step and not the next.
#[test]
fn pipelined_steps_train_exactly_as_step_by_step() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let run = |name: &str, pipelined: &str| {
        let out = dir.path().join(name);
        let cfg = config(&data, 7, &[&format!("run.pipelined={pipelined}")])
            .resolve()
            .unwrap();
        train::train(&cfg, &out, false, &mut Silent).unwrap();
        out
    };
    let (plain, pipelined) = (run("plain", "off"), run("pipelined", "on"));
    let losses = |run: &Path| -> Vec<u64> {
        run_log::read(&run.join(run_log::LOG_FILE))
            .unwrap()
            .iter()
            .map(|r| r.loss.to_bits())
            .collect()
    };
    assert_eq!(losses(&plain).len(), 7);
    assert_eq!(losses(&plain), losses(&pipelined));
    for step in ["step-00000003", "step-00000006", "step-00000007"] {
        let read =
            |run: &Path| std::fs::read(run.join("checkpoints").join(step).join("model.safetensors")).unwrap();
        assert!(read(&plain) == read(&pipelined), "{step} differs");
    }
    let steps: Vec<u64> = run_log::read(&pipelined.join(run_log::LOG_FILE))
        .unwrap()
        .iter()
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, (1..=7).collect::<Vec<_>>(), "logged in order");
}

/// A loss that stops being finite ends the run naming the step it was computed in, step by
/// step and pipelined alike, and the last checkpoint stays the one written before it.
#[test]
fn a_diverging_loss_stops_the_run_at_its_step_either_way() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let mut errors = Vec::new();
    for pipelined in ["off", "on"] {
        let out = dir.path().join(pipelined);
        let cfg = config(
            &data,
            30,
            &[
                "optim.lr=1e30",
                "optim.warmup_steps=1",
                &format!("run.pipelined={pipelined}"),
            ],
        )
        .resolve()
        .unwrap();
        let err = train::train(&cfg, &out, false, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the loss became") && err.contains("checkpoint is intact"),
            "{err}"
        );
        let logged = run_log::read(&out.join(run_log::LOG_FILE)).unwrap();
        assert!(logged.iter().all(|r| r.loss.is_finite()));
        errors.push((err, logged.len()));
    }
    assert_eq!(
        errors[0], errors[1],
        "the same step fails, after the same logged steps"
    );
}

/// What CUDA runs by default, run on the CPU: bf16 autocast (CPU autocast) and channels-last
/// layouts, pipelined steps. The branches a GPU takes are reached here too.
#[test]
fn the_cuda_branches_train_on_the_cpu() {
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let cfg = config(
        &data,
        4,
        &["run.bf16=on", "run.channels_last=on", "run.pipelined=on"],
    )
    .resolve()
    .unwrap();
    let summary = train::train(&cfg, &dir.path().join("run"), false, &mut Silent).unwrap();
    assert!(
        summary.final_loss.is_finite() && summary.final_loss > 0.0,
        "{summary:?}"
    );
}
