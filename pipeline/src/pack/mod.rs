//! The offline packer: inputs are decoded on all cores, written as records in input order
//! into shards of about `shard_size` bytes, and described by `dataset.json` and
//! `pack-report.jsonl`. Bad inputs never stop the run: each is skipped with its reason.
//! The output is byte-identical for any number of jobs, and an interrupted run resumes.
//! On a cluster, each task packs one part of the input list (`part`) and `merge` joins them.

mod input;
mod merge;
#[cfg(feature = "ffmpeg")]
mod output;
mod part;
#[cfg(feature = "ffmpeg")]
mod process;
mod report;
mod state;
#[cfg(feature = "ffmpeg")]
mod upload;

use std::path::PathBuf;
#[cfg(feature = "ffmpeg")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gdt_formats::dataset::{DatasetManifest, InputCounts, InputTally};
use gdt_formats::params::PackParams;
use gdt_formats::{FileError, FormatError};
use serde::{Deserialize, Serialize};

pub use gdt_formats::dataset::{REPORT_FILE, STATE_FILE};
pub use input::{list_inputs, source_root, PackInput, VIDEO_EXTENSIONS};
pub use merge::{merge, MergeSummary};
pub use part::Part;
pub use state::PackState;

#[cfg(feature = "ffmpeg")]
use crate::source::spectrogram::MelSpectrogram;
#[cfg(feature = "ffmpeg")]
use crate::source::window::WindowOptions;
#[cfg(feature = "ffmpeg")]
use gdt_formats::dataset::DatasetWriter;
#[cfg(feature = "ffmpeg")]
use process::{process, Processed};

/// Why a pack stopped. Bad inputs never stop it: they are outcomes.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A shard or dataset file could not be written or read back.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A line of the CSV manifest is invalid.
    #[error("{path}, line {line}: {what}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
    /// `.pack-state.json` cannot be read.
    #[error("{path}: unreadable pack state ({what}); pass --force to start over")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        what: String,
    },
    /// The output directory holds something the pack will not touch.
    #[error("{path}: {what}")]
    Refused {
        /// The output directory.
        path: PathBuf,
        /// Why it was refused and what to do.
        what: String,
    },
    /// An object store failed (after its retries), or refused the request.
    #[error(transparent)]
    Storage(#[from] gdt_formats::storage::StorageError),
    /// Cancelled (Ctrl-C); the state allows a resume.
    #[error("interrupted; rerun the same command to resume from the last complete shard")]
    Interrupted,
    /// The packing parameters are out of range.
    #[error("invalid packing parameters: {0}")]
    Params(String),
}

/// How to pack.
#[derive(Clone, Debug)]
pub struct PackConfig {
    /// The dataset directory to write, or an object-store prefix (`s3://bucket/k400`).
    pub output: PathBuf,
    /// For an object-store output: the directory below which shards are written before
    /// their upload (about three at a time), in a folder of the pack's own that it removes
    /// when it completes. Default: the system's temporary directory.
    pub staging: Option<PathBuf>,
    /// What the records are packed with.
    pub params: PackParams,
    /// Inputs decoded at once.
    pub jobs: usize,
    /// Target shard size in bytes; a shard closes before the input that would pass it.
    pub shard_size: u64,
    /// Windows of `max_seconds` per video (long videos give several records).
    pub max_windows: u32,
    /// Give up on one input after this long.
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
    /// Pack only this part of the input list (see [`Part`]); `merge` joins the parts.
    pub part: Option<Part>,
}

impl PackConfig {
    /// The defaults: all cores, 1 GiB shards, one window per video, skip videos without audio.
    pub fn new(output: PathBuf) -> PackConfig {
        PackConfig {
            output,
            staging: None,
            params: PackParams::default(),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shard_size: 1 << 30,
            max_windows: 1,
            time_limit: Some(Duration::from_secs(120)),
            silence_for_missing_audio: false,
            min_frames: 30,
            force: false,
            source_root: None,
            part: None,
        }
    }
}

/// What happened to one input: one line of `pack-report.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The input as the user named it.
    pub input: String,
    /// Packed or skipped.
    pub status: Status,
    /// Short reason (the histogram key) when skipped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Full message when skipped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// Its label.
    pub label: Option<String>,
    /// What it gave (zero when skipped).
    #[serde(flatten)]
    pub counts: InputCounts,
    /// What its records take in the shard.
    pub stored_bytes: u64,
    /// Shard holding the records.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shard: Option<usize>,
}

/// What happened to an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It gave at least one record.
    Packed,
    /// It could not be packed (see the reason).
    Skipped,
}

/// Told about every input as it is written, in input order.
pub trait Progress: Sync {
    /// After each input is written (or skipped).
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
    /// Its `dataset.json`.
    pub manifest: DatasetManifest,
    /// True when the output was already complete and nothing was done.
    pub already_complete: bool,
    /// Inputs this run processed (not counting those an earlier run finished).
    pub processed_now: usize,
}

