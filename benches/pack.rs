//! Packing throughput against decoding alone: where the time goes, and the frame codec's
//! share of it, before and after the accelerated search (docs/PACKING.md).
//!
//! `cargo bench --bench pack [-- CORPUS_DIR_OR_MANIFEST [JOBS [ROUNDS]]]`. Without an input
//! it makes a synthetic corpus of 24 videos first. In one run, on the same inputs:
//! - stages, one thread, input by input: decoding (`decode_windows`: video decode, resampling
//!   to 30 fps, scaling, audio decode and resampling, the work any loader must do at least
//!   once), the spectrograms (computed and compressed), and the frame chunks compressed
//!   with each codec;
//! - end to end on JOBS threads, ROUNDS times, interleaved so that a shared machine's drift
//!   hits every row alike: decoding alone, `gdt pack` with the default codec, and `gdt pack`
//!   with the level's own search everywhere (`accel` 0, the codec before); the ratio to
//!   decoding is taken within each round, then the median;
//! - each pack's stored size and single-core decompression speed.

#[cfg(not(feature = "ffmpeg"))]
fn main() {
    eprintln!("the pack benchmark needs the `ffmpeg` feature");
}

#[cfg(feature = "ffmpeg")]
fn main() {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use gdt_formats::dataset::Dataset;
    use gdt_formats::field::frames::{encode_chunks, ChunkDecoder, FrameShape};
    use gdt_formats::field::spectrogram;
    use gdt_formats::params::{FrameCodec, PackParams};
    use gdt_pipeline::pack::{list_inputs, pack, PackConfig, PackInput, Quiet};
    use gdt_pipeline::source::spectrogram::MelSpectrogram;
    use gdt_pipeline::source::window::{decode_windows, WindowOptions};
    use gdt_pipeline::synth::encode::write_video;
    use gdt_pipeline::synth::{manifest_csv, plan, CorpusConfig, Scene};

    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let input: PathBuf = match args.first() {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = tmp.path().join("corpus");
            std::fs::create_dir_all(&dir).unwrap();
            let videos = plan(&CorpusConfig {
                count: 24,
                seed: 11,
                ..CorpusConfig::default()
            });
            for v in &videos {
                write_video(&dir.join(&v.file_name), v.container, &Scene::new(&v.scenario)).unwrap();
            }
            std::fs::write(dir.join("manifest.csv"), manifest_csv(&videos)).unwrap();
            dir.join("manifest.csv")
        }
    };
    let jobs: usize = args.get(1).and_then(|j| j.parse().ok()).unwrap_or(2);
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3).max(1);
    let inputs = list_inputs(&input).expect("inputs");
    let params = PackParams::default();
    let before = FrameCodec::RawZstd {
        level: FrameCodec::DEFAULT_ZSTD_LEVEL,
        delta: true,
        accel: 0,
    };
    let codecs = [
        ("default", params.codec.clone()),
        ("accel 0 (before)", before.clone()),
        (
            "no delta",
            FrameCodec::RawZstd {
                level: FrameCodec::DEFAULT_ZSTD_LEVEL,
                delta: false,
                accel: 0,
            },
        ),
    ];
    println!(
        "{} inputs from {}, {jobs} jobs, {rounds} rounds",
        inputs.len(),
        input.display()
    );

    // Stages, one thread, one input at a time (a large corpus never sits in memory), each
    // pass timed alone; the best of ROUNDS passes is the least disturbed.
    let mels = MelSpectrogram::new(&params);
    let mut raw = 0usize;
    let (mut decode_s, mut spec_s, mut codec_s) = (f64::MAX, f64::MAX, [f64::MAX; 3]);
    let mut codec_bytes = [0usize; 3];
    for _ in 0..rounds {
        let (mut d_s, mut s_s, mut c_s) = (0.0, 0.0, [0.0; 3]);
        (raw, codec_bytes) = (0, [0; 3]);
        for input in &inputs {
            let t = Instant::now();
            let Ok(d) = decode_windows(&input.path, &params, &WindowOptions::default()) else {
                continue;
            };
            d_s += t.elapsed().as_secs_f64();
            for w in &d.windows {
                raw += w.frames.len();
                if let Some(audio) = &w.audio {
                    let t = Instant::now();
                    let (values, _) = mels.compute(audio);
                    std::hint::black_box(spectrogram::encode(&values).unwrap());
                    s_s += t.elapsed().as_secs_f64();
                }
                let shape = FrameShape {
                    width: w.width,
                    height: w.height,
                };
                for (k, (_, codec)) in codecs.iter().enumerate() {
                    let t = Instant::now();
                    let blobs = encode_chunks(&w.frames, shape, params.chunk_frames as usize, codec).unwrap();
                    c_s[k] += t.elapsed().as_secs_f64();
                    codec_bytes[k] += blobs.iter().map(Vec::len).sum::<usize>();
                }
            }
        }
        decode_s = decode_s.min(d_s);
        spec_s = spec_s.min(s_s);
        for k in 0..codecs.len() {
            codec_s[k] = codec_s[k].min(c_s[k]);
        }
    }
    let of_decode = |s: f64| 100.0 * s / decode_s;
    println!("stages, one thread (best of {rounds}):");
    println!(
        "  decode        {decode_s:6.2} s  {:5.0} MB/s of stored frames",
        raw as f64 / decode_s / 1e6
    );
    println!(
        "  spectrograms  {spec_s:6.2} s  {:4.1}% of decode",
        of_decode(spec_s)
    );
    for (k, (name, _)) in codecs.iter().enumerate() {
        println!(
            "  frames, {name:<17} {:6.2} s  {:4.1}% of decode  {:5.0} MB/s  stored {:4.1}% of raw",
            codec_s[k],
            of_decode(codec_s[k]),
            raw as f64 / codec_s[k] / 1e6,
            100.0 * codec_bytes[k] as f64 / raw as f64
        );
    }

    // End to end, interleaved rounds: wall time and the process's CPU time (all threads,
    // user + system), which a shared machine's other tenants disturb less.
    let cpu_s = || {
        // SAFETY: getrusage writes one plain struct.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        s(u.ru_utime) + s(u.ru_stime)
    };
    let decode_all = |inputs: &[PackInput]| {
        let next = AtomicUsize::new(0);
        let (t, c) = (Instant::now(), cpu_s());
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    std::hint::black_box(
                        decode_windows(&input.path, &params, &WindowOptions::default()).ok(),
                    );
                });
            }
        });
        (t.elapsed().as_secs_f64(), cpu_s() - c)
    };
    let pack_with = |codec: &FrameCodec, out: &Path| {
        let config = PackConfig {
            params: PackParams {
                codec: codec.clone(),
                ..params.clone()
            },
            jobs,
            force: true,
            ..PackConfig::new(out.to_path_buf())
        };
        let (t, c) = (Instant::now(), cpu_s());
        pack(&inputs, &config, &Quiet, &AtomicBool::new(false)).expect("pack");
        (t.elapsed().as_secs_f64(), cpu_s() - c)
    };
    let packed = [("default", params.codec.clone()), ("accel 0 (before)", before)];
    let (mut decode_times, mut decode_cpu) = (Vec::new(), Vec::new());
    let mut pack_times = vec![Vec::new(); packed.len()];
    let mut ratios = vec![Vec::new(); packed.len()];
    let mut pack_cpu = vec![Vec::new(); packed.len()];
    for _ in 0..rounds {
        let (d, c) = decode_all(&inputs);
        decode_times.push(d);
        decode_cpu.push(c);
        for (k, (name, codec)) in packed.iter().enumerate() {
            let (p, pc) = pack_with(codec, &tmp.path().join(name.replace(' ', "-")));
            pack_times[k].push(p);
            ratios[k].push(p / d);
            pack_cpu[k].push(pc);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
        format!("{lo:.2}..{hi:.2}")
    };
    // Over decode: median pack time over median decode time. Per-round ratios are shown as
    // a range: on a shared machine disturbances last less than a round, so pairing rounds
    // does not cancel them.
    println!("end to end, {jobs} jobs (median of {rounds} rounds):");
    println!(
        "  decode only             {:6.2} s  ({} s)  CPU {:.2} s",
        median(&decode_times),
        range(&decode_times),
        median(&decode_cpu)
    );
    let (decode_wall, decode_cpu) = (median(&decode_times), median(&decode_cpu));
    for (k, (name, _)) in packed.iter().enumerate() {
        let out = tmp.path().join(name.replace(' ', "-"));
        let ds = Dataset::open(&out).expect("dataset");
        let totals = &ds.manifest.totals;
        // Decompression speed: every chunk of every record, one thread.
        let mut dec = ChunkDecoder::new().unwrap();
        let mut buf = Vec::new();
        let (mut bytes, t) = (0usize, Instant::now());
        for shard in &ds.shards {
            for r in 0..shard.len() {
                let rec = shard.record(r).unwrap();
                rec.read_frames(&mut dec, 0, rec.entry().frames as usize, &mut buf)
                    .unwrap();
                bytes += buf.len();
            }
        }
        let gbps = bytes as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!(
            "  pack, {name:<17} {:6.2} s  ({} s)  {:+5.1}% over decode (rounds {} %), CPU {:.2} s {:+5.1}%  {:5.0} frames/s  stored {:4.1}% of raw  decompress {gbps:.2} GB/s/core",
            median(&pack_times[k]),
            range(&pack_times[k]),
            100.0 * (median(&pack_times[k]) / decode_wall - 1.0),
            range(&ratios[k].iter().map(|r| 100.0 * (r - 1.0)).collect::<Vec<_>>()),
            median(&pack_cpu[k]),
            100.0 * (median(&pack_cpu[k]) / decode_cpu - 1.0),
            totals.counts.frames as f64 / median(&pack_times[k]),
            100.0 * totals.stored_bytes as f64 / totals.counts.raw_frame_bytes as f64
        );
    }
}
