//! RV32IMAC on QEMU's `virt` machine (`-m 64M`): instructions counted by the `minstret` CSR, a
//! PMP guard below the stack, traps end the run.

use super::exit;

/// Target triple the image is built for.
pub const TARGET: &str = "riscv32imac-unknown-none-elf";
/// The core this image runs on.
pub fn core_name() -> &'static str {
    "rv32imac"
}

/// Bytes of the stack guard: the NAPOT region just below the stack.
const GUARD: usize = 4096;

/// Locks a PMP region without any permission over the 4 KiB below the stack (the top of the code
/// region, unused), so that a stack overflow traps instead of writing there; a locked entry binds
/// machine mode too. `minstret` needs nothing: under `-icount shift=0` QEMU derives it from the
/// instruction count, so it is exact (without icount QEMU returns host ticks instead).
pub fn init() {
    let (bottom, _) = stack_bounds();
    let base = bottom - GUARD;
    // NAPOT encoding of [base, base + GUARD): base / 4 with the low log2(GUARD) - 3 bits set.
    let addr = (base >> 2) | ((GUARD >> 3) - 1);
    // pmp0cfg: L (locked) = 0x80, A = NAPOT (0b11 << 3), R = W = X = 0.
    let cfg = 0x80 | (0b11 << 3);
    // SAFETY: entry 0 was off; it only removes access to 4 KiB that nothing uses.
    unsafe {
        riscv::register::pmpaddr0::write(addr);
        riscv::register::pmpcfg0::write(cfg);
    }
}

/// Instructions retired since reset (`minstret`, 64 bits).
pub fn instructions() -> u64 {
    riscv::register::minstret::read64()
}

/// A loop of exactly `2 * iterations` instructions (`addi`, `bnez`); `iterations` > 0.
pub fn count_loop(iterations: u32) {
    // SAFETY: register-only loop, no memory or stack access.
    unsafe {
        core::arch::asm!(
            "2:",
            "addi {n}, {n}, -1",
            "bnez {n}, 2b",
            n = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
}

extern "C" {
    // riscv-rt's linker script: the `.stack` region runs from `__estack` up to `__sstack`.
    static __estack: u8;
    static __sstack: u8;
}

/// Bottom and top of the stack region.
pub fn stack_bounds() -> (usize, usize) {
    (core::ptr::addr_of!(__estack) as usize, core::ptr::addr_of!(__sstack) as usize)
}

/// The current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mv {}, sp", out(reg) sp, options(nomem, nostack)) };
    sp
}

#[export_name = "ExceptionHandler"]
fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    defmt::error!(
        "trap: mcause={=usize:#x} mepc={=usize:#010x} mtval={=usize:#x}",
        riscv::register::mcause::read().bits(),
        riscv::register::mepc::read(),
        riscv::register::mtval::read()
    );
    exit(1)
}

#[export_name = "DefaultHandler"]
fn default_handler() -> ! {
    defmt::error!("unexpected interrupt: mcause={=usize:#x}", riscv::register::mcause::read().bits());
    exit(1)
}
