//! Writing a synthetic scene as a real container file through FFmpeg's encoders.
//!
//! The files look like what users have: H.264 in yuv420p with AAC in MP4 or Matroska, or
//! MPEG-4 Part 2 with 16-bit PCM in AVI. Encoders run single-threaded with bit-exact flags so
//! that the same seed gives the same bytes.

use std::path::{Path, PathBuf};

use ff::format::Pixel;
use ff::{codec, encoder, format, frame, software, ChannelLayout, Dictionary, Packet, Rational};
use ffmpeg_next as ff;

use super::corpus::Container;
use super::scene::{Scene, VFR_TIME_BASE};
use super::SynthError;
use crate::ffmpeg_init;
use crate::source::colour::SourceColour;
use gdt_formats::FileError;

/// Variations for testing how consumers cope with imperfect files.
#[derive(Clone, Debug, Default)]
pub struct EncodeOptions {
    /// Leave the audio stream out entirely.
    pub no_audio: bool,
    /// Stop the audio after this many seconds (audio shorter than video).
    pub audio_seconds: Option<f64>,
    /// Encode the video as HEVC (libx265) instead of the container's usual codec (MP4, MKV).
    pub hevc: bool,
    /// Encode the audio as MP3 (libmp3lame) instead of the container's usual codec (MP4, MKV,
    /// MOV, AVI): MP3's encoder delay is trimmed by an edit list in MP4 and MOV, as in files
    /// from the wild.
    pub mp3: bool,
    /// Tag the video with this Y'CbCr matrix and range, and convert its pixels by them
    /// (untagged, BT.601 limited range, when `None`).
    pub colour: Option<(ff::color::Space, ff::color::Range)>,
}

/// Muxer, video encoder and audio encoder (with its sample format) for a container.
fn codecs(
    container: Container,
    options: &EncodeOptions,
) -> (&'static str, &'static str, &'static str, format::Sample) {
    use format::sample::Type::{Packed, Planar};
    let video = |usual| if options.hevc { "libx265" } else { usual };
    let (format_name, video_name, audio_name, sample_format) = match container {
        Container::Mp4 => ("mp4", video("libx264"), "aac", format::Sample::F32(Planar)),
        Container::Mkv => ("matroska", video("libx264"), "aac", format::Sample::F32(Planar)),
        Container::Avi => ("avi", "mpeg4", "pcm_s16le", format::Sample::I16(Packed)),
        Container::Mov => ("mov", video("libx264"), "pcm_s16le", format::Sample::I16(Packed)),
        Container::Webm => ("webm", "libvpx-vp9", "libvorbis", format::Sample::F32(Planar)),
    };
    if options.mp3 {
        (format_name, video_name, "libmp3lame", format::Sample::F32(Planar))
    } else {
        (format_name, video_name, audio_name, sample_format)
    }
}

/// Encodes `scene` into `path`. The file appears under its final name only when complete.
pub fn write_video(path: &Path, container: Container, scene: &Scene) -> Result<(), SynthError> {
    write_video_with(path, container, scene, &EncodeOptions::default())
}

