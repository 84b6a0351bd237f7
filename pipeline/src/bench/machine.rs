//! What the machine a measurement ran on is, so figures from different machines can be
//! compared honestly: the CPU, cores, memory, kernel, the dataset's file system and device,
//! and the gdt build. Read from Linux's `/proc`; a field the system does not tell is `None`.

use std::path::Path;

use serde::Serialize;

/// The machine and build a measurement ran on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: Option<String>,
    /// Logical cores this process may use.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: Option<f64>,
    /// The kernel release.
    pub kernel: Option<String>,
    /// The dataset's file system type (`ext4`, `nfs4`, `tmpfs`, ...).
    pub dataset_filesystem: Option<String>,
    /// The device or source that file system is mounted from.
    pub dataset_device: Option<String>,
    /// gdt's version.
    pub gdt_version: String,
    /// The build's features (`ffmpeg`, ...), as the caller names them.
    pub build_features: Vec<String>,
}

impl Machine {
    /// This machine, with the dataset at `dataset`.
    pub fn describe(dataset: &Path, build_features: Vec<String>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mount = if gdt_formats::storage::Location::is_url(dataset) {
            Some((object_store_endpoint(dataset), "object store".to_string()))
        } else {
            mount_of(dataset)
        };
        Machine {
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kib| kib / (1024.0 * 1024.0)),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            dataset_filesystem: mount.as_ref().map(|m| m.1.clone()),
            dataset_device: mount.map(|m| m.0),
            gdt_version: env!("CARGO_PKG_VERSION").to_string(),
            build_features,
        }
    }

    /// One line for a report's head.
    pub fn line(&self) -> String {
        format!(
            "{}, {} cores, {} GiB, Linux {}; dataset on {} ({}); gdt {} [{}]",
            self.cpu.as_deref().unwrap_or("unknown CPU"),
            self.cores,
            self.memory_gib.map_or("?".to_string(), |g| format!("{g:.0}")),
            self.kernel.as_deref().unwrap_or("?"),
            self.dataset_filesystem.as_deref().unwrap_or("?"),
            self.dataset_device.as_deref().unwrap_or("?"),
            self.gdt_version,
            self.build_features.join(", ")
        )
    }
}

/// The peak resident memory of this process so far (`VmHWM`), bytes.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Where an object-store dataset is served from: the endpoint the environment names, or
/// the store's own.
fn object_store_endpoint(dataset: &Path) -> String {
    let url = dataset.display().to_string();
    match gdt_formats::storage::object::s3_endpoints().next() {
        Some(endpoint) if url.starts_with("s3") => format!("{url} at {endpoint}"),
        _ => url,
    }
}

/// (device, file system type) of the mount holding `path`: the longest mount point that
/// is a prefix of its canonical path, from `/proc/self/mounts`.
fn mount_of(path: &Path) -> Option<(String, String)> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (device, point, fs) = (f.next()?, f.next()?, f.next()?);
            // /proc/self/mounts escapes spaces and the like as octal.
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (point.len(), device.to_string(), fs.to_string()))
        })
        .max_by_key(|m| m.0)
        .map(|(_, device, fs)| (device, fs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_names_its_parts_on_linux() {
        let m = Machine::describe(Path::new("."), vec!["ffmpeg".into()]);
        assert!(m.cores >= 1);
        if cfg!(target_os = "linux") {
            assert!(m.kernel.is_some() && m.memory_gib.unwrap() > 0.0, "{m:?}");
            assert!(m.dataset_filesystem.is_some(), "{m:?}");
        }
        assert!(m.line().contains("[ffmpeg]"), "{}", m.line());
        if cfg!(target_os = "linux") {
            assert!(peak_resident_bytes().unwrap() > 1 << 20);
        }
        let remote = Machine::describe(Path::new("gs://bucket/k400"), Vec::new());
        assert_eq!(remote.dataset_filesystem.as_deref(), Some("object store"));
        assert_eq!(remote.dataset_device.as_deref(), Some("gs://bucket/k400"));
    }
}
