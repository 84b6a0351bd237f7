//! A small shard with known contents, for the format's tests.
#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;

use gdt_formats::field::meta::{AudioOrigin, RecordMeta};
use gdt_formats::params::{FrameCodec, PackParams};
use gdt_formats::shard::{EncodedRecord, ShardWriter};

pub fn params() -> PackParams {
    PackParams {
        mels: 3,
        chunk_frames: 4,
        ..PackParams::default()
    }
}

pub fn meta(i: usize) -> RecordMeta {
    RecordMeta {
        source: format!("video-{i}.mp4"),
        label: Some(format!("class-{}", i % 2)),
        label_index: Some((i % 2) as u32),
        split: Some("train".into()),
        source_duration_s: Some(3.5),
        source_fps: Some(25.0),
        source_width: 320,
        source_height: 240,
        source_video_codec: "h264".into(),
        source_audio_codec: Some("aac".into()),
        source_sample_rate: Some(48_000),
        source_channels: Some(2),
        window_start_s: 0.0,
        window_index: 0,
        audio: AudioOrigin::Decoded,
    }
}

/// Record i: (frames, width, height), pseudo-random pixels so chunks differ.
pub fn record(i: usize) -> (Vec<u8>, u32, u32, Vec<f32>, u32) {
    let (w, h, n) = (6 + i as u32, 4, 9 + i);
    let frames: Vec<u8> = (0..n * 3 * (w * h) as usize)
        .map(|k| ((k * 31 + i * 7) % 256) as u8)
        .collect();
    let mel_frames = 30 + i as u32;
    let mel: Vec<f32> = (0..3 * mel_frames as usize)
        .map(|k| k as f32 * 0.25 - 4.0)
        .collect();
    (frames, w, h, mel, mel_frames)
}

pub fn write_shard(path: &Path, records: usize, codec: FrameCodec) {
    let p = PackParams { codec, ..params() };
    let mut w = ShardWriter::create(path, &p).unwrap();
    for i in 0..records {
        let (frames, width, height, mel, mel_frames) = record(i);
        w.append(&EncodedRecord::encode(&meta(i), &frames, width, height, &mel, mel_frames, &p).unwrap())
            .unwrap();
    }
    let summary = w.finish().unwrap();
    assert_eq!(summary.records, records);
    assert_eq!(summary.bytes, std::fs::metadata(path).unwrap().len());
}
