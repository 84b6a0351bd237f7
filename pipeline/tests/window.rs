//! Decoding real files into windows: frames resampled to 30 fps by timestamp, audio cut by
//! timestamp and resampled to 24 kHz, both still in sync.
#![cfg(feature = "ffmpeg")]

mod common;

use gdt_formats::params::PackParams;
use gdt_pipeline::source::window::{decode_windows, WindowOptions};
use gdt_pipeline::synth::encode::write_video;
use gdt_pipeline::synth::{Container, Scenario, Scene, FLASH_THRESHOLD};

fn scenario(fps: u32, duration_s: f64, vfr: bool) -> Scenario {
    common::scenario(21, fps, vfr, duration_s, 44_100, 2)
}

fn flashing(planar: &[u8], plane: usize) -> bool {
    let (r, g, b) = (
        &planar[..plane],
        &planar[plane..2 * plane],
        &planar[2 * plane..3 * plane],
    );
    let t = FLASH_THRESHOLD - 25;
    (0..plane)
        .filter(|&i| r[i] >= t && g[i] >= t && b[i] >= t)
        .count()
        >= 6
}

fn check(container: Container, s: Scenario) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("v.{}", container.extension()));
    let scene = Scene::new(&s);
    write_video(&path, container, &scene).unwrap();
    let params = PackParams::default();
    let decoded = decode_windows(&path, &params, &WindowOptions::default()).unwrap();
    assert_eq!(decoded.windows.len(), 1);
    let w = &decoded.windows[0];
    assert_eq!((w.width, w.height), (171, 128));
    let expected_frames = (s.duration_s.min(10.0) * 30.0).round() as usize;
    assert!(
        w.frame_count.abs_diff(expected_frames) <= 1,
        "{} frames for {} s",
        w.frame_count,
        s.duration_s
    );

    // Output frame k shows the source frame on screen at k/30 s: it flashes exactly when
    // that source frame is an impact frame.
    let plane = (w.width * w.height) as usize;
    let times = scene.frame_times();
    let impact_frames: std::collections::BTreeSet<usize> = scene.impacts().iter().map(|i| i.frame).collect();
    for k in 0..w.frame_count {
        let t = k as f64 / 30.0;
        let shown = times.iter().rposition(|&ts| ts <= t + 1e-6).unwrap();
        let frame = &w.frames[k * 3 * plane..(k + 1) * 3 * plane];
        assert_eq!(
            flashing(frame, plane),
            impact_frames.contains(&shown),
            "output frame {k} (source frame {shown})"
        );
    }

    // Audio: exactly frame_count / 30 s at 24 kHz, and each isolated impact's sound starts
    // within one output frame of its flash.
    let audio = w.audio.as_ref().expect("audio");
    assert_eq!(
        audio.len(),
        (w.frame_count as f64 / 30.0 * 24_000.0).round() as usize
    );
    let mut last = -1.0;
    for imp in scene.impacts() {
        let isolated = imp.time_s - last > 0.3;
        last = imp.time_s;
        let n0 = (imp.time_s * 24_000.0) as usize;
        if !isolated || n0 + 800 > audio.len() || n0 < 800 {
            continue;
        }
        let energy = |a: usize, b: usize| audio[a..b].iter().map(|v| v * v).sum::<f32>();
        let before = energy(n0 - 800, n0 - 10);
        let after = energy(n0, n0 + 800);
        assert!(
            after > 5.0 * before,
            "impact at {:.3}s: after {after}, before {before}",
            imp.time_s
        );
    }
}

#[test]
fn mp4_at_25_fps_is_resampled_to_30_in_sync() {
    check(Container::Mp4, scenario(25, 4.0, false));
}

#[test]
fn mkv_with_variable_frame_rate_is_resampled_in_sync() {
    check(Container::Mkv, scenario(30, 3.0, true));
}

#[test]
fn avi_at_24_fps_longer_than_the_window_is_cut_at_ten_seconds() {
    check(Container::Avi, scenario(24, 11.0, false));
}

#[test]
fn several_windows_cover_a_long_video_back_to_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.mp4");
    write_video(&path, Container::Mp4, &Scene::new(&scenario(30, 5.0, false))).unwrap();
    let params = PackParams {
        max_seconds: 2.0,
        ..PackParams::default()
    };
    let decoded = decode_windows(
        &path,
        &params,
        &WindowOptions {
            max_windows: 5,
            ..WindowOptions::default()
        },
    )
    .unwrap();
    let counts: Vec<usize> = decoded.windows.iter().map(|w| w.frame_count).collect();
    assert_eq!(counts, vec![60, 60, 30]);
    let starts: Vec<f64> = decoded.windows.iter().map(|w| w.start_s).collect();
    assert_eq!(starts, vec![0.0, 2.0, 4.0]);
}

/// The packer hands spare cores to the decoders of a pack's last inputs: the frames and the
/// audio must not depend on it (H.264 in MP4 and in variable-rate MKV, MPEG-4 Part 2, VP9).
#[test]
fn decoder_threads_change_nothing_in_the_output() {
    let params = PackParams::default();
    for (container, vfr) in [
        (Container::Mp4, false),
        (Container::Mkv, true),
        (Container::Avi, false),
        (Container::Webm, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("v.{}", container.extension()));
        write_video(&path, container, &Scene::new(&scenario(30, 3.0, vfr))).unwrap();
        let decode = |threads| {
            let opts = WindowOptions {
                decoder_threads: threads,
                ..WindowOptions::default()
            };
            decode_windows(&path, &params, &opts).unwrap().windows
        };
        let (one, four) = (decode(1), decode(4));
        assert_eq!(one.len(), 1);
        assert_eq!(four.len(), 1);
        assert_eq!(one[0].frame_count, four[0].frame_count, "{container:?}");
        assert!(one[0].frames == four[0].frames, "{container:?}: frames differ");
        assert_eq!(one[0].audio, four[0].audio, "{container:?}");
    }
}
