//! The packer end to end on real files, good and bad: what is stored, what is skipped and
//! why, determinism across job counts, and resuming after an interruption.
#![cfg(feature = "ffmpeg")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gdt_formats::atomic_file::temp_path;
use gdt_formats::dataset::DatasetManifest;
use gdt_formats::field::frames::ChunkDecoder;
use gdt_formats::field::meta::AudioOrigin;
use gdt_formats::params::PackParams;
use gdt_formats::shard::Shard;
use gdt_pipeline::pack::{
    list_inputs, pack, Outcome, PackConfig, PackError, Progress, Quiet, Status, STATE_FILE,
};
use gdt_pipeline::source::spectrogram::MelSpectrogram;
use gdt_pipeline::source::window::{decode_windows, WindowOptions};
use gdt_pipeline::synth::encode::{write_video, write_video_with, EncodeOptions};
use gdt_pipeline::synth::{manifest_csv, plan, Container, CorpusConfig, Scenario, Scene};

fn params() -> PackParams {
    // Small and quick, same code paths.
    PackParams {
        short_side: 64,
        max_long_side: 96,
        max_seconds: 3.0,
        mels: 40,
        ..PackParams::default()
    }
}

fn scenario(seed: u64, duration_s: f64) -> Scenario {
    common::scenario(seed, 25, false, duration_s, 48_000, 2)
}

/// Six good videos plus one of each kind of bad input, listed in a manifest.
fn corpus(dir: &Path) -> PathBuf {
    let videos = plan(&CorpusConfig {
        count: 6,
        seed: 5,
        classes: 3,
        min_duration_s: 2.0,
        max_duration_s: 4.0,
        containers: vec![Container::Mp4, Container::Mkv, Container::Avi],
        vfr_fraction: 0.5,
        ..CorpusConfig::default()
    });
    for v in &videos {
        write_video(&dir.join(&v.file_name), v.container, &Scene::new(&v.scenario)).unwrap();
    }
    let mut csv = manifest_csv(&videos);
    std::fs::write(dir.join("empty.mp4"), b"").unwrap();
    std::fs::write(dir.join("text.mp4"), b"this is not a video\n".repeat(100)).unwrap();
    let good = std::fs::read(dir.join(&videos[0].file_name)).unwrap();
    std::fs::write(dir.join("truncated.mp4"), &good[..good.len() * 2 / 5]).unwrap();
    let opts = |no_audio, audio_seconds| EncodeOptions {
        no_audio,
        audio_seconds,
        ..EncodeOptions::default()
    };
    write_video_with(
        &dir.join("noaudio.mp4"),
        Container::Mp4,
        &Scene::new(&scenario(1, 2.0)),
        &opts(true, None),
    )
    .unwrap();
    write_video_with(
        &dir.join("shortaudio.mkv"),
        Container::Mkv,
        &Scene::new(&scenario(2, 3.0)),
        &opts(false, Some(1.5)),
    )
    .unwrap();
    write_video(
        &dir.join("tiny.mp4"),
        Container::Mp4,
        &Scene::new(&scenario(3, 0.6)),
    )
    .unwrap();
    for (f, label) in [
        ("empty.mp4", "red-circle"),
        ("text.mp4", "red-circle"),
        ("truncated.mp4", "red-circle"),
        ("noaudio.mp4", "blue-square"),
        ("shortaudio.mkv", "blue-square"),
        ("tiny.mp4", "blue-square"),
        ("missing.mp4", "blue-square"),
    ] {
        csv.push_str(&format!("{f},{label},train\n"));
    }
    let manifest = dir.join("manifest.csv");
    std::fs::write(&manifest, csv).unwrap();
    manifest
}

