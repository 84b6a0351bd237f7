//! Page-locked host memory for the loader's batch buffers ([`HostMemory`]): a GPU copies
//! from it on its own stream, without a staging copy and without blocking the host. The
//! blocks are libtorch's (its caching host allocator, which keeps freed blocks for reuse),
//! held here as tensors until the loader gives them back.

use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Mutex;

use gdt_pipeline::load::host::{HostMemory, ALIGN};
use tch::Tensor;

use super::ffi;

/// Page-locked memory from libtorch's host allocator (CUDA only: with no GPU there is none).
#[derive(Default)]
pub struct PinnedHost {
    /// The tensors behind the blocks handed out, by address.
    blocks: Mutex<HashMap<usize, Tensor>>,
}

impl PinnedHost {
    /// Blocks handed out and not given back.
    pub fn live(&self) -> usize {
        self.blocks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl HostMemory for PinnedHost {
    fn allocate(&self, bytes: usize) -> Option<NonNull<u8>> {
        // SAFETY: a plain size and an error buffer the helper owns.
        let raw = ffi::call(
            "page-locked memory",
            |p: &*mut c_void| p.is_null(),
            |e, l| unsafe { ffi::gdt_pinned_empty(bytes.max(1) as i64, e, l) },
        )
        .ok()?;
        // SAFETY: a new at::Tensor* that tch now owns.
        let t = unsafe { Tensor::from_ptr(raw as *mut _) };
        let ptr = NonNull::new(t.data_ptr() as *mut u8)?;
        if !(ptr.as_ptr() as usize).is_multiple_of(ALIGN) {
            return None; // libtorch's blocks are page-aligned; anything else is refused
        }
        self.blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ptr.as_ptr() as usize, t);
        Some(ptr)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, _bytes: usize) {
        let t = self
            .blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(ptr.as_ptr() as usize));
        drop(t);
    }

    fn name(&self) -> &str {
        "page-locked"
    }
}