/// [`write_video`] with [`EncodeOptions`].
pub fn write_video_with(
    path: &Path,
    container: Container,
    scene: &Scene,
    options: &EncodeOptions,
) -> Result<(), SynthError> {
    ffmpeg_init();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.part"));
    let result = encode(&tmp, container, scene, options)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| FileError::at(path)(e).into()));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn encode(
    tmp: &Path,
    container: Container,
    scene: &Scene,
    options: &EncodeOptions,
) -> Result<(), SynthError> {
    let scenario = scene.scenario();
    let err = |what: &'static str| {
        let path: PathBuf = tmp.to_path_buf();
        move |source: ff::Error| SynthError::Encode {
            path: path.clone(),
            what,
            source,
        }
    };
    if container == Container::Avi && scenario.variable_frame_rate {
        return Err(SynthError::Unsupported {
            path: tmp.to_path_buf(),
            reason: "AVI cannot carry a variable frame rate".into(),
        });
    }
    if container == Container::Webm && options.mp3 {
        return Err(SynthError::Unsupported {
            path: tmp.to_path_buf(),
            reason: "WebM cannot carry MP3".into(),
        });
    }
    let (format_name, video_name, audio_name, sample_format) = codecs(container, options);
    let find = |name: &str| {
        encoder::find_by_name(name).ok_or_else(|| SynthError::MissingEncoder {
            path: tmp.to_path_buf(),
            codec: name.to_string(),
        })
    };
    let mut octx = format::output_as(&tmp, format_name).map_err(err("opening the output"))?;
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);

    // Video stream.
    let pixel = Pixel::YUV420P;
    let vcodec = find(video_name)?;
    let video_tb = if scenario.variable_frame_rate {
        Rational(1, VFR_TIME_BASE as i32)
    } else {
        Rational(1, scenario.fps as i32)
    };
    let mut venc = codec::context::Context::new_with_codec(vcodec)
        .encoder()
        .video()
        .map_err(err("creating the video encoder"))?;
    venc.set_width(scenario.width);
    venc.set_height(scenario.height);
    venc.set_format(pixel);
    venc.set_time_base(video_tb);
    venc.set_frame_rate(Some(Rational(scenario.fps as i32, 1)));
    if let Some((space, range)) = options.colour {
        venc.set_colorspace(space);
        venc.set_color_range(range);
    }
    venc.set_gop(scenario.fps * 2);
    if global_header {
        venc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut vopts = Dictionary::new();
    vopts.set("threads", "1");
    vopts.set("flags", "+bitexact");
    match video_name {
        "libx264" => {
            vopts.set("preset", "veryfast");
            vopts.set("crf", "20");
        }
        "libx265" => {
            vopts.set("preset", "ultrafast");
            vopts.set("crf", "26");
            vopts.set("x265-params", "log-level=none:pools=1:frame-threads=1");
        }
        "libvpx-vp9" => {
            vopts.set("deadline", "realtime");
            vopts.set("cpu-used", "8");
            vopts.set("crf", "34");
            venc.set_bit_rate(0);
        }
        _ => venc.set_bit_rate(2_500_000),
    }
    let mut venc = venc.open_with(vopts).map_err(err("opening the video encoder"))?;
    let video_index = {
        let mut st = octx.add_stream(vcodec).map_err(err("adding the video stream"))?;
        st.set_parameters(&venc);
        st.set_time_base(video_tb);
        st.index()
    };

    // Audio stream.
    let acodec = find(audio_name)?;
    let channels = scenario.channels as usize;
    let layout = match channels {
        1 => ChannelLayout::MONO,
        2 => ChannelLayout::STEREO,
        6 => ChannelLayout::_5POINT1,
        n => {
            return Err(SynthError::Unsupported {
                path: tmp.to_path_buf(),
                reason: format!("{n} audio channels (use 1, 2 or 6)"),
            })
        }
    };
    let audio_tb = Rational(1, scenario.sample_rate as i32);
    let mut aenc = codec::context::Context::new_with_codec(acodec)
        .encoder()
        .audio()
        .map_err(err("creating the audio encoder"))?;
    aenc.set_rate(scenario.sample_rate as i32);
    aenc.set_channel_layout(layout);
    aenc.set_channels(channels as i32);
    aenc.set_format(sample_format);
    aenc.set_time_base(audio_tb);
    if matches!(audio_name, "aac" | "libmp3lame") {
        aenc.set_bit_rate(64_000 * channels);
    }
    if global_header {
        aenc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut aopts = Dictionary::new();
    aopts.set("flags", "+bitexact");
    let mut aenc = aenc.open_with(aopts).map_err(err("opening the audio encoder"))?;
    let audio_index = if options.no_audio {
        None
    } else {
        let mut st = octx.add_stream(acodec).map_err(err("adding the audio stream"))?;
        st.set_parameters(&aenc);
        st.set_time_base(audio_tb);
        Some(st.index())
    };

    let mut header_opts = Dictionary::new();
    header_opts.set("fflags", "+bitexact");
    octx.write_header_with(header_opts)
        .map_err(err("writing the header"))?;
    let video_stream_tb = octx.stream(video_index).expect("stream added above").time_base();
    let audio_stream = audio_index.map(|i| (i, octx.stream(i).expect("stream added above").time_base()));

    let (w, h) = (scenario.width, scenario.height);
    let mut scaler = software::scaling::Context::get(
        Pixel::RGB24,
        w,
        h,
        pixel,
        w,
        h,
        software::scaling::Flags::BILINEAR,
    )
    .map_err(err("creating the colour converter"))?;
    if let Some((space, range)) = options.colour {
        SourceColour::tagged(space, range, pixel, w, h).set_for_encoding(&mut scaler);
    }
    let mut rgb = zeroed_frame(Pixel::RGB24, w, h);
    let mut canvas = vec![0u8; (w * h * 3) as usize];

    let mut audio = scene.render_audio();
    if options.no_audio {
        audio.clear();
    } else if let Some(seconds) = options.audio_seconds {
        audio.truncate((seconds * scenario.sample_rate as f64) as usize * channels);
    }
    let total_samples = audio.len() / channels;
    let chunk = match aenc.frame_size() {
        0 => 1024,
        n => n as usize,
    };
    let times = scene.frame_times();
    // Each frame's pts in the encoder's time base, plus one past the end: packets get their
    // true durations, so containers report the right frame rate and duration.
    let mut frame_ticks: Vec<i64> = if scenario.variable_frame_rate {
        times
            .iter()
            .map(|t| (t * VFR_TIME_BASE as f64).round() as i64)
            .collect()
    } else {
        (0..times.len() as i64).collect()
    };
    let end_ticks = if scenario.variable_frame_rate {
        (scenario.duration_s * VFR_TIME_BASE as f64).round() as i64
    } else {
        times.len() as i64
    };
    frame_ticks.push(end_ticks.max(frame_ticks.last().map_or(0, |t| t + 1)));
    let video_route = Route {
        stream: video_index,
        from: video_tb,
        to: video_stream_tb,
        frame_ticks: &frame_ticks,
    };
    let audio_route = audio_stream.map(|(stream, to)| Route {
        stream,
        from: audio_tb,
        to,
        frame_ticks: &[],
    });
    let (mut next_frame, mut next_sample) = (0usize, 0usize);
    let mut packet = Packet::empty();

    while next_frame < times.len() || next_sample < total_samples {
        let video_time = times.get(next_frame).copied().unwrap_or(f64::INFINITY);
        let audio_time = if next_sample < total_samples {
            next_sample as f64 / scenario.sample_rate as f64
        } else {
            f64::INFINITY
        };
        if video_time <= audio_time {
            scene.render_frame(next_frame, &mut canvas);
            copy_packed_rgb(&canvas, &mut rgb, w as usize, h as usize);
            // A fresh frame each time: the encoder may still hold a reference to the last
            // one's buffer, and writing into it would change a frame already submitted.
            let mut yuv = zeroed_frame(pixel, w, h);
            scaler.run(&rgb, &mut yuv).map_err(err("converting a frame"))?;
            yuv.set_pts(Some(frame_ticks[next_frame]));
            venc.send_frame(&yuv).map_err(err("encoding a frame"))?;
            drain(&mut venc, &mut packet, &video_route, &mut octx).map_err(err("writing video"))?;
            next_frame += 1;
        } else {
            let n = chunk.min(total_samples - next_sample);
            let mut af = frame::Audio::new(sample_format, n, layout);
            af.set_rate(scenario.sample_rate);
            af.set_pts(Some(next_sample as i64));
            let src = &audio[next_sample * channels..(next_sample + n) * channels];
            fill_audio(&mut af, src, channels, n);
            aenc.send_frame(&af).map_err(err("encoding audio"))?;
            let audio_route = audio_route.as_ref().expect("audio samples imply an audio stream");
            drain(&mut aenc, &mut packet, audio_route, &mut octx).map_err(err("writing audio"))?;
            next_sample += n;
        }
    }
    venc.send_eof().map_err(err("flushing the video encoder"))?;
    drain(&mut venc, &mut packet, &video_route, &mut octx).map_err(err("writing video"))?;
    if let Some(audio_route) = &audio_route {
        aenc.send_eof().map_err(err("flushing the audio encoder"))?;
        drain(&mut aenc, &mut packet, audio_route, &mut octx).map_err(err("writing audio"))?;
    }
    octx.write_trailer().map_err(err("writing the trailer"))?;
    Ok(())
}

/// Where an encoder's packets go: the stream, the encoder's and the stream's time bases, and
/// (video only) every frame's pts plus the end time, which gives packets without a duration
/// their true one.
struct Route<'a> {
    stream: usize,
    from: Rational,
    to: Rational,
    frame_ticks: &'a [i64],
}

