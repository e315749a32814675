//! Montgomery reduction of 128-bit lazy sums (Montgomery 1985, "Modular Multiplication Without
//! Trial Division"): two multiplications instead of Barrett's four, for sums known to be below
//! `q * 2^64`. Operands of such sums carry a factor `2^64` (the "Montgomery form"), which the
//! reduction removes.

use super::modulus::Modulus;

/// Montgomery constants of one modulus `q` (odd, below 2^62) for `R = 2^64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Montgomery {
    q: u64,
    /// `q^-1 mod 2^64`.
    q_inv: u64,
    /// `2^64 mod q`.
    r_mod_q: u64,
}

impl Montgomery {
    /// The constants of `q`.
    pub fn new(q: &Modulus) -> Self {
        let v = q.value();
        // Newton iteration: each step doubles the number of correct low bits (v is odd, so
        // v is its own inverse modulo 8: 3 bits to start).
        let mut inv = v;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(v.wrapping_mul(inv)));
        }
        Montgomery { q: v, q_inv: inv, r_mod_q: q.reduce_u128(1u128 << 64) }
    }

    /// `q^-1 mod 2^64`.
    #[inline]
    pub fn q_inv(&self) -> u64 {
        self.q_inv
    }

    /// `x * 2^64 mod q`: the Montgomery form of a residue `x < q`.
    #[inline]
    pub fn to_montgomery(&self, q: &Modulus, x: u64) -> u64 {
        q.mul(x, self.r_mod_q)
    }

    /// How many products `y * w` with `y < y_bound` and `w < q` a sum may hold and stay below
    /// `q * 2^64` (the precondition of [`Montgomery::reduce`]); at least 1.
    pub fn terms(&self, y_bound: u64) -> usize {
        ((u64::MAX / y_bound.max(1)) as usize).max(1)
    }

    /// `(hi * 2^64 + lo) * 2^-64 mod q` for `hi * 2^64 + lo < q * 2^64`, canonical.
    #[inline(always)]
    pub fn reduce(&self, hi: u64, lo: u64) -> u64 {
        // m q = t 2^64 + lo exactly, so x - m q = (hi - t) 2^64 with |hi - t| < q.
        let m = lo.wrapping_mul(self.q_inv);
        let t = ((m as u128 * self.q as u128) >> 64) as u64;
        let r = hi.wrapping_sub(t);
        if hi < t {
            r.wrapping_add(self.q)
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_matches_the_definition() {
        for &qv in &[1152921504606584833u64, 1099511678977, 2305843009213554689, 0x3fff_ffff_ffff_ffc5 | 1] {
            if !crate::ring::primes::is_prime(qv) {
                continue;
            }
            let q = Modulus::new(qv);
            let m = Montgomery::new(&q);
            let r_inv = q.inv(q.reduce_u128(1u128 << 64)).unwrap();
            let mut s = 0x1234_5678_9abc_def1u64;
            for _ in 0..1000 {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let x = (s as u128 % (qv as u128)) * (s.rotate_left(17) as u128 % (1u128 << 64));
                let (hi, lo) = ((x >> 64) as u64, x as u64);
                let want = q.mul(q.reduce_u128(x), r_inv);
                assert_eq!(m.reduce(hi, lo), want);
            }
            assert_eq!(m.reduce(0, m.to_montgomery(&q, 5)), 5);
            assert!(m.terms(1 << 61) >= 7);
        }
    }
}
