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
//! At the default level zstd's match finder probes nearly every byte. In noisy differences
//! (sensor noise, grain, the synthetic corpus) it finds little there, yet compressing them
//! was about three quarters of what packing added to decoding. With the codec's `accel`,
//! such chunks are compressed with an accelerated search instead (see [`encode_chunks`]);
//! measured on the synthetic corpus: 2.3-2.9x faster to compress, faster to decompress (the
//! loader's decompress-and-copy floor +33%), 2.7% more bytes, while static content keeps
//! the full search and its bytes (docs/PACKING.md).
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

/// With acceleration, the first chunk of a record, and of every `PROBE_EVERY` after it, is
/// compressed both ways and decides for the chunks after it: one probe per record for the
/// default 10 s windows (37-38 chunks), one per ~17 s in longer ones. Probing more often
/// costs a full search each time (every 8 chunks: +6% of decoding time on the synthetic
/// corpus, for no size gain there).
const PROBE_EVERY: usize = 64;

/// The full search is kept where it saves at least 1/`FULL_SEARCH_GAIN` of the accelerated
/// size: static or cleanly moving content, where it finds long runs and repeats cheaply.
const FULL_SEARCH_GAIN: usize = 16;

/// Per thread: zstd compression contexts for one (level, accel) and a scratch buffer for the
/// delta filter. Creating a context, or faulting in fresh pages, per chunk costs more than
/// compressing a small chunk.
struct ZstdChunks {
    level: i32,
    accel: u32,
    /// `level`'s own search.
    full: zstd::bulk::Compressor<'static>,
    /// Level 1's fast search probing one position in `accel + 1` where nothing matched, with
    /// literals Huffman-coded (zstd turns that off for accelerated searches by default, which
    /// is what makes negative levels 1.35x larger).
    fast: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
    /// Compressed output, before it is copied out at its exact size: a fresh buffer per
    /// chunk would be zstd's worst-case bound, faulted in page by page and mostly unused.
    out: [Vec<u8>; 2],
}

impl ZstdChunks {
    fn new(level: i32, accel: u32) -> std::io::Result<ZstdChunks> {
        use zstd::zstd_safe::{CParameter, ParamSwitch};
        let fast = if accel > 0 {
            let mut c = zstd::bulk::Compressor::new(1)?;
            c.set_parameter(CParameter::TargetLength(accel))?;
            c.set_parameter(CParameter::LiteralCompressionMode(ParamSwitch::Enable))?;
            Some(c)
        } else {
            None
        };
        Ok(ZstdChunks {
            level,
            accel,
            full: zstd::bulk::Compressor::new(level)?,
            fast,
            scratch: Vec::new(),
            out: [Vec::new(), Vec::new()],
        })
    }

    fn encode(
        &mut self,
        frames: &[u8],
        frame_bytes: usize,
        chunk_frames: usize,
        delta: bool,
    ) -> std::io::Result<Vec<Vec<u8>>> {
        let mut blobs = Vec::with_capacity(frames.len().div_ceil(chunk_frames * frame_bytes));
        let mut accelerate = false;
        for (i, chunk) in frames.chunks(chunk_frames * frame_bytes).enumerate() {
            let src = if delta {
                delta_filter(chunk, frame_bytes, &mut self.scratch);
                &self.scratch[..]
            } else {
                chunk
            };
            let bound = zstd::zstd_safe::compress_bound(src.len());
            let [full, quick] = &mut self.out;
            full.reserve(bound);
            quick.reserve(bound);
            // Each buffer's length is set to what was written into it.
            let blob: &[u8] = match &mut self.fast {
                Some(fast) if i % PROBE_EVERY == 0 => {
                    let f = self.full.compress_to_buffer(src, full)?;
                    let q = fast.compress_to_buffer(src, quick)?;
                    accelerate = q.saturating_sub(f) * FULL_SEARCH_GAIN < q;
                    if f <= q {
                        full
                    } else {
                        quick
                    }
                }
                Some(fast) if accelerate => {
                    fast.compress_to_buffer(src, quick)?;
                    quick
                }
                _ => {
                    self.full.compress_to_buffer(src, full)?;
                    full
                }
            };
            blobs.push(blob.to_vec());
        }
        Ok(blobs)
    }
}

thread_local! {
    static ZSTD: std::cell::RefCell<Option<ZstdChunks>> = const { std::cell::RefCell::new(None) };
}

/// The first frame as it is, then each frame minus the one before, in one vectorisable pass.
fn delta_filter(frames: &[u8], frame_bytes: usize, out: &mut Vec<u8>) {
    out.resize(frames.len(), 0);
    out[..frame_bytes].copy_from_slice(&frames[..frame_bytes]);
    for ((out, cur), prev) in out[frame_bytes..]
        .iter_mut()
        .zip(&frames[frame_bytes..])
        .zip(frames)
    {
        *out = cur.wrapping_sub(*prev);
    }
}

