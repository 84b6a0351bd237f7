//! Reading real container files through FFmpeg: what a file holds, its frames, its audio.
//!
//! Timestamps come from the container, never from counting: decoders add priming samples and
//! variable-frame-rate files have irregular gaps, and only timestamps survive both.

use std::path::{Path, PathBuf};

use ff::format::{Pixel, Sample};
use ff::{codec, format, frame, media, software};
use ffmpeg_next as ff;
use serde::Serialize;

use crate::ffmpeg_init;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// An FFmpeg call failed.
    #[error("{path}: FFmpeg failed while {what}: {source}")]
    Ffmpeg {
        /// The source file.
        path: PathBuf,
        /// What gdt was doing.
        what: &'static str,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// The file has no stream of a kind gdt needs.
    #[error("{path}: no {kind} stream")]
    NoStream {
        /// The source file.
        path: PathBuf,
        /// `video` or `audio`.
        kind: &'static str,
    },
    /// The audio comes in a sample format gdt does not convert.
    #[error("{path}: unsupported audio sample format {format}")]
    SampleFormat {
        /// The source file.
        path: PathBuf,
        /// FFmpeg's name for the format.
        format: String,
    },
    /// The file decodes to something unusable (no frames, bad timestamps, ...).
    #[error("{path}: {what}")]
    Invalid {
        /// The source file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Decoding took longer than the per-file limit.
    #[error("{path}: gave up after {limit_s:.0} s (per-file time limit)")]
    TimedOut {
        /// The source file.
        path: PathBuf,
        /// The limit, seconds.
        limit_s: f64,
    },
}

/// What `probe` finds in a file, in the units a person would use.
#[derive(Clone, Debug, Serialize)]
pub struct MediaInfo {
    /// FFmpeg's demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    /// Duration of the whole file, seconds, when the container says.
    pub duration_s: Option<f64>,
    /// Its best video stream.
    pub video: Option<VideoStreamInfo>,
    /// Its best audio stream.
    pub audio: Option<AudioStreamInfo>,
}

/// A video stream, as `probe` finds it.
#[derive(Clone, Debug, Serialize)]
pub struct VideoStreamInfo {
    /// FFmpeg's codec name.
    pub codec: String,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Average frame rate, when known.
    pub avg_fps: Option<f64>,
    /// Frame count from the container header, when it has one.
    pub frames: Option<u64>,
    /// Stream duration, seconds, when known.
    pub duration_s: Option<f64>,
}

/// An audio stream, as `probe` finds it.
#[derive(Clone, Debug, Serialize)]
pub struct AudioStreamInfo {
    /// FFmpeg's codec name.
    pub codec: String,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Stream duration, seconds, when known.
    pub duration_s: Option<f64>,
}

fn ff_err<'a>(path: &'a Path, what: &'static str) -> impl Fn(ff::Error) -> DecodeError + 'a {
    move |source| DecodeError::Ffmpeg {
        path: path.to_path_buf(),
        what,
        source,
    }
}

fn seconds(ticks: i64, tb: ff::Rational) -> Option<f64> {
    (ticks != ff::ffi::AV_NOPTS_VALUE && ticks >= 0 && tb.denominator() != 0)
        .then(|| ticks as f64 * f64::from(tb))
}

/// Opens the file and reports its streams without decoding anything.
pub fn probe(path: &Path) -> Result<MediaInfo, DecodeError> {
    ffmpeg_init();
    let ictx = format::input(&path).map_err(ff_err(path, "opening the file"))?;
    let duration = ictx.duration();
    let duration_s = (duration > 0).then(|| duration as f64 / f64::from(ff::ffi::AV_TIME_BASE));
    let video = match ictx.streams().best(media::Type::Video) {
        Some(st) => {
            let ctx = codec::context::Context::from_parameters(st.parameters())
                .map_err(ff_err(path, "reading the video parameters"))?;
            let v = ctx
                .decoder()
                .video()
                .map_err(ff_err(path, "reading the video parameters"))?;
            let rate = st.avg_frame_rate();
            Some(VideoStreamInfo {
                codec: format!("{:?}", v.id()).to_lowercase(),
                width: v.width(),
                height: v.height(),
                avg_fps: (rate.numerator() > 0 && rate.denominator() > 0).then(|| f64::from(rate)),
                frames: (st.frames() > 0).then_some(st.frames() as u64),
                duration_s: seconds(st.duration(), st.time_base()),
            })
        }
        None => None,
    };
    let audio = match ictx.streams().best(media::Type::Audio) {
        Some(st) => {
            let ctx = codec::context::Context::from_parameters(st.parameters())
                .map_err(ff_err(path, "reading the audio parameters"))?;
            let a = ctx
                .decoder()
                .audio()
                .map_err(ff_err(path, "reading the audio parameters"))?;
            Some(AudioStreamInfo {
                codec: format!("{:?}", a.id()).to_lowercase(),
                sample_rate: a.rate(),
                channels: a.channels(),
                duration_s: seconds(st.duration(), st.time_base()),
            })
        }
        None => None,
    };
    Ok(MediaInfo {
        container: ictx.format().name().to_string(),
        duration_s,
        video,
        audio,
    })
}

/// One decoded picture, as packed RGB24 rows of `width * 3` bytes.
pub struct DecodedFrame<'a> {
    /// Presentation time, seconds from the stream's zero.
    pub time_s: f64,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The pixels.
    pub rgb: &'a [u8],
}

