//! Where a loader's batch buffers live. By default the heap; a trainer that copies batches to
//! a GPU gives page-locked memory instead (libtorch's, through [`HostMemory`]), so the copy
//! can run on its own stream straight from the buffer the workers wrote, with no staging copy
//! on the training thread. This crate never links libtorch: the memory comes from outside.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

/// Alignment of every buffer: a cache line, and enough for any SIMD load.
pub const ALIGN: usize = 64;

/// An allocator of batch buffers.
pub trait HostMemory: Send + Sync {
    /// A block of `bytes` bytes aligned to [`ALIGN`], or `None` when there is none to give.
    fn allocate(&self, bytes: usize) -> Option<NonNull<u8>>;

    /// Gives back a block.
    ///
    /// # Safety
    /// `ptr` came from [`HostMemory::allocate`] of this memory with the same `bytes`, and
    /// nothing uses it any more.
    unsafe fn free(&self, ptr: NonNull<u8>, bytes: usize);

    /// Whether the loader should allocate every pooled buffer when it starts rather than
    /// when a worker first needs one: for memory that cannot be asked for from any thread at
    /// any time (one that takes Python's GIL, say).
    fn up_front(&self) -> bool {
        false
    }

    /// What the memory is, for messages ("heap", "page-locked").
    fn name(&self) -> &str;
}

impl std::fmt::Debug for dyn HostMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} memory", self.name())
    }
}

/// The process heap.
pub struct Heap;

impl HostMemory for Heap {
    fn allocate(&self, bytes: usize) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(bytes.max(1), ALIGN).ok()?;
        // SAFETY: a non-zero size and a valid alignment.
        NonNull::new(unsafe { std::alloc::alloc(layout) })
    }

    unsafe fn free(&self, ptr: NonNull<u8>, bytes: usize) {
        let layout = Layout::from_size_align(bytes.max(1), ALIGN).expect("allocated with it");
        // SAFETY: the caller's contract: allocated here with this size.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
    }

    fn name(&self) -> &str {
        "heap"
    }
}

/// Element types a buffer may hold: plain numbers, for which zero bytes are a valid value.
pub trait Plain: Copy + Send + Sync + 'static {}
impl Plain for u8 {}
impl Plain for f32 {}

/// A buffer of `T` of fixed capacity from a [`HostMemory`], zeroed when allocated; its
/// length is set within the capacity and never reallocates, so a pointer to it stays valid
/// for the buffer's whole life (what a copy to the GPU needs).
pub struct HostBuffer<T: Plain> {
    ptr: NonNull<T>,
    len: usize,
    capacity: usize,
    memory: Arc<dyn HostMemory>,
    _owns: PhantomData<T>,
}

// SAFETY: the buffer owns its memory exclusively, as a Vec does.
unsafe impl<T: Plain> Send for HostBuffer<T> {}
unsafe impl<T: Plain> Sync for HostBuffer<T> {}

impl<T: Plain> HostBuffer<T> {
    /// A zeroed buffer of `capacity` elements from `memory`, empty; `None` when the memory
    /// has none to give.
    pub fn new(memory: &Arc<dyn HostMemory>, capacity: usize) -> Option<HostBuffer<T>> {
        let bytes = capacity.checked_mul(std::mem::size_of::<T>())?;
        let ptr = memory.allocate(bytes)?;
        // SAFETY: `bytes` writable bytes; zero is a valid `T` (`Plain`).
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, bytes) };
        Some(HostBuffer {
            ptr: ptr.cast(),
            len: 0,
            capacity,
            memory: memory.clone(),
            _owns: PhantomData,
        })
    }

    /// Elements it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the length. Elements come from whatever the buffer held (zeros at first).
    ///
    /// # Panics
    /// Beyond the capacity: the pool sizes every buffer for a whole batch.
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity,
            "{len} elements in a buffer of {}",
            self.capacity
        );
        self.len = len;
    }
}

impl<T: Plain> std::ops::Deref for HostBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len <= capacity` initialised elements (zeroed at allocation).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Plain> std::ops::DerefMut for HostBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, and the buffer is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Plain> Drop for HostBuffer<T> {
    fn drop(&mut self) {
        let bytes = self.capacity * std::mem::size_of::<T>();
        // SAFETY: allocated by this memory with these bytes; dropped once.
        unsafe { self.memory.free(self.ptr.cast(), bytes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts what it hands out and takes back.
    #[derive(Default)]
    struct Counting {
        live: AtomicUsize,
        bytes: AtomicUsize,
    }

    impl HostMemory for Counting {
        fn allocate(&self, bytes: usize) -> Option<NonNull<u8>> {
            self.live.fetch_add(1, Ordering::SeqCst);
            self.bytes.fetch_add(bytes, Ordering::SeqCst);
            Heap.allocate(bytes)
        }
        unsafe fn free(&self, ptr: NonNull<u8>, bytes: usize) {
            self.live.fetch_sub(1, Ordering::SeqCst);
            self.bytes.fetch_sub(bytes, Ordering::SeqCst);
            unsafe { Heap.free(ptr, bytes) }
        }
        fn name(&self) -> &str {
            "counting"
        }
    }

    #[test]
    fn buffers_are_zeroed_aligned_fixed_and_given_back() {
        let counting = Arc::new(Counting::default());
        let memory: Arc<dyn HostMemory> = counting.clone();
        {
            let mut b: HostBuffer<f32> = HostBuffer::new(&memory, 100).unwrap();
            assert_eq!((b.len(), b.capacity()), (0, 100));
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            b.set_len(100);
            assert!(b.iter().all(|&x| x == 0.0));
            b[99] = 7.0;
            let at = b.as_ptr();
            b.set_len(10);
            b.set_len(100);
            assert_eq!((b[99], b.as_ptr()), (7.0, at), "kept in place");
            assert_eq!(counting.bytes.load(Ordering::SeqCst), 400);
        }
        assert_eq!(counting.live.load(Ordering::SeqCst), 0, "given back on drop");
    }

    #[test]
    #[should_panic(expected = "in a buffer of 4")]
    fn a_length_beyond_the_capacity_is_a_bug() {
        let memory: Arc<dyn HostMemory> = Arc::new(Heap);
        HostBuffer::<u8>::new(&memory, 4).unwrap().set_len(5);
    }
}