/// Packs `inputs` (or, with `config.part`, that part of them) into `config.output` (a
/// directory, or an object-store prefix: see [`upload`]). Stops
/// early (with [`PackError::Interrupted`]) when `cancel` becomes true, leaving a state to
/// resume from.
#[cfg(feature = "ffmpeg")]
pub fn pack(
    inputs: &[PackInput],
    config: &PackConfig,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<PackSummary, PackError> {
    config.params.validate().map_err(PackError::Params)?;
    let out = &config.output;
    // A part is fingerprinted with the whole list, and its records get the whole list's
    // label numbers, so that parts merge into exactly a one-machine pack.
    let all = inputs;
    let inputs = match config.part {
        Some(part) => &all[part.range(all.len())],
        None => all,
    };
    let (mut output, mut st) = output::Output::open(config, &state::Fingerprint::new(config, all))?;
    if st.complete {
        return Ok(PackSummary {
            manifest: DatasetManifest::load(out)?,
            already_complete: true,
            processed_now: 0,
        });
    }
    if st.next_input > 0 {
        progress.resumed(st.next_input);
    }
    let labels: Vec<String> = all
        .iter()
        .filter_map(|i| i.label.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let dir = output.dir.clone();
    let mut writer = DatasetWriter::new(&dir, &config.params, config.shard_size, labels, st.shards.clone())?;
    let start_input = st.next_input;
    if let Err(e) = write_in_order(
        inputs,
        config,
        progress,
        cancel,
        &mut writer,
        &mut st,
        &mut output,
    ) {
        // Whatever the writer had open is incomplete: remove it so nothing looks finished.
        output::remove_partial_shards(&dir, st.shards.len());
        return Err(e);
    }
    if writer.close_shard()? {
        st.shards = writer.shards().to_vec();
        output.save(&st)?;
    }
    report::write_report(&dir, &st.outcomes)?;
    let tallies: Vec<InputTally> = st.outcomes.iter().map(Outcome::tally).collect();
    let manifest = writer.finish(
        &tallies,
        concat!("gdt ", env!("CARGO_PKG_VERSION")),
        config.source_root.clone(),
    )?;
    st.complete = true;
    output.finish(&st)?;
    Ok(PackSummary {
        manifest,
        already_complete: false,
        processed_now: st.next_input - start_input,
    })
}

/// Workers decode inputs on all cores; this thread appends their records in input order,
/// saving the state after every shard it completes. Returns when every input is written.
#[cfg(feature = "ffmpeg")]
fn write_in_order(
    inputs: &[PackInput],
    config: &PackConfig,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    writer: &mut DatasetWriter,
    st: &mut PackState,
    output: &mut output::Output,
) -> Result<(), PackError> {
    let mels = MelSpectrogram::new(&config.params);
    let window_opts = WindowOptions {
        max_windows: config.max_windows,
        time_limit: config.time_limit,
        decoder_threads: 1,
    };
    // Workers claim inputs in order but never run more than `ahead` past the writer. That
    // bounds memory (a waiting input holds its compressed records, ~10 MB for a 10 s window
    // at the defaults) while leaving room for a long video to finish without idling the
    // other workers behind it.
    let ahead = config.jobs.max(1) * 4 + 4;
    use std::sync::{mpsc, Condvar, Mutex};
    let claim = Mutex::new((st.next_input, st.next_input)); // (next to claim, next to write)
    let written_cv = Condvar::new();
    let (tx, rx) = mpsc::channel::<(usize, Processed)>();
    // The workers' copy: the writer itself is borrowed mutably below.
    let labels = writer.labels().to_vec();
    std::thread::scope(|s| -> Result<(), PackError> {
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
                // Fewer inputs left than workers (a pack of a few large videos, or its tail):
                // the idle workers' cores go to these inputs' decoders.
                let opts = WindowOptions {
                    decoder_threads: (config.jobs.max(1) / (inputs.len() - i)).max(1),
                    ..window_opts.clone()
                };
                let processed = process(&inputs[i], config, mels, labels, &opts);
                if tx.send((i, processed)).is_err() {
                    break;
                }
            });
        }
        drop(tx);

        let mut pending = std::collections::BTreeMap::new();
        while st.next_input < inputs.len() {
            if cancel.load(Ordering::Relaxed) {
                return Err(PackError::Interrupted);
            }
            let (i, p) = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(item) => item,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(PackError::Interrupted),
            };
            pending.insert(i, p);
            while let Some(p) = pending.remove(&st.next_input) {
                // Checked per input, not per message: with workers ahead, one message can
                // release a long run of pending inputs, and Ctrl-C must not wait for them.
                if cancel.load(Ordering::Relaxed) {
                    return Err(PackError::Interrupted);
                }
                write_input(p, writer, st, output, progress)?;
                claim.lock().expect("packer lock").1 = st.next_input;
                written_cv.notify_all();
            }
        }
        Ok(())
    })
}

/// Appends one input's records (if any) and its outcome; when a shard closed before it,
/// saves the state, whose resume point is then this input.
#[cfg(feature = "ffmpeg")]
fn write_input(
    p: Processed,
    writer: &mut DatasetWriter,
    st: &mut PackState,
    output: &mut output::Output,
    progress: &dyn Progress,
) -> Result<(), PackError> {
    let mut outcome = p.outcome;
    if !p.records.is_empty() {
        let appended = writer.append(&p.records)?;
        if appended.closed_shard {
            st.shards = writer.shards().to_vec();
            output.save(st)?;
        }
        outcome.stored_bytes = appended.bytes;
        outcome.shard = Some(appended.shard);
    }
    progress.input_done(&outcome);
    st.outcomes.push(outcome);
    st.next_input += 1;
    Ok(())
}

impl Outcome {
    /// What this input adds to the dataset's totals.
    fn tally(&self) -> InputTally {
        InputTally {
            label: self.label.clone(),
            skipped: match self.status {
                Status::Packed => None,
                Status::Skipped => Some(self.reason.clone().unwrap_or_default()),
            },
            counts: self.counts,
        }
    }
}
