//! The loader over a synthetic packed dataset (no FFmpeg needed): determinism across thread
//! counts, exact resume, rank shares of global batches, split filters, reversal, audio-visual alignment, damage handling,
//! shutdown.

use std::path::Path;

use gdt_formats::field::frames::ChunkDecoder;
use gdt_formats::params::PackParams;
use gdt_pipeline::load::augment::{crop_resize, AudioAugment, ResizeScratch, VideoAugment};
use gdt_pipeline::load::batch::Batch;
use gdt_pipeline::load::loader::{LoadError, Loader, LoaderBuilder};
use gdt_pipeline::synth::packed::{packed_scenario, write_packed, SmallDataset};
use gdt_pipeline::synth::{plan, CorpusConfig, Scene, FLASH_THRESHOLD};

fn params() -> PackParams {
    PackParams {
        mels: 40,
        max_seconds: 4.0,
        ..PackParams::default()
    }
}

fn dataset(dir: &Path, count: usize, shard_size: u64) {
    SmallDataset {
        count,
        seed: 3,
        max_seconds: 4.0,
        shard_size,
        ..SmallDataset::default()
    }
    .write(dir)
    .unwrap();
}

/// Everything a batch carries, for equality checks: epoch, index, records, video, audio
/// bits, view metadata.
type Fingerprint = (u64, usize, usize, Vec<u8>, Vec<u32>, String);

fn fingerprint(b: &Batch) -> Fingerprint {
    let audio: Vec<u32> = b.audio().iter().map(|v| v.to_bits()).collect();
    (
        b.epoch,
        b.index,
        b.records,
        b.video().to_vec(),
        audio,
        format!("{:?}", b.views()),
    )
}

fn run(dir: &Path, threads: usize, epochs: u64) -> Vec<Fingerprint> {
    LoaderBuilder::new(dir)
        .batch_size(3)
        .threads(threads)
        .seed(9)
        .epochs(epochs)
        .build()
        .unwrap()
        .map(|b| fingerprint(&b.unwrap()))
        .collect()
}

#[test]
fn batches_are_bit_identical_for_any_thread_count_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 10, 1 << 30);
    let one = run(dir.path(), 1, 2);
    assert_eq!(
        one.len(),
        6,
        "10 records, batch 3, drop_last: 3 batches x 2 epochs"
    );
    let order: Vec<(u64, usize)> = one.iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(order, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    assert_eq!(one, run(dir.path(), 3, 2));
    assert_eq!(one, run(dir.path(), 1, 2), "and across runs");
    // Shapes as documented.
    let mut l = LoaderBuilder::new(dir.path())
        .batch_size(3)
        .threads(1)
        .build()
        .unwrap();
    let b = l.next().unwrap().unwrap();
    assert_eq!(b.video().len(), 3 * 4 * 3 * 30 * 112 * 112);
    assert_eq!(b.audio().len(), 3 * 4 * 40 * 99);
    assert_eq!(b.views().len(), 12);
    assert_eq!(b.views().iter().filter(|v| v.reversed).count(), 6);
}

#[test]
fn a_resumed_loader_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 10, 1 << 30);
    let all = run(dir.path(), 2, 2);
    let mut first = LoaderBuilder::new(dir.path())
        .batch_size(3)
        .threads(2)
        .seed(9)
        .epochs(2)
        .build()
        .unwrap();
    for _ in 0..2 {
        first.next().unwrap().unwrap();
    }
    let state = first.state();
    assert_eq!((state.epoch, state.batch), (0, 2));
    drop(first);
    let rest: Vec<_> = LoaderBuilder::new(dir.path())
        .batch_size(3)
        .threads(2)
        .seed(9)
        .resume(state)
        .epochs(2)
        .build()
        .unwrap()
        .map(|b| fingerprint(&b.unwrap()))
        .collect();
    // From (0, 2), two epochs' worth of batches remain up to epoch 1 included... and beyond:
    // the resumed loader runs `epochs` from its start epoch.
    assert_eq!(&rest[..4], &all[2..]);
}

#[test]
fn ranks_see_disjoint_records_and_the_same_number_of_batches() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 13, 1 << 30);
    let records = |rank| {
        let l = LoaderBuilder::new(dir.path())
            .batch_size(2)
            .threads(1)
            .rank(rank, 2)
            .build()
            .unwrap();
        let n = l.batches_per_epoch();
        let r: Vec<u32> = l
            .flat_map(|b| b.unwrap().views().iter().map(|v| v.record).collect::<Vec<_>>())
            .collect();
        (n, r)
    };
    let ((n0, a), (n1, b)) = (records(0), records(1));
    assert_eq!((n0, n1), (3, 3));
    assert!(a.iter().all(|r| !b.contains(r)));
}

