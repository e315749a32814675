//! A negacyclic NTT that keeps no twiddle tables, for devices: the evaluation order and the root
//! of unity are those of [`super::NttTable`] (concrete-ntt's `prime64::Plan`), so both give the
//! same bytes, but where a plan holds 32 N bytes of twiddles (2 MiB at N = 2^16) this holds 2 x 20
//! words and computes each twiddle when its butterfly group starts.
//!
//! Forward: Cooley-Tukey, natural order in, bit-reversed order out; inverse: Gentleman-Sande
//! (the layout of Longa and Naehrig, "Speeding up the Number Theoretic Transform for Faster
//! Ideal Lattice-Based Cryptography", CANS 2016, Algorithms 1 and 2). Stage `k` of the forward
//! transform multiplies group `i` by `psi^bitrev(2^k + i)`, which is `w_k^(2 r + 1)` for
//! `r = bitrev_k(i)` and `w_k = psi^(N / 2^(k+1))`; visiting the groups in the order of `r`, each
//! twiddle is the previous one times `w_k^2` (one multiplication per group, about N per transform
//! against N/2 log2 N in the butterflies).
//!
//! Arithmetic: the running twiddle is kept in Montgomery form (`R = 2^64`, Montgomery 1985), so
//! that its Shoup companion `floor(w 2^64 / q)` comes out of one low product instead of a
//! division; the butterflies are Harvey's lazy ones with Shoup multiplication ("Faster arithmetic
//! for number-theoretic transforms", J. Symb. Comp. 2014): values stay below 4q (forward) or 2q
//! (inverse) between stages, which needs `q < 2^62`. No branch and no memory index depends on the
//! data.

use super::modulus::Modulus;
use crate::Error;

/// Largest log2 N the fixed root arrays hold.
const MAX_LOG_N: usize = 20;

/// A negacyclic NTT modulo one prime for one ring degree, without tables.
#[derive(Clone, Debug)]
pub struct CompactNtt {
    q: u64,
    n: usize,
    log_n: u32,
    /// `-q^-1 mod 2^64`.
    q_neg_inv: u64,
    /// `2^128 mod q`: turns a residue into Montgomery form with one multiplication.
    r2: u64,
    /// `fwd[k] = psi^(N / 2^(k+1)) * 2^64 mod q`, a primitive `2^(k+2)`-th root in Montgomery
    /// form; `fwd[log_n - 1]` is `psi` itself.
    fwd: [u64; MAX_LOG_N],
    /// The same for `psi^-1`.
    inv: [u64; MAX_LOG_N],
    /// `N^-1 * 2^64 mod q`: normalises the inverse transform.
    n_inv_mont: u64,
}

/// `(lo, hi)` of the 128-bit product.
#[inline(always)]
fn mul_wide(a: u64, b: u64) -> (u64, u64) {
    let p = a as u128 * b as u128;
    (p as u64, (p >> 64) as u64)
}

/// The high word of the 128-bit product, from four 32-bit products each with two 32-bit
/// addends (which cannot overflow 64 bits: `(2^32 - 1)^2 + 2 (2^32 - 1) = 2^64 - 1`), the shape
/// of the Arm `UMAAL` instruction; on a 32-bit core this is cheaper than a 128-bit product.
#[inline(always)]
fn mul_high(a: u64, b: u64) -> u64 {
    let (a0, a1) = (a & 0xffff_ffff, a >> 32);
    let (b0, b1) = (b & 0xffff_ffff, b >> 32);
    let p00 = a0 * b0;
    let t = a1 * b0 + (p00 >> 32);
    let u = a0 * b1 + (t & 0xffff_ffff);
    a1 * b1 + (t >> 32) + (u >> 32)
}

/// `x - bound` if `x >= bound`, else `x`, without a branch, for `bound <= 2^63` and
/// `x < 2 bound`: the difference's top bit is set exactly when it wrapped.
#[inline(always)]
fn sub_if_ge(x: u64, bound: u64) -> u64 {
    let d = x.wrapping_sub(bound);
    let wrapped = ((d as i64) >> 63) as u64;
    d.wrapping_add(bound & wrapped)
}

impl CompactNtt {
    /// The transform for `x^n + 1` modulo the prime `q = 1 mod 2n`, with the root of unity
    /// concrete-ntt chooses (the value at position 0 of the forward transform of `X`).
    pub fn new(n: usize, q: &Modulus) -> Result<Self, Error> {
        let qv = q.value();
        if !n.is_power_of_two() || n < 2 || n.trailing_zeros() as usize > MAX_LOG_N {
            return Err(Error::InvalidParameters("ring degree must be a power of two"));
        }
        if qv >= 1 << 62 || !(qv - 1).is_multiple_of(2 * n as u64) {
            return Err(Error::InvalidParameters("modulus is not an NTT-friendly prime for this ring degree"));
        }
        let log_n = n.trailing_zeros();
        let psi = backend_root(q, log_n + 1)
            .ok_or(Error::InvalidParameters("modulus is not an NTT-friendly prime for this ring degree"))?;
        // Newton's iteration for q^-1 mod 2^64: q is its own inverse modulo 8, and each step
        // doubles the number of correct low bits (3, 6, 12, 24, 48, 96).
        let mut q_inv = qv;
        for _ in 0..5 {
            q_inv = q_inv.wrapping_mul(2u64.wrapping_sub(qv.wrapping_mul(q_inv)));
        }
        let r = q.reduce_u128(1u128 << 64);
        let mut t = CompactNtt {
            q: qv,
            n,
            log_n,
            q_neg_inv: q_inv.wrapping_neg(),
            r2: q.mul(r, r),
            fwd: [0; MAX_LOG_N],
            inv: [0; MAX_LOG_N],
            n_inv_mont: 0,
        };
        let psi_inv = q.pow(psi, 2 * n as u64 - 1);
        let (mut w, mut wi) = (psi, psi_inv);
        for k in (0..log_n as usize).rev() {
            t.fwd[k] = q.mul(w, r);
            t.inv[k] = q.mul(wi, r);
            w = q.mul(w, w);
            wi = q.mul(wi, wi);
        }
        t.n_inv_mont = q.mul(q.inv(n as u64).ok_or(Error::InvalidParameters("ring degree divides the modulus"))?, r);
        Ok(t)
    }

    /// Ring degree.
    #[inline]
    pub fn n(&self) -> usize {
        self.n
    }

    /// The prime.
    #[inline]
    pub fn modulus(&self) -> u64 {
        self.q
    }

    /// `a * b * 2^-64 mod q`, in `[0, 2q)`, for `a * b < q * 2^64` (Montgomery reduction; the
    /// low words of the product and of `m q` cancel, so the carry out of them is 1 exactly when
    /// the product's low word is not zero).
    #[inline(always)]
    pub fn mul_lazy(&self, a: u64, b: u64) -> u64 {
        let (lo, hi) = mul_wide(a, b);
        let m = lo.wrapping_mul(self.q_neg_inv);
        let (_, t) = mul_wide(m, self.q);
        hi + t + (lo != 0) as u64
    }

