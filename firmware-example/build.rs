//! Puts the target's memory layout where the linker finds it (as `memory.x`, with the RAM budget
//! filled in) and adds the runtime's and defmt's linker scripts.

use std::{env, fs, path::PathBuf};

/// The RAM the firmware is linked for: 2 MiB, the on-chip SRAM of the larger microcontrollers.
const RAM_KIB: u32 = 2048;
/// With the `small-ram-check` feature: a region too small for the n16-boot heap, which must
/// fail to link (tests/tests/qemu.rs checks the error).
const SMALL_RAM_KIB: u32 = 1024;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets the target arch");
    let layout = match arch.as_str() {
        "arm" => "memory-cortex-m.x",
        "riscv32" => "memory-riscv32.x",
        other => panic!(
            "no memory layout for target arch {other}: build for thumbv7em-none-eabihf or riscv32imac-unknown-none-elf"
        ),
    };
    let ram_kib = if env::var_os("CARGO_FEATURE_SMALL_RAM_CHECK").is_some() { SMALL_RAM_KIB } else { RAM_KIB };
    let text = fs::read_to_string(layout).expect("read the memory layout");
    fs::write(out.join("memory.x"), text.replace("RAM_KIB", &ram_kib.to_string())).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={layout}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
