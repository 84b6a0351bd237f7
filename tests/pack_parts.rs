//! Packing on a cluster: `gdt pack --part i/N` in separate processes, one of them killed and
//! rerun, then `gdt merge`, gives the records (metadata, spectrogram, every frame chunk,
//! byte for byte) of a one-machine pack of the same inputs, in the same order; merge refuses
//! missing, duplicate, mismatched and unfinished parts and leaves nothing behind.
#![cfg(feature = "ffmpeg")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{gdt, text};
use gdt_formats::dataset::Dataset;
use gdt_formats::shard::FIRST_CHUNK_BLOB;

const PACK: [&str; 8] = [
    "--short-side",
    "64",
    "--max-long-side",
    "96",
    "--mels",
    "40",
    "--shard-size",
    "1MiB",
];

fn pack_part(manifest: &Path, out: &Path, part: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gdt"))
        .args([
            "pack",
            manifest.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--part",
            part,
            "-j",
            "1",
        ])
        .args(PACK)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_ok(mut child: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what}: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record's blobs, as stored, in record order.
fn records(dir: &Path) -> Vec<(gdt_formats::field::meta::RecordMeta, Vec<Vec<u8>>)> {
    let ds = Dataset::open(dir).unwrap();
    let mut all = Vec::new();
    for shard in &ds.shards {
        let bytes = std::fs::read(shard.path()).unwrap();
        for r in 0..shard.len() {
            let view = shard.record(r).unwrap();
            let blobs = (0..FIRST_CHUNK_BLOB + view.chunk_count())
                .map(|k| {
                    let (at, len) = view.blob_location(k);
                    bytes[at as usize..at as usize + len as usize].to_vec()
                })
                .collect();
            all.push((view.meta().unwrap(), blobs));
        }
    }
    all
}

fn refused(parts: &[PathBuf], out: &Path, want: &str) {
    let mut args = vec!["merge".to_string()];
    args.extend(parts.iter().map(|p| p.display().to_string()));
    args.extend(["-o".to_string(), out.display().to_string()]);
    let o = gdt(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let said = text(&o);
    assert!(
        !o.status.success() && said.contains(want),
        "wanted {want:?}: {said}"
    );
    assert!(!out.exists(), "a refused merge left {}", out.display());
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".merging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn parts_packed_apart_merge_into_the_one_machine_pack() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = common::synth_corpus(
        dir.path(),
        &[
            "--count",
            "10",
            "--max-seconds",
            "3",
            "--min-seconds",
            "2",
            "--resolutions",
            "128x96",
            "--containers",
            "mp4",
            "--seed",
            "4",
        ],
    );
    let manifest = corpus.join("manifest.csv");
    let single = dir.path().join("single");
    let o = gdt(&[
        &["pack", manifest.to_str().unwrap(), "-o", single.to_str().unwrap()][..],
        &PACK[..],
    ]
    .concat());
    assert!(o.status.success(), "{}", text(&o));

    // Part 1 is killed while it writes its first records (its first shard still a
    // temporary), then the three parts run at once, part 1 resuming.
    let parts = dir.path().join("parts");
    let part = |i: usize| parts.join(format!("part-{i}"));
    let mut first = pack_part(&manifest, &parts, "1/3", &[]);
    let writing = [
        part(1).join(".shard-00000.gdt.tmp"),
        part(1).join("shard-00000.gdt"),
    ];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !writing.iter().any(|p| p.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let state = std::fs::read_to_string(part(1).join(".pack-state.json")).unwrap();
    assert!(
        state.contains("\"complete\":false"),
        "part 1 finished before the kill: {state}"
    );
    let merged = dir.path().join("merged");
    wait_ok(pack_part(&manifest, &parts, "0/3", &[]), "part 0");
    refused(&[part(0), part(1)], &merged, "part 1/3 is not complete");
    let running: Vec<Child> = (0..3)
        .map(|i| pack_part(&manifest, &parts, &format!("{i}/3"), &[]))
        .collect();
    for (i, child) in running.into_iter().enumerate() {
        wait_ok(child, &format!("part {i}"));
    }

    // What merge refuses, leaving nothing.
    refused(&[part(0), part(2)], &merged, "parts missing: 1/3");
    refused(
        &[part(0), part(1), part(2), part(0)],
        &merged,
        "is part 0/3 again",
    );
    let other = dir.path().join("other");
    wait_ok(
        pack_part(&manifest, &other, "2/3", &["--chunk-frames", "4"]),
        "the other part 2",
    );
    refused(
        &[part(0), part(1), other.join("part-2")],
        &merged,
        "different packing parameters",
    );
    refused(
        &[part(0), part(1), single.clone()],
        &merged,
        "packed without --part",
    );
    std::fs::create_dir_all(&merged).unwrap();
    std::fs::write(merged.join("notes.txt"), "mine").unwrap();
    let o = gdt(&["merge", part(0).to_str().unwrap(), "-o", merged.to_str().unwrap()]);
    assert!(
        !o.status.success() && text(&o).contains("not empty"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&merged).unwrap();

    // The merge, parts in any order.
    let o = gdt(&[
        "merge",
        part(2).to_str().unwrap(),
        part(0).to_str().unwrap(),
        part(1).to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Merged 3 parts"), "{}", text(&o));
    let o = gdt(&["verify", merged.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let (want, got) = (records(&single), records(&merged));
    assert_eq!(got.len(), want.len());
    assert!(want.len() >= 10);
    for (k, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.0, g.0, "record {k}: metadata");
        assert!(w.1 == g.1, "record {k}: stored bytes differ");
    }
    let (a, b) = (
        Dataset::open(&single).unwrap().manifest,
        Dataset::open(&merged).unwrap().manifest,
    );
    assert_eq!(
        (&a.labels, &a.label_counts, &a.skipped),
        (&b.labels, &b.label_counts, &b.skipped)
    );
    let mut totals = b.totals.clone();
    totals.stored_bytes = a.totals.stored_bytes; // shard boundaries may differ
    assert_eq!(totals, a.totals);
    assert!(
        b.shards.len() >= 3,
        "every part's shards, renumbered: {:?}",
        b.shards
    );
    // Shards are linked, not copied.
    use std::os::unix::fs::MetadataExt;
    assert!(std::fs::metadata(merged.join("shard-00000.gdt")).unwrap().nlink() >= 2);
    // The report: every input once, in order.
    let report = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("pack-report.jsonl"))
            .unwrap()
            .lines()
            .map(|l| l.split(",\"shard\"").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(report(&single), report(&merged));

    // The loader reads it as any dataset.
    let o = gdt(&["inspect", merged.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gdt(&[
        "bench",
        "load",
        merged.to_str().unwrap(),
        "--batches",
        "2",
        "--warmup",
        "1",
        "--batch-size",
        "2",
        "--clip",
        "8",
        "--crop",
        "32",
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
}
