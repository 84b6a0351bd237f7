//! Datasets in an object store, against a real S3-compatible server on 127.0.0.1 (Garage,
//! started and stopped by each test): packing into it (killed and resumed) gives the bytes of
//! a local pack; reading from it gives the batches of a local copy, and so does a dataset
//! `gdt copy` moved up and down again; parts merge in place; the local cache keeps its bound;
//! a server that goes away ends a run in bounded time and `--resume` finishes once it is
//! back; bad credentials, a missing bucket and a wrong endpoint are one line each.

mod common;
#[path = "common/s3.rs"]
mod s3;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{packed_dataset, text};
use gdt_formats::dataset::DatasetManifest;
use gdt_pipeline::synth::packed::SmallDataset;
use s3::{wait_at_most, S3Server};

/// Uploads every file of the local dataset `dir` below `url`.
fn upload(server: &S3Server, dir: &Path, url: &str) {
    let objects = server.objects(url);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        objects.upload(&name, &e.path()).unwrap();
    }
}

/// The digest line(s) of `gdt bench load DATASET --digest` at 1 and 2 threads, with the
/// report's other lines.
fn bench(server: &S3Server, dataset: &str, extra: &[&str]) -> (Vec<String>, String) {
    let mut args = vec![
        "bench",
        "load",
        dataset,
        "--batches",
        "4",
        "--warmup",
        "2",
        "--rounds",
        "1",
        "--threads",
        "1,2",
        "--batch-size",
        "3",
        "--clip",
        "8",
        "--crop",
        "32",
        "--digest",
    ];
    args.extend(extra);
    let o = server.run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let out = common::stdout(&o);
    let digests = out
        .lines()
        .filter(|l| l.starts_with("digest"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    (digests, out)
}

#[test]
fn reading_from_the_store_gives_the_local_batches_and_checks_every_byte() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let ds = packed_dataset(dir.path(), 6, 2);
    let url = server.url("k400");
    upload(&server, &ds, &url);

    let (local, _) = bench(&server, ds.to_str().unwrap(), &[]);
    let (remote, report) = bench(&server, &url, &[]);
    assert_eq!(local.len(), 2, "{report}");
    assert_eq!(
        remote, local,
        "the same batches from the store as from the local copy\n{report}"
    );
    assert!(
        report.contains("requests/clip") && report.contains("object store"),
        "{report}"
    );

    let o = server.run(&["verify", &url]);
    assert!(
        o.status.success() && text(&o).contains("every checksum"),
        "{}",
        text(&o)
    );
    let o = server.run(&["inspect", &url]);
    assert!(
        o.status.success() && text(&o).contains("records      6"),
        "{}",
        text(&o)
    );

    // A record damaged in the store: verify names it; the loader skips it and goes on.
    let m = DatasetManifest::load(&ds).unwrap();
    let shard = &m.shards[0].file;
    let mut bytes = std::fs::read(ds.join(shard)).unwrap();
    let ds_open = gdt_formats::dataset::Dataset::open(&ds).unwrap();
    let (at, len) = ds_open.shards[0].record(1).unwrap().blob_location(2);
    bytes[(at + len as u64 / 2) as usize] ^= 0xff;
    let damaged = server.url("damaged");
    upload(&server, &ds, &damaged);
    server.objects(&damaged).write(shard, bytes).unwrap();
    let o = server.run(&["verify", &damaged, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(v["damage"][0]["shard"], shard.as_str(), "{v}");
    assert_eq!(v["damage"][0]["record"], 1, "{v}");
    let (_, report) = bench(&server, &damaged, &[]);
    assert!(report.contains("damaged record"), "skip mode skips it: {report}");
}

#[test]
fn gdt_copy_moves_a_dataset_up_and_down_and_refuses_to_overwrite_one() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let ds = packed_dataset(dir.path(), 6, 2);
    let (url, back) = (server.url("copied"), dir.path().join("back"));
    let (ds_arg, back_arg) = (ds.to_str().unwrap(), back.to_str().unwrap());

    let o = server.run(&["copy", ds_arg, &url]);
    assert!(o.status.success(), "{}", text(&o));
    let o = server.run(&["copy", &url, back_arg]);
    assert!(o.status.success(), "{}", text(&o));
    let (local, _) = bench(&server, ds_arg, &[]);
    let (copied, report) = bench(&server, back_arg, &[]);
    assert_eq!(copied, local, "up and down again, the same batches\n{report}");
    let o = server.run(&["verify", back_arg]);
    assert!(o.status.success(), "{}", text(&o));

    for (from, to) in [(ds_arg, url.as_str()), (url.as_str(), back_arg)] {
        let o = server.run(&["copy", from, to]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(text(&o).contains("holds a dataset already"), "{}", text(&o));
    }
    let o = server.run(&["copy", ds_arg, dir.path().join("elsewhere").to_str().unwrap()]);
    assert!(
        !o.status.success() && text(&o).contains("both places are local"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_local_cache_keeps_its_bound_and_serves_later_runs() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("cached");
    // Several shards, so the bound holds some and not others.
    let small = dir.path().join("small");
    let m = SmallDataset {
        count: 6,
        shard_size: 1 << 20,
        ..SmallDataset::default()
    }
    .write(&small)
    .unwrap();
    assert!(m.shards.len() >= 3, "{} shards", m.shards.len());
    upload(&server, &small, &url);
    let biggest = m.shards.iter().map(|s| s.bytes).max().unwrap();
    let total: u64 = m.shards.iter().map(|s| s.bytes).sum();
    let bound = total / 2;
    assert!(bound > biggest);
    let cache = dir.path().join("cache");
    let gib = format!("{}", bound as f64 / (1u64 << 30) as f64);
    let flags = [
        "--cache-dir",
        cache.to_str().unwrap(),
        "--cache-gib",
        gib.as_str(),
    ];
    let (first, _) = bench(&server, &url, &flags);
    let cached = |cache: &Path| -> u64 {
        walk(cache)
            .into_iter()
            .filter(|(n, _)| n.ends_with(".gdt"))
            .map(|(_, b)| b)
            .sum()
    };
    let held = cached(&cache);
    assert!(held > 0, "the cache filled");
    assert!(held <= bound, "{held} bytes cached, bound {bound}");
    let (second, report) = bench(&server, &url, &flags);
    assert_eq!(first, second, "cached shards give the same batches\n{report}");
    assert!(cached(&cache) <= bound);
    let (uncached, _) = bench(&server, &url, &[]);
    assert_eq!(first, uncached);
}

/// Every file below `dir`: path and size.
fn walk(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.path().display().to_string(), meta.len()));
        }
    }
    out
}

#[test]
fn credentials_bucket_and_endpoint_errors_are_one_line_each() {
    let server = S3Server::start();
    let one_line = |o: &std::process::Output, wants: &str| {
        assert_eq!(o.status.code(), Some(1), "{}", text(o));
        let err = common::stderr(o);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(wants), "{wants:?} in {err}");
    };
    let t = Instant::now();
    let o = server
        .gdt()
        .args(["inspect", &server.url("none")])
        .env("AWS_SECRET_ACCESS_KEY", "0".repeat(64))
        .output()
        .unwrap();
    one_line(&o, "s3://");
    let o = server.run(&["inspect", "s3://no-such-bucket/k400"]);
    one_line(&o, "s3://no-such-bucket/k400");
    let o = server.run(&["inspect", &server.url("nothing-here")]);
    one_line(&o, "nothing is stored under this prefix");
    let o = server
        .gdt()
        .args(["inspect", &server.url("k400")])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    one_line(&o, "127.0.0.1:9");
    let o = server
        .gdt()
        .args(["inspect", &server.url("k400")])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    one_line(&o, "no credentials");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
}

