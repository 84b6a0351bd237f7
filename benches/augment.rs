//! Micro-benchmarks of the loader's per-view hot paths: the crop/scale/flip resample of a
//! 30-frame clip and the log-mel spectrogram of one second of audio.
//! `cargo bench --bench augment`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gdt_formats::field::frames::FrameShape;
use gdt_formats::params::PackParams;
use gdt_pipeline::load::augment::{crop_resize, AudioAugment, ResizeScratch, VideoAugment};
use gdt_pipeline::load::sampler::draw_stream;
use gdt_pipeline::source::spectrogram::MelSpectrogram;

fn clip_crop_flip(c: &mut Criterion) {
    let shape = FrameShape {
        width: 171,
        height: 128,
    };
    let frames: Vec<u8> = (0..30 * shape.bytes()).map(|i| (i * 31 % 251) as u8).collect();
    let aug = VideoAugment::default();
    let mut out = vec![0u8; 3 * 30 * 112 * 112];
    let mut scratch = ResizeScratch::default();
    let mut g = c.benchmark_group("video");
    g.throughput(Throughput::Elements(1));
    g.bench_function("crop_scale_flip_30x112x112", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let d = aug.draw(&mut draw_stream(0, 0, i, 0), shape.width, shape.height);
            crop_resize(&frames, shape, 112, &d, i % 2 == 0, &mut scratch, &mut out);
        })
    });
    g.finish();
}

fn audio(c: &mut Criterion) {
    let params = PackParams::default();
    let mels = MelSpectrogram::new(&params);
    let second: Vec<f32> = (0..24_000)
        .map(|i| ((i * 7919) % 2000) as f32 / 2000.0 - 0.5)
        .collect();
    let mut g = c.benchmark_group("audio");
    g.bench_function("logmel_257_one_second", |b| b.iter(|| mels.compute(&second)));
    let (mel, total) = mels.compute(&vec![0.1f32; 240_000]);
    let aug = AudioAugment::default();
    let mut out = vec![0f32; 257 * 99];
    g.bench_function("slice_volume_specaugment_257x99", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let d = aug.draw(&mut draw_stream(0, 0, i, 0), 257, 99);
            aug.apply(&mel, total, 257, (i % 800) as usize, 99, false, &d, &mut out);
        })
    });
    g.finish();
}

criterion_group!(benches, clip_crop_flip, audio);
criterion_main!(benches);
