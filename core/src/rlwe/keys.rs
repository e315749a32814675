//! Keys: the secret key (wiped on drop, never serialisable for the server), the public key, and
//! hybrid key-switching keys (relinearisation, rotations, conjugation). Every public key and
//! switching key draws its uniform half from a 32-byte seed, so its wire form carries the seed.

use alloc::vec;
use alloc::vec::Vec;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::context::Context;
use super::params::SecretDistribution;
use super::sampling::{fresh_seed, sparse_ternary, stream_id, ternary, UniformExpander};
use super::secret_rng::{SecretRng, PURPOSE_SECRET_KEY};
use crate::ring::automorphism::automorphism_small;
use crate::ring::{Modulus, NttTable, RnsPoly};

/// The owner's secret key: small coefficients in {-1, 0, 1}. Not `Clone`, not `Serialize`;
/// the only way out is the owner-local export in [`crate::wire`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    coeffs: Vec<i8>,
}

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretKey {{ n: {}, .. }}", self.coeffs.len())
    }
}

impl SecretKey {
    /// Samples a secret of the set's distribution from the caller's CSPRNG.
    pub fn generate<R: RngCore + CryptoRng>(params: &crate::Parameters, rng: &mut R) -> Self {
        let mut coeffs = vec![0i8; params.n()];
        match params.secret() {
            SecretDistribution::Ternary => ternary(rng, &mut coeffs),
            SecretDistribution::SparseTernary { hamming_weight } => {
                sparse_ternary(rng, hamming_weight as usize, &mut coeffs)
            }
        }
        SecretKey { coeffs }
    }

    /// Derives the secret deterministically from a provisioned 32-byte seed (devices): through
    /// the KDF of (seed, parameter fingerprint, "secret key") into a generator wiped on drop, so
    /// one seed gives unrelated secrets for different parameter sets.
    pub fn from_seed(params: &crate::Parameters, seed: &[u8; 32]) -> Self {
        let mut rng = SecretRng::derive(seed, &params.fingerprint(), PURPOSE_SECRET_KEY);
        Self::generate(params, &mut rng)
    }

    /// Wraps coefficients read back from the owner's local file.
    pub fn from_coeffs(coeffs: Vec<i8>) -> Self {
        SecretKey { coeffs }
    }

    /// The coefficients (secret: keep on the owner's side).
    pub fn coeffs(&self) -> &[i8] {
        &self.coeffs
    }

    /// `s mod q` in evaluation form, written into `out` (one limb).
    pub fn ntt_limb(&self, table: &NttTable, out: &mut [u64]) {
        table.forward_small(&self.coeffs, out);
    }

    /// `s` in evaluation form on the first `limbs` moduli of `ctx.qp()`.
    pub fn to_ntt(&self, ctx: &Context, limbs: usize) -> SecretPoly {
        let n = ctx.n();
        let mut p = RnsPoly::zero(n, limbs);
        for (i, limb) in p.limbs_iter_mut().enumerate() {
            self.ntt_limb(&ctx.ntt()[i], limb);
        }
        SecretPoly(p)
    }
}

/// A polynomial derived from the secret key (its NTT form, say), wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretPoly(RnsPoly);

impl SecretPoly {
    /// The polynomial.
    pub fn poly(&self) -> &RnsPoly {
        &self.0
    }
}

/// Public encryption key `(b, a) = (-a s + e, a)` over Q ∪ P in evaluation form, `a` from
/// `seed`. Encryption works over `Q_l` and the first special prime `p_0` and divides by `p_0`
/// ([`crate::ckks::encryptor::divide_by_p0`]), so a public-key ciphertext carries almost no
/// more noise than a secret-key one.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    /// Seed of the uniform half.
    pub seed: [u8; 32],
    /// `b = -a s + e`.
    pub b: RnsPoly,
}

impl PublicKey {
    /// Generates a public key for `sk`.
    pub fn generate<R: RngCore + CryptoRng>(ctx: &Context, sk: &SecretKey, rng: &mut R) -> Self {
        let n = ctx.n();
        let seed = fresh_seed(rng);
        let mut e = vec![0i8; n];
        ctx.gaussian().fill(rng, &mut e);
        let mut b = RnsPoly::zero(n, ctx.qp().len());
        let mut s = vec![0u64; n];
        for i in 0..ctx.qp().len() {
            let (q, t) = (&ctx.qp()[i], &ctx.ntt()[i]);
            sk.ntt_limb(t, &mut s);
            rlwe_limb(q, t, &seed, stream_id(0, i), &s, &e, None, b.limb_mut(i));
        }
        s.zeroize();
        e.zeroize();
        PublicKey { seed, b }
    }

    /// Limb `i` (index into Q ∪ P) of the uniform half `a`.
    pub fn a_limb(&self, ctx: &Context, i: usize, out: &mut [u64]) {
        UniformExpander::new(&self.seed, stream_id(0, i), &ctx.qp()[i]).fill(out);
    }
}

/// One limb of an RLWE sample: `out = -a*s + e (+ extra)` in evaluation form, with `a` expanded
/// from `(seed, stream)`, `s` the secret limb in evaluation form, `e` small coefficients and
/// `extra` an optional evaluation-form term. Shared by public keys, switching keys and
/// secret-key encryption.
#[allow(clippy::too_many_arguments)]
pub fn rlwe_limb(
    q: &Modulus,
    table: &NttTable,
    seed: &[u8; 32],
    stream: u64,
    s: &[u64],
    e: &[i8],
    extra: Option<&[u64]>,
    out: &mut [u64],
) {
    table.forward_small(e, out);
    let mut a = UniformExpander::new(seed, stream, q);
    // Constant-time arithmetic: s, e and (for keys) the extra term are secret.
    for (o, &sv) in out.iter_mut().zip(s) {
        *o = q.sub_ct(*o, q.mul_ct(a.next_residue(), sv));
    }
    if let Some(x) = extra {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = q.add_ct(*o, v);
        }
    }
}

