//! The audio of a window starts at the same presentation time as its first frame, to the
//! sample, whatever the codec did at the start of the stream: AAC and MP3 in MP4 and MOV carry
//! an edit list that trims the encoder's priming, Matroska shifts the video to make room for
//! it, PCM has none. One spectrogram hop (10 ms) of slack would hide a priming trimmed twice,
//! so the offset is measured by cross-correlation at the output rate and must be under 1 ms.
//! (MP3 in AVI is not here: AVI has no way to mark the priming, so it plays as sound, in gdt
//! as in every player.)
#![cfg(feature = "ffmpeg")]

mod common;

use gdt_formats::params::PackParams;
use gdt_pipeline::source::decode::downmix_weights;
use gdt_pipeline::source::resample::resample_mono;
use gdt_pipeline::source::window::{decode_windows, WindowOptions};
use gdt_pipeline::synth::encode::{write_video_with, EncodeOptions};
use gdt_pipeline::synth::{Container, Scenario, Scene};

/// How far the window's audio runs ahead of the soundtrack that was encoded, in output
/// samples (positive: the window plays a sound before its frame shows it).
fn audio_lead(container: Container, mp3: bool, sample_rate: u32, channels: u16) -> i64 {
    let scenario = Scenario {
        width: 160,
        height: 120,
        ..common::scenario(
            40 + sample_rate as u64 + channels as u64,
            30,
            false,
            3.0,
            sample_rate,
            channels,
        )
    };
    let scene = Scene::new(&scenario);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("v.{}", container.extension()));
    let options = EncodeOptions {
        mp3,
        ..EncodeOptions::default()
    };
    write_video_with(&path, container, &scene, &options).unwrap();
    let params = PackParams::default();
    let decoded = decode_windows(&path, &params, &WindowOptions::default()).unwrap();
    let window = &decoded.windows[0];
    assert_eq!(window.start_s, 0.0);
    let got = window.audio.as_ref().expect("audio");

    // What was encoded, mixed to mono the same way and brought to the output rate.
    let ch = channels as usize;
    let weights = downmix_weights(0, ch);
    let mono: Vec<f32> = scene
        .render_audio()
        .chunks(ch)
        .map(|s| s.iter().zip(&weights).map(|(v, w)| v * w).sum())
        .collect();
    let want = resample_mono(&mono, sample_rate, params.sample_rate).unwrap();

    // got[i] ~ want[i + lead]: the lag with the highest correlation, up to 20 ms either way.
    let max_lag = (params.sample_rate / 50) as i64;
    let (lo, hi) = (max_lag, got.len().min(want.len()) as i64 - max_lag);
    (-max_lag..=max_lag)
        .map(|lag| {
            let c: f64 = (lo..hi)
                .map(|i| got[i as usize] as f64 * want[(i + lag) as usize] as f64)
                .sum();
            (lag, c)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
        .0
}

#[test]
fn audio_and_video_start_together_to_the_sample() {
    let one_ms = (PackParams::default().sample_rate / 1000) as i64;
    let cases = [
        ("AAC in MP4, 44.1 kHz", Container::Mp4, false, 44_100, 2),
        ("AAC in MP4, 48 kHz", Container::Mp4, false, 48_000, 2),
        ("MP3 in MP4, 44.1 kHz", Container::Mp4, true, 44_100, 2),
        ("MP3 in MP4, 48 kHz", Container::Mp4, true, 48_000, 1),
        ("MP3 in MOV, 44.1 kHz", Container::Mov, true, 44_100, 2),
        ("AAC in MKV, 44.1 kHz", Container::Mkv, false, 44_100, 2),
        ("MP3 in MKV, 48 kHz", Container::Mkv, true, 48_000, 2),
        ("PCM in MOV, 44.1 kHz", Container::Mov, false, 44_100, 2),
        ("PCM in AVI, 48 kHz", Container::Avi, false, 48_000, 1),
        ("Vorbis in WebM, 48 kHz", Container::Webm, false, 48_000, 2),
    ];
    let leads: Vec<(&str, i64)> = cases
        .iter()
        .map(|&(name, container, mp3, rate, channels)| (name, audio_lead(container, mp3, rate, channels)))
        .collect();
    eprintln!("audio lead, samples at 24 kHz: {leads:?}");
    let off: Vec<_> = leads.iter().filter(|(_, lead)| lead.abs() > one_ms).collect();
    assert!(off.is_empty(), "audio off by more than 1 ms: {off:?}");
}
