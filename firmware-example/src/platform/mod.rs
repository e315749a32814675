//! The board: heap over PSRAM with a peak-tracking wrapper, an instruction counter from SysTick,
//! the stack high-water mark, fault and panic handlers that end the run with status 1.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{exception, ExceptionFrame};
use embedded_alloc::LlffHeap;

/// PSRAM of the mps2-an386 board: 16 MiB at 0x2100_0000, outside the linker's view, all heap.
const PSRAM_START: usize = 0x2100_0000;
const PSRAM_SIZE: usize = 16 * 1024 * 1024;

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

/// Hands PSRAM to the heap. Call once, before the first allocation.
pub fn init_heap() {
    // SAFETY: called once at start-up; PSRAM is not used by the linker script or anything else.
    unsafe { HEAP.heap.init(PSRAM_START, PSRAM_SIZE) }
}

/// Bytes of heap available in total.
pub const fn heap_capacity() -> usize {
    PSRAM_SIZE
}

/// SysTick wraps counted by the exception handler.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;
const SYSTICK_PERIOD: u64 = SYSTICK_RELOAD as u64 + 1;

/// Emulated instructions per SysTick tick. QEMU models no cycles: under `-icount shift=0` the
/// virtual clock advances exactly 1 ns per executed instruction, and the mps2 SysTick runs from
/// the 25 MHz system clock on that virtual clock, so one tick is 40 instructions. [`calibrate`]
/// checks this on every run against a loop of known length.
pub const INSTRUCTIONS_PER_TICK: u64 = 40;

/// Starts SysTick as a free-running 24-bit counter on the core clock with a wrap interrupt.
pub fn init_clock(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The cleared counter reads 0 until the first reload; count from there.
    while SYST::get_current() == 0 {}
}

#[exception]
fn SysTick() {
    SYSTICK_WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick ticks since [`init_clock`]; monotonic, also correct with interrupts masked (a wrap
/// whose exception is still pending is counted from the pending bit).
pub fn ticks() -> u64 {
    cortex_m::interrupt::free(|_| {
        let wraps = SYSTICK_WRAPS.load(Ordering::Relaxed) as u64;
        let before = SYST::get_current();
        if SCB::is_pendst_pending() {
            // The wrap happened before the pending bit was read, so a fresh read is after it.
            let after = SYST::get_current();
            (wraps + 1) * SYSTICK_PERIOD + (SYSTICK_RELOAD - after) as u64
        } else {
            wraps * SYSTICK_PERIOD + (SYSTICK_RELOAD - before) as u64
        }
    })
}

/// Emulated instructions since [`init_clock`], at a resolution of [`INSTRUCTIONS_PER_TICK`].
pub fn instructions() -> u64 {
    ticks() * INSTRUCTIONS_PER_TICK
}

/// Runs a loop of exactly `2 * iterations` instructions (`subs`, `bne`) and returns the
/// instruction count [`instructions`] measured for it.
pub fn calibrate(iterations: u32) -> u64 {
    let t0 = instructions();
    // SAFETY: register-only loop, no memory or stack access.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
    instructions() - t0
}

// Every log line carries the emulated instruction count at which it was written.
defmt::timestamp!("{=u64}", instructions());

extern "C" {
    static mut _stack_end: u32;
    static mut _stack_start: u32;
}

const STACK_PAINT: u32 = 0xCCCC_CCCC;

fn stack_bounds() -> (usize, usize) {
    (core::ptr::addr_of!(_stack_end) as usize, core::ptr::addr_of!(_stack_start) as usize)
}

/// Bytes of stack reserved (all RAM above `.data` and `.bss`).
pub fn stack_capacity() -> usize {
    let (bottom, top) = stack_bounds();
    top - bottom
}

/// Deepest stack use since start-up (cortex-m-rt's `paint-stack`) or the last
/// [`repaint_stack`]: the painted words not overwritten, counted from the bottom.
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
    let sp = cortex_m::register::msp::read() as usize - 256;
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

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc={=u32:#010x} lr={=u32:#010x}", frame.pc(), frame.lr());
    exit(1)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    defmt::error!("unexpected exception or interrupt {=i16}", irqn);
    exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(1)
}
