//! The offline packer: inputs are decoded on all cores, written as records in input order
//! into shards of about `shard_size` bytes, and described by `dataset.json` and
//! `pack-report.jsonl`. Bad inputs never stop the run: each is skipped with its reason.
//! The output is byte-identical for any number of jobs, and an interrupted run resumes.

mod input;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::Duration;

use gdt_formats::dataset::{
    is_shard_file, shard_file_name, shard_index, DatasetManifest, ShardInfo, Totals, DATASET_FILE,
};
use gdt_formats::field::meta::{AudioOrigin, RecordMeta};
use gdt_formats::params::PackParams;
use gdt_formats::shard::{EncodedRecord, ShardWriter, FORMAT_VERSION};
use gdt_formats::FormatError;
use serde::{Deserialize, Serialize};

pub use input::{list_inputs, source_root, PackInput, VIDEO_EXTENSIONS};
pub use state::{PackState, STATE_FILE};

use crate::decode::DecodeError;
use crate::spectrogram::MelSpectrogram;
use crate::window::{decode_windows, WindowOptions};

pub const REPORT_FILE: &str = "pack-report.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{path}, line {line}: {what}")]
    Manifest {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{path}: unreadable pack state ({what}); pass --force to start over")]
    State { path: PathBuf, what: String },
    #[error("{path}: {what}")]
    Refused { path: PathBuf, what: String },
    #[error("interrupted; rerun the same command to resume from the last complete shard")]
    Interrupted,
    #[error("invalid packing parameters: {0}")]
    Params(String),
}

/// How to pack.
#[derive(Clone, Debug)]
pub struct PackConfig {
    pub output: PathBuf,
    pub params: PackParams,
    pub jobs: usize,
    /// Target shard size in bytes; a shard closes before the input that would pass it.
    pub shard_size: u64,
    /// Windows of `max_seconds` per video (long videos give several records).
    pub max_windows: u32,
    pub time_limit: Option<Duration>,
    /// Pack videos without audio with silence instead of skipping them.
    pub silence_for_missing_audio: bool,
    /// Shortest window kept, frames (one clip).
    pub min_frames: usize,
    /// Start over, deleting an earlier (partial or complete) pack in `output`.
    pub force: bool,
    /// Recorded in `dataset.json` so tools can find the source videos later (see
    /// [`source_root`]). Not part of the resume fingerprint: a corpus may move.
    pub source_root: Option<PathBuf>,
}

impl PackConfig {
    pub fn new(output: PathBuf) -> PackConfig {
        PackConfig {
            output,
            params: PackParams::default(),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shard_size: 1 << 30,
            max_windows: 1,
            time_limit: Some(Duration::from_secs(120)),
            silence_for_missing_audio: false,
            min_frames: 30,
            force: false,
            source_root: None,
        }
    }
}

/// What happened to one input: one line of `pack-report.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub input: String,
    pub status: Status,
    /// Short reason (the histogram key) when skipped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Full message when skipped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    pub label: Option<String>,
    pub records: usize,
    pub frames: u64,
    pub seconds: f64,
    pub raw_frame_bytes: u64,
    pub stored_bytes: u64,
    pub source_bytes: u64,
    /// Shard holding the records.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shard: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Packed,
    Skipped,
}

