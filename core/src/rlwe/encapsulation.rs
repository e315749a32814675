//! The key that encapsulates a level-0 ciphertext into a sparse secret for bootstrapping
//! (sparse-secret encapsulation: Bossuat, Troncoso-Pastoriza, Hubaux, "Bootstrapping for
//! Approximate Homomorphic Encryption with Negligible Failure-Probability by Using Sparse-Secret
//! Encapsulation", ACNS 2022, ePrint 2022/024, Section 4).
//!
//! The key is an RLWE sample under the *sparse* secret `s'` (Hamming weight
//! [`ENCAPSULATION_WEIGHT`]), so its security is that of a sparse-secret instance, and it carries
//! `p_0 * s` (the owner's dense secret): whoever solves that instance reads the owner's secret.
//! It is therefore generated over the smallest modulus the switch needs, `q_0 * p_0` (the first
//! ciphertext prime and one special prime, 121 bits at `n16-boot`), never over Q ∪ P (1,739 bits,
//! where a weight-32 secret is far from 128-bit security). The switch runs at level 0 with `p_0`
//! as its only special prime ([`EncapsulationKey`] documents the arithmetic).
//!
//! Security of the instance at `n16-boot` (N = 2^16, h = 32, sigma = 3.2, log2(q_0 p_0) = 121):
//! the HomomorphicEncryption.org table gives 128 bits for a dense ternary secret up to 1,747 bits
//! at N = 2^16; ePrint 2022/024 (Section 5) uses exactly this shape of key (q_0 and one special
//! prime) for its 128-bit parameter sets. The guessing attacks that exploit sparsity must pay for
//! their guesses: guessing that all 32 non-zero coefficients avoid a fixed (1 - 2^-k) fraction of
//! positions succeeds with probability 2^(-32k) and leaves an instance of dimension N / 2^k at the
//! same 121-bit modulus. For k = 1, 2, 3 (success 2^-32, 2^-64, 2^-96) the remaining dimensions
//! 2^15, 2^14, 2^13 are still 128-bit secure at up to 881, 438 and 218 bits, far above 121; k = 4
//! already costs 2^-128. The key reader ([`crate::wire`]) refuses an encapsulation key over any
//! larger modulus, and key generation refuses any weight other than [`ENCAPSULATION_WEIGHT`].

use alloc::vec;
use zeroize::Zeroize;

use super::context::Context;
use super::keys::{rlwe_limb, SecretKey};
use super::sampling::{fresh_seed, stream_id, UniformExpander};
use crate::ring::RnsPoly;
use crate::Error;
use rand_core::{CryptoRng, RngCore};

/// The one Hamming weight of the encapsulation secret that the security statement above covers.
/// Smaller weights are brute-forced (weight <= 4) or publish `p_0 s` almost in the clear (0).
pub const ENCAPSULATION_WEIGHT: usize = 32;

/// Indices into `ctx.qp()` of the encapsulation key's two moduli: `q_0` and the first special
/// prime `p_0`.
pub fn encapsulation_moduli(ctx: &Context) -> [usize; 2] {
    [0, ctx.q_len()]
}

/// Switches a level-0 ciphertext from the owner's secret `s` to the sparse secret `s'`:
/// `b = -a s' + e + p_0 s` modulo `q_0` and `-a s' + e` modulo `p_0` (both limbs in evaluation
/// form), `a` expanded from `seed` on the streams of its two moduli.
///
/// The switch of `(c_0, c_1)` modulo `q_0`: lift `c_1` (centered) to `p_0`, form
/// `(c_1 b, c_1 a)` modulo `q_0 p_0`, and divide by `p_0` with rounding (ModDown). The result
/// decrypts under `s'` to `c_0 + c_1 s` plus `(c_1 e + rounding) / p_0`, a few hundred at
/// `n16-boot` (`q_0 < p_0`), against a message near 2^56.
#[derive(Clone, Debug, PartialEq)]
pub struct EncapsulationKey {
    /// Seed of the uniform half.
    pub seed: [u8; 32],
    /// `b` over `(q_0, p_0)`.
    pub b: RnsPoly,
}

impl EncapsulationKey {
    /// Generates the key from the owner's secret `sk` to the sparse secret `sparse` (which must
    /// have Hamming weight [`ENCAPSULATION_WEIGHT`]).
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        sparse: &SecretKey,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let n = ctx.n();
        if sk.coeffs().len() != n || sparse.coeffs().len() != n {
            return Err(Error::InvalidArgument("secret of another ring degree"));
        }
        let weight = sparse.coeffs().iter().filter(|&&c| c != 0).count();
        if weight != ENCAPSULATION_WEIGHT {
            return Err(Error::InvalidArgument("the encapsulation secret must have Hamming weight 32"));
        }
        if ctx.p().is_empty() {
            return Err(Error::InvalidArgument("encapsulation needs a special prime"));
        }
        let seed = fresh_seed(rng);
        let mut e = vec![0i8; n];
        ctx.gaussian().fill(rng, &mut e);
        let mut s_sparse = vec![0u64; n];
        let mut gadget = vec![0u64; n];
        let [iq, ip] = encapsulation_moduli(ctx);
        let mut b = RnsPoly::zero(n, 2);
        for (k, i) in [iq, ip].into_iter().enumerate() {
            let (q, t) = (&ctx.qp()[i], &ctx.ntt()[i]);
            sparse.ntt_limb(t, &mut s_sparse);
            let extra = if i == iq {
                // p_0 * s modulo q_0; modulo p_0 it vanishes.
                sk.ntt_limb(t, &mut gadget);
                let pm = q.reduce(ctx.qp()[ip].value());
                for g in gadget.iter_mut() {
                    *g = q.mul(*g, pm);
                }
                Some(&gadget[..])
            } else {
                None
            };
            rlwe_limb(q, t, &seed, stream_id(0, i), &s_sparse, &e, extra, b.limb_mut(k));
        }
        e.zeroize();
        s_sparse.zeroize();
        gadget.zeroize();
        Ok(EncapsulationKey { seed, b })
    }

    /// Limb `k` (0: `q_0`, 1: `p_0`) of the uniform half `a`.
    pub fn a_limb(&self, ctx: &Context, k: usize, out: &mut [u64]) {
        let i = encapsulation_moduli(ctx)[k.min(1)];
        UniformExpander::new(&self.seed, stream_id(0, i), &ctx.qp()[i]).fill(out);
    }

    /// log2 of the key's modulus `q_0 p_0`.
    pub fn log2_modulus(ctx: &Context) -> f64 {
        encapsulation_moduli(ctx).iter().map(|&i| libm::log2(ctx.qp()[i].value() as f64)).sum()
    }
}