    /// `out[i] = out[i] * y[i] * 2^-64 mod q`, in `[0, 2q)`, for `out[i] * y[i] < q 2^64` (every
    /// [`Self::mul_lazy`] of a slice; in assembly on Armv7E-M). The slices have equal lengths.
    pub fn mul_lazy_slice(&self, out: &mut [u64], y: &[u64]) {
        assert_eq!(out.len(), y.len(), "slot products of slices of different lengths");
        #[cfg(hetune_armv7em)]
        butterflies::montgomery_products(out, y, &[self.q, self.q_neg_inv]);
        #[cfg(not(hetune_armv7em))]
        for (o, &x) in out.iter_mut().zip(y) {
            *o = self.mul_lazy(*o, x);
        }
    }

    /// `out[i] = t w mod q` (canonical) for `t = out[i] + k + add[i] mod 2^64`, with
    /// `w_shoup = floor(w 2^64 / q)`: one Shoup product per slot (in assembly on Armv7E-M). The
    /// caller chooses `k` so that the sums do not wrap (or wrap on purpose, for two's complement
    /// `add`). The slices have equal lengths.
    pub fn mul_shoup_sum_slice(&self, out: &mut [u64], add: &[u64], k: u64, w: u64, w_shoup: u64) {
        assert_eq!(out.len(), add.len(), "slot sums of slices of different lengths");
        #[cfg(hetune_armv7em)]
        butterflies::shoup_sums(out, add, &[k, w, w_shoup, self.q]);
        #[cfg(not(hetune_armv7em))]
        for (o, &s) in out.iter_mut().zip(add) {
            let t = o.wrapping_add(k).wrapping_add(s);
            *o = self.reduce_lazy(self.mul_shoup_lazy(t, w, w_shoup));
        }
    }

    /// `x mod q` for `x < 2q`.
    #[inline(always)]
    pub fn reduce_lazy(&self, x: u64) -> u64 {
        sub_if_ge(x, self.q)
    }

    /// `x mod q` for `x < 4q`.
    #[inline(always)]
    pub fn reduce_4q(&self, x: u64) -> u64 {
        sub_if_ge(sub_if_ge(x, 2 * self.q), self.q)
    }

