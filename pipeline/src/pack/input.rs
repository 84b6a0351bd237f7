//! What to pack: a folder of videos or a CSV manifest, turned into a list of inputs.

use std::path::{Path, PathBuf};

use gdt_formats::FileError;

use super::PackError;

/// File extensions taken from a folder (case-insensitive).
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "flv", "wmv", "3gp", "ogv",
];

/// One input video.
#[derive(Clone, Debug, PartialEq)]
pub struct PackInput {
    /// Where the file is.
    pub path: PathBuf,
    /// The input as the user named it (manifest path, or path relative to the folder).
    pub source: String,
    /// Its class name (the manifest's column, or its class folder).
    pub label: Option<String>,
    /// Its split, from the manifest.
    pub split: Option<String>,
}

/// The folder `list_inputs(input)` names its sources relative to, made absolute: the
/// directory itself, or the CSV manifest's directory. None if it cannot be resolved.
pub fn source_root(input: &Path) -> Option<PathBuf> {
    let dir = if input.is_dir() { input } else { input.parent()? };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir).ok()
}

/// Lists the inputs: a directory is walked recursively (video extensions only, sorted by
/// path, label = the first directory under the root, as in UCF-101's class folders); a file
/// is read as a CSV manifest `path[,label[,split]]` with an optional `path,...` header and
/// paths relative to the manifest's directory, kept in manifest order.
pub fn list_inputs(input: &Path) -> Result<Vec<PackInput>, PackError> {
    let meta = std::fs::metadata(input).map_err(FileError::at(input))?;
    if meta.is_dir() {
        let mut found = Vec::new();
        walk(input, input, &mut found)?;
        found.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(found)
    } else {
        read_manifest(input)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PackInput>) -> Result<(), PackError> {
    let entries = std::fs::read_dir(dir).map_err(FileError::at(dir))?;
    for entry in entries {
        let entry = entry.map_err(FileError::at(dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(FileError::at(&path))?;
        if file_type.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        let is_video = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !is_video {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let label = (rel.components().count() > 1)
            .then(|| {
                rel.components()
                    .next()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
            })
            .flatten();
        out.push(PackInput {
            source: rel.to_string_lossy().into_owned(),
            path,
            label,
            split: None,
        });
    }
    Ok(())
}

fn read_manifest(manifest: &Path) -> Result<Vec<PackInput>, PackError> {
    let text = std::fs::read_to_string(manifest).map_err(FileError::at(manifest))?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut inputs = Vec::new();
    for (n, row) in reader.records().enumerate() {
        let line = n + 1;
        let bad = |what: String| PackError::Manifest {
            path: manifest.to_path_buf(),
            line,
            what,
        };
        let row = row.map_err(|e| bad(e.to_string()))?;
        let line = row.position().map_or(line, |p| p.line() as usize);
        let bad = |what: String| PackError::Manifest {
            path: manifest.to_path_buf(),
            line,
            what,
        };
        if row.iter().all(str::is_empty) {
            continue;
        }
        if n == 0 && row.get(0).is_some_and(|f| f.eq_ignore_ascii_case("path")) {
            continue;
        }
        if row.len() > 3 {
            return Err(bad(format!(
                "{} fields; expected path[,label[,split]]",
                row.len()
            )));
        }
        let path_field = row.get(0).unwrap_or_default();
        if path_field.is_empty() {
            return Err(bad("empty path".into()));
        }
        let nonempty = |i: usize| row.get(i).filter(|s| !s.is_empty()).map(str::to_string);
        let split = nonempty(2);
        if let Some(s) = &split {
            if s != "train" && s != "test" && s != "val" {
                return Err(bad(format!("split {s:?} is not train, val or test")));
            }
        }
        let path = Path::new(path_field);
        inputs.push(PackInput {
            path: if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            },
            source: path_field.to_string(),
            label: nonempty(1),
            split,
        });
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_with_header_comments_and_optional_fields() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m.csv");
        std::fs::write(
            &m,
            "path,label,split\n# a comment\na.mp4,cat,train\n\nsub/b.mkv,dog\n/abs/c.avi\n",
        )
        .unwrap();
        let inputs = list_inputs(&m).unwrap();
        assert_eq!(inputs.len(), 3);
        assert_eq!(inputs[0].path, dir.path().join("a.mp4"));
        assert_eq!(
            (inputs[0].label.as_deref(), inputs[0].split.as_deref()),
            (Some("cat"), Some("train"))
        );
        assert_eq!(
            (inputs[1].label.as_deref(), inputs[1].split.as_deref()),
            (Some("dog"), None)
        );
        assert_eq!(inputs[2].path, PathBuf::from("/abs/c.avi"));
    }

    #[test]
    fn manifest_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m.csv");
        std::fs::write(&m, "a.mp4,cat,train\nb.mp4,dog,holdout\n").unwrap();
        let err = list_inputs(&m).unwrap_err().to_string();
        assert!(
            err.contains("m.csv") && err.contains("line 2") && err.contains("holdout"),
            "{err}"
        );
        std::fs::write(&m, "a.mp4,cat,train,extra\n").unwrap();
        assert!(list_inputs(&m).unwrap_err().to_string().contains("4 fields"));
    }

    #[test]
    fn folders_are_walked_sorted_with_class_folder_labels() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b/x.MP4", "a/y.avi", "top.mkv", "a/notes.txt"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let inputs = list_inputs(dir.path()).unwrap();
        let got: Vec<(&str, Option<&str>)> = inputs
            .iter()
            .map(|i| (i.source.as_str(), i.label.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![("a/y.avi", Some("a")), ("b/x.MP4", Some("b")), ("top.mkv", None)]
        );
    }
}
