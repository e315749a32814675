//! RNS basis extension and exact division by a prime (rescaling), organised per limb so that a
//! host can run the limbs on separate threads while a device runs them one after another.

use alloc::vec::Vec;

use super::elementwise;
use super::modulus::Modulus;
use super::montgomery::Montgomery;
use super::ntt::NttTable;

/// Coefficients processed together by the lazy 128-bit accumulator.
const LANES: usize = 8;

/// Fast (approximate) basis conversion from basis B to basis C (Halevi-Polyakov-Shoup 2019,
/// "An Improved RNS Variant of the BFV Homomorphic Encryption Scheme", section 2.2):
/// `x_C = sum_i [x_i * (B/b_i)^-1]_{b_i} * (B/b_i) mod c_j`, which equals `x + u*B` for some
/// `0 <= u < |B|`. Hybrid key switching tolerates the `u*B` term by construction.
#[derive(Clone, Debug)]
pub struct BasisConverter {
    from: Vec<Modulus>,
    to: Vec<Modulus>,
    /// `(B/b_i)^-1 mod b_i` and its Shoup companion.
    hat_inv: Vec<(u64, u64)>,
    /// `(B/b_i) mod c_j`, row j holds the |B| values for output limb j.
    hat_mod_to: Vec<u64>,
    /// `B mod c_j` and its Shoup companion.
    b_mod_to: Vec<(u64, u64)>,
    /// `1 / b_i` in f64, for the exact (centered) variant.
    inv_from_f64: Vec<f64>,
    /// `hat_mod_to` in Montgomery form (times `2^64 mod c_j`), for the lazy sums.
    hat_mod_to_mont: Vec<u64>,
    /// Montgomery constants of each output modulus.
    to_mont: Vec<Montgomery>,
    /// Products per Montgomery reduction (the sum of that many stays below `c_j * 2^64`).
    group: usize,
}

impl BasisConverter {
    /// Precomputes the constants; `from` and `to` must be pairwise coprime sets of primes.
    pub fn new(from: &[Modulus], to: &[Modulus]) -> Self {
        let hat_inv = from
            .iter()
            .enumerate()
            .map(|(i, bi)| {
                let mut prod = 1u64;
                for (k, bk) in from.iter().enumerate() {
                    if k != i {
                        prod = bi.mul(prod, bi.reduce(bk.value()));
                    }
                }
                // Pairwise distinct primes: the product is invertible.
                let inv = bi.inv(prod).unwrap_or(0);
                (inv, bi.shoup(inv))
            })
            .collect();
        let mut hat_mod_to = Vec::with_capacity(from.len() * to.len());
        for cj in to {
            for i in 0..from.len() {
                let mut prod = 1u64;
                for (k, bk) in from.iter().enumerate() {
                    if k != i {
                        prod = cj.mul(prod, cj.reduce(bk.value()));
                    }
                }
                hat_mod_to.push(prod);
            }
        }
        let b_mod_to = to
            .iter()
            .map(|cj| {
                let b = from.iter().fold(1u64, |acc, bk| cj.mul(acc, cj.reduce(bk.value())));
                (b, cj.shoup(b))
            })
            .collect();
        let inv_from_f64 = from.iter().map(|b| 1.0 / b.value() as f64).collect();
        let to_mont: Vec<Montgomery> = to.iter().map(Montgomery::new).collect();
        let k = from.len();
        let hat_mod_to_mont = hat_mod_to
            .iter()
            .enumerate()
            .map(|(idx, &h)| to_mont[idx / k.max(1)].to_montgomery(&to[idx / k.max(1)], h))
            .collect();
        let max_from = from.iter().map(|b| b.value()).max().unwrap_or(1);
        let group = to_mont.first().map_or(1, |m| m.terms(max_from));
        BasisConverter {
            from: from.to_vec(),
            to: to.to_vec(),
            hat_inv,
            hat_mod_to,
            b_mod_to,
            inv_from_f64,
            hat_mod_to_mont,
            to_mont,
            group,
        }
    }

    /// Input basis size.
    pub fn from_len(&self) -> usize {
        self.from.len()
    }

    /// Output basis size.
    pub fn to_len(&self) -> usize {
        self.to.len()
    }

