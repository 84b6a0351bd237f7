//! End-to-end tests of the `gdt` binary as a user runs it.

mod common;

use common::{gdt, stderr, stdout};

#[test]
fn help_lists_every_subcommand_of_the_product() {
    let o = gdt(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for cmd in [
        "synth", "pack", "merge", "inspect", "verify", "preview", "bench", "info", "train", "eval",
    ] {
        assert!(
            text.contains(&format!("\n  {cmd} ")),
            "--help lacks {cmd}:\n{text}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let o = gdt(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = gdt(&["synth"]);
    assert_eq!(o.status.code(), Some(2), "missing -o");
    // Choices are checked by clap like any other usage error, and every value is named.
    for args in [
        &["synth", "-o", "x", "--containers", "mp4,flv"][..],
        &["pack", "videos", "-o", "x", "--no-audio", "pad"][..],
        &["pack", "videos", "-o", "x", "--codec", "webp"][..],
    ] {
        let o = gdt(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("possible values"), "{}", stderr(&o));
    }
    assert!(stderr(&gdt(&["synth", "-o", "x", "--containers", "flv"])).contains("mp4, mkv, avi, mov, webm"));
}

#[test]
fn info_reports_this_builds_abilities_and_a_working_cpu() {
    let o = gdt(&["info", "--json", "--smoke"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ffmpeg"], serde_json::Value::Bool(cfg!(feature = "ffmpeg")));
    assert!(v["torch"]["cpu_threads"].as_i64().unwrap() >= 1);
    let cpu = &v["smoke"][0];
    assert_eq!(cpu["device"], "Cpu");
    assert!(cpu["max_abs_error"].as_f64().unwrap() < 1e-3);
    // This machine has no GPU: asking for one must fail plainly, not pretend.
    if v["torch"]["cuda_available"] == false {
        let o = gdt(&["info", "--require-cuda"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("CUDA is not available"));
    }
}

#[test]
fn synth_rejects_bad_settings_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let o = gdt(&["synth", "-o", out.to_str().unwrap(), "--classes", "99"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("classes"), "{}", stderr(&o));
    let o = gdt(&["synth", "-o", out.to_str().unwrap(), "--resolutions", "640by360"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("WIDTHxHEIGHT"), "{}", stderr(&o));
}

#[cfg(not(feature = "ffmpeg"))]
#[test]
fn synth_without_ffmpeg_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let o = gdt(&["synth", "-o", out.to_str().unwrap(), "--count", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("without FFmpeg"), "{}", stderr(&o));
    assert!(!out.join("manifest.csv").exists());
}

#[cfg(feature = "ffmpeg")]
mod with_ffmpeg {
    use super::*;
    use gdt_pipeline::source::decode::probe;
    use std::path::Path;
    use std::process::Output;

    fn synth(out: &Path, jobs: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "synth",
            "-o",
            out.to_str().unwrap(),
            "--count",
            "6",
            "--seed",
            "42",
            "--max-seconds",
            "3",
            "--containers",
            "mp4,mkv,avi",
            "--vfr",
            "0.5",
            "-j",
            jobs,
        ];
        args.extend_from_slice(extra);
        gdt(&args)
    }

    #[test]
    fn synth_writes_decodable_files_a_manifest_and_a_description() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("corpus");
        let o = synth(&out, "2", &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("Wrote 6 synthetic videos"), "{}", stdout(&o));

        let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        let rows: Vec<Vec<&str>> = manifest.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().any(|r| r[2] == "test") && rows.iter().any(|r| r[2] == "train"));
        let description: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("synth.json")).unwrap()).unwrap();
        for (row, v) in rows.iter().zip(description["videos"].as_array().unwrap()) {
            assert_eq!(row[0], v["file"]);
            assert_eq!(row[1], v["label"]);
            let info = probe(&out.join(row[0])).unwrap();
            let video = info.video.expect("video stream");
            assert_eq!(video.width as u64, v["spec"]["width"].as_u64().unwrap());
            let audio = info.audio.expect("audio stream");
            assert_eq!(
                audio.sample_rate as u64,
                v["spec"]["sample_rate"].as_u64().unwrap()
            );
            let duration = v["spec"]["duration_s"].as_f64().unwrap();
            assert!((info.duration_s.unwrap() - duration).abs() < 0.15, "{}", row[0]);
            assert!(v["impacts"].as_u64().unwrap() > 0);
        }
        // Nothing half-written is left behind.
        assert!(std::fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
    }

    #[test]
    fn synth_is_deterministic_across_job_counts_and_refuses_to_mix_corpora() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        assert!(synth(&a, "1", &[]).status.success());
        assert!(synth(&b, "2", &[]).status.success());
        // Every file, and in synth.json every field of every video, named where they differ.
        let names = |dir: &Path| -> Vec<String> {
            let mut n: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&a), names(&b));
        assert_eq!(names(&a).len(), 8, "6 videos, the manifest and synth.json");
        let json = |dir: &Path| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(dir.join("synth.json")).unwrap()).unwrap()
        };
        let (ja, jb) = (json(&a), json(&b));
        for (va, vb) in ja["videos"]
            .as_array()
            .unwrap()
            .iter()
            .zip(jb["videos"].as_array().unwrap())
        {
            for (field, x) in va.as_object().unwrap() {
                assert_eq!(x, &vb[field], "synth.json: {} differs in `{field}`", va["file"]);
            }
        }
        assert_eq!(ja, jb, "synth.json differs outside its videos");
        for name in names(&a) {
            assert!(
                std::fs::read(a.join(&name)).unwrap() == std::fs::read(b.join(&name)).unwrap(),
                "{name} differs between -j 1 and -j 2"
            );
        }
        let again = synth(&a, "2", &[]);
        assert_eq!(again.status.code(), Some(1));
        assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
        let forced = synth(&a, "2", &["--force"]);
        assert!(forced.status.success(), "{}", stderr(&forced));
    }
}
