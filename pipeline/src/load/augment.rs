//! Per-view augmentation on the CPU: scale jitter + crop + flip (+ optional colour jitter)
//! for video, volume jitter + SpecAugment + z-normalisation for audio.
//!
//! Video works plane by plane on planar frames and writes the `[C, T, H, W]` output
//! directly: no interleaved intermediate, no transpose.

use gdt_formats::field::frames::FrameShape;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::source::spectrogram::LOG_EPS;

/// Video augmentation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoAugment {
    /// Output side (square crop), pixels.
    pub crop: u32,
    /// Scale jitter: the frame's short side is (virtually) resized to U(min, max) before the
    /// random crop. Equal values and `crop` = short side disable it.
    pub scale_min: f32,
    /// Largest short side drawn before the crop.
    pub scale_max: f32,
    /// Chance of a horizontal flip.
    pub flip_probability: f32,
    /// Brightness, contrast and saturation jitter strength (0.4 in the reference), or none.
    pub color_jitter: Option<f32>,
}

impl Default for VideoAugment {
    fn default() -> Self {
        VideoAugment {
            crop: 112,
            scale_min: 128.0,
            scale_max: 160.0,
            flip_probability: 0.5,
            color_jitter: None,
        }
    }
}

impl VideoAugment {
    /// The reference's augmentation at another crop size: the scale jitter (short side
    /// 128..160 for a 112 crop) scaled with it, so small CPU models see the same relative
    /// zoom.
    pub fn at_crop(crop: u32) -> VideoAugment {
        let d = VideoAugment::default();
        let ratio = crop as f32 / d.crop as f32;
        VideoAugment {
            crop,
            scale_min: d.scale_min * ratio,
            scale_max: d.scale_max * ratio,
            ..d
        }
    }

    /// No randomness: a centre crop of the short side, no flip, no jitter.
    pub fn off(crop: u32) -> VideoAugment {
        VideoAugment {
            crop,
            scale_min: crop as f32,
            scale_max: crop as f32,
            flip_probability: 0.0,
            color_jitter: None,
        }
    }
}

/// What was drawn for one view, in stored-frame pixels. The trainer can treat any of it as
/// a GDT factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoDraw {
    /// Crop box in the stored frame: left, top, width, height.
    pub crop_box: [f32; 4],
    /// The short side the frame was (virtually) resized to.
    pub scale: f32,
    /// Mirrored left to right.
    pub flip: bool,
    /// Brightness, contrast, saturation factors when colour jitter is on.
    pub jitter: Option<[f32; 3]>,
}

impl VideoAugment {
    /// One view's draw for a stored frame of `width x height`.
    pub fn draw(&self, rng: &mut ChaCha8Rng, width: u32, height: u32) -> VideoDraw {
        let scale = if self.scale_max > self.scale_min {
            rng.random_range(self.scale_min..=self.scale_max)
        } else {
            self.scale_min
        };
        // A crop of `crop` pixels at short side `scale` covers this much of the stored frame.
        let side = self.crop as f32 * width.min(height) as f32 / scale;
        let (bw, bh) = (side.min(width as f32), side.min(height as f32));
        let x = rng.random_range(0.0..=(width as f32 - bw).max(0.0));
        let y = rng.random_range(0.0..=(height as f32 - bh).max(0.0));
        let (x, y) = if self.scale_max > self.scale_min || self.flip_probability > 0.0 {
            (x, y)
        } else {
            ((width as f32 - bw) / 2.0, (height as f32 - bh) / 2.0)
        };
        let flip = self.flip_probability > 0.0 && rng.random::<f32>() < self.flip_probability;
        let jitter = self.color_jitter.map(|s| {
            [
                rng.random_range(1.0 - s..=1.0 + s),
                rng.random_range(1.0 - s..=1.0 + s),
                rng.random_range(1.0 - s..=1.0 + s),
            ]
        });
        VideoDraw {
            crop_box: [x, y, bw, bh],
            scale,
            flip,
            jitter,
        }
    }
}

/// Weight of a whole source pixel in the bilinear taps. Seven bits, so that a vertically
/// blended value (at most 255 * 128) fits a signed 16-bit lane, which the SIMD horizontal
/// pass multiplies with `pmaddwd`. Against 8-bit weights, on random-noise frames, 75% of
/// pixels are unchanged, the rest move by 1 level (by 2 in 0.04%).
const ONE: u32 = 128;

