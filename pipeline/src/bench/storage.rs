//! The storage side of a measurement: dropping a dataset's pages from the page cache before
//! a cold run, and how many bytes this process has read from storage (Linux's
//! `/proc/self/io`), so a report can say what a clip costs the disk.

use std::path::{Path, PathBuf};

use gdt_formats::FileError;

/// Drops `files`' pages from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`), which
/// needs no privileges: the next read of them goes to storage. Pages another process maps
/// stay, as the kernel keeps pages in use.
pub fn drop_cached(files: &[PathBuf]) -> Result<(), FileError> {
    for path in files {
        drop_file(path)?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn drop_file(path: &Path) -> Result<(), FileError> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).map_err(FileError::at(path))?;
    // SAFETY: a valid open descriptor; the call only advises the kernel.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(FileError::at(path)(std::io::Error::from_raw_os_error(rc)));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn drop_file(path: &Path) -> Result<(), FileError> {
    Err(FileError::at(path)(std::io::Error::other(
        "dropping cached pages needs Linux (posix_fadvise)",
    )))
}

/// Bytes this process has caused to be read from storage so far (page-cache misses,
/// memory-mapped reads included), or `None` where the kernel does not say.
pub fn storage_read_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_pages_of_a_file_works_without_privileges_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
        drop_cached(std::slice::from_ref(&file)).unwrap();
        assert_eq!(std::fs::read(&file).unwrap().len(), 1 << 20);
        let missing = dir.path().join("missing");
        let e = drop_cached(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        if cfg!(target_os = "linux") {
            assert!(storage_read_bytes().is_some());
        }
    }
}
