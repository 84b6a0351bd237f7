//! JPEG frames (`--codec jpeg`): for users short of disk, at the cost of exactness and of
//! decoding time in the loader.
//!
//! A chunk is, per frame, a u32 LE length followed by that many bytes of a baseline JPEG
//! (interleaved RGB, 8 bits). Decoding checks every length against the chunk and every
//! image's size and colour type against the record's geometry before writing a byte.

use std::io::Cursor;

use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::{ColorType, ExtendedColorType, ImageDecoder};

use super::FrameShape;

/// Encodes whole planar frames of `shape`.
pub fn encode(frames: &[u8], shape: FrameShape, quality: u8) -> std::io::Result<Vec<u8>> {
    let fb = shape.bytes();
    let plane = fb / 3;
    let mut rgb = vec![0u8; fb];
    let mut out = Vec::new();
    for f in frames.chunks_exact(fb) {
        for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&[f[i], f[plane + i], f[2 * plane + i]]);
        }
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, quality)
            .encode(&rgb, shape.width, shape.height, ExtendedColorType::Rgb8)
            .map_err(std::io::Error::other)?;
        out.extend_from_slice(&(jpeg.len() as u32).to_le_bytes());
        out.extend_from_slice(&jpeg);
    }
    Ok(out)
}

/// Decodes into `out` (whole planar frames of `shape`, as many as `out` holds).
pub fn decode(src: &[u8], shape: FrameShape, out: &mut [u8]) -> Result<(), String> {
    let fb = shape.bytes();
    if fb == 0 || !out.len().is_multiple_of(fb) {
        return Err(format!(
            "{} bytes is not a whole number of {fb}-byte frames",
            out.len()
        ));
    }
    let plane = fb / 3;
    let mut rgb = vec![0u8; fb];
    let mut pos = 0usize;
    for (k, frame) in out.chunks_exact_mut(fb).enumerate() {
        let len_bytes = src
            .get(pos..pos + 4)
            .ok_or_else(|| format!("JPEG frame {k}: chunk ends early"))?;
        let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let jpeg = src
            .get(pos + 4..pos + 4 + len)
            .ok_or_else(|| format!("JPEG frame {k}: length {len} runs past the chunk"))?;
        let decoder = JpegDecoder::new(Cursor::new(jpeg)).map_err(|e| format!("JPEG frame {k}: {e}"))?;
        if decoder.dimensions() != (shape.width, shape.height) || decoder.color_type() != ColorType::Rgb8 {
            return Err(format!(
                "JPEG frame {k} is {:?} {:?}, the record says {}x{} RGB",
                decoder.dimensions(),
                decoder.color_type(),
                shape.width,
                shape.height
            ));
        }
        decoder
            .read_image(&mut rgb)
            .map_err(|e| format!("JPEG frame {k}: {e}"))?;
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            frame[i] = px[0];
            frame[plane + i] = px[1];
            frame[2 * plane + i] = px[2];
        }
        pos += 4 + len;
    }
    if pos != src.len() {
        return Err(format!("{} bytes after the last JPEG frame", src.len() - pos));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_close_and_damage_is_an_error() {
        let shape = FrameShape {
            width: 32,
            height: 24,
        };
        let fb = shape.bytes();
        // Smooth gradients, as JPEG expects of pictures.
        let frames: Vec<u8> = (0..3 * fb)
            .map(|i| ((i % (32 * 24)) % 32 * 6 + (i / fb) * 20) as u8)
            .collect();
        let enc = encode(&frames, shape, 95).unwrap();
        let mut out = vec![0u8; frames.len()];
        decode(&enc, shape, &mut out).unwrap();
        let mean_err = frames
            .iter()
            .zip(&out)
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .sum::<f64>()
            / frames.len() as f64;
        assert!(mean_err < 3.0, "mean abs error {mean_err}");
        // Wrong geometry, truncation and trailing bytes are errors, not panics.
        let mut wrong = vec![
            0u8;
            3 * FrameShape {
                width: 16,
                height: 24
            }
            .bytes()
        ];
        assert!(decode(
            &enc,
            FrameShape {
                width: 16,
                height: 24
            },
            &mut wrong
        )
        .is_err());
        assert!(decode(&enc[..enc.len() - 7], shape, &mut out).is_err());
        let mut longer = enc.clone();
        longer.push(0);
        assert!(decode(&longer, shape, &mut out).is_err());
    }
}