/// Told about every input as it is written, in input order.
pub trait Progress: Sync {
    fn input_done(&self, _outcome: &Outcome) {}
    /// Inputs already done by an earlier, interrupted run.
    fn resumed(&self, _inputs_done: usize) {}
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

/// The finished dataset.
#[derive(Clone, Debug)]
pub struct PackSummary {
    pub manifest: DatasetManifest,
    /// True when the output was already complete and nothing was done.
    pub already_complete: bool,
    /// Inputs this run processed (not counting those an earlier run finished).
    pub processed_now: usize,
}

/// Packs `inputs` into `config.output`. Stops early (with [`PackError::Interrupted`]) when
/// `cancel` becomes true, leaving a state to resume from.
pub fn pack(
    inputs: &[PackInput],
    config: &PackConfig,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<PackSummary, PackError> {
    config.params.validate().map_err(PackError::Params)?;
    let out = &config.output;
    std::fs::create_dir_all(out).map_err(|source| PackError::Io {
        path: out.clone(),
        source,
    })?;
    let fingerprint = state::Fingerprint::new(config, inputs);
    let mut st = prepare_output(out, &fingerprint, config.force)?;
    if st.complete {
        let manifest = DatasetManifest::load(out)?;
        return Ok(PackSummary {
            manifest,
            already_complete: true,
            processed_now: 0,
        });
    }
    if st.next_input > 0 {
        progress.resumed(st.next_input);
    }

    let labels: Vec<String> = inputs
        .iter()
        .filter_map(|i| i.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mels = MelSpectrogram::new(&config.params);
    let window_opts = WindowOptions {
        max_windows: config.max_windows,
        time_limit: config.time_limit,
    };

    // Workers claim inputs in order but never run more than `ahead` past the writer. That
    // bounds memory (a waiting input holds its compressed records, ~10 MB for a 10 s window
    // at the defaults) while leaving room for a long video to finish without idling the
    // other workers behind it.
    let ahead = config.jobs.max(1) * 4 + 4;
    let claim = Mutex::new((st.next_input, st.next_input)); // (next to claim, next to write)
    let written_cv = Condvar::new();
    let (tx, rx) = mpsc::channel::<(usize, Processed)>();
    let start_input = st.next_input;
    let mut processed_now = 0usize;

    let result = std::thread::scope(|s| -> Result<(), PackError> {
        for _ in 0..config.jobs.max(1) {
            let tx = tx.clone();
            let (claim, written_cv, mels, labels, window_opts) =
                (&claim, &written_cv, &mels, &labels, &window_opts);
            s.spawn(move || loop {
                let i = {
                    let mut g = claim.lock().expect("packer lock");
                    while g.0 < inputs.len() && g.0 >= g.1 + ahead && !cancel.load(Ordering::Relaxed) {
                        g = written_cv
                            .wait_timeout(g, Duration::from_millis(100))
                            .expect("packer lock")
                            .0;
                    }
                    if g.0 >= inputs.len() || cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    g.0 += 1;
                    g.0 - 1
                };
                let processed = process(&inputs[i], config, mels, labels, window_opts);
                if tx.send((i, processed)).is_err() {
                    break;
                }
            });
        }
        drop(tx);

        let mut pending: BTreeMap<usize, Processed> = BTreeMap::new();
        let mut writer: Option<ShardWriter> = None;
        let mut next = start_input;
        let finish_shard = |writer: &mut Option<ShardWriter>,
                            st: &mut PackState,
                            next_input: usize|
         -> Result<(), PackError> {
            if let Some(w) = writer.take() {
                let file = shard_file_name(st.shards.len());
                let summary = w.finish()?;
                st.shards.push(ShardInfo {
                    file,
                    records: summary.records,
                    bytes: summary.bytes,
                });
                st.next_input = next_input;
                st.save(out)?;
            }
            Ok(())
        };
        while next < inputs.len() {
            if cancel.load(Ordering::Relaxed) {
                return Err(PackError::Interrupted);
            }
            let (i, p) = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(item) => item,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PackError::Interrupted);
                }
            };
            pending.insert(i, p);
            while let Some(p) = pending.remove(&next) {
                // Checked per input, not per message: with workers ahead, one message can
                // release a long run of pending inputs, and Ctrl-C must not wait for them.
                if cancel.load(Ordering::Relaxed) {
                    return Err(PackError::Interrupted);
                }
                let mut outcome = p.outcome;
                if !p.records.is_empty() {
                    let bytes: u64 = p.records.iter().map(EncodedRecord::stored_bytes).sum();
                    if writer
                        .as_ref()
                        .is_some_and(|w| w.record_count() > 0 && w.bytes() + bytes > config.shard_size)
                    {
                        finish_shard(&mut writer, &mut st, next)?;
                    }
                    if writer.is_none() {
                        writer = Some(ShardWriter::create(
                            &out.join(shard_file_name(st.shards.len())),
                            &config.params,
                        )?);
                    }
                    let w = writer.as_mut().expect("created above");
                    for r in &p.records {
                        w.append(r)?;
                    }
                    outcome.stored_bytes = bytes;
                    outcome.shard = Some(st.shards.len());
                }
                progress.input_done(&outcome);
                st.outcomes.push(outcome);
                next += 1;
                processed_now += 1;
                claim.lock().expect("packer lock").1 = next;
                written_cv.notify_all();
            }
        }
        finish_shard(&mut writer, &mut st, next)
    });
    if let Err(e) = result {
        // Whatever the writer had open is incomplete: remove it so nothing looks finished.
        remove_partial_shards(out, st.shards.len());
        return Err(e);
    }

    let mut manifest = describe(&st, &config.params, labels);
    manifest.source_root = config.source_root.clone();
    write_report(out, &st.outcomes)?;
    manifest.save(out)?;
    st.complete = true;
    st.save(out)?;
    Ok(PackSummary {
        manifest,
        already_complete: false,
        processed_now,
    })
}