/// Bilinear sampling positions along one axis: source index pair and weight (0..=ONE).
#[derive(Clone, Copy, Default)]
struct Tap {
    i0: u32,
    i1: u32,
    w: u32,
}

fn taps(out: &mut Vec<Tap>, n: u32, start: f32, len: f32, src_len: u32, reverse: bool) {
    out.clear();
    let step = len / n as f32;
    for o in 0..n {
        let o = if reverse { n - 1 - o } else { o };
        let x = (start + (o as f32 + 0.5) * step - 0.5).clamp(0.0, (src_len - 1) as f32);
        let i0 = x.floor() as u32;
        out.push(Tap {
            i0,
            // At the last column x is clamped to it, so w is 0 and i1 is never weighed.
            i1: (i0 + 1).min(src_len - 1),
            w: ((x - i0 as f32) * ONE as f32).round() as u32,
        });
    }
}

/// Eight consecutive output pixels of the horizontal pass whose left sources lie within
/// eight consecutive values of the blended row: true for every upscale (the default scale
/// jitter only upscales) and mild downscales. The SIMD pass reads them with two 16-byte
/// loads and one byte shuffle; groups that do not fit fall back to scalar taps.
#[derive(Clone, Copy)]
struct Group {
    /// First blended value read (index into the span starting at `x_lo`).
    base: u32,
    /// Byte shuffle picking each output's left value from the 8 values at `base`; the same
    /// shuffle on the load at `base + 1` picks the right values.
    shuffle: [u8; 16],
    /// (left, right) weight pairs, one per output, for `pmaddwd`.
    weights: [i16; 16],
}

fn groups(out: &mut Vec<Option<Group>>, xs: &[Tap], x_lo: u32) {
    out.clear();
    out.extend(xs.chunks(8).map(|g| {
        let lo = g.iter().map(|t| t.i0).min()?;
        let hi = g.iter().map(|t| t.i0).max()?;
        if g.len() < 8 || hi - lo > 7 {
            return None;
        }
        let mut group = Group {
            base: lo - x_lo,
            shuffle: [0; 16],
            weights: [0; 16],
        };
        for (j, t) in g.iter().enumerate() {
            let at = (2 * (t.i0 - lo)) as u8;
            group.shuffle[2 * j..2 * j + 2].copy_from_slice(&[at, at + 1]);
            group.weights[2 * j..2 * j + 2].copy_from_slice(&[(ONE - t.w) as i16, t.w as i16]);
        }
        Some(group)
    }));
}

/// Reusable per-worker scratch for [`crop_resize`].
#[derive(Default)]
pub struct ResizeScratch {
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    groups: Vec<Option<Group>>,
    /// One source row span blended vertically (x ONE fixed point), padded so that SIMD
    /// loads past its end stay inside the buffer.
    blended: Vec<u16>,
}

/// Padding after the blended span: a group at the last value reads 9 values from there.
const PAD: usize = 16;

/// Writes one view: `frames` are planar RGB frames of `shape` (as stored, in time order);
/// `out` is `[3][t][crop][crop]`. With `reverse`, output frame k is input frame t-1-k. The
/// crop box is resampled bilinearly, mirrored when `draw.flip`.
///
/// The result does not depend on the CPU: the SIMD and scalar passes compute the same
/// integers.
pub fn crop_resize(
    frames: &[u8],
    shape: FrameShape,
    crop: u32,
    draw: &VideoDraw,
    reverse: bool,
    scratch: &mut ResizeScratch,
    out: &mut [u8],
) {
    crop_resize_with(Kernel::best(), frames, shape, crop, draw, reverse, scratch, out)
}

/// The horizontal pass's implementations. The vertical blend is auto-vectorised; compiling
/// it inside an AVX2 function widens it too.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Ssse3,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// The resample kernel this CPU runs (`avx2`, `ssse3` or `scalar`), for benchmark reports:
/// the same dataset loads at different speeds on machines without SIMD.
pub fn resample_kernel() -> &'static str {
    match Kernel::best() {
        Kernel::Scalar => "scalar",
        #[cfg(target_arch = "x86_64")]
        Kernel::Ssse3 => "ssse3",
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => "avx2",
    }
}

