//! Packing throughput against decoding alone, and what the frame codec buys.
//!
//! `cargo bench --bench pack [-- CORPUS_DIR_OR_MANIFEST [JOBS]]`. Without an input it makes a
//! synthetic corpus of 24 videos first. In one run, on the same inputs and job count, it
//! measures:
//! - decode: `decode_windows` on every input (video decode, resampling to 30 fps, scaling,
//!   audio decode and resampling): the work any loader must do at least once;
//! - pack: the whole `gdt pack` (the above plus spectrograms, compression, shard writing);
//! - the stored size with and without the delta filter, and chunk decompression speed.

#[cfg(not(feature = "ffmpeg"))]
fn main() {
    eprintln!("the pack benchmark needs the `ffmpeg` feature");
}

#[cfg(feature = "ffmpeg")]
fn main() {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use gdt_formats::dataset::Dataset;
    use gdt_formats::field::frames::ChunkDecoder;
    use gdt_formats::params::{FrameCodec, PackParams};
    use gdt_pipeline::pack::{list_inputs, pack, PackConfig, Quiet};
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
                write_video(&dir.join(&v.file_name), v.container, &Scene::new(&v.spec)).unwrap();
            }
            std::fs::write(dir.join("manifest.csv"), manifest_csv(&videos)).unwrap();
            dir.join("manifest.csv")
        }
    };
    let jobs: usize = args.get(1).and_then(|j| j.parse().ok()).unwrap_or(2);
    let inputs = list_inputs(&input).expect("inputs");
    let params = PackParams::default();
    println!("{} inputs from {}, {jobs} jobs", inputs.len(), input.display());

    // Decoding alone, same parallelism as the packer.
    let next = AtomicUsize::new(0);
    let frames = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(input) = inputs.get(i) else { break };
                if let Ok(d) = decode_windows(&input.path, &params, &WindowOptions::default()) {
                    frames.fetch_add(
                        d.windows.iter().map(|w| w.frame_count).sum::<usize>(),
                        Ordering::Relaxed,
                    );
                }
            });
        }
    });
    let decode_s = t.elapsed().as_secs_f64();
    let frames = frames.into_inner();
    println!(
        "decode only  {decode_s:7.2} s  {:8.0} frames/s",
        frames as f64 / decode_s
    );

    let mut results = Vec::new();
    for delta in [true, false] {
        let out = tmp.path().join(format!("ds-{delta}"));
        let config = PackConfig {
            params: PackParams {
                codec: FrameCodec::RawZstd { level: 1, delta },
                ..params.clone()
            },
            jobs,
            ..PackConfig::new(out.clone())
        };
        let t = Instant::now();
        let summary = pack(&inputs, &config, &Quiet, &AtomicBool::new(false)).expect("pack");
        let pack_s = t.elapsed().as_secs_f64();
        let totals = &summary.manifest.totals;
        // Decompression speed: every chunk of every record, one thread.
        let ds = Dataset::open(&out).expect("dataset");
        let mut dec = ChunkDecoder::new().unwrap();
        let mut buf = Vec::new();
        let (mut raw, t) = (0usize, Instant::now());
        for shard in &ds.shards {
            for r in 0..shard.len() {
                let rec = shard.record(r).unwrap();
                rec.read_frames(&mut dec, 0, rec.entry().frames as usize, &mut buf)
                    .unwrap();
                raw += buf.len();
            }
        }
        let gbps = raw as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!(
            "pack delta={delta:<5} {pack_s:7.2} s  {:8.0} frames/s  {:5.1}% over decode only   stored {:5.1}% of raw u8   decompress {gbps:.2} GB/s/core",
            totals.frames as f64 / pack_s,
            100.0 * (pack_s / decode_s - 1.0),
            100.0 * totals.stored_bytes as f64 / totals.raw_frame_bytes as f64
        );
        results.push(pack_s);
    }
}