/// Decides where to start: fresh, resumed, or already complete. Refuses to touch a
/// directory it does not recognise, or to resume with different settings.
fn prepare_output(out: &Path, fingerprint: &state::Fingerprint, force: bool) -> Result<PackState, PackError> {
    let fresh = || PackState {
        fingerprint: fingerprint.clone(),
        shards: vec![],
        next_input: 0,
        outcomes: vec![],
        complete: false,
    };
    // A fresh pack records its state before writing anything else, so a run killed at any
    // later moment leaves a directory the next run recognises and resumes.
    let start_fresh = || -> Result<PackState, PackError> {
        let st = fresh();
        st.save(out)?;
        Ok(st)
    };
    if force {
        clear_output(out)?;
        return start_fresh();
    }
    match PackState::load(out)? {
        Some(st) => {
            if let Some(what) = st.fingerprint.difference(fingerprint) {
                return Err(PackError::Refused {
                    path: out.to_path_buf(),
                    what: format!(
                        "holds a pack made with a different {what}; refusing to mix them. Use the original settings to resume, or --force to start over"
                    ),
                });
            }
            if !st.complete {
                remove_partial_shards(out, st.shards.len());
            }
            Ok(st)
        }
        None => {
            let entries = std::fs::read_dir(out).map_err(|source| PackError::Io {
                path: out.to_path_buf(),
                source,
            })?;
            // Only a run killed while writing its first state file leaves our temporary
            // behind with no state beside it; anything else belongs to someone else.
            let mut foreign = false;
            for e in entries.flatten() {
                foreign |= !is_our_temporary(&e.file_name().to_string_lossy());
            }
            if foreign {
                return Err(PackError::Refused {
                    path: out.to_path_buf(),
                    what: "is not empty and holds no gdt pack in progress; choose an empty directory or pass --force".into(),
                });
            }
            remove_partial_shards(out, 0);
            start_fresh()
        }
    }
}

/// Removes shards numbered `from` and up, and every temporary file.
fn remove_partial_shards(out: &Path, from: usize) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let numbered = shard_index(&name).is_some_and(|n| n >= from);
        if numbered || name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether `name` is the temporary name of a file a pack writes (see
/// [`gdt_formats::atomic_file::temp_path`]).
fn is_our_temporary(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .is_some_and(|n| is_shard_file(n) || [DATASET_FILE, REPORT_FILE, STATE_FILE].contains(&n))
}

/// `--force`: removes what a pack writes, and nothing else.
fn clear_output(out: &Path) -> Result<(), PackError> {
    let entries = std::fs::read_dir(out).map_err(|source| PackError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = is_shard_file(&name)
            || name.ends_with(".tmp")
            || [DATASET_FILE, REPORT_FILE, STATE_FILE].contains(&name.as_str());
        if ours {
            std::fs::remove_file(e.path()).map_err(|source| PackError::Io {
                path: e.path(),
                source,
            })?;
        }
    }
    Ok(())
}

fn write_report(out: &Path, outcomes: &[Outcome]) -> Result<(), PackError> {
    let mut text = String::new();
    for o in outcomes {
        text.push_str(&serde_json::to_string(o).expect("outcome serialises"));
        text.push('\n');
    }
    let path = out.join(REPORT_FILE);
    gdt_formats::atomic_file::write_atomic(&path, text.as_bytes())
        .map_err(|source| PackError::Io { path, source })
}

fn describe(st: &PackState, params: &PackParams, labels: Vec<String>) -> DatasetManifest {
    let mut totals = Totals {
        inputs: st.outcomes.len(),
        ..Totals::default()
    };
    let mut skipped = BTreeMap::new();
    let mut label_counts = BTreeMap::new();
    for o in &st.outcomes {
        match o.status {
            Status::Packed => {
                totals.packed += 1;
                totals.records += o.records;
                totals.frames += o.frames;
                totals.seconds += o.seconds;
                totals.raw_frame_bytes += o.raw_frame_bytes;
                totals.source_bytes += o.source_bytes;
                if let Some(l) = &o.label {
                    *label_counts.entry(l.clone()).or_insert(0) += o.records;
                }
            }
            Status::Skipped => {
                totals.skipped += 1;
                *skipped.entry(o.reason.clone().unwrap_or_default()).or_insert(0) += 1;
            }
        }
    }
    totals.stored_bytes = st.shards.iter().map(|s| s.bytes).sum();
    DatasetManifest {
        format_version: FORMAT_VERSION,
        writer: concat!("gdt ", env!("CARGO_PKG_VERSION")).to_string(),
        params: params.clone(),
        shards: st.shards.clone(),
        labels,
        label_counts,
        totals,
        skipped,
        source_root: None,
    }
}

/// One input, decoded and compressed (or the reason it was skipped).
struct Processed {
    outcome: Outcome,
    records: Vec<EncodedRecord>,
}

fn skipped(input: &PackInput, reason: &str, detail: String) -> Processed {
    Processed {
        outcome: Outcome {
            input: input.source.clone(),
            status: Status::Skipped,
            reason: Some(reason.to_string()),
            detail: Some(detail),
            label: input.label.clone(),
            records: 0,
            frames: 0,
            seconds: 0.0,
            raw_frame_bytes: 0,
            stored_bytes: 0,
            source_bytes: 0,
            shard: None,
        },
        records: vec![],
    }
}

/// Short, stable reasons: the keys of the skip histogram.
fn reason_of(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::NoStream { kind: "video", .. } => "no video stream",
        DecodeError::NoStream { .. } => "no audio stream",
        DecodeError::Ffmpeg {
            what: "opening the file",
            ..
        } => "not a readable video file",
        DecodeError::TimedOut { .. } => "decoder time limit",
        DecodeError::SampleFormat { .. } => "unsupported audio format",
        _ => "decoding failed",
    }
}

