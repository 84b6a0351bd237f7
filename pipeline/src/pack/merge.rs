//! `gdt merge`: the parts of a pack made on many machines (`gdt pack --part i/N`) become one
//! dataset, with its records in the order a one-machine pack of the same inputs has.
//!
//! Shards are immutable, so nothing is rewritten: each part's shards are hard-linked, in part
//! order, under one numbered sequence (the parts' own shard boundaries are kept, so they may
//! differ from a one-machine pack's), and one `dataset.json` and one `pack-report.jsonl` are
//! written from the parts' records of every input. That takes neither the time nor the space
//! of a copy, and needs the parts and the merged dataset on one file system. The result is
//! built under a temporary name beside it and renamed when complete: a refused or failed
//! merge leaves nothing behind.
//!
//! In an object store, which has no links, the merged dataset is the prefix the parts lie
//! below (`s3://bucket/k400` for `s3://bucket/k400/part-*`): its `dataset.json` names the
//! parts' shard objects (`part-0/shard-00000.gdt`), so nothing is copied either.

use std::path::{Path, PathBuf};

use gdt_formats::dataset::{
    shard_file_name, DatasetManifest, InputTally, ShardInfo, DATASET_FILE, REPORT_FILE, STATE_FILE,
};
use gdt_formats::storage::{Location, ObjectDir};
use gdt_formats::FileError;

use super::part::Part;
use super::report::{report, write_report};
use super::state::PackState;
use super::{Outcome, PackError};

/// What a merge made.
#[derive(Clone, Debug)]
pub struct MergeSummary {
    /// The merged dataset's description.
    pub manifest: DatasetManifest,
    /// Parts merged.
    pub parts: usize,
}

/// One part found on disk and checked.
struct Found {
    part: Part,
    dir: PathBuf,
    state: PackState,
    manifest: DatasetManifest,
}

fn refused(path: &Path, what: String) -> PackError {
    PackError::Refused {
        path: path.to_path_buf(),
        what,
    }
}

/// Reads a part's state and description, refusing what is not a complete part.
fn read_part(dir: &Path) -> Result<Found, PackError> {
    let state = PackState::load(dir)?
        .ok_or_else(|| refused(dir, "is not a part of a gdt pack (no .pack-state.json)".into()))?;
    let part = state.fingerprint.part.ok_or_else(|| {
        refused(
            dir,
            "was packed without --part: it is a whole dataset, not a part".into(),
        )
    })?;
    if !state.complete {
        return Err(refused(
            dir,
            format!(
                "part {part} is not complete (still being written, or interrupted): rerun its `gdt pack ... --part {part}` command, then merge"
            ),
        ));
    }
    let manifest = DatasetManifest::load(dir)?;
    Ok(Found {
        part,
        dir: dir.to_path_buf(),
        state,
        manifest,
    })
}

/// Checks that `parts` are every part of one pack, once each, with the same inputs and
/// settings, and returns them in part order.
fn check_parts(parts: &[PathBuf], out: &Path) -> Result<Vec<Found>, PackError> {
    if parts.is_empty() {
        return Err(refused(out, "no parts to merge were given".into()));
    }
    let mut found = parts
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>, _>>()?;
    found.sort_by_key(|f| f.part.index);
    let first = &found[0];
    let count = first.part.count;
    for f in &found[1..] {
        if f.part.count != count {
            return Err(refused(
                &f.dir,
                format!(
                    "is part {} but {} is part {} of {count}",
                    f.part,
                    first.dir.display(),
                    first.part
                ),
            ));
        }
        let (mut a, mut b) = (first.state.fingerprint.clone(), f.state.fingerprint.clone());
        (a.part, b.part) = (None, None);
        if let Some(what) = a.difference(&b) {
            return Err(refused(
                &f.dir,
                format!("was packed with {what} than {}", first.dir.display()),
            ));
        }
    }
    for w in found.windows(2) {
        if w[0].part.index == w[1].part.index {
            return Err(refused(
                &w[1].dir,
                format!("is part {} again (so is {})", w[1].part, w[0].dir.display()),
            ));
        }
    }
    if found.len() != count {
        let have: Vec<usize> = found.iter().map(|f| f.part.index).collect();
        let missing: Vec<String> = (0..count)
            .filter(|i| !have.contains(i))
            .map(|index| Part { index, count }.to_string())
            .collect();
        return Err(refused(
            out,
            format!(
                "parts missing: {} (pack them with --part i/{count})",
                missing.join(", ")
            ),
        ));
    }
    Ok(found)
}

