//! `plot.png` at the end of a run: loss (top) and throughput (bottom) against the step.
//!
//! The per-step loss is noisy (one batch of a few records), so it is drawn faint with a
//! smoothed line over it, as TensorBoard users expect: an exponential moving average,
//! debiased at the start (TensorBoard's own), over a window of about a 25th of the run.
//! Steps are integers and labelled as such.
//!
//! Labels need a system font ([`font_available`]); without one the curves and axes are
//! still drawn, unlabelled.

use std::path::Path;

use gdt_pipeline::figure::font_available;
use plotters::prelude::*;

use crate::run_log::StepRecord;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws loss and clips/s against the step into a PNG.
pub fn write(path: &Path, records: &[StepRecord]) -> DrawResult {
    let tmp = gdt_formats::atomic_file::temp_path(path);
    // The encoder picks the format from the extension, so the temporary name keeps `.png`.
    let tmp = tmp.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1000, 700)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(350);
        let loss: Vec<(u64, f64)> = records.iter().map(|r| (r.step, r.loss)).collect();
        let rate: Vec<(u64, f64)> = records.iter().map(|r| (r.step, r.clips_per_s)).collect();
        let smooth = smoothed(
            &loss.iter().map(|p| p.1).collect::<Vec<_>>(),
            smoothing_weight(loss.len()),
        );
        let smooth: Vec<(u64, f64)> = loss.iter().map(|p| p.0).zip(smooth).collect();
        panel(
            &top,
            "loss (GDT-NCE; faint: per step, line: smoothed)",
            &[(&loss, RED.mix(0.25)), (&smooth, RED.mix(1.0))],
        )?;
        panel(&bottom, "clips/s", &[(&rate, BLUE.mix(1.0))])?;
        root.present()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The moving average's weight for a run of `n` steps: a window of about n / 25 steps.
pub fn smoothing_weight(n: usize) -> f64 {
    let window = (n as f64 / 25.0).clamp(1.0, 100.0);
    1.0 - 1.0 / window
}

/// TensorBoard's smoothing: an exponential moving average with `weight` on the past,
/// divided by the weight the average has gathered so far, so the first points are not
/// pulled towards zero. Non-finite points are skipped (and repeat the last average).
pub fn smoothed(values: &[f64], weight: f64) -> Vec<f64> {
    let (mut last, mut gathered) = (0.0, 0.0);
    values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                last = last * weight + (1.0 - weight) * v;
                gathered = gathered * weight + (1.0 - weight);
            }
            if gathered > 0.0 {
                last / gathered
            } else {
                f64::NAN
            }
        })
        .collect()
}

fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    name: &str,
    series: &[(&[(u64, f64)], RGBAColor)],
) -> DrawResult {
    let points = || series.iter().flat_map(|(s, _)| s.iter());
    let x_max = points().map(|p| p.0).max().unwrap_or(1).max(1);
    let finite = || points().map(|p| p.1).filter(|y| y.is_finite());
    let (lo, hi) = (
        finite().fold(f64::INFINITY, f64::min),
        finite().fold(f64::NEG_INFINITY, f64::max),
    );
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let pad = (hi - lo) * 0.05;
    let labelled = font_available();
    let mut builder = ChartBuilder::on(area);
    // Room on the right for the last step's label, which is centred on the axis's end.
    builder.margin(12).margin_right(36);
    if labelled {
        builder
            .caption(name, ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(0u64..x_max, (lo - pad)..(hi + pad))?;
    let mut mesh = chart.configure_mesh();
    if labelled {
        mesh.x_desc("step").x_label_formatter(&|s| s.to_string());
    } else {
        mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (points, colour) in series {
        let finite = points.iter().copied().filter(|p| p.1.is_finite());
        chart.draw_series(LineSeries::new(finite, colour.stroke_width(2)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_debiased_and_follows_a_step() {
        // Debiased: a constant series is its own average from the first point.
        assert!(smoothed(&[3.0; 5], 0.9).iter().all(|v| (v - 3.0).abs() < 1e-12));
        // A step from 0 to 1 is followed, lagging, and reached.
        let s = smoothed(&[vec![0.0; 10], vec![1.0; 200]].concat(), 0.8);
        assert!(s[10] > 0.0 && s[10] < 0.5 && (s[209] - 1.0).abs() < 1e-6, "{s:?}");
        // A NaN step repeats the last average instead of poisoning the line.
        let s = smoothed(&[1.0, f64::NAN, 1.0], 0.5);
        assert_eq!(s, [1.0, 1.0, 1.0]);
        assert!(smoothed(&[f64::NAN], 0.5)[0].is_nan());
    }

    #[test]
    fn the_window_grows_with_the_run() {
        assert_eq!(smoothing_weight(10), 0.0);
        assert!((smoothing_weight(250) - 0.9).abs() < 1e-12);
        assert!((smoothing_weight(1_000_000) - 0.99).abs() < 1e-12);
    }
}