impl Kernel {
    fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
            if std::arch::is_x86_feature_detected!("ssse3") {
                return Kernel::Ssse3;
            }
        }
        Kernel::Scalar
    }
}

#[allow(clippy::too_many_arguments)]
fn crop_resize_with(
    kernel: Kernel,
    frames: &[u8],
    shape: FrameShape,
    crop: u32,
    draw: &VideoDraw,
    reverse: bool,
    scratch: &mut ResizeScratch,
    out: &mut [u8],
) {
    let (width, height) = (shape.width, shape.height);
    let plane = (width * height) as usize;
    let c2 = (crop * crop) as usize;
    let t = frames.len() / shape.bytes();
    assert_eq!(frames.len(), t * 3 * plane);
    assert_eq!(out.len(), 3 * t * c2);
    let [bx, by, bw, bh] = draw.crop_box;
    taps(&mut scratch.xs, crop, bx, bw, width, draw.flip);
    taps(&mut scratch.ys, crop, by, bh, height, false);
    let x_lo = scratch.xs.iter().map(|t| t.i0).min().unwrap_or(0);
    let x_hi = scratch.xs.iter().map(|t| t.i1).max().unwrap_or(0);
    groups(&mut scratch.groups, &scratch.xs, x_lo);
    let span = (x_lo as usize, (x_hi - x_lo) as usize + 1);
    scratch.blended.resize(span.1 + PAD, 0);
    let job = Resample {
        frames,
        width: width as usize,
        plane,
        t,
        crop: crop as usize,
        reverse,
        span,
    };
    match kernel {
        Kernel::Scalar => job.run::<false>(scratch, out),
        // SAFETY: `Kernel::best` chose these only where the CPU has the feature; the tests
        // call them under the same check.
        #[cfg(target_arch = "x86_64")]
        Kernel::Ssse3 => unsafe { job.run_ssse3(scratch, out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { job.run_avx2(scratch, out) },
    }
    if let Some([b, ct, s]) = draw.jitter {
        color_jitter(out, t * c2, b, ct, s);
    }
}

/// One view's resample, separated from the kernel choice.
struct Resample<'a> {
    frames: &'a [u8],
    width: usize,
    plane: usize,
    t: usize,
    crop: usize,
    reverse: bool,
    /// First source column read and the number of columns.
    span: (usize, usize),
}

impl Resample<'_> {
    /// # Safety
    /// The CPU must support SSSE3 (checked at run time by the caller).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "ssse3")]
    unsafe fn run_ssse3(&self, scratch: &mut ResizeScratch, out: &mut [u8]) {
        self.run::<true>(scratch, out)
    }

    /// # Safety
    /// The CPU must support AVX2 (checked at run time by the caller).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&self, scratch: &mut ResizeScratch, out: &mut [u8]) {
        self.run::<true>(scratch, out)
    }

    /// Vertical blend first, over the contiguous span of source columns the crop reads
    /// (vectorises), then two horizontal taps per output pixel: the same sum of four
    /// weighted pixels as a direct bilinear, in about half the scattered reads.
    #[inline(always)]
    fn run<const SIMD: bool>(&self, scratch: &mut ResizeScratch, out: &mut [u8]) {
        let ResizeScratch {
            xs,
            ys,
            groups,
            blended,
        } = scratch;
        let (x_lo, n) = self.span;
        let (w, crop, t) = (self.width, self.crop, self.t);
        let c2 = crop * crop;
        for c in 0..3 {
            for k in 0..t {
                let src_t = if self.reverse { t - 1 - k } else { k };
                let src = &self.frames[(src_t * 3 + c) * self.plane..][..self.plane];
                let dst = &mut out[(c * t + k) * c2..][..c2];
                for (row, ty) in dst.chunks_exact_mut(crop).zip(ys.iter()) {
                    let r0 = &src[ty.i0 as usize * w + x_lo..][..n];
                    let r1 = &src[ty.i1 as usize * w + x_lo..][..n];
                    // 16-bit lanes: at most 255 * ONE, so nothing overflows.
                    let (w0, w1) = ((ONE - ty.w) as u16, ty.w as u16);
                    for ((b, &a0), &a1) in blended[..n].iter_mut().zip(r0).zip(r1) {
                        *b = a0 as u16 * w0 + a1 as u16 * w1;
                    }
                    if SIMD {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: only reached from the SSSE3/AVX2 entry points.
                        unsafe {
                            horizontal_ssse3(blended, groups, xs, x_lo, row)
                        };
                    } else {
                        horizontal_scalar(blended, xs, x_lo, row);
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn horizontal_scalar(blended: &[u16], xs: &[Tap], x_lo: usize, row: &mut [u8]) {
    for (o, tx) in row.iter_mut().zip(xs) {
        let (l, r) = (
            blended[tx.i0 as usize - x_lo] as u32,
            blended[tx.i1 as usize - x_lo] as u32,
        );
        *o = ((l * (ONE - tx.w) + r * tx.w + ONE * ONE / 2) / (ONE * ONE)) as u8;
    }
}

/// Eight outputs per step: the left and right values come from two overlapping loads and
/// one shuffle each, and `pmaddwd` weighs and sums each (left, right) pair.
///
/// # Safety
/// The CPU must support SSSE3, and every `Some` group must have been built by
/// `ResizeScratch` for this `blended` row: `base + 9 <= blended.len()` (the row carries
/// padding for that) and a full 8-byte output chunk. Unaligned loads only.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
#[inline]
unsafe fn horizontal_ssse3(
    blended: &[u16],
    groups: &[Option<Group>],
    xs: &[Tap],
    x_lo: usize,
    row: &mut [u8],
) {
    use std::arch::x86_64::*;
    let half = _mm_set1_epi32((ONE * ONE / 2) as i32);
    for (g, (group, out)) in groups.iter().zip(row.chunks_mut(8)).enumerate() {
        match group {
            Some(group) => {
                // In bounds: base + 9 <= span + 8 < blended.len() (PAD), and out has 8 bytes.
                debug_assert!(group.base as usize + 9 <= blended.len() && out.len() == 8);
                let p = blended.as_ptr().add(group.base as usize);
                let shuffle = _mm_loadu_si128(group.shuffle.as_ptr().cast());
                let left = _mm_shuffle_epi8(_mm_loadu_si128(p.cast()), shuffle);
                let right = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1).cast()), shuffle);
                let w_lo = _mm_loadu_si128(group.weights.as_ptr().cast());
                let w_hi = _mm_loadu_si128(group.weights.as_ptr().add(8).cast());
                let sum = |pairs, weights| {
                    _mm_srli_epi32::<14>(_mm_add_epi32(_mm_madd_epi16(pairs, weights), half))
                };
                let lo = sum(_mm_unpacklo_epi16(left, right), w_lo);
                let hi = sum(_mm_unpackhi_epi16(left, right), w_hi);
                let words = _mm_packs_epi32(lo, hi);
                _mm_storel_epi64(out.as_mut_ptr().cast(), _mm_packus_epi16(words, words));
            }
            None => horizontal_scalar(blended, &xs[g * 8..g * 8 + out.len()], x_lo, out),
        }
    }
}

/// Brightness, contrast and saturation on a `[3][n]` planar buffer: each mixes the three
/// channels of the same pixel, which is why it must run on the channel axis (the reference
/// applied it to the wrong one).
fn color_jitter(out: &mut [u8], n: usize, brightness: f32, contrast: f32, saturation: f32) {
    let (r, rest) = out.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    let gray = |r: f32, g: f32, b: f32| 0.299 * r + 0.587 * g + 0.114 * b;
    let mut mean = 0f64;
    for i in 0..n {
        mean += gray(r[i] as f32, g[i] as f32, b[i] as f32) as f64 * brightness as f64;
    }
    let mean = (mean / n.max(1) as f64) as f32;
    for i in 0..n {
        let mut px = [
            r[i] as f32 * brightness,
            g[i] as f32 * brightness,
            b[i] as f32 * brightness,
        ];
        for v in &mut px {
            *v = (*v - mean) * contrast + mean;
        }
        let y = gray(px[0], px[1], px[2]);
        for v in &mut px {
            *v = ((*v - y) * saturation + y).clamp(0.0, 255.0);
        }
        (r[i], g[i], b[i]) = (px[0] as u8, px[1] as u8, px[2] as u8);
    }
}

/// Audio augmentation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioAugment {
    /// Volume jitter: alpha ~ U(1 - v, 1 + v) on the waveform, i.e. + 2 ln(alpha) on the log
    /// spectrogram (0.1 in the reference).
    pub volume: f32,
    /// SpecAugment: one frequency mask of width U[0, freq_mask) rows and one time mask of
    /// width U[0, time_mask) frames, set to 0 after normalisation.
    pub freq_mask: u32,
    /// Widest time mask, spectrogram frames (SpecAugment).
    pub time_mask: u32,
    /// z-normalisation constants (the reference's, for int16-scale log-mel).
    pub mean: f32,
    /// z-normalisation: the standard deviation divided by.
    pub std: f32,
}

impl Default for AudioAugment {
    fn default() -> Self {
        AudioAugment {
            volume: 0.1,
            freq_mask: 3,
            time_mask: 6,
            mean: 1.93,
            std: 17.89,
        }
    }
}

impl AudioAugment {
    /// Normalisation only.
    pub fn off() -> AudioAugment {
        AudioAugment {
            volume: 0.0,
            freq_mask: 0,
            time_mask: 0,
            ..AudioAugment::default()
        }
    }
}

/// What was drawn for one view's audio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AudioDraw {
    /// Volume jitter, as the log-energy offset it adds (2 ln alpha).
    pub gain_log: f32,
    /// (first row, rows) and (first frame, frames) masked.
    pub freq_mask: (u32, u32),
    /// Masked frames: (first, count).
    pub time_mask: (u32, u32),
}

