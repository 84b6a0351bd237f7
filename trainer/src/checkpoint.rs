//! Checkpoints: everything a run needs to continue exactly, written so that a crash at any
//! moment leaves the previous checkpoint intact.
//!
//! `RUN/checkpoints/step-00000500/` holds `model.safetensors` (every VarStore variable, batch
//! norm statistics included), `optimizer.safetensors` (momentum buffers) and `state.json`
//! (step, loader position, the resolved config). The directory is written as
//! `step-00000500.tmp`, synced, and renamed: a directory without the `.tmp` suffix is complete.

use std::fs;
use std::path::{Path, PathBuf};

use gdt_formats::FileError;
use gdt_pipeline::load::loader::LoaderState;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use crate::sgd::Sgd;

/// Where a run directory keeps its checkpoints.
pub const CHECKPOINT_DIR: &str = "checkpoints";
const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
/// Bumped when the checkpoint layout changes incompatibly.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// libtorch could not save or load the tensors.
    #[error("{path}: {source}")]
    Tensor {
        /// The weights or optimizer file.
        path: PathBuf,
        /// libtorch's error.
        source: tch::TchError,
    },
    /// A file of the checkpoint is not what it must be.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run directory holds no complete checkpoint to resume.
    #[error("{0}: no complete checkpoint")]
    None(PathBuf),
}

/// What `state.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The checkpoint layout version.
    pub version: u32,
    /// Optimizer steps done.
    pub step: u64,
    /// The loader position of the batch the next step trains on.
    pub loader: LoaderState,
    /// The resolved config, as TOML.
    pub config: String,
    /// Ranks that trained it (1 in checkpoints that predate data parallelism): with the
    /// config's per-rank batch size, the global batch its loader position counts in.
    #[serde(default = "one_rank")]
    pub world: usize,
}

fn one_rank() -> usize {
    1
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| FileError::at(path)(source).into()
}

/// tch wraps safetensors' errors with the path a second time and shows their I/O errors in
/// Debug form; an I/O failure (a full disk, a missing file) is reported as one instead,
/// naming the path once.
fn tensor_error(path: &Path, source: tch::TchError) -> CheckpointError {
    let path = path.to_path_buf();
    match source {
        tch::TchError::Io(source)
        | tch::TchError::SafeTensorError {
            err: safetensors::SafeTensorError::IoError(source),
            ..
        } => FileError { path, source }.into(),
        tch::TchError::SafeTensorError { err, .. } => CheckpointError::Invalid {
            path,
            message: format!("not a readable safetensors file ({err:?})"),
        },
        source => CheckpointError::Tensor { path, source },
    }
}

fn sync_file(path: &Path) -> Result<(), CheckpointError> {
    fs::File::open(path).and_then(|f| f.sync_all()).map_err(io(path))
}

/// The directory name of the checkpoint after `step` steps.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Writes a checkpoint for `state.step` and removes all but the newest `keep` complete ones.
pub fn save(
    run_dir: &Path,
    vs: &nn::VarStore,
    sgd: &Sgd,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    let root = run_dir.join(CHECKPOINT_DIR);
    fs::create_dir_all(&root).map_err(io(&root))?;
    let done = root.join(step_dir_name(state.step));
    let tmp = root.join(format!("{}.tmp", step_dir_name(state.step)));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io(&tmp))?;

    let mut model: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    model.sort_by(|a, b| a.0.cmp(&b.0));
    let write = |name: &str, tensors: &[(String, Tensor)]| -> Result<(), CheckpointError> {
        let path = tmp.join(name);
        Tensor::write_safetensors(tensors, &path).map_err(|e| tensor_error(&path, e))?;
        sync_file(&path)
    };
    let filled = (|| {
        write(MODEL_FILE, &model)?;
        write(OPTIMIZER_FILE, &sgd.state())?;
        let state_path = tmp.join(STATE_FILE);
        fs::write(
            &state_path,
            serde_json::to_vec_pretty(state).expect("state serialises"),
        )
        .map_err(io(&state_path))?;
        sync_file(&state_path)?;
        sync_file(&tmp)
    })();
    if let Err(e) = filled {
        // Most often a full disk: give back what the partial checkpoint took. Were this to
        // fail too, the `.tmp` directory is ignored by `list` and replaced by the next save.
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }

    if done.exists() {
        fs::remove_dir_all(&done).map_err(io(&done))?;
    }
    fs::rename(&tmp, &done).map_err(io(&done))?;
    sync_file(&root)?;

    let complete = list(run_dir)?;
    for (_, old) in complete.iter().rev().skip(keep.max(1)) {
        fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(done)
}

