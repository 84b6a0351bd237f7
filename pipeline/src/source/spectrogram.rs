//! Log-mel spectrograms exactly as the GDT reference computes them.
//!
//! The reference calls python_speech_features 0.6 `logfbank` on int16-scale samples (never
//! divided by 32768; its normalisation constants, mean 1.93 and std 17.89, assume that scale)
//! with a 20 ms window, 10 ms hop, nfft 1024, pre-emphasis 0.97 and 0-12 kHz. This module
//! reproduces it: rectangular window (that library's default), power spectrum |X|^2 / nfft,
//! triangular mel filters built by its `get_filterbanks`, energies of exactly 0 replaced by
//! float64 epsilon, natural log.
//!
//! The reference's samples are int16: with `pcm = "int16"` (the default) they are rounded
//! to integers before pre-emphasis, exactly as FFmpeg's `s16` output is, so near-silence
//! falls to the same ln(eps) floor; `pcm = "float"` keeps the unrounded samples.
//!
//! One consequence is kept on purpose, for compatibility with models and constants from the
//! reference: with 257 filters over 1024 FFT bins at 24 kHz the lowest filters are narrower
//! than a bin, come out empty, and their rows sit at ln(eps) = -36.04 (38 of the 257 rows).
//! With 40 filters no row is empty. [`MelSpectrogram::empty_filters`] reports the count.

use std::sync::Arc;

use gdt_formats::params::{PackParams, Pcm};
use realfft::{RealFftPlanner, RealToComplex};

/// ln(f64::EPSILON), the value of an empty filter's row.
pub const LOG_EPS: f32 = -36.04365;

/// Int16 full scale: samples in [-1, 1] are multiplied by this before analysis.
pub const INT16_SCALE: f32 = 32768.0;

struct Filter {
    first_bin: usize,
    weights: Vec<f32>,
}

/// A planned log-mel analysis for one set of parameters. Cheap to reuse across records.
pub struct MelSpectrogram {
    window: usize,
    hop: usize,
    nfft: usize,
    preemphasis: f32,
    pcm: Pcm,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f32>>,
}

/// A sample in [-1, 1] as FFmpeg's float-to-s16 conversion gives it: scaled by 32768,
/// rounded to nearest (ties to even, `lrintf`), clipped to the int16 range.
pub fn int16(sample: f32) -> f32 {
    (sample * INT16_SCALE).round_ties_even().clamp(-32768.0, 32767.0)
}

fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

impl MelSpectrogram {
    /// The filterbank for these parameters.
    pub fn new(params: &PackParams) -> MelSpectrogram {
        let nfft = params.nfft as usize;
        let mels = params.mels as usize;
        let (low, high) = (hz_to_mel(params.fmin_hz as f64), hz_to_mel(params.fmax_hz as f64));
        // get_filterbanks: mel points evenly spaced, mapped to FFT bins with floor.
        let bins: Vec<usize> = (0..mels + 2)
            .map(|i| {
                let mel = low + (high - low) * i as f64 / (mels + 1) as f64;
                ((nfft + 1) as f64 * mel_to_hz(mel) / params.sample_rate as f64).floor() as usize
            })
            .collect();
        let filters = (0..mels)
            .map(|j| {
                let (a, b, c) = (bins[j], bins[j + 1], bins[j + 2]);
                let mut weights = Vec::with_capacity(c.saturating_sub(a));
                for i in a..b {
                    weights.push((i - a) as f32 / (b - a) as f32);
                }
                for i in b..c {
                    weights.push((c - i) as f32 / (c - b) as f32);
                }
                Filter {
                    first_bin: a,
                    weights,
                }
            })
            .collect();
        MelSpectrogram {
            window: params.window_samples as usize,
            hop: params.hop_samples as usize,
            nfft,
            preemphasis: params.preemphasis,
            pcm: params.pcm,
            filters,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(nfft),
        }
    }

    /// Frames for `samples` of audio: python_speech_features' `framesig`, which pads the end
    /// with zeros so that the last partial frame counts. 1 s at 24 kHz gives 99.
    pub fn frame_count(&self, samples: usize) -> usize {
        if samples <= self.window {
            1
        } else {
            1 + (samples - self.window).div_ceil(self.hop)
        }
    }

    /// Filters with no weight at all (their rows are [`LOG_EPS`]).
    pub fn empty_filters(&self) -> usize {
        self.filters
            .iter()
            .filter(|f| f.weights.iter().all(|&w| w == 0.0))
            .count()
    }

    /// Rows of its output.
    pub fn mels(&self) -> usize {
        self.filters.len()
    }

    /// Computes the spectrogram of mono `samples` in [-1, 1]. Returns row-major
    /// `[mels][frames]` and the frame count.
    pub fn compute(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let frames = self.frame_count(samples.len());
        let mels = self.filters.len();
        let mut out = vec![0f32; mels * frames];
        let emphasised: Vec<f32> = match self.pcm {
            Pcm::Int16 => {
                let mut prev = 0.0;
                samples
                    .iter()
                    .map(|&s| {
                        let q = int16(s);
                        let x = q - self.preemphasis * prev;
                        prev = q;
                        x
                    })
                    .collect()
            }
            Pcm::Float => samples
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    let prev = if i == 0 {
                        0.0
                    } else {
                        samples[i - 1] * self.preemphasis
                    };
                    let x = if i == 0 { s } else { s - prev };
                    x * INT16_SCALE
                })
                .collect(),
        };
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; spectrum.len()];
        for t in 0..frames {
            input.iter_mut().for_each(|v| *v = 0.0);
            let start = t * self.hop;
            let end = (start + self.window).min(emphasised.len());
            if start < end {
                input[..end - start].copy_from_slice(&emphasised[start..end]);
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers sized by the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr() / self.nfft as f32;
            }
            for (m, f) in self.filters.iter().enumerate() {
                let energy: f32 = f
                    .weights
                    .iter()
                    .zip(&power[f.first_bin..])
                    .map(|(w, p)| w * p)
                    .sum();
                out[m * frames + t] = if energy == 0.0 { LOG_EPS } else { energy.ln() };
            }
        }
        (out, frames)
    }
}
