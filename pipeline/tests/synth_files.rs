//! The synthetic corpus written as real files: they decode with FFmpeg, carry the streams the
//! plan asked for, keep picture and sound in sync, and are byte-identical for a seed.
#![cfg(feature = "ffmpeg")]

mod common;

use std::path::Path;

use gdt_pipeline::source::decode::{decode_audio_mono, for_each_video_frame, probe};
use gdt_pipeline::synth::encode::write_video;
use gdt_pipeline::synth::{Container, Scenario, Scene, FLASH_THRESHOLD};

fn scenario(seed: u64, fps: u32, vfr: bool, sample_rate: u32, channels: u16) -> Scenario {
    Scenario {
        classes: 3,
        ..common::scenario(seed, fps, vfr, 3.0, sample_rate, channels)
    }
}

/// Times of decoded frames that show a flash (a blob of near-white pixels), the number of
/// frames and the first frame's time (containers may start streams later than zero).
fn flash_times(path: &Path) -> (Vec<f64>, usize, f64) {
    let mut times = Vec::new();
    let mut first = None;
    // Lossy coding softens white a little: allow some margin below the drawing threshold.
    let threshold = FLASH_THRESHOLD - 25;
    let n = for_each_video_frame(path, |f| {
        first.get_or_insert(f.time_s);
        let white = f
            .rgb
            .chunks_exact(3)
            .filter(|p| p.iter().all(|&v| v >= threshold))
            .count();
        if white >= 15 {
            times.push(f.time_s);
        }
    })
    .unwrap();
    (times, n, first.unwrap())
}

/// Sound onsets: 1 ms blocks whose energy jumps well above the preceding 20 ms.
fn onset_times(path: &Path) -> Vec<f64> {
    let audio = decode_audio_mono(path).unwrap();
    let block = (audio.sample_rate / 1000) as usize;
    let energy: Vec<f32> = audio
        .mono
        .chunks(block)
        .map(|c| c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32)
        .collect();
    let mut onsets = Vec::new();
    let mut last = -1.0f64;
    for b in 20..energy.len() {
        let before = energy[b - 20..b].iter().sum::<f32>() / 20.0;
        let t = audio.start_s + (b * block) as f64 / audio.sample_rate as f64;
        if energy[b] > 6.0 * before && energy[b] > 1e-3 && t - last > 0.03 {
            onsets.push(t);
            last = t;
        }
    }
    onsets
}

fn check_file(container: Container, scenario: &Scenario, codecs: (&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("v.{}", container.extension()));
    let scene = Scene::new(scenario);
    write_video(&path, container, &scene).unwrap();
    assert!(!dir
        .path()
        .join(format!(".v.{}.part", container.extension()))
        .exists());

    let info = probe(&path).unwrap();
    let v = info.video.as_ref().expect("video stream");
    let a = info.audio.as_ref().expect("audio stream");
    assert_eq!((v.codec.as_str(), a.codec.as_str()), codecs, "{info:?}");
    assert_eq!((v.width, v.height), (scenario.width, scenario.height));
    assert_eq!(
        (a.sample_rate, a.channels),
        (scenario.sample_rate, scenario.channels)
    );
    let duration = info.duration_s.expect("duration");
    assert!(
        (duration - scenario.duration_s).abs() < 0.15,
        "duration {duration}"
    );
    if !scenario.variable_frame_rate {
        let fps = v.avg_fps.expect("frame rate");
        assert!((fps - scenario.fps as f64).abs() < 0.01, "fps {fps}");
    }

    let (flashes, frames, start) = flash_times(&path);
    assert_eq!(frames, scene.frame_times().len(), "every frame decodes");
    let impact_frames: std::collections::BTreeSet<usize> = scene.impacts().iter().map(|i| i.frame).collect();
    assert_eq!(flashes.len(), impact_frames.len(), "one flash per impact frame");
    for (t, j) in flashes.iter().zip(&impact_frames) {
        // Matroska keeps milliseconds: allow the rounding.
        let drawn = scene.frame_times()[*j];
        assert!(
            (t - start - drawn).abs() < 1e-3,
            "flash at {t} (stream starts at {start}) for frame {j} drawn at {drawn}"
        );
    }

    // Every isolated flash (no other flash in the 0.3 s before it, when an earlier sound
    // could still be ringing) has its sound onset within one frame period.
    let onsets = onset_times(&path);
    let frame_period = 1.0 / scenario.fps as f64;
    let isolated: Vec<f64> = flashes
        .iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || **t - flashes[i - 1] > 0.3)
        .map(|(_, t)| *t)
        .collect();
    assert!(
        isolated.len() >= 2,
        "need isolated impacts to test, got {flashes:?}"
    );
    for t in &isolated {
        let nearest = onsets.iter().map(|o| (o - t).abs()).fold(f64::MAX, f64::min);
        assert!(
            nearest <= frame_period,
            "flash at {t:.3}s: nearest onset {nearest:.4}s away; onsets {onsets:?}"
        );
    }
    // And no sound without a flash: every onset is within a frame of some flash.
    for o in &onsets {
        let nearest = flashes.iter().map(|t| (o - t).abs()).fold(f64::MAX, f64::min);
        assert!(nearest <= frame_period, "onset at {o:.3}s has no flash");
    }
}

#[test]
fn mp4_h264_aac_stereo_48k_decodes_in_sync() {
    check_file(
        Container::Mp4,
        &scenario(1, 25, false, 48_000, 2),
        ("h264", "aac"),
    );
}

#[test]
fn mkv_h264_aac_variable_frame_rate_decodes_in_sync() {
    check_file(Container::Mkv, &scenario(2, 30, true, 44_100, 1), ("h264", "aac"));
}

#[test]
fn avi_mpeg4_pcm_mono_44k_decodes_in_sync() {
    check_file(
        Container::Avi,
        &scenario(3, 24, false, 44_100, 1),
        ("mpeg4", "pcm_s16le"),
    );
}

#[test]
fn same_seed_gives_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(4, 30, false, 44_100, 2);
    let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
    write_video(&a, Container::Mp4, &Scene::new(&s)).unwrap();
    write_video(&b, Container::Mp4, &Scene::new(&s)).unwrap();
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let first_difference = bytes_a.iter().zip(&bytes_b).position(|(x, y)| x != y);
    assert_eq!(
        (bytes_a.len(), first_difference),
        (bytes_b.len(), None),
        "same seed, different bytes"
    );
    let c = dir.path().join("c.mp4");
    write_video(
        &c,
        Container::Mp4,
        &Scene::new(&scenario(5, 30, false, 44_100, 2)),
    )
    .unwrap();
    assert!(bytes_a != std::fs::read(&c).unwrap(), "another seed, same bytes");
}

#[test]
fn avi_refuses_variable_frame_rate_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.avi");
    let err = write_video(
        &path,
        Container::Avi,
        &Scene::new(&scenario(6, 24, true, 44_100, 1)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("variable frame rate"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