/// Complete checkpoints of a run, oldest first.
pub fn list(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let root = run_dir.join(CHECKPOINT_DIR);
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(&root).map_err(io(&root))? {
        let entry = entry.map_err(io(&root))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue; // `.tmp` leftovers and foreign files
        };
        found.push((step, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// The newest complete checkpoint of a run directory.
pub fn latest(run_dir: &Path) -> Result<PathBuf, CheckpointError> {
    list(run_dir)?
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| CheckpointError::None(run_dir.to_path_buf()))
}

/// Reads a checkpoint's state without touching any model.
pub fn read_state(dir: &Path) -> Result<CheckpointState, CheckpointError> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(io(&path))?;
    let state: CheckpointState = serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if state.version != CHECKPOINT_VERSION {
        return Err(CheckpointError::Invalid {
            path,
            message: format!(
                "checkpoint version {}, this build reads {CHECKPOINT_VERSION}",
                state.version
            ),
        });
    }
    Ok(state)
}

/// Loads the model weights of a checkpoint into `vs` (which must have the same variables).
pub fn load_model(dir: &Path, vs: &nn::VarStore) -> Result<(), CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let saved = Tensor::read_safetensors(&path).map_err(|e| tensor_error(&path, e))?;
    let saved: std::collections::HashMap<String, Tensor> = saved.into_iter().collect();
    let invalid = |message: String| CheckpointError::Invalid {
        path: path.clone(),
        message,
    };
    for (name, mut var) in vs.variables() {
        let src = saved
            .get(&name)
            .ok_or_else(|| invalid(format!("no tensor `{name}` (a different model size?)")))?;
        if src.size() != var.size() {
            return Err(invalid(format!(
                "`{name}` is {:?}, the model has {:?}",
                src.size(),
                var.size()
            )));
        }
        tch::no_grad(|| var.f_copy_(src)).map_err(|e| tensor_error(&path, e))?;
    }
    Ok(())
}

/// Loads weights, optimizer state and the saved state.
pub fn load(dir: &Path, vs: &nn::VarStore, sgd: &mut Sgd) -> Result<CheckpointState, CheckpointError> {
    let state = read_state(dir)?;
    load_model(dir, vs)?;
    let path = dir.join(OPTIMIZER_FILE);
    let saved = Tensor::read_safetensors(&path).map_err(|e| tensor_error(&path, e))?;
    sgd.load_state(&saved).map_err(|e| tensor_error(&path, e))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_weights_are_named_once_with_a_plain_cause() {
        let dir = tempfile::tempdir().unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _ = vs.root().zeros("w", &[2]);
        let path = dir.path().join(MODEL_FILE);
        let message = |e: CheckpointError| {
            let m = e.to_string();
            assert_eq!(m.matches(MODEL_FILE).count(), 1, "{m}");
            m
        };
        let missing = message(load_model(dir.path(), &vs).unwrap_err());
        assert!(missing.contains("No such file"), "{missing}");
        std::fs::write(&path, b"not safetensors at all").unwrap();
        let garbage = message(load_model(dir.path(), &vs).unwrap_err());
        assert!(garbage.contains("not a readable safetensors file"), "{garbage}");
    }
}
