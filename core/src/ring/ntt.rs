//! The one place that talks to the NTT backend (concrete-ntt's 64-bit prime plans).
//!
//! Evaluation order: the forward transform leaves, at position `j`, the value of the polynomial
//! at `psi^(2 * bitrev(j) + 1)`, where `psi` is the backend's primitive `2N`-th root of unity for
//! the prime. Automorphisms in the evaluation domain are permutations derived from that order
//! (see [`super::automorphism`]); a test pins the order down for every preset prime.

use alloc::vec::Vec;

use super::modulus::Modulus;
use crate::Error;

/// A negacyclic NTT for one prime and one ring degree.
pub struct NttTable {
    plan: concrete_ntt::prime64::Plan,
    modulus: Modulus,
    n: usize,
}

impl core::fmt::Debug for NttTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NttTable").field("n", &self.n).field("q", &self.modulus.value()).finish()
    }
}

impl NttTable {
    /// Builds the tables for `x^n + 1` modulo `modulus` (`modulus = 1 mod 2n`, prime).
    pub fn new(n: usize, modulus: Modulus) -> Result<Self, Error> {
        let plan = concrete_ntt::prime64::Plan::try_new(n, modulus.value())
            .ok_or(Error::InvalidParameters("modulus is not an NTT-friendly prime for this ring degree"))?;
        Ok(NttTable { plan, modulus, n })
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
        self.plan.fwd(a);
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
        self.plan.inv(a);
        self.plan.normalize(a);
    }

    /// Evaluations to `N` times the coefficients, in place (for callers that fold the 1/N into
    /// a later constant).
    #[inline]
    pub fn inverse_unnormalized(&self, a: &mut [u64]) {
        self.plan.inv(a);
    }

    /// Pointwise `acc += a * b`.
    #[inline]
    pub fn mul_acc(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        let q = &self.modulus;
        for ((c, &x), &y) in acc.iter_mut().zip(a).zip(b) {
            *c = q.add(*c, q.mul(x, y));
        }
    }

    /// Pointwise `a *= b`.
    #[inline]
    pub fn mul_assign(&self, a: &mut [u64], b: &[u64]) {
        let q = &self.modulus;
        for (x, &y) in a.iter_mut().zip(b) {
            *x = q.mul(*x, y);
        }
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
