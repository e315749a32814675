//! Cortex-M4F and Cortex-M7 on QEMU's mps2-an386 and mps2-an500 (one image for both: the same
//! code and RAM addresses): instructions counted through SysTick, stack painted by cortex-m-rt,
//! HardFault and stray exceptions end the run.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{exception, ExceptionFrame};

use super::exit;

/// Target triple the image is built for.
pub const TARGET: &str = "thumbv7em-none-eabihf";
/// The core this image runs on, from the CPUID register's part number.
pub fn core_name() -> &'static str {
    // SAFETY: a read of the read-only CPUID base register.
    let cpuid = unsafe { (*cortex_m::peripheral::CPUID::PTR).base.read() };
    match (cpuid >> 4) & 0xFFF {
        0xC24 => "cortex-m4",
        0xC27 => "cortex-m7",
        _ => "other",
    }
}

/// SysTick wraps counted by the exception handler.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;
const SYSTICK_PERIOD: u64 = SYSTICK_RELOAD as u64 + 1;

/// Emulated instructions per SysTick tick. QEMU models no cycles: under `-icount shift=0` the
/// virtual clock advances exactly 1 ns per executed instruction, and the mps2 SysTick runs from
/// the 25 MHz system clock on that virtual clock, so one tick is 40 instructions. The start-up
/// calibration checks this on every run against a loop of known length. (QEMU's DWT has no
/// working cycle counter: `CYCCNT` stays 0.)
const INSTRUCTIONS_PER_TICK: u64 = 40;

/// Starts the instruction counter: SysTick as a free-running 24-bit counter on the core clock,
/// with a wrap interrupt.
pub fn init() {
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        defmt::error!("core peripherals already taken");
        exit(1)
    };
    let mut syst = peripherals.SYST;
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

/// SysTick ticks since [`init`]; monotonic, also correct with interrupts masked (a wrap whose
/// exception is still pending is counted from the pending bit).
fn ticks() -> u64 {
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

/// Emulated instructions since [`init`], at a resolution of 40.
pub fn instructions() -> u64 {
    ticks() * INSTRUCTIONS_PER_TICK
}

/// A loop of exactly `2 * iterations` instructions (`subs`, `bne`); `iterations` > 0.
pub fn count_loop(iterations: u32) {
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
}

extern "C" {
    static mut _stack_end: u32;
    static mut _stack_start: u32;
}

/// Bottom and top of the stack: the STACK region of `memory-cortex-m.x` (cortex-m-rt's symbols).
pub fn stack_bounds() -> (usize, usize) {
    (core::ptr::addr_of!(_stack_end) as usize, core::ptr::addr_of!(_stack_start) as usize)
}

/// The current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
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
