//! A record's frames above its spectrogram, sharing one time axis, so a
//! person can see at a glance that picture and sound line up.
//!
//! Layout: a title (record, source, label, length), then two staggered rows of thumbnails,
//! then the spectrogram (low frequencies at the bottom, empty filter rows black) and a time
//! axis in seconds. 100 pixels per second horizontally, one pixel per spectrogram frame.
//! Each thumbnail starts at its frame's time, marked on the spectrogram's top edge; within a
//! row they do not overlap, and the second row fills the gaps of the first, so a 10 s record
//! shows a frame about every 0.4 s. Text needs a system font
//! ([`super::font_available`]); without one the figure is drawn unlabelled.
use std::path::Path;

use gdt_formats::dataset::Dataset;
use gdt_formats::field::frames::ChunkDecoder;
use gdt_formats::{FileError, FormatError};
use image::{Rgb, RgbImage};

use crate::source::spectrogram::LOG_EPS;

const PX_PER_SECOND: f64 = 100.0;
const THUMB_HEIGHT: u32 = 64;
const ROW_GAP: u32 = 2;
const MARGIN: u32 = 8;
/// Height of one line of the title (14 px text).
const TITLE_LINE: u32 = 20;
/// The title's font size, px.
const TITLE_PX: f64 = 14.0;
const GAP: u32 = 6;
const TICK: u32 = 8;
const AXIS: u32 = 24;
/// Wider than this is refused (a record of over three minutes).
const MAX_WIDTH: u32 = 20_000;

/// Why a preview could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The dataset or the record could not be read.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The figure could not be written.
    #[error(transparent)]
    Write(#[from] FileError),
    /// No such record.
    #[error("record {record} does not exist: {dataset} has {records} records")]
    NoRecord {
        /// The record asked for.
        record: usize,
        /// The dataset.
        dataset: String,
        /// Records it has.
        records: usize,
    },
    /// Anything else: too long to draw, the PNG encoder or the text renderer failed.
    #[error("record {record}: {what}")]
    Draw {
        /// The record.
        record: usize,
        /// What went wrong.
        what: String,
    },
}

/// A drawn preview and what it shows.
pub struct Preview {
    /// The figure.
    pub image: RgbImage,
    /// The record's source file, as the dataset names it.
    pub source: String,
    /// Its label, if it has one.
    pub label: Option<String>,
    /// Stored frames.
    pub frames: u32,
    /// Spectrogram frames.
    pub mel_frames: u32,
    /// Thumbnails drawn.
    pub thumbnails: usize,
    /// Frames between consecutive thumbnails (alternating rows).
    pub thumbnail_step: usize,
}

