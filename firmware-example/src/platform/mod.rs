//! What the firmware needs from the board, one interface for both targets: a heap with a
//! peak-tracking wrapper, an emulated-instruction counter, the stack high-water mark, exit through
//! semihosting, and fault and panic handlers that end the run with status 1. The target-specific
//! half is in `arm.rs` (Cortex-M4F and M7, mps2-an386 and mps2-an500) and `riscv32.rs` (RV32IMAC,
//! virt).
//!
//! Memory: everything lives in the 2 MiB RAM region of the linker script (`memory-*.x`): the
//! stack (64 KiB) at its bottom, then the statics, among them the heap, a fixed array. A heap
//! request beyond the array fails (and the run ends with status 1), a layout beyond the region
//! fails to link, and a stack overflow faults.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

#[cfg(target_arch = "arm")]
mod arm;
#[cfg(target_arch = "arm")]
pub use arm::*;
#[cfg(target_arch = "riscv32")]
mod riscv32;
#[cfg(target_arch = "riscv32")]
pub use riscv32::*;

/// A first-fit heap that also keeps the bytes in use and their peak since the last reset.
pub struct TrackingHeap {
    heap: LlffHeap,
    used: AtomicUsize,
    peak: AtomicUsize,
}

#[global_allocator]
pub static HEAP: TrackingHeap =
    TrackingHeap { heap: LlffHeap::empty(), used: AtomicUsize::new(0), peak: AtomicUsize::new(0) };

impl TrackingHeap {
    /// Bytes currently allocated (requested sizes, without the allocator's own overhead).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Most bytes allocated at once since [`Self::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak measurement from the current use.
    pub fn reset_peak(&self) {
        self.peak.store(self.used(), Ordering::Relaxed);
    }
}

/// Heap peaks of the steps of one run, above the use at its start.
pub struct HeapSteps {
    base: usize,
    overall: usize,
}

impl HeapSteps {
    /// Starts measuring from the current heap use.
    pub fn start() -> Self {
        HEAP.reset_peak();
        HeapSteps { base: HEAP.used(), overall: 0 }
    }

    /// The peak of the step that ends now (bytes above the start), and a new step begins.
    pub fn step(&mut self) -> usize {
        let peak = HEAP.peak().saturating_sub(self.base);
        self.overall = self.overall.max(peak);
        HEAP.reset_peak();
        peak
    }

    /// The highest step peak so far.
    pub fn overall(&self) -> usize {
        self.overall
    }

    /// Bytes still allocated above the start.
    pub fn leaked(&self) -> usize {
        HEAP.used().saturating_sub(self.base)
    }
}

unsafe impl GlobalAlloc for TrackingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.heap.alloc(layout);
        if !p.is_null() {
            let now = self.used.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.heap.dealloc(ptr, layout);
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// Bytes of heap: the 1.25 MiB working-memory budget of n16-boot, plus 64 KiB for the
/// parameter set and the allocator's rounding.
pub const HEAP_SIZE: usize = 1_310_720 + 65_536;

/// The heap's memory, in `.uninit` (not zeroed at reset) inside the RAM region.
#[link_section = ".uninit.heap"]
static mut HEAP_MEMORY: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];

/// Hands the heap array to the allocator. Call once, before the first allocation.
pub fn init_heap() {
    // SAFETY: called once at start-up, before any allocation; nothing else refers to the array.
    unsafe { HEAP.heap.init(core::ptr::addr_of_mut!(HEAP_MEMORY) as usize, HEAP_SIZE) }
}

/// Bytes of heap not allocated now.
pub fn heap_free() -> usize {
    HEAP_SIZE - HEAP.used()
}

/// Runs a loop of exactly `2 * iterations` instructions and returns the count [`instructions`]
/// measured for it.
pub fn calibrate(iterations: u32) -> u64 {
    let t0 = instructions();
    count_loop(iterations);
    instructions() - t0
}

// Every log line carries the emulated instruction count at which it was written.
defmt::timestamp!("{=u64}", instructions());

const STACK_PAINT: u32 = 0xCCCC_CCCC;

/// Bytes of stack reserved.
pub fn stack_capacity() -> usize {
    let (bottom, top) = stack_bounds();
    top - bottom
}

/// Deepest stack use since the last [`repaint_stack`]: the painted words not overwritten,
/// counted from the bottom.
pub fn stack_high_water() -> usize {
    let (bottom, top) = stack_bounds();
    let mut addr = bottom;
    while addr < top {
        // SAFETY: inside the stack region, which is RAM; words below the live stack are only
        // read here.
        if unsafe { core::ptr::read_volatile(addr as *const u32) } != STACK_PAINT {
            break;
        }
        addr += 4;
    }
    top - addr
}

/// Paints the unused stack again, so that the next [`stack_high_water`] measures from here.
#[inline(never)]
pub fn repaint_stack() {
    let (bottom, _) = stack_bounds();
    // Keep clear of this function's own frame and of what an interrupt might push meanwhile.
    let sp = stack_pointer() - 256;
    let mut addr = bottom;
    while addr < sp {
        // SAFETY: below the current stack pointer (minus a margin), so unused stack RAM.
        unsafe { core::ptr::write_volatile(addr as *mut u32, STACK_PAINT) };
        addr += 4;
    }
}

/// Ends the QEMU run with `code` as its exit status (semihosting SYS_EXIT_EXTENDED).
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(1)
}
