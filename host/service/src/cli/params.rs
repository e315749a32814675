//! `hetune params`.

use hetune_core::rlwe::params::PRESETS;
use hetune_core::{Parameters, Security};
use serde::Serialize;

use crate::error::{Error, Result};

/// The facts of a parameter set, as printed.
#[derive(Debug, Serialize)]
pub struct ParamsReport {
    /// Preset name.
    pub name: String,
    /// Ring degree.
    pub n: usize,
    /// log2 of the product of all primes.
    pub log_qp: f64,
    /// Levels available for computation on a fresh ciphertext.
    pub levels: usize,
    /// Top level of the chain (including bootstrapping limbs).
    pub max_level: usize,
    /// Limbs reserved for bootstrapping.
    pub boot_limbs: usize,
    /// log2 of the scale.
    pub scale_bits: u32,
    /// Key-switching digits.
    pub dnum: usize,
    /// Special primes.
    pub special_primes: usize,
    /// Estimated security.
    pub security_bits: u32,
    /// Whether the set passes the 128-bit gate.
    pub secure: bool,
    /// Ciphertext primes.
    pub q: Vec<u64>,
    /// Special primes.
    pub p: Vec<u64>,
}

impl ParamsReport {
    /// The report of a set.
    pub fn of(p: &Parameters) -> Self {
        ParamsReport {
            name: p.name().to_string(),
            n: p.n(),
            log_qp: (p.log_qp() * 100.0).round() / 100.0,
            levels: p.default_level(),
            max_level: p.max_level(),
            boot_limbs: p.boot_limbs(),
            scale_bits: p.log_scale(),
            dnum: p.dnum(),
            special_primes: p.alpha(),
            security_bits: p.security_bits(),
            secure: p.is_secure(),
            q: p.q().to_vec(),
            p: p.p().to_vec(),
        }
    }
}

/// Builds a preset; insecure presets only with the named opt-in.
pub fn build_preset(name: &str, insecure_testing_only: bool) -> Result<Parameters> {
    let Some(preset) = hetune_core::rlwe::params::preset(name) else {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.literal.name).collect();
        return Err(Error::InvalidInput(format!("unknown preset {name:?} (known: {})", names.join(", "))));
    };
    if preset.insecure && !insecure_testing_only {
        return Err(Error::InvalidInput(format!(
            "preset {name} is INSECURE (tests only); pass --insecure-testing-only to use it anyway"
        )));
    }
    let security = if insecure_testing_only { Security::InsecureForTestingOnly } else { Security::Require128Bits };
    Ok(Parameters::preset(name, security)?)
}

pub(super) fn run(name: &str, json: bool, list: bool) -> Result<()> {
    if list {
        for p in PRESETS {
            println!("{:<12} {}", p.literal.name, p.summary);
        }
        return Ok(());
    }
    // Printing a preset is harmless, so insecure ones are shown (and labelled).
    let params = build_preset(name, true)?;
    let r = ParamsReport::of(&params);
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| Error::InvalidInput(e.to_string()))?);
    } else {
        println!("preset        {}", params.label());
        println!("N             {} (2^{})", r.n, params.log_n());
        println!("log2(QP)      {:.2}", r.log_qp);
        println!("levels        {} (max level {}, {} limbs for bootstrapping)", r.levels, r.max_level, r.boot_limbs);
        println!("scale         2^{}", r.scale_bits);
        println!("dnum          {} ({} special primes)", r.dnum, r.special_primes);
        println!("security      {} bits{}", r.security_bits, if r.secure { "" } else { "  INSECURE: tests only" });
    }
    Ok(())
}