/// Moves every packet the encoder has ready into the muxer.
fn drain(
    enc: &mut encoder::Encoder,
    packet: &mut Packet,
    route: &Route<'_>,
    octx: &mut format::context::Output,
) -> Result<(), ff::Error> {
    loop {
        match enc.receive_packet(packet) {
            Ok(()) => {
                if let (0, Some(pts)) = (packet.duration(), packet.pts()) {
                    if let Ok(i) = route.frame_ticks.binary_search(&pts) {
                        if let Some(next) = route.frame_ticks.get(i + 1) {
                            packet.set_duration(next - pts);
                        }
                    }
                }
                packet.set_stream(route.stream);
                packet.rescale_ts(route.from, route.to);
                packet.write_interleaved(octx)?;
            }
            Err(ff::Error::Other {
                errno: ff::util::error::EAGAIN,
            })
            | Err(ff::Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn copy_packed_rgb(src: &[u8], dst: &mut frame::Video, w: usize, h: usize) {
    let stride = dst.stride(0);
    let data = dst.data_mut(0);
    for y in 0..h {
        data[y * stride..y * stride + w * 3].copy_from_slice(&src[y * w * 3..(y + 1) * w * 3]);
    }
}

/// Writes interleaved f32 samples into the frame's own sample format.
/// A new frame whose bytes are all written, padding included: FFmpeg allocates frames
/// uninitialised, and an encoder's or converter's SIMD code may read a row's alignment
/// padding. Whatever such a read does, the output then depends on the scene alone.
fn zeroed_frame(pixel: Pixel, w: u32, h: u32) -> frame::Video {
    let mut f = frame::Video::new(pixel, w, h);
    for plane in 0..f.planes() {
        f.data_mut(plane).fill(0);
    }
    f
}

fn fill_audio(af: &mut frame::Audio, src: &[f32], channels: usize, n: usize) {
    if af.is_planar() {
        for c in 0..channels {
            let plane = af.data_mut(c);
            for i in 0..n {
                plane[i * 4..i * 4 + 4].copy_from_slice(&src[i * channels + c].to_le_bytes());
            }
        }
    } else {
        let data = af.data_mut(0);
        for (i, s) in src.iter().enumerate() {
            let v = (s * 32767.0).round() as i16;
            data[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
}