    /// `x mod q` for any 64-bit `x`, in constant time.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        // x R^2 R^-1 = x R, then R^-1 again.
        let xr = self.mul_lazy(x, self.r2);
        self.reduce_lazy(self.mul_lazy(xr, 1))
    }

    /// The Montgomery form `x * 2^64 mod q` of any 64-bit `x`, for constants passed to
    /// [`Self::mul_lazy`].
    pub fn to_montgomery(&self, x: u64) -> u64 {
        self.reduce_lazy(self.mul_lazy(self.reduce(x), self.r2))
    }

    /// `a * w mod q` in `[0, 2q)` for any 64-bit `a`, with `w_shoup = floor(w 2^64 / q)` (Shoup's
    /// multiplication by a fixed operand, as lazy as Harvey uses it: one full and two low products,
    /// cheaper than a Montgomery product on a 32-bit core).
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let q_hat = mul_high(a, w_shoup);
        a.wrapping_mul(w).wrapping_sub(q_hat.wrapping_mul(self.q))
    }

    /// The twiddle `w` and its Shoup companion from its Montgomery form `r = w 2^64 mod q`
    /// (canonical): `floor(w 2^64 / q) = r (-q^-1) mod 2^64`, since `w 2^64 - r` is that multiple
    /// of q; then `w` is the high word of `floor(w 2^64 / q) q`, plus one unless `r = 0`.
    #[inline(always)]
    fn shoup_pair(&self, r: u64) -> (u64, u64) {
        let w_shoup = r.wrapping_mul(self.q_neg_inv);
        let (_, hi) = mul_wide(w_shoup, self.q);
        (hi + (r != 0) as u64, w_shoup)
    }

    /// Forward transform, lazy: every input below `4q`, output in `[0, 4q)`, in the evaluation
    /// order of [`super::NttTable::forward`].
    pub fn forward_lazy(&self, a: &mut [u64]) {
        for k in 0..self.log_n as usize {
            self.stage(a, k, true);
        }
    }

    /// [`Self::load_ternary`] then [`Self::forward_lazy`], with the first stage folded into the
    /// load: each of its butterflies combines two ternary coefficients `x`, `y` as
    /// `(c x + (c w) y, c x - (c w) y)`, both operands chosen from three constants without a
    /// branch, so no product is taken. Output congruent to theirs, below `2q` after the first
    /// stage and `4q` at the end. Constant time in the coefficients.
    pub fn forward_ternary_lazy(&self, coeffs: &[i8], c: u64, out: &mut [u64]) {
        assert!(coeffs.len() == self.n && out.len() == self.n, "transform length");
        let q = self.q;
        let (w, w_shoup) = self.shoup_pair(self.fwd[0]);
        let cw = self.reduce_lazy(self.mul_shoup_lazy(c, w, w_shoup));
        let half = self.n / 2;
        let (lo, hi) = out.split_at_mut(half);
        let (xs, ys) = coeffs.split_at(half);
        for (((a, b), &x), &y) in lo.iter_mut().zip(hi.iter_mut()).zip(xs).zip(ys) {
            // All ones for 1 (`pos`) or -1 (`neg`), as in load_ternary.
            let (x, y) = (x as i64, y as i64);
            let (xp, xn) = (((-x) >> 63) as u64, (x >> 63) as u64);
            let (yp, yn) = (((-y) >> 63) as u64, (y >> 63) as u64);
            let cx = (c & xp) | ((q - c) & xn);
            let cwy = (cw & yp) | ((q - cw) & yn);
            *a = cx + cwy;
            *b = cx + q - cwy;
        }
        for k in 1..self.log_n as usize {
            self.stage(out, k, true);
        }
    }

    /// Inverse transform without the division by N, lazy: input below `2q` in evaluation order,
    /// output `N` times the coefficients, in `[0, 2q)`.
    pub fn inverse_lazy_unnormalized(&self, a: &mut [u64]) {
        for k in (0..self.log_n as usize).rev() {
            self.stage(a, k, false);
        }
    }

    /// Stage `k` of the forward or inverse transform: the butterflies of [`butterflies`] on the
    /// two halves of every group, with the group's twiddle from `fwd` or `inv`.
    #[inline(always)]
    #[cfg(not(hetune_armv7em))]
    fn stage(&self, a: &mut [u64], k: usize, forward: bool) {
        assert_eq!(a.len(), self.n, "transform length");
        let (roots, group) = if forward {
            (&self.fwd, butterflies::forward as GroupFn)
        } else {
            (&self.inv, butterflies::inverse as GroupFn)
        };
        let half = a.len() >> (k + 1);
        let mut consts = [0, 0, self.q, 2 * self.q];
        self.for_each_group(k, roots, |g, w, w_shoup| {
            let (lo, hi) = a[2 * g * half..2 * (g + 1) * half].split_at_mut(half);
            consts[0] = w;
            consts[1] = w_shoup;
            group(lo, hi, &consts);
        });
    }

    /// Stage `k` on Armv7E-M: the first stage (one group) through `group`, the others through the
    /// assembly stage loops of [`butterflies`], which walk the groups, derive each twiddle as
    /// [`Self::for_each_group`] does and run the group's butterflies.
    #[inline(always)]
    #[cfg(hetune_armv7em)]
    fn stage(&self, a: &mut [u64], k: usize, forward: bool) {
        assert_eq!(a.len(), self.n, "transform length");
        let (roots, group) = if forward {
            (&self.fwd, butterflies::forward as GroupFn)
        } else {
            (&self.inv, butterflies::inverse as GroupFn)
        };
        let half = a.len() >> (k + 1);
        if k == 0 {
            let (w, w_shoup) = self.shoup_pair(roots[0]);
            let (lo, hi) = a.split_at_mut(half);
            group(lo, hi, &[w, w_shoup, self.q, 2 * self.q]);
            return;
        }
        let (step, step_shoup) = self.shoup_pair(roots[k - 1]);
        let mut state = butterflies::StageState {
            words: [0, 0, self.q, 2 * self.q, roots[k], step, step_shoup, self.q_neg_inv, 0, 0, 0],
        };
        match (forward, half) {
            (true, 1) => butterflies::forward_last_stage(a, k, &mut state),
            (false, 1) => butterflies::inverse_last_stage(a, k, &mut state),
            (true, _) => butterflies::forward_stage(a, k, &mut state),
            (false, _) => butterflies::inverse_stage(a, k, &mut state),
        }
    }

    /// Calls `f(group, w, w_shoup)` for the `2^k` butterfly groups of stage `k`, group
    /// `bitrev_k(r)` with twiddle `roots[k]^(2r + 1)`, for r = 0, 1, ... (see the module docs).
    /// The running twiddle stays in Montgomery form; the step `roots[k]^2 = roots[k - 1]` is taken
    /// in normal form with its Shoup companion, and a Shoup product by it keeps the factor 2^64.
    #[inline(always)]
    #[cfg_attr(hetune_armv7em, allow(dead_code))]
    fn for_each_group(&self, k: usize, roots: &[u64; MAX_LOG_N], mut f: impl FnMut(usize, u64, u64)) {
        let mut r_mont = roots[k];
        if k == 0 {
            let (w, w_shoup) = self.shoup_pair(r_mont);
            f(0, w, w_shoup);
            return;
        }
        let (step, step_shoup) = self.shoup_pair(roots[k - 1]);
        let shift = usize::BITS - k as u32;
        for r in 0..1usize << k {
            let (w, w_shoup) = self.shoup_pair(r_mont);
            f(r.reverse_bits() >> shift, w, w_shoup);
            r_mont = self.reduce_lazy(self.mul_shoup_lazy(r_mont, step, step_shoup));
        }
    }

    /// Coefficients (canonical residues) to evaluations, in place; equal to
    /// [`super::NttTable::forward`].
    pub fn forward(&self, a: &mut [u64]) {
        self.forward_lazy(a);
        for x in a.iter_mut() {
            *x = self.reduce_4q(*x);
        }
    }

    /// Evaluations to coefficients, in place, including the division by N; equal to
    /// [`super::NttTable::inverse`].
    pub fn inverse(&self, a: &mut [u64]) {
        self.inverse_lazy_unnormalized(a);
        for x in a.iter_mut() {
            *x = self.reduce_lazy(self.mul_lazy(*x, self.n_inv_mont));
        }
    }

    /// Residues of ternary coefficients (each -1, 0 or 1) times the constant `c < q`, in
    /// constant time: `out[t] = c * coeffs[t] mod q`. Any other coefficient value gives a wrong
    /// residue, so this is for secrets and masks only.
    pub fn load_ternary(&self, coeffs: &[i8], c: u64, out: &mut [u64]) {
        let neg_c = self.q - c;
        for (o, &x) in out.iter_mut().zip(coeffs) {
            // x = 1: all-ones `pos`; x = -1: all-ones `neg`; x = 0: neither.
            let pos = ((-(x as i64)) >> 63) as u64;
            let neg = ((x as i64) >> 63) as u64;
            *o = (c & pos) | (neg_c & neg);
        }
    }

    /// The constant that, given to [`Self::load_ternary`] before [`Self::forward_lazy`], makes
    /// one [`Self::mul_lazy`] per slot and [`Self::inverse_lazy_unnormalized`] give the exact
    /// negacyclic product: `2^64 / N mod q` (it cancels the Montgomery factor and the N of the
    /// unnormalised inverse).
    pub fn product_scale(&self) -> u64 {
        // n_inv_mont = N^-1 2^64 mod q already.
        self.n_inv_mont
    }
}

/// The butterflies of one group, `(lo, hi, [w, w_shoup, q, 2q])`.
type GroupFn = fn(&mut [u64], &mut [u64], &[u64; 4]);

/// The butterflies of one group: `lo[j]` and `hi[j]` for every `j`, with `c = [w, w_shoup, q, 2q]`.
/// Harvey's lazy butterflies (see the module docs) in portable Rust, and on Armv7E-M the same
/// arithmetic in assembly.
mod butterflies {
    #[cfg(not(hetune_armv7em))]
    use super::{mul_high, sub_if_ge};

