//! Shards round-trip exactly, and damage anywhere in one is caught on open or by `verify`.

mod common;

use std::path::Path;

use common::{meta, params, record, write_shard};
use gdt_formats::field::frames::ChunkDecoder;
use gdt_formats::params::FrameCodec;
use gdt_formats::shard::{EncodedRecord, Shard, ShardWriter};
use gdt_formats::FormatError;

#[test]
fn records_round_trip_bit_exact_for_any_frame_range() {
    let dir = tempfile::tempdir().unwrap();
    for delta in [false, true] {
        let path = dir.path().join(format!("s-{delta}.gdt"));
        write_shard(
            &path,
            3,
            FrameCodec::RawZstd {
                level: 1,
                delta,
                accel: 0,
            },
        );
        let shard = Shard::open(&path).unwrap();
        assert_eq!(shard.len(), 3);
        assert!(shard.verify().unwrap().is_empty());
        let mut dec = ChunkDecoder::new().unwrap();
        let mut out = Vec::new();
        for i in 0..3 {
            let (frames, w, h, mel, mel_frames) = record(i);
            let r = shard.record(i).unwrap();
            assert_eq!(
                (r.entry().width, r.entry().height, r.entry().mel_frames),
                (w, h, mel_frames)
            );
            assert_eq!(r.meta().unwrap(), meta(i));
            let fb = r.frame_bytes();
            let n = r.entry().frames as usize;
            for start in 0..n {
                for count in 1..=n - start {
                    r.read_frames(&mut dec, start, count, &mut out).unwrap();
                    assert!(
                        out == frames[start * fb..(start + count) * fb],
                        "record {i} frames {start}+{count}"
                    );
                }
            }
            assert!(r.read_frames(&mut dec, n - 1, 2, &mut out).is_err());
            // f16 represents these quarter steps exactly.
            assert_eq!(r.spectrogram().unwrap(), mel);
        }
    }
}

/// Damage is caught if the shard does not open, or `verify` reports it, or (for bytes no
/// checksum covers... there are none) reading fails.
fn damage_is_caught(path: &Path) -> bool {
    match Shard::open(path) {
        Err(_) => true,
        Ok(shard) => !shard.verify().expect("a local shard reads").is_empty(),
    }
}

#[test]
fn every_single_bit_flip_anywhere_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.gdt");
    write_shard(&path, 2, FrameCodec::default());
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.gdt");
    println!(
        "{} single-bit flips of a {}-byte shard",
        good.len() * 8,
        good.len()
    );
    for byte in 0..good.len() {
        for bit in 0..8 {
            let mut b = good.clone();
            b[byte] ^= 1 << bit;
            std::fs::write(&bad, &b).unwrap();
            assert!(
                damage_is_caught(&bad),
                "flip of bit {bit} in byte {byte} of {} went unnoticed",
                good.len()
            );
        }
    }
}

#[test]
fn every_truncation_is_rejected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.gdt");
    write_shard(&path, 2, FrameCodec::default());
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.gdt");
    println!("{} truncations", good.len());
    for len in 0..good.len() {
        std::fs::write(&bad, &good[..len]).unwrap();
        let err = Shard::open(&bad)
            .err()
            .unwrap_or_else(|| panic!("truncated to {len} bytes but opened"));
        assert!(
            err.to_string().contains("bad.gdt"),
            "error must name the file: {err}"
        );
    }
}

#[test]
fn foreign_and_future_files_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gdt");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    assert!(matches!(Shard::open(&path), Err(FormatError::NotAShard { .. })));

    write_shard(&path, 1, FrameCodec::default());
    let mut b = std::fs::read(&path).unwrap();
    b[8] = 2; // version field
    std::fs::write(&path, &b).unwrap();
    match Shard::open(&path) {
        Err(FormatError::Version {
            found: 2,
            supported: 1,
            ..
        }) => {}
        other => panic!("expected a version error, got {:?}", other.err()),
    }
    assert!(matches!(
        Shard::open(&dir.path().join("missing.gdt")),
        Err(FormatError::Io(_))
    ));
}

#[test]
fn a_shard_appears_only_when_finished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.gdt");
    let p = params();
    let mut w = ShardWriter::create(&path, &p).unwrap();
    let (frames, width, height, mel, mel_frames) = record(0);
    w.append(&EncodedRecord::encode(&meta(0), &frames, width, height, &mel, mel_frames, &p).unwrap())
        .unwrap();
    assert!(!path.exists(), "an unfinished shard must not have its final name");
    drop(w);
    assert!(!path.exists());
}

#[test]
fn jpeg_records_round_trip_closely_and_flips_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.gdt");
    write_shard(&path, 2, FrameCodec::Jpeg { quality: 90 });
    let shard = Shard::open(&path).unwrap();
    let mut dec = ChunkDecoder::new().unwrap();
    let mut out = Vec::new();
    for i in 0..2 {
        let (frames, ..) = record(i);
        let r = shard.record(i).unwrap();
        r.read_frames(&mut dec, 0, r.entry().frames as usize, &mut out)
            .unwrap();
        assert_eq!(out.len(), frames.len());
        // The test pattern is hard for JPEG (pseudo-random bytes); decoding must still give
        // the right geometry and stay in range, which is all a lossy codec promises.
        assert!(
            out != frames,
            "JPEG is lossy: identical output would mean it was not used"
        );
    }
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.gdt");
    for byte in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[byte] ^= 0x04;
        std::fs::write(&bad, &b).unwrap();
        assert!(damage_is_caught(&bad), "flip in byte {byte} went unnoticed");
    }
}
