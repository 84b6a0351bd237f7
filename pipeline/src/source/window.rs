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

use crate::ffmpeg_init;
use crate::source::colour::SourceColour;
use crate::source::decode::{best_audio, best_video, downmix_into, BestStream, DecodeError};
use crate::source::resample::resample_mono;

/// How much of a source to decode, and how long to try.
#[derive(Clone, Debug)]
pub struct WindowOptions {
    /// Consecutive windows of `max_seconds` to cut from one source (1: just the start).
    pub max_windows: u32,
    /// Give up on a file after this long (a decoder that hangs is cut off).
    pub time_limit: Option<Duration>,
    /// Video decoder threads for this file. The frames are the same for any count; the
    /// packer gives the last inputs of a pack the cores that fewer inputs than jobs leave.
    pub decoder_threads: usize,
}

impl Default for WindowOptions {
    fn default() -> Self {
        WindowOptions {
            max_windows: 1,
            time_limit: Some(Duration::from_secs(120)),
            decoder_threads: 1,
        }
    }
}

/// What the source is, as recorded with each record.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    /// Duration, seconds, when the container says.
    pub duration_s: Option<f64>,
    /// Average frame rate, when known.
    pub fps: Option<f64>,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Video codec.
    pub video_codec: String,
    /// Audio codec, if it has audio.
    pub audio_codec: Option<String>,
    /// Audio rate, Hz.
    pub sample_rate: Option<u32>,
    /// Audio channels.
    pub channels: Option<u16>,
}

/// One window: `frame_count` planar RGB frames of `width x height` and, when the source has
/// audio, `frame_count / fps` seconds of mono audio at the target rate.
#[derive(Clone, Debug)]
pub struct DecodedWindow {
    /// Its number within the source, from 0.
    pub index: u32,
    /// Start in the source, seconds after its first frame.
    pub start_s: f64,
    /// Stored frame width.
    pub width: u32,
    /// Stored frame height.
    pub height: u32,
    /// Frames at the target rate.
    pub frame_count: usize,
    /// The frames, planar RGB, one after another.
    pub frames: Vec<u8>,
    /// Its audio, mono at the target rate, when the source has audio.
    pub audio: Option<Vec<f32>>,
}

/// A source decoded: what it is and its windows.
#[derive(Clone, Debug)]
pub struct DecodedSource {
    /// What it is.
    pub info: SourceInfo,
    /// Its windows, in time order.
    pub windows: Vec<DecodedWindow>,
}

