//! Video frames: chunks of a few frames, each compressed on its own.
//!
//! A frame is planar RGB u8, `[3][height][width]`, so that the loader's resize can read one
//! plane at a time and write the `[C, T, H, W]` output without a transpose. A chunk is its
//! frames back to back. Chunks are independent, so a 30-frame clip at any offset
//! decompresses only the chunks it touches.
//!
//! With the delta filter, frame k > 0 of a chunk is stored as `frame[k] - frame[k-1]`
//! (byte-wise, wrapping). Consecutive video frames are similar, so the differences are mostly
//! near zero and zstd compresses them much better; undoing it is one add per byte.
//!
//! With the JPEG codec ([`jpeg`]) a chunk holds one JPEG per frame instead.

pub mod jpeg;

use crate::params::FrameCodec;

/// Checks that `src` is exactly one zstd frame: zstd itself would also decode frames
/// concatenated after the first (or skip skippable ones), which the format does not allow.
pub fn single_frame(src: &[u8]) -> Result<(), String> {
    match zstd::zstd_safe::find_frame_compressed_size(src) {
        Ok(n) if n == src.len() => Ok(()),
        Ok(n) => Err(format!(
            "{} bytes follow the zstd frame ({n} bytes)",
            src.len() - n
        )),
        Err(code) => Err(format!("zstd: {}", zstd::zstd_safe::get_error_name(code))),
    }
}

/// The size of one stored frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameShape {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl FrameShape {
    /// Bytes of one planar RGB frame.
    pub fn bytes(self) -> usize {
        3 * self.width as usize * self.height as usize
    }
}

/// Per thread: a zstd compression context (with its level) and a scratch buffer for the
/// delta filter. Creating a context, or faulting in fresh pages, per chunk costs more than
/// compressing a small chunk.
struct Encoder {
    zstd: Option<(i32, zstd::bulk::Compressor<'static>)>,
    scratch: Vec<u8>,
}

thread_local! {
    static ENCODER: std::cell::RefCell<Encoder> = const { std::cell::RefCell::new(Encoder { zstd: None, scratch: Vec::new() }) };
}

/// Encodes whole planar frames of `shape` (`frames.len()` a multiple of `shape.bytes()`).
pub fn encode_chunk(frames: &[u8], shape: FrameShape, codec: &FrameCodec) -> std::io::Result<Vec<u8>> {
    let frame_bytes = shape.bytes();
    assert!(
        frame_bytes > 0 && frames.len().is_multiple_of(frame_bytes),
        "whole frames only"
    );
    let (level, delta) = match *codec {
        FrameCodec::RawZstd { level, delta } => (level, delta),
        FrameCodec::Jpeg { quality } => return jpeg::encode(frames, shape, quality),
    };
    ENCODER.with(|cell| {
        let Encoder {
            zstd: compressor,
            scratch,
        } = &mut *cell.borrow_mut();
        if compressor.as_ref().is_none_or(|(l, _)| *l != level) {
            *compressor = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let zstd = &mut compressor.as_mut().expect("set above").1;
        if !delta {
            return zstd.compress(frames);
        }
        // One pass: the first frame as it is, then each frame minus the one before.
        scratch.resize(frames.len(), 0);
        scratch[..frame_bytes].copy_from_slice(&frames[..frame_bytes]);
        for ((out, cur), prev) in scratch[frame_bytes..]
            .iter_mut()
            .zip(&frames[frame_bytes..])
            .zip(frames)
        {
            *out = cur.wrapping_sub(*prev);
        }
        zstd.compress(scratch)
    })
}

/// Decodes chunks, reusing one zstd context (creating one per chunk would cost more than
/// decompressing a small chunk).
pub struct ChunkDecoder {
    pub(crate) zstd: zstd::bulk::Decompressor<'static>,
    /// A buffer readers borrow for decoded chunks, so that steady-state reading allocates
    /// nothing.
    pub(crate) scratch: Vec<u8>,
}

impl ChunkDecoder {
    /// A decoder with its own zstd context.
    pub fn new() -> std::io::Result<ChunkDecoder> {
        Ok(ChunkDecoder {
            zstd: zstd::bulk::Decompressor::new()?,
            scratch: Vec::new(),
        })
    }

    /// Decodes `src` into `out`, whose length is the chunk's true size as the index and the
    /// record's geometry say. The compressed frame's own size claim is never trusted: output
    /// that would not fill `out` exactly is an error.
    pub fn decode(
        &mut self,
        src: &[u8],
        shape: FrameShape,
        codec: &FrameCodec,
        out: &mut [u8],
    ) -> Result<(), String> {
        let frame_bytes = shape.bytes();
        let delta = match *codec {
            FrameCodec::RawZstd { delta, .. } => delta,
            FrameCodec::Jpeg { .. } => return jpeg::decode(src, shape, out),
        };
        single_frame(src)?;
        let n = self
            .zstd
            .decompress_to_buffer(src, out)
            .map_err(|e| format!("zstd: {e}"))?;
        if n != out.len() {
            return Err(format!("chunk decompressed to {n} bytes, expected {}", out.len()));
        }
        if delta {
            for k in 1..out.len() / frame_bytes {
                let (prev, cur) = out.split_at_mut(k * frame_bytes);
                let prev = &prev[(k - 1) * frame_bytes..];
                for (c, p) in cur[..frame_bytes].iter_mut().zip(prev) {
                    *c = c.wrapping_add(*p);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_exactly_one_zstd_frame() {
        let shape = FrameShape { width: 4, height: 2 };
        let codec = FrameCodec::default();
        let frames: Vec<u8> = (0..2 * shape.bytes()).map(|i| (i * 7) as u8).collect();
        let mut blob = encode_chunk(&frames, shape, &codec).unwrap();
        let mut out = vec![0u8; frames.len()];
        let mut d = ChunkDecoder::new().unwrap();
        d.decode(&blob, shape, &codec, &mut out).unwrap();
        assert_eq!(out, frames);
        // A second (here empty) frame after the first decodes to the same bytes in zstd, but
        // the format holds one frame per blob.
        blob.extend(zstd::bulk::compress(&[], 1).unwrap());
        let err = d.decode(&blob, shape, &codec, &mut out).unwrap_err();
        assert!(err.contains("follow the zstd frame"), "{err}");
    }

    #[test]
    fn round_trip_with_and_without_delta() {
        let shape = FrameShape { width: 5, height: 4 };
        let frame_bytes = shape.bytes();
        let frames: Vec<u8> = (0..frame_bytes * 3).map(|i| (i * 37 % 251) as u8).collect();
        let mut dec = ChunkDecoder::new().unwrap();
        for delta in [false, true] {
            let codec = FrameCodec::RawZstd { level: 1, delta };
            let enc = encode_chunk(&frames, shape, &codec).unwrap();
            let mut out = vec![0u8; frames.len()];
            dec.decode(&enc, shape, &codec, &mut out).unwrap();
            assert_eq!(out, frames);
            // A buffer of the wrong size is an error, not a partial fill.
            let mut short = vec![0u8; frames.len() - 1];
            assert!(dec.decode(&enc, shape, &codec, &mut short).is_err());
            let mut long = vec![0u8; frames.len() + 1];
            assert!(dec.decode(&enc, shape, &codec, &mut long).is_err());
        }
    }
}
