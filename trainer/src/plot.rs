//! `plot.png` at the end of a run: loss (top) and throughput (bottom) against the step.
//!
//! Text needs a TrueType font and the GPU nodes this runs on may have none installed, so
//! labels are drawn with the first DejaVu/Liberation font found on the machine; without one
//! the curves and axes are still drawn, unlabelled.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::run_log::StepRecord;

const FONT_FILES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a system font once; `false` when there is none.
fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        for f in FONT_FILES {
            if let Ok(bytes) = std::fs::read(f) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

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
