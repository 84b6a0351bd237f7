//! Data parallelism on torch.distributed's own engine, c10d, without Python: the process
//! group, its rendezvous store and its collectives are libtorch's (`c10d.cpp` is a thin C
//! interface over them); `launch` reads where this process stands from the variables
//! torchrun and Slurm set.
//!
//! Gloo (CPU tensors) is what runs here and in CI; NCCL (CUDA tensors) is compiled in with
//! the `nccl` feature (`make gpu-build`). What the training loop uses: [`DataParallel`]
//! (`parallel`: a step's gradient averaging, through DDP's bucketed [`Reducer`], the global
//! negatives of `negatives`, the loss's mean), and [`sync_batch_norm`];
//! `train::train_data_parallel`, docs/DISTRIBUTED.md.

pub mod launch;
mod negatives;
mod parallel;
mod reducer;
mod sync_batch_norm;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tch::Tensor;

pub use launch::Launch;
pub use negatives::other_ranks_negatives;
pub use parallel::DataParallel;
pub use reducer::Reducer;
pub use sync_batch_norm::sync_batch_norm;

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
        #[allow(clippy::too_many_arguments)]
        pub fn gdt_c10d_new(
            addr: *const c_char,
            port: c_int,
            rank: c_int,
            world: c_int,
            iface_host: *const c_char,
            timeout_ms: c_longlong,
            cuda_backend: c_int,
            cuda_device: c_int,
            err: *mut c_char,
            len: usize,
        ) -> *mut c_void;
        pub fn gdt_c10d_has_nccl() -> c_int;
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
            grad: c_int,
            out: *mut *mut c_void,
            err: *mut c_char,
            len: usize,
        ) -> c_int;
        pub fn gdt_c10d_barrier(group: *mut c_void, err: *mut c_char, len: usize) -> c_int;
        pub fn gdt_c10d_reducer_new(
            group: *mut c_void,
            params: *const *mut c_void,
            names: *const *const c_char,
            n: usize,
            bucket_bytes: c_longlong,
            err: *mut c_char,
            len: usize,
        ) -> *mut c_void;
        pub fn gdt_c10d_reducer_rebuild(reducer: *mut c_void, err: *mut c_char, len: usize) -> c_int;
        pub fn gdt_c10d_reducer_prepare(reducer: *mut c_void, err: *mut c_char, len: usize) -> c_int;
        pub fn gdt_c10d_reducer_free(reducer: *mut c_void);
    }
}

/// Which c10d backend carries CUDA tensors (CPU tensors always go over Gloo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaBackend {
    /// A CPU-only run: no CUDA backend.
    None,
    /// Gloo on CUDA tensors (slower; what runs two ranks on one GPU).
    Gloo,
    /// NCCL, one GPU per rank: what multi-GPU training uses.
    Nccl,
}

impl CudaBackend {
    /// What a rank on `device` needs: nothing on CPU; on CUDA, NCCL unless `gloo` is asked for.
    pub fn for_device(device: tch::Device, gloo: bool) -> CudaBackend {
        match (device.is_cuda(), gloo) {
            (false, _) => CudaBackend::None,
            (true, true) => CudaBackend::Gloo,
            (true, false) => CudaBackend::Nccl,
        }
    }
}

/// Whether this build can create NCCL groups (the `nccl` feature, `make gpu-build`).
pub fn has_nccl() -> bool {
    // SAFETY: a constant query.
    unsafe { ffi::gdt_c10d_has_nccl() != 0 }
}

/// A c10d process group: every rank of a run holds one, and collectives on it block until
/// every rank has joined them (or the timeout passes, which is then an error naming it).
/// Clones share the group (the model's sync-BN layers and the training loop use the same).
#[derive(Clone)]
pub struct ProcessGroup {
    raw: Arc<RawGroup>,
    rank: usize,
    world: usize,
    local_rank: usize,
    cuda: CudaBackend,
}

struct RawGroup {
    ptr: NonNull<c_void>,
    /// The first collective that failed where no error could be returned (a forward pass).
    failure: Mutex<Option<DistError>>,
}

// SAFETY: c10d's ProcessGroup is thread-safe; the handle is only freed on the last drop.
unsafe impl Send for RawGroup {}
unsafe impl Sync for RawGroup {}

