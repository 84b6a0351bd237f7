//! Data parallelism on torch.distributed's own engine, c10d, without Python: the process
//! group, its rendezvous store and its collectives are libtorch's (`c10d.cpp` is a thin C
//! interface over them); `launch` reads where this process stands from the variables
//! torchrun and Slurm set.
//!
//! Gloo (CPU tensors) is what runs here and in CI; NCCL for CUDA tensors comes next. The
//! training loop's use of it: `train::train_data_parallel`, docs/DISTRIBUTED.md.

pub mod launch;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use tch::Tensor;

pub use launch::Launch;

/// What went wrong in a collective or in the rendezvous, with c10d's own message.
#[derive(Debug, thiserror::Error)]
#[error("rank {rank} of {world}: {what}: {message}")]
pub struct DistError {
    /// This process's rank.
    pub rank: usize,
    /// Ranks in all.
    pub world: usize,
    /// What gdt was doing.
    pub what: &'static str,
    /// c10d's message (it names the peer or the address when it knows them).
    pub message: String,
}

mod ffi {
    use std::ffi::{c_char, c_int, c_longlong, c_void};
    extern "C" {
        pub fn gdt_c10d_gloo_new(
            addr: *const c_char,
            port: c_int,
            rank: c_int,
            world: c_int,
            iface_host: *const c_char,
            timeout_ms: c_longlong,
            err: *mut c_char,
            len: usize,
        ) -> *mut c_void;
        pub fn gdt_c10d_free(group: *mut c_void);
        pub fn gdt_c10d_all_reduce_sum(
            group: *mut c_void,
            t: *mut c_void,
            err: *mut c_char,
            len: usize,
        ) -> c_int;
        pub fn gdt_c10d_all_gather(
            group: *mut c_void,
            input: *mut c_void,
            out: *mut c_void,
            err: *mut c_char,
            len: usize,
        ) -> c_int;
        pub fn gdt_c10d_barrier(group: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    }
}

/// A c10d process group: every rank of a run holds one, and collectives on it block until
/// every rank has joined them (or the timeout passes, which is then an error naming it).
pub struct ProcessGroup {
    raw: NonNull<c_void>,
    rank: usize,
    world: usize,
}

// SAFETY: c10d process groups are used from one thread at a time here (`&mut self` for
// collectives that write); c10d itself is thread-safe for this use.
unsafe impl Send for ProcessGroup {}

const ERR_LEN: usize = 1024;

impl ProcessGroup {
    /// Joins the Gloo group of `launch` (rank 0 serves the rendezvous store at
    /// `master_addr:master_port`). A rank that cannot reach the store, or a store that does
    /// not see every rank, fails after `timeout` with c10d's reason.
    pub fn gloo(launch: &Launch, timeout: Duration) -> Result<ProcessGroup, DistError> {
        let fail = |message: String| DistError {
            rank: launch.rank,
            world: launch.world,
            what: "joining the process group",
            message,
        };
        let addr = CString::new(launch.master_addr.clone()).map_err(|e| fail(e.to_string()))?;
        // Gloo's own connections go over the address the others reach this machine at: the
        // master's for a run on one machine, this host's name otherwise.
        let iface = CString::new(launch.local_address()).map_err(|e| fail(e.to_string()))?;
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the strings and the error buffer outlive the call; the function catches
        // every C++ exception and returns null with a message instead.
        let raw = unsafe {
            ffi::gdt_c10d_gloo_new(
                addr.as_ptr(),
                launch.master_port as i32,
                launch.rank as i32,
                launch.world as i32,
                iface.as_ptr(),
                timeout.as_millis() as i64,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(ProcessGroup {
                raw,
                rank: launch.rank,
                world: launch.world,
            }),
            None => Err(fail(message(&err))),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in the group.
    pub fn world(&self) -> usize {
        self.world
    }

    fn check(&self, what: &'static str, rc: i32, err: &[c_char]) -> Result<(), DistError> {
        if rc == 0 {
            Ok(())
        } else {
            Err(DistError {
                rank: self.rank,
                world: self.world,
                what,
                message: message(err),
            })
        }
    }

    /// Sums `t` over the ranks, in place.
    pub fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), DistError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: `t` is a live tensor (tch's C_tensor is an at::Tensor*); the group is live.
        let rc = unsafe {
            ffi::gdt_c10d_all_reduce_sum(
                self.raw.as_ptr(),
                t.as_mut_ptr() as *mut c_void,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        self.check("all-reduce", rc, &err)
    }

    /// Every rank's `t`, stacked in rank order: `[world, ...t's shape]`.
    pub fn all_gather(&mut self, t: &Tensor) -> Result<Tensor, DistError> {
        let mut input = t.contiguous();
        let shape: Vec<i64> = std::iter::once(self.world as i64).chain(t.size()).collect();
        let mut out = Tensor::empty(shape.as_slice(), (t.kind(), t.device()));
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: both tensors are live and contiguous; the group is live.
        let rc = unsafe {
            ffi::gdt_c10d_all_gather(
                self.raw.as_ptr(),
                input.as_mut_ptr() as *mut c_void,
                out.as_mut_ptr() as *mut c_void,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        self.check("all-gather", rc, &err)?;
        Ok(out)
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the group is live; the error buffer outlives the call.
        let rc = unsafe { ffi::gdt_c10d_barrier(self.raw.as_ptr(), err.as_mut_ptr(), ERR_LEN) };
        self.check("barrier", rc, &err)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by gdt_c10d_gloo_new and freed once.
        unsafe { ffi::gdt_c10d_free(self.raw.as_ptr()) }
    }
}

fn message(err: &[c_char]) -> String {
    // SAFETY: the shim always NUL-terminates within the buffer; a zeroed buffer is empty.
    let text = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    // c10d's messages carry a C++ stack trace after the first lines; keep the reason.
    text.lines()
        .take_while(|l| !l.starts_with("Exception raised from"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}