#[test]
fn a_server_that_goes_away_ends_training_in_bounded_time_and_resume_finishes() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let ds = packed_dataset(dir.path(), 6, 2);
    let url = server.url("train");
    upload(&server, &ds, &url);
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    let mut args = vec![
        "train",
        url.as_str(),
        "--run-dir",
        r,
        "--device",
        "cpu",
        "--steps",
        "100000",
        "-q",
    ];
    args.extend(common::SMALL_TRAIN);
    // A memory cache too small to hold the dataset: every batch needs the server.
    let mut child = server
        .gdt()
        .args(&args)
        .env("GDT_STORAGE_MEMORY_MB", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let checkpoints = run.join("checkpoints");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(&checkpoints).map_or(0, |d| d.count()) < 1 {
        assert!(Instant::now() < deadline, "no checkpoint in 120 s");
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    let stopped = Instant::now();
    let status = wait_at_most(&mut child, Duration::from_secs(90)).expect("training ended, not hung");
    let waited = stopped.elapsed();
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains(&url), "the error names the object: {err}");
    assert!(
        waited < Duration::from_secs(60),
        "ended {waited:?} after the server went away: {err}"
    );

    server.restart();
    let last = std::fs::read_dir(&checkpoints)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("step-")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    let steps = (last + 2).to_string();
    let o = server.run(&["train", "--run-dir", r, "--resume", "--steps", &steps, "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("trained to step {steps}")),
        "{}",
        text(&o)
    );
}

#[cfg(feature = "ffmpeg")]
mod packing {
    use std::collections::BTreeMap;

    use gdt_formats::dataset::STATE_FILE;

    use super::*;

    /// Every object below `url` but the pack state, by name.
    fn dataset_objects(server: &S3Server, url: &str) -> BTreeMap<String, Vec<u8>> {
        let mut all = server.download(url);
        all.remove(STATE_FILE);
        all
    }

    const PACK: [&str; 8] = [
        "--short-side",
        "64",
        "--max-long-side",
        "96",
        "--mels",
        "40",
        "-j",
        "1",
    ];

    fn corpus(dir: &Path, flags: &[&str]) -> std::path::PathBuf {
        common::synth_corpus(dir, flags).join("manifest.csv")
    }

    fn local_pack(server: &S3Server, manifest: &Path, out: &Path, flags: &[&str]) {
        let o = server.run(
            &[
                &["pack", manifest.to_str().unwrap(), "-o", out.to_str().unwrap()][..],
                flags,
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", text(&o));
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_pack_into_the_store_killed_and_resumed_is_a_local_pack_byte_for_byte() {
        let server = S3Server::start();
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path(), &["--count", "12", "--max-seconds", "3"]);
        let local = dir.path().join("local");
        local_pack(
            &server,
            &manifest,
            &local,
            &[&["--shard-size", "1MiB"][..], &PACK].concat(),
        );
        let url = server.url("packed");
        // A user's own file in the staging directory named: the pack stages in a folder of
        // its own below it and leaves the rest alone.
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("mine.txt"), b"keep").unwrap();
        let pack = |server: &S3Server| {
            let mut c = server.gdt();
            c.args([
                "pack",
                manifest.to_str().unwrap(),
                "-o",
                &url,
                "--shard-size",
                "1MiB",
            ])
            .args(["--staging", staging.to_str().unwrap()])
            .args(PACK)
            .env("GDT_STORAGE_PART_MB", "5")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
            c
        };
        // Killed once shards are in the store and before it is complete.
        let mut child = pack(&server).spawn().unwrap();
        let objects = server.objects(&url);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let state: Option<serde_json::Value> = objects
                .read(STATE_FILE)
                .unwrap()
                .map(|b| serde_json::from_slice(&b).unwrap());
            let shards = state
                .as_ref()
                .map_or(0, |s| s["shards"].as_array().unwrap().len());
            if shards >= 2 {
                assert_eq!(state.unwrap()["complete"], false, "killed before it finished");
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none() && Instant::now() < deadline,
                "the pack ended early"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            objects.read("dataset.json").unwrap().is_none(),
            "no dataset before it is complete"
        );
        assert_eq!(names(&staging).len(), 2, "mine.txt and the pack's folder");

        let mut resumed = pack(&server);
        let o = resumed.stderr(std::process::Stdio::piped()).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("resuming"), "{}", text(&o));
        let remote = dataset_objects(&server, &url);
        let mut here: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in std::fs::read_dir(&local).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != STATE_FILE {
                here.insert(name, std::fs::read(e.path()).unwrap());
            }
        }
        assert_eq!(remote.keys().collect::<Vec<_>>(), here.keys().collect::<Vec<_>>());
        for (name, bytes) in &here {
            assert!(&remote[name] == bytes, "{name} differs from the local pack");
        }
        assert_eq!(
            names(&staging),
            ["mine.txt"],
            "the pack's folder is removed, nothing else"
        );
    }

    #[test]
    fn parts_in_the_store_merge_without_copies_into_the_one_machine_batches() {
        let server = S3Server::start();
        let dir = tempfile::tempdir().unwrap();
        // Three videos of 6-8 s a part: each part's one shard (~17 MB) goes up in parts of 5 MiB.
        let manifest = corpus(
            dir.path(),
            &["--count", "9", "--min-seconds", "6", "--max-seconds", "8"],
        );
        let local = dir.path().join("local");
        let big = ["--shard-size", "64MiB", "--mels", "40", "-j", "1"];
        local_pack(&server, &manifest, &local, &big);
        let url = server.url("k400");
        for part in ["0/3", "1/3", "2/3"] {
            let o = server
                .gdt()
                .args(["pack", manifest.to_str().unwrap(), "-o", &url, "--part", part])
                .args(big)
                // A shard of more than two parts of 5 MiB goes up in parts.
                .env("GDT_STORAGE_PART_MB", "5")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o));
        }
        let before: u64 = server.objects(&url).list().unwrap().iter().map(|(_, b)| b).sum();
        let pattern = format!("{url}/part-*");
        let o = server.run(&["merge", &pattern, "-o", &url]);
        assert!(o.status.success(), "{}", text(&o));
        let after: u64 = server.objects(&url).list().unwrap().iter().map(|(_, b)| b).sum();
        let m: serde_json::Value =
            serde_json::from_slice(&server.objects(&url).read("dataset.json").unwrap().unwrap()).unwrap();
        assert_eq!(m["shards"][0]["file"], "part-0/shard-00000.gdt", "{m}");
        let sizes: Vec<u64> = m["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["bytes"].as_u64().unwrap())
            .collect();
        assert!(
            sizes.iter().all(|&b| b > 10 << 20),
            "every shard went up in parts: {sizes:?}"
        );
        let described: u64 = sizes.iter().sum();
        assert!(
            after - before < described / 10,
            "nothing copied: {before} -> {after} bytes"
        );

        let o = server.run(&["verify", &url]);
        assert!(o.status.success(), "{}", text(&o));
        let (one_machine, _) = bench(&server, local.to_str().unwrap(), &[]);
        let (merged, report) = bench(&server, &url, &[]);
        assert_eq!(merged, one_machine, "{report}");

        let o = server.run(&["merge", &pattern, "-o", &url]);
        assert!(text(&o).contains("already holds a dataset"), "{}", text(&o));
        let o = server.run(&["merge", &pattern, "-o", &server.url("elsewhere")]);
        assert!(text(&o).contains("is not below"), "{}", text(&o));
    }
}
