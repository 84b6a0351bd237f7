//! The parameters a dataset was packed with. They travel in every shard's header and in
//! `dataset.json`, so a shard describes itself and a resume can refuse to mix settings.

use serde::{Deserialize, Serialize};

/// How frames are stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FrameCodec {
    /// Planar RGB u8, zstd per chunk. With `delta`, every frame after a chunk's first is
    /// stored as its byte-wise (wrapping) difference from the previous frame.
    RawZstd {
        /// zstd level, -7..=22.
        level: i32,
        /// Store frames after the first of a chunk as differences.
        delta: bool,
        /// With `accel` > 0 (levels >= 1), chunks whose content `level`'s match search barely
        /// helps are compressed with zstd's fast search accelerated by `accel` instead,
        /// literals still entropy-coded: noisy frame differences (sensor noise, grain, the
        /// synthetic corpus) then cost a third of the time and decompress faster, for a few
        /// percent more bytes. See [`crate::field::frames`] for how chunks are chosen. 0
        /// (datasets packed before it existed): `level`'s own search everywhere.
        #[serde(default, skip_serializing_if = "is_zero")]
        accel: u32,
    },
    /// One baseline JPEG per frame (lossy), for users short of disk.
    Jpeg {
        /// JPEG quality, 1..=100.
        quality: u8,
    },
}

impl FrameCodec {
    /// The zstd level of the default codec.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
    /// The default codec's acceleration for noise-like chunks: one match probe per ~1 KB
    /// where nothing matched. On the synthetic corpus 64 to 4096 give the same size within
    /// 0.3%; 1024 was fastest to compress and to decompress (`cargo bench --bench pack`).
    pub const DEFAULT_ZSTD_ACCEL: u32 = 1024;
    /// The largest acceleration accepted (zstd's own limit is the 128 KiB block).
    pub const MAX_ZSTD_ACCEL: u32 = 65_536;
    /// The JPEG quality used when none is given.
    pub const DEFAULT_JPEG_QUALITY: u8 = 90;

