//! Word-sized prime moduli with exact reduction: Barrett for 128-bit products, Shoup for
//! multiplication by a fixed operand. Every function returns the canonical residue in `[0, q)`.
//!
//! Corrections are written without branches (masks from the borrow of a subtraction), but an
//! optimiser is free to turn a mask back into a jump, and LLVM does so on x86-64 for the plain
//! operations. The `*_ct` variants hide the mask behind an optimisation barrier
//! (`core::hint::black_box`), so the machine code has no branch on the values; encryption and
//! decryption use them wherever a secret is an operand (`rlwe_limb`, `decrypt_limb`). The plain
//! ones serve public data (evaluation), where the barrier would only cost time.

/// `x - q` when `x >= q`, else `x`: the borrow of `x - q` selects.
#[inline(always)]
const fn sub_if_ge(x: u64, q: u64) -> u64 {
    let (t, borrow) = x.overflowing_sub(q);
    t.wrapping_add(q & (borrow as u64).wrapping_neg())
}

/// [`sub_if_ge`] with the mask behind an optimisation barrier, so that no branch is compiled.
#[inline(always)]
fn sub_if_ge_ct(x: u64, q: u64) -> u64 {
    let (t, borrow) = x.overflowing_sub(q);
    t.wrapping_add(q & core::hint::black_box((borrow as u64).wrapping_neg()))
}

/// Largest modulus the ring layer accepts: residues and lazy sums stay below 2^64.
pub const MAX_MODULUS_BITS: u32 = 62;

/// A prime modulus `q < 2^62` with the constants for exact Barrett reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    q: u64,
    /// floor(2^128 / q), split into high and low words.
    mu_hi: u64,
    mu_lo: u64,
}

impl Modulus {
    /// Wraps `q`; `q` must be odd, at least 3 and below 2^62 (checked by the caller's parameter
    /// validation, asserted here because a wrong modulus is a programming error).
    pub const fn new(q: u64) -> Self {
        assert!(q >= 3 && q < (1u64 << MAX_MODULUS_BITS));
        let mu = u128::MAX / q as u128; // floor((2^128 - 1) / q) == floor(2^128 / q) for q not a power of two
        Modulus { q, mu_hi: (mu >> 64) as u64, mu_lo: mu as u64 }
    }

    /// The modulus value.
    #[inline(always)]
    pub const fn value(&self) -> u64 {
        self.q
    }

    /// Bit length, ceil(log2(q + 1)): the width of a residue on the wire.
    #[inline(always)]
    pub const fn bits(&self) -> u32 {
        64 - self.q.leading_zeros()
    }

    /// `x - floor(x * mu / 2^128) * q`, which is below `4q`.
    #[inline(always)]
    fn barrett_remainder(&self, x: u128) -> u64 {
        let x_hi = (x >> 64) as u64;
        let x_lo = x as u64;
        // Estimate floor(x * mu / 2^128) from the three significant partial products; the estimate
        // is at most 3 below the true quotient, so at most three corrections follow.
        let hh = x_hi as u128 * self.mu_hi as u128;
        let hl = (x_hi as u128 * self.mu_lo as u128) >> 64;
        let lh = (x_lo as u128 * self.mu_hi as u128) >> 64;
        let quot = hh.wrapping_add(hl).wrapping_add(lh) as u64;
        x_lo.wrapping_sub(quot.wrapping_mul(self.q))
    }

