//! The host's vector kernels (feature `simd`): AVX-512 with IFMA, chosen at run time, with the
//! scalar code of the ring layer as the automatic fallback. `HETUNE_FORCE_SCALAR=1` (any value
//! but `0` or empty) forces the fallback for the whole process: the portable NTT backend and the
//! scalar kernels, so the test suite can run on the path that devices and older processors take.
//!
//! Every kernel here computes exactly what its scalar twin computes (the arithmetic is exact
//! modular arithmetic; the one floating-point kernel performs the same IEEE operations in the
//! same order), and a test checks each against its twin on random inputs for every preset prime.
//!
//! The kernels are written with `pulp`'s safe wrappers of the intrinsics: no `unsafe` here.
//!
//! Products of residues below 2^62 use IFMA (`vpmadd52{lo,hi}uq`, 52 x 52 -> 104 bits): each
//! 64-bit operand is split as `x = x_0 + 2^52 x_1` (`x_1 < 2^12`; the instructions read only the
//! low 52 bits, so `x_0` needs no masking), and `x y = L_00 + 2^52 (H_00 + L_01 + L_10) +
//! 2^104 (H_01 + H_10 + L_11)` where `L`/`H` are the low and high 52-bit halves of the partial
//! products (`x_1 y_1 < 2^24` has no high half). Sums of such products stay in three 64-bit
//! lanes with weights 1, 2^52 and 2^104 and are normalised once per Montgomery reduction.

extern crate std;

/// Whether `HETUNE_FORCE_SCALAR` asks for the scalar fallback (read once per process).
pub fn force_scalar() -> bool {
    static FORCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCE.get_or_init(|| std::env::var_os("HETUNE_FORCE_SCALAR").is_some_and(|v| !v.is_empty() && v != "0"))
}