/// Elastic determinism: 1 rank with batch 4 and 2 ranks with batch 2 serve the same views,
/// bit for bit, at every global step, so a run may change its world size and keep its data.
#[test]
fn ranks_together_serve_what_one_process_serves_with_their_global_batch() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 13, 1 << 30);
    let batches = |rank: usize, world: usize| -> Vec<Batch> {
        LoaderBuilder::new(dir.path())
            .batch_size(4 / world)
            .threads(2)
            .seed(5)
            .epochs(2)
            .rank(rank, world)
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
    };
    let one = batches(0, 1);
    let (r0, r1) = (batches(0, 2), batches(1, 2));
    assert_eq!(one.len(), 6, "13 records: 3 global batches of 4 per epoch");
    assert_eq!((r0.len(), r1.len()), (one.len(), one.len()));
    for (k, whole) in one.iter().enumerate() {
        let (a, b) = (&r0[k], &r1[k]);
        assert_eq!((a.epoch, a.index), (whole.epoch, whole.index));
        let views: Vec<String> = a
            .views()
            .iter()
            .chain(b.views())
            .map(|v| format!("{v:?}"))
            .collect();
        let whole_views: Vec<String> = whole.views().iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(views, whole_views, "global batch {k}");
        assert!(
            [a.video(), b.video()].concat() == whole.video(),
            "video of global batch {k}"
        );
        assert!(
            [a.audio(), b.audio()].concat() == whole.audio(),
            "audio of global batch {k}"
        );
    }
}

#[test]
fn a_split_filter_serves_each_of_its_records_once_per_epoch_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 12, 1 << 30);
    let ds = gdt_formats::dataset::Dataset::open(dir.path()).unwrap();
    let split_of = |g: usize| {
        let (s, r) = ds.locate(g).unwrap();
        ds.shards[s].record(r).unwrap().meta().unwrap().split.unwrap()
    };
    let train: Vec<u32> = (0..ds.len() as u32)
        .filter(|&g| split_of(g as usize) == "train")
        .collect();
    assert!(
        !train.is_empty() && train.len() < ds.len(),
        "the corpus has both splits"
    );
    let served = |splits: &[&str]| -> Vec<Vec<u32>> {
        LoaderBuilder::new(dir.path())
            .batch_size(2)
            .threads(2)
            .epochs(2)
            .splits(splits.iter().map(|s| s.to_string()).collect())
            .build()
            .unwrap()
            .fold(vec![Vec::new(); 2], |mut epochs, b| {
                let b = b.unwrap();
                let e = &mut epochs[b.epoch as usize];
                e.extend(b.views().iter().map(|v| v.record));
                e.dedup();
                epochs
            })
    };
    for mut epoch in served(&["train"]) {
        epoch.sort_unstable();
        assert_eq!(epoch, train);
    }
    // Several splits, and no filter at all: every record.
    for splits in [&["train", "test"][..], &[]] {
        for mut epoch in served(splits) {
            epoch.sort_unstable();
            assert_eq!(epoch, (0..ds.len() as u32).collect::<Vec<_>>(), "{splits:?}");
        }
    }
    let err = LoaderBuilder::new(dir.path())
        .splits(vec!["unlabelled".into()])
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no record of split unlabelled"), "{err}");
}

#[test]
fn reversed_view_is_the_time_flip_of_the_forward_view_without_augmentation() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 4, 1 << 30);
    let mut l = LoaderBuilder::new(dir.path())
        .batch_size(2)
        .threads(1)
        .video_augment(VideoAugment::off(112))
        .audio_augment(AudioAugment::off())
        .build()
        .unwrap();
    let b = l.next().unwrap().unwrap();
    let s = b.shape;
    let (vpv, apv) = (s.video_per_view(), s.audio_per_view());
    let plane = s.crop * s.crop;
    for view in (0..b.views().len()).step_by(2) {
        let (fwd, rev) = (&b.views()[view], &b.views()[view + 1]);
        assert!(!fwd.reversed && rev.reversed && fwd.start_frame == rev.start_frame);
        let fv = &b.video()[view * vpv..(view + 1) * vpv];
        let rv = &b.video()[(view + 1) * vpv..(view + 2) * vpv];
        for c in 0..3 {
            for k in 0..s.clip {
                let a = &fv[(c * s.clip + k) * plane..(c * s.clip + k + 1) * plane];
                let z = &rv[(c * s.clip + s.clip - 1 - k) * plane..(c * s.clip + s.clip - k) * plane];
                assert_eq!(a, z);
            }
        }
        let fa = &b.audio()[view * apv..(view + 1) * apv];
        let ra = &b.audio()[(view + 1) * apv..(view + 2) * apv];
        for m in 0..s.mels {
            for j in 0..s.audio_frames {
                assert_eq!(
                    fa[m * s.audio_frames + j],
                    ra[m * s.audio_frames + s.audio_frames - 1 - j]
                );
            }
        }
    }
}

