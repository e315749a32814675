//! Evaluation keys: one key set (relinearisation, Galois keys by element, the optional
//! encapsulation pair of bootstrapping), one serialisable key request that a server computes from
//! what it will run and the owner fulfils, and the [`KeyStore`] trait through which an evaluator
//! takes its keys (in memory: [`EvaluationKeys`]; on disk: the service crate's bundle store).
//! Keys as the evaluator holds them have their uniform halves expanded once and cached
//! (re-expanding ChaCha20 on every key switch would cost more than the key switch).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use hetune_core::ring::automorphism::{
    automorphism_eval_permutation, galois_element_conjugate, galois_element_for_step,
};
use hetune_core::ring::montgomery::Montgomery;
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::keys::SecretPoly;
use hetune_core::rlwe::sampling::{fresh_seed, sparse_ternary};
use hetune_core::rlwe::{Context, EncapsulationKey, SecretKey, SecretRng, SwitchingKey, SwitchingKind};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;

/// The keys a computation needs, as a server asks the owner for them: serialisable (JSON in the
/// service), merged from every circuit the server will run (a bootstrapping configuration
/// contributes its rotations and the encapsulation pair), fulfilled by
/// [`EvaluationKeys::generate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRequest {
    /// Whether to make a relinearisation key.
    pub relinearization: bool,
    /// Rotation steps (left rotations; negative steps rotate right).
    pub rotations: Vec<i64>,
    /// Whether to make a conjugation key.
    pub conjugation: bool,
    /// Bootstrapping's encapsulation pair, with the Hamming weight of its sparse secret.
    pub encapsulation: Option<EncapsulationRequest>,
}

/// The encapsulation pair asked for by a [`KeyRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncapsulationRequest {
    /// Hamming weight of the sparse encapsulation secret.
    pub sparse_weight: usize,
}

impl KeyRequest {
    /// The default set: relinearisation, conjugation and the rotations by every power of two
    /// below the slot count, from which [`super::Evaluator::rotate`] composes any step.
    pub fn power_of_two(log_slots: u32) -> Self {
        KeyRequest {
            relinearization: true,
            rotations: power_of_two_steps(log_slots),
            conjugation: true,
            encapsulation: None,
        }
    }

    /// Adds what `other` asks for.
    pub fn merge(&mut self, other: &KeyRequest) {
        self.relinearization |= other.relinearization;
        self.conjugation |= other.conjugation;
        self.rotations.extend(&other.rotations);
        self.rotations.sort_unstable();
        self.rotations.dedup();
        if self.encapsulation.is_none() {
            self.encapsulation = other.encapsulation;
        }
    }

    /// The Galois elements asked for at ring degree `n` (rotations, then conjugation), without
    /// repeats; a step that is a multiple of `N/2` needs no key.
    pub fn galois_elements(&self, n: usize) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        let conj = self.conjugation.then(|| galois_element_conjugate(n));
        for g in self.rotations.iter().map(|&s| galois_element_for_step(s, n)).chain(conj) {
            if g != 1 && !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    /// Number of keys (switching keys and the encapsulation pair's two) the request makes.
    pub fn count(&self, n: usize) -> usize {
        usize::from(self.relinearization)
            + self.galois_elements(n).len()
            + 2 * usize::from(self.encapsulation.is_some())
    }
}

/// Rotation steps `1, 2, 4, ..., 2^(log_slots - 1)`.
pub fn power_of_two_steps(log_slots: u32) -> Vec<i64> {
    (0..log_slots).map(|k| 1i64 << k).collect()
}

/// Bootstrapping's encapsulation pair: to the sparse secret (over `q_0 p_0`, see
/// [`EncapsulationKey`]) and back to the dense one (a full switching key).
#[derive(Clone, Debug, PartialEq)]
pub struct EncapsulationKeys {
    /// Switches `s -> s'` (dense to the sparse encapsulation secret), at level 0.
    pub to_sparse: EncapsulationKey,
    /// Switches `s' -> s`.
    pub to_dense: SwitchingKey,
}

impl EncapsulationKeys {
    /// Owner side: samples a sparse secret of Hamming weight `weight` and makes both keys.
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        weight: usize,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let n = ctx.n();
        // The generator that makes the sparse secret and the keys' errors: its seed and its whole
        // state are wiped when they go out of scope (`SecretRng`), so neither can regenerate the
        // sparse secret from freed memory.
        let seed = Zeroizing::new(fresh_seed(rng));
        let mut r = SecretRng::new(&seed);
        let mut sparse = vec![0i8; n];
        sparse_ternary(&mut r, weight, &mut sparse);
        let s_sparse = SecretKey::from_coeffs(sparse);
        let sparse_ntt: SecretPoly = s_sparse.to_ntt(ctx, ctx.qp().len());
        let to_sparse = EncapsulationKey::generate(ctx, sk, &s_sparse, &mut r)?;
        let to_dense =
            SwitchingKey::generate(ctx, sk, &sparse_ntt, SwitchingKind::Encapsulation { to_sparse: false }, &mut r);
        Ok(EncapsulationKeys { to_sparse, to_dense })
    }
}

