//! RV32IMAC on QEMU's `virt` machine (`-m 64M`): heap in RAM above the image, instructions
//! counted by the `minstret` CSR, stack painted at start-up, traps end the run.

use super::exit;

/// Target triple the image is built for.
pub const TARGET: &str = "riscv32imac-unknown-none-elf";
/// Emulated board and core.
pub const BOARD: &str = "virt/rv32";

/// 16 MiB of RAM above the 32 MiB that `memory-riscv32.x` gives the linker, and below the top of
/// the 64 MiB, where QEMU puts the device tree.
pub const HEAP_START: usize = 0x8200_0000;
/// Bytes of heap.
pub const HEAP_SIZE: usize = 16 * 1024 * 1024;

/// Nothing to start: `minstret` always counts. Under `-icount shift=0` QEMU derives it from the
/// instruction count, so it is exact (without icount QEMU returns host ticks instead).
pub fn init() {}

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
