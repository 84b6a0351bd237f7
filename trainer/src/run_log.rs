//! The per-step log of a run, `RUN/log.jsonl`: one JSON object per optimizer step, appended
//! and flushed as the run goes, so a crashed or running job can be read (or plotted) as is.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One JSON line per step, in the run directory.
pub const LOG_FILE: &str = "log.jsonl";

/// One step, as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Steps done after this one (1-based).
    pub step: u64,
    /// The loader epoch of its batch.
    pub epoch: u64,
    /// Batch index within the epoch.
    pub batch: usize,
    /// The GDT-NCE loss.
    pub loss: f64,
    /// The learning rate used.
    pub lr: f64,
    /// Clips (one video view with its audio view) trained on per second of step time.
    pub clips_per_s: f64,
    /// Fraction of the step spent waiting for the loader.
    pub data_wait: f64,
    /// Wall time of the step.
    pub step_seconds: f64,
    /// MiB of GPU memory in use, when on CUDA with an NVIDIA driver.
    pub gpu_memory_mib: Option<f64>,
    /// Fraction of the step spent blocked in collectives outside the backward pass (the
    /// negatives' all-gather, the loss's mean; the gradient all-reduce when `dist.overlap` is
    /// off, since overlapped buckets run inside the backward pass). 0 outside data-parallel
    /// runs, and in logs written before it existed.
    #[serde(default)]
    pub all_reduce: f64,
}

/// `log.jsonl`, appended one line per step.
pub struct RunLog {
    path: PathBuf,
    file: fs::File,
}

impl RunLog {
    /// Opens the log for appending after `keep_through` steps: records of later steps (written
    /// after the checkpoint a resumed run starts from) are dropped, so each step appears once.
    pub fn open(run_dir: &Path, keep_through: u64) -> std::io::Result<RunLog> {
        let path = run_dir.join(LOG_FILE);
        let kept: Vec<StepRecord> = read(&path)?
            .into_iter()
            .filter(|r| r.step <= keep_through)
            .collect();
        let mut text = String::new();
        for r in &kept {
            text.push_str(&serde_json::to_string(r).expect("record serialises"));
            text.push('\n');
        }
        gdt_formats::atomic_file::write_atomic(&path, text.as_bytes())?;
        let file = fs::OpenOptions::new().append(true).open(&path)?;
        Ok(RunLog { path, file })
    }

    /// Appends one step.
    pub fn append(&mut self, r: &StepRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_string(r).expect("record serialises");
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every record of a log (none if it does not exist). A torn last line (a crash mid-write) is
/// ignored; a damaged line elsewhere is an error naming the line.
pub fn read(path: &Path) -> std::io::Result<Vec<StepRecord>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: line {}: {e}", path.display(), i + 1),
                ))
            }
        }
    }
    Ok(out)
}