/// One evaluation-key set: a relinearisation key, Galois keys by Galois element (rotations
/// `5^k mod 2N` and conjugation `2N - 1`) and bootstrapping's encapsulation pair. It is also
/// the in-memory [`KeyStore`].
#[derive(Clone, Debug, Default)]
pub struct EvaluationKeys {
    /// Relinearisation key (`s^2 -> s`).
    pub relin: Option<SwitchingKey>,
    /// Galois keys, by Galois element.
    pub galois: BTreeMap<u64, SwitchingKey>,
    /// Bootstrapping's encapsulation pair.
    pub encapsulation: Option<EncapsulationKeys>,
}

impl EvaluationKeys {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a relinearisation or Galois key where its kind says it belongs (replacing a key of
    /// the same kind); the encapsulation pair is set as a pair ([`EvaluationKeys::encapsulation`]).
    pub fn insert(&mut self, key: SwitchingKey) -> Result<(), Error> {
        match key.kind {
            SwitchingKind::Relinearization => self.relin = Some(key),
            SwitchingKind::Galois(g) => {
                self.galois.insert(g, key);
            }
            SwitchingKind::Encapsulation { .. } => {
                return Err(Error::InvalidArgument("an encapsulation key goes in as the encapsulation pair"))
            }
        }
        Ok(())
    }

    /// Owner side: generates the keys of `request` for `sk`, in parallel (each key from its own
    /// ChaCha20 stream seeded by `rng`). Owners on a device make their keys with the core; this
    /// serves the owner's workstation, tests and benchmarks.
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        request: &KeyRequest,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Self::generate_with_progress(ctx, sk, request, rng, &|_, _| {})
    }

    /// [`EvaluationKeys::generate`], calling `progress(done, total)` (from worker threads) as
    /// keys complete; `total` is [`KeyRequest::count`].
    pub fn generate_with_progress<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        request: &KeyRequest,
        rng: &mut R,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self, Error> {
        let n = ctx.n();
        let total = request.count(n);
        let done = AtomicUsize::new(0);
        let tick = || progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        progress(0, total);
        let mut kinds: Vec<SwitchingKind> = Vec::new();
        if request.relinearization {
            kinds.push(SwitchingKind::Relinearization);
        }
        kinds.extend(request.galois_elements(n).into_iter().map(SwitchingKind::Galois));
        // One ChaCha20 stream per key, seeded in order from the caller's CSPRNG. The seeds
        // regenerate the keys' errors, so they and each generator's state are wiped after use.
        let seeds: Zeroizing<Vec<[u8; 32]>> = Zeroizing::new(kinds.iter().map(|_| fresh_seed(rng)).collect());
        let keys: Vec<SwitchingKey> = kinds
            .par_iter()
            .zip(seeds.par_iter())
            .map(|(kind, seed)| {
                let mut r = SecretRng::new(seed);
                let key = match *kind {
                    SwitchingKind::Galois(g) => SwitchingKey::galois(ctx, sk, g, &mut r),
                    _ => SwitchingKey::relinearization(ctx, sk, &mut r),
                };
                tick();
                key
            })
            .collect();
        let mut out = EvaluationKeys::new();
        for k in keys {
            out.insert(k)?;
        }
        if let Some(e) = request.encapsulation {
            out.encapsulation = Some(EncapsulationKeys::generate(ctx, sk, e.sparse_weight, rng)?);
            tick();
            tick();
        }
        Ok(out)
    }

    /// Total bytes of key material held in memory (both halves of every key, as used).
    pub fn bytes(&self, ctx: &Context) -> u64 {
        let per_key = 2 * ctx.params().dnum() as u64 * ctx.qp().len() as u64 * ctx.n() as u64 * 8;
        let switching =
            self.galois.len() as u64 + u64::from(self.relin.is_some()) + u64::from(self.encapsulation.is_some());
        // The encapsulation key to the sparse secret: two limbs of b and of a.
        switching * per_key + u64::from(self.encapsulation.is_some()) * 2 * 2 * ctx.n() as u64 * 8
    }
}

