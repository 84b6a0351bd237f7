//! Gradient averaging that overlaps the backward pass: DDP's own `c10d::Reducer`, not a
//! re-implementation. It hooks each parameter's gradient accumulator; as soon as a bucket of
//! about `bucket_mb` of gradients is complete (the last layers' first, in a first bucket of
//! 1 MiB), its all-reduce starts while autograd computes the earlier layers' gradients, and
//! at the end of `backward()` the averages are in the parameters' gradients.
//!
//! Chosen over buckets by hand because tch cannot register autograd hooks from Rust, and
//! because the Reducer is what PyTorch users' DDP runs: the same bucketing, the same re-order
//! of buckets after the first step to the order gradients arrived in, and the same errors.

use std::ffi::{c_char, c_void, CString};
use std::ptr::NonNull;

use tch::Tensor;

use super::{ffi, message, DistError, ProcessGroup, ERR_LEN};

/// DDP's bucketed, overlapped gradient all-reduce over one model's parameters.
pub struct Reducer {
    raw: NonNull<c_void>,
    group: ProcessGroup,
}

impl Reducer {
    /// Hooks `params` (name, tensor: the trainable variables, the same on every rank in the
    /// same order); gradients are averaged over `group` in buckets of about `bucket_mb`.
    pub fn new(
        group: &ProcessGroup,
        params: &[(String, Tensor)],
        bucket_mb: f64,
    ) -> Result<Reducer, DistError> {
        let names: Vec<CString> = params
            .iter()
            .map(|(n, _)| CString::new(n.as_str()).expect("variable names have no NUL"))
            .collect();
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let tensors: Vec<*mut c_void> = params.iter().map(|(_, t)| t.as_ptr() as *mut c_void).collect();
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the arrays hold `params.len()` live pointers and outlive the call; the
        // Reducer keeps its own references to the tensors.
        let raw = unsafe {
            ffi::gdt_c10d_reducer_new(
                group.ptr(),
                tensors.as_ptr(),
                name_ptrs.as_ptr(),
                params.len(),
                (bucket_mb * 1024.0 * 1024.0) as i64,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(Reducer {
                raw,
                group: group.clone(),
            }),
            None => Err(group.error("setting up the gradient reducer", message(&err))),
        }
    }

    /// Call before each step's forward pass: after the first step, buckets are rebuilt once
    /// in the order its gradients arrived (a broadcast from rank 0, so every rank agrees).
    pub fn before_forward(&mut self) -> Result<(), DistError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the reducer is live; the error buffer outlives the call.
        let rc = unsafe { ffi::gdt_c10d_reducer_rebuild(self.raw.as_ptr(), err.as_mut_ptr(), ERR_LEN) };
        self.group.check("rebuilding gradient buckets", rc, &err)
    }

    /// Call before each step's backward pass: arms the hooks, so that this backward pass
    /// averages the gradients. Every parameter must receive a gradient in it.
    pub fn before_backward(&mut self) -> Result<(), DistError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: as above.
        let rc = unsafe { ffi::gdt_c10d_reducer_prepare(self.raw.as_ptr(), err.as_mut_ptr(), ERR_LEN) };
        self.group.check("preparing the gradient all-reduce", rc, &err)
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        // SAFETY: created by gdt_c10d_reducer_new and freed once.
        unsafe { ffi::gdt_c10d_reducer_free(self.raw.as_ptr()) }
    }
}