impl AudioAugment {
    /// One view's draw for a `mels x frames` slice.
    pub fn draw(&self, rng: &mut ChaCha8Rng, mels: u32, frames: u32) -> AudioDraw {
        let alpha: f32 = if self.volume > 0.0 {
            rng.random_range(1.0 - self.volume..=1.0 + self.volume)
        } else {
            1.0
        };
        let mut mask = |max: u32, len: u32| {
            if max == 0 {
                return (0, 0);
            }
            let w = rng.random_range(0..max).min(len);
            (rng.random_range(0..=len - w), w)
        };
        let freq_mask = mask(self.freq_mask, mels);
        let time_mask = mask(self.time_mask, frames);
        AudioDraw {
            gain_log: 2.0 * alpha.ln(),
            freq_mask,
            time_mask,
        }
    }

    /// Writes one view's `[mels][frames]` from the record spectrogram (`[mels][total]`),
    /// starting at spectrogram frame `start`, time-reversed if `reverse`.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        mel: &[f32],
        total: usize,
        mels: usize,
        start: usize,
        frames: usize,
        reverse: bool,
        draw: &AudioDraw,
        out: &mut [f32],
    ) {
        assert!(start + frames <= total && out.len() == mels * frames);
        let inv = 1.0 / self.std;
        for m in 0..mels {
            let row = &mel[m * total + start..m * total + start + frames];
            let dst = &mut out[m * frames..(m + 1) * frames];
            for (j, o) in dst.iter_mut().enumerate() {
                let v = row[if reverse { frames - 1 - j } else { j }];
                // Volume scales power: the log floor of an empty filter does not move.
                let v = if v > LOG_EPS { v + draw.gain_log } else { v };
                *o = (v - self.mean) * inv;
            }
        }
        let (f0, fw) = draw.freq_mask;
        for m in f0..f0 + fw {
            out[m as usize * frames..(m as usize + 1) * frames].fill(0.0);
        }
        let (t0, tw) = draw.time_mask;
        for m in 0..mels {
            out[m * frames + t0 as usize..m * frames + (t0 + tw) as usize].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::sampler::draw_stream;

    fn frames(t: usize, w: u32, h: u32) -> Vec<u8> {
        (0..t * 3 * (w * h) as usize)
            .map(|i| (i * 7 % 251) as u8)
            .collect()
    }

    #[test]
    fn identity_crop_copies_and_flip_mirrors_and_reverse_reverses() {
        let (t, w, h) = (3, 8, 8);
        let f = frames(t, w, h);
        let draw = VideoDraw {
            crop_box: [0.0, 0.0, 8.0, 8.0],
            scale: 8.0,
            flip: false,
            jitter: None,
        };
        let mut out = vec![0u8; 3 * t * 64];
        let mut s = ResizeScratch::default();
        crop_resize(
            &f,
            FrameShape { width: w, height: h },
            8,
            &draw,
            false,
            &mut s,
            &mut out,
        );
        // out is [C][T][H][W]; input is [T][C][H][W].
        for c in 0..3 {
            for k in 0..t {
                assert_eq!(
                    &out[(c * t + k) * 64..(c * t + k + 1) * 64],
                    &f[(k * 3 + c) * 64..(k * 3 + c + 1) * 64]
                );
            }
        }
        let mut flipped = vec![0u8; out.len()];
        crop_resize(
            &f,
            FrameShape { width: w, height: h },
            8,
            &VideoDraw { flip: true, ..draw },
            false,
            &mut s,
            &mut flipped,
        );
        for row in 0..3 * t * 8 {
            let a = &out[row * 8..row * 8 + 8];
            let b: Vec<u8> = flipped[row * 8..row * 8 + 8].iter().rev().copied().collect();
            assert_eq!(a, &b[..]);
        }
        let mut reversed = vec![0u8; out.len()];
        crop_resize(
            &f,
            FrameShape { width: w, height: h },
            8,
            &draw,
            true,
            &mut s,
            &mut reversed,
        );
        for c in 0..3 {
            for k in 0..t {
                assert_eq!(
                    &reversed[(c * t + k) * 64..(c * t + k + 1) * 64],
                    &out[(c * t + t - 1 - k) * 64..(c * t + t - k) * 64]
                );
            }
        }
    }

    /// Direct 4-tap bilinear at the same sample positions, written the obvious way.
    fn reference_pixel(src: &[u8], w: usize, h: usize, fx: f32, fy: f32) -> u8 {
        let (x, y) = (fx.clamp(0.0, (w - 1) as f32), fy.clamp(0.0, (h - 1) as f32));
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (wx, wy) = (
            ((x - x0 as f32) * 128.0).round() as u32,
            ((y - y0 as f32) * 128.0).round() as u32,
        );
        let p = |xx: usize, yy: usize| src[yy * w + xx] as u32;
        let top = p(x0, y0) * (128 - wx) + p(x1, y0) * wx;
        let bot = p(x0, y1) * (128 - wx) + p(x1, y1) * wx;
        ((top * (128 - wy) + bot * wy + (1 << 13)) >> 14) as u8
    }

    #[test]
    fn resample_equals_a_direct_bilinear_for_random_draws() {
        let (w, h) = (171u32, 128u32);
        let f = frames(2, w, h);
        let aug = VideoAugment::default();
        let mut s = ResizeScratch::default();
        let mut out = vec![0u8; 3 * 2 * 112 * 112];
        for r in 0..20 {
            let d = aug.draw(&mut draw_stream(8, 0, r, 0), w, h);
            crop_resize(
                &f,
                FrameShape { width: w, height: h },
                112,
                &d,
                false,
                &mut s,
                &mut out,
            );
            let [bx, by, bw, bh] = d.crop_box;
            let plane = (w * h) as usize;
            for c in 0..3 {
                for k in 0..2 {
                    let src = &f[(k * 3 + c) * plane..(k * 3 + c + 1) * plane];
                    for oy in 0..112 {
                        for ox in 0..112 {
                            let sx = if d.flip { 111 - ox } else { ox };
                            // Same float operations as the sampler, so rounding agrees.
                            let (step_x, step_y) = (bw / 112.0, bh / 112.0);
                            let fx = bx + (sx as f32 + 0.5) * step_x - 0.5;
                            let fy = by + (oy as f32 + 0.5) * step_y - 0.5;
                            let want = reference_pixel(src, w as usize, h as usize, fx, fy);
                            assert_eq!(
                                out[((c * 2 + k) * 112 + oy) * 112 + ox],
                                want,
                                "draw {r} c {c} t {k} ({ox}, {oy})"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_kernel_gives_the_scalar_result_for_upscales_downscales_and_odd_crops() {
        let (w, h) = (171u32, 128u32);
        let shape = FrameShape { width: w, height: h };
        let f: Vec<u8> = (0..3 * shape.bytes())
            .map(|i| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let mut kernels = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("ssse3") {
                kernels.push(Kernel::Ssse3);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                kernels.push(Kernel::Avx2);
            }
            assert!(kernels.len() > 1, "no SIMD kernel on this x86-64 CPU");
        }
        let mut s = ResizeScratch::default();
        // The default jitter (upscales only), an odd crop, downscales by up to 3x, and a
        // crop smaller than one SIMD group.
        for (crop, lo, hi) in [
            (112, 128.0, 160.0),
            (100, 110.0, 150.0),
            (64, 30.0, 200.0),
            (5, 2.0, 9.0),
        ] {
            let aug = VideoAugment {
                crop,
                scale_min: lo,
                scale_max: hi,
                flip_probability: 0.5,
                color_jitter: None,
            };
            let c2 = (crop * crop) as usize;
            for r in 0..40 {
                let d = aug.draw(&mut draw_stream(5, 0, r, 0), w, h);
                let mut want = vec![0u8; 3 * 3 * c2];
                crop_resize_with(Kernel::Scalar, &f, shape, crop, &d, r % 3 == 0, &mut s, &mut want);
                for &k in &kernels[1..] {
                    let mut got = vec![0u8; want.len()];
                    crop_resize_with(k, &f, shape, crop, &d, r % 3 == 0, &mut s, &mut got);
                    assert!(got == want, "{k:?} differs from scalar: crop {crop}, draw {d:?}");
                }
                if crop == 112 {
                    // The default jitter must take the fast path for every group.
                    assert!(s.groups.iter().all(Option::is_some), "draw {d:?}");
                }
            }
        }
    }

    #[test]
    fn draws_stay_inside_the_frame_and_cover_the_scale_range() {
        let aug = VideoAugment::default();
        let (mut lo, mut hi, mut flips) = (f32::MAX, 0f32, 0);
        for r in 0..500 {
            let d = aug.draw(&mut draw_stream(3, 0, r, 0), 171, 128);
            let [x, y, w, h] = d.crop_box;
            assert!(x >= 0.0 && y >= 0.0 && x + w <= 171.0 + 1e-3 && y + h <= 128.0 + 1e-3);
            assert!((w - 112.0 * 128.0 / d.scale).abs() < 1e-3);
            lo = lo.min(d.scale);
            hi = hi.max(d.scale);
            flips += d.flip as u32;
        }
        assert!(lo < 130.0 && hi > 158.0, "{lo}..{hi}");
        assert!((200..300).contains(&flips), "{flips} flips of 500");
    }

    #[test]
    fn audio_is_normalised_shifted_masked_and_reversed() {
        let (mels, total) = (4usize, 20usize);
        let mel: Vec<f32> = (0..mels * total)
            .map(|i| if i < total { LOG_EPS } else { i as f32 })
            .collect();
        let aug = AudioAugment::off();
        let draw = AudioDraw {
            gain_log: 0.5,
            freq_mask: (2, 1),
            time_mask: (3, 2),
        };
        let mut out = vec![0f32; mels * 5];
        aug.apply(&mel, total, mels, 10, 5, false, &draw, &mut out);
        let z = |v: f32| (v - 1.93) / 17.89;
        assert!(
            (out[0] - z(LOG_EPS)).abs() < 1e-6,
            "the log floor is not shifted by volume"
        );
        assert!((out[5] - z(mel[total + 10] + 0.5)).abs() < 1e-6);
        assert!(out[10..15].iter().all(|&v| v == 0.0), "frequency mask");
        assert!(
            (0..mels).all(|m| out[m * 5 + 3] == 0.0 && out[m * 5 + 4] == 0.0),
            "time mask"
        );
        let mut rev = vec![0f32; mels * 5];
        let plain = AudioDraw {
            gain_log: 0.0,
            freq_mask: (0, 0),
            time_mask: (0, 0),
        };
        aug.apply(&mel, total, mels, 10, 5, true, &plain, &mut rev);
        aug.apply(&mel, total, mels, 10, 5, false, &plain, &mut out);
        for m in 0..mels {
            let f: Vec<f32> = out[m * 5..m * 5 + 5].iter().rev().copied().collect();
            assert_eq!(&rev[m * 5..m * 5 + 5], &f[..]);
        }
    }

    #[test]
    fn colour_jitter_keeps_grey_grey_under_saturation() {
        let mut px = vec![100u8; 3 * 4];
        color_jitter(&mut px, 4, 1.0, 1.0, 1.4);
        assert!(px.iter().all(|&v| v == 100));
    }
}
