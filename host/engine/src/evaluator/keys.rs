//! Evaluation keys as the evaluator holds them: the owner's switching keys, with their uniform
//! halves expanded once and cached (re-expanding ChaCha20 on every key switch would cost more
//! than the key switch), plus host-side generation for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hetune_core::ring::automorphism::{
    automorphism_eval_permutation, galois_element_conjugate, galois_element_for_step,
};
use hetune_core::ring::montgomery::Montgomery;
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::{Context, SecretKey, SwitchingKey, SwitchingKind};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use rayon::prelude::*;

use crate::Error;

/// The keys an evaluator may use: a relinearisation key and Galois keys by Galois element
/// (rotations `5^k mod 2N` and conjugation `2N - 1`).
#[derive(Clone, Debug, Default)]
pub struct EvaluationKeys {
    /// Relinearisation key (`s^2 -> s`).
    pub relin: Option<SwitchingKey>,
    /// Galois keys, by Galois element.
    pub galois: BTreeMap<u64, SwitchingKey>,
}

/// Which keys [`EvaluationKeys::generate`] makes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// Whether to make a relinearisation key.
    pub relinearization: bool,
    /// Rotation steps (left rotations; negative steps rotate right).
    pub rotations: Vec<i64>,
    /// Whether to make a conjugation key.
    pub conjugation: bool,
}

impl KeySpec {
    /// The default set: relinearisation, conjugation and the rotations by every power of two
    /// below the slot count, from which [`super::Evaluator::rotate`] composes any step.
    pub fn power_of_two(log_slots: u32) -> Self {
        KeySpec { relinearization: true, rotations: power_of_two_steps(log_slots), conjugation: true }
    }
}

/// Rotation steps `1, 2, 4, ..., 2^(log_slots - 1)`.
pub fn power_of_two_steps(log_slots: u32) -> Vec<i64> {
    (0..log_slots).map(|k| 1i64 << k).collect()
}

impl EvaluationKeys {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key where its kind says it belongs (replacing a key of the same kind).
    pub fn insert(&mut self, key: SwitchingKey) {
        match key.kind {
            SwitchingKind::Relinearization => self.relin = Some(key),
            SwitchingKind::Galois(g) => {
                self.galois.insert(g, key);
            }
            // Encapsulation keys belong to bootstrapping (`circuits::bootstrap::BootstrapKeys`).
            SwitchingKind::Encapsulation { .. } => {}
        }
    }

    /// Generates the keys of `spec` for `sk`, in parallel (each key from its own ChaCha20 stream
    /// seeded by `rng`). Owners normally make their keys with the core; this serves tests,
    /// benchmarks and owner-side tools on a workstation.
    pub fn generate<R: RngCore + CryptoRng>(ctx: &Context, sk: &SecretKey, spec: &KeySpec, rng: &mut R) -> Self {
        Self::generate_with_progress(ctx, sk, spec, rng, &|()| {})
    }

    /// [`EvaluationKeys::generate`], calling `tick(())` from the worker threads as each key is
    /// done ([`EvaluationKeys::count`] ticks in all).
    pub fn generate_with_progress<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        spec: &KeySpec,
        rng: &mut R,
        tick: &(dyn Fn(()) + Sync),
    ) -> Self {
        let kinds = Self::kinds(ctx, spec);
        // One ChaCha20 stream per key, seeded in order from the caller's CSPRNG.
        let seeds: Vec<[u8; 32]> = kinds
            .iter()
            .map(|_| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                s
            })
            .collect();
        let keys: Vec<SwitchingKey> = kinds
            .par_iter()
            .zip(seeds)
            .map(|(kind, seed)| {
                let mut r = ChaCha20Rng::from_seed(seed);
                let key = match *kind {
                    SwitchingKind::Galois(g) => SwitchingKey::galois(ctx, sk, g, &mut r),
                    _ => SwitchingKey::relinearization(ctx, sk, &mut r),
                };
                tick(());
                key
            })
            .collect();
        let mut out = EvaluationKeys::new();
        for k in keys {
            out.insert(k);
        }
        out
    }

    /// How many keys [`EvaluationKeys::generate`] makes for `spec`.
    pub fn count(ctx: &Context, spec: &KeySpec) -> usize {
        Self::kinds(ctx, spec).len()
    }

    fn kinds(ctx: &Context, spec: &KeySpec) -> Vec<SwitchingKind> {
        let n = ctx.n();
        let mut kinds = Vec::new();
        if spec.relinearization {
            kinds.push(SwitchingKind::Relinearization);
        }
        for &step in &spec.rotations {
            let g = galois_element_for_step(step, n);
            if g != 1 && !kinds.contains(&SwitchingKind::Galois(g)) {
                kinds.push(SwitchingKind::Galois(g));
            }
        }
        let g = galois_element_conjugate(n);
        if spec.conjugation && !kinds.contains(&SwitchingKind::Galois(g)) {
            kinds.push(SwitchingKind::Galois(g));
        }
        kinds
    }
}