#[test]
fn every_view_is_its_recorded_draw_applied_to_the_stored_clip() {
    // Views are written into slots of pooled buffers that keep their old bytes; each must
    // be exactly its own draw applied to its own clip, colour jitter included.
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 5, 1 << 30);
    let mut l = LoaderBuilder::new(dir.path())
        .batch_size(3)
        .threads(2)
        .seed(4)
        .video_augment(VideoAugment {
            color_jitter: Some(0.4),
            ..VideoAugment::default()
        })
        .build()
        .unwrap();
    let b = l.next().unwrap().unwrap();
    assert_eq!(b.views().len(), 12);
    assert_views_are_their_draws(&l, &b);
}

/// Recomputes every view of `b` from the stored clip (`read_frames` + `crop_resize`) and
/// spectrogram with the draws the batch reports, and checks the buffers hold exactly those
/// views.
fn assert_views_are_their_draws(l: &Loader, b: &Batch) {
    let s = b.shape;
    let (vpv, apv) = (s.video_per_view(), s.audio_per_view());
    assert_eq!(b.views().len(), b.records * s.views);
    assert_eq!(
        (b.video().len(), b.audio().len()),
        (b.views().len() * vpv, b.views().len() * apv)
    );
    let (mut dec, mut frames, mut mel) = (ChunkDecoder::new().unwrap(), vec![], vec![]);
    let mut scratch = ResizeScratch::default();
    let (mut video, mut audio) = (vec![0u8; vpv], vec![0f32; apv]);
    let (ds, aug) = (l.dataset(), AudioAugment::default());
    for (i, v) in b.views().iter().enumerate() {
        let (si, ri) = ds.locate(v.record as usize).unwrap();
        let rec = ds.shards[si].record(ri).unwrap();
        rec.read_frames(&mut dec, v.start_frame as usize, s.clip, &mut frames)
            .unwrap();
        crop_resize(
            &frames,
            rec.shape(),
            s.crop as u32,
            &v.video,
            v.reversed,
            &mut scratch,
            &mut video,
        );
        assert!(b.video()[i * vpv..(i + 1) * vpv] == video[..], "view {i}: video");
        rec.spectrogram_into(&mut dec, &mut mel).unwrap();
        let e = rec.entry();
        aug.apply(
            &mel,
            e.mel_frames as usize,
            e.mels as usize,
            v.audio_start as usize,
            s.audio_frames,
            v.reversed,
            &v.audio,
            &mut audio,
        );
        assert!(b.audio()[i * apv..(i + 1) * apv] == audio[..], "view {i}: audio");
    }
}

