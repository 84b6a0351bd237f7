//! The async runtime object stores run on. gdt's readers and writers are plain threads (loader
//! workers, the packer's writer, Python's); they block on a request here, and read-ahead
//! requests run on here concurrently while they work.

use std::future::Future;
use std::sync::OnceLock;

/// The process's object-store runtime: two threads, which is plenty for I/O-bound requests.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gdt-storage")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Runs `f` to completion from a plain thread.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}
