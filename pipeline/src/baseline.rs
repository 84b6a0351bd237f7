//! The on-the-fly baseline for `gdt bench load`: what users do today, decoding the original
//! file for every sample with FFmpeg (decode, scale, audio decode and spectrogram), then the
//! same sampling and augmentation as the loader. It decodes the record's window from the
//! start of the file rather than seeking, like the reference loader's full-track audio read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use gdt_formats::dataset::Dataset;
use gdt_formats::field::frames::FrameShape;
use gdt_formats::params::PackParams;

use crate::load::augment::{crop_resize, AudioAugment, ResizeScratch, VideoAugment};
use crate::load::batch::BatchShape;
use crate::load::loader::LoadError;
use crate::load::sampler::{shifts_stream, time_shifts, view_stream};
use crate::source::decode::DecodeError;
use crate::source::spectrogram::MelSpectrogram;
use crate::source::window::{decode_windows, WindowOptions};

/// Why the baseline could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The dataset could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A record's source file is not where the dataset says.
    #[error("source {} not found (pass --sources DIR, the folder the manifest's paths are relative to)", .0.display())]
    MissingSource(PathBuf),
    /// Decoding a source failed.
    #[error("baseline decode failed: {0}")]
    Decode(String),
}

/// The source files of the dataset's first `records` records: relative to `sources` when
/// given, else to the folder the dataset was packed from.
pub fn source_paths(
    ds: &Dataset,
    records: usize,
    sources: Option<&Path>,
) -> Result<Vec<PathBuf>, BaselineError> {
    let mut paths = Vec::new();
    for g in 0..ds.len().min(records.max(1)) {
        let (s, r) = ds.locate(g).expect("in range");
        let meta = ds.shards[s]
            .record(r)
            .and_then(|rec| rec.meta())
            .map_err(LoadError::from)?;
        let path = match sources.or(ds.manifest.source_root.as_deref()) {
            Some(dir) => dir.join(&meta.source),
            None => PathBuf::from(&meta.source),
        };
        if !path.exists() {
            return Err(BaselineError::MissingSource(path));
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Clips per second when each of `sources` is decoded from its file for every sample, on
/// `threads` threads, into views of `shape` with the loader's default augmentation.
pub fn clips_per_second(
    sources: &[PathBuf],
    params: &PackParams,
    threads: usize,
    seed: u64,
    shape: &BatchShape,
) -> Result<f64, BaselineError> {
    let mels = MelSpectrogram::new(params);
    let (video, audio) = (VideoAugment::at_crop(shape.crop as u32), AudioAugment::default());
    let next = AtomicUsize::new(0);
    let clips = AtomicUsize::new(0);
    let failed: Mutex<Option<String>> = Mutex::new(None);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let (mut v, mut au) = (Vec::new(), Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = sources.get(i) else { break };
                    match views_from_source(
                        path,
                        params,
                        &mels,
                        &video,
                        &audio,
                        (seed, i as u64),
                        (shape.views / 2, shape.clip, shape.audio_frames),
                        (&mut v, &mut au),
                    ) {
                        Ok(n) => {
                            clips.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => *failed.lock().expect("lock") = Some(e.to_string()),
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("lock") {
        return Err(BaselineError::Decode(e));
    }
    Ok(clips.into_inner() as f64 / start.elapsed().as_secs_f64())
}

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
            time_limit: None,
            ..WindowOptions::default()
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
    let (mel, total) = mels.compute(&samples);
    let shape = FrameShape {
        width: w.width,
        height: w.height,
    };
    let fb = shape.bytes();
    let mut starts = vec![0; shifts];
    time_shifts(
        &mut shifts_stream(seed, 0, record),
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
            let mut rng = view_stream(seed, 0, record, (2 * k + reversed as usize) as u64);
            let vd = video.draw(&mut rng, w.width, w.height);
            let ad = audio.draw(&mut rng, mels.mels() as u32, audio_frames as u32);
            out.0.resize(vpv, 0);
            crop_resize(frames, shape, video.crop, &vd, reversed, &mut scratch, out.0);
            out.1.resize(apv, 0.0);
            audio.apply(&mel, total, mels.mels(), a0, audio_frames, reversed, &ad, out.1);
            made += 1;
        }
    }
    Ok(made)
}