/// Merges the complete parts in `parts` (any order) into the new dataset `out` (a
/// directory, or an object-store prefix the parts lie below; there a part may be given as a
/// pattern ending in `*`, `s3://bucket/k400/part-*`, as no shell expands it).
pub fn merge(parts: &[PathBuf], out: &Path) -> Result<MergeSummary, PackError> {
    if Location::is_url(out) {
        return merge_objects(parts, out);
    }
    let occupied = std::fs::read_dir(out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(out.exists());
    if occupied {
        return Err(refused(
            out,
            "already exists and is not empty; merge writes a new dataset and never overwrites one".into(),
        ));
    }
    let found = check_parts(parts, out)?;
    let name = out
        .file_name()
        .ok_or_else(|| refused(out, "names no directory".into()))?
        .to_string_lossy();
    let tmp = out.with_file_name(format!(".{name}.merging"));
    // A merge killed earlier left this; nothing in it is ours to keep.
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(FileError::at(&tmp))?;
    let result = link_and_describe(&found, &tmp, out).and_then(|manifest| {
        if out.exists() {
            std::fs::remove_dir(out).map_err(FileError::at(out))?;
        }
        std::fs::rename(&tmp, out).map_err(FileError::at(out))?;
        Ok(manifest)
    });
    match result {
        Ok(manifest) => Ok(MergeSummary {
            manifest,
            parts: found.len(),
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Links every part's shards into `tmp` as one sequence and writes the dataset's files.
fn link_and_describe(found: &[Found], tmp: &Path, out: &Path) -> Result<DatasetManifest, PackError> {
    let (manifest, outcomes) = describe(found, |f, s, number| {
        let from = f
            .manifest
            .shard_path(&f.dir, &s.file)
            .map_err(|what| refused(&f.dir, what))?;
        let file = shard_file_name(number);
        std::fs::hard_link(&from, tmp.join(&file)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::CrossesDevices {
                // A hard link cannot cross file systems, and a copy is what merge avoids.
                refused(
                    &f.dir,
                    format!(
                        "is on another file system than {}: merge hard-links shards instead of copying them; merge into a directory beside the parts",
                        out.display()
                    ),
                )
            } else {
                FileError::at(&from)(e).into()
            }
        })?;
        Ok(file)
    })?;
    manifest.save(tmp)?;
    write_report(tmp, &outcomes)?;
    Ok(manifest)
}

/// The merged description and report of `found`, in part order: `shard` gives the merged
/// dataset's name for a part's shard (and the shard's number in the merged sequence).
fn describe(
    found: &[Found],
    mut shard: impl FnMut(&Found, &ShardInfo, usize) -> Result<String, PackError>,
) -> Result<(DatasetManifest, Vec<Outcome>), PackError> {
    let mut shards: Vec<ShardInfo> = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for f in found {
        let offset = shards.len();
        for s in &f.manifest.shards {
            let file = shard(f, s, shards.len())?;
            shards.push(ShardInfo { file, ..s.clone() });
        }
        outcomes.extend(f.state.outcomes.iter().cloned().map(|mut o| {
            o.shard = o.shard.map(|k| k + offset);
            o
        }));
    }
    let first = &found[0].manifest;
    let tallies: Vec<InputTally> = outcomes.iter().map(Outcome::tally).collect();
    let manifest = DatasetManifest::describe(
        first.params.clone(),
        shards,
        first.labels.clone(),
        &tallies,
        &first.writer,
        first.source_root.clone(),
    );
    Ok((manifest, outcomes))
}

/// [`merge`] in an object store: the parts must lie below `out`; `dataset.json` names their
/// shard objects, each checked to be there with the size its part recorded (one listing).
fn merge_objects(parts: &[PathBuf], out: &Path) -> Result<MergeSummary, PackError> {
    let objects = ObjectDir::open(&out.display().to_string())?;
    let url = objects.url().to_string();
    if objects.probe(DATASET_FILE)?.is_some() {
        return Err(refused(
            out,
            "already holds a dataset; merge writes a new dataset and never overwrites one".into(),
        ));
    }
    let listing: std::collections::BTreeMap<String, u64> = objects.list()?.into_iter().collect();
    let mut below = Vec::new();
    for part in parts {
        let text = part.display().to_string();
        let rel = text
            .trim_end_matches('/')
            .strip_prefix(&format!("{url}/"))
            .ok_or_else(|| {
                refused(
                    part,
                    format!(
                        "is not below {url}: in an object store the merged dataset names its parts' objects (there are no links), so merge into the prefix the parts are in"
                    ),
                )
            })?;
        match rel.strip_suffix('*') {
            Some(pattern) => {
                let matched: std::collections::BTreeSet<&str> = listing
                    .keys()
                    .filter_map(|name| name.strip_suffix(&format!("/{STATE_FILE}")))
                    .filter(|dir| dir.starts_with(pattern) && !dir.contains('/'))
                    .collect();
                if matched.is_empty() {
                    return Err(refused(part, "matches no part (no pack state below it)".into()));
                }
                below.extend(matched.into_iter().map(str::to_string));
            }
            None => below.push(rel.to_string()),
        }
    }
    let dirs: Vec<PathBuf> = below
        .iter()
        .map(|rel| PathBuf::from(format!("{url}/{rel}")))
        .collect();
    let found = check_parts(&dirs, out)?;
    let (manifest, outcomes) = describe(&found, |f, s, _| {
        let rel = f.dir.display().to_string()[url.len() + 1..].to_string();
        let name = format!("{rel}/{}", s.file);
        match listing.get(&name) {
            Some(&bytes) if bytes == s.bytes => Ok(name),
            Some(&bytes) => Err(refused(
                &f.dir,
                format!(
                    "{name} holds {bytes} bytes; its part's dataset.json says {}",
                    s.bytes
                ),
            )),
            None => Err(refused(&f.dir, format!("{name} is missing from the store"))),
        }
    })?;
    // The description last: the dataset is visible only complete.
    objects.write(REPORT_FILE, report(&outcomes))?;
    objects.write(DATASET_FILE, manifest.to_json())?;
    Ok(MergeSummary {
        manifest,
        parts: found.len(),
    })
}
