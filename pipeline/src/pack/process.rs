//! One input, decoded into windows, analysed and compressed into records on a worker
//! thread, or the reason it was skipped.

use gdt_formats::dataset::InputCounts;
use gdt_formats::field::meta::{AudioOrigin, RecordMeta};
use gdt_formats::shard::EncodedRecord;

use super::{Outcome, PackConfig, PackInput, Status};
use crate::source::decode::DecodeError;
use crate::source::spectrogram::MelSpectrogram;
use crate::source::window::{decode_windows, WindowOptions};

/// One input, decoded and compressed (or the reason it was skipped).
pub(super) struct Processed {
    pub outcome: Outcome,
    pub records: Vec<EncodedRecord>,
}

fn skipped(input: &PackInput, reason: &str, detail: String) -> Processed {
    Processed {
        outcome: Outcome {
            input: input.source.clone(),
            status: Status::Skipped,
            reason: Some(reason.to_string()),
            detail: Some(detail),
            label: input.label.clone(),
            counts: InputCounts::default(),
            stored_bytes: 0,
            shard: None,
        },
        records: vec![],
    }
}

/// Short, stable reasons: the keys of the skip histogram.
fn reason_of(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::NoStream { kind: "video", .. } => "no video stream",
        DecodeError::NoStream { .. } => "no audio stream",
        DecodeError::Ffmpeg {
            what: "opening the file",
            ..
        } => "not a readable video file",
        DecodeError::TimedOut { .. } => "decoder time limit",
        DecodeError::SampleFormat { .. } => "unsupported audio format",
        _ => "decoding failed",
    }
}

/// Decodes, analyses and compresses one input. Never fails: a bad input is an outcome.
pub(super) fn process(
    input: &PackInput,
    config: &PackConfig,
    mels: &MelSpectrogram,
    labels: &[String],
    opts: &WindowOptions,
) -> Processed {
    let source_bytes = match std::fs::metadata(&input.path) {
        Ok(m) if m.len() == 0 => {
            return skipped(
                input,
                "empty file",
                format!("{}: file is empty", input.path.display()),
            )
        }
        Ok(m) => m.len(),
        Err(e) => {
            return skipped(
                input,
                "cannot read file",
                format!("{}: {e}", input.path.display()),
            )
        }
    };
    // A panic inside a decoder must not take the whole pack down.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_windows(&input.path, &config.params, opts)
    }));
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return skipped(input, reason_of(&e), e.to_string()),
        Err(_) => {
            return skipped(
                input,
                "decoding failed",
                format!("{}: decoder panicked", input.path.display()),
            )
        }
    };
    let has_audio = decoded.info.audio_codec.is_some();
    if !has_audio && !config.silence_for_missing_audio {
        return skipped(
            input,
            "no audio stream",
            format!("{}: no audio stream (--no-audio skip)", input.path.display()),
        );
    }
    let p = &config.params;
    let longest = decoded.windows.iter().map(|w| w.frame_count).max().unwrap_or(0);
    let windows: Vec<_> = decoded
        .windows
        .into_iter()
        .filter(|w| w.frame_count >= config.min_frames)
        .collect();
    if windows.is_empty() {
        return skipped(
            input,
            "shorter than one clip",
            format!(
                "{}: {longest} frames at {} fps (with audio), a clip needs {}",
                input.path.display(),
                p.fps,
                config.min_frames
            ),
        );
    }
    let label_index = input
        .label
        .as_ref()
        .and_then(|l| labels.iter().position(|x| x == l))
        .map(|i| i as u32);
    let mut records = Vec::with_capacity(windows.len());
    let (mut frames, mut raw) = (0u64, 0u64);
    for w in &windows {
        let samples = match &w.audio {
            Some(a) => a.clone(),
            None => vec![0.0; (w.frame_count as f64 / p.fps as f64 * p.sample_rate as f64).round() as usize],
        };
        let (mel, mel_frames) = mels.compute(&samples);
        let meta = RecordMeta {
            source: input.source.clone(),
            label: input.label.clone(),
            label_index,
            split: input.split.clone(),
            source_duration_s: decoded.info.duration_s,
            source_fps: decoded.info.fps,
            source_width: decoded.info.width,
            source_height: decoded.info.height,
            source_video_codec: decoded.info.video_codec.clone(),
            source_audio_codec: decoded.info.audio_codec.clone(),
            source_sample_rate: decoded.info.sample_rate,
            source_channels: decoded.info.channels,
            window_start_s: w.start_s,
            window_index: w.index,
            audio: if w.audio.is_some() {
                AudioOrigin::Decoded
            } else {
                AudioOrigin::Silence
            },
        };
        match EncodedRecord::encode(&meta, &w.frames, w.width, w.height, &mel, mel_frames as u32, p) {
            Ok(r) => records.push(r),
            Err(e) => {
                return skipped(
                    input,
                    "compression failed",
                    format!("{}: {e}", input.path.display()),
                )
            }
        }
        frames += w.frame_count as u64;
        raw += w.frames.len() as u64;
    }
    Processed {
        outcome: Outcome {
            input: input.source.clone(),
            status: Status::Packed,
            reason: None,
            detail: None,
            label: input.label.clone(),
            counts: InputCounts {
                records: records.len(),
                frames,
                seconds: frames as f64 / p.fps as f64,
                raw_frame_bytes: raw,
                source_bytes,
            },
            stored_bytes: 0,
            shard: None,
        },
        records,
    }
}