/// Encodes a record's planar frames of `shape` (`frames.len()` a multiple of
/// `shape.bytes()`) as chunks of `chunk_frames` frames, the last one possibly shorter.
/// The output depends only on the frames and the codec, never on the thread.
pub fn encode_chunks(
    frames: &[u8],
    shape: FrameShape,
    chunk_frames: usize,
    codec: &FrameCodec,
) -> std::io::Result<Vec<Vec<u8>>> {
    let frame_bytes = shape.bytes();
    assert!(
        frame_bytes > 0 && chunk_frames > 0 && frames.len().is_multiple_of(frame_bytes),
        "whole frames only"
    );
    let (level, delta, accel) = match *codec {
        FrameCodec::RawZstd { level, delta, accel } => (level, delta, accel),
        FrameCodec::Jpeg { quality } => {
            return frames
                .chunks(chunk_frames * frame_bytes)
                .map(|chunk| jpeg::encode(chunk, shape, quality))
                .collect()
        }
    };
    ZSTD.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached
            .as_ref()
            .is_none_or(|z| (z.level, z.accel) != (level, accel))
        {
            *cached = Some(ZstdChunks::new(level, accel)?);
        }
        cached
            .as_mut()
            .expect("set above")
            .encode(frames, frame_bytes, chunk_frames, delta)
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
        let mut blob = encode_chunks(&frames, shape, 2, &codec).unwrap().remove(0);
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
    fn round_trip_for_every_setting_and_a_short_last_chunk() {
        let shape = FrameShape { width: 5, height: 4 };
        let frame_bytes = shape.bytes();
        let frames: Vec<u8> = (0..frame_bytes * 7).map(|i| (i * 37 % 251) as u8).collect();
        let mut dec = ChunkDecoder::new().unwrap();
        for (delta, accel) in [(false, 0), (true, 0), (true, 1024), (false, 64)] {
            let codec = FrameCodec::RawZstd {
                level: 1,
                delta,
                accel,
            };
            let blobs = encode_chunks(&frames, shape, 3, &codec).unwrap();
            assert_eq!(blobs.len(), 3, "chunks of 3, 3 and 1 frames");
            for (blob, want) in blobs.iter().zip(frames.chunks(3 * frame_bytes)) {
                let mut out = vec![0u8; want.len()];
                dec.decode(blob, shape, &codec, &mut out).unwrap();
                assert_eq!(out, want);
                // A buffer of the wrong size is an error, not a partial fill.
                let mut short = vec![0u8; want.len() - 1];
                assert!(dec.decode(blob, shape, &codec, &mut short).is_err());
                let mut long = vec![0u8; want.len() + 1];
                assert!(dec.decode(blob, shape, &codec, &mut long).is_err());
            }
        }
    }

    /// 24 frames of 64x48: a smooth background with a square moving across it, plus, when
    /// `noise`, independent noise of up to +-`noise` on half the pixels of every frame (as
    /// grainy footage, or the synthetic corpus after H.264 has flattened some of its noise).
    fn scene(noise: u32) -> (Vec<u8>, FrameShape) {
        let shape = FrameShape {
            width: 64,
            height: 48,
        };
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut frames = Vec::new();
        for t in 0..24usize {
            for c in 0..3usize {
                for y in 0..48usize {
                    for x in 0..64usize {
                        let inside = (x + 64 - 2 * t) % 64 < 12 && (16..28).contains(&y);
                        let base = if inside {
                            220
                        } else {
                            60 + (x * 2 + y + c * 20) as i32
                        };
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let n = if noise > 0 && (rng >> 40).is_multiple_of(2) {
                            (rng % (2 * noise as u64 + 1)) as i32 - noise as i32
                        } else {
                            0
                        };
                        frames.push((base + n).clamp(0, 255) as u8);
                    }
                }
            }
        }
        (frames, shape)
    }

    #[test]
    fn noisy_chunks_are_accelerated_and_static_ones_keep_the_full_search() {
        let full = FrameCodec::RawZstd {
            level: 1,
            delta: true,
            accel: 0,
        };
        let adaptive = FrameCodec::default();
        let size = |blobs: &[Vec<u8>]| blobs.iter().map(Vec::len).sum::<usize>();
        // Static background, clean motion: the full search saves far more than 1/16, so
        // every chunk is exactly what level 1 alone writes.
        let (clean, shape) = scene(0);
        assert_eq!(
            encode_chunks(&clean, shape, 4, &adaptive).unwrap(),
            encode_chunks(&clean, shape, 4, &full).unwrap()
        );
        // Noise: after the probe, chunks take the accelerated search (other bytes), for a
        // size within a few percent of the full search's.
        let (noisy, shape) = scene(3);
        let (a, f) = (
            encode_chunks(&noisy, shape, 4, &adaptive).unwrap(),
            encode_chunks(&noisy, shape, 4, &full).unwrap(),
        );
        assert!(a[0].len() <= f[0].len(), "the probe keeps the smaller of the two");
        assert!(
            a[1..].iter().zip(&f[1..]).all(|(a, f)| a != f),
            "accelerated after the probe"
        );
        assert!(
            size(&a) * 100 < size(&f) * 105,
            "{} vs {} bytes",
            size(&a),
            size(&f)
        );
        // The choice depends on the frames alone: not on the thread, nor on what the thread
        // encoded before.
        let other = std::thread::spawn(move || encode_chunks(&noisy, shape, 4, &adaptive).unwrap())
            .join()
            .unwrap();
        assert_eq!(other, a);
    }
}
