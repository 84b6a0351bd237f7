//! The mono downmix against libswresample itself: the matrix `ffmpeg -ac 1` applies when it
//! writes the 16-bit samples the reference reads. A 5.1 source must not count its LFE
//! channel, and each layout's weights must match swresample's to the last bit.
#![cfg(feature = "ffmpeg")]

use ff::format::sample::Type;
use ff::format::Sample;
use ff::{frame, ChannelLayout};
use ffmpeg_next as ff;
use gdt_pipeline::source::decode::downmix_weights;

/// Each channel a sine of its own frequency and level, so any weight that is off shows.
fn channel(c: usize, i: usize) -> f32 {
    0.12 * (1.0 + c as f32 * 0.1) * ((i as f32) * (0.013 + 0.007 * c as f32)).sin()
}

#[test]
fn downmix_matches_swresample_for_common_layouts() {
    gdt_pipeline::ffmpeg_init();
    let n = 2048;
    for layout in [
        ChannelLayout::MONO,
        ChannelLayout::STEREO,
        ChannelLayout::_2POINT1,
        ChannelLayout::QUAD,
        ChannelLayout::_5POINT0,
        ChannelLayout::_5POINT1,
        ChannelLayout::_5POINT1_BACK,
        ChannelLayout::_7POINT1,
    ] {
        let ch = layout.channels() as usize;
        let mut input = frame::Audio::new(Sample::F32(Type::Planar), n, layout);
        input.set_rate(48_000);
        for c in 0..ch {
            for (i, x) in input.plane_mut::<f32>(c).iter_mut().enumerate() {
                *x = channel(c, i);
            }
        }
        let mut swr = ff::software::resampling::Context::get(
            Sample::F32(Type::Planar),
            layout,
            48_000,
            Sample::I16(Type::Packed),
            ChannelLayout::MONO,
            48_000,
        )
        .unwrap();
        let mut out = frame::Audio::empty();
        swr.run(&input, &mut out).unwrap();
        let theirs = out.plane::<i16>(0);
        assert_eq!(theirs.len(), n, "{layout:?}");
        let w = downmix_weights(layout.bits(), ch);
        for (i, &t) in theirs.iter().enumerate() {
            let ours: f32 = (0..ch).map(|c| w[c] * channel(c, i)).sum();
            let ours = (ours * 32768.0).round();
            assert!(
                (ours - t as f32).abs() <= 1.0,
                "{layout:?} sample {i}: ours {ours}, swresample {t} (weights {w:?})"
            );
        }
    }
}

#[test]
fn a_5_1_downmix_leaves_out_the_lfe_and_an_unnamed_layout_takes_the_default() {
    let w = downmix_weights(ChannelLayout::_5POINT1.bits(), 6);
    // FL FR FC LFE SL SR, in FFmpeg's channel order.
    let expect = [0.2071, 0.2071, 0.2929, 0.0, 0.1464, 0.1464];
    for (a, b) in w.iter().zip(expect) {
        assert!((a - b).abs() < 1e-4, "{w:?}");
    }
    assert_eq!(
        downmix_weights(0, 6),
        w,
        "6 unnamed channels are FFmpeg's default 5.1"
    );
    assert_eq!(downmix_weights(0, 2), vec![0.5, 0.5]);
    assert_eq!(downmix_weights(0, 1), vec![1.0]);
}