/// What a switching key switches from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchingKind {
    /// From `s^2` to `s`: relinearisation.
    Relinearization,
    /// From `phi_g(s)` to `s`: rotation (g = 5^k) or conjugation (g = 2N - 1).
    Galois(u64),
    /// Sparse-secret encapsulation for bootstrapping: from the secret to a sparse one
    /// (`to_sparse`) or back.
    Encapsulation {
        /// Direction: dense to sparse when true.
        to_sparse: bool,
    },
}

/// A hybrid key-switching key (Han-Ki, "Better Bootstrapping for Approximate Homomorphic
/// Encryption", CT-RSA 2020): for each digit j, `b_j = -a_j s + e_j + P * [Q_j-gadget] * s'` over
/// Q ∪ P in evaluation form, with `a_j` expanded from `seed` on stream `(j, limb)`.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchingKey {
    /// What it switches from.
    pub kind: SwitchingKind,
    /// Seed of the uniform halves.
    pub seed: [u8; 32],
    /// `b_j` for each digit, each over all of Q ∪ P.
    pub digits: Vec<RnsPoly>,
}

impl SwitchingKey {
    /// Generates a key switching `s_from` (given in evaluation form over Q ∪ P) to `sk`.
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        s_from: &SecretPoly,
        kind: SwitchingKind,
        rng: &mut R,
    ) -> Self {
        let n = ctx.n();
        let limbs = ctx.qp().len();
        let seed = fresh_seed(rng);
        let s = sk.to_ntt(ctx, limbs);
        let mut e = vec![0i8; n];
        let mut gadget = vec![0u64; n];
        let digits = (0..ctx.params().dnum())
            .map(|j| {
                ctx.gaussian().fill(rng, &mut e);
                let mut b = RnsPoly::zero(n, limbs);
                let range = ctx.digit_range(j);
                for i in 0..limbs {
                    let (q, t) = (&ctx.qp()[i], &ctx.ntt()[i]);
                    let extra = if range.contains(&i) {
                        let pm = ctx.p_mod_q(i);
                        for (g, &v) in gadget.iter_mut().zip(s_from.poly().limb(i)) {
                            *g = q.mul_ct(v, pm);
                        }
                        Some(&gadget[..])
                    } else {
                        None
                    };
                    rlwe_limb(q, t, &seed, stream_id(j, i), s.poly().limb(i), &e, extra, b.limb_mut(i));
                }
                b
            })
            .collect();
        e.zeroize();
        gadget.zeroize();
        SwitchingKey { kind, seed, digits }
    }

    /// Limb `i` (index into Q ∪ P) of the uniform half of digit `j`.
    pub fn a_limb(&self, ctx: &Context, j: usize, i: usize, out: &mut [u64]) {
        UniformExpander::new(&self.seed, stream_id(j, i), &ctx.qp()[i]).fill(out);
    }

    /// The relinearisation key of `sk`.
    pub fn relinearization<R: RngCore + CryptoRng>(ctx: &Context, sk: &SecretKey, rng: &mut R) -> Self {
        let mut s2 = sk.to_ntt(ctx, ctx.qp().len());
        for (i, limb) in s2.0.limbs_iter_mut().enumerate() {
            let q = &ctx.qp()[i];
            for v in limb.iter_mut() {
                *v = q.mul_ct(*v, *v);
            }
        }
        Self::generate(ctx, sk, &s2, SwitchingKind::Relinearization, rng)
    }

    /// The Galois key for `X -> X^g` (see [`crate::ring::automorphism`] for rotation steps).
    pub fn galois<R: RngCore + CryptoRng>(ctx: &Context, sk: &SecretKey, g: u64, rng: &mut R) -> Self {
        let mut rotated = vec![0i8; ctx.n()];
        automorphism_small(sk.coeffs(), g, &mut rotated);
        let sg = SecretKey::from_coeffs(rotated);
        let s_from = sg.to_ntt(ctx, ctx.qp().len());
        Self::generate(ctx, sk, &s_from, SwitchingKind::Galois(g), rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Parameters, Security};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn one_seed_gives_unrelated_secrets_for_different_parameter_sets() {
        let seed = [9u8; 32];
        let small = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let big = Parameters::preset("n16-boot", Security::Require128Bits).unwrap();
        let a = SecretKey::from_seed(&small, &seed);
        let b = SecretKey::from_seed(&big, &seed);
        assert_eq!(SecretKey::from_seed(&small, &seed).coeffs(), a.coeffs());
        // Keying ChaCha20 with the raw seed made the small secret the prefix of the big one.
        let raw_small = SecretKey::generate(&small, &mut ChaCha20Rng::from_seed(seed));
        let raw_big = SecretKey::generate(&big, &mut ChaCha20Rng::from_seed(seed));
        assert_eq!(raw_small.coeffs(), &raw_big.coeffs()[..small.n()]);
        // Now the two agree where independent uniform ternary vectors do: about a third of the
        // 4096 places (standard deviation 30).
        let same = a.coeffs().iter().zip(b.coeffs()).filter(|(x, y)| x == y).count();
        assert!((1100..1650).contains(&same), "{same}");
        assert_ne!(a.coeffs(), raw_small.coeffs());
    }
}