/// Decodes `path` into windows under `params`.
pub fn decode_windows(
    path: &Path,
    params: &PackParams,
    opts: &WindowOptions,
) -> Result<DecodedSource, DecodeError> {
    ffmpeg_init();
    let clock = Deadline::new(path, opts.time_limit);
    let mut ictx = clock.open()?;
    let BestStream {
        index: vidx,
        time_base: vtb,
        avg_fps,
        decoder: mut vdec,
    } = best_video(&ictx, path, opts.decoder_threads)?.ok_or_else(|| DecodeError::NoStream {
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

    // Demux until the picker has every frame and the audio covers them, or the file ends.
    let ff_err = |what: &'static str| ff_error(path, what);
    let mut decoded = frame::Video::empty();
    let mut decoded_audio = frame::Audio::empty();
    let mut video_done = false;
    for (stream, packet) in ictx.packets() {
        clock.check()?;
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
    // Drain what the decoders still hold.
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
    clock.check()?;
    if info.fps.is_none() {
        info.fps = picker.source_fps();
    }
    let audio = audio_stream.is_some().then_some(&audio);
    let windows = cut_windows(picker, audio, per_window, opts.max_windows, params, path)?;
    Ok(DecodedSource { info, windows })
}

/// An FFmpeg error while doing `what` to `path`.
fn ff_error<'a>(path: &'a Path, what: &'static str) -> impl Fn(ff::Error) -> DecodeError + 'a {
    move |source| DecodeError::Ffmpeg {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// The per-file time limit: FFmpeg's blocking calls are interrupted past it, and the
/// demuxing loop checks it between packets.
struct Deadline<'a> {
    path: &'a Path,
    limit: Option<Duration>,
    at: Option<Instant>,
}

impl Deadline<'_> {
    fn new(path: &Path, limit: Option<Duration>) -> Deadline<'_> {
        Deadline {
            path,
            limit,
            at: limit.map(|d| Instant::now() + d),
        }
    }

    fn passed(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() > at)
    }

    fn timed_out(&self) -> DecodeError {
        DecodeError::TimedOut {
            path: self.path.to_path_buf(),
            limit_s: self.limit.unwrap_or_default().as_secs_f64(),
        }
    }

    fn check(&self) -> Result<(), DecodeError> {
        if self.passed() {
            Err(self.timed_out())
        } else {
            Ok(())
        }
    }

    /// Opens the file, interruptibly when there is a limit.
    fn open(&self) -> Result<format::context::Input, DecodeError> {
        let opened = match self.at {
            Some(at) => format::input_with_interrupt(&self.path, move || Instant::now() > at),
            None => format::input(&self.path),
        };
        opened.map_err(|e| {
            if self.passed() {
                self.timed_out()
            } else {
                ff_error(self.path, "opening the file")(e)
            }
        })
    }
}

/// Cuts the picked frames into windows of `per_window` frames, each with its span of
/// `audio` resampled to the dataset's rate. Audio that ends early ends the window.
fn cut_windows(
    mut picker: FramePicker,
    audio: Option<&AudioTrack>,
    per_window: usize,
    max_windows: u32,
    params: &PackParams,
    path: &Path,
) -> Result<Vec<DecodedWindow>, DecodeError> {
    let fps = params.fps as f64;
    let emitted = picker.emitted;
    let (cw, ch) = picker.stored;
    let fb = 3 * cw as usize * ch as usize;
    let t0 = picker.t0.unwrap_or(0.0);
    // (index, first frame, frame count, audio) per window, then the frames are handed over
    // without copying: windows are cut from the back of the decoded buffer.
    let mut cuts = Vec::new();
    for wi in 0..max_windows.max(1) as usize {
        let g0 = wi * per_window;
        if g0 >= emitted {
            break;
        }
        let mut n = per_window.min(emitted - g0);
        let audio_window = match audio {
            Some(audio) => {
                let Some((samples, frames)) = window_audio(audio, t0, g0 as f64 / fps, n, params, path)?
                else {
                    break;
                };
                n = frames;
                Some(samples)
            }
            None => None,
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
    Ok(windows)
}

/// The audio of the window of `n` frames starting `start` seconds after the first video
/// frame (at `t0` on the stream clock), resampled to the dataset's rate, and the frames it
/// covers: `n`, or fewer when the audio ends early (up to one frame's worth is tolerated and
/// padded). `None` when no frame is left.
fn window_audio(
    audio: &AudioTrack,
    t0: f64,
    start: f64,
    n: usize,
    params: &PackParams,
    path: &Path,
) -> Result<Option<(Vec<f32>, usize)>, DecodeError> {
    let fps = params.fps as f64;
    let sr = audio.rate.max(1) as f64;
    let a0 = audio.start.unwrap_or(t0);
    let i0 = ((t0 + start - a0) * sr).round() as i64;
    let mut n = n;
    let available_s = (audio.samples.len() as i64 - i0) as f64 / sr;
    if available_s + 1.0 / fps < n as f64 / fps {
        n = n.min((available_s.max(0.0) * fps).floor() as usize);
    }
    if n == 0 {
        return Ok(None);
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
    Ok(Some((resampled, n)))
}

/// Chooses, for every output time, the latest source frame not after it, and stores it
/// scaled and cropped as planar RGB.
struct FramePicker {
    step: f64,
    total: usize,
    scaled: (u32, u32),
    stored: (u32, u32),
    scaler: Option<software::scaling::Context>,
    /// The conversion the scaler was set up for.
    colour: Option<SourceColour>,
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
            colour: None,
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
        let colour = SourceColour::of(f);
        let rebuild = match &self.scaler {
            Some(s) => {
                s.input().width != f.width()
                    || s.input().height != f.height()
                    || s.input().format != f.format()
                    || self.colour != Some(colour)
            }
            None => true,
        };
        if rebuild {
            let mut scaler = software::scaling::Context::get(
                f.format(),
                f.width(),
                f.height(),
                Pixel::GBRP,
                sw,
                sh,
                software::scaling::Flags::BILINEAR,
            )?;
            colour.set_for_decoding(&mut scaler);
            self.scaler = Some(scaler);
            self.colour = Some(colour);
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