/// Whether the vector kernels run in this process (an x86-64 processor with AVX-512 and IFMA,
/// and the fallback not forced).
pub fn active() -> bool {
    #[cfg(target_arch = "x86_64")]
    return ifma().is_some();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::*;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::__m512i;

    use pulp::{as_arrays, as_arrays_mut, cast};

    pulp::simd_type! {
        /// AVX-512 (F, BW, CD, DQ, VL) with IFMA.
        pub struct Ifma {
            pub sse: "sse",
            pub sse2: "sse2",
            pub fxsr: "fxsr",
            pub sse3: "sse3",
            pub ssse3: "ssse3",
            pub sse4_1: "sse4.1",
            pub sse4_2: "sse4.2",
            pub popcnt: "popcnt",
            pub avx: "avx",
            pub avx2: "avx2",
            pub bmi1: "bmi1",
            pub bmi2: "bmi2",
            pub fma: "fma",
            pub lzcnt: "lzcnt",
            pub avx512f: "avx512f",
            pub avx512bw: "avx512bw",
            pub avx512cd: "avx512cd",
            pub avx512dq: "avx512dq",
            pub avx512vl: "avx512vl",
            pub avx512ifma: "avx512ifma",
        }
    }

    /// The token of the vector kernels, or `None` for the scalar fallback.
    #[inline]
    pub(crate) fn ifma() -> Option<Ifma> {
        if super::force_scalar() {
            None
        } else {
            Ifma::try_new()
        }
    }

    type V = __m512i;

    /// Moduli below this take the kernels' short paths: their residues fit IFMA's 52-bit
    /// operands, so the partial products of the high parts vanish.
    pub(crate) const SMALL: u64 = 1 << 52;

    /// Eight 64-bit lanes from an array.
    #[inline(always)]
    fn ld(a: &[u64; 8]) -> V {
        cast(*a)
    }

    /// Eight 64-bit lanes from `s[at..at + 8]`.
    #[inline(always)]
    fn ld_at(s: &[u64], at: usize) -> V {
        ld(&as_arrays::<8, _>(&s[at..at + 8]).0[0])
    }

    /// The lanes as an array.
    #[inline(always)]
    fn st(v: V) -> [u64; 8] {
        cast(v)
    }

    impl Ifma {
        #[inline(always)]
        fn splat(self, x: u64) -> V {
            self.avx512f._mm512_set1_epi64(x as i64)
        }
        #[inline(always)]
        fn add(self, a: V, b: V) -> V {
            self.avx512f._mm512_add_epi64(a, b)
        }
        #[inline(always)]
        fn sub(self, a: V, b: V) -> V {
            self.avx512f._mm512_sub_epi64(a, b)
        }
        #[inline(always)]
        fn shr52(self, a: V) -> V {
            self.avx512f._mm512_srli_epi64::<52>(a)
        }
        /// Low 64 bits of the lane products.
        #[inline(always)]
        fn mullo(self, a: V, b: V) -> V {
            self.avx512dq._mm512_mullo_epi64(a, b)
        }
        /// `acc + low 52 bits of (a mod 2^52)(b mod 2^52)`.
        #[inline(always)]
        fn lo52(self, acc: V, a: V, b: V) -> V {
            self.avx512ifma._mm512_madd52lo_epu64(acc, a, b)
        }
        /// `acc + high 52 bits of (a mod 2^52)(b mod 2^52)`.
        #[inline(always)]
        fn hi52(self, acc: V, a: V, b: V) -> V {
            self.avx512ifma._mm512_madd52hi_epu64(acc, a, b)
        }
        /// `x - q` where `x >= q`, else `x`, for `x < 2q`: the smaller of `x` and `x - q` as
        /// unsigned words (`x - q` wraps above `x` exactly when `x < q`).
        #[inline(always)]
        fn reduce_once(self, x: V, q: V) -> V {
            self.avx512f._mm512_min_epu64(x, self.sub(x, q))
        }
        /// `a + b mod q` for residues.
        #[inline(always)]
        fn add_mod(self, a: V, b: V, q: V) -> V {
            self.reduce_once(self.add(a, b), q)
        }
        /// `a - b mod q` for residues: `a - b` wraps exactly when `a < b`, and then `+ q` is the
        /// smaller of the two.
        #[inline(always)]
        fn sub_mod(self, a: V, b: V, q: V) -> V {
            let d = self.sub(a, b);
            self.avx512f._mm512_min_epu64(d, self.add(d, q))
        }
        /// `floor(x y / 2^64)` for any 64-bit lanes (see the module docs for the split; the part
        /// `L_00 + 2^52 (A_1 mod 2^12)` stays below 2^64, so the floor is `A_1 / 2^12 + 2^40 A_2`).
        #[inline(always)]
        fn mulhi(self, x: V, y: V) -> V {
            let (x1, y1) = (self.shr52(x), self.shr52(y));
            let z = self.splat(0);
            let a1 = self.lo52(self.lo52(self.hi52(z, x, y), x, y1), x1, y);
            let a2 = self.lo52(self.hi52(self.hi52(z, x, y1), x1, y), x1, y1);
            self.add(self.avx512f._mm512_srli_epi64::<12>(a1), self.avx512f._mm512_slli_epi64::<40>(a2))
        }
        /// [`Self::mulhi`] for `y < 2^52` (`y_1 = 0`): `x y = L_00 + 2^52 (H_00 + L_10) +
        /// 2^104 H_10`, three products instead of six.
        #[inline(always)]
        fn mulhi_small(self, x: V, y: V) -> V {
            let x1 = self.shr52(x);
            let z = self.splat(0);
            let a1 = self.lo52(self.hi52(z, x, y), x1, y);
            let a2 = self.hi52(z, x1, y);
            self.add(self.avx512f._mm512_srli_epi64::<12>(a1), self.avx512f._mm512_slli_epi64::<40>(a2))
        }
        /// `x w mod q` with the Shoup companion `ws = floor(w 2^64 / q)`, as
        /// [`crate::ring::Modulus::mul_shoup`].
        #[inline(always)]
        fn mul_shoup(self, x: V, w: V, ws: V, q: V) -> V {
            self.mul_shoup_k::<false>(x, w, ws, q)
        }
        /// [`Self::mul_shoup`]; with `XS` the caller guarantees `x < 2^52`.
        #[inline(always)]
        fn mul_shoup_k<const XS: bool>(self, x: V, w: V, ws: V, q: V) -> V {
            let quot = if XS { self.mulhi_small(ws, x) } else { self.mulhi(x, ws) };
            self.reduce_once(self.sub(self.mullo(x, w), self.mullo(quot, q)), q)
        }
        /// `(hi 2^64 + lo) 2^-64 mod q` for `hi < q`, as [`crate::ring::montgomery::Montgomery::reduce`];
        /// with `QS` the caller guarantees `q < 2^52`.
        #[inline(always)]
        fn mont_reduce_k<const QS: bool>(self, hi: V, lo: V, q: V, q_inv: V) -> V {
            let m = self.mullo(lo, q_inv);
            let t = if QS { self.mulhi_small(m, q) } else { self.mulhi(m, q) };
            self.sub_mod(hi, t, q)
        }
    }

    /// A lazy sum of products in three lanes of weights 1, 2^52 and 2^104 (module docs); holds
    /// at least 2^10 products of operands below 2^64 without overflow.
    #[derive(Clone, Copy)]
    struct Acc {
        a0: V,
        a1: V,
        a2: V,
    }

    impl Ifma {
        #[inline(always)]
        fn acc_zero(self) -> Acc {
            let z = self.splat(0);
            Acc { a0: z, a1: z, a2: z }
        }
        /// `acc + x y`, with `x1 = x >> 52` and `y1 = y >> 52` supplied by the caller (shared
        /// between products). With `XS` (`YS`) the caller guarantees `x < 2^52` (`y < 2^52`):
        /// the partial products with `x_1 = 0` (`y_1 = 0`) are skipped, so residues of primes
        /// below 2^52 take two IFMA per product instead of seven (a 64-bit one times such a
        /// residue: four).
        #[inline(always)]
        fn mac_k<const XS: bool, const YS: bool>(self, acc: Acc, x: V, x1: V, y: V, y1: V) -> Acc {
            let a0 = self.lo52(acc.a0, x, y);
            let mut a1 = self.hi52(acc.a1, x, y);
            let mut a2 = acc.a2;
            if !YS {
                a1 = self.lo52(a1, x, y1);
                a2 = self.hi52(a2, x, y1);
            }
            if !XS {
                a1 = self.lo52(a1, x1, y);
                a2 = self.hi52(a2, x1, y);
            }
            if !XS && !YS {
                a2 = self.lo52(a2, x1, y1);
            }
            Acc { a0, a1, a2 }
        }
        /// `total + acc 2^-64 mod q` for a sum `acc` below `q 2^64` (one Montgomery reduction);
        /// with `QS` the caller guarantees `q < 2^52`.
        #[inline(always)]
        fn fold_k<const QS: bool>(self, total: V, acc: Acc, q: V, q_inv: V) -> V {
            let (hi, lo) = self.acc_words(acc);
            self.add_mod(total, self.mont_reduce_k::<QS>(hi, lo, q, q_inv), q)
        }
        /// The sum as `(hi, lo)` words, for sums below 2^128.
        #[inline(always)]
        fn acc_words(self, acc: Acc) -> (V, V) {
            let lo = self.add(acc.a0, self.avx512f._mm512_slli_epi64::<52>(acc.a1));
            let carry = self.avx512f._mm512_cmplt_epu64_mask(lo, acc.a0);
            let hi =
                self.add(self.avx512f._mm512_srli_epi64::<12>(acc.a1), self.avx512f._mm512_slli_epi64::<40>(acc.a2));
            (self.avx512f._mm512_mask_add_epi64(hi, carry, hi, self.splat(1)), lo)
        }
    }

    /// Constants of one modulus for the kernels.
    #[derive(Clone, Copy)]
    pub(crate) struct ModConsts {
        /// The modulus.
        pub q: u64,
        /// `q^-1 mod 2^64` (Montgomery).
        pub q_inv: u64,
    }

    /// `y[t] = x[t] w mod q` (Shoup), as [`crate::ring::Modulus::mul_shoup`], on the whole
    /// multiples of 8 coefficients; returns how many it did.
    pub(crate) fn mul_shoup_slice(s: Ifma, q: u64, w: u64, ws: u64, x: &[u64], y: &mut [u64]) -> usize {
        s.vectorize(
            #[inline(always)]
            || {
                let (qv, wv, wsv) = (s.splat(q), s.splat(w), s.splat(ws));
                let yb = as_arrays_mut::<8, _>(y).0;
                let xb = as_arrays::<8, _>(x).0;
                for (o, i) in yb.iter_mut().zip(xb) {
                    *o = st(s.mul_shoup(ld(i), wv, wsv, qv));
                }
                8 * yb.len().min(xb.len())
            },
        )
    }

    /// `a[t] = a[t] w mod q` (Shoup) in place, on the whole multiples of 8 coefficients; returns
    /// how many it did. Any 64-bit inputs (the rescaler reduces words with it).
    pub(crate) fn mul_shoup_in_place(s: Ifma, q: u64, w: u64, ws: u64, a: &mut [u64]) -> usize {
        s.vectorize(
            #[inline(always)]
            || {
                let (qv, wv, wsv) = (s.splat(q), s.splat(w), s.splat(ws));
                let ab = as_arrays_mut::<8, _>(a).0;
                for o in ab.iter_mut() {
                    *o = st(s.mul_shoup(ld(o), wv, wsv, qv));
                }
                8 * ab.len()
            },
        )
    }

    /// Constants of a general modular product: Montgomery reduction of the 128-bit product
    /// (which leaves a factor 2^-64), then a Shoup product by `2^64 mod q` to remove it.
    pub(crate) struct MulConsts {
        q: u64,
        q_inv: u64,
        r: u64,
        r_shoup: u64,
    }

    impl MulConsts {
        pub(crate) fn new(q: &crate::ring::Modulus) -> Self {
            let mont = crate::ring::montgomery::Montgomery::new(q);
            let r = q.reduce_u128(1u128 << 64);
            MulConsts { q: q.value(), q_inv: mont.q_inv(), r, r_shoup: q.shoup(r) }
        }
    }

    /// `out[t] = a[t] y[t] mod q` where `a` is `x` or, without `x`, `out` itself; with `acc`,
    /// `out[t] = out[t] + a[t] y[t] mod q`. Works on the whole multiples of 8 coefficients and
    /// returns how many it did. Operands are residues, so the product's high word is below `q`
    /// (the precondition of the Montgomery reduction).
    pub(crate) fn mul_mod_slice(
        s: Ifma,
        m: &MulConsts,
        out: &mut [u64],
        x: Option<&[u64]>,
        y: &[u64],
        acc: bool,
    ) -> usize {
        if m.q < SMALL {
            mul_mod_slice_k::<true>(s, m, out, x, y, acc)
        } else {
            mul_mod_slice_k::<false>(s, m, out, x, y, acc)
        }
    }

    /// [`mul_mod_slice`]; with `QS` the modulus (so every operand) is below 2^52.
    #[inline(always)]
    fn mul_mod_slice_k<const QS: bool>(
        s: Ifma,
        m: &MulConsts,
        out: &mut [u64],
        x: Option<&[u64]>,
        y: &[u64],
        acc: bool,
    ) -> usize {
        let len = out.len().min(y.len()).min(x.map_or(usize::MAX, |x| x.len()));
        let full = len - len % 8;
        s.vectorize(
            #[inline(always)]
            || {
                let (qv, qinv, rv, rsv) = (s.splat(m.q), s.splat(m.q_inv), s.splat(m.r), s.splat(m.r_shoup));
                let ob = as_arrays_mut::<8, _>(&mut out[..full]).0;
                for (blk, o) in ob.iter_mut().enumerate() {
                    let at = blk * 8;
                    let a = x.map_or_else(|| ld(o), |x| ld_at(x, at));
                    let b = ld_at(y, at);
                    let (hi, lo) = s.acc_words(s.mac_k::<QS, QS>(s.acc_zero(), a, s.shr52(a), b, s.shr52(b)));
                    let p = s.mul_shoup_k::<QS>(s.mont_reduce_k::<QS>(hi, lo, qv, qinv), rv, rsv, qv);
                    *o = st(if acc { s.add_mod(ld(o), p, qv) } else { p });
                }
            },
        );
        full
    }

    /// Phase 2 of a basis conversion on one output limb: `out[t] = sum_i ys_i[t] h_i 2^-64 mod q`
    /// with `h` in Montgomery form, one Montgomery reduction per `group` products, then, with
    /// `centered = Some((u, b, b_shoup))`, `out[t] -= u[t] b mod q` (the exact conversion).
    /// `ys` holds the inputs back to back (`h.len()` limbs of `out.len()` words). Processes the
    /// whole multiples of 8 coefficients and returns how many it did.
    ///
    /// `small_inputs`: every input limb is a residue below 2^52 (the input primes are).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accumulate_limb(
        s: Ifma,
        m: ModConsts,
        h: &[u64],
        group: usize,
        ys: &[u64],
        small_inputs: bool,
        centered: Option<(&[u64], u64, u64)>,
        out: &mut [u64],
    ) -> usize {
        match (small_inputs, m.q < SMALL) {
            (true, true) => accumulate_limb_k::<true, true>(s, m, h, group, ys, centered, out),
            (true, false) => accumulate_limb_k::<true, false>(s, m, h, group, ys, centered, out),
            (false, true) => accumulate_limb_k::<false, true>(s, m, h, group, ys, centered, out),
            (false, false) => accumulate_limb_k::<false, false>(s, m, h, group, ys, centered, out),
        }
    }

    /// [`accumulate_limb`]; with `XS` the inputs and with `QS` the output modulus (so the
    /// constants `h`) are below 2^52.
    #[inline(always)]
    fn accumulate_limb_k<const XS: bool, const QS: bool>(
        s: Ifma,
        m: ModConsts,
        h: &[u64],
        group: usize,
        ys: &[u64],
        centered: Option<(&[u64], u64, u64)>,
        out: &mut [u64],
    ) -> usize {
        let n = out.len();
        let full = n - n % 8;
        s.vectorize(
            #[inline(always)]
            || {
                let (qv, qinv) = (s.splat(m.q), s.splat(m.q_inv));
                let ob = as_arrays_mut::<8, _>(&mut out[..full]).0;
                for (blk, o) in ob.iter_mut().enumerate() {
                    let at = blk * 8;
                    let mut total = s.splat(0);
                    for (ci, chunk) in h.chunks(group).enumerate() {
                        let mut acc = s.acc_zero();
                        for (di, &hv) in chunk.iter().enumerate() {
                            let i = ci * group + di;
                            let x = ld_at(ys, i * n + at);
                            acc = s.mac_k::<XS, QS>(acc, x, s.shr52(x), s.splat(hv), s.splat(hv >> 52));
                        }
                        total = s.fold_k::<QS>(total, acc, qv, qinv);
                    }
                    if let Some((u, b, bs)) = centered {
                        // The rounding quotients are below the input limb count: small.
                        let uv = ld_at(u, at);
                        total = s.sub_mod(total, s.mul_shoup_k::<true>(uv, s.splat(b), s.splat(bs), qv), qv);
                    }
                    *o = st(total);
                }
            },
        );
        full
    }

    /// The key inner product on one limb (see [`crate::ring::dot::key_inner_product`]), whole
    /// multiples of 8 coefficients; returns how many it did.
    pub(crate) fn key_inner_product(
        s: Ifma,
        m: ModConsts,
        group: usize,
        d: &crate::ring::dot::KeyDigits<'_>,
        start: usize,
        out0: &mut [u64],
        out1: &mut [u64],
    ) -> usize {
        if m.q < SMALL {
            key_inner_product_k::<true>(s, m, group, d, start, out0, out1)
        } else {
            key_inner_product_k::<false>(s, m, group, d, start, out0, out1)
        }
    }

    /// [`key_inner_product`]; with `QS` the modulus (so every digit and key residue) is below
    /// 2^52.
    #[inline(always)]
    fn key_inner_product_k<const QS: bool>(
        s: Ifma,
        m: ModConsts,
        group: usize,
        d: &crate::ring::dot::KeyDigits<'_>,
        start: usize,
        out0: &mut [u64],
        out1: &mut [u64],
    ) -> usize {
        let crate::ring::dot::KeyDigits { x, perm, kb, ka } = *d;
        let len = out0.len().min(out1.len());
        let full = len - len % 8;
        s.vectorize(
            #[inline(always)]
            || {
                let (qv, qinv) = (s.splat(m.q), s.splat(m.q_inv));
                let o0 = as_arrays_mut::<8, _>(&mut out0[..full]).0;
                let o1 = as_arrays_mut::<8, _>(&mut out1[..full]).0;
                for (blk, (o0, o1)) in o0.iter_mut().zip(o1.iter_mut()).enumerate() {
                    let at = start + blk * 8;
                    let (mut t0, mut t1) = (s.splat(0), s.splat(0));
                    let (mut acc0, mut acc1) = (s.acc_zero(), s.acc_zero());
                    for j in 0..x.len() {
                        let xv = match perm {
                            None => ld_at(x[j], at),
                            Some(p) => {
                                let idx = as_arrays::<8, _>(&p[at..at + 8]).0[0];
                                ld(&idx.map(|k| x[j][k as usize]))
                            }
                        };
                        let (b, a) = (ld_at(kb[j], at), ld_at(ka[j], at));
                        let x1 = s.shr52(xv);
                        acc0 = s.mac_k::<QS, QS>(acc0, xv, x1, b, s.shr52(b));
                        acc1 = s.mac_k::<QS, QS>(acc1, xv, x1, a, s.shr52(a));
                        if (j + 1) % group == 0 || j + 1 == x.len() {
                            t0 = s.fold_k::<QS>(t0, acc0, qv, qinv);
                            t1 = s.fold_k::<QS>(t1, acc1, qv, qinv);
                            (acc0, acc1) = (s.acc_zero(), s.acc_zero());
                        }
                    }
                    *o0 = st(t0);
                    *o1 = st(t1);
                }
            },
        );
        full
    }

    /// Runs `f` with the vector features enabled, so that plain loops in it (floating point,
    /// conversions, comparisons) are compiled for AVX-512; `f` must be `#[inline(always)]`.
    #[inline(always)]
    pub(crate) fn with_features<R>(s: Ifma, f: impl FnOnce() -> R) -> R {
        s.vectorize(f)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::ring::dot::KeyDigits;
    use crate::ring::montgomery::Montgomery;
    use crate::ring::{BasisConverter, Modulus, NttTable};
    use crate::rlwe::params::PRESETS;
    use crate::{Parameters, Security};

    /// Coefficients per test limb: not a multiple of 8, so every kernel's scalar tail runs too.
    const N: usize = 203;

    /// Every distinct prime of every preset (chain and special primes), with the ring degree.
    fn preset_primes() -> Vec<(usize, Vec<Modulus>, Vec<Modulus>)> {
        PRESETS
            .iter()
            .map(|p| {
                let params = Parameters::new(&p.literal, Security::InsecureForTestingOnly).unwrap();
                let q = params.q_moduli().collect();
                let pm = params.p_moduli().collect();
                (params.n(), q, pm)
            })
            .collect()
    }

    /// Residues modulo `q`, a few of them at the extremes (0, 1, q - 1) to exercise the carries.
    fn residues(rng: &mut ChaCha8Rng, q: u64, len: usize) -> Vec<u64> {
        (0..len)
            .map(|t| match t % 11 {
                0 => q - 1,
                5 => 0,
                7 => 1,
                _ => rng.next_u64() % q,
            })
            .collect()
    }

    fn token() -> Option<Ifma> {
        let s = ifma();
        if s.is_none() {
            std::eprintln!("no AVX-512 IFMA here (or HETUNE_FORCE_SCALAR is set): vector kernels not compared");
        }
        s
    }

    #[test]
    fn fast_ntt_is_bit_identical_to_the_portable_backend_on_every_preset_prime() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (n, q, p) in preset_primes() {
            for m in q.iter().chain(&p) {
                let fast = NttTable::new(n, *m).unwrap();
                let portable = NttTable::new_portable(n, *m).unwrap();
                assert_eq!(fast.is_fast(), !force_scalar());
                let x = residues(&mut rng, m.value(), n);
                let (mut a, mut b) = (x.clone(), x.clone());
                fast.forward(&mut a);
                portable.forward(&mut b);
                assert_eq!(a, b, "forward, q = {}", m.value());
                let (mut c, mut d) = (a.clone(), a.clone());
                fast.inverse(&mut a);
                portable.inverse(&mut b);
                assert_eq!(a, b, "inverse, q = {}", m.value());
                assert_eq!(a, x, "round trip, q = {}", m.value());
                fast.inverse_unnormalized(&mut c);
                portable.inverse_unnormalized(&mut d);
                assert_eq!(c, d, "unnormalised inverse, q = {}", m.value());
            }
        }
    }

    #[test]
    fn shoup_kernel_matches_scalar_on_every_preset_prime() {
        let Some(s) = token() else { return };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (_, q, p) in preset_primes() {
            for m in q.iter().chain(&p) {
                let w = rng.next_u64() % m.value();
                let ws = m.shoup(w);
                let x = residues(&mut rng, m.value(), N);
                let mut y = vec![0u64; N];
                let done = mul_shoup_slice(s, m.value(), w, ws, &x, &mut y);
                assert_eq!(done, N - N % 8);
                for t in 0..done {
                    assert_eq!(y[t], m.mul_shoup(x[t], w, ws), "q = {} t = {t}", m.value());
                }
            }
        }
    }

    #[test]
    fn elementwise_kernels_match_scalar_on_every_preset_prime() {
        let Some(s) = token() else { return };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (_, q, p) in preset_primes() {
            for m in q.iter().chain(&p) {
                let (a, b, c) = (
                    residues(&mut rng, m.value(), N),
                    residues(&mut rng, m.value(), N),
                    residues(&mut rng, m.value(), N),
                );
                let mut prod = a.clone();
                crate::ring::elementwise::mul_assign(m, &mut prod, &b);
                let mut acc = a.clone();
                crate::ring::elementwise::mul_acc(m, &mut acc, &b, &c);
                let mut into = vec![0u64; N];
                crate::ring::elementwise::mul_into(m, &mut into, &b, &c);
                let (mut sum, mut diff) = (vec![0u64; N], vec![0u64; N]);
                crate::ring::elementwise::add_into(m, &mut sum, &b, &c);
                crate::ring::elementwise::sub_into(m, &mut diff, &b, &c);
                let w = rng.next_u64() % m.value();
                let mut scaled = a.clone();
                let done = mul_shoup_in_place(s, m.value(), w, m.shoup(w), &mut scaled);
                assert_eq!(done, N - N % 8);
                // Any 64-bit word reduced as a Shoup product by 1 (the rescaler's reduction).
                let wide: Vec<u64> =
                    (0..N).map(|t| if t % 5 == 0 { u64::MAX - t as u64 } else { rng.next_u64() }).collect();
                let mut reduced = wide.clone();
                crate::ring::elementwise::mul_shoup_assign(m, &mut reduced, 1, m.shoup(1));
                for t in 0..N {
                    assert_eq!(prod[t], m.mul(a[t], b[t]), "q = {} t = {t}", m.value());
                    assert_eq!(acc[t], m.add(a[t], m.mul(b[t], c[t])), "q = {} t = {t}", m.value());
                    assert_eq!(into[t], m.mul(b[t], c[t]), "q = {} t = {t}", m.value());
                    assert_eq!((sum[t], diff[t]), (m.add(b[t], c[t]), m.sub(b[t], c[t])), "q = {}", m.value());
                    assert_eq!(reduced[t] as u128, wide[t] as u128 % m.value() as u128);
                    if t < done {
                        assert_eq!(scaled[t], m.mul_shoup(a[t], w, m.shoup(w)));
                    }
                }
            }
        }
    }

    /// The conversions a key switch makes at the top level: each digit to the rest of Q ∪ P
    /// (ModUp) and P to Q (ModDown), and a long basis to exceed one Montgomery group.
    fn conversions(q: &[Modulus], p: &[Modulus]) -> Vec<(Vec<Modulus>, Vec<Modulus>)> {
        let alpha = p.len();
        let mut out = Vec::new();
        for digit in q.chunks(alpha) {
            let rest: Vec<Modulus> = q.iter().chain(p).filter(|m| !digit.contains(m)).copied().collect();
            out.push((digit.to_vec(), rest));
        }
        out.push((p.to_vec(), q.to_vec()));
        out.push((q.to_vec(), p.to_vec()));
        out
    }

    #[test]
    fn basis_conversion_kernels_match_scalar_on_every_preset_prime() {
        let Some(s) = token() else { return };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (_, q, p) in preset_primes() {
            for (from, to) in conversions(&q, &p) {
                let conv = BasisConverter::new(&from, &to);
                let x: Vec<u64> = from.iter().flat_map(|m| residues(&mut rng, m.value(), N)).collect();
                // Phase 1 through the public (dispatching) path; phase 2 on the kernel and the
                // scalar path, plain and centred.
                let mut ys = vec![0u64; from.len() * N];
                for (i, (xi, yi)) in x.chunks(N).zip(ys.chunks_mut(N)).enumerate() {
                    conv.scale_input_limb(i, xi, yi);
                    for t in 0..N {
                        let (w, ws) = conv.hat_inv_of(i);
                        assert_eq!(yi[t], from[i].mul_shoup(xi[t], w, ws));
                    }
                }
                let mut u = vec![0u64; N];
                let mut u_ref = vec![0u64; N];
                conv.rounding_quotients(&ys, &mut u);
                conv.rounding_quotients_scalar(&ys, &mut u_ref);
                assert_eq!(u, u_ref);
                for j in 0..to.len() {
                    for centred in [None, Some(&u[..])] {
                        let mut fast = vec![0u64; N];
                        let mut slow = vec![0u64; N];
                        conv.accumulate(j, &ys, centred, &mut fast);
                        conv.accumulate_scalar(j, &ys, centred, 0, &mut slow);
                        assert_eq!(fast, slow, "from {} to {} limb {j}", from.len(), to.len());
                    }
                }
                let _ = s;
            }
        }
    }

    #[test]
    fn key_inner_product_kernel_matches_scalar_on_every_preset_prime() {
        let Some(s) = token() else { return };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // A permutation of the coefficients (the hoisted-rotation path reads through one).
        let mut perm: Vec<u32> = (0..N as u32).collect();
        for t in (1..N).rev() {
            perm.swap(t, rng.next_u64() as usize % (t + 1));
        }
        for (_, q, p) in preset_primes() {
            for m in q.iter().chain(&p) {
                let mont = Montgomery::new(m);
                let group = mont.terms(m.value());
                for beta in [1, 2, 4, 7, 9, 13] {
                    let x: Vec<Vec<u64>> = (0..beta).map(|_| residues(&mut rng, m.value(), N)).collect();
                    let kb: Vec<Vec<u64>> = (0..beta).map(|_| residues(&mut rng, m.value(), N)).collect();
                    let ka: Vec<Vec<u64>> = (0..beta).map(|_| residues(&mut rng, m.value(), N)).collect();
                    let x: Vec<&[u64]> = x.iter().map(|v| &v[..]).collect();
                    let kb: Vec<&[u64]> = kb.iter().map(|v| &v[..]).collect();
                    let ka: Vec<&[u64]> = ka.iter().map(|v| &v[..]).collect();
                    for pm in [None, Some(&perm[..])] {
                        // A window that starts off a multiple of 8, as a tile of a limb would.
                        let start = 3;
                        let len = N - start;
                        let (mut f0, mut f1) = (vec![0u64; len], vec![0u64; len]);
                        let (mut s0, mut s1) = (vec![0u64; len], vec![0u64; len]);
                        let m2 = ModConsts { q: m.value(), q_inv: mont.q_inv() };
                        let d = KeyDigits { x: &x, perm: pm, kb: &kb, ka: &ka };
                        let done = key_inner_product(s, m2, group, &d, start, &mut f0, &mut f1);
                        assert_eq!(done, len - len % 8);
                        crate::ring::dot::key_inner_product(m, &mont, &d, start, &mut f0, &mut f1);
                        crate::ring::dot::key_inner_product_scalar(m, &mont, group, &d, start, &mut s0, &mut s1);
                        assert_eq!(f0, s0, "q = {} beta = {beta}", m.value());
                        assert_eq!(f1, s1, "q = {} beta = {beta}", m.value());
                    }
                }
            }
        }
    }
}
