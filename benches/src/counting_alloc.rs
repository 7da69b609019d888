//! A global allocator that counts live heap bytes, for benchmarks that
//! measure memory (`memory.rs`, `churn.rs`) rather than time.
//!
//! Owns: the count and the forwarding to [`System`]. Must not: change what
//! is allocated (every call forwards unchanged). A benchmark installs it
//! with `#[global_allocator] static ALLOC: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Live heap bytes, as the program asked for them (not the allocator's
/// rounding, which differs by allocator).
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Live heap bytes now, if [`Counting`] is the global allocator (0 otherwise).
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// [`System`], counting.
#[derive(Debug)]
pub struct Counting;

// SAFETY: every method forwards to `System` unchanged and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
