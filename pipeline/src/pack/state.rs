//! The packer's resume point: `DATASET/.pack-state.json`, rewritten (atomically) after every
//! finished shard.
//!
//! Shards roll over only between inputs, so "shards 0..k are complete and input i is the
//! first not in them" fully describes progress. A resumed run deletes anything after shard
//! k, starts again at input i, and writes exactly the bytes an uninterrupted run would have.

use std::path::Path;

use gdt_formats::dataset::{ShardInfo, STATE_FILE};
use gdt_formats::params::PackParams;
use gdt_formats::storage::Location;
use gdt_formats::FileError;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::{Outcome, PackConfig, PackError, PackInput, Part};

/// `.pack-state.json`: how far a pack got.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PackState {
    /// Everything that decides the bytes of the output; a resume must match it exactly.
    pub fingerprint: Fingerprint,
    /// The shards completed.
    pub shards: Vec<ShardInfo>,
    /// The first input not covered by `shards` and `outcomes`.
    pub next_input: usize,
    /// Outcome of every input before `next_input`.
    pub outcomes: Vec<Outcome>,
    /// Whether the whole pack finished.
    pub complete: bool,
}

/// Which revision of the decoding path wrote a pack. Raised whenever the same parameters
/// and sources give other bytes (colour matrices honoured, audio priming timestamps fixed):
/// a resume across revisions would mix the two in one dataset, so it is refused.
pub const PACKER_REVISION: u32 = 2;

/// The settings a pack's bytes depend on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// [`PACKER_REVISION`] of the gdt that started the pack; 0 in packs that predate it.
    #[serde(default)]
    pub revision: u32,
    /// The packing parameters.
    pub params: PackParams,
    /// The target shard size.
    pub shard_size: u64,
    /// Windows per video.
    pub max_windows: u32,
    /// Shortest window kept.
    pub min_frames: usize,
    /// Whether videos without audio get silence.
    pub silence_for_missing_audio: bool,
    /// xxh3 of the input list (paths, labels, splits, in order).
    pub inputs: u64,
    /// Inputs in the list.
    pub input_count: usize,
    /// The part of the list this pack covers (`gdt pack --part`); none: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

impl Fingerprint {
    /// The fingerprint of a pack of `inputs` with `config`.
    pub fn new(config: &PackConfig, inputs: &[PackInput]) -> Fingerprint {
        let mut listing = String::new();
        for i in inputs {
            listing.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                i.path.display(),
                i.source,
                i.label.as_deref().unwrap_or(""),
                i.split.as_deref().unwrap_or("")
            ));
        }
        Fingerprint {
            revision: PACKER_REVISION,
            params: config.params.clone(),
            shard_size: config.shard_size,
            max_windows: config.max_windows,
            min_frames: config.min_frames,
            silence_for_missing_audio: config.silence_for_missing_audio,
            inputs: xxh3_64(listing.as_bytes()),
            input_count: inputs.len(),
            part: config.part,
        }
    }

    /// Names the first setting that differs, for the refusal message ("a different shard
    /// size", "different packing parameters (mels: 40 then, 64 now)").
    pub fn difference(&self, other: &Fingerprint) -> Option<String> {
        if self.revision != other.revision {
            return Some(format!(
                "a different gdt version (packer revision {} then, {} now)",
                self.revision, other.revision
            ));
        }
        if self.params != other.params {
            return Some(format!(
                "different packing parameters ({})",
                params_difference(&self.params, &other.params)
            ));
        }
        if self.shard_size != other.shard_size {
            return Some("a different shard size".into());
        }
        if self.max_windows != other.max_windows {
            return Some("a different windows per video".into());
        }
        if self.min_frames != other.min_frames {
            return Some("a different minimum frames".into());
        }
        if self.silence_for_missing_audio != other.silence_for_missing_audio {
            return Some("a different --no-audio policy".into());
        }
        if self.inputs != other.inputs || self.input_count != other.input_count {
            return Some("a different input list".into());
        }
        if self.part != other.part {
            let name = |p: &Option<Part>| p.map_or("the whole list".to_string(), |p| format!("part {p}"));
            return Some(format!(
                "a different part ({} then, {} now)",
                name(&self.part),
                name(&other.part)
            ));
        }
        None
    }
}

/// Each parameter that differs, with its values then and now, as `dataset.json` writes
/// them: the user needs them to resume with the original settings.
fn params_difference(then: &PackParams, now: &PackParams) -> String {
    let as_map = |p: &PackParams| match serde_json::to_value(p) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (then, now) = (as_map(then), as_map(now));
    let keys: std::collections::BTreeSet<&String> = then.keys().chain(now.keys()).collect();
    let show = |v: Option<&serde_json::Value>| v.map_or("absent".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| then.get(*k) != now.get(*k))
        .map(|k| format!("{k}: {} then, {} now", show(then.get(k)), show(now.get(k))))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PackState {
    /// Reads the state in `dir` (a directory or an object-store prefix), if there is one.
    pub fn load(dir: &Path) -> Result<Option<PackState>, PackError> {
        let path = dir.join(STATE_FILE);
        let bytes = match Location::of(dir)? {
            Location::Object(objects) => objects.probe(STATE_FILE)?.map(|b| b.to_vec()),
            Location::Local(_) => match std::fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(FileError { path, source }.into()),
            },
        };
        bytes
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| PackError::State {
                    path,
                    what: e.to_string(),
                })
            })
            .transpose()
    }

    /// Writes the state into `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), PackError> {
        let path = dir.join(STATE_FILE);
        gdt_formats::atomic_file::write_atomic(&path, &self.to_json()).map_err(FileError::at(&path))?;
        Ok(())
    }

    /// The state as the file holds it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("state serialises")
    }
}