    /// Phase 1 for input limb `i`: `y_i = x_i * (B/b_i)^-1 mod b_i` (coefficient form).
    pub fn scale_input_limb(&self, i: usize, x: &[u64], y: &mut [u64]) {
        let b = &self.from[i];
        let (w, ws) = self.hat_inv[i];
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(all(feature = "simd", target_arch = "x86_64"))]
        if let Some(s) = super::simd::ifma() {
            done = super::simd::mul_shoup_slice(s, b.value(), w, ws, x, y);
        }
        for (o, &v) in y.iter_mut().zip(x).skip(done) {
            *o = b.mul_shoup(v, w, ws);
        }
    }

    /// `((B/b_i)^-1 mod b_i, Shoup companion)`, the constant of phase 1.
    #[cfg(test)]
    pub(crate) fn hat_inv_of(&self, i: usize) -> (u64, u64) {
        self.hat_inv[i]
    }

    /// Phase 2 for output limb `j`: `out = sum_i y_i * (B/b_i) mod c_j`, where `ys` holds all
    /// phase-1 limbs back to back (`|B| * n` words).
    pub fn accumulate_output_limb(&self, j: usize, ys: &[u64], out: &mut [u64]) {
        self.accumulate(j, ys, None, out);
    }

    /// Phase 2, with the exact variant's correction `- u * B mod c_j` when `u` is given.
    pub(crate) fn accumulate(&self, j: usize, ys: &[u64], u: Option<&[u64]>, out: &mut [u64]) {
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(all(feature = "simd", target_arch = "x86_64"))]
        if let Some(s) = super::simd::ifma() {
            let k = self.from.len();
            let m = super::simd::ModConsts { q: self.to[j].value(), q_inv: self.to_mont[j].q_inv() };
            let (bm, bm_s) = self.b_mod_to[j];
            let row_m = &self.hat_mod_to_mont[j * k..(j + 1) * k];
            let centered = u.map(|u| (u, bm, bm_s));
            let small_from = self.from.iter().all(|b| b.value() < super::simd::SMALL);
            done = super::simd::accumulate_limb(s, m, row_m, self.group, ys, small_from, centered, out);
        }
        self.accumulate_scalar(j, ys, u, done, out);
    }

    /// The scalar path of phase 2 (the fallback, and the reference of the vector kernel's tests)
    /// on coefficients `from..`.
    pub(crate) fn accumulate_scalar(&self, j: usize, ys: &[u64], u: Option<&[u64]>, from: usize, out: &mut [u64]) {
        let n = out.len();
        let k = self.from.len();
        let c = &self.to[j];
        let row = &self.hat_mod_to[j * k..(j + 1) * k];
        // LANES coefficients at a time, each with a 128-bit sum kept as two words in registers
        // (about twice as fast as a block of u128 in memory). The constants are in Montgomery
        // form and every `group` products (a sum below c_j 2^64) take one Montgomery reduction:
        // two multiplications where Barrett needs four.
        let row_m = &self.hat_mod_to_mont[j * k..(j + 1) * k];
        let mont = &self.to_mont[j];
        let group = self.group;
        let full = from + (n - from) / LANES * LANES;
        let mut start = from;
        while start < full {
            let mut total = [0u64; LANES];
            for (ci, chunk) in row_m.chunks(group).enumerate() {
                let mut lo = [0u64; LANES];
                let mut hi = [0u64; LANES];
                for (di, &h) in chunk.iter().enumerate() {
                    let i = ci * group + di;
                    let yi: &[u64; LANES] = ys[i * n + start..i * n + start + LANES].try_into().unwrap_or(&[0; LANES]);
                    for u in 0..LANES {
                        let p = yi[u] as u128 * h as u128;
                        let (s, carry) = lo[u].overflowing_add(p as u64);
                        lo[u] = s;
                        hi[u] += (p >> 64) as u64 + carry as u64;
                    }
                }
                for u in 0..LANES {
                    total[u] = c.add(total[u], mont.reduce(hi[u], lo[u]));
                }
            }
            out[start..start + LANES].copy_from_slice(&total);
            start += LANES;
        }
        // Coefficients past the last full group of LANES: one at a time.
        for (t, o) in out.iter_mut().enumerate().skip(full) {
            *o = row.iter().enumerate().fold(0u64, |acc, (i, &h)| c.add(acc, c.mul(ys[i * n + t], h)));
        }
        if let Some(u) = u {
            let (bm, bm_s) = self.b_mod_to[j];
            for (o, &uv) in out.iter_mut().zip(u).skip(from) {
                *o = c.sub(*o, c.mul_shoup(c.reduce(uv), bm, bm_s));
            }
        }
    }

    /// For the exact variant: `u[t] = round(sum_i y_i[t] / b_i)`, the multiple of B that the fast
    /// conversion adds to the centered value (Halevi-Polyakov-Shoup 2019, section 2.3). The f64
    /// sum is exact to about 2^-50, so only values within that of a rounding boundary could be off
    /// by one, which the callers tolerate as one extra unit of rounding.
    pub fn rounding_quotients(&self, ys: &[u64], u: &mut [u64]) {
        #[cfg(all(feature = "simd", target_arch = "x86_64"))]
        if let Some(s) = super::simd::ifma() {
            // The same IEEE operations in the same order, compiled for AVX-512 (which converts
            // between u64 and f64 in vector registers).
            return super::simd::with_features(
                s,
                #[inline(always)]
                || self.rounding_quotients_scalar(ys, u),
            );
        }
        self.rounding_quotients_scalar(ys, u)
    }

    /// The loop of [`Self::rounding_quotients`], by blocks of coefficients whose f64 sums sit on
    /// the stack (no allocation per call).
    #[inline(always)]
    pub(crate) fn rounding_quotients_scalar(&self, ys: &[u64], u: &mut [u64]) {
        const BLOCK: usize = 256;
        let n = u.len();
        for (b, ub) in u.chunks_mut(BLOCK).enumerate() {
            let start = b * BLOCK;
            let mut acc = [0.5f64; BLOCK];
            let acc = &mut acc[..ub.len()];
            for (i, &inv) in self.inv_from_f64.iter().enumerate() {
                for (a, &y) in acc.iter_mut().zip(&ys[i * n + start..i * n + start + ub.len()]) {
                    *a += y as f64 * inv;
                }
            }
            for (o, &a) in ub.iter_mut().zip(acc.iter()) {
                *o = a as u64;
            }
        }
    }

    /// Exact variant of [`Self::accumulate_output_limb`]: the centered representative of `x` in
    /// `(-B/2, B/2]` modulo `c_j`, given the quotients from [`Self::rounding_quotients`].
    pub fn accumulate_output_limb_centered(&self, j: usize, ys: &[u64], u: &[u64], out: &mut [u64]) {
        self.accumulate(j, ys, Some(u), out);
    }

    /// Whole conversion, sequentially: `x` holds |B| limbs, `out` gets |C| limbs, both in
    /// coefficient form; `scratch` holds |B| limbs.
    pub fn convert(&self, x: &[u64], out: &mut [u64], scratch: &mut [u64]) {
        let k = self.from.len();
        let n = x.len() / k;
        for i in 0..k {
            self.scale_input_limb(i, &x[i * n..(i + 1) * n], &mut scratch[i * n..(i + 1) * n]);
        }
        for (j, o) in out.chunks_exact_mut(n).enumerate() {
            self.accumulate_output_limb(j, &scratch[..k * n], o);
        }
    }
}