fn config(out: &Path, jobs: usize) -> PackConfig {
    PackConfig {
        params: params(),
        jobs,
        ..PackConfig::new(out.to_path_buf())
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn report(dir: &Path) -> Vec<Outcome> {
    std::fs::read_to_string(dir.join("pack-report.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn packs_good_inputs_exactly_and_skips_bad_ones_with_reasons() {
    let src = tempfile::tempdir().unwrap();
    let manifest = corpus(src.path());
    let inputs = list_inputs(&manifest).unwrap();
    let out = tempfile::tempdir().unwrap();
    let ds = out.path().join("ds");
    let summary = pack(&inputs, &config(&ds, 2), &Quiet, &AtomicBool::new(false)).unwrap();
    assert!(!summary.already_complete);

    let outcomes = report(&ds);
    assert_eq!(outcomes.len(), inputs.len());
    let by_input = |name: &str| outcomes.iter().find(|o| o.input == name).unwrap().clone();
    for (name, reason) in [
        ("empty.mp4", "empty file"),
        ("text.mp4", "not a readable video file"),
        ("truncated.mp4", "not a readable video file"),
        ("noaudio.mp4", "no audio stream"),
        ("tiny.mp4", "shorter than one clip"),
        ("missing.mp4", "cannot read file"),
    ] {
        let o = by_input(name);
        assert_eq!(
            (o.status, o.reason.as_deref()),
            (Status::Skipped, Some(reason)),
            "{name}: {:?}",
            o.detail
        );
        assert!(
            o.detail.as_ref().unwrap().contains(name),
            "the detail names the file: {:?}",
            o.detail
        );
    }
    // Audio shorter than video: the window ends with the audio (1.5 s = 45 frames).
    let short = by_input("shortaudio.mkv");
    assert_eq!(short.status, Status::Packed);
    assert!(
        (44..=46).contains(&short.counts.frames),
        "{} frames",
        short.counts.frames
    );

    let m = DatasetManifest::load(&ds).unwrap();
    assert_eq!(m.totals.inputs, inputs.len());
    assert_eq!(m.totals.packed, 7);
    assert_eq!(m.totals.skipped, 6);
    assert_eq!(m.skipped.values().sum::<usize>(), 6);
    assert_eq!(m.labels, vec!["blue-square", "green-triangle", "red-circle"]);
    assert_eq!(
        m.totals.stored_bytes,
        m.shards.iter().map(|s| s.bytes).sum::<u64>()
    );

    // Every record equals what the decoder produced: frames bit-exact, spectrogram to f16.
    let mels = MelSpectrogram::new(&params());
    let mut dec = ChunkDecoder::new().unwrap();
    let mut frames = Vec::new();
    let mut seen = 0;
    for s in &m.shards {
        let shard = Shard::open(&ds.join(&s.file)).unwrap();
        assert!(shard.verify().unwrap().is_empty());
        for r in 0..shard.len() {
            let rec = shard.record(r).unwrap();
            let meta = rec.meta().unwrap();
            let input = inputs.iter().find(|i| i.source == meta.source).unwrap();
            let want = decode_windows(&input.path, &params(), &WindowOptions::default()).unwrap();
            let w = &want.windows[0];
            assert_eq!(rec.entry().frames as usize, w.frame_count);
            rec.read_frames(&mut dec, 0, w.frame_count, &mut frames).unwrap();
            assert!(frames == w.frames, "{}: frames differ", meta.source);
            let (mel, n) = mels.compute(w.audio.as_ref().unwrap());
            assert_eq!(rec.entry().mel_frames as usize, n);
            let stored = rec.spectrogram().unwrap();
            assert!(stored
                .iter()
                .zip(&mel)
                .all(|(a, b)| (a - b).abs() <= b.abs() / 512.0 + 1e-3));
            assert_eq!(
                meta.label_index.map(|i| m.labels[i as usize].as_str()),
                input.label.as_deref()
            );
            assert_eq!(meta.audio, AudioOrigin::Decoded);
            seen += 1;
        }
    }
    assert_eq!(seen, 7);
}

#[test]
fn output_is_byte_identical_for_any_job_count() {
    let src = tempfile::tempdir().unwrap();
    let inputs = list_inputs(&corpus(src.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("a"), out.path().join("b"));
    let small_shards = |d: &Path, j| PackConfig {
        shard_size: 200_000,
        ..config(d, j)
    };
    pack(&inputs, &small_shards(&a, 1), &Quiet, &AtomicBool::new(false)).unwrap();
    pack(&inputs, &small_shards(&b, 3), &Quiet, &AtomicBool::new(false)).unwrap();
    let (fa, fb) = (files(&a), files(&b));
    assert!(
        fa.len() > 4,
        "several shards expected: {:?}",
        fa.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        fb.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{name} differs between -j 1 and -j 3");
    }
}

/// Raises the cancel flag after `after` inputs, as Ctrl-C would.
struct StopAfter<'a> {
    after: usize,
    seen: AtomicUsize,
    cancel: &'a AtomicBool,
}

impl Progress for StopAfter<'_> {
    fn input_done(&self, _: &Outcome) {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn interrupted_then_resumed_equals_uninterrupted_and_settings_cannot_change() {
    let src = tempfile::tempdir().unwrap();
    let inputs = list_inputs(&corpus(src.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (whole, resumed) = (out.path().join("whole"), out.path().join("resumed"));
    let cfg = |d: &Path| PackConfig {
        shard_size: 200_000,
        ..config(d, 2)
    };
    pack(&inputs, &cfg(&whole), &Quiet, &AtomicBool::new(false)).unwrap();

    for stop in [3, 8] {
        let cancel = AtomicBool::new(false);
        let progress = StopAfter {
            after: stop,
            seen: AtomicUsize::new(0),
            cancel: &cancel,
        };
        let err = pack(&inputs, &cfg(&resumed), &progress, &cancel).unwrap_err();
        assert!(matches!(err, PackError::Interrupted), "{err}");
        assert!(err.to_string().contains("rerun the same command"));
        assert!(
            !resumed.join("dataset.json").exists(),
            "an interrupted pack must not look complete"
        );
    }
    // A different setting is refused, naming what differs.
    let other = PackConfig {
        params: PackParams { mels: 64, ..params() },
        ..cfg(&resumed)
    };
    let err = pack(&inputs, &other, &Quiet, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("different packing parameters (mels: 40 then, 64 now)") && err.contains("--force"),
        "{err}"
    );

    // So is a pack an older gdt started: the same settings decoded other bytes then.
    let state_path = resumed.join(".pack-state.json");
    let state = std::fs::read_to_string(&state_path).unwrap();
    let mut old: serde_json::Value = serde_json::from_str(&state).unwrap();
    old["fingerprint"].as_object_mut().unwrap().remove("revision");
    std::fs::write(&state_path, old.to_string()).unwrap();
    let err = pack(&inputs, &cfg(&resumed), &Quiet, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("different gdt version (packer revision 0 then"),
        "{err}"
    );
    std::fs::write(&state_path, state).unwrap();

    let summary = pack(&inputs, &cfg(&resumed), &Quiet, &AtomicBool::new(false)).unwrap();
    assert!(
        summary.processed_now < inputs.len(),
        "the resume redid everything"
    );
    assert_eq!(files(&whole), files(&resumed));

    // Rerunning a finished pack does nothing; --force starts over and gives the same bytes.
    assert!(
        pack(&inputs, &cfg(&resumed), &Quiet, &AtomicBool::new(false))
            .unwrap()
            .already_complete
    );
    pack(
        &inputs,
        &PackConfig {
            force: true,
            ..cfg(&resumed)
        },
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(files(&whole), files(&resumed));
}

#[test]
fn a_pack_killed_before_its_first_shard_resumes_and_strangers_temporaries_are_refused() {
    let src = tempfile::tempdir().unwrap();
    let inputs = list_inputs(&corpus(src.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let whole = out.path().join("whole");
    pack(&inputs, &config(&whole, 1), &Quiet, &AtomicBool::new(false)).unwrap();

    // Stopped before any input: the state is already there, so the directory is ours.
    let early = out.path().join("early");
    let err = pack(&inputs, &config(&early, 1), &Quiet, &AtomicBool::new(true)).unwrap_err();
    assert!(matches!(err, PackError::Interrupted), "{err}");
    assert!(early.join(STATE_FILE).exists(), "no state to resume from");
    pack(&inputs, &config(&early, 1), &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!(files(&whole), files(&early));

    // Killed while writing its first state file and first shard: only our temporaries.
    let killed = out.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let stray = [
        (temp_path(&killed.join(STATE_FILE)), &b"{\"finger"[..]),
        (temp_path(&killed.join("shard-00000.gdt")), &b"GDTS partial"[..]),
    ];
    for (path, bytes) in &stray {
        std::fs::write(path, bytes).unwrap();
    }
    pack(&inputs, &config(&killed, 1), &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!(files(&whole), files(&killed));
    assert!(stray.iter().all(|(path, _)| !path.exists()), "temporaries left");

    // A temporary that is not ours still marks the directory as someone else's.
    let stranger = out.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join(".draft.tex.tmp"), b"precious").unwrap();
    let err = pack(&inputs, &config(&stranger, 1), &Quiet, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read(stranger.join(".draft.tex.tmp")).unwrap(),
        b"precious"
    );
}

#[test]
fn silence_policy_packs_videos_without_audio_and_unknown_directories_are_left_alone() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("noaudio.mp4");
    write_video_with(
        &path,
        Container::Mp4,
        &Scene::new(&scenario(9, 2.0)),
        &EncodeOptions {
            no_audio: true,
            ..EncodeOptions::default()
        },
    )
    .unwrap();
    let inputs = list_inputs(src.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let ds = out.path().join("ds");
    let cfg = PackConfig {
        silence_for_missing_audio: true,
        ..config(&ds, 1)
    };
    pack(&inputs, &cfg, &Quiet, &AtomicBool::new(false)).unwrap();
    let m = DatasetManifest::load(&ds).unwrap();
    let shard = Shard::open(&ds.join(&m.shards[0].file)).unwrap();
    assert_eq!(
        shard.record(0).unwrap().meta().unwrap().audio,
        AudioOrigin::Silence
    );

    let stranger = out.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join("thesis.tex"), b"precious").unwrap();
    let err = pack(&inputs, &config(&stranger, 1), &Quiet, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
    pack(
        &inputs,
        &PackConfig {
            force: true,
            ..config(&stranger, 1)
        },
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(stranger.join("thesis.tex")).unwrap(),
        b"precious",
        "--force removes only gdt's files"
    );
}
