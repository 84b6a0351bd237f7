//! c10d from Rust: two processes on 127.0.0.1 join a Gloo group through libtorch's own
//! TCPStore and ProcessGroupGloo and all-reduce, all-gather and meet at a barrier; a group
//! one rank never joins fails within its timeout instead of hanging. Data-parallel training
//! on it: at world size 1 it is today's trainer bit for bit; two ranks stay identical
//! replicas, only rank 0 writes the run, and one process resumes it with the same global
//! batch.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use std::path::Path;

use common::{damage_spectrogram, dataset, one_training_at_a_time};
use gdt_trainer::config::{Resolved, TrainConfig};
use gdt_trainer::dist::{Launch, ProcessGroup};
use gdt_trainer::train::{self, Silent};
use tch::Tensor;

/// Set in the child process: its rank, the store's port, and (training) the work folder.
const CHILD_RANK: &str = "GDT_DIST_TEST_RANK";
const CHILD_PORT: &str = "GDT_DIST_TEST_PORT";
const CHILD_WORK: &str = "GDT_DIST_TEST_WORK";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn launch(rank: usize, world: usize, port: u16) -> Launch {
    Launch {
        rank,
        world,
        local_rank: rank,
        master_addr: "127.0.0.1".into(),
        master_port: port,
    }
}

/// What each of the two ranks does; any difference from the expected values is an error.
fn collectives(rank: usize, port: u16) -> Result<(), String> {
    let mut pg =
        ProcessGroup::gloo(&launch(rank, 2, port), Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let mut t = Tensor::from_slice(&[rank as f32 + 1.0; 4]);
    pg.all_reduce_sum(&mut t).map_err(|e| e.to_string())?;
    let sum = Vec::<f32>::try_from(&t).unwrap();
    if sum != [3.0; 4] {
        return Err(format!("rank {rank}: all-reduce gave {sum:?}"));
    }
    let gathered = pg
        .all_gather(&Tensor::from_slice(&[rank as i64, 10 + rank as i64]))
        .map_err(|e| e.to_string())?;
    let g = Vec::<i64>::try_from(&gathered.flatten(0, -1)).unwrap();
    if gathered.size() != [2, 2] || g != [0, 10, 1, 11] {
        return Err(format!("rank {rank}: all-gather gave {g:?}"));
    }
    pg.barrier().map_err(|e| e.to_string())
}

/// Waits for `child` up to `limit`, killing it past that: no test leaves a process behind.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_processes_all_reduce_and_all_gather_over_gloo() {
    if let (Ok(rank), Ok(port)) = (std::env::var(CHILD_RANK), std::env::var(CHILD_PORT)) {
        // The child: rank 1. A failure is its exit status.
        collectives(rank.parse().unwrap(), port.parse().unwrap()).unwrap();
        return;
    }
    let port = free_port();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "two_processes_all_reduce_and_all_gather_over_gloo",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD_RANK, "1")
        .env(CHILD_PORT, port.to_string())
        .spawn()
        .unwrap();
    let ours = collectives(0, port);
    let theirs = wait_bounded(&mut child, Duration::from_secs(60));
    ours.unwrap();
    assert!(theirs.is_some_and(|s| s.success()), "rank 1: {theirs:?}");
}

#[test]
fn a_group_a_rank_never_joins_fails_within_its_timeout() {
    if std::env::var(CHILD_RANK).is_ok() {
        return;
    }
    let start = Instant::now();
    let err = ProcessGroup::gloo(&launch(0, 2, free_port()), Duration::from_secs(3))
        .err()
        .expect("a group of 2 with one rank cannot form");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let text = err.to_string();
    eprintln!("{text} ({took:?})");
    assert!(
        text.starts_with("rank 0 of 2: joining the process group: "),
        "{text}"
    );
    assert!(
        !text.contains("Exception raised from"),
        "C++ stack trace kept: {text}"
    );
}

/// The tiny CPU model of the trainer's tests, batch 2 per rank, 4 steps.
fn tiny(data: &Path) -> Resolved {
    tiny_config(data).resolve().unwrap()
}

