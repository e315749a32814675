//! Layer 4, the evaluator: homomorphic arithmetic on CKKS ciphertexts, with exact scale and
//! level bookkeeping, hybrid key switching shared by relinearisation, rotation and conjugation,
//! hoisted rotations and rotate-and-sum helpers.
//!
//! One file per concept: [`arithmetic`] (addition, plaintexts, constants, monomials),
//! [`multiply`] (tensoring and relinearisation), [`rescale`] (rescaling, level drops, scale
//! changes), [`keyswitch`] (ModUp, key inner product, ModDown), [`rotation`] (rotations,
//! conjugation, hoisting, composed steps), [`sums`] (rotate-and-sum). Parallelism: every limb loop runs on rayon; independent ciphertexts go through
//! [`Evaluator::map_par`]. Scratch memory comes from a pool, so hot loops never allocate.

pub mod arithmetic;
mod double_hoist;
mod held_keys;
pub mod keys;
pub mod keyswitch;
pub mod multiply;
pub mod rescale;
pub mod rotation;
pub mod secret_switch;
pub mod sums;
mod workspace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::montgomery::Montgomery;
use hetune_core::ring::{BasisConverter, Modulus, Rescaler, RnsPoly};
use hetune_core::rlwe::Context;
use rayon::prelude::*;

use crate::Error;
pub(crate) use double_hoist::GiantTerms;
use held_keys::HeldKeys;
pub use held_keys::PreparedEncapsulation;
pub use keys::{
    power_of_two_steps, EncapsulationKeys, EncapsulationRequest, EvaluationKeys, KeyList, KeyRequest, KeyStore,
};
use rotation::RotationPlan;
pub use secret_switch::{EncapsulationSwitch, SecretSwitchKey};
use workspace::{Dims, WorkspacePool};

/// Two scales are taken as equal when they differ by at most this relative amount: the error
/// this lets through (a relative 2^-36 of the message) is far below CKKS noise at any scale used
/// here, while real mismatches (primes differ from 2^40 by about 2^-10 relative) are caught.
pub const SCALE_TOLERANCE: f64 = 1.0 / (1u64 << 36) as f64;

/// Homomorphic operations for one parameter set and one set of evaluation keys.
pub struct Evaluator {
    ctx: Arc<Context>,
    keys: HeldKeys,
    /// Rotation keys as `(step mod N/2, Galois element)`, ascending by step.
    rotation_keys: Vec<(usize, u64)>,
    /// ModUp converters by level and digit: from the digit's limbs (up to the level) to all of
    /// Q ∪ P (global limb indices).
    modup: Vec<Vec<BasisConverter>>,
    /// `P^-1 mod q_i` (the context's) with its Shoup companion.
    p_inv: Vec<(u64, u64)>,
    /// Montgomery constants of every modulus of Q ∪ P (the keys are kept in Montgomery form).
    mont: Vec<Montgomery>,
    /// Rescalers by level (`None` at level 0).
    rescalers: Vec<Option<Rescaler>>,
    /// `psi_i^(N/2)`: the residue on limb `i` of `X^(N/2)` at the first evaluation point; the
    /// monomial that multiplies every slot by the imaginary unit.
    imag: Vec<u64>,
    pool: WorkspacePool,
    plans: Mutex<HashMap<u32, Arc<RotationPlan>>>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("params", self.ctx.params())
            .field("relin", &self.keys.has_relin())
            .field("galois", &self.keys.galois_elements().collect::<Vec<_>>())
            .field("encapsulation", &self.keys.has_encapsulation())
            .finish()
    }
}

impl Evaluator {
    /// Binds `keys` to `ctx`, checking and preparing every key now.
    pub fn new(ctx: Arc<Context>, keys: EvaluationKeys) -> Result<Self, Error> {
        let keys = HeldKeys::eager(&ctx, keys)?;
        Self::with_keys(ctx, keys)
    }

    /// Binds the keys of `store` to `ctx`; each key is loaded, checked and prepared when first
    /// used, and dropped by [`Evaluator::release_keys`].
    pub fn with_store(ctx: Arc<Context>, store: Arc<dyn KeyStore>) -> Result<Self, Error> {
        Self::with_keys(ctx, HeldKeys::on_demand(store))
    }

