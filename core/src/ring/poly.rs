//! RNS polynomials: `limbs` residue vectors of length `n`, stored back to back.

use alloc::vec;
use alloc::vec::Vec;
use zeroize::Zeroize;

use super::elementwise;
use super::modulus::Modulus;
use super::ntt::NttTable;

/// A polynomial of `Z_Q[X]/(X^n + 1)` in RNS form. The moduli live in the caller's context; limb
/// `i` is reduced modulo the context's `i`-th modulus of whatever basis the caller uses.
#[derive(Clone, PartialEq, Eq, Zeroize)]
pub struct RnsPoly {
    n: usize,
    data: Vec<u64>,
}

impl core::fmt::Debug for RnsPoly {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RnsPoly {{ n: {}, limbs: {} }}", self.n, self.limbs())
    }
}

impl RnsPoly {
    /// The zero polynomial with `limbs` limbs.
    pub fn zero(n: usize, limbs: usize) -> Self {
        RnsPoly { n, data: vec![0; n * limbs] }
    }

    /// Wraps `data` (`limbs * n` words).
    pub fn from_vec(n: usize, data: Vec<u64>) -> Self {
        debug_assert_eq!(data.len() % n, 0);
        RnsPoly { n, data }
    }

    /// Ring degree.
    #[inline]
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of limbs.
    #[inline]
    pub fn limbs(&self) -> usize {
        self.data.len() / self.n
    }

    /// Limb `i`.
    #[inline]
    pub fn limb(&self, i: usize) -> &[u64] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// Limb `i`, mutable.
    #[inline]
    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        &mut self.data[i * self.n..(i + 1) * self.n]
    }

    /// All limbs.
    #[inline]
    pub fn as_slice(&self) -> &[u64] {
        &self.data
    }

    /// All limbs, mutable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Iterator over limbs.
    pub fn limbs_iter(&self) -> core::slice::ChunksExact<'_, u64> {
        self.data.chunks_exact(self.n)
    }

    /// Mutable iterator over limbs.
    pub fn limbs_iter_mut(&mut self) -> core::slice::ChunksExactMut<'_, u64> {
        self.data.chunks_exact_mut(self.n)
    }

    /// Drops limbs beyond the first `limbs`.
    pub fn truncate(&mut self, limbs: usize) {
        self.data.truncate(limbs * self.n);
    }

    /// Consumes the polynomial, returning its words.
    pub fn into_vec(self) -> Vec<u64> {
        self.data
    }

    /// The residues of a small signed polynomial on the given moduli.
    pub fn from_small(coeffs: &[i8], moduli: &[Modulus]) -> Self {
        let n = coeffs.len();
        let mut p = RnsPoly::zero(n, moduli.len());
        for (limb, q) in p.limbs_iter_mut().zip(moduli) {
            for (o, &c) in limb.iter_mut().zip(coeffs) {
                *o = q.from_small_ct(c as i64);
            }
        }
        p
    }

    /// Forward NTT of every limb with the matching tables.
    pub fn ntt(&mut self, tables: &[NttTable]) {
        for (limb, t) in self.limbs_iter_mut().zip(tables) {
            t.forward(limb);
        }
    }

    /// Inverse NTT of every limb with the matching tables.
    pub fn intt(&mut self, tables: &[NttTable]) {
        for (limb, t) in self.limbs_iter_mut().zip(tables) {
            t.inverse(limb);
        }
    }

    /// `self += other` limb by limb.
    pub fn add_assign(&mut self, other: &RnsPoly, moduli: &[Modulus]) {
        for ((a, b), q) in self.limbs_iter_mut().zip(other.limbs_iter()).zip(moduli) {
            elementwise::add_assign(q, a, b);
        }
    }

    /// `self -= other` limb by limb.
    pub fn sub_assign(&mut self, other: &RnsPoly, moduli: &[Modulus]) {
        for ((a, b), q) in self.limbs_iter_mut().zip(other.limbs_iter()).zip(moduli) {
            elementwise::sub_assign(q, a, b);
        }
    }

    /// `self = -self`.
    pub fn neg_assign(&mut self, moduli: &[Modulus]) {
        for (a, q) in self.limbs_iter_mut().zip(moduli) {
            elementwise::neg_assign(q, a);
        }
    }

    /// Pointwise `self *= other` (both in evaluation form).
    pub fn mul_assign(&mut self, other: &RnsPoly, moduli: &[Modulus]) {
        for ((a, b), q) in self.limbs_iter_mut().zip(other.limbs_iter()).zip(moduli) {
            elementwise::mul_assign(q, a, b);
        }
    }

    /// Pointwise `self += a * b` (all in evaluation form).
    pub fn mul_acc(&mut self, a: &RnsPoly, b: &RnsPoly, moduli: &[Modulus]) {
        for (((c, x), y), q) in self.limbs_iter_mut().zip(a.limbs_iter()).zip(b.limbs_iter()).zip(moduli) {
            elementwise::mul_acc(q, c, x, y);
        }
    }
}