/// The best stream of one kind, ready to decode.
pub(crate) struct BestStream<D> {
    pub index: usize,
    pub time_base: ff::Rational,
    /// Average frame rate (video), when the container knows it.
    pub avg_fps: Option<f64>,
    pub decoder: D,
}

/// Finds the best video stream of `ictx` and opens its decoder.
///
/// With `threads` > 1 the decoder works on that many frames at once (FFmpeg's frame
/// threading, whose output is bit-exact with one thread: it only reorders the work).
pub(crate) fn best_video(
    ictx: &format::context::Input,
    path: &Path,
    threads: usize,
) -> Result<Option<BestStream<ff::decoder::Video>>, DecodeError> {
    let Some(st) = ictx.streams().best(media::Type::Video) else {
        return Ok(None);
    };
    let ctx = codec::context::Context::from_parameters(st.parameters())
        .map_err(ff_err(path, "opening the video decoder"))?;
    let rate = st.avg_frame_rate();
    let mut decoder = ctx.decoder();
    decoder.set_packet_time_base(st.time_base());
    if threads > 1 {
        decoder.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
    }
    Ok(Some(BestStream {
        index: st.index(),
        time_base: st.time_base(),
        avg_fps: (rate.numerator() > 0 && rate.denominator() > 0).then(|| f64::from(rate)),
        decoder: decoder
            .video()
            .map_err(ff_err(path, "opening the video decoder"))?,
    }))
}

/// Finds the best audio stream of `ictx` and opens its decoder.
pub(crate) fn best_audio(
    ictx: &format::context::Input,
    path: &Path,
) -> Result<Option<BestStream<ff::decoder::Audio>>, DecodeError> {
    let Some(st) = ictx.streams().best(media::Type::Audio) else {
        return Ok(None);
    };
    let ctx = codec::context::Context::from_parameters(st.parameters())
        .map_err(ff_err(path, "opening the audio decoder"))?;
    let mut decoder = ctx.decoder();
    // The decoder drops the priming samples an edit list or a negative start marks (MP3 and
    // AAC in MP4), and moves the frame's timestamp past them only when it knows the packets'
    // time base. Without it the first frame keeps the priming's timestamp, the audio looks
    // that much earlier than it is, and the priming is in effect removed twice.
    decoder.set_packet_time_base(st.time_base());
    Ok(Some(BestStream {
        index: st.index(),
        time_base: st.time_base(),
        avg_fps: None,
        decoder: decoder
            .audio()
            .map_err(ff_err(path, "opening the audio decoder"))?,
    }))
}

