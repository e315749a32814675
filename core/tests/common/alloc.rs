//! A counting global allocator for tests and fuzz targets: live and peak bytes per thread (so a
//! test harness's other threads do not disturb a measurement), and an optional scan of every
//! freed block for a byte pattern (secret coefficients left behind).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The allocator; registered as the global allocator of every binary that includes this module.
pub struct Counting;

thread_local! {
    /// Bytes allocated and not freed by this thread.
    pub static LIVE: Cell<u64> = const { Cell::new(0) };
    /// Most bytes live at once since the last reset.
    pub static PEAK: Cell<u64> = const { Cell::new(0) };
    /// When set, freed blocks of this thread are searched for `PATTERN`.
    pub static SCAN: Cell<Option<&'static [u8]>> = const { Cell::new(None) };
    /// Freed blocks in which the pattern was found.
    pub static FOUND: Cell<usize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    let _ = LIVE.try_with(|l| {
        l.set(l.get() + size as u64);
        let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
    });
}

fn on_free(ptr: *const u8, size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(size as u64)));
    if let Ok(Some(pattern)) = SCAN.try_with(|s| s.get()) {
        // SAFETY: called from dealloc/realloc before the block is handed back to System, so
        // `ptr` points to `size` bytes this allocator handed out and that are still allocated.
        let block = unsafe { std::slice::from_raw_parts(ptr, size) };
        if block.windows(pattern.len()).any(|w| w == pattern) {
            let _ = FOUND.try_with(|f| f.set(f.get() + 1));
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// are thread-local `Cell`s with const initialisers (no allocation, no destructor), and the scan
// only reads a block that is still allocated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(ptr, layout.size());
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the worst case: the new block before the old one is released.
        on_alloc(new_size);
        on_free(ptr, layout.size());
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated (above what was live before) while `f` runs on this thread.
pub fn peak_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(|p| p.get()) - base)
}
