//! Decoding a source into aligned windows: frames resampled to a fixed rate by timestamp and
//! scaled, plus the audio of exactly the same span, mono, at the target rate.
//!
//! Output frame k of the stream is the source frame shown at time `t0 + k / fps`, where `t0`
//! is the first frame's timestamp: the latest frame whose timestamp is not after that time.
//! A 25 fps source therefore repeats a frame now and then; a 60 fps source drops every other.
//! Audio is cut by timestamps, not by counting samples, so decoder priming and streams that
//! start late stay aligned. When the audio ends before the video, the window ends with it:
//! nothing is padded with invented silence beyond a frame's worth.

use std::path::Path;
use std::time::{Duration, Instant};

use ff::format::Pixel;
use ff::{format, frame, software};
use ffmpeg_next as ff;
use gdt_formats::params::PackParams;

use crate::decode::{best_audio, best_video, downmix_into, BestStream, DecodeError};
use crate::ffmpeg_init;
use crate::resample::resample_mono;

/// How much of a source to decode, and how long to try.
#[derive(Clone, Debug)]
pub struct WindowOptions {
    /// Consecutive windows of `max_seconds` to cut from one source (1: just the start).
    pub max_windows: u32,
    /// Give up on a file after this long (a decoder that hangs is cut off).
    pub time_limit: Option<Duration>,
}

impl Default for WindowOptions {
    fn default() -> Self {
        WindowOptions {
            max_windows: 1,
            time_limit: Some(Duration::from_secs(120)),
        }
    }
}

/// What the source is, as recorded with each record.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub duration_s: Option<f64>,
    pub fps: Option<f64>,
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

/// One window: `frame_count` planar RGB frames of `width x height` and, when the source has
/// audio, `frame_count / fps` seconds of mono audio at the target rate.
#[derive(Clone, Debug)]
pub struct DecodedWindow {
    pub index: u32,
    /// Start in the source, seconds after its first frame.
    pub start_s: f64,
    pub width: u32,
    pub height: u32,
    pub frame_count: usize,
    pub frames: Vec<u8>,
    pub audio: Option<Vec<f32>>,
}

#[derive(Clone, Debug)]
pub struct DecodedSource {
    pub info: SourceInfo,
    pub windows: Vec<DecodedWindow>,
}

