//! How a stream's Y'CbCr maps to RGB: its matrix and its range, read from the stream's tags
//! or, untagged, chosen as players choose. Decoding and the synthetic encoder share it, so a
//! tagged synthetic file holds exactly what its tags say.

use ff::color::{Range, Space};
use ff::format::Pixel;
use ff::{frame, software};
use ffmpeg_next as ff;

/// A Y'CbCr matrix (libswscale's `SWS_CS_*`) and whether values use the full 0-255 range
/// (JPEG range) or the limited 16-235/240 one.
///
/// The stream's own tags decide when it has them. Untagged, the choice is the one players
/// make: BT.709 for HD sizes (width >= 1280 or height >= 720), BT.601 below; limited range
/// unless the pixel format is a full-range `yuvj*` one. (libswscale alone takes BT.601 for
/// anything unspecified, which is wrong for most HD footage.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SourceColour {
    matrix: std::os::raw::c_int,
    full_range: bool,
}

impl SourceColour {
    /// The conversion a decoded frame calls for.
    pub(crate) fn of(f: &frame::Video) -> SourceColour {
        SourceColour::tagged(
            f.color_space(),
            f.color_range(),
            f.format(),
            f.width(),
            f.height(),
        )
    }

    /// The conversion for a stream with these tags, pixel format and size.
    pub(crate) fn tagged(space: Space, range: Range, format: Pixel, width: u32, height: u32) -> SourceColour {
        use ff::ffi::{SWS_CS_BT2020, SWS_CS_FCC, SWS_CS_ITU601, SWS_CS_ITU709, SWS_CS_SMPTE240M};
        let matrix = match space {
            Space::BT709 => SWS_CS_ITU709,
            Space::BT470BG | Space::SMPTE170M => SWS_CS_ITU601,
            Space::SMPTE240M => SWS_CS_SMPTE240M,
            Space::FCC => SWS_CS_FCC,
            Space::BT2020NCL | Space::BT2020CL => SWS_CS_BT2020,
            _ if width >= 1280 || height >= 720 => SWS_CS_ITU709,
            _ => SWS_CS_ITU601,
        };
        let full_range = match range {
            Range::JPEG => true,
            Range::MPEG => false,
            _ => matches!(
                format,
                Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P
            ),
        };
        SourceColour { matrix, full_range }
    }

    /// Sets a YUV -> RGB scaler to this conversion (RGB out, full range). Sources that are
    /// not YUV ignore it.
    pub(crate) fn set_for_decoding(self, scaler: &mut software::scaling::Context) {
        self.set(scaler, true);
    }

    /// Sets an RGB -> YUV scaler to this conversion (the encoder's side).
    pub(crate) fn set_for_encoding(self, scaler: &mut software::scaling::Context) {
        self.set(scaler, false);
    }

    fn set(self, scaler: &mut software::scaling::Context, yuv_in: bool) {
        use ff::ffi::{sws_getCoefficients, sws_setColorspaceDetails, SWS_CS_DEFAULT};
        // SAFETY: the context is live and owned by `scaler`; the tables are static ones that
        // libswscale returns; 1 << 16 is its neutral brightness/contrast/saturation scale.
        // The input's table and range come first, the output's second; RGB is full range.
        unsafe {
            let (this, rgb) = (
                sws_getCoefficients(self.matrix),
                sws_getCoefficients(SWS_CS_DEFAULT),
            );
            let (inv_table, src_range, table, dst_range) = if yuv_in {
                (this, self.full_range as i32, rgb, 1)
            } else {
                (rgb, 1, this, self.full_range as i32)
            };
            sws_setColorspaceDetails(
                scaler.as_mut_ptr(),
                inv_table,
                src_range,
                table,
                dst_range,
                0,
                1 << 16,
                1 << 16,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::ffi::{SWS_CS_ITU601, SWS_CS_ITU709};

    /// The rule for streams without tags (files with tags: `tests/colour.rs`).
    #[test]
    fn untagged_streams_are_taken_as_players_take_them() {
        let untagged =
            |format, w, h| SourceColour::tagged(Space::Unspecified, Range::Unspecified, format, w, h);
        let colour = |matrix, full_range| SourceColour { matrix, full_range };
        assert_eq!(untagged(Pixel::YUV420P, 640, 480), colour(SWS_CS_ITU601, false));
        assert_eq!(untagged(Pixel::YUV420P, 1280, 536), colour(SWS_CS_ITU709, false));
        assert_eq!(untagged(Pixel::YUV420P, 960, 720), colour(SWS_CS_ITU709, false));
        assert_eq!(untagged(Pixel::YUVJ420P, 640, 480), colour(SWS_CS_ITU601, true));
        assert_eq!(untagged(Pixel::YUVJ422P, 1920, 1080), colour(SWS_CS_ITU709, true));
        // A tag wins over the size and the pixel format.
        let tagged = SourceColour::tagged(Space::BT470BG, Range::MPEG, Pixel::YUVJ420P, 1920, 1080);
        assert_eq!(tagged, colour(SWS_CS_ITU601, false));
    }
}