    /// `x mod q` for any 128-bit `x`.
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let r = self.barrett_remainder(x);
        sub_if_ge(sub_if_ge(sub_if_ge(r, self.q), self.q), self.q)
    }

    /// [`Self::reduce_u128`] without a branch in the machine code (secret operands).
    #[inline(always)]
    pub fn reduce_u128_ct(&self, x: u128) -> u64 {
        let r = self.barrett_remainder(x);
        sub_if_ge_ct(sub_if_ge_ct(sub_if_ge_ct(r, self.q), self.q), self.q)
    }

    /// `x mod q` for a 64-bit `x`.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        self.reduce_u128(x as u128)
    }

    /// Residue of a signed integer.
    #[inline(always)]
    pub fn reduce_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        // All ones when x is negative.
        let neg = (x >> 63) as u64;
        (self.neg(r) & neg) | (r & !neg)
    }

    /// Constant-time residue of a small signed value (|x| < q), used for secret coefficients.
    #[inline(always)]
    pub fn from_small_ct(&self, x: i64) -> u64 {
        // mask is all ones when x is negative.
        let mask = (x >> 63) as u64;
        (x as u64).wrapping_add(self.q & mask)
    }

    /// Centered representative of `x` in `(-q/2, q/2]`.
    #[inline(always)]
    pub fn center(&self, x: u64) -> i64 {
        // All ones when x > q/2 (both below 2^62, so the difference's sign bit decides).
        let above = ((self.q / 2).wrapping_sub(x) >> 63).wrapping_neg();
        x.wrapping_sub(self.q & above) as i64
    }

    /// `a + b mod q` for residues.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        sub_if_ge(a + b, self.q)
    }

    /// [`Self::add`] without a branch in the machine code (secret operands).
    #[inline(always)]
    pub fn add_ct(&self, a: u64, b: u64) -> u64 {
        sub_if_ge_ct(a + b, self.q)
    }

    /// `a - b mod q` for residues.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        let (t, borrow) = a.overflowing_sub(b);
        t.wrapping_add(self.q & (borrow as u64).wrapping_neg())
    }

    /// [`Self::sub`] without a branch in the machine code (secret operands).
    #[inline(always)]
    pub fn sub_ct(&self, a: u64, b: u64) -> u64 {
        let (t, borrow) = a.overflowing_sub(b);
        t.wrapping_add(self.q & core::hint::black_box((borrow as u64).wrapping_neg()))
    }

    /// `-a mod q` for a residue.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        // q - a is in (0, q]; q itself becomes 0.
        sub_if_ge(self.q - a, self.q)
    }

    /// `a * b mod q` for any 64-bit inputs.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// [`Self::mul`] without a branch in the machine code (secret operands).
    #[inline(always)]
    pub fn mul_ct(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128_ct(a as u128 * b as u128)
    }

    /// Precomputed Shoup companion floor(w * 2^64 / q) of a fixed operand `w < q`.
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.q as u128) as u64
    }

    /// `a * w mod q` with `w_shoup = self.shoup(w)`; one high multiply, no division.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let quot = ((a as u128 * w_shoup as u128) >> 64) as u64;
        let r = a.wrapping_mul(w).wrapping_sub(quot.wrapping_mul(self.q));
        sub_if_ge(r, self.q)
    }

    /// `a^e mod q`.
    pub fn pow(&self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1 % self.q;
        a = self.reduce(a);
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// Inverse of `a` modulo the prime `q` (Fermat); `None` for `a = 0 mod q`.
    pub fn inv(&self, a: u64) -> Option<u64> {
        let a = self.reduce(a);
        if a == 0 {
            None
        } else {
            Some(self.pow(a, self.q - 2))
        }
    }

    /// Residue of a real integer-valued `x` (|x| may exceed 2^63): exact, via mantissa and exponent.
    pub fn reduce_f64(&self, x: f64) -> u64 {
        let ax = libm::fabs(x);
        let r = if ax < 9.223_372_036_854_776e18 {
            self.reduce(ax as u64)
        } else {
            // ax = m * 2^e with a 53-bit integer mantissa m.
            let bits = ax.to_bits();
            let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
            let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
            let two_e = self.pow(2, exp.max(0) as u64);
            self.mul(self.reduce(mant), two_e)
        };
        if x < 0.0 {
            self.neg(r)
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free corrections at the edges of their ranges (where a wrong mask would show),
    /// for a small prime, a 61-bit one and the largest below 2^62.
    #[test]
    fn constant_time_ops_are_exact_at_the_edges() {
        for q in [97u64, 2305843009213693951, 4611686018427387847] {
            let m = Modulus::new(q);
            let edges = [0, 1, 2, q / 2 - 1, q / 2, q / 2 + 1, q - 2, q - 1];
            for &a in &edges {
                for &b in &edges {
                    let (a1, b1, q1) = (a as u128, b as u128, q as u128);
                    assert_eq!(m.add(a, b) as u128, (a1 + b1) % q1);
                    assert_eq!(m.sub(a, b) as u128, (a1 + q1 - b1) % q1);
                    assert_eq!(m.mul(a, b) as u128, a1 * b1 % q1);
                    assert_eq!(m.add_ct(a, b), m.add(a, b));
                    assert_eq!(m.sub_ct(a, b), m.sub(a, b));
                    assert_eq!(m.mul_ct(a, b), m.mul(a, b));
                    assert_eq!(m.mul_shoup(a, b, m.shoup(b)) as u128, a1 * b1 % q1);
                }
                assert_eq!(m.neg(a), (q - a) % q);
                assert_eq!(m.center(a), if a > q / 2 { a as i64 - q as i64 } else { a as i64 });
                for x in [a as i64, -(a as i64), i64::MIN, i64::MAX] {
                    assert_eq!(m.reduce_i64(x) as i128, (x as i128).rem_euclid(q as i128));
                }
            }
            for x in [u64::MAX, u64::MAX - 1, q, 2 * q, 3 * q - 1, 4 * (q - 1)] {
                assert_eq!(m.reduce(x), x % q);
            }
            for x in [u128::MAX, (q as u128) * (q as u128) - 1, (q as u128 - 1) * (q as u128 - 1)] {
                assert_eq!(m.reduce_u128(x) as u128, x % q as u128);
                assert_eq!(m.reduce_u128_ct(x), m.reduce_u128(x));
            }
        }
    }
}
