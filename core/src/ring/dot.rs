//! The key inner product of hybrid key switching on one limb: two dot products over the digits
//! that share their left operand, `(sum_j x_j b_j, sum_j x_j a_j)`, with the key `(b_j, a_j)` in
//! Montgomery form (times `2^64`), summed lazily in 128 bits and reduced once per group of
//! products (Montgomery 1985; see [`super::montgomery`]). With the `simd` feature the AVX-512
//! kernel of [`super::simd`] runs when the processor has it.

use super::modulus::Modulus;
use super::montgomery::Montgomery;

/// Coefficients processed together by the scalar 128-bit accumulators (kept in registers).
const LANES: usize = 8;

/// The operands of a key inner product on one limb.
#[derive(Clone, Copy, Debug)]
pub struct KeyDigits<'a> {
    /// The decomposition's digits on this limb (residues modulo the limb's prime).
    pub x: &'a [&'a [u64]],
    /// Read the digits through this permutation (an automorphism applied on the fly, for
    /// hoisted rotations): digit coefficient `perm[c]` stands at `c`.
    pub perm: Option<&'a [u32]>,
    /// The key's first polynomial on this limb, one per digit, in Montgomery form.
    pub kb: &'a [&'a [u64]],
    /// The key's second polynomial on this limb, one per digit, in Montgomery form.
    pub ka: &'a [&'a [u64]],
}

/// `out_0[t] = sum_j x_j[c] kb_j[c] 2^-64 mod q` and `out_1[t]` the same with `ka`, for
/// `c = start + t` (see [`KeyDigits`] for the permutation).
pub fn key_inner_product(
    q: &Modulus,
    mont: &Montgomery,
    d: &KeyDigits<'_>,
    start: usize,
    out0: &mut [u64],
    out1: &mut [u64],
) {
    let group = mont.terms(q.value());
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(all(feature = "simd", target_arch = "x86_64"))]
    if let Some(s) = super::simd::ifma() {
        let m = super::simd::ModConsts { q: q.value(), q_inv: mont.q_inv() };
        done = super::simd::key_inner_product(s, m, group, d, start, out0, out1);
    }
    key_inner_product_scalar(q, mont, group, d, start + done, &mut out0[done..], &mut out1[done..]);
}

/// The scalar path of [`key_inner_product`] (the fallback, and the reference of the vector
/// kernel's tests).
pub(crate) fn key_inner_product_scalar(
    q: &Modulus,
    mont: &Montgomery,
    group: usize,
    d: &KeyDigits<'_>,
    start: usize,
    out0: &mut [u64],
    out1: &mut [u64],
) {
    let KeyDigits { x, perm, kb, ka } = *d;
    let beta = x.len();
    let end = start + out0.len().min(out1.len());
    let mut at = start;
    while at < end {
        let len = LANES.min(end - at);
        // 128-bit sums as (low, high) words in registers, LANES coefficients at a time.
        let mut l0 = [0u64; LANES];
        let mut h0 = [0u64; LANES];
        let mut l1 = [0u64; LANES];
        let mut h1 = [0u64; LANES];
        let mut t0 = [0u64; LANES];
        let mut t1 = [0u64; LANES];
        for j in 0..beta {
            let (e, kb, ka) = (x[j], &kb[j][at..at + len], &ka[j][at..at + len]);
            for u in 0..len {
                let xv = match perm {
                    None => e[at + u],
                    Some(p) => e[p[at + u] as usize],
                } as u128;
                let p0 = xv * kb[u] as u128;
                let (s0, c0) = l0[u].overflowing_add(p0 as u64);
                l0[u] = s0;
                h0[u] += (p0 >> 64) as u64 + c0 as u64;
                let p1 = xv * ka[u] as u128;
                let (s1, c1) = l1[u].overflowing_add(p1 as u64);
                l1[u] = s1;
                h1[u] += (p1 >> 64) as u64 + c1 as u64;
            }
            // Every `group` digits (a sum below q 2^64), one Montgomery reduction takes the
            // factor 2^64 out.
            if (j + 1) % group == 0 || j + 1 == beta {
                for u in 0..len {
                    t0[u] = q.add(t0[u], mont.reduce(h0[u], l0[u]));
                    t1[u] = q.add(t1[u], mont.reduce(h1[u], l1[u]));
                    (l0[u], h0[u], l1[u], h1[u]) = (0, 0, 0, 0);
                }
            }
        }
        let o = at - start;
        out0[o..o + len].copy_from_slice(&t0[..len]);
        out1[o..o + len].copy_from_slice(&t1[..len]);
        at += len;
    }
}
