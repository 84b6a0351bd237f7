//! The log-mel spectrogram against an independent, direct float64 computation of the same
//! recipe (naive DFT, filters from the formula), for a pure tone and for white noise.
// The reference loops are written like the Python they mirror, indices and all.
#![allow(clippy::needless_range_loop)]

use gdt_formats::params::{PackParams, Pcm};
use gdt_pipeline::source::spectrogram::{MelSpectrogram, LOG_EPS};

/// python_speech_features 0.6 logfbank, written out directly in f64.
fn reference(samples: &[f64], p: &PackParams) -> Vec<Vec<f64>> {
    let (win, hop, nfft, sr) = (
        p.window_samples as usize,
        p.hop_samples as usize,
        p.nfft as usize,
        p.sample_rate as f64,
    );
    // The reference reads int16 PCM from FFmpeg (`s16`: scaled, rounded to nearest with ties
    // to even, clipped); `pcm = "float"` skips the rounding.
    let mut sig: Vec<f64> = samples
        .iter()
        .map(|s| match p.pcm {
            Pcm::Int16 => (s * 32768.0).round_ties_even().clamp(-32768.0, 32767.0),
            Pcm::Float => s * 32768.0,
        })
        .collect();
    for i in (1..sig.len()).rev() {
        sig[i] -= 0.97 * sig[i - 1];
    }
    let n_frames = if sig.len() <= win {
        1
    } else {
        1 + ((sig.len() - win) as f64 / hop as f64).ceil() as usize
    };
    sig.resize((n_frames - 1) * hop + win, 0.0);
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let nf = p.mels as usize;
    let points: Vec<f64> = (0..nf + 2)
        .map(|i| mel(0.0) + (mel(12000.0) - mel(0.0)) * i as f64 / (nf + 1) as f64)
        .collect();
    let bins: Vec<f64> = points
        .iter()
        .map(|&m| ((nfft + 1) as f64 * hz(m) / sr).floor())
        .collect();
    let mut fbank = vec![vec![0f64; nfft / 2 + 1]; nf];
    for j in 0..nf {
        for i in bins[j] as usize..bins[j + 1] as usize {
            fbank[j][i] = (i as f64 - bins[j]) / (bins[j + 1] - bins[j]);
        }
        for i in bins[j + 1] as usize..bins[j + 2] as usize {
            fbank[j][i] = (bins[j + 2] - i as f64) / (bins[j + 2] - bins[j + 1]);
        }
    }
    (0..n_frames)
        .map(|t| {
            let frame = &sig[t * hop..t * hop + win];
            let pspec: Vec<f64> = (0..=nfft / 2)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (n, x) in frame.iter().enumerate() {
                        let a = -2.0 * std::f64::consts::PI * (k * n) as f64 / nfft as f64;
                        re += x * a.cos();
                        im += x * a.sin();
                    }
                    (re * re + im * im) / nfft as f64
                })
                .collect();
            fbank
                .iter()
                .map(|f| {
                    let e: f64 = f.iter().zip(&pspec).map(|(w, p)| w * p).sum();
                    if e == 0.0 {
                        f64::EPSILON.ln()
                    } else {
                        e.ln()
                    }
                })
                .collect()
        })
        .collect()
}

fn compare(samples: &[f32], mels: u32, frames_to_check: &[usize]) -> (Vec<f32>, usize) {
    let p = PackParams {
        mels,
        ..PackParams::default()
    };
    let ms = MelSpectrogram::new(&p);
    let (ours, frames) = ms.compute(samples);
    let as_f64: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    let want = reference(&as_f64, &p);
    assert_eq!(frames, want.len());
    for &t in frames_to_check {
        for m in 0..mels as usize {
            let (a, b) = (ours[m * frames + t] as f64, want[t][m]);
            // Log energies: f32 FFT vs f64 DFT agree to a few thousandths.
            assert!(
                (a - b).abs() < 2e-3 * b.abs().max(1.0),
                "frame {t} mel {m}: {a} vs {b}"
            );
        }
    }
    (ours, frames)
}

#[test]
fn one_second_gives_99_frames_and_ten_seconds_999() {
    let ms = MelSpectrogram::new(&PackParams::default());
    assert_eq!(ms.frame_count(24_000), 99);
    assert_eq!(ms.frame_count(240_000), 999);
    assert_eq!(ms.frame_count(100), 1);
}