impl Drop for RawGroup {
    fn drop(&mut self) {
        // SAFETY: created by gdt_c10d_new and freed once, when the last clone goes.
        unsafe { ffi::gdt_c10d_free(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup(rank {} of {})", self.rank, self.world)
    }
}

const ERR_LEN: usize = 1024;

impl ProcessGroup {
    /// Joins the CPU-only (Gloo) group of `launch`; see [`ProcessGroup::join`].
    pub fn gloo(launch: &Launch, timeout: Duration) -> Result<ProcessGroup, DistError> {
        ProcessGroup::join(launch, timeout, CudaBackend::None)
    }

    /// Joins the group of `launch` (rank 0 serves the rendezvous store at
    /// `master_addr:master_port`), with `cuda` carrying CUDA tensors on GPU
    /// `cuda:LOCAL_RANK`. A rank that cannot reach the store, or a store that does not see
    /// every rank, fails after `timeout` with c10d's reason.
    pub fn join(launch: &Launch, timeout: Duration, cuda: CudaBackend) -> Result<ProcessGroup, DistError> {
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
        let backend = match cuda {
            CudaBackend::None => 0,
            CudaBackend::Gloo => 1,
            CudaBackend::Nccl => 2,
        };
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the strings and the error buffer outlive the call; the function catches
        // every C++ exception and returns null with a message instead.
        let raw = unsafe {
            ffi::gdt_c10d_new(
                addr.as_ptr(),
                launch.master_port as i32,
                launch.rank as i32,
                launch.world as i32,
                iface.as_ptr(),
                timeout.as_millis() as i64,
                backend,
                launch.local_rank as i32,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(ProcessGroup {
                raw: Arc::new(RawGroup {
                    ptr: raw,
                    failure: Mutex::new(None),
                }),
                rank: launch.rank,
                world: launch.world,
                local_rank: launch.local_rank,
                cuda,
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

    /// This process's rank on its machine: the GPU it uses.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Whether collectives on CUDA tensors have a backend in this group.
    pub fn carries_cuda(&self) -> bool {
        self.cuda != CudaBackend::None
    }

    fn ptr(&self) -> *mut c_void {
        self.raw.ptr.as_ptr()
    }

    /// Keeps the first failure of a collective that could not return it (inside a forward
    /// pass); later ones are its consequences.
    pub fn record_failure(&self, e: DistError) {
        let mut slot = self.raw.failure.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    /// Whether a collective has failed inside a forward pass (the next ones are skipped).
    pub fn has_failed(&self) -> bool {
        self.raw
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The failure recorded inside a forward pass, if any; check after each forward pass.
    pub fn take_failure(&self) -> Option<DistError> {
        self.raw.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn check(&self, what: &'static str, rc: i32, err: &[c_char]) -> Result<(), DistError> {
        if rc == 0 {
            Ok(())
        } else {
            Err(self.error(what, message(err)))
        }
    }

    /// An error of this rank.
    pub fn error(&self, what: &'static str, message: String) -> DistError {
        DistError {
            rank: self.rank,
            world: self.world,
            what,
            message,
        }
    }

    /// Sums `t` over the ranks, in place (outside autograd).
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<(), DistError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: `t` is a live tensor (tch's C_tensor is an at::Tensor*); the group is live.
        let rc = unsafe {
            ffi::gdt_c10d_all_reduce_sum(
                self.ptr(),
                t.as_mut_ptr() as *mut c_void,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        self.check("all-reduce", rc, &err)
    }

    /// Every rank's `t`, stacked in rank order: `[world, ...t's shape]`, detached.
    pub fn all_gather(&self, t: &Tensor) -> Result<Tensor, DistError> {
        self.gather(t, false)
    }

    /// [`all_gather`](Self::all_gather) with gradients: the backward pass sums every rank's
    /// gradient of its copy of this rank's rows into this rank's (an all-reduce), so a loss
    /// over the gathered rows trains every rank's share, as one process's loss would.
    pub fn all_gather_with_grad(&self, t: &Tensor) -> Result<Tensor, DistError> {
        self.gather(t, true)
    }

    fn gather(&self, t: &Tensor, grad: bool) -> Result<Tensor, DistError> {
        let mut input = t.shallow_clone();
        let mut out: *mut c_void = std::ptr::null_mut();
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the input is live; on success the shim stores a new at::Tensor* in `out`,
        // which tch then owns (and frees on drop).
        let rc = unsafe {
            ffi::gdt_c10d_all_gather(
                self.ptr(),
                input.as_mut_ptr() as *mut c_void,
                grad as i32,
                &mut out,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        self.check("all-gather", rc, &err)?;
        // SAFETY: see above; `out` is non-null on success.
        Ok(unsafe { Tensor::from_ptr(out as *mut _) })
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&self) -> Result<(), DistError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the group is live; the error buffer outlives the call.
        let rc = unsafe { ffi::gdt_c10d_barrier(self.ptr(), err.as_mut_ptr(), ERR_LEN) };
        self.check("barrier", rc, &err)
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