fn process(
    input: &PackInput,
    config: &PackConfig,
    mels: &MelSpectrogram,
    labels: &[String],
    opts: &WindowOptions,
) -> Processed {
    let source_bytes = match std::fs::metadata(&input.path) {
        Ok(m) if m.len() == 0 => {
            return skipped(
                input,
                "empty file",
                format!("{}: file is empty", input.path.display()),
            )
        }
        Ok(m) => m.len(),
        Err(e) => {
            return skipped(
                input,
                "cannot read file",
                format!("{}: {e}", input.path.display()),
            )
        }
    };
    // A panic inside a decoder must not take the whole pack down.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_windows(&input.path, &config.params, opts)
    }));
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return skipped(input, reason_of(&e), e.to_string()),
        Err(_) => {
            return skipped(
                input,
                "decoding failed",
                format!("{}: decoder panicked", input.path.display()),
            )
        }
    };
    let has_audio = decoded.info.audio_codec.is_some();
    if !has_audio && !config.silence_for_missing_audio {
        return skipped(
            input,
            "no audio stream",
            format!("{}: no audio stream (--no-audio skip)", input.path.display()),
        );
    }
    let p = &config.params;
    let longest = decoded.windows.iter().map(|w| w.frame_count).max().unwrap_or(0);
    let windows: Vec<_> = decoded
        .windows
        .into_iter()
        .filter(|w| w.frame_count >= config.min_frames)
        .collect();
    if windows.is_empty() {
        return skipped(
            input,
            "shorter than one clip",
            format!(
                "{}: {longest} frames at {} fps (with audio), a clip needs {}",
                input.path.display(),
                p.fps,
                config.min_frames
            ),
        );
    }
    let label_index = input
        .label
        .as_ref()
        .and_then(|l| labels.iter().position(|x| x == l))
        .map(|i| i as u32);
    let mut records = Vec::with_capacity(windows.len());
    let (mut frames, mut raw) = (0u64, 0u64);
    for w in &windows {
        let samples = match &w.audio {
            Some(a) => a.clone(),
            None => vec![0.0; (w.frame_count as f64 / p.fps as f64 * p.sample_rate as f64).round() as usize],
        };
        let (spec, spec_frames) = mels.compute(&samples);
        let meta = RecordMeta {
            source: input.source.clone(),
            label: input.label.clone(),
            label_index,
            split: input.split.clone(),
            source_duration_s: decoded.info.duration_s,
            source_fps: decoded.info.fps,
            source_width: decoded.info.width,
            source_height: decoded.info.height,
            source_video_codec: decoded.info.video_codec.clone(),
            source_audio_codec: decoded.info.audio_codec.clone(),
            source_sample_rate: decoded.info.sample_rate,
            source_channels: decoded.info.channels,
            window_start_s: w.start_s,
            window_index: w.index,
            audio: if w.audio.is_some() {
                AudioOrigin::Decoded
            } else {
                AudioOrigin::Silence
            },
        };
        match EncodedRecord::encode(&meta, &w.frames, w.width, w.height, &spec, spec_frames as u32, p) {
            Ok(r) => records.push(r),
            Err(e) => {
                return skipped(
                    input,
                    "compression failed",
                    format!("{}: {e}", input.path.display()),
                )
            }
        }
        frames += w.frame_count as u64;
        raw += w.frames.len() as u64;
    }
    Processed {
        outcome: Outcome {
            input: input.source.clone(),
            status: Status::Packed,
            reason: None,
            detail: None,
            label: input.label.clone(),
            records: records.len(),
            frames,
            seconds: frames as f64 / p.fps as f64,
            raw_frame_bytes: raw,
            stored_bytes: 0,
            source_bytes,
            shard: None,
        },
        records,
    }
}