/// Decodes every frame of the best video stream, in presentation order, at its native size.
/// Returns the number of frames seen.
pub fn for_each_video_frame(path: &Path, mut f: impl FnMut(DecodedFrame<'_>)) -> Result<usize, DecodeError> {
    ffmpeg_init();
    let mut ictx = format::input(&path).map_err(ff_err(path, "opening the file"))?;
    let BestStream {
        index,
        time_base: tb,
        decoder: mut dec,
        ..
    } = best_video(&ictx, path, 1)?.ok_or_else(|| DecodeError::NoStream {
        path: path.to_path_buf(),
        kind: "video",
    })?;
    let mut decoded = frame::Video::empty();
    let mut rgb = frame::Video::empty();
    let mut scaler: Option<software::scaling::Context> = None;
    let mut packed = Vec::new();
    let mut count = 0usize;
    let mut emit = |dec: &mut ff::decoder::Video| -> Result<(), DecodeError> {
        while dec.receive_frame(&mut decoded).is_ok() {
            let (w, h) = (decoded.width(), decoded.height());
            let sc = match &mut scaler {
                Some(s)
                    if s.input().width == w
                        && s.input().height == h
                        && s.input().format == decoded.format() =>
                {
                    s
                }
                slot => slot.insert(
                    software::scaling::Context::get(
                        decoded.format(),
                        w,
                        h,
                        Pixel::RGB24,
                        w,
                        h,
                        software::scaling::Flags::BILINEAR,
                    )
                    .map_err(ff_err(path, "converting to RGB"))?,
                ),
            };
            sc.run(&decoded, &mut rgb)
                .map_err(ff_err(path, "converting to RGB"))?;
            let stride = rgb.stride(0);
            let row = w as usize * 3;
            packed.resize(row * h as usize, 0);
            for y in 0..h as usize {
                packed[y * row..(y + 1) * row].copy_from_slice(&rgb.data(0)[y * stride..y * stride + row]);
            }
            let time_s = decoded
                .timestamp()
                .map(|t| t as f64 * f64::from(tb))
                .unwrap_or(f64::NAN);
            f(DecodedFrame {
                time_s,
                width: w,
                height: h,
                rgb: &packed,
            });
            count += 1;
        }
        Ok(())
    };
    for (stream, packet) in ictx.packets() {
        if stream.index() == index {
            // A corrupt packet is skipped; the decoder resynchronises on the next key frame.
            if dec.send_packet(&packet).is_ok() {
                emit(&mut dec)?;
            }
        }
    }
    dec.send_eof()
        .map_err(ff_err(path, "flushing the video decoder"))?;
    emit(&mut dec)?;
    Ok(count)
}

/// A file's audio track, downmixed to mono at its native rate.
pub struct DecodedAudio {
    /// Its native rate, Hz.
    pub sample_rate: u32,
    /// Channels before the downmix.
    pub channels: u16,
    /// Time of the first sample, seconds, from the first frame's timestamp.
    pub start_s: f64,
    /// The samples, mono.
    pub mono: Vec<f32>,
}

/// Decodes the best audio stream and averages its channels into one.
pub fn decode_audio_mono(path: &Path) -> Result<DecodedAudio, DecodeError> {
    ffmpeg_init();
    let mut ictx = format::input(&path).map_err(ff_err(path, "opening the file"))?;
    let BestStream {
        index,
        time_base: tb,
        decoder: mut dec,
        ..
    } = best_audio(&ictx, path)?.ok_or_else(|| DecodeError::NoStream {
        path: path.to_path_buf(),
        kind: "audio",
    })?;
    let mut out = DecodedAudio {
        sample_rate: dec.rate(),
        channels: dec.channels(),
        start_s: f64::NAN,
        mono: Vec::new(),
    };
    let mut decoded = frame::Audio::empty();
    let mut take = |dec: &mut ff::decoder::Audio, out: &mut DecodedAudio| -> Result<(), DecodeError> {
        while dec.receive_frame(&mut decoded).is_ok() {
            if out.start_s.is_nan() {
                out.start_s = decoded
                    .timestamp()
                    .map(|t| t as f64 * f64::from(tb))
                    .unwrap_or(0.0);
            }
            downmix_into(&decoded, &mut out.mono).map_err(|format| DecodeError::SampleFormat {
                path: path.to_path_buf(),
                format,
            })?;
        }
        Ok(())
    };
    for (stream, packet) in ictx.packets() {
        if stream.index() == index && dec.send_packet(&packet).is_ok() {
            take(&mut dec, &mut out)?;
        }
    }
    dec.send_eof()
        .map_err(ff_err(path, "flushing the audio decoder"))?;
    take(&mut dec, &mut out)?;
    if out.start_s.is_nan() {
        out.start_s = 0.0;
    }
    Ok(out)
}

/// The weight of each channel of a `layout` (FFmpeg's channel bits; channels in bit order)
/// in a mono downmix: the matrix libswresample builds for `ffmpeg -ac 1` with its default
/// options, for 16-bit output as the reference reads it. Before normalisation: front centre 1,
/// front left and right 1/sqrt(2) each, front left/right of centre 1/sqrt(2), back and side
/// channels (and back centre) 1/2 each (surround mix level 1/sqrt(2), times 1/sqrt(2)), LFE 0
/// (LFE mix level 0), anything else 0. Then every weight is divided by their sum when the sum
/// is above 1 (so stereo is the mean of its two channels; 5.1 is 0.293 C, 0.207 L and R,
/// 0.146 per surround, no LFE). A layout that does not match `channels` (unknown or
/// unspecified) is taken as FFmpeg's default layout for that many channels, as swresample does.
pub fn downmix_weights(layout: u64, channels: usize) -> Vec<f32> {
    use ff::ChannelLayout as L;
    let bits = if layout.count_ones() as usize == channels {
        layout
    } else {
        L::default(channels as i32).bits()
    };
    let half = std::f64::consts::FRAC_1_SQRT_2 * std::f64::consts::FRAC_1_SQRT_2;
    let weight = |bit: u64| -> f64 {
        let l = L::from_bits_truncate(bit);
        if l == L::FRONT_CENTER {
            1.0
        } else if [
            L::FRONT_LEFT,
            L::FRONT_RIGHT,
            L::FRONT_LEFT_OF_CENTER,
            L::FRONT_RIGHT_OF_CENTER,
        ]
        .contains(&l)
        {
            std::f64::consts::FRAC_1_SQRT_2
        } else if [
            L::BACK_LEFT,
            L::BACK_RIGHT,
            L::SIDE_LEFT,
            L::SIDE_RIGHT,
            L::BACK_CENTER,
        ]
        .contains(&l)
        {
            half
        } else {
            0.0
        }
    };
    let mut w: Vec<f64> = (0..64)
        .map(|i| 1u64 << i)
        .filter(|b| bits & b != 0)
        .map(weight)
        .collect();
    if channels == 1 || w.len() != channels {
        // Mono (whatever its one channel is called), or a layout FFmpeg could not name: equal weights.
        w = vec![1.0 / channels.max(1) as f64; channels.max(1)];
    }
    let sum: f64 = w.iter().sum();
    if sum > 1.0 {
        w.iter_mut().for_each(|x| *x /= sum);
    }
    w.into_iter().map(|x| x as f32).collect()
}

/// Appends the frame's samples, downmixed to mono with [`downmix_weights`], as f32 in
/// [-1, 1].
pub(crate) fn downmix_into(f: &frame::Audio, out: &mut Vec<f32>) -> Result<(), String> {
    let n = f.samples();
    let ch = f.channels().max(1) as usize;
    let weights = downmix_weights(f.channel_layout().bits(), ch);
    let planar = f.is_planar();
    let read: fn(&[u8], usize) -> f32 = match f.format() {
        Sample::U8(_) => |b, i| (b[i] as f32 - 128.0) / 128.0,
        Sample::I16(_) => |b, i| i16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as f32 / 32768.0,
        Sample::I32(_) => {
            |b, i| i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap()) as f32 / 2_147_483_648.0
        }
        Sample::F32(_) => |b, i| f32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap()),
        Sample::F64(_) => |b, i| f64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap()) as f32,
        other => return Err(format!("{other:?}")),
    };
    let base = out.len();
    out.resize(base + n, 0.0);
    if planar {
        for (c, &wc) in weights.iter().enumerate() {
            let plane = f.data(c);
            for i in 0..n {
                out[base + i] += read(plane, i) * wc;
            }
        }
    } else {
        let data = f.data(0);
        for i in 0..n {
            for (c, &wc) in weights.iter().enumerate() {
                out[base + i] += read(data, i * ch + c) * wc;
            }
        }
    }
    Ok(())
}