#[test]
fn every_view_keeps_picture_and_sound_aligned_with_the_generators_impacts() {
    let dir = tempfile::tempdir().unwrap();
    let config = CorpusConfig {
        count: 8,
        seed: 3,
        min_duration_s: 2.0,
        max_duration_s: 4.0,
        ..CorpusConfig::default()
    };
    let videos = plan(&config);
    write_packed(dir.path(), &videos, &params(), 1 << 30).unwrap();
    let l = LoaderBuilder::new(dir.path())
        .batch_size(4)
        .threads(2)
        .video_augment(VideoAugment {
            crop: 112,
            scale_min: 128.0,
            scale_max: 160.0,
            flip_probability: 0.5,
            color_jitter: None,
        })
        .audio_augment(AudioAugment::off())
        .build()
        .unwrap();
    let (mut flashes_seen, mut onsets_checked) = (0, 0);
    for b in l {
        let b = b.unwrap();
        let s = b.shape;
        let plane = s.crop * s.crop;
        for (v, meta) in b.views().iter().enumerate() {
            let scene = Scene::new(&packed_scenario(
                &videos[meta.record as usize].scenario,
                &params(),
            ));
            let impacts: Vec<usize> = scene.impacts().iter().map(|i| i.frame).collect();
            let video = &b.video()[v * s.video_per_view()..(v + 1) * s.video_per_view()];
            let audio = &b.audio()[v * s.audio_per_view()..(v + 1) * s.audio_per_view()];
            // Clip frame k shows record frame start + k, or start + 29 - k when reversed.
            let record_frame =
                |k: usize| meta.start_frame as usize + if meta.reversed { s.clip - 1 - k } else { k };
            // Picture: every visible flash is an impact frame of the generator.
            let t = FLASH_THRESHOLD - 5;
            for k in 0..s.clip {
                let white = (0..plane)
                    .filter(|&i| (0..3).all(|c| video[(c * s.clip + k) * plane + i] >= t))
                    .count();
                if white >= 4 {
                    assert!(
                        impacts.contains(&record_frame(k)),
                        "view {v}: flash at clip frame {k} is no impact"
                    );
                    flashes_seen += 1;
                }
            }
            if meta.reversed {
                continue;
            }
            // Sound: an impact with no other in the 0.3 s before it starts with a broadband
            // click at spectrogram frame j = round(k * 100 / 30). Windows are 20 ms long and
            // start every 10 ms, so the rise shows in frames j-2..=j+1 against frame j-4.
            let jump = |j: usize, from: usize| {
                (0..s.mels)
                    .filter(|&m| {
                        (audio[m * s.audio_frames + j] - audio[m * s.audio_frames + from]) * 17.89 > 2.0
                    })
                    .count()
            };
            for &f in &impacts {
                let isolated = !impacts.iter().any(|&o| o < f && f - o <= 9);
                let Some(k) = f.checked_sub(meta.start_frame as usize).filter(|&k| k < s.clip) else {
                    continue;
                };
                let j = (k as f64 * 100.0 / 30.0).round() as usize;
                if !isolated || j < 4 || j + 2 >= s.audio_frames {
                    continue;
                }
                let bands = (j - 2..=j + 1).map(|x| jump(x, j - 4)).max().unwrap();
                assert!(
                    bands * 4 >= s.mels,
                    "view {v}: impact at clip frame {k}, only {bands} of {} bands rise",
                    s.mels
                );
                onsets_checked += 1;
            }
        }
    }
    assert!(
        flashes_seen >= 3 && onsets_checked >= 3,
        "too little checked: {flashes_seen} flashes, {onsets_checked} onsets"
    );
}

#[test]
fn damaged_records_are_skipped_and_named_or_fail_the_batch_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 6, 1 << 30);
    let shard = dir.path().join("shard-00000.gdt");
    // Damage record 2's spectrogram, which every view of it reads.
    let (offset, len) = gdt_formats::shard::Shard::open(&shard)
        .unwrap()
        .record(2)
        .unwrap()
        .blob_location(1);
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[offset as usize + len as usize / 2] ^= 0xff;
    std::fs::write(&shard, &bytes).unwrap();

    let l = LoaderBuilder::new(dir.path())
        .batch_size(6)
        .threads(2)
        .build()
        .unwrap();
    let skipped_before = l.skipped().len();
    let mut it = l;
    let b = it.next().unwrap().unwrap();
    assert_eq!(skipped_before, 0);
    let skipped = it.skipped();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(b.records, 5);
    assert_views_are_their_draws(&it, &b);
    assert!(
        skipped[0].error.contains("shard-00000.gdt") && skipped[0].error.contains("checksum"),
        "{}",
        skipped[0].error
    );

    let mut strict = LoaderBuilder::new(dir.path())
        .batch_size(6)
        .threads(2)
        .strict(true)
        .build()
        .unwrap();
    match strict.next().unwrap() {
        Err(e @ LoadError::Record { .. }) | Err(e @ LoadError::Format(_)) => {
            assert!(e.to_string().contains("shard-00000.gdt"), "{e}")
        }
        other => panic!("strict mode must fail the batch, got {other:?}"),
    }
}

#[test]
fn dropping_a_loader_mid_epoch_stops_its_threads() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 6, 1 << 30);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut l = LoaderBuilder::new(dir.path())
            .batch_size(2)
            .threads(2)
            .epochs(1000)
            .prefetch(2)
            .build()
            .unwrap();
        l.next().unwrap().unwrap();
        drop(l);
        tx.send(()).unwrap();
    });
    // Liveness, not speed: a hung join would never answer.
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("loader did not shut down");
}

