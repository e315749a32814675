//! `hetune bench bootstrap`: time, precision, levels, key bytes and peak memory of one
//! full-slot bootstrap, inputs uniform in [-1, 1] (real and imaginary parts).

use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::{decrypt, encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::circuits::bootstrap::{BootstrapConfig, Bootstrapper};
use hetune_engine::evaluator::{EvaluationKeys, Evaluator};
use hetune_engine::precision::PrecisionStats;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use super::{on_threads, time_runs, RunPolicy};
use crate::Error;

/// Result of [`bench_bootstrap`].
#[derive(Clone, Debug, Serialize)]
pub struct BootstrapReport {
    /// Preset.
    pub preset: String,
    /// Whether the preset is insecure.
    pub insecure: bool,
    /// log2 N.
    pub log_n: u32,
    /// Slots bootstrapped.
    pub slots: usize,
    /// Rayon threads.
    pub threads: usize,
    /// Wall-clock seconds of each timed bootstrap.
    pub seconds: Vec<f64>,
    /// Median of `seconds`.
    pub median_seconds: f64,
    /// CPU seconds (user + system, all threads) of each timed bootstrap: less sensitive than
    /// wall time to other processes on a shared machine.
    pub cpu_seconds: Vec<f64>,
    /// Median wall seconds of each stage over the timed bootstraps: `mod_raise` (encapsulation,
    /// ModRaise, decapsulation), `coeff_to_slot`, `eval_mod` (both halves, with the conjugation
    /// that splits them), `slot_to_coeff`.
    pub phase_seconds: std::collections::BTreeMap<String, f64>,
    /// Median CPU seconds (all threads) of each stage, as `phase_seconds`.
    pub phase_cpu_seconds: std::collections::BTreeMap<String, f64>,
    /// Precision: -log2 of the mean absolute error over slots (a slot's error: the larger of its
    /// real and imaginary errors).
    pub precision_mean_bits: f64,
    /// Precision: -log2 of the largest absolute error.
    pub precision_min_bits: f64,
    /// Level of the input.
    pub level_before: usize,
    /// Level of the output.
    pub level_after: usize,
    /// Rotation keys generated.
    pub rotation_keys: usize,
    /// Key material held in memory, bytes.
    pub key_bytes: u64,
    /// Seconds to generate the keys.
    pub keygen_seconds: f64,
    /// Seconds of the untimed first bootstrap, which also encodes the linear transforms'
    /// diagonals that later bootstraps reuse (OpenFHE does that in `EvalBootstrapSetup`, outside
    /// the timed calls of `bench/peers/openfhe_bootstrap.py`).
    pub warm_up_seconds: f64,
    /// Peak resident memory of the process, bytes (VmHWM).
    pub peak_rss_bytes: u64,
    /// Circuit settings.
    pub k: usize,
    /// Double-angle steps.
    pub double_angle: u32,
    /// Degree of the EvalMod polynomial.
    pub degree: usize,
    /// Message ratio bits.
    pub message_ratio_bits: u32,
}

/// Peak resident set size of this process, from /proc (0 where unavailable).
pub fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM:")
}

/// Resident memory of this process now (Linux `VmRSS`), 0 where unknown.
pub fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used, from /proc (0 where unavailable).
pub fn process_cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat (after the parenthesised command name) are utime and
    // stime in clock ticks; Linux reports them at USER_HZ = 100.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// Generates keys (reporting `progress(done, total)`), then bootstraps `runs` fresh
