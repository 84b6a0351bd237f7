//! A loader in steady state allocates nothing per batch: buffers come from its pool and go
//! back when a batch is dropped. Counted with a global allocator over every thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gdt_pipeline::load::loader::LoaderBuilder;
use gdt_pipeline::synth::packed::SmallDataset;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_batch_in_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    SmallDataset {
        count: 40,
        seed: 2,
        ..SmallDataset::default()
    }
    .write(dir.path())
    .unwrap();
    let mut loader = LoaderBuilder::new(dir.path())
        .batch_size(2)
        .threads(2)
        .prefetch(2)
        .seed(4)
        .build()
        .unwrap();
    assert_eq!(loader.batches_per_epoch(), 20);
    // Warm-up: pools fill, buffers reach their size, zstd contexts their window.
    for _ in 0..6 {
        loader.next().unwrap().unwrap();
    }
    COUNTING.store(true, Ordering::SeqCst);
    let mut records = 0;
    for _ in 0..12 {
        let b = loader.next().unwrap().unwrap();
        records += b.records;
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(records, 24);
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations during 12 steady-state batches"
    );
}
