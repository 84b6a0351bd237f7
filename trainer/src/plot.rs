//! `plot.png` at the end of a run: loss (top) and throughput (bottom) against the step.
//!
//! Labels need a system font ([`font_available`]); without one the curves and axes are
//! still drawn, unlabelled.

use std::path::Path;

use gdt_pipeline::figure::font_available;
use plotters::prelude::*;

use crate::run_log::StepRecord;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws loss, learning rate and clips/s against the step into a PNG.
pub fn write(path: &Path, records: &[StepRecord]) -> DrawResult {
    let tmp = gdt_formats::atomic_file::temp_path(path);
    // The encoder picks the format from the extension, so the temporary name keeps `.png`.
    let tmp = tmp.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1000, 700)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(350);
        let loss: Vec<(f64, f64)> = records.iter().map(|r| (r.step as f64, r.loss)).collect();
        let rate: Vec<(f64, f64)> = records.iter().map(|r| (r.step as f64, r.clips_per_s)).collect();
        panel(&top, "loss (GDT-NCE)", &loss, &RED)?;
        panel(&bottom, "clips/s", &rate, &BLUE)?;
        root.present()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    name: &str,
    points: &[(f64, f64)],
    colour: &RGBColor,
) -> DrawResult {
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let finite = || points.iter().map(|p| p.1).filter(|y| y.is_finite());
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
    builder.margin(12);
    if labelled {
        builder
            .caption(name, ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))?;
    let mut mesh = chart.configure_mesh();
    if labelled {
        mesh.x_desc("step");
    } else {
        mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    chart.draw_series(LineSeries::new(points.iter().copied(), colour))?;
    Ok(())
}
