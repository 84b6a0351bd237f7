//! Audio sample-rate conversion with rubato's FFT resampler (fixed ratio, band-limited).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Resamples mono `samples` from `from_hz` to `to_hz`. The output has exactly
/// `round(len * to / from)` samples, aligned with the input (the resampler's delay is
/// removed), so timestamps computed from sample indices stay true.
pub fn resample_mono(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    let want = (samples.len() as f64 * to_hz as f64 / from_hz as f64).round() as usize;
    if from_hz == to_hz || samples.is_empty() {
        let mut out = samples.to_vec();
        out.resize(want, 0.0);
        return Ok(out);
    }
    let mut resampler = Fft::<f32>::new(from_hz as usize, to_hz as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| format!("resampler for {from_hz} -> {to_hz} Hz: {e}"))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| e.to_string())?;
    let mut out = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| e.to_string())?
        .take_data();
    out.resize(want, 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn keeps_length_pitch_and_alignment() {
        for from in [44_100u32, 48_000, 22_050, 8_000] {
            let input = tone(440.0, from, 2.0);
            let out = resample_mono(&input, from, 24_000).unwrap();
            assert_eq!(out.len(), 48_000, "from {from}");
            // Compare with the ideal tone at 24 kHz away from the edges.
            let ideal = tone(440.0, 24_000, 2.0);
            let err = out[2400..45_600]
                .iter()
                .zip(&ideal[2400..45_600])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 0.02, "from {from}: max error {err}");
        }
    }

    #[test]
    fn removes_content_above_the_new_nyquist() {
        let input = tone(15_000.0, 48_000, 1.0);
        let out = resample_mono(&input, 48_000, 24_000).unwrap();
        let rms = (out[2400..21_600].iter().map(|v| v * v).sum::<f32>() / 19_200.0).sqrt();
        assert!(rms < 0.01, "15 kHz should be filtered out, rms {rms}");
    }
}