#[test]
fn pure_tone_matches_the_direct_computation_and_peaks_at_its_frequency() {
    let f0 = 1000.0f32;
    let samples: Vec<f32> = (0..24_000)
        .map(|i| 0.5 * (std::f32::consts::TAU * f0 * i as f32 / 24_000.0).sin())
        .collect();
    for mels in [40u32, 257] {
        let (mel, frames) = compare(&samples, mels, &[0, 50, 98]);
        assert_eq!(frames, 99);
        // The loudest row is the filter whose centre is nearest 1 kHz.
        let t = 50;
        let peak = (0..mels as usize)
            .max_by(|&a, &b| mel[a * frames + t].total_cmp(&mel[b * frames + t]))
            .unwrap();
        let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
        let centre_mel = mel(12000.0) * (peak + 1) as f64 / (mels + 1) as f64;
        let centre_hz = 700.0 * (10f64.powf(centre_mel / 2595.0) - 1.0);
        let bin_hz = 24_000.0 / 1024.0;
        assert!(
            (centre_hz - f0 as f64).abs() < 3.0 * bin_hz + 12000.0 / mels as f64,
            "peak filter at {centre_hz} Hz"
        );
    }
}

#[test]
fn white_noise_matches_and_sits_at_the_expected_level() {
    // Deterministic uniform noise in [-0.5, 0.5): variance 1/12 at unit scale.
    let mut state = 12345u64;
    let samples: Vec<f32> = (0..12_000)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let (mel, frames) = compare(&samples, 40, &[0, 10, 48]);
    assert_eq!(frames, 49);
    // Expected power per bin: E|X_k|^2 / nfft = window * variance * (1 + 0.97^2 - 2*0.97*cos w) / nfft
    // at int16 scale. Averaged over frames, a mid-band filter's log energy sits near
    // ln(sum of weights * mean bin power); allow 1.0 in log units for the spread of noise.
    let var = 32768f64.powi(2) / 12.0;
    let m = 20usize;
    let mean: f64 = (0..frames).map(|t| mel[m * frames + t] as f64).sum::<f64>() / frames as f64;
    let p = PackParams {
        mels: 40,
        ..PackParams::default()
    };
    let ms = MelSpectrogram::new(&p);
    assert_eq!(ms.empty_filters(), 0);
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let centre_hz = 700.0 * (10f64.powf(mel(12000.0) * (m + 1) as f64 / 41.0 / 2595.0) - 1.0);
    let w = 2.0 * std::f64::consts::PI * centre_hz / 24_000.0;
    let bin_power = 480.0 * var * (1.0 + 0.97f64.powi(2) - 2.0 * 0.97 * w.cos()) / 1024.0;
    // Filter weight sum ~ half the filter's width in bins.
    let lo = 700.0 * (10f64.powf(mel(12000.0) * m as f64 / 41.0 / 2595.0) - 1.0);
    let hi = 700.0 * (10f64.powf(mel(12000.0) * (m + 2) as f64 / 41.0 / 2595.0) - 1.0);
    let weight_sum = (hi - lo) / (24_000.0 / 1024.0) / 2.0;
    let expected = (bin_power * weight_sum).ln();
    assert!(
        (mean - expected).abs() < 1.0,
        "mean log energy {mean}, expected about {expected}"
    );
}

#[test]
fn with_257_filters_38_rows_are_empty_as_in_the_reference() {
    let ms = MelSpectrogram::new(&PackParams::default());
    assert_eq!(ms.empty_filters(), 38);
    let samples: Vec<f32> = (0..4800)
        .map(|i| ((i * 7919) % 200) as f32 / 200.0 - 0.5)
        .collect();
    let (mel, frames) = ms.compute(&samples);
    let empty_rows = (0..257)
        .filter(|&m| (0..frames).all(|t| mel[m * frames + t] == LOG_EPS))
        .count();
    assert_eq!(empty_rows, 38);
}

/// Near-silence: in the reference, int16 rounding makes a signal below half a step exactly 0,
/// and every row sits at ln(eps). Unrounded floats give rows far from it (about -19.7 here)
/// and, at other levels, below it.
#[test]
fn near_silence_sits_at_the_reference_floor_only_when_rounded_to_int16() {
    let quiet: Vec<f32> = (0..24_000).map(|i| 1.2e-5 * ((i as f32 * 0.37).sin())).collect();
    for pcm in [Pcm::Int16, Pcm::Float] {
        let p = PackParams {
            mels: 40,
            pcm,
            ..PackParams::default()
        };
        let (mel, _) = MelSpectrogram::new(&p).compute(&quiet);
        let at_floor = mel.iter().filter(|&&v| v == LOG_EPS).count();
        match pcm {
            Pcm::Int16 => assert_eq!(at_floor, mel.len(), "every value at ln(eps)"),
            Pcm::Float => assert_eq!(at_floor, 0, "unrounded: nothing at ln(eps)"),
        }
    }
    // A level that rounds to +-1, 0: the int16 path matches the direct reference.
    let faint: Vec<f32> = (0..24_000).map(|i| 4.0e-5 * ((i as f32 * 0.05).sin())).collect();
    compare(&faint, 40, &[0, 10, 50, 98]);
}