#[test]
fn bad_settings_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 2, 1 << 30);
    let err = LoaderBuilder::new(dir.path())
        .batch_size(3)
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fewer records"), "{err}");
    let err = LoaderBuilder::new(dir.path())
        .rank(2, 2)
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("rank"), "{err}");
    let err = LoaderBuilder::new("/nonexistent")
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/dataset.json"), "{err}");
}

/// A clip length other than 30 frames gives a spectrogram slice whose rounded start and
/// ceil-rounded length can reach past a record's last spectrogram frame when the clip ends at
/// the record's end. Such a clip is valid and must be served (slice ending at the record's
/// end), not reported as damaged. 20 epochs make the last start positions certain to be drawn.
#[test]
fn clips_ending_at_the_record_end_are_served_for_any_clip_length() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 8, 1 << 30);
    for clip in [16, 25] {
        let mut loader = LoaderBuilder::new(dir.path())
            .batch_size(4)
            .clip(clip)
            .threads(2)
            .epochs(20)
            .build()
            .unwrap();
        let mut moved = 0;
        for b in loader.by_ref() {
            let b = b.unwrap();
            assert_eq!(b.records, 4, "clip {clip}: a record was skipped");
            for v in b.views() {
                // 100 spectrogram frames per second, 30 video frames per second.
                let aligned = (v.start_frame as f64 * 10.0 / 3.0).round() as i64;
                let off = aligned - v.audio_start as i64;
                assert!(
                    (0..=2).contains(&off),
                    "clip {clip}: audio slice {off} frames off"
                );
                moved += (off > 0) as usize;
            }
        }
        assert!(loader.skipped().is_empty(), "clip {clip}: {:?}", loader.skipped());
        assert!(moved > 0, "clip {clip}: no clip ended at a record's end");
    }
}

/// Several loaders over the same dataset at once (one per thread, each with its own worker
/// threads, all mapping the same shards) give exactly the batches one loader gives alone.
#[test]
fn concurrent_loaders_over_one_dataset_agree_with_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 9, 1 << 20);
    let alone = run(dir.path(), 2, 2);
    let path = dir.path().to_path_buf();
    let together: Vec<Vec<Fingerprint>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let path = &path;
                s.spawn(move || run(path, 1 + i % 3, 2))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, batches) in together.iter().enumerate() {
        assert!(
            *batches == alone,
            "loader {i} running beside three others gave different batches"
        );
    }
}

/// Set in the child processes of the test below: the dataset to load and the thread count.
const CHILD_DATASET: &str = "GDT_TEST_LOADER_CHILD_DATASET";
const CHILD_THREADS: &str = "GDT_TEST_LOADER_CHILD_THREADS";

/// One line per batch, as a child process prints it: a 64-bit digest of the fingerprint.
fn digest_lines(batches: &[Fingerprint]) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    batches
        .iter()
        .map(|fp| {
            // `DefaultHasher::new()` has fixed keys: the same bytes hash alike in every process.
            let mut h = std::hash::DefaultHasher::new();
            fp.hash(&mut h);
            format!("batch-digest {} {:016x}", fp.1, h.finish())
        })
        .collect()
}

/// Loaders in separate processes over the same dataset at once (each mapping the same
/// shards) give exactly the batches one loader gives alone. The test binary runs itself as the
/// child processes: with `CHILD_DATASET` set, this test only loads and prints digests.
#[test]
fn loaders_in_separate_processes_agree_with_one_alone() {
    if let Ok(path) = std::env::var(CHILD_DATASET) {
        let threads = std::env::var(CHILD_THREADS).unwrap().parse().unwrap();
        for line in digest_lines(&run(Path::new(&path), threads, 2)) {
            println!("{line}");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 9, 1 << 20);
    let alone = digest_lines(&run(dir.path(), 2, 2));
    assert!(alone.len() >= 6, "two epochs of 9 records in batches of 3");
    let me = std::env::current_exe().unwrap();
    // Every child is started before any is waited for, so they load at the same time.
    let children: Vec<_> = (0..3)
        .map(|i| {
            std::process::Command::new(&me)
                .args([
                    "--exact",
                    "loaders_in_separate_processes_agree_with_one_alone",
                    "--nocapture",
                ])
                .env(CHILD_DATASET, dir.path())
                .env(CHILD_THREADS, (1 + i).to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child {i}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = stdout
            .lines()
            .filter(|l| l.starts_with("batch-digest "))
            .map(str::to_string)
            .collect();
        assert_eq!(
            lines,
            alone,
            "process {i} ({} threads) beside two others gave different batches",
            1 + i
        );
    }
}
