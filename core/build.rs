//! Build-time configuration of hetune-core: `hetune_armv7em` on Armv7E-M targets (Cortex-M4,
//! M4F, M7: `thumbv7em-*`), whose DSP extension has the `UMAAL` instruction that the assembly
//! butterflies of `ring::compact_ntt` use. Every other target builds the portable Rust.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hetune_armv7em)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=hetune_armv7em");
    }
}
