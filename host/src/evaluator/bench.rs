//! `hetune bench ops`: median wall-clock milliseconds of the basic operations at the top level
//! and at level 3, on a rayon pool of a chosen size. Every operation returns a new value, so its
//! time includes writing the result; "decrypt" includes decoding (as OpenFHE's `Decrypt`, timed
//! by `bench/peers/openfhe_ops.py`), "hoisted_rotate_8" rotates one ciphertext by 1..=8.

use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::{decrypt, encrypt_pk, encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use hetune_core::{Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;

use super::{EvaluationKeys, Evaluator, KeySpec};
use crate::Error;

/// Operations timed, in report order.
pub const OPS: &[&str] = &[
    "encode",
    "encrypt_sk",
    "encrypt_pk",
    "decrypt",
    "add",
    "mul_plain",
    "mul_relin",
    "rescale",
    "rotate",
    "hoisted_rotate_8",
    "conjugate",
];

/// Timing of one operation at one level.
#[derive(Clone, Debug, Serialize)]
pub struct OpTiming {
    /// Operation name (one of [`OPS`]).
    pub op: String,
    /// Level of the operands (limbs = level + 1).
    pub level: usize,
    /// Median wall-clock milliseconds.
    pub median_ms: f64,
    /// Fastest run, milliseconds.
    pub min_ms: f64,
    /// Number of timed runs (after one untimed warm-up run).
    pub runs: usize,
}

/// The report of `hetune bench ops`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchOpsReport {
    /// Preset name.
    pub preset: String,
    /// Whether the preset is below 128-bit security (benchmarks only; never for data).
    pub insecure: bool,
    /// log2 N.
    pub log_n: u32,
    /// Number of ciphertext primes.
    pub q_limbs: usize,
    /// Number of special primes.
    pub p_limbs: usize,
    /// Key-switching digits.
    pub dnum: usize,
    /// Rayon threads.
    pub threads: usize,
    /// Timings, by level then operation.
    pub results: Vec<OpTiming>,
}

impl BenchOpsReport {
    /// The median of `op` at `level`, if measured.
    pub fn median_ms(&self, op: &str, level: usize) -> Option<f64> {
        self.results.iter().find(|r| r.op == op && r.level == level).map(|r| r.median_ms)
    }
}

/// Times `f` once untimed, then enough times to fill about `budget_ms` (3 to 15 runs).
fn time<T>(budget_ms: f64, mut f: impl FnMut() -> Result<T, Error>) -> Result<(f64, f64, usize), Error> {
    let t0 = Instant::now();
    std::hint::black_box(f()?);
    let first = t0.elapsed().as_secs_f64() * 1e3;
    let runs = ((budget_ms / first.max(1e-3)) as usize).clamp(3, 15);
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f()?);
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    let median = if runs % 2 == 1 { v[runs / 2] } else { 0.5 * (v[runs / 2 - 1] + v[runs / 2]) };
    Ok((median, v[0], runs))
}

/// Runs the benchmark of every operation in [`OPS`] for `preset` on `threads` rayon threads, at
/// the top level and at level 3 (or the top, if lower).
pub fn bench_ops(preset: &str, threads: usize) -> Result<BenchOpsReport, Error> {
    bench_ops_with_budget(preset, threads, 1500.0)
}

/// [`bench_ops`] with a time budget per operation and level (milliseconds).
pub fn bench_ops_with_budget(preset: &str, threads: usize, budget_ms: f64) -> Result<BenchOpsReport, Error> {
    if threads == 0 {
        return Err(Error::InvalidArgument("threads must be at least 1"));
    }
    let entry = hetune_core::rlwe::params::preset(preset).ok_or(hetune_core::Error::UnknownPreset)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|_| Error::InvalidArgument("cannot start a thread pool of that size"))?;
    pool.install(|| {
        // Benchmarks run on random data only, so insecure test presets are allowed here.
        let params = Parameters::preset(preset, Security::InsecureForTestingOnly)?;
        let ctx = Arc::new(Context::new(params)?);
        let mut rng = ChaCha20Rng::seed_from_u64(0x6865_7475_6e65);
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let pk = PublicKey::generate(&ctx, &sk, &mut rng);
        let spec = KeySpec { relinearization: true, rotations: (1..=8).collect(), conjugation: true };
        let keys = EvaluationKeys::generate(&ctx, &sk, &spec, &mut rng);
        let ev = Evaluator::new(ctx.clone(), keys)?;
        ev.expand_keys();
        let enc = Encoder::new(&ctx);
        let log_slots = ctx.params().log_n() - 1;
        let slots = 1usize << log_slots;
        let vals: Vec<Complex> =
            (0..slots).map(|j| Complex::new((j as f64 * 0.001).sin(), (j as f64 * 0.003).cos() * 0.5)).collect();
        let scale = ctx.params().scale();
        let top = ctx.params().max_level();
        let mut levels = vec![top];
        if top > 3 {
            levels.push(3);
        }
        let steps: Vec<i64> = (1..=8).collect();
        let mut results = Vec::new();
        for &level in &levels {
            let pt = enc.encode_complex(&vals, log_slots, level, scale)?;
            let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng)?.expand(&ctx);
            let ct2 = encrypt_pk(&ctx, &pk, &pt, &mut rng)?;
            let prod = ev.mul_relin(&ct, &ct2)?;
            for &op in OPS {
                let (median_ms, min_ms, runs) = match op {
                    "encode" => time(budget_ms, || Ok(enc.encode_complex(&vals, log_slots, level, scale)?)),
                    "encrypt_sk" => time(budget_ms, || Ok(encrypt_sk(&ctx, &sk, &pt, &mut rng)?)),
                    "encrypt_pk" => time(budget_ms, || Ok(encrypt_pk(&ctx, &pk, &pt, &mut rng)?)),
                    // Decryption and decoding, as OpenFHE's Decrypt does both.
                    "decrypt" => time(budget_ms, || Ok(enc.decode_complex(&decrypt(&ctx, &sk, &ct)?)?)),
                    "add" => time(budget_ms, || ev.add(&ct, &ct2)),
                    "mul_plain" => time(budget_ms, || ev.mul_plain(&ct, &pt)),
                    "mul_relin" => time(budget_ms, || ev.mul_relin(&ct, &ct2)),
                    "rescale" => time(budget_ms, || ev.rescale(&prod)),
                    "rotate" => time(budget_ms, || ev.rotate(&ct, 1)),
                    "hoisted_rotate_8" => time(budget_ms, || ev.rotate_hoisted(&ct, &steps)),
                    "conjugate" => time(budget_ms, || ev.conjugate(&ct)),
                    _ => unreachable!("every name in OPS has an arm"),
                }?;
                results.push(OpTiming { op: op.to_string(), level, median_ms, min_ms, runs });
            }
        }
        Ok(BenchOpsReport {
            preset: preset.to_string(),
            insecure: entry.insecure,
            log_n: ctx.params().log_n(),
            q_limbs: ctx.q_len(),
            p_limbs: ctx.p().len(),
            dnum: ctx.params().dnum(),
            threads,
            results,
        })
    })
}