/// Constants for dividing by the last prime `q_l` of a chain, with rounding.
#[derive(Clone, Debug)]
pub struct Rescaler {
    last: Modulus,
    /// For each remaining limb i: (q_l^-1 mod q_i, Shoup, (q_l - 1)/2 mod q_i).
    consts: Vec<(u64, u64, u64)>,
}

impl Rescaler {
    /// Constants to divide a polynomial over `moduli[..=l]` by `moduli[l]`.
    pub fn new(moduli: &[Modulus]) -> Self {
        let (last, rest) = moduli.split_last().expect("rescaling needs two limbs");
        let half = (last.value() - 1) / 2;
        let consts = rest
            .iter()
            .map(|qi| {
                let inv = qi.inv(qi.reduce(last.value())).unwrap_or(0);
                (inv, qi.shoup(inv), qi.reduce(half))
            })
            .collect();
        Rescaler { last: *last, consts }
    }

    /// Rounds the last limb (coefficient form) up front: `t = x_l + (q_l-1)/2 mod q_l`.
    pub fn prepare_last(&self, last_coeff: &mut [u64]) {
        let half = (self.last.value() - 1) / 2;
        for v in last_coeff.iter_mut() {
            *v = self.last.add(*v, half);
        }
    }

    /// `x_i <- (x_i + (q_l-1)/2 - t) * q_l^-1 mod q_i`: the rounded quotient on limb `i`.
    /// `t` is the prepared last limb, `tmp` a scratch limb; if `ntt` is given, `x_i` is in
    /// evaluation form and `t` is moved there through `tmp`.
    pub fn rescale_limb(
        &self,
        i: usize,
        qi: &Modulus,
        x: &mut [u64],
        t: &[u64],
        tmp: &mut [u64],
        ntt: Option<&NttTable>,
    ) {
        let (inv, inv_s, half_i) = self.consts[i];
        // t mod q_i as a Shoup product by 1 (exact for any 64-bit t), then - (q_l - 1)/2.
        tmp.copy_from_slice(t);
        elementwise::mul_shoup_assign(qi, tmp, 1, qi.shoup(1));
        elementwise::sub_scalar_assign(qi, tmp, half_i);
        if let Some(table) = ntt {
            table.forward(tmp);
        }
        elementwise::sub_assign(qi, x, tmp);
        elementwise::mul_shoup_assign(qi, x, inv, inv_s);
    }
}
