//! `gdt synth` without `--packed`: the planned corpus encoded into container files on all
//! cores, with `manifest.csv` (what `gdt pack` reads) and `synth.json` (every video's
//! parameters and impact count, for tests and people).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use gdt_formats::FileError;
use serde::Serialize;

use super::encode::write_video;
use super::{manifest_csv, plan, CorpusConfig, PlannedVideo, Scene, SynthError};

/// The manifest `gdt pack` reads.
pub const MANIFEST_FILE: &str = "manifest.csv";
/// The corpus's description.
pub const DESCRIPTION_FILE: &str = "synth.json";

/// What one encoded video came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Written {
    /// The file's size.
    pub bytes: u64,
    /// Impacts (flash and sound onset on the same frame) in it.
    pub impacts: usize,
}

/// One video of `synth.json` (fields in alphabetical order, as the file has always had them).
#[derive(Serialize)]
struct Described<'a> {
    bytes: u64,
    container: &'a super::Container,
    file: &'a str,
    impacts: usize,
    label: &'a str,
    #[serde(rename = "spec")]
    scenario: &'a super::Scenario,
    split: &'a super::Split,
}

/// `synth.json`: the generator, its configuration and every video.
#[derive(Serialize)]
struct Description<'a> {
    config: &'a CorpusConfig,
    generator: &'a str,
    videos: Vec<Described<'a>>,
}

/// Plans the corpus for `config` and encodes it into `out` with `jobs` threads; `done` is
/// called after each video. `out` must be empty, or hold an earlier corpus and `force`.
/// Writes the manifest and description only when every video was written.
pub fn write_corpus(
    out: &Path,
    config: &CorpusConfig,
    jobs: usize,
    force: bool,
    done: &(dyn Fn() + Sync),
) -> Result<Vec<(PlannedVideo, Written)>, SynthError> {
    prepare_dir(out, force)?;
    let videos = plan(config);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Written, String>>>> = Mutex::new(vec![None; videos.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(videos.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(v) = videos.get(i) else { break };
                let path = out.join(&v.file_name);
                let scene = Scene::new(&v.scenario);
                let outcome = write_video(&path, v.container, &scene)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        std::fs::metadata(&path)
                            .map(|m| Written {
                                bytes: m.len(),
                                impacts: scene.impacts().len(),
                            })
                            .map_err(|e| format!("{}: {e}", path.display()))
                    });
                results.lock().expect("no panics while holding the lock")[i] = Some(outcome);
                done();
            });
        }
    });
    let results = results.into_inner().expect("no panics while holding the lock");
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().and_then(|r| r.as_ref().err()).cloned())
        .collect();
    if !failures.is_empty() {
        return Err(SynthError::Failed {
            total: videos.len(),
            failures,
        });
    }
    let manifest = out.join(MANIFEST_FILE);
    gdt_formats::atomic_file::write_atomic(&manifest, manifest_csv(&videos).as_bytes())
        .map_err(FileError::at(&manifest))?;
    let written: Vec<(PlannedVideo, Written)> = videos
        .into_iter()
        .zip(results)
        .map(|(v, r)| (v, r.expect("every video ran").expect("failures handled above")))
        .collect();
    let description = Description {
        generator: concat!("gdt synth ", env!("CARGO_PKG_VERSION")),
        config,
        videos: written
            .iter()
            .map(|(v, w)| Described {
                file: &v.file_name,
                label: &v.label_name,
                split: &v.split,
                container: &v.container,
                scenario: &v.scenario,
                impacts: w.impacts,
                bytes: w.bytes,
            })
            .collect(),
    };
    let json_path = out.join(DESCRIPTION_FILE);
    let json = serde_json::to_string_pretty(&description).expect("description serialises");
    gdt_formats::atomic_file::write_atomic(&json_path, json.as_bytes()).map_err(FileError::at(&json_path))?;
    Ok(written)
}

/// Whether `name` is a file `gdt synth` writes (or its temporary).
fn is_corpus_file(name: &str) -> bool {
    match name.strip_prefix('.') {
        Some(hidden) => {
            hidden.starts_with("synth-")
                || hidden.starts_with(MANIFEST_FILE)
                || hidden.starts_with(DESCRIPTION_FILE)
        }
        None => name.starts_with("synth-") || name == MANIFEST_FILE || name == DESCRIPTION_FILE,
    }
}

/// Creates OUT, or with `force` clears what an earlier `gdt synth` left there. Anything else
/// in a non-empty OUT makes us stop rather than mix two corpora.
fn prepare_dir(out: &Path, force: bool) -> Result<(), SynthError> {
    std::fs::create_dir_all(out).map_err(FileError::at(out))?;
    let entries: Vec<_> = std::fs::read_dir(out)
        .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        .map_err(FileError::at(out))?;
    if entries.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(SynthError::Refused {
            path: out.to_path_buf(),
            what: format!(
                "is not empty ({} entries); pass --force to replace an earlier synthetic corpus there",
                entries.len()
            ),
        });
    }
    for e in entries {
        if is_corpus_file(&e.file_name().to_string_lossy()) {
            std::fs::remove_file(e.path()).map_err(FileError::at(&e.path()))?;
        }
    }
    Ok(())
}
