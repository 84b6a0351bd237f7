//! Figures for people: a record's preview (`gdt preview`) and the font every figure of gdt
//! (the preview, the trainer's `plot.png`) is labelled with.
//!
//! Text needs a TrueType font, and the GPU nodes gdt runs on may have none installed, so
//! labels use the first DejaVu/Liberation font found on the machine (`make setup` installs
//! DejaVu); without one, figures are drawn unlabelled.

use std::sync::OnceLock;

use plotters::style::FontStyle;

pub mod preview;

const FONT_FILES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a system font once as plotters' `sans-serif`; `false` when there is none.
pub fn font_available() -> bool {
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
