//! `hetune bench ops`: median wall-clock milliseconds of the basic operations at the top level
//! and at level 3, on a rayon pool of a chosen size. Every operation returns a new value, so its
//! time includes writing the result; "decrypt" includes decoding (as OpenFHE's `Decrypt`, timed
//! by `bench/peers/openfhe_ops.py`), "hoisted_rotate_8" rotates one ciphertext by 1..=8.

use std::sync::Arc;

use hetune_core::ckks::{decrypt, encrypt_pk, encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::{EvaluationKeys, Evaluator, KeyRequest};
use hetune_engine::owner::PkEncryptor;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;

use super::{on_threads, time_runs, RunPolicy};
use crate::Error;

/// An operation timed by [`bench_ops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Encoding of complex slots.
    Encode,
    /// Secret-key encryption.
    EncryptSk,
    /// Public-key encryption.
    EncryptPk,
    /// Decryption and decoding.
    Decrypt,
    /// Addition of two ciphertexts.
    Add,
    /// Product with a plaintext.
    MulPlain,
    /// Product of two ciphertexts and relinearisation.
    MulRelin,
    /// Rescaling.
    Rescale,
    /// One rotation.
    Rotate,
    /// Hoisted rotations by 1..=8.
    #[serde(rename = "hoisted_rotate_8")]
    HoistedRotate8,
    /// Complex conjugation.
    Conjugate,
}

impl Op {
    /// The operation's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Encode => "encode",
            Op::EncryptSk => "encrypt_sk",
            Op::EncryptPk => "encrypt_pk",
            Op::Decrypt => "decrypt",
            Op::Add => "add",
            Op::MulPlain => "mul_plain",
            Op::MulRelin => "mul_relin",
            Op::Rescale => "rescale",
            Op::Rotate => "rotate",
            Op::HoistedRotate8 => "hoisted_rotate_8",
            Op::Conjugate => "conjugate",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Operations timed, in report order.
pub const OPS: &[Op] = &[
    Op::Encode,
    Op::EncryptSk,
    Op::EncryptPk,
    Op::Decrypt,
    Op::Add,
    Op::MulPlain,
    Op::MulRelin,
    Op::Rescale,
    Op::Rotate,
    Op::HoistedRotate8,
    Op::Conjugate,
];

/// Timing of one operation at one level.
#[derive(Clone, Debug, Serialize)]
pub struct OpTiming {
    /// The operation.
    pub op: Op,
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
    pub fn median_ms(&self, op: Op, level: usize) -> Option<f64> {
        self.results.iter().find(|r| r.op == op && r.level == level).map(|r| r.median_ms)
    }
}

/// Runs the benchmark of every operation in [`OPS`] for `preset` on `threads` rayon threads, at
/// the top level and at level 3 (or the top, if lower).
pub fn bench_ops(preset: &str, threads: usize) -> Result<BenchOpsReport, Error> {
    bench_ops_with_budget(preset, threads, 1500.0)
}

/// [`bench_ops`] with a time budget per operation and level (milliseconds).
pub fn bench_ops_with_budget(preset: &str, threads: usize, budget_ms: f64) -> Result<BenchOpsReport, Error> {
    let entry = hetune_core::rlwe::params::preset(preset).ok_or(hetune_core::Error::UnknownPreset)?;
    // One untimed run, then enough runs to fill about `budget_ms` (3 to 15).
    let policy = RunPolicy { warm_up: true, min_runs: 3, max_runs: 15, budget_seconds: budget_ms / 1e3 };
    on_threads(threads, || {
        // Benchmarks run on random data only, so insecure test presets are allowed here.
        let params = Parameters::preset(preset, Security::InsecureForTestingOnly)?;
        let ctx = Arc::new(Context::new(params)?);
        let mut rng = ChaCha20Rng::seed_from_u64(0x6865_7475_6e65);
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let pk = PublicKey::generate(&ctx, &sk, &mut rng);
        let spec =
            KeyRequest { relinearization: true, rotations: (1..=8).collect(), conjugation: true, encapsulation: None };
        let keys = EvaluationKeys::generate(&ctx, &sk, &spec, &mut rng)?;
        let ev = Evaluator::new(ctx.clone(), keys)?;
        ev.expand_keys()?;
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
        let pk_enc = PkEncryptor::new(&ctx, &pk)?;
        let mut results = Vec::new();
        for &level in &levels {
            let pt = enc.encode_complex(&vals, log_slots, level, scale)?;
            let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng)?.expand(&ctx);
            let ct2 = encrypt_pk(&ctx, &pk, &pt, &mut rng)?;
            let prod = ev.mul_relin(&ct, &ct2)?;
            for &op in OPS {
                let t = match op {
                    Op::Encode => time_runs(policy, |_| Ok(enc.encode_complex(&vals, log_slots, level, scale)?))?.1,
                    Op::EncryptSk => time_runs(policy, |_| Ok(encrypt_sk(&ctx, &sk, &pt, &mut rng)?))?.1,
                    // The host's public-key encryptor (the owner's client's): bit for bit the
                    // core's `encrypt_pk`, limbs in parallel, the key's uniform half expanded once.
                    Op::EncryptPk => time_runs(policy, |_| Ok(pk_enc.encrypt(&pt, &mut rng)?))?.1,
                    // Decryption and decoding, as OpenFHE's Decrypt does both.
                    Op::Decrypt => time_runs(policy, |_| Ok(enc.decode_complex(&decrypt(&ctx, &sk, &ct)?)?))?.1,
                    Op::Add => time_runs(policy, |_| Ok(ev.add(&ct, &ct2)?))?.1,
                    Op::MulPlain => time_runs(policy, |_| Ok(ev.mul_plain(&ct, &pt)?))?.1,
                    Op::MulRelin => time_runs(policy, |_| Ok(ev.mul_relin(&ct, &ct2)?))?.1,
                    Op::Rescale => time_runs(policy, |_| Ok(ev.rescale(&prod)?))?.1,
                    Op::Rotate => time_runs(policy, |_| Ok(ev.rotate(&ct, 1)?))?.1,
                    Op::HoistedRotate8 => time_runs(policy, |_| Ok(ev.rotate_hoisted(&ct, &steps)?))?.1,
                    Op::Conjugate => time_runs(policy, |_| Ok(ev.conjugate(&ct)?))?.1,
                };
                results.push(OpTiming {
                    op,
                    level,
                    median_ms: t.median() * 1e3,
                    min_ms: t.min() * 1e3,
                    runs: t.runs(),
                });
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
