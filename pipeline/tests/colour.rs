//! Files tagged with each Y'CbCr matrix and range (and untagged ones, small and HD) are
//! packed with the conversion their tags call for: a stored frame equals the standard's
//! formula applied to the planes an independent decode of the same file gives.
#![cfg(feature = "ffmpeg")]

mod common;

use ff::color::{Range, Space};
use ffmpeg_next as ff;
use gdt_formats::params::PackParams;
use gdt_pipeline::source::window::{decode_windows, WindowOptions};
use gdt_pipeline::synth::encode::{write_video_with, EncodeOptions};
use gdt_pipeline::synth::{Container, Scenario, Scene};

const BT601: (f64, f64) = (0.299, 0.114);
const BT709: (f64, f64) = (0.2126, 0.0722);
const BT2020: (f64, f64) = (0.2627, 0.0593);

/// R, G, B (0-255) of one Y'CbCr triple by the standard's formula with `(kr, kb)`.
fn standard_rgb(y: u8, u: u8, v: u8, (kr, kb): (f64, f64), full: bool) -> [f64; 3] {
    let (y, pb, pr) = if full {
        (
            y as f64 / 255.0,
            (u as f64 - 128.0) / 255.0,
            (v as f64 - 128.0) / 255.0,
        )
    } else {
        (
            (y as f64 - 16.0) / 219.0,
            (u as f64 - 128.0) / 224.0,
            (v as f64 - 128.0) / 224.0,
        )
    };
    let r = y + 2.0 * (1.0 - kr) * pr;
    let b = y + 2.0 * (1.0 - kb) * pb;
    let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
    [r, g, b].map(|c| (c * 255.0).clamp(0.0, 255.0))
}

/// The first frame's Y, U, V planes (4:2:0, tightly packed), decoded by FFmpeg directly.
fn first_frame_planes(path: &std::path::Path) -> (u32, u32, [Vec<u8>; 3]) {
    let mut ictx = ff::format::input(&path).unwrap();
    let st = ictx.streams().best(ff::media::Type::Video).unwrap();
    let index = st.index();
    let mut dec = ff::codec::context::Context::from_parameters(st.parameters())
        .unwrap()
        .decoder()
        .video()
        .unwrap();
    let mut f = ff::frame::Video::empty();
    for (s, packet) in ictx.packets() {
        if s.index() == index {
            dec.send_packet(&packet).unwrap();
            if dec.receive_frame(&mut f).is_ok() {
                break;
            }
        }
    }
    if f.width() == 0 {
        dec.send_eof().unwrap();
        dec.receive_frame(&mut f).unwrap();
    }
    let (w, h) = (f.width(), f.height());
    let plane = |i: usize, pw: u32, ph: u32| {
        let stride = f.stride(i);
        (0..ph as usize)
            .flat_map(|y| f.data(i)[y * stride..y * stride + pw as usize].to_vec())
            .collect::<Vec<u8>>()
    };
    let planes = [plane(0, w, h), plane(1, w / 2, h / 2), plane(2, w / 2, h / 2)];
    (w, h, planes)
}

/// Mean and worst absolute difference, over pixels whose chroma is flat around them (so
/// that how chroma is interpolated does not matter), between a stored frame (planar RGB)
/// and the formula applied to the decoded planes.
fn difference(stored: &[u8], w: u32, h: u32, planes: &[Vec<u8>; 3], k: (f64, f64), full: bool) -> (f64, f64) {
    let (w, h) = (w as usize, h as usize);
    let (cw, ch) = (w / 2, h / 2);
    let flat = |p: &[u8], cx: usize, cy: usize| {
        let mut vals = Vec::new();
        for y in cy.saturating_sub(1)..(cy + 2).min(ch) {
            for x in cx.saturating_sub(1)..(cx + 2).min(cw) {
                vals.push(p[y * cw + x]);
            }
        }
        vals.iter().max().unwrap() - vals.iter().min().unwrap() <= 1
    };
    let (mut sum, mut worst, mut n) = (0.0, 0.0f64, 0usize);
    for y in 0..h {
        for x in 0..w {
            let (cx, cy) = (x / 2, y / 2);
            if !flat(&planes[1], cx, cy) || !flat(&planes[2], cx, cy) {
                continue;
            }
            let want = standard_rgb(
                planes[0][y * w + x],
                planes[1][cy * cw + cx],
                planes[2][cy * cw + cx],
                k,
                full,
            );
            for (c, expect) in want.iter().enumerate() {
                let d = (stored[c * w * h + y * w + x] as f64 - expect).abs();
                sum += d;
                worst = worst.max(d);
                n += 1;
            }
        }
    }
    assert!(n > w * h, "too few flat-chroma pixels to compare ({n})");
    (sum / n as f64, worst)
}

#[test]
fn each_matrix_and_range_is_converted_as_tagged() {
    let cases = [
        (
            "BT.709 limited",
            320,
            240,
            Some((Space::BT709, Range::MPEG)),
            BT709,
            false,
        ),
        (
            "BT.601 limited",
            320,
            240,
            Some((Space::SMPTE170M, Range::MPEG)),
            BT601,
            false,
        ),
        (
            "BT.601 full",
            320,
            240,
            Some((Space::BT470BG, Range::JPEG)),
            BT601,
            true,
        ),
        (
            "BT.709 full",
            320,
            240,
            Some((Space::BT709, Range::JPEG)),
            BT709,
            true,
        ),
        (
            "BT.2020 limited",
            320,
            240,
            Some((Space::BT2020NCL, Range::MPEG)),
            BT2020,
            false,
        ),
        ("untagged SD: BT.601", 320, 240, None, BT601, false),
        ("untagged HD: BT.709", 1280, 720, None, BT709, false),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, width, height, colour, k, full) in cases {
        let scenario = Scenario {
            width,
            height,
            classes: 4,
            ..common::scenario(7, 30, false, 0.2, 16_000, 1)
        };
        let path = dir
            .path()
            .join(format!("{width}-{}.mp4", name.replace([' ', ':', '.'], "")));
        let options = EncodeOptions {
            no_audio: true,
            colour,
            ..EncodeOptions::default()
        };
        write_video_with(&path, Container::Mp4, &Scene::new(&scenario), &options).unwrap();
        // Stored at the source's own size: no scaling, only the conversion.
        let params = PackParams {
            short_side: height,
            max_long_side: width,
            ..PackParams::default()
        };
        let decoded = decode_windows(&path, &params, &WindowOptions::default()).unwrap();
        let window = &decoded.windows[0];
        assert_eq!((window.width, window.height), (width, height));
        let (w, h, planes) = first_frame_planes(&path);
        let frame = &window.frames[..(3 * w * h) as usize];
        let (mean, worst) = difference(frame, w, h, &planes, k, full);
        // The conversion libswscale would make with its defaults (BT.601, limited range):
        // the test can tell it apart wherever the tags ask for something else.
        let (default_mean, default_worst) = difference(frame, w, h, &planes, BT601, false);
        eprintln!(
            "{name}: mean {mean:.2}, worst {worst:.1} levels; against BT.601 limited {default_mean:.2}, {default_worst:.1}"
        );
        assert!(
            mean < 0.75 && worst <= 3.0,
            "{name}: mean {mean:.2}, worst {worst:.1} levels off the standard"
        );
        if (k, full) != (BT601, false) {
            assert!(
                default_mean > 2.0 * mean && default_worst > worst + 3.0,
                "{name}: indistinguishable from BT.601 limited"
            );
        }
    }
}
