//! What this process holds, read from `/proc/self` (Linux): the figures the memory test and
//! the soak benchmark watch over many epochs.

use std::fs;

/// One reading. Memory figures are in KiB, as the kernel reports them.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Anonymous resident memory: the heap and thread stacks. What a leak grows.
    pub rss_anon_kib: u64,
    /// File-backed resident memory: mostly mapped shard pages, which the kernel may drop at
    /// any time and which are shared with every other reader of the same files.
    pub rss_file_kib: u64,
    /// Peak resident set size of the process so far.
    pub peak_rss_kib: u64,
    pub open_files: usize,
    pub threads: usize,
}

impl Usage {
    pub fn now() -> Usage {
        let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
        };
        let count = |dir: &str| fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        Usage {
            rss_anon_kib: field("RssAnon:"),
            rss_file_kib: field("RssFile:"),
            peak_rss_kib: field("VmHWM:"),
            open_files: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
        }
    }
}