/// Decodes `path` into windows under `params`.
pub fn decode_windows(
    path: &Path,
    params: &PackParams,
    opts: &WindowOptions,
) -> Result<DecodedSource, DecodeError> {
    ffmpeg_init();
    let ff_err = |what: &'static str| {
        move |source: ff::Error| DecodeError::Ffmpeg {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let deadline = opts.time_limit.map(|d| Instant::now() + d);
    let timed_out = || DecodeError::TimedOut {
        path: path.to_path_buf(),
        limit_s: opts.time_limit.unwrap_or_default().as_secs_f64(),
    };
    let past_deadline = || deadline.is_some_and(|dl| Instant::now() > dl);
    let mut ictx = match deadline {
        Some(dl) => format::input_with_interrupt(&path, move || Instant::now() > dl),
        None => format::input(&path),
    }
    .map_err(|e| {
        if past_deadline() {
            timed_out()
        } else {
            ff_err("opening the file")(e)
        }
    })?;

    let BestStream {
        index: vidx,
        time_base: vtb,
        avg_fps,
        decoder: mut vdec,
    } = best_video(&ictx, path)?.ok_or_else(|| DecodeError::NoStream {
        path: path.to_path_buf(),
        kind: "video",
    })?;
    let mut audio_stream = best_audio(&ictx, path)?.map(|a| (a.index, a.time_base, a.decoder));
    let (w, h) = (vdec.width(), vdec.height());
    if w == 0 || h == 0 {
        return Err(DecodeError::Invalid {
            path: path.to_path_buf(),
            what: "video stream has no frame size".into(),
        });
    }
    let duration = ictx.duration();
    let mut info = SourceInfo {
        duration_s: (duration > 0).then(|| duration as f64 / f64::from(ff::ffi::AV_TIME_BASE)),
        fps: avg_fps,
        width: w,
        height: h,
        video_codec: format!("{:?}", vdec.id()).to_lowercase(),
        audio_codec: audio_stream
            .as_ref()
            .map(|(_, _, d)| format!("{:?}", d.id()).to_lowercase()),
        sample_rate: audio_stream.as_ref().map(|(_, _, d)| d.rate()),
        channels: audio_stream.as_ref().map(|(_, _, d)| d.channels()),
    };

    let fps = params.fps as f64;
    let per_window = (params.max_seconds * fps).round() as usize;
    let total = per_window * opts.max_windows.max(1) as usize;
    let (sw, sh, cw, ch) = params.stored_geometry(w, h);
    let mut picker = FramePicker::new(fps, total, sw, sh, cw, ch);
    let mut audio = AudioTrack::default();

    let mut decoded = frame::Video::empty();
    let mut decoded_audio = frame::Audio::empty();
    let check_deadline = || if past_deadline() { Err(timed_out()) } else { Ok(()) };
    let mut video_done = false;
    for (stream, packet) in ictx.packets() {
        check_deadline()?;
        let idx = stream.index();
        if idx == vidx && !video_done {
            if vdec.send_packet(&packet).is_ok() {
                while vdec.receive_frame(&mut decoded).is_ok() {
                    picker.push(&decoded, vtb).map_err(ff_err("scaling a frame"))?;
                }
            }
            video_done = picker.is_full();
        } else if let Some((aidx, atb, adec)) = audio_stream.as_mut() {
            if idx == *aidx && !audio.covers(picker.end_time()) && adec.send_packet(&packet).is_ok() {
                while adec.receive_frame(&mut decoded_audio).is_ok() {
                    audio.push(&decoded_audio, *atb, path)?;
                }
            }
        }
        if video_done
            && audio_stream
                .as_ref()
                .is_none_or(|_| audio.covers(picker.end_time()))
        {
            break;
        }
    }
    if !video_done {
        let _ = vdec.send_eof();
        while vdec.receive_frame(&mut decoded).is_ok() {
            picker.push(&decoded, vtb).map_err(ff_err("scaling a frame"))?;
        }
        picker.finish(avg_fps);
    }
    if let Some((_, atb, adec)) = audio_stream.as_mut() {
        if !audio.covers(picker.end_time()) {
            let _ = adec.send_eof();
            while adec.receive_frame(&mut decoded_audio).is_ok() {
                audio.push(&decoded_audio, *atb, path)?;
            }
        }
    }
    check_deadline()?;
    if info.fps.is_none() {
        info.fps = picker.source_fps();
    }

    let emitted = picker.emitted;
    let fb = 3 * cw as usize * ch as usize;
    let t0 = picker.t0.unwrap_or(0.0);
    let has_audio = audio_stream.is_some();
    // (index, first frame, frame count, audio) per window, then the frames are handed over
    // without copying: windows are cut from the back of the decoded buffer.
    let mut cuts = Vec::new();
    for wi in 0..opts.max_windows.max(1) as usize {
        let g0 = wi * per_window;
        if g0 >= emitted {
            break;
        }
        let mut n = per_window.min(emitted - g0);
        let start = g0 as f64 / fps;
        let audio_window = if has_audio {
            let sr = audio.rate.max(1) as f64;
            let a0 = audio.start.unwrap_or(t0);
            let i0 = ((t0 + start - a0) * sr).round() as i64;
            // Audio that ends early ends the window (tolerating up to one frame's worth).
            let available_s = (audio.samples.len() as i64 - i0) as f64 / sr;
            if available_s + 1.0 / fps < n as f64 / fps {
                n = n.min((available_s.max(0.0) * fps).floor() as usize);
            }
            if n == 0 {
                break;
            }
            let need = (n as f64 / fps * sr).round() as usize;
            let slice: Vec<f32> = (0..need as i64)
                .map(|k| {
                    let i = i0 + k;
                    if i >= 0 && (i as usize) < audio.samples.len() {
                        audio.samples[i as usize]
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut resampled =
                resample_mono(&slice, audio.rate, params.sample_rate).map_err(|e| DecodeError::Invalid {
                    path: path.to_path_buf(),
                    what: e,
                })?;
            resampled.resize((n as f64 / fps * params.sample_rate as f64).round() as usize, 0.0);
            Some(resampled)
        } else {
            None
        };
        cuts.push((wi, g0, n, audio_window));
    }
    let mut frames = std::mem::take(&mut picker.frames);
    let mut windows = Vec::with_capacity(cuts.len());
    for (wi, g0, n, audio) in cuts.into_iter().rev() {
        frames.truncate((g0 + n) * fb);
        windows.push(DecodedWindow {
            index: wi as u32,
            start_s: g0 as f64 / fps,
            width: cw,
            height: ch,
            frame_count: n,
            frames: frames.split_off(g0 * fb),
            audio,
        });
    }
    windows.reverse();
    Ok(DecodedSource { info, windows })
}

/// Chooses, for every output time, the latest source frame not after it, and stores it
/// scaled and cropped as planar RGB.
struct FramePicker {
    step: f64,
    total: usize,
    scaled: (u32, u32),
    stored: (u32, u32),
    scaler: Option<software::scaling::Context>,
    planar: frame::Video,
    t0: Option<f64>,
    last_ts: Option<f64>,
    /// The most recent source frame, already converted: (timestamp, planar RGB).
    prev: Option<(f64, Vec<u8>)>,
    spare: Vec<u8>,
    frames: Vec<u8>,
    emitted: usize,
    source_frames: usize,
}

impl FramePicker {
    fn new(fps: f64, total: usize, sw: u32, sh: u32, cw: u32, ch: u32) -> FramePicker {
        FramePicker {
            step: 1.0 / fps,
            total,
            scaled: (sw, sh),
            stored: (cw, ch),
            scaler: None,
            planar: frame::Video::empty(),
            t0: None,
            last_ts: None,
            prev: None,
            spare: Vec::new(),
            frames: Vec::new(),
            emitted: 0,
            source_frames: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.emitted >= self.total
    }

    fn target(&self, k: usize) -> f64 {
        self.t0.unwrap_or(0.0) + k as f64 * self.step
    }

    /// Source time the output needs audio up to (the end of the last window).
    fn end_time(&self) -> Option<f64> {
        self.t0.map(|t0| t0 + self.total as f64 * self.step)
    }

    fn source_fps(&self) -> Option<f64> {
        match (self.t0, self.last_ts) {
            (Some(a), Some(b)) if b > a && self.source_frames > 1 => {
                Some((self.source_frames - 1) as f64 / (b - a))
            }
            _ => None,
        }
    }

    fn push(&mut self, f: &frame::Video, tb: ff::Rational) -> Result<(), ff::Error> {
        if self.is_full() {
            return Ok(());
        }
        let ts = match f.timestamp() {
            Some(t) => t as f64 * f64::from(tb),
            None => self.last_ts.map_or(0.0, |l| l + self.step),
        };
        // Frames that go back in time (broken timestamps) cannot be placed: drop them.
        if self.last_ts.is_some_and(|l| ts <= l) {
            return Ok(());
        }
        self.last_ts = Some(ts);
        self.source_frames += 1;
        self.t0.get_or_insert(ts);
        while !self.is_full() && self.target(self.emitted) < ts - 1e-9 {
            self.emit_prev();
        }
        let mut cur = std::mem::take(&mut self.spare);
        self.convert(f, &mut cur)?;
        if let Some((_, old)) = self.prev.replace((ts, cur)) {
            self.spare = old;
        }
        Ok(())
    }

    /// After the last source frame: it stays on screen for one source frame interval.
    fn finish(&mut self, avg_fps: Option<f64>) {
        let Some((ts, _)) = self.prev.as_ref() else { return };
        let shown_for = avg_fps.filter(|f| *f > 0.0).map_or(self.step, |f| 1.0 / f);
        let end = ts + shown_for;
        while !self.is_full() && self.target(self.emitted) < end - 1e-9 {
            self.emit_prev();
        }
    }

    fn emit_prev(&mut self) {
        if let Some((_, data)) = &self.prev {
            self.frames.extend_from_slice(data);
            self.emitted += 1;
        } else {
            // No frame yet for this time: cannot happen after t0 is set from the first frame.
            self.emitted = self.total;
        }
    }

    fn convert(&mut self, f: &frame::Video, out: &mut Vec<u8>) -> Result<(), ff::Error> {
        let (sw, sh) = self.scaled;
        let rebuild = match &self.scaler {
            Some(s) => {
                s.input().width != f.width()
                    || s.input().height != f.height()
                    || s.input().format != f.format()
            }
            None => true,
        };
        if rebuild {
            self.scaler = Some(software::scaling::Context::get(
                f.format(),
                f.width(),
                f.height(),
                Pixel::GBRP,
                sw,
                sh,
                software::scaling::Flags::BILINEAR,
            )?);
        }
        self.scaler
            .as_mut()
            .expect("built above")
            .run(f, &mut self.planar)?;
        let (cw, ch) = self.stored;
        let (x0, y0) = ((sw - cw) / 2, (sh - ch) / 2);
        out.clear();
        out.reserve(3 * cw as usize * ch as usize);
        // GBRP keeps planes in G, B, R order; the record stores R, G, B.
        for plane in [2usize, 0, 1] {
            let stride = self.planar.stride(plane);
            let data = self.planar.data(plane);
            for y in y0..y0 + ch {
                let row = y as usize * stride + x0 as usize;
                out.extend_from_slice(&data[row..row + cw as usize]);
            }
        }
        Ok(())
    }
}

/// The source's audio, downmixed to mono at its own rate, with the time of its first sample.
#[derive(Default)]
struct AudioTrack {
    rate: u32,
    start: Option<f64>,
    samples: Vec<f32>,
}

impl AudioTrack {
    fn covers(&self, until: Option<f64>) -> bool {
        match (until, self.start) {
            (Some(end), Some(start)) if self.rate > 0 => {
                start + self.samples.len() as f64 / self.rate as f64 >= end + 0.05
            }
            _ => false,
        }
    }

    fn push(&mut self, f: &frame::Audio, tb: ff::Rational, path: &Path) -> Result<(), DecodeError> {
        if self.rate == 0 {
            self.rate = f.rate();
        }
        if f.rate() != self.rate {
            return Err(DecodeError::Invalid {
                path: path.to_path_buf(),
                what: format!(
                    "audio rate changes from {} to {} Hz mid-stream",
                    self.rate,
                    f.rate()
                ),
            });
        }
        if self.start.is_none() {
            self.start = Some(f.timestamp().map_or(0.0, |t| t as f64 * f64::from(tb)));
        }
        downmix_into(f, &mut self.samples).map_err(|format| DecodeError::SampleFormat {
            path: path.to_path_buf(),
            format,
        })
    }
}