    /// Planar RGB + zstd at `level`, with or without the delta filter, and `accel` when
    /// given. Unset, the acceleration is [`FrameCodec::DEFAULT_ZSTD_ACCEL`] for the default
    /// level with the delta filter, and 0 (the level's own search) otherwise: raw frames
    /// hold spatial repeats the full search finds while their differences mostly do not,
    /// and a level asked for by name gets its own search unless acceleration is asked for too.
    pub fn raw_zstd(level: i32, delta: bool, accel: Option<u32>) -> FrameCodec {
        let default_accel = if delta && level == FrameCodec::DEFAULT_ZSTD_LEVEL {
            FrameCodec::DEFAULT_ZSTD_ACCEL
        } else {
            0
        };
        FrameCodec::RawZstd {
            level,
            delta,
            accel: accel.unwrap_or(default_accel),
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::RawZstd {
            level: FrameCodec::DEFAULT_ZSTD_LEVEL,
            delta: true,
            accel: FrameCodec::DEFAULT_ZSTD_ACCEL,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How spectrogram filters are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MelFilters {
    /// Exactly python_speech_features 0.6's `get_filterbanks`, as the GDT reference uses: with
    /// many filters some are narrower than an FFT bin, come out empty and sit at log(eps).
    Reference,
}

/// How mono samples reach the filterbank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pcm {
    /// Rounded to 16-bit integers first (to nearest, ties to even, clipped to
    /// -32768..=32767): what FFmpeg's `s16` output gives the reference, which reads its audio
    /// that way. Near-silence then sits at the reference's ln(eps) floor.
    Int16,
    /// Floats at int16 scale, never rounded: how gdt analysed audio before `pcm` existed.
    Float,
}

impl Pcm {
    /// What a dataset that does not name `pcm` was packed with (it predates the field).
    fn unnamed() -> Pcm {
        Pcm::Float
    }
}

/// Everything that decides the bytes of a packed record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackParams {
    /// Frames per second after resampling by timestamp.
    pub fps: u32,
    /// Stored short side in pixels (aspect ratio kept).
    pub short_side: u32,
    /// Cap on the stored long side, pixels.
    pub max_long_side: u32,
    /// Longest window stored per record, seconds.
    pub max_seconds: f64,
    /// Frames per independently compressed chunk.
    pub chunk_frames: u32,
    /// How frame chunks are stored.
    pub codec: FrameCodec,
    /// Audio rate after resampling, Hz.
    pub sample_rate: u32,
    /// Mel filters (spectrogram rows).
    pub mels: u32,
    /// Analysis window, samples (20 ms at 24 kHz).
    pub window_samples: u32,
    /// Hop between spectrogram frames, samples (10 ms at 24 kHz).
    pub hop_samples: u32,
    /// FFT size.
    pub nfft: u32,
    /// Pre-emphasis coefficient.
    pub preemphasis: f32,
    /// Lowest mel band edge, Hz.
    pub fmin_hz: f32,
    /// Highest mel band edge, Hz.
    pub fmax_hz: f32,
    /// How the filters are built.
    pub mel_filters: MelFilters,
    /// How samples are quantised before analysis. Missing in datasets packed before it
    /// existed, which read as [`Pcm::Float`], so a resume of one with today's defaults is
    /// refused while reading it works.
    #[serde(default = "Pcm::unnamed")]
    pub pcm: Pcm,
}

impl Default for PackParams {
    fn default() -> Self {
        PackParams {
            fps: 30,
            short_side: 128,
            max_long_side: 256,
            max_seconds: 10.0,
            chunk_frames: 8,
            codec: FrameCodec::default(),
            sample_rate: 24_000,
            mels: 257,
            window_samples: 480,
            hop_samples: 240,
            nfft: 1024,
            preemphasis: 0.97,
            fmin_hz: 0.0,
            fmax_hz: 12_000.0,
            mel_filters: MelFilters::Reference,
            pcm: Pcm::Int16,
        }
    }
}

impl PackParams {
    /// `gdt pack --fast-load`: what `gdt bench load` measured fastest per loader core
    /// (docs/LOADER.md), for about 1.5x the disk of the defaults. Small chunks waste fewer
    /// decoded frames per clip and stay in cache; a negative zstd level skips entropy-coding
    /// literals.
    pub fn fast_load() -> PackParams {
        PackParams {
            chunk_frames: 4,
            codec: FrameCodec::RawZstd {
                level: -1,
                delta: true,
                accel: 0,
            },
            ..PackParams::default()
        }
    }

    /// Checks ranges, so that a reader can size buffers from these numbers safely.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        check((1..=240).contains(&self.fps), "fps must be in 1..=240")?;
        check(
            (16..=1080).contains(&self.short_side),
            "short side must be in 16..=1080",
        )?;
        check(
            self.max_long_side >= self.short_side && self.max_long_side <= 4096,
            "max long side must be in short side..=4096",
        )?;
        check(
            self.max_seconds > 0.0 && self.max_seconds <= 3600.0,
            "max seconds must be in (0, 3600]",
        )?;
        check(
            (1..=256).contains(&self.chunk_frames),
            "chunk frames must be in 1..=256",
        )?;
        check(
            (8_000..=192_000).contains(&self.sample_rate),
            "sample rate must be in 8000..=192000",
        )?;
        check((1..=1024).contains(&self.mels), "mels must be in 1..=1024")?;
        check(
            self.nfft.is_power_of_two() && (64..=16384).contains(&self.nfft),
            "nfft must be a power of two",
        )?;
        check(
            self.window_samples > 0 && self.window_samples <= self.nfft,
            "window must be in 1..=nfft samples",
        )?;
        check(
            self.hop_samples > 0 && self.hop_samples <= self.window_samples,
            "hop must be in 1..=window",
        )?;
        check(
            0.0 <= self.fmin_hz
                && self.fmin_hz < self.fmax_hz
                && self.fmax_hz <= self.sample_rate as f32 / 2.0,
            "mel band must satisfy 0 <= fmin < fmax <= sample rate / 2",
        )?;
        match self.codec {
            FrameCodec::RawZstd { level, accel, .. } => {
                check((-7..=22).contains(&level), "zstd level must be in -7..=22")?;
                check(
                    accel <= FrameCodec::MAX_ZSTD_ACCEL,
                    "zstd accel must be in 0..=65536",
                )?;
                check(
                    accel == 0 || level >= 1,
                    "zstd accel needs a zstd level >= 1 (negative levels are accelerated already)",
                )?
            }
            FrameCodec::Jpeg { quality } => {
                check((1..=100).contains(&quality), "JPEG quality must be in 1..=100")?
            }
        }
        Ok(())
    }

    /// Stored frame size for a `width x height` source: short side scaled to `short_side`
    /// (aspect kept), then the long side centre-cropped to `max_long_side`. Returns (scaled
    /// width, scaled height, stored width, stored height). Cropping rather than shrinking
    /// keeps the short side, which the loader's 112-pixel crops rely on.
    pub fn stored_geometry(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let short = width.min(height).max(1) as f64;
        let s = self.short_side as f64 / short;
        let (sw, sh) = if width <= height {
            (self.short_side, ((height as f64 * s).round() as u32).max(1))
        } else {
            (((width as f64 * s).round() as u32).max(1), self.short_side)
        };
        (sw, sh, sw.min(self.max_long_side), sh.min(self.max_long_side))
    }

    /// Spectrogram frames per second of audio.
    pub fn spectrogram_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_samples as f64
    }