fn tiny_config(data: &Path) -> TrainConfig {
    let text = r#"
        device = "cpu"
        steps = 4
        [data]
        batch_size = 2
        clip = 8
        crop = 32
        scale_min = 36.0
        scale_max = 44.0
        threads = 1
        [model]
        width = 0.0625
        [run]
        checkpoint_every = 2
        plot = false
    "#;
    let mut c = TrainConfig::from_toml(text, "test", &[]).unwrap();
    c.dataset = Some(data.to_path_buf());
    c
}

fn model_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoints/step-00000004/model.safetensors")).unwrap()
}

#[test]
fn at_world_size_one_the_data_parallel_path_is_todays_trainer_bit_for_bit() {
    if std::env::var(CHILD_RANK).is_ok() {
        return;
    }
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    let plain = dir.path().join("plain");
    train::train(&tiny(&data), &plain, false, &mut Silent).unwrap();
    let mut group = ProcessGroup::gloo(&launch(0, 1, free_port()), Duration::from_secs(30)).unwrap();
    let parallel = dir.path().join("parallel");
    train::train_data_parallel(&tiny(&data), &parallel, false, &mut Silent, &mut group).unwrap();
    assert!(model_bytes(&plain) == model_bytes(&parallel));
    let log = |run: &Path| std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let losses = |run: &Path| -> Vec<String> {
        log(run)
            .lines()
            .map(|l| l.split(",\"lr\"").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(losses(&plain), losses(&parallel));
}

/// One rank of a two-rank run of `tiny` with `overrides`.
fn train_rank(rank: usize, port: u16, work: &Path, overrides: &[String]) -> Result<train::Summary, String> {
    let mut group =
        ProcessGroup::gloo(&launch(rank, 2, port), Duration::from_secs(20)).map_err(|e| e.to_string())?;
    let cfg = TrainConfig::from_toml(&tiny_config(&work.join("data")).to_toml(), "test", overrides).unwrap();
    train::train_data_parallel(
        &cfg.resolve().unwrap(),
        &work.join("run"),
        false,
        &mut Silent,
        &mut group,
    )
    .map_err(|e| e.to_string())
}

/// Runs rank 1 of the test `name` in a child process over `work` (bounded, never left
/// behind) while this process runs rank 0; returns rank 0's result and rank 1's exit.
fn two_ranks(
    name: &str,
    work: &Path,
    overrides: &[String],
) -> (Result<train::Summary, String>, Option<std::process::ExitStatus>) {
    let port = free_port();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1"])
        .env(CHILD_RANK, "1")
        .env(CHILD_PORT, port.to_string())
        .env(CHILD_WORK, work)
        .spawn()
        .unwrap();
    let ours = train_rank(0, port, work, overrides);
    (ours, wait_bounded(&mut child, Duration::from_secs(120)))
}

/// In the child: rank 1's part of a `two_ranks` test; its outcome goes to `rank1.txt`.
fn as_child(overrides: &[String]) -> bool {
    let (Ok(_), Ok(port), Ok(work)) = (
        std::env::var(CHILD_RANK),
        std::env::var(CHILD_PORT),
        std::env::var(CHILD_WORK),
    ) else {
        return false;
    };
    let work = Path::new(&work);
    let report = match train_rank(1, port.parse().unwrap(), work, overrides) {
        Ok(s) => format!("ok {} {}", s.final_loss, s.parameter_sum),
        Err(e) => format!("error {e}"),
    };
    std::fs::write(work.join("rank1.txt"), report).unwrap();
    true
}

#[test]
fn two_ranks_train_as_identical_replicas_and_only_rank_0_writes() {
    if as_child(&[]) {
        return;
    }
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    dataset(&dir.path().join("data"));
    let (ours, theirs) = two_ranks(
        "two_ranks_train_as_identical_replicas_and_only_rank_0_writes",
        dir.path(),
        &[],
    );
    assert!(theirs.is_some_and(|s| s.success()), "rank 1: {theirs:?}");
    let ours = ours.unwrap();
    let text = std::fs::read_to_string(dir.path().join("rank1.txt")).unwrap();
    let mut it = text.split(' ').skip(1).map(|v| v.parse::<f64>().unwrap());
    let (loss1, sum1) = (it.next().unwrap(), it.next().unwrap());
    // The logged loss is the ranks' mean on both; averaged gradients keep the replicas equal.
    assert_eq!(ours.final_loss, loss1);
    assert_eq!(ours.parameter_sum, sum1, "the replicas drifted apart");
    let run = dir.path().join("run");
    assert_eq!(
        std::fs::read_to_string(run.join("log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    let mut written: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["step-00000002", "step-00000004"],
        "one writer, no temporaries left"
    );

    // One process resumes it: the checkpoint counts in global batches of 2 ranks x 2.
    let mut cfg = tiny_config(&dir.path().join("data"));
    cfg.steps = 6;
    let err = train::train(&cfg.clone().resolve().unwrap(), &run, true, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("global batch is 4 records") && err.contains("--set data.batch_size=4"),
        "{err}"
    );
    cfg.data.batch_size = 4;
    train::train(&cfg.resolve().unwrap(), &run, true, &mut Silent).unwrap();
    // 8 train records in global batches of 4: two per epoch, in order across the change.
    let log = gdt_trainer::run_log::read(&run.join("log.jsonl")).unwrap();
    let positions: Vec<(u64, usize)> = log.iter().map(|r| (r.epoch, r.batch)).collect();
    assert_eq!(positions, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
    // The log says what averaging the gradients cost, on the steps that did it.
    assert!(log[..4].iter().all(|r| r.all_reduce > 0.0 && r.all_reduce < 1.0));
    assert!(log[4..].iter().all(|r| r.all_reduce == 0.0));
}

/// A batch one rank cannot train on (left without negatives by a damaged record) would put
/// the ranks out of step: that rank stops with the reason, and the other does not hang.
#[test]
fn a_batch_one_rank_must_pass_over_ends_the_run_on_every_rank() {
    let overrides = ["loss.preset=\"cross-modal\"".to_string()];
    if as_child(&overrides) {
        return;
    }
    let _alone = one_training_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    damage_spectrogram(&data, 9);
    let (ours, theirs) = two_ranks(
        "a_batch_one_rank_must_pass_over_ends_the_run_on_every_rank",
        dir.path(),
        &overrides,
    );
    assert!(theirs.is_some(), "rank 1 did not finish");
    let theirs = std::fs::read_to_string(dir.path().join("rank1.txt")).unwrap();
    let Err(ours) = ours else {
        panic!("rank 0 cannot finish either")
    };
    assert!(theirs.starts_with("error "), "{theirs}");
    let reasons = format!("{ours}\n{theirs}");
    assert!(
        reasons.contains("cannot pass over one yet") && reasons.contains("no negative"),
        "{reasons}"
    );
}

/// With global negatives (the default) every anchor's denominator also holds the other
/// rank's embeddings: on the same first batch and weights, the loss is larger than with
/// each rank's own negatives only.
#[test]
fn global_negatives_join_the_denominators() {
    let overrides = |global: bool| vec![format!("loss.global_negatives={global}")];
    let global = std::env::var(CHILD_WORK).map(|w| !w.ends_with("local"));
    if let Ok(global) = global {
        if as_child(&overrides(global)) {
            return;
        }
    }
    let _alone = one_training_at_a_time();
    let first_loss = |global: bool| {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join(if global { "global" } else { "local" });
        dataset(&work.join("data"));
        let (ours, theirs) = two_ranks(
            "global_negatives_join_the_denominators",
            &work,
            &overrides(global),
        );
        assert!(theirs.is_some_and(|s| s.success()), "rank 1: {theirs:?}");
        ours.unwrap();
        gdt_trainer::run_log::read(&work.join("run/log.jsonl")).unwrap()[0].loss
    };
    let (global, local) = (first_loss(true), first_loss(false));
    eprintln!("first-step loss: global negatives {global:.4}, own batch only {local:.4}");
    assert!(
        global > local + 0.05,
        "global negatives {global}, own batch only {local}"
    );
}