/// What a [`KeyStore`] holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyList {
    /// Whether a relinearisation key is held.
    pub relinearization: bool,
    /// The Galois elements with a key.
    pub galois: Vec<u64>,
    /// Whether the encapsulation pair is held.
    pub encapsulation: bool,
}

/// Where an evaluator takes its keys from: what is held is listed up front (cheaply), each key
/// is loaded when first used. [`EvaluationKeys`] is the in-memory store; the service crate has
/// one over a key bundle on disk, so a server need not hold gigabytes of keys in memory.
pub trait KeyStore: Send + Sync {
    /// What the store holds.
    fn contents(&self) -> KeyList;
    /// The relinearisation key.
    fn relinearization(&self) -> Result<SwitchingKey, Error>;
    /// The Galois key of element `g`.
    fn galois(&self, g: u64) -> Result<SwitchingKey, Error>;
    /// The encapsulation pair.
    fn encapsulation(&self) -> Result<EncapsulationKeys, Error>;
}

impl KeyStore for EvaluationKeys {
    fn contents(&self) -> KeyList {
        KeyList {
            relinearization: self.relin.is_some(),
            galois: self.galois.keys().copied().collect(),
            encapsulation: self.encapsulation.is_some(),
        }
    }
    fn relinearization(&self) -> Result<SwitchingKey, Error> {
        self.relin.clone().ok_or(Error::MissingRelinearizationKey)
    }
    fn galois(&self, g: u64) -> Result<SwitchingKey, Error> {
        self.galois.get(&g).cloned().ok_or(Error::MissingGaloisKey(g))
    }
    fn encapsulation(&self) -> Result<EncapsulationKeys, Error> {
        self.encapsulation.clone().ok_or(Error::MissingEncapsulationKeys)
    }
}

/// A switching key prepared for the key inner product: both halves in Montgomery form (times
/// `2^64 mod q_i`, so that each lazy sum takes one two-multiplication Montgomery reduction), the
/// uniform halves expanded on first use, and for a Galois key the evaluation-domain permutation
/// of its automorphism.
///
/// A Galois key of `phi = phi_g` (from `phi(s)` to `s`) is held as `phi^-1` of itself: a key
/// from `s` to `phi^-1(s)`. Then a rotation key-switches `c_1` itself (the key inner product
/// reads the digits contiguously, no gather through the permutation per digit and limb) and
/// applies `phi` once to the two results: `phi(c_0 + u_0) + phi(u_1) s = phi(c_0 + c_1 s)`
/// when `u_0 + u_1 phi^-1(s) = c_1 s`.
pub(crate) struct KeyEntry {
    /// The key, its `b_j` digits converted to Montgomery form when the entry is made.
    pub(crate) key: SwitchingKey,
    a: OnceLock<Vec<RnsPoly>>,
    pub(crate) perm: Option<Vec<u32>>,
    /// Whether a Galois key is held as `phi^-1` of itself (always, except in tests).
    inverse_held: bool,
}

impl KeyEntry {
    /// Checks `key` against `ctx` and prepares it.
    pub(crate) fn new(ctx: &Context, key: SwitchingKey) -> Result<Self, Error> {
        Self::prepare(ctx, key, true)
    }

    /// [`KeyEntry::new`]; with `hold_inverse` false a Galois key is held as generated (for the
    /// textbook key switch of the tests).
    pub(crate) fn prepare(ctx: &Context, mut key: SwitchingKey, hold_inverse: bool) -> Result<Self, Error> {
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
            d.as_mut_slice().par_chunks_exact_mut(n).enumerate().for_each(|(i, limb)| {
                to_montgomery(ctx, i, limb);
                if let Some(p) = perm.as_deref().filter(|_| hold_inverse) {
                    inverse_automorphism_in_place(limb, p);
                }
            });
        }
        Ok(KeyEntry { key, a: OnceLock::new(), perm, inverse_held: hold_inverse })
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
                        if let Some(p) = self.perm.as_deref().filter(|_| self.inverse_held) {
                            inverse_automorphism_in_place(limb, p);
                        }
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

/// `phi^-1` of one limb in evaluation form, in place, for the permutation `perm` of `phi`
/// (`phi(x)[j] = x[perm[j]]`, see `automorphism_eval_permutation`): afterwards
/// `phi(limb) = the limb before`.
pub(crate) fn inverse_automorphism_in_place(limb: &mut [u64], perm: &[u32]) {
    let old = limb.to_vec();
    for (&v, &p) in old.iter().zip(perm) {
        limb[p as usize] = v;
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