/// A switching key prepared for the key inner product: both halves in Montgomery form (times
/// `2^64 mod q_i`, so that each lazy sum takes one two-multiplication Montgomery reduction), the
/// uniform halves expanded on first use, and for a Galois key the evaluation-domain permutation
/// of its automorphism.
pub(crate) struct KeyEntry {
    /// The key, its `b_j` digits converted to Montgomery form when the entry is made.
    pub(crate) key: SwitchingKey,
    a: OnceLock<Vec<RnsPoly>>,
    pub(crate) perm: Option<Vec<u32>>,
}

impl KeyEntry {
    /// Checks `key` against `ctx` and prepares it.
    pub(crate) fn new(ctx: &Context, mut key: SwitchingKey) -> Result<Self, Error> {
        let limbs = ctx.qp().len();
        if key.digits.len() != ctx.params().dnum() {
            return Err(Error::ParameterMismatch(
                "switching key has another digit count (dnum) than the parameter set",
            ));
        }
        if key.digits.iter().any(|d| d.n() != ctx.n() || d.limbs() != limbs) {
            return Err(Error::ParameterMismatch(
                "switching key polynomials do not match the parameter set (ring degree or limb count)",
            ));
        }
        let perm = match key.kind {
            SwitchingKind::Relinearization | SwitchingKind::Encapsulation { .. } => None,
            SwitchingKind::Galois(g) => {
                if g % 2 == 0 || g >= 2 * ctx.n() as u64 {
                    return Err(Error::ParameterMismatch("Galois element is not an odd number below 2N"));
                }
                Some(automorphism_eval_permutation(g, ctx.n()))
            }
        };
        let n = ctx.n();
        for d in key.digits.iter_mut() {
            if d.as_slice().par_chunks_exact(n).enumerate().any(|(i, l)| l.iter().any(|&v| v >= ctx.qp()[i].value())) {
                return Err(Error::ParameterMismatch("switching key residue out of range for its modulus"));
            }
            d.as_mut_slice().par_chunks_exact_mut(n).enumerate().for_each(|(i, limb)| to_montgomery(ctx, i, limb));
        }
        Ok(KeyEntry { key, a: OnceLock::new(), perm })
    }

    /// The uniform halves `a_j` over Q ∪ P in evaluation and Montgomery form, expanded (in
    /// parallel) on first use.
    pub(crate) fn a(&self, ctx: &Context) -> &[RnsPoly] {
        self.a.get_or_init(|| {
            let n = ctx.n();
            let limbs = ctx.qp().len();
            (0..self.key.digits.len())
                .map(|j| {
                    let mut p = RnsPoly::zero(n, limbs);
                    p.as_mut_slice().par_chunks_exact_mut(n).enumerate().for_each(|(i, limb)| {
                        self.key.a_limb(ctx, j, i, limb);
                        to_montgomery(ctx, i, limb);
                    });
                    p
                })
                .collect()
        })
    }

    /// Whether the uniform halves are already expanded.
    pub(crate) fn is_expanded(&self) -> bool {
        self.a.get().is_some()
    }
}

/// Limb `i` (of Q ∪ P) times `2^64`, in place.
fn to_montgomery(ctx: &Context, i: usize, limb: &mut [u64]) {
    let q = &ctx.qp()[i];
    let m = Montgomery::new(q);
    for v in limb.iter_mut() {
        *v = m.to_montgomery(q, *v);
    }
}