    /// Like [`Evaluator::with_store`], holding at most about `max_key_bytes` of switching keys in
    /// memory: when a load would exceed it, the least recently used keys not in use are dropped
    /// and loaded again from the store when next needed (each reload reads, checks and prepares
    /// the key again: the budget trades memory for that time). At least one key is held, and
    /// keys a hoisted rotation is using are never dropped under it.
    pub fn with_store_within(ctx: Arc<Context>, store: Arc<dyn KeyStore>, max_key_bytes: usize) -> Result<Self, Error> {
        let keys = HeldKeys::on_demand_within(&ctx, store, max_key_bytes);
        Self::with_keys(ctx, keys)
    }

    /// For an evaluator made by [`Evaluator::with_store_within`]: `(switching keys in memory,
    /// their bytes, keys loaded again after an eviction or a release)`.
    pub fn key_budget_use(&self) -> Option<(usize, usize, u64)> {
        self.keys.budget_use()
    }

    fn with_keys(ctx: Arc<Context>, keys: HeldKeys) -> Result<Self, Error> {
        let n = ctx.n();
        let q_len = ctx.q_len();
        let alpha = ctx.params().alpha();
        let dnum = ctx.params().dnum();
        let rotation_keys = rotation::steps_of_keys(keys.galois_elements(), n);

        let qp = ctx.qp();
        let modup = (0..q_len)
            .map(|level| {
                (0..=level / alpha)
                    .map(|j| {
                        let r = ctx.digit_range(j);
                        BasisConverter::new(&qp[r.start..r.end.min(level + 1)], qp)
                    })
                    .collect()
            })
            .collect();
        let p_inv = (0..q_len)
            .map(|i| {
                let inv = ctx.p_inv_mod_q(i);
                (inv, ctx.q()[i].shoup(inv))
            })
            .collect();
        let mont = ctx.qp().iter().map(Montgomery::new).collect();
        let rescalers = (0..q_len).map(|l| (l > 0).then(|| Rescaler::new(&ctx.q()[..=l]))).collect();
        let imag = (0..q_len)
            .into_par_iter()
            .map(|i| {
                let mut x = vec![0u64; n];
                x[n / 2] = 1;
                ctx.ntt()[i].forward(&mut x);
                x[0]
            })
            .collect();
        let pool = WorkspacePool::new(Dims { n, q_len, p_len: alpha, dnum });
        debug_assert_eq!(alpha, ctx.p().len());
        Ok(Evaluator {
            ctx,
            keys,
            rotation_keys,
            modup,
            p_inv,
            mont,
            rescalers,
            imag,
            pool,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The context.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Whether a relinearisation key is present.
    pub fn has_relinearization_key(&self) -> bool {
        self.keys.has_relin()
    }

    /// Whether a conjugation key is present.
    pub fn has_conjugation_key(&self) -> bool {
        self.keys.has_galois(hetune_core::ring::automorphism::galois_element_conjugate(self.ctx.n()))
    }

    /// Rotation steps (modulo N/2) with a key of their own, ascending.
    pub fn rotation_key_steps(&self) -> Vec<usize> {
        self.rotation_keys.iter().map(|&(s, _)| s).collect()
    }

    /// Loads every key and expands its uniform half now (otherwise each is loaded and expanded
    /// on first use).
    pub fn expand_keys(&self) -> Result<(), Error> {
        if self.keys.has_relin() {
            self.keys.relin(&self.ctx)?.a(&self.ctx);
        }
        for g in self.keys.galois_elements() {
            if let Some(k) = self.keys.galois(&self.ctx, g) {
                k?.a(&self.ctx);
            }
        }
        if self.keys.has_encapsulation() {
            self.keys.encapsulation(&self.ctx)?;
        }
        Ok(())
    }

    /// Number of switching keys in memory with their uniform half expanded.
    pub fn expanded_key_count(&self) -> usize {
        self.keys.loaded().iter().filter(|k| k.is_expanded()).count()
    }

    /// Frees pooled scratch memory (it is allocated again on demand).
    pub fn release_scratch(&self) {
        self.pool.clear();
    }

    /// Applies `f` to independent items in parallel (ciphertexts, pairs of them), in order.
    pub fn map_par<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&Self, &T) -> Result<R, Error> + Sync + Send,
    ) -> Result<Vec<R>, Error> {
        items.par_iter().map(|x| f(self, x)).collect()
    }

    /// Checks that `ct` belongs to this parameter set.
    pub fn check(&self, ct: &Ciphertext) -> Result<(), Error> {
        let p = self.ctx.params();
        if ct.level > p.max_level() {
            return Err(Error::ParameterMismatch("ciphertext level above the top of this parameter set"));
        }
        if ct.c.len() < 2 {
            return Err(Error::InvalidArgument("a ciphertext needs at least two polynomials"));
        }
        if ct.c.iter().any(|c| c.n() != self.ctx.n() || c.limbs() != ct.level + 1) {
            return Err(Error::ParameterMismatch(
                "ciphertext polynomials do not match this parameter set (ring degree or limb count)",
            ));
        }
        if ct.log_slots > p.log_n() - 1 {
            return Err(Error::ParameterMismatch("ciphertext packs more slots than N/2"));
        }
        if !(ct.scale.is_finite() && ct.scale > 0.0) {
            return Err(Error::InvalidArgument("ciphertext scale must be positive and finite"));
        }
        Ok(())
    }

    /// Ring degree.
    #[inline]
    pub(crate) fn n(&self) -> usize {
        self.ctx.n()
    }

    /// The Q moduli.
    #[inline]
    pub(crate) fn q(&self) -> &[Modulus] {
        self.ctx.q()
    }

    /// log2 of `q_0 ... q_level`.
    pub fn log2_modulus(&self, level: usize) -> f64 {
        self.q()[..=level].iter().map(|q| (q.value() as f64).log2()).sum()
    }

    /// Errors if a ciphertext at `level` cannot hold a result at `scale`.
    pub(crate) fn check_scale_fits(&self, scale: f64, level: usize) -> Result<(), Error> {
        let log2_scale = scale.log2();
        let log2_modulus = self.log2_modulus(level);
        // One bit for the sign and one for a message of magnitude up to 1.
        if !(log2_scale.is_finite()) || log2_scale + 2.0 > log2_modulus {
            return Err(Error::ScaleOverflow { log2_scale, log2_modulus });
        }
        Ok(())
    }
}

/// Runs `f(limb index, limb)` over the first `limbs` limbs of `p`, in parallel.
#[inline]
pub(crate) fn par_limbs(p: &mut RnsPoly, limbs: usize, f: impl Fn(usize, &mut [u64]) + Sync + Send) {
    let n = p.n();
    p.as_mut_slice()[..limbs * n].par_chunks_exact_mut(n).enumerate().for_each(|(i, l)| f(i, l));
}

/// A new polynomial of `limbs` limbs, each written by `f(limb index, limb)` in parallel (one pass
/// into the result: no copy of an operand first).
pub(crate) fn par_new_poly(n: usize, limbs: usize, f: impl Fn(usize, &mut [u64]) + Sync + Send) -> RnsPoly {
    let mut p = pooled_zero_poly(n, limbs);
    par_limbs(&mut p, limbs, f);
    p
}

/// A zero polynomial of `limbs` limbs. On several threads the zero fill is shared out (a serial
/// fill of a result cost about as much as the arithmetic: 1.1 ms for 27 limbs against 0.47 ms on
/// two threads); on one, the allocator's zeroed memory is faster.
pub(crate) fn pooled_zero_poly(n: usize, limbs: usize) -> RnsPoly {
    if rayon::current_num_threads() > 1 {
        let mut data = Vec::with_capacity(n * limbs);
        data.par_extend(rayon::iter::repeat_n(0u64, n * limbs));
        RnsPoly::from_vec(n, data)
    } else {
        RnsPoly::zero(n, limbs)
    }
}

/// A ciphertext of `polys` zero polynomials at `level`.
pub(crate) fn zero_ciphertext(n: usize, polys: usize, level: usize, scale: f64, log_slots: u32) -> Ciphertext {
    Ciphertext { c: (0..polys).map(|_| RnsPoly::zero(n, level + 1)).collect(), level, scale, log_slots }
}
