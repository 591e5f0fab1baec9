//! A global allocator that counts the bytes live on the heap, for the tests and benchmarks that
//! measure what the pipeline really holds (memory_at_scale, console_render) against what it
//! charges to the budget. The budget itself never reads it: accounting must not depend on the
//! allocator (see the crate's doc). Install it in a test or bench binary with
//! `#[global_allocator] static ALLOCATOR: HeapCounter = HeapCounter;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated and not yet freed, by anyone in the binary that installed [`HeapCounter`].
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Forwards to the system allocator and counts the live bytes.
pub struct HeapCounter;

impl HeapCounter {
    /// Bytes live on the heap now (requested sizes, not the allocator's rounding). One counter
    /// for the whole binary: tests that read it must take turns.
    pub fn live_bytes() -> usize {
        LIVE.load(Ordering::Relaxed)
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for HeapCounter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc`/`realloc` above, which are the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted only once the move succeeded: a failed realloc leaves the old block live.
        // SAFETY: as for `dealloc`.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            if new_size > layout.size() {
                LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts through the trait directly (the unit-test binary keeps the system allocator): an
    /// allocation, a growth, a shrink and the free leave the counter where it started.
    #[test]
    fn live_bytes_follow_alloc_realloc_and_free() {
        let counter = HeapCounter;
        let before = HeapCounter::live_bytes();
        let layout = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: a non-zero layout; every pointer is used with the layout it now has.
        unsafe {
            let p = counter.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(HeapCounter::live_bytes(), before + 100);
            let p = counter.realloc(p, layout, 4000);
            assert_eq!(HeapCounter::live_bytes(), before + 4000);
            let grown = Layout::from_size_align(4000, 8).unwrap();
            let p = counter.realloc(p, grown, 10);
            assert_eq!(HeapCounter::live_bytes(), before + 10);
            counter.dealloc(p, Layout::from_size_align(10, 8).unwrap());
        }
        assert_eq!(HeapCounter::live_bytes(), before);
    }
}
