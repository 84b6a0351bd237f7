//! c10d from Rust: two processes on 127.0.0.1 join a Gloo group through libtorch's own
//! TCPStore and ProcessGroupGloo and all-reduce, all-gather and meet at a barrier; a group
//! one rank never joins fails within its timeout instead of hanging.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gdt_trainer::dist::{Launch, ProcessGroup};
use tch::Tensor;

/// Set in the child process: its rank and the store's port.
const CHILD_RANK: &str = "GDT_DIST_TEST_RANK";
const CHILD_PORT: &str = "GDT_DIST_TEST_PORT";

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