/// ciphertexts and reports.
pub fn bench_bootstrap(
    preset: &str,
    threads: usize,
    runs: usize,
    cfg: BootstrapConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<BootstrapReport, Error> {
    on_threads(threads.max(1), || {
        let params = Parameters::preset(preset, Security::InsecureForTestingOnly)?;
        let insecure = !params.is_secure();
        let ctx = Arc::new(Context::new(params)?);
        let mut rng = ChaCha20Rng::from_os_rng();
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let t = Instant::now();
        let request = cfg.key_request(ctx.params().log_n());
        let keys = EvaluationKeys::generate_with_progress(&ctx, &sk, &request, &mut rng, progress)?;
        let key_bytes = keys.bytes(&ctx);
        let rotation_keys = keys.galois.len();
        let ev = Arc::new(Evaluator::new(ctx.clone(), keys)?);
        ev.expand_keys()?;
        let boot = Bootstrapper::new(ev, cfg)?;
        let keygen_seconds = t.elapsed().as_secs_f64();
        let enc = Encoder::new(&ctx);
        let log_slots = cfg.slots(ctx.params().log_n());
        let slots = 1usize << log_slots;
        let uni = |rng: &mut ChaCha20Rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        let inputs: Vec<Vec<Complex>> = (0..runs.max(1))
            .map(|_| (0..slots).map(|_| Complex::new(uni(&mut rng), uni(&mut rng))).collect())
            .collect();
        let cts = inputs
            .iter()
            .map(|v| {
                let pt = enc.encode_complex(v, log_slots, 0, ctx.params().scale())?;
                Ok(encrypt_sk(&ctx, &sk, &pt, &mut rng)?.expand(&ctx))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // One untimed bootstrap first: it encodes and caches the DFT diagonals (setup, as the
        // peer's), so the timed runs are alike.
        let warm = Instant::now();
        boot.bootstrap(&cts[0])?;
        let warm_up_seconds = warm.elapsed().as_secs_f64();
        let mut outputs = Vec::with_capacity(cts.len());
        let mut cpu = Vec::with_capacity(cts.len());
        let mut phases: Vec<Vec<(&'static str, f64, f64)>> = Vec::with_capacity(cts.len());
        let (_, timing) = time_runs(RunPolicy::fixed(cts.len()), |i| {
            let c0 = process_cpu_seconds();
            let mut last = Instant::now();
            let mut last_cpu = c0;
            let mut marks: Vec<(&'static str, f64, f64)> = Vec::new();
            let out = boot.bootstrap_traced(&cts[i], &mut |stage, _| {
                let name = match stage {
                    "raised" => "mod_raise",
                    "coeff_to_slot" => "coeff_to_slot",
                    "eval_mod_re" | "eval_mod" => "eval_mod",
                    "output" => "slot_to_coeff",
                    _ => return,
                };
                let cpu_now = process_cpu_seconds();
                marks.push((name, last.elapsed().as_secs_f64(), cpu_now - last_cpu));
                last = Instant::now();
                last_cpu = cpu_now;
            })?;
            cpu.push(process_cpu_seconds() - c0);
            phases.push(marks);
            outputs.push(out);
            Ok(())
        })?;
        let mut phase_seconds = std::collections::BTreeMap::new();
        let mut phase_cpu_seconds = std::collections::BTreeMap::new();
        for name in ["mod_raise", "coeff_to_slot", "eval_mod", "slot_to_coeff"] {
            let median = |pick: fn(&(&'static str, f64, f64)) -> f64| {
                let mut v: Vec<f64> = phases.iter().flat_map(|m| m.iter().filter(|x| x.0 == name).map(pick)).collect();
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            };
            if let (Some(w), Some(c)) = (median(|x| x.1), median(|x| x.2)) {
                phase_seconds.insert(name.to_string(), w);
                phase_cpu_seconds.insert(name.to_string(), c);
            }
        }
        let mut got = Vec::with_capacity(inputs.len() * slots);
        for out in &outputs {
            got.extend(enc.decode_complex(&decrypt(&ctx, &sk, out)?)?);
        }
        let precision = PrecisionStats::complex(&got, &inputs.concat())?;
        let level_after = outputs.last().map_or(0, |c| c.level);
        Ok(BootstrapReport {
            preset: preset.to_string(),
            insecure,
            log_n: ctx.params().log_n(),
            slots,
            threads: threads.max(1),
            median_seconds: timing.median(),
            seconds: timing.seconds,
            cpu_seconds: cpu,
            phase_seconds,
            phase_cpu_seconds,
            precision_mean_bits: precision.mean_bits(),
            precision_min_bits: precision.min_bits(),
            level_before: 0,
            level_after,
            rotation_keys,
            key_bytes,
            keygen_seconds,
            warm_up_seconds,
            peak_rss_bytes: peak_rss_bytes(),
            k: cfg.k,
            double_angle: cfg.double_angle,
            degree: cfg.degree,
            message_ratio_bits: cfg.message_ratio_bits,
        })
    })
}
