//! Word-sized prime moduli with exact reduction: Barrett for 128-bit products, Shoup for
//! multiplication by a fixed operand. Every function returns the canonical residue in `[0, q)`.

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

    /// `x mod q` for any 128-bit `x`.
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let x_hi = (x >> 64) as u64;
        let x_lo = x as u64;
        // Estimate floor(x * mu / 2^128) from the three significant partial products; the estimate
        // is at most 3 below the true quotient, so at most three corrections follow.
        let hh = x_hi as u128 * self.mu_hi as u128;
        let hl = (x_hi as u128 * self.mu_lo as u128) >> 64;
        let lh = (x_lo as u128 * self.mu_hi as u128) >> 64;
        let quot = hh.wrapping_add(hl).wrapping_add(lh) as u64;
        let mut r = x_lo.wrapping_sub(quot.wrapping_mul(self.q));
        r = if r >= self.q { r - self.q } else { r };
        r = if r >= self.q { r - self.q } else { r };
        if r >= self.q {
            r - self.q
        } else {
            r
        }
    }

    /// `x mod q` for a 64-bit `x`.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        if x < self.q {
            x
        } else {
            self.reduce_u128(x as u128)
        }
    }

    /// Residue of a signed integer.
    #[inline(always)]
    pub fn reduce_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        if x < 0 {
            self.neg(r)
        } else {
            r
        }
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
        if x > self.q / 2 {
            x as i64 - self.q as i64
        } else {
            x as i64
        }
    }

    /// `a + b mod q` for residues.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.q {
            s - self.q
        } else {
            s
        }
    }

    /// `a - b mod q` for residues.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            a - b
        } else {
            a + self.q - b
        }
    }

    /// `-a mod q` for a residue.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.q - a
        }
    }

    /// `a * b mod q` for any 64-bit inputs.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
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
        if r >= self.q {
            r - self.q
        } else {
            r
        }
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
