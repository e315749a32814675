//! Puts the target's memory layout where the linker finds it (as `memory.x`) and adds the
//! runtime's and defmt's linker scripts.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets the target arch");
    let memory = match arch.as_str() {
        "arm" => "memory-cortex-m.x",
        "riscv32" => "memory-riscv32.x",
        other => panic!(
            "no memory layout for target arch {other}: build for thumbv7em-none-eabihf or riscv32imac-unknown-none-elf"
        ),
    };
    fs::copy(memory, out.join("memory.x")).expect("copy the memory layout to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={memory}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
