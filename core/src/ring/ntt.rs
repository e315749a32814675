//! The one place that talks to the NTT backends: concrete-ntt's 64-bit prime plans, the portable
//! `no_std` backend of devices, and with the `simd` feature (hosts) tfhe-ntt's plans, which run
//! AVX-512 (IFMA for primes below 2^51) when the processor has it and are bit-identical to the
//! portable ones (a test checks every preset's primes). `HETUNE_FORCE_SCALAR=1` keeps a host on
//! the portable backend (see [`super::simd`]).
//!
//! Evaluation order: the forward transform leaves, at position `j`, the value of the polynomial
//! at `psi^(2 * bitrev(j) + 1)`, where `psi` is the backend's primitive `2N`-th root of unity for
//! the prime. Automorphisms in the evaluation domain are permutations derived from that order
//! (see [`super::automorphism`]); a test pins the order down for every preset prime.

use alloc::vec::Vec;

use super::modulus::Modulus;
use crate::Error;

/// The transform's implementation; both give the same outputs for the same prime and degree.
enum Plan {
    /// concrete-ntt: `no_std`, the devices' backend and the host's forced fallback.
    Portable(concrete_ntt::prime64::Plan),
    /// tfhe-ntt: AVX-512 and IFMA kernels chosen at run time (hosts).
    #[cfg(feature = "simd")]
    Fast(tfhe_ntt::prime64::Plan),
}

/// A negacyclic NTT for one prime and one ring degree.
pub struct NttTable {
    plan: Plan,
    modulus: Modulus,
    n: usize,
}

impl core::fmt::Debug for NttTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NttTable")
            .field("n", &self.n)
            .field("q", &self.modulus.value())
            .field("fast", &self.is_fast())
            .finish()
    }
}

/// The error of a prime without a `2n`-th root of unity (or a degree the backends do not take).
const NOT_NTT_FRIENDLY: Error = Error::InvalidParameters("modulus is not an NTT-friendly prime for this ring degree");

impl NttTable {
    /// Builds the tables for `x^n + 1` modulo `modulus` (`modulus = 1 mod 2n`, prime), on the
    /// fast backend when the crate has it and the fallback is not forced.
    pub fn new(n: usize, modulus: Modulus) -> Result<Self, Error> {
        #[cfg(feature = "simd")]
        if !super::simd::force_scalar() {
            let plan = tfhe_ntt::prime64::Plan::try_new(n, modulus.value()).ok_or(NOT_NTT_FRIENDLY)?;
            return Ok(NttTable { plan: Plan::Fast(plan), modulus, n });
        }
        Self::new_portable(n, modulus)
    }

    /// The tables on the portable backend (concrete-ntt), whatever the features: the devices'
    /// transform, and the reference the fast backend is checked against.
    pub fn new_portable(n: usize, modulus: Modulus) -> Result<Self, Error> {
        let plan = concrete_ntt::prime64::Plan::try_new(n, modulus.value()).ok_or(NOT_NTT_FRIENDLY)?;
        Ok(NttTable { plan: Plan::Portable(plan), modulus, n })
    }

    /// Whether this table runs on the fast (tfhe-ntt) backend.
    pub fn is_fast(&self) -> bool {
        !matches!(self.plan, Plan::Portable(_))
    }

    /// Ring degree.
    #[inline]
    pub fn n(&self) -> usize {
        self.n
    }

    /// The prime.
    #[inline]
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// Coefficients (canonical residues) to evaluations, in place.
    #[inline]
    pub fn forward(&self, a: &mut [u64]) {
        match &self.plan {
            Plan::Portable(p) => p.fwd(a),
            #[cfg(feature = "simd")]
            Plan::Fast(p) => p.fwd(a),
        }
    }

    /// Residues of small signed coefficients (a secret, an error), moved to evaluation form in
    /// `out`; constant time in the coefficients' values.
    pub fn forward_small(&self, coeffs: &[i8], out: &mut [u64]) {
        for (o, &c) in out.iter_mut().zip(coeffs) {
            *o = self.modulus.from_small_ct(c as i64);
        }
        self.forward(out);
    }

    /// Evaluations to coefficients, in place, including the division by N.
    #[inline]
    pub fn inverse(&self, a: &mut [u64]) {
        match &self.plan {
            Plan::Portable(p) => {
                p.inv(a);
                p.normalize(a);
            }
            #[cfg(feature = "simd")]
            Plan::Fast(p) => {
                p.inv(a);
                p.normalize(a);
            }
        }
    }

    /// Evaluations to `N` times the coefficients, in place (for callers that fold the 1/N into
    /// a later constant).
    #[inline]
    pub fn inverse_unnormalized(&self, a: &mut [u64]) {
        match &self.plan {
            Plan::Portable(p) => p.inv(a),
            #[cfg(feature = "simd")]
            Plan::Fast(p) => p.inv(a),
        }
    }

    /// Pointwise `acc += a * b`.
    #[inline]
    pub fn mul_acc(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        super::elementwise::mul_acc(&self.modulus, acc, a, b);
    }

    /// Pointwise `a *= b`.
    #[inline]
    pub fn mul_assign(&self, a: &mut [u64], b: &[u64]) {
        super::elementwise::mul_assign(&self.modulus, a, b);
    }
}

/// Bit reversal of `j` over `bits` bits.
#[inline(always)]
pub fn bit_reverse(j: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        j.reverse_bits() >> (usize::BITS - bits)
    }
}

/// Exponent `e` such that evaluation slot `j` holds `a(psi^e)` (see the module docs).
#[inline(always)]
pub fn eval_exponent(j: usize, log_n: u32) -> usize {
    2 * bit_reverse(j, log_n) + 1
}

/// The residues of `a` evaluated at every `psi^(2k+1)` in the backend order; used by tests to
/// check the documented order against the backend.
pub fn naive_evaluations(table: &NttTable, coeffs: &[u64], psi: u64) -> Vec<u64> {
    let q = table.modulus();
    let n = table.n();
    let log_n = n.trailing_zeros();
    (0..n)
        .map(|j| {
            let x = q.pow(psi, eval_exponent(j, log_n) as u64);
            let mut acc = 0u64;
            let mut xp = 1u64;
            for &c in coeffs {
                acc = q.add(acc, q.mul(c, xp));
                xp = q.mul(xp, x);
            }
            acc
        })
        .collect()
}