impl Preview {
    /// Writes the figure as a PNG, under a temporary name renamed when complete.
    pub fn save(&self, path: &Path) -> Result<(), PreviewError> {
        let tmp = gdt_formats::atomic_file::temp_path(path);
        let failed = |e: image::ImageError| FileError {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        self.image
            .save_with_format(&tmp, image::ImageFormat::Png)
            .map_err(failed)?;
        std::fs::rename(&tmp, path).map_err(FileError::at(path))?;
        Ok(())
    }
}

/// Draws record `record` (counting across shards from 0) of the dataset in `dir`.
pub fn draw(dir: &Path, record: usize) -> Result<Preview, PreviewError> {
    let ds = Dataset::open(dir)?;
    let (s, r) = ds.locate(record).ok_or_else(|| PreviewError::NoRecord {
        record,
        dataset: dir.display().to_string(),
        records: ds.len(),
    })?;
    let rec = ds.shards[s].record(r)?;
    let e = *rec.entry();
    let fps = ds.manifest.params.fps as f64;
    let mut frames = Vec::new();
    let mut decoder = ChunkDecoder::new().map_err(|e| PreviewError::Draw {
        record,
        what: format!("creating a zstd context: {e}"),
    })?;
    rec.read_frames(&mut decoder, 0, e.frames as usize, &mut frames)?;
    let mel = rec.spectrogram()?;
    let meta = rec.meta()?;
    let thumb_w = ((e.width as f64 * THUMB_HEIGHT as f64 / e.height as f64).round() as u32).max(1);
    // Frames between thumbnails of one row (they just do not overlap); the second row starts
    // half-way, so one thumbnail every `every / 2` frames in all.
    let every = ((thumb_w as f64 / PX_PER_SECOND * fps).ceil() as usize).max(2);
    let thumbs: Vec<(usize, u32)> = (0..e.frames as usize)
        .step_by(every / 2)
        .enumerate()
        .map(|(i, j)| (j, (i % 2) as u32))
        .collect();
    let x_of = |seconds: f64| MARGIN + (seconds * PX_PER_SECOND).round() as u32;
    let spec_rate = ds.manifest.params.spectrogram_rate();
    let last_thumb = thumbs.last().map_or(0, |t| t.0);
    let width = x_of(last_thumb as f64 / fps).max(x_of(e.mel_frames as f64 / spec_rate)) + thumb_w + MARGIN;
    let duration_s = e.frames as f64 / fps;
    let title = format!(
        "record {record}: {} (window at {:.1} s), label {}, {} frames = {:.2} s",
        meta.source,
        meta.window_start_s,
        meta.label.as_deref().unwrap_or("none"),
        e.frames,
        duration_s
    );
    // The title wraps to the figure's width (a short record at small frames is narrow).
    let title = if super::font_available() {
        title_lines(&title, width - 2 * MARGIN)
    } else {
        Vec::new()
    };
    let thumbs_top = MARGIN + TITLE_LINE * (title.len() as u32).max(1);
    let spec_top = thumbs_top + 2 * THUMB_HEIGHT + ROW_GAP + GAP;
    let axis_top = spec_top + e.mels + 2;
    let height = axis_top + AXIS + MARGIN;
    if width > MAX_WIDTH {
        return Err(PreviewError::Draw {
            record,
            what: format!("too long to preview ({width} px wide)"),
        });
    }
    let mut img = RgbImage::from_pixel(width, height, Rgb([24, 24, 24]));

    let plane = (e.width * e.height) as usize;
    for &(j, row) in &thumbs {
        let f = &frames[j * 3 * plane..(j + 1) * 3 * plane];
        let x0 = x_of(j as f64 / fps);
        let y0 = thumbs_top + row * (THUMB_HEIGHT + ROW_GAP);
        for ty in 0..THUMB_HEIGHT {
            let sy = (ty as u64 * e.height as u64 / THUMB_HEIGHT as u64) as usize;
            for tx in 0..thumb_w {
                let sx = (tx as u64 * e.width as u64 / thumb_w as u64) as usize;
                let i = sy * e.width as usize + sx;
                img.put_pixel(x0 + tx, y0 + ty, Rgb([f[i], f[plane + i], f[2 * plane + i]]));
            }
        }
        // A marker at the thumbnail's exact time, on the spectrogram's top edge.
        for y in spec_top - GAP / 2..spec_top {
            img.put_pixel(x0, y, Rgb([255, 255, 255]));
        }
    }

    let frames_n = e.mel_frames as usize;
    let live = |v: f32| v > LOG_EPS + 1.0;
    // Colour range from the 5th to the 99.9th percentile of the live rows, so a steady noise
    // floor shows dark and onsets stand out.
    let mut sorted: Vec<f32> = mel.iter().copied().filter(|&v| live(v)).collect();
    sorted.sort_by(f32::total_cmp);
    let at = |q: f64| {
        sorted
            .get(((sorted.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let (lo, hi) = (at(0.05), at(0.999));
    for m in 0..e.mels as usize {
        let y = spec_top + e.mels - 1 - m as u32;
        for t in 0..frames_n {
            let v = mel[m * frames_n + t];
            let c = if live(v) && hi > lo {
                colormap((v - lo) / (hi - lo))
            } else {
                [0, 0, 0]
            };
            img.put_pixel(x_of(t as f64 / spec_rate), y, Rgb(c));
        }
    }
    // The time axis: a long tick every second, a short one every half second.
    let half_seconds = (duration_s * 2.0).floor() as u32;
    for h in 0..=half_seconds {
        let x = x_of(h as f64 / 2.0);
        let len = if h % 2 == 0 { TICK } else { TICK / 2 };
        for y in axis_top..axis_top + len {
            img.put_pixel(x, y, Rgb([220, 220, 220]));
        }
    }
    if super::font_available() {
        label_figure(
            &mut img,
            &title,
            half_seconds / 2,
            |s| x_of(s as f64),
            axis_top + TICK + 1,
        )
        .map_err(|e| PreviewError::Draw {
            record,
            what: format!("drawing the labels: {e}"),
        })?;
    }
    Ok(Preview {
        image: img,
        source: meta.source,
        label: meta.label,
        frames: e.frames,
        mel_frames: e.mel_frames,
        thumbnails: thumbs.len(),
        thumbnail_step: every / 2,
    })
}

/// `title` in lines no wider than `max_width` px at the title's size, broken between words;
/// a word too long for a line on its own is cut, with an ellipsis.
fn title_lines(title: &str, max_width: u32) -> Vec<String> {
    use plotters::prelude::IntoFont;
    let font = ("sans-serif", TITLE_PX).into_font();
    let fits = |s: &str| font.box_size(s).is_ok_and(|(w, _)| w <= max_width);
    let mut lines: Vec<String> = Vec::new();
    for word in title.split_whitespace() {
        match lines.last_mut() {
            Some(line) if fits(&format!("{line} {word}")) => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    for line in lines.iter_mut().filter(|l| !fits(l)) {
        let mut cut: Vec<char> = line.chars().collect();
        while !cut.is_empty() && !fits(&format!("{}…", cut.iter().collect::<String>())) {
            cut.pop();
        }
        *line = format!("{}…", cut.iter().collect::<String>());
    }
    lines
}

/// The title at the top and a label under every second's tick, drawn over the pixels.
fn label_figure(
    img: &mut RgbImage,
    title: &[String],
    seconds: u32,
    x_of: impl Fn(u32) -> u32,
    labels_top: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let size = img.dimensions();
    let root = BitMapBackend::with_buffer(img.as_mut(), size).into_drawing_area();
    let text = |px: f64| ("sans-serif", px).into_font().color(&RGBColor(230, 230, 230));
    for (i, line) in title.iter().enumerate() {
        root.draw(&Text::new(
            line.clone(),
            (MARGIN as i32, (MARGIN + 2 + i as u32 * TITLE_LINE) as i32),
            text(TITLE_PX),
        ))?;
    }
    for sec in 0..=seconds {
        let unit = if sec == 0 { " s" } else { "" };
        let style = text(11.0).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(
            format!("{sec}{unit}"),
            (x_of(sec) as i32, labels_top as i32),
            style,
        ))?;
    }
    root.present()?;
    Ok(())
}

/// Dark blue through magenta and orange to pale yellow, for values in [0, 1].
fn colormap(x: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 0.2],
        [0.35, 0.05, 0.5],
        [0.8, 0.2, 0.4],
        [1.0, 0.6, 0.1],
        [1.0, 1.0, 0.7],
    ];
    let x = x.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = ((STOPS[i][c] + (STOPS[i + 1][c] - STOPS[i][c]) * f) * 255.0) as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_wraps_to_the_figure_and_loses_nothing_that_fits() {
        if !crate::figure::font_available() {
            return; // no font: figures are unlabelled (see figure::font_available)
        }
        use plotters::prelude::IntoFont;
        let font = ("sans-serif", TITLE_PX).into_font();
        let title = "record 3: synth-00003.mp4 (window at 0.0 s), label bouncing-ball, 60 frames = 2.00 s";
        for width in [120, 200, 400, 2000] {
            let lines = title_lines(title, width);
            for l in &lines {
                assert!(
                    font.box_size(l).unwrap().0 <= width,
                    "{width}: {l:?} in {lines:?}"
                );
            }
            if width >= 400 {
                assert_eq!(lines.join(" "), title, "{lines:?}");
            }
        }
        assert_eq!(title_lines(title, 2000).len(), 1);
        assert!(title_lines(title, 200).len() > 2);
        // A part wider than the figure is cut, with an ellipsis.
        let long = title_lines(&format!("record 0: {}", "x".repeat(200)), 150);
        assert!(long.iter().any(|l| l.ends_with('…')), "{long:?}");
    }
}