    /// Forward (Cooley-Tukey): inputs below `4q`, outputs below `4q`:
    /// `u = x mod 2q`, `v = y w` (lazy), `x = u + v`, `y = u + 2q - v`.
    #[cfg(not(hetune_armv7em))]
    pub(super) fn forward(lo: &mut [u64], hi: &mut [u64], c: &[u64; 4]) {
        let [w, w_shoup, q, two_q] = *c;
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let u = sub_if_ge(*x, two_q);
            let v = y.wrapping_mul(w).wrapping_sub(mul_high(*y, w_shoup).wrapping_mul(q));
            *x = u + v;
            *y = u + two_q - v;
        }
    }

    /// Inverse (Gentleman-Sande): inputs below `2q`, outputs below `2q`:
    /// `x = (u + v) mod 2q`, `y = (u + 2q - v) w` (lazy).
    #[cfg(not(hetune_armv7em))]
    pub(super) fn inverse(lo: &mut [u64], hi: &mut [u64], c: &[u64; 4]) {
        let [w, w_shoup, q, two_q] = *c;
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let (u, v) = (*x, *y);
            *x = sub_if_ge(u + v, two_q);
            let t = u + two_q - v;
            *y = t.wrapping_mul(w).wrapping_sub(mul_high(t, w_shoup).wrapping_mul(q));
        }
    }

    // The same butterflies on Armv7E-M (Cortex-M4, M4F, M7), about 35 instructions each against
    // about 55 from the compiler, which runs out of registers for the 64-bit operands and spills
    // them. Values are (low, high) word pairs. Shoup's quotient is the high word of `y w_shoup`:
    // four 32-bit products summed with UMAAL, whose two 32-bit addends never overflow. The low
    // words of `y w - q_hat q` need three products each (MLA and MLS add the cross terms to the
    // high word). `x mod 2q` is a subtraction whose borrow decides, through an IT block, which
    // of the two is kept: conditional execution, not a branch, so the instruction stream and
    // the memory accesses are the same for every value (the mask and the errors are secret).
    //
    // Safety of the `asm!` blocks: they read and write `lo[0..n]` and `hi[0..n]` (n = the common
    // length, checked, at least 1) through post-incremented pointers, 8 bytes at a time (u64
    // slices are 8-byte aligned, as LDRD/STRD need 4), read the 32 bytes of `c`, touch no other
    // memory and no stack, and clobber only the registers and flags declared.

    /// What the assembly stage loops read and update, 8-byte words: `[w, w_shoup, q, 2q, r_mont,
    /// step, step_shoup, -q^-1 mod 2^64, (base, 8 half), (r, groups), 29 - log2 N]` (pairs are
    /// two 32-bit words, low first). The first two are written for each group.
    #[cfg(hetune_armv7em)]
    pub(super) struct StageState {
        pub(super) words: [u64; 11],
    }

    /// Fills in the addressing words of `state` for stage `k` (k >= 1) over `a`: the groups run
    /// r = 0 .. 2^k, group `bitrev_k(r)` at `a[2 g half ..]`.
    #[cfg(hetune_armv7em)]
    fn address(a: &mut [u64], k: usize, state: &mut StageState) {
        let log_n = a.len().trailing_zeros() as usize;
        assert!(k >= 1 && k < log_n && log_n <= 29 && a.len().is_power_of_two(), "stage shape");
        let half = a.len() >> (k + 1);
        state.words[8] = (a.as_mut_ptr() as usize as u64) | (((8 * half) as u64) << 32);
        state.words[9] = (1u64 << k) << 32;
        state.words[10] = 29 - log_n as u64;
    }

    // The stage loops. Per group (r = 0, 1, ...): the twiddle pair from r_mont (`shoup_pair`:
    // w_shoup = r_mont (-q^-1) mod 2^64, w = high word of w_shoup q, plus one since r_mont, the
    // Montgomery form of a root of unity, is never 0),
    // then r_mont = r_mont * step (a lazy Shoup product, reduced below q), then the group's
    // address from `rbit` (bit reversal) and its butterflies. Registers hold no state between
    // groups: everything lives in `StageState`, so the butterflies have all twelve.
    #[cfg(hetune_armv7em)]
    macro_rules! stage_asm {
        ($a:expr, $state:expr, [$($butterfly:literal,)*]) => {
            core::arch::asm!(
                "3:",
                // The twiddle pair.
                "ldrd {a}, {b}, [{k}, #32]",
                "ldrd {c}, {d}, [{k}, #56]",
                "umull {e}, {f}, {a}, {c}",
                "mla {f}, {a}, {d}, {f}",
                "mla {f}, {b}, {c}, {f}",
                "strd {e}, {f}, [{k}, #8]",
                "ldrd {c}, {d}, [{k}, #16]",
                "umull {b}, {g}, {e}, {c}",
                "mov {h}, #0",
                "umaal {g}, {h}, {f}, {c}",
                "mov {b}, #0",
                "umaal {g}, {b}, {e}, {d}",
                "umaal {h}, {b}, {f}, {d}",
                "adds {h}, {h}, #1",
                "adc {b}, {b}, #0",
                "strd {h}, {b}, [{k}]",
                // r_mont = r_mont * step mod q.
                "ldrd {a}, {b}, [{k}, #32]",
                "ldrd {c}, {d}, [{k}, #48]",
                "umull {e}, {f}, {a}, {c}",
                "mov {g}, #0",
                "umaal {f}, {g}, {b}, {c}",
                "mov {e}, #0",
                "umaal {f}, {e}, {a}, {d}",
                "umaal {g}, {e}, {b}, {d}",
                "ldrd {c}, {d}, [{k}, #40]",
                "umull {f}, {h}, {a}, {c}",
                "mla {h}, {a}, {d}, {h}",
                "mla {h}, {b}, {c}, {h}",
                "ldrd {a}, {b}, [{k}, #16]",
                "mls {h}, {g}, {b}, {h}",
                "mls {h}, {e}, {a}, {h}",
                "umull {c}, {d}, {g}, {a}",
                "subs {f}, {f}, {c}",
                "sbc {h}, {h}, {d}",
                "subs {c}, {f}, {a}",
                "sbcs {d}, {h}, {b}",
                "itt cs",
                "movcs {f}, {c}",
                "movcs {h}, {d}",
                "strd {f}, {h}, [{k}, #32]",
                // The group: g = bitrev_k(r), halves at base + 16 g half and 8 half further;
                // 16 g half = rbit(r) >> (29 - log2 N), since g = rbit(r) >> (32 - k) and
                // 16 half = 2^(log2 N - k + 3).
                "ldrd {a}, {b}, [{k}, #64]",
                "ldrd {c}, {d}, [{k}, #72]",
                "ldr {e}, [{k}, #80]",
                "rbit {f}, {c}",
                "lsr {f}, {f}, {e}",
                "add {px}, {a}, {f}",
                "add {py}, {px}, {b}",
                "lsr {n}, {b}, #3",
                "adds {c}, {c}, #1",
                "str {c}, [{k}, #72]",
                "2:",
                $($butterfly,)*
                "subs {n}, {n}, #1",
                "bne 2b",
                "ldrd {c}, {d}, [{k}, #72]",
                "cmp {c}, {d}",
                "bne 3b",
                k = in(reg) $state.words.as_mut_ptr(),
                px = out(reg) _,
                py = out(reg) _,
                n = out(reg) _,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                e = out(reg) _,
                f = out(reg) _,
                g = out(reg) _,
                h = out(reg) _,
                options(nostack),
            )
        };
    }

    // The last stage (one butterfly per group, N/2 groups): the butterfly multiplies by the
    // running twiddle in Montgomery form directly, a Montgomery product (as `mul_lazy`: the
    // product of a value below 4q and r_mont below q is below q 2^64, so the result is below
    // 2q, as Shoup's), which spares the derivation of the Shoup pair in every group.
    #[cfg(hetune_armv7em)]
    macro_rules! last_stage_asm {
        ($state:expr, [$($butterfly:literal,)*]) => {
            core::arch::asm!(
                "3:",
                // The group: g = bitrev_k(r), its pair at base + 16 g.
                "ldrd {a}, {b}, [{k}, #64]",
                "ldrd {c}, {d}, [{k}, #72]",
                "ldr {e}, [{k}, #80]",
                "rbit {f}, {c}",
                "lsr {f}, {f}, {e}",
                "add {px}, {a}, {f}",
                "adds {c}, {c}, #1",
                "str {c}, [{k}, #72]",
                $($butterfly,)*
                // r_mont = r_mont * step mod q.
                "ldrd {a}, {b}, [{k}, #32]",
                "ldrd {c}, {d}, [{k}, #48]",
                "umull {e}, {f}, {a}, {c}",
                "mov {g}, #0",
                "umaal {f}, {g}, {b}, {c}",
                "mov {e}, #0",
                "umaal {f}, {e}, {a}, {d}",
                "umaal {g}, {e}, {b}, {d}",
                "ldrd {c}, {d}, [{k}, #40]",
                "umull {f}, {h}, {a}, {c}",
                "mla {h}, {a}, {d}, {h}",
                "mla {h}, {b}, {c}, {h}",
                "ldrd {a}, {b}, [{k}, #16]",
                "mls {h}, {g}, {b}, {h}",
                "mls {h}, {e}, {a}, {h}",
                "umull {c}, {d}, {g}, {a}",
                "subs {f}, {f}, {c}",
                "sbc {h}, {h}, {d}",
                "subs {c}, {f}, {a}",
                "sbcs {d}, {h}, {b}",
                "itt cs",
                "movcs {f}, {c}",
                "movcs {h}, {d}",
                "strd {f}, {h}, [{k}, #32]",
                "ldrd {c}, {d}, [{k}, #72]",
                "cmp {c}, {d}",
                "bne 3b",
                k = in(reg) $state.words.as_mut_ptr(),
                px = out(reg) _,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                e = out(reg) _,
                f = out(reg) _,
                g = out(reg) _,
                h = out(reg) _,
                options(nostack),
            )
        };
    }

    /// The last stage of the forward transform (k = log2 N - 1 >= 1) over all of `a`.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn forward_last_stage(a: &mut [u64], k: usize, state: &mut StageState) {
        address(a, k, state);
        assert_eq!(a.len() >> k, 2, "the last stage");
        // SAFETY: as for `forward_stage` (each group is the pair a[2g], a[2g + 1]).
        unsafe {
            last_stage_asm!(
                state,
                [
                    // v = mont(y r_mont): (g, h).
                    "ldrd {a}, {b}, [{px}, #8]",
                    "ldrd {c}, {d}, [{k}, #32]",
                    "umull {e}, {f}, {a}, {c}",
                    "mov {g}, #0",
                    "umaal {f}, {g}, {b}, {c}",
                    "mov {h}, #0",
                    "umaal {f}, {h}, {a}, {d}",
                    "umaal {g}, {h}, {b}, {d}",
                    "ldrd {a}, {b}, [{k}, #56]",
                    "umull {c}, {d}, {e}, {a}",
                    "mla {d}, {e}, {b}, {d}",
                    "mla {d}, {f}, {a}, {d}",
                    "orrs {e}, {e}, {f}",
                    "it ne",
                    "movne {e}, #1",
                    "adds {g}, {g}, {e}",
                    "adc {h}, {h}, #0",
                    "ldrd {a}, {b}, [{k}, #16]",
                    "umull {e}, {f}, {c}, {a}",
                    "mov {e}, #0",
                    "umaal {f}, {e}, {d}, {a}",
                    "mov {a}, #0",
                    "umaal {f}, {a}, {c}, {b}",
                    "umaal {e}, {a}, {d}, {b}",
                    "adds {g}, {g}, {e}",
                    "adc {h}, {h}, {a}",
                    // u = x mod 2q; x = u + v, y = u + 2q - v.
                    "ldrd {a}, {b}, [{px}]",
                    "ldrd {c}, {d}, [{k}, #24]",
                    "subs {e}, {a}, {c}",
                    "sbcs {f}, {b}, {d}",
                    "itt cs",
                    "movcs {a}, {e}",
                    "movcs {b}, {f}",
                    "adds {e}, {a}, {g}",
                    "adc {f}, {b}, {h}",
                    "strd {e}, {f}, [{px}]",
                    "adds {a}, {a}, {c}",
                    "adc {b}, {b}, {d}",
                    "subs {a}, {a}, {g}",
                    "sbc {b}, {b}, {h}",
                    "strd {a}, {b}, [{px}, #8]",
                ]
            );
        }
    }

    /// The last stage of the inverse transform by its index (k = log2 N - 1 >= 1, the first it
    /// runs) over all of `a`.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn inverse_last_stage(a: &mut [u64], k: usize, state: &mut StageState) {
        address(a, k, state);
        assert_eq!(a.len() >> k, 2, "the last stage");
        // SAFETY: as for `forward_last_stage`.
        unsafe {
            last_stage_asm!(
                state,
                [
                    // x = (u + v) mod 2q; t = u + 2q - v: (a, b).
                    "ldrd {a}, {b}, [{px}]",
                    "ldrd {c}, {d}, [{px}, #8]",
                    "ldrd {e}, {f}, [{k}, #24]",
                    "adds {g}, {a}, {c}",
                    "adc {h}, {b}, {d}",
                    "adds {a}, {a}, {e}",
                    "adc {b}, {b}, {f}",
                    "subs {a}, {a}, {c}",
                    "sbc {b}, {b}, {d}",
                    "subs {c}, {g}, {e}",
                    "sbcs {d}, {h}, {f}",
                    "itt cs",
                    "movcs {g}, {c}",
                    "movcs {h}, {d}",
                    "strd {g}, {h}, [{px}]",
                    // y = mont(t r_mont): (g, h).
                    "ldrd {c}, {d}, [{k}, #32]",
                    "umull {e}, {f}, {a}, {c}",
                    "mov {g}, #0",
                    "umaal {f}, {g}, {b}, {c}",
                    "mov {h}, #0",
                    "umaal {f}, {h}, {a}, {d}",
                    "umaal {g}, {h}, {b}, {d}",
                    "ldrd {a}, {b}, [{k}, #56]",
                    "umull {c}, {d}, {e}, {a}",
                    "mla {d}, {e}, {b}, {d}",
                    "mla {d}, {f}, {a}, {d}",
                    "orrs {e}, {e}, {f}",
                    "it ne",
                    "movne {e}, #1",
                    "adds {g}, {g}, {e}",
                    "adc {h}, {h}, #0",
                    "ldrd {a}, {b}, [{k}, #16]",
                    "umull {e}, {f}, {c}, {a}",
                    "mov {e}, #0",
                    "umaal {f}, {e}, {d}, {a}",
                    "mov {a}, #0",
                    "umaal {f}, {a}, {c}, {b}",
                    "umaal {e}, {a}, {d}, {b}",
                    "adds {g}, {g}, {e}",
                    "adc {h}, {h}, {a}",
                    "strd {g}, {h}, [{px}, #8]",
                ]
            );
        }
    }

    /// Stage `k >= 1` of the forward transform over all of `a`.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn forward_stage(a: &mut [u64], k: usize, state: &mut StageState) {
        address(a, k, state);
        // SAFETY: as for the group kernels: every group lies inside `a` (2^k groups of 2 half
        // words, 2^(k+1) half = a.len(), checked), 8-byte accesses to aligned u64s, and the
        // state block; no stack, declared clobbers only.
        unsafe {
            stage_asm!(
                a,
                state,
                [
                    "ldrd {a}, {b}, [{py}]",
                    "ldrd {c}, {d}, [{k}, #8]",
                    "umull {e}, {f}, {a}, {c}",
                    "mov {g}, #0",
                    "umaal {f}, {g}, {b}, {c}",
                    "mov {e}, #0",
                    "umaal {f}, {e}, {a}, {d}",
                    "umaal {g}, {e}, {b}, {d}",
                    "ldrd {c}, {d}, [{k}]",
                    "umull {f}, {h}, {a}, {c}",
                    "mla {h}, {a}, {d}, {h}",
                    "mla {h}, {b}, {c}, {h}",
                    "ldrd {a}, {b}, [{k}, #16]",
                    "mls {h}, {g}, {b}, {h}",
                    "mls {h}, {e}, {a}, {h}",
                    "umull {c}, {d}, {g}, {a}",
                    "subs {f}, {f}, {c}",
                    "sbc {h}, {h}, {d}",
                    "ldrd {a}, {b}, [{px}]",
                    "ldrd {c}, {d}, [{k}, #24]",
                    "subs {e}, {a}, {c}",
                    "sbcs {g}, {b}, {d}",
                    "itt cs",
                    "movcs {a}, {e}",
                    "movcs {b}, {g}",
                    "adds {e}, {a}, {f}",
                    "adc {g}, {b}, {h}",
                    "strd {e}, {g}, [{px}], #8",
                    "adds {a}, {a}, {c}",
                    "adc {b}, {b}, {d}",
                    "subs {a}, {a}, {f}",
                    "sbc {b}, {b}, {h}",
                    "strd {a}, {b}, [{py}], #8",
                ]
            );
        }
    }

    /// Stage `k >= 1` of the inverse transform over all of `a`.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn inverse_stage(a: &mut [u64], k: usize, state: &mut StageState) {
        address(a, k, state);
        // SAFETY: as for `forward_stage`.
        unsafe {
            stage_asm!(
                a,
                state,
                [
                    "ldrd {a}, {b}, [{px}]",
                    "ldrd {c}, {d}, [{py}]",
                    "ldrd {e}, {f}, [{k}, #24]",
                    "adds {g}, {a}, {c}",
                    "adc {h}, {b}, {d}",
                    "adds {a}, {a}, {e}",
                    "adc {b}, {b}, {f}",
                    "subs {a}, {a}, {c}",
                    "sbc {b}, {b}, {d}",
                    "subs {c}, {g}, {e}",
                    "sbcs {d}, {h}, {f}",
                    "itt cs",
                    "movcs {g}, {c}",
                    "movcs {h}, {d}",
                    "strd {g}, {h}, [{px}], #8",
                    "ldrd {c}, {d}, [{k}, #8]",
                    "umull {e}, {f}, {a}, {c}",
                    "mov {g}, #0",
                    "umaal {f}, {g}, {b}, {c}",
                    "mov {e}, #0",
                    "umaal {f}, {e}, {a}, {d}",
                    "umaal {g}, {e}, {b}, {d}",
                    "ldrd {c}, {d}, [{k}]",
                    "umull {f}, {h}, {a}, {c}",
                    "mla {h}, {a}, {d}, {h}",
                    "mla {h}, {b}, {c}, {h}",
                    "ldrd {a}, {b}, [{k}, #16]",
                    "mls {h}, {g}, {b}, {h}",
                    "mls {h}, {e}, {a}, {h}",
                    "umull {c}, {d}, {g}, {a}",
                    "subs {f}, {f}, {c}",
                    "sbc {h}, {h}, {d}",
                    "strd {f}, {h}, [{py}], #8",
                ]
            );
        }
    }

    /// `out[i] = (out[i] + k + add[i]) w mod q`, canonical, with `c = [k, w, w_shoup, q]`.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn shoup_sums(out: &mut [u64], add: &[u64], c: &[u64; 4]) {
        let n = out.len();
        assert_eq!(n, add.len());
        if n == 0 {
            return;
        }
        // SAFETY: as for `montgomery_products` (`add` read, `out` read and written, `c` read).
        unsafe {
            core::arch::asm!(
                "2:",
                // t = x + k + s mod 2^64: (a, b).
                "ldrd {a}, {b}, [{px}]",
                "ldrd {c}, {d}, [{k}]",
                "adds {a}, {a}, {c}",
                "adc {b}, {b}, {d}",
                "ldrd {c}, {d}, [{py}], #8",
                "adds {a}, {a}, {c}",
                "adc {b}, {b}, {d}",
                // q_hat = high word of t w_shoup: (g, e).
                "ldrd {c}, {d}, [{k}, #16]",
                "umull {e}, {f}, {a}, {c}",
                "mov {g}, #0",
                "umaal {f}, {g}, {b}, {c}",
                "mov {e}, #0",
                "umaal {f}, {e}, {a}, {d}",
                "umaal {g}, {e}, {b}, {d}",
                // r = t w - q_hat q mod 2^64, in [0, 2q): (f, h); then below q.
                "ldrd {c}, {d}, [{k}, #8]",
                "umull {f}, {h}, {a}, {c}",
                "mla {h}, {a}, {d}, {h}",
                "mla {h}, {b}, {c}, {h}",
                "ldrd {a}, {b}, [{k}, #24]",
                "mls {h}, {g}, {b}, {h}",
                "mls {h}, {e}, {a}, {h}",
                "umull {c}, {d}, {g}, {a}",
                "subs {f}, {f}, {c}",
                "sbc {h}, {h}, {d}",
                "subs {c}, {f}, {a}",
                "sbcs {d}, {h}, {b}",
                "itt cs",
                "movcs {f}, {c}",
                "movcs {h}, {d}",
                "strd {f}, {h}, [{px}], #8",
                "subs {n}, {n}, #1",
                "bne 2b",
                px = inout(reg) out.as_mut_ptr() => _,
                py = inout(reg) add.as_ptr() => _,
                n = inout(reg) n => _,
                k = in(reg) c.as_ptr(),
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                e = out(reg) _,
                f = out(reg) _,
                g = out(reg) _,
                h = out(reg) _,
                options(nostack),
            );
        }
    }

    /// `out[i] = mont(out[i] y[i])` as [`super::CompactNtt::mul_lazy`] computes it (the high word
    /// of the product, plus that of `m q` for `m = low word * (-q^-1)`, plus one unless the low
    /// word is zero), with `c = [q, -q^-1 mod 2^64]`.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn montgomery_products(out: &mut [u64], y: &[u64], c: &[u64; 2]) {
        let n = out.len();
        assert_eq!(n, y.len());
        if n == 0 {
            return;
        }
        // SAFETY: reads `y[0..n]` and reads and writes `out[0..n]` (n the common length, checked,
        // at least 1) through post-incremented pointers, 8 bytes at a time from aligned u64s,
        // and reads the 16 bytes of `c`; no stack, declared clobbers only.
        unsafe {
            core::arch::asm!(
                "2:",
                // (e, f, g, h) = x y, 128 bits.
                "ldrd {a}, {b}, [{px}]",
                "ldrd {c}, {d}, [{py}], #8",
                "umull {e}, {f}, {a}, {c}",
                "mov {g}, #0",
                "umaal {f}, {g}, {b}, {c}",
                "mov {h}, #0",
                "umaal {f}, {h}, {a}, {d}",
                "umaal {g}, {h}, {b}, {d}",
                // m = low word * (-q^-1): (c, d); high word += (low word != 0).
                "ldrd {a}, {b}, [{k}, #8]",
                "umull {c}, {d}, {e}, {a}",
                "mla {d}, {e}, {b}, {d}",
                "mla {d}, {f}, {a}, {d}",
                "orrs {e}, {e}, {f}",
                "it ne",
                "movne {e}, #1",
                "adds {g}, {g}, {e}",
                "adc {h}, {h}, #0",
                // + high word of m q.
                "ldrd {a}, {b}, [{k}]",
                "umull {e}, {f}, {c}, {a}",
                "mov {e}, #0",
                "umaal {f}, {e}, {d}, {a}",
                "mov {a}, #0",
                "umaal {f}, {a}, {c}, {b}",
                "umaal {e}, {a}, {d}, {b}",
                "adds {g}, {g}, {e}",
                "adc {h}, {h}, {a}",
                "strd {g}, {h}, [{px}], #8",
                "subs {n}, {n}, #1",
                "bne 2b",
                px = inout(reg) out.as_mut_ptr() => _,
                py = inout(reg) y.as_ptr() => _,
                n = inout(reg) n => _,
                k = in(reg) c.as_ptr(),
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                e = out(reg) _,
                f = out(reg) _,
                g = out(reg) _,
                h = out(reg) _,
                options(nostack),
            );
        }
    }

    /// See the portable version.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn forward(lo: &mut [u64], hi: &mut [u64], c: &[u64; 4]) {
        let n = lo.len();
        assert_eq!(n, hi.len());
        if n == 0 {
            return;
        }
        // SAFETY: see above.
        unsafe {
            core::arch::asm!(
                "2:",
                // q_hat = high word of y * w_shoup: (g, e).
                "ldrd {a}, {b}, [{py}]",
                "ldrd {c}, {d}, [{k}, #8]",
                "umull {e}, {f}, {a}, {c}",
                "mov {g}, #0",
                "umaal {f}, {g}, {b}, {c}",
                "mov {e}, #0",
                "umaal {f}, {e}, {a}, {d}",
                "umaal {g}, {e}, {b}, {d}",
                // v = y * w - q_hat * q mod 2^64: (f, h).
                "ldrd {c}, {d}, [{k}]",
                "umull {f}, {h}, {a}, {c}",
                "mla {h}, {a}, {d}, {h}",
                "mla {h}, {b}, {c}, {h}",
                "ldrd {a}, {b}, [{k}, #16]",
                "mls {h}, {g}, {b}, {h}",
                "mls {h}, {e}, {a}, {h}",
                "umull {c}, {d}, {g}, {a}",
                "subs {f}, {f}, {c}",
                "sbc {h}, {h}, {d}",
                // u = x mod 2q: (a, b); 2q stays in (c, d).
                "ldrd {a}, {b}, [{px}]",
                "ldrd {c}, {d}, [{k}, #24]",
                "subs {e}, {a}, {c}",
                "sbcs {g}, {b}, {d}",
                "itt cs",
                "movcs {a}, {e}",
                "movcs {b}, {g}",
                // x = u + v, y = u + 2q - v.
                "adds {e}, {a}, {f}",
                "adc {g}, {b}, {h}",
                "strd {e}, {g}, [{px}], #8",
                "adds {a}, {a}, {c}",
                "adc {b}, {b}, {d}",
                "subs {a}, {a}, {f}",
                "sbc {b}, {b}, {h}",
                "strd {a}, {b}, [{py}], #8",
                "subs {n}, {n}, #1",
                "bne 2b",
                px = inout(reg) lo.as_mut_ptr() => _,
                py = inout(reg) hi.as_mut_ptr() => _,
                n = inout(reg) n => _,
                k = in(reg) c.as_ptr(),
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                e = out(reg) _,
                f = out(reg) _,
                g = out(reg) _,
                h = out(reg) _,
                options(nostack),
            );
        }
    }

    /// See the portable version.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub(super) fn inverse(lo: &mut [u64], hi: &mut [u64], c: &[u64; 4]) {
        let n = lo.len();
        assert_eq!(n, hi.len());
        if n == 0 {
            return;
        }
        // SAFETY: see above.
        unsafe {
            core::arch::asm!(
                "2:",
                // x = (u + v) mod 2q; t = u + 2q - v: (a, b).
                "ldrd {a}, {b}, [{px}]",
                "ldrd {c}, {d}, [{py}]",
                "ldrd {e}, {f}, [{k}, #24]",
                "adds {g}, {a}, {c}",
                "adc {h}, {b}, {d}",
                "adds {a}, {a}, {e}",
                "adc {b}, {b}, {f}",
                "subs {a}, {a}, {c}",
                "sbc {b}, {b}, {d}",
                "subs {c}, {g}, {e}",
                "sbcs {d}, {h}, {f}",
                "itt cs",
                "movcs {g}, {c}",
                "movcs {h}, {d}",
                "strd {g}, {h}, [{px}], #8",
                // q_hat = high word of t * w_shoup: (g, e).
                "ldrd {c}, {d}, [{k}, #8]",
                "umull {e}, {f}, {a}, {c}",
                "mov {g}, #0",
                "umaal {f}, {g}, {b}, {c}",
                "mov {e}, #0",
                "umaal {f}, {e}, {a}, {d}",
                "umaal {g}, {e}, {b}, {d}",
                // y = t * w - q_hat * q mod 2^64: (f, h).
                "ldrd {c}, {d}, [{k}]",
                "umull {f}, {h}, {a}, {c}",
                "mla {h}, {a}, {d}, {h}",
                "mla {h}, {b}, {c}, {h}",
                "ldrd {a}, {b}, [{k}, #16]",
                "mls {h}, {g}, {b}, {h}",
                "mls {h}, {e}, {a}, {h}",
                "umull {c}, {d}, {g}, {a}",
                "subs {f}, {f}, {c}",
                "sbc {h}, {h}, {d}",
                "strd {f}, {h}, [{py}], #8",
                "subs {n}, {n}, #1",
                "bne 2b",
                px = inout(reg) lo.as_mut_ptr() => _,
                py = inout(reg) hi.as_mut_ptr() => _,
                n = inout(reg) n => _,
                k = in(reg) c.as_ptr(),
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                e = out(reg) _,
                f = out(reg) _,
                g = out(reg) _,
                h = out(reg) _,
                options(nostack),
            );
        }
    }
}