    /// The largest frame count a record can hold under these parameters (plus slack for
    /// rounding), which bounds every allocation a reader makes.
    pub fn max_frames(&self) -> u64 {
        (self.max_seconds * self.fps as f64).ceil() as u64 + 1
    }

    /// The largest spectrogram frame count a record can hold.
    pub fn max_spectrogram_frames(&self) -> u64 {
        (self.max_seconds * self.spectrogram_rate()).ceil() as u64 + 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceleration_defaults_to_the_default_level_with_delta_only() {
        let raw = |level, delta, accel| FrameCodec::RawZstd { level, delta, accel };
        assert_eq!(FrameCodec::raw_zstd(1, true, None), FrameCodec::default());
        assert_eq!(FrameCodec::raw_zstd(1, true, None), raw(1, true, 1024));
        assert_eq!(FrameCodec::raw_zstd(3, true, None), raw(3, true, 0));
        assert_eq!(FrameCodec::raw_zstd(1, false, None), raw(1, false, 0));
        assert_eq!(FrameCodec::raw_zstd(-1, true, None), raw(-1, true, 0));
        assert_eq!(FrameCodec::raw_zstd(3, true, Some(64)), raw(3, true, 64));
        assert_eq!(FrameCodec::raw_zstd(1, true, Some(0)), raw(1, true, 0));
    }

    #[test]
    fn parameters_without_pcm_are_the_unrounded_path_of_earlier_packs() {
        let mut json = serde_json::to_value(PackParams::default()).unwrap();
        assert_eq!(json["pcm"], "int16");
        json.as_object_mut().unwrap().remove("pcm");
        let old: PackParams = serde_json::from_value(json).unwrap();
        assert_eq!(old.pcm, Pcm::Float);
        assert_ne!(
            old,
            PackParams::default(),
            "a resume across the change is refused"
        );
    }

    #[test]
    fn codecs_without_accel_are_the_full_search_of_earlier_packs() {
        // What every dataset packed before `accel` existed says of its codec.
        let old = r#"{"kind":"raw-zstd","level":1,"delta":true}"#;
        let codec: FrameCodec = serde_json::from_str(old).unwrap();
        let full = FrameCodec::RawZstd {
            level: 1,
            delta: true,
            accel: 0,
        };
        assert_eq!(codec, full);
        assert_ne!(
            codec,
            FrameCodec::default(),
            "a resume across the change is refused"
        );
        // Written back the same way, so their parameters read as before.
        assert_eq!(serde_json::to_string(&full).unwrap(), old);
        let default = serde_json::to_value(FrameCodec::default()).unwrap();
        assert_eq!(default["accel"], FrameCodec::DEFAULT_ZSTD_ACCEL);
    }

    #[test]
    fn accel_is_checked_against_the_level() {
        let with = |level, accel| PackParams {
            codec: FrameCodec::RawZstd {
                level,
                delta: true,
                accel,
            },
            ..PackParams::default()
        };
        assert!(with(1, 1024).validate().is_ok());
        assert!(with(19, 64).validate().is_ok());
        assert!(with(1, 0).validate().is_ok());
        assert!(with(-1, 0).validate().is_ok());
        assert!(with(-1, 64).validate().unwrap_err().contains("zstd accel needs"));
        assert!(with(1, 1 << 20).validate().unwrap_err().contains("0..=65536"));
    }

    #[test]
    fn stored_geometry_keeps_the_short_side_and_crops_the_long_one() {
        let p = PackParams::default();
        assert_eq!(p.stored_geometry(640, 480), (171, 128, 171, 128));
        assert_eq!(p.stored_geometry(640, 360), (228, 128, 228, 128));
        assert_eq!(p.stored_geometry(360, 640), (128, 228, 128, 228));
        assert_eq!(p.stored_geometry(1920, 480), (512, 128, 256, 128));
    }
}
