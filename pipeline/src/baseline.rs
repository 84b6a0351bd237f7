//! The on-the-fly baseline for `gdt bench load`: what users do today, decoding the original
//! file for every sample with FFmpeg (decode, scale, audio decode and spectrogram), then the
//! same sampling and augmentation as the loader. It decodes the record's window from the
//! start of the file rather than seeking, like the reference loader's full-track audio read.

use std::path::Path;

use gdt_formats::field::frames::FrameShape;
use gdt_formats::params::PackParams;

use crate::augment::{crop_resize, AudioAugment, ResizeScratch, VideoAugment};
use crate::decode::DecodeError;
use crate::sampler::{draw_stream, time_shifts};
use crate::spectrogram::MelSpectrogram;
use crate::window::{decode_windows, WindowOptions};

/// Produces one record's views from its source file; returns how many clips it made.
#[allow(clippy::too_many_arguments)]
pub fn views_from_source(
    path: &Path,
    params: &PackParams,
    mels: &MelSpectrogram,
    video: &VideoAugment,
    audio: &AudioAugment,
    (seed, record): (u64, u64),
    (shifts, clip, audio_frames): (usize, usize, usize),
    out: (&mut Vec<u8>, &mut Vec<f32>),
) -> Result<usize, DecodeError> {
    let decoded = decode_windows(
        path,
        params,
        &WindowOptions {
            max_windows: 1,
            time_limit: None,
        },
    )?;
    let w = decoded
        .windows
        .into_iter()
        .next()
        .ok_or_else(|| DecodeError::Invalid {
            path: path.to_path_buf(),
            what: "no frames".into(),
        })?;
    if w.frame_count < clip {
        return Err(DecodeError::Invalid {
            path: path.to_path_buf(),
            what: "shorter than one clip".into(),
        });
    }
    let samples = w.audio.unwrap_or_else(|| {
        vec![0.0; (w.frame_count as f64 / params.fps as f64 * params.sample_rate as f64) as usize]
    });
    let (spec, total) = mels.compute(&samples);
    let shape = FrameShape {
        width: w.width,
        height: w.height,
    };
    let fb = shape.bytes();
    let mut starts = vec![0; shifts];
    time_shifts(
        &mut draw_stream(seed, 0, record, u64::MAX - 1),
        w.frame_count,
        clip,
        shifts,
        0,
        &mut starts,
    );
    let crop = video.crop as usize;
    let (vpv, apv) = (3 * clip * crop * crop, mels.mels() * audio_frames);
    let mut scratch = ResizeScratch::default();
    let mut made = 0;
    for (k, &start) in starts.iter().enumerate() {
        let frames = &w.frames[start * fb..(start + clip) * fb];
        let a0 = ((start as f64 * params.spectrogram_rate() / params.fps as f64).round() as usize)
            .min(total.saturating_sub(audio_frames));
        for reversed in [false, true] {
            let mut rng = draw_stream(seed, 0, record, (2 * k + reversed as usize) as u64);
            let vd = video.draw(&mut rng, w.width, w.height);
            let ad = audio.draw(&mut rng, mels.mels() as u32, audio_frames as u32);
            out.0.resize(vpv, 0);
            crop_resize(frames, shape, video.crop, &vd, reversed, &mut scratch, out.0);
            out.1.resize(apv, 0.0);
            audio.apply(&spec, total, mels.mels(), a0, audio_frames, reversed, &ad, out.1);
            made += 1;
        }
    }
    Ok(made)
}