/// concrete-ntt's choice of primitive `2^log_order`-th root of unity modulo the prime `q`:
/// starting from -1, take `log_order - 1` successive square roots, each by Tonelli-Shanks with
/// the smallest quadratic non-residue. Each square root it returns is the one the standard
/// algorithm (Tonelli 1891, Shanks 1973) returns for that non-residue, so the choice is
/// reproducible; the tests compare it with the backend for every prime of every preset.
fn backend_root(q: &Modulus, log_order: u32) -> Option<u64> {
    let qv = q.value();
    let s = (qv - 1).trailing_zeros();
    let odd = (qv - 1) >> s;
    let z = (2..qv).find(|&c| q.pow(c, (qv - 1) / 2) == qv - 1)?;
    let mut root = qv - 1;
    for _ in 1..log_order {
        root = tonelli_shanks(q, odd, s, z, root)?;
    }
    Some(root)
}

/// A square root of `x` modulo `q` with `q - 1 = odd * 2^s` and `z` a non-residue, or `None`
/// when `x` is not a square.
fn tonelli_shanks(q: &Modulus, odd: u64, s: u32, z: u64, x: u64) -> Option<u64> {
    let mut m = s;
    let mut c = q.pow(z, odd);
    let mut t = q.pow(x, odd);
    let mut r = q.pow(x, odd.div_ceil(2));
    loop {
        if t == 0 {
            return Some(0);
        }
        if t == 1 {
            return Some(r);
        }
        // The least i in 1..m with t^(2^i) = 1.
        let mut i = 0;
        let mut t_pow = t;
        while i < m {
            t_pow = q.mul(t_pow, t_pow);
            i += 1;
            if t_pow == 1 {
                break;
            }
        }
        if i == m {
            return None;
        }
        let b = q.pow(c, 1u64 << (m - i - 1));
        m = i;
        c = q.mul(b, b);
        t = q.mul(t, c);
        r = q.mul(r, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::NttTable;
    use crate::rlwe::params::PRESETS;
    use crate::{Parameters, Security};
    use alloc::vec::Vec;

    fn pseudo_random(n: usize, q: u64, seed: u64) -> Vec<u64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 2) % q
            })
            .collect()
    }

    /// Every prime of every preset at its own N, and each preset's first primes at smaller N:
    /// the same evaluations as concrete-ntt, and the inverse is exact.
    #[test]
    fn equals_the_backend_for_every_preset_prime() {
        for p in PRESETS {
            let params = Parameters::new(&p.literal, Security::InsecureForTestingOnly).unwrap();
            let primes: Vec<u64> = params.q().iter().chain(params.p()).copied().collect();
            for (idx, &qv) in primes.iter().enumerate() {
                let q = Modulus::new(qv);
                let sizes: &[usize] = if idx < 2 { &[16, 1024, params.n()] } else { &[params.n()] };
                for &n in sizes {
                    let table = NttTable::new(n, q).unwrap();
                    let lean = CompactNtt::new(n, &q).unwrap();
                    let x = pseudo_random(n, qv, qv ^ n as u64);
                    let (mut a, mut b) = (x.clone(), x.clone());
                    table.forward(&mut a);
                    lean.forward(&mut b);
                    assert_eq!(a, b, "{} prime {idx} N={n}: forward", p.literal.name);
                    lean.inverse(&mut b);
                    assert_eq!(b, x, "{} prime {idx} N={n}: round trip", p.literal.name);
                }
            }
        }
    }

    /// The scaled ternary load, lazy transforms and one Montgomery product per slot give the
    /// exact negacyclic product (checked against schoolbook multiplication).
    #[test]
    fn lazy_product_is_the_negacyclic_product() {
        let qv = 1152921504606584833u64; // 60 bits, 1 mod 2^18
        let q = Modulus::new(qv);
        let n = 64;
        let t = CompactNtt::new(n, &q).unwrap();
        let s: Vec<i8> = (0..n).map(|i| [(-1i8), 0, 1][(i * 7 + 3) % 3]).collect();
        let a = pseudo_random(n, qv, 9);
        let mut buf = alloc::vec![0u64; n];
        t.load_ternary(&s, t.product_scale(), &mut buf);
        t.forward_lazy(&mut buf);
        // The fused load and first stage: the same residues.
        let mut fused = alloc::vec![0u64; n];
        t.forward_ternary_lazy(&s, t.product_scale(), &mut fused);
        for (x, y) in fused.iter().zip(&buf) {
            assert_eq!(t.reduce_4q(*x), t.reduce_4q(*y));
            assert!(*x < 4 * qv);
        }
        let mut a_eval = a.clone();
        t.forward(&mut a_eval);
        for (x, &y) in buf.iter_mut().zip(&a_eval) {
            *x = t.mul_lazy(*x, y);
        }
        t.inverse_lazy_unnormalized(&mut buf);
        let got: Vec<u64> = buf.iter().map(|&x| t.reduce_lazy(x)).collect();
        let mut want = alloc::vec![0u64; n];
        for (i, &si) in s.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                let prod = q.mul(q.reduce_i64(si as i64), aj);
                let k = (i + j) % n;
                want[k] = if i + j < n { q.add(want[k], prod) } else { q.sub(want[k], prod) };
            }
        }
        assert_eq!(got, want);
        for x in [0u64, 1, qv - 1, qv, 2 * qv + 5, u64::MAX] {
            assert_eq!(t.reduce(x), x % qv);
        }
    }
}
