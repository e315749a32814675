//! Hybrid key switching (Han-Ki, "Better Bootstrapping for Approximate Homomorphic Encryption",
//! CT-RSA 2020, section 3), split into the three steps that relinearisation, rotation,
//! conjugation and hoisting share:
//!
//! 1. [`Evaluator::decompose`] (ModUp): the input `d` at level `l` is cut into digits of `alpha`
//!    limbs; each digit is extended by fast basis conversion to all of `Q_l ∪ P` and moved to the
//!    evaluation domain. A digit's own limbs are the input's limbs, never copied.
//! 2. [`Evaluator::switch_decomposed`]: the key inner product
//!    `(sum_j ext_j * b_j, sum_j ext_j * a_j)` over `Q_l ∪ P`, optionally reading the digits
//!    through an automorphism's permutation (hoisting: the decomposition of `c_1` serves every
//!    rotation of one ciphertext), accumulated lazily in 128 bits and reduced once per
//!    coefficient; then ModDown: both accumulators divided by `P` and added to the output
//!    polynomials, the Q limbs finished straight from the inner product.
//!
//! Every step runs its limbs on rayon and works in the pooled [`super::workspace::Workspace`].

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::automorphism::automorphism_eval;
use hetune_core::ring::dot::{key_inner_product, KeyDigits};
use hetune_core::ring::elementwise;
use hetune_core::rlwe::Context;
use rayon::prelude::*;

use super::keys::KeyEntry;
use super::workspace::Workspace;
use super::Evaluator;

/// Coefficients of one tile of the key inner product (its two results stay in L1 while the
/// caller finishes them).
const TILE: usize = 512;

/// Most key-switching digits (one per ciphertext limb at most).
const MAX_DIGITS: usize = hetune_core::rlwe::params::MAX_Q_LIMBS;

impl Evaluator {
    /// Number of digits of a decomposition at `level`.
    #[inline]
    pub(crate) fn digits_at(&self, level: usize) -> usize {
        level / self.ctx.params().alpha() + 1
    }

    /// ModUp: decomposes `d` (evaluation form, limbs back to back, at least `level + 1` of them)
    /// into `ws.ext`; uses `ws.y` and `ws.conv`.
    pub(crate) fn decompose(&self, d: &[u64], level: usize, ws: &mut Workspace) {
        let ctx: &Context = &self.ctx;
        let n = ctx.n();
        let q_len = ctx.q_len();
        let qp_len = ctx.qp().len();
        let alpha = ctx.params().alpha();
        let beta = self.digits_at(level);
        let convs = &self.modup[level];
        let ntt = ctx.ntt();
        let Workspace { y, ext, conv, .. } = ws;

        // Phase A, per input limb: to coefficients, then the digit converter's phase 1.
        y[..(level + 1) * n]
            .par_chunks_exact_mut(n)
            .zip(conv[..(level + 1) * n].par_chunks_exact_mut(n))
            .enumerate()
            .for_each(|(k, (yk, tk))| {
                tk.copy_from_slice(&d[k * n..(k + 1) * n]);
                ntt[k].inverse(tk);
                let j = k / alpha;
                convs[j].scale_input_limb(k - j * alpha, tk, yk);
            });

        // Phase B, per (digit, output limb) outside the digit: phase 2, then to evaluations.
        let y: &[u64] = y;
        // Limb-major layout: the digits of one limb are neighbours, so consecutive transforms use
        // the same prime's tables while they are in cache.
        let dnum = ctx.params().dnum();
        ext[..qp_len * dnum * n].par_chunks_exact_mut(n).enumerate().for_each(|(idx, e)| {
            let i = idx / dnum;
            let j = idx % dnum;
            if j >= beta {
                return;
            }
            let start = j * alpha;
            let end = ((j + 1) * alpha).min(level + 1);
            let active = i <= level || i >= q_len;
            if !active || (start..end).contains(&i) {
                return;
            }
            convs[j].accumulate_output_limb(i, &y[start * n..end * n], e);
            ntt[i].forward(e);
        });
    }

    /// Key inner product of a decomposition with `key` on one limb `i` (global index in Q ∪ P),
    /// by tiles of coefficients that stay in L1: `finish(c, r_0, r_1)` receives the tile starting
    /// at coefficient `c` of `sum_j ext_j b_j` and `sum_j ext_j a_j`, for every tile of `range`.
    /// With `perm`, the digits are read through that evaluation-domain permutation (the
    /// automorphism of a rotation applied to the decomposition of `c_1`). `d` is the decomposed
    /// input, whose own limbs stand in for each digit's.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn inner_product_limb(
        &self,
        i: usize,
        range: std::ops::Range<usize>,
        d: &[u64],
        level: usize,
        ext: &[u64],
        key: &KeyEntry,
        perm: Option<&[u32]>,
        mut finish: impl FnMut(usize, &mut [u64], &mut [u64]),
    ) {
        let ctx: &Context = &self.ctx;
        let n = ctx.n();
        let q_len = ctx.q_len();
        let alpha = ctx.params().alpha();
        let beta = self.digits_at(level);
        let dnum = ctx.params().dnum();
        let a = key.a(ctx);
        let b = &key.key.digits;
        // Per digit: the extended limb (the input's own limb inside the digit) and the key's.
        let mut src: [&[u64]; MAX_DIGITS] = [&[]; MAX_DIGITS];
        let mut kb: [&[u64]; MAX_DIGITS] = [&[]; MAX_DIGITS];
        let mut ka: [&[u64]; MAX_DIGITS] = [&[]; MAX_DIGITS];
        for j in 0..beta {
            let own = i < q_len && i / alpha == j;
            src[j] = if own { &d[i * n..(i + 1) * n] } else { &ext[(i * dnum + j) * n..(i * dnum + j + 1) * n] };
            kb[j] = b[j].limb(i);
            ka[j] = a[j].limb(i);
        }
        let digits = KeyDigits { x: &src[..beta], perm, kb: &kb[..beta], ka: &ka[..beta] };
        let (mut r0, mut r1) = ([0u64; TILE], [0u64; TILE]);
        let mut start = range.start;
        while start < range.end {
            let len = TILE.min(range.end - start);
            key_inner_product(&ctx.qp()[i], &self.mont[i], &digits, start, &mut r0[..len], &mut r1[..len]);
            finish(start, &mut r0[..len], &mut r1[..len]);
            start += len;
        }
    }

    /// The key inner product of a decomposition (in `ws.ext`) with `key`, optionally through
    /// an automorphism's permutation, followed by ModDown, added to `(out_0, out_1)`:
    /// `out_k += round((acc_k - [acc_k]_P) / P)` on limbs `0..=level`.
    ///
    /// With `rotated = Some((c_0, perm))` the outputs are overwritten instead with
    /// `(phi(c_0 + r_0), phi(r_1))`, `r_k` the ModDown results and `phi` the evaluation-domain
    /// permutation `perm` (a rotation's last step): each limb is finished in its conversion
    /// buffer while that is in cache and permuted straight into the output, so a rotation
    /// needs no copy of `c_0`, no zeroed intermediate and no second pass over memory.
    ///
    /// The P limbs of the two accumulators are computed first and converted exactly, as their
    /// centred representatives: the fast conversion's overflow `v P` is removed with
    /// `v = round(sum_k y_k / p_k)` computed in floating point (Halevi-Polyakov-Shoup 2019,
    /// section 2.3; the core's centred conversion). Without that, the overflow (about
    /// `alpha / 2` on average, not centred) multiplies `1 + s` and its mean adds up coherently in
    /// the slots near the real axis, costing about 8 bits of precision at N = 2^12. Then each Q
    /// limb's inner product is finished directly into the division by P, so the Q part of the
    /// accumulators never goes through memory.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn switch_decomposed(
        &self,
        d: &[u64],
        level: usize,
        key: &KeyEntry,
        perm: Option<&[u32]>,
        ws: &mut Workspace,
        out0: &mut [u64],
        out1: &mut [u64],
        rotated: Option<(&[u64], &[u32])>,
    ) {
        let ctx: &Context = &self.ctx;
        let n = ctx.n();
        let q_len = ctx.q_len();
        let alpha = ctx.params().alpha();
        let ntt = ctx.ntt();
        let conv = self.ctx.p_to_q();
        let Workspace { ext, acc, yp, conv: cbuf, v, .. } = ws;
        let ext: &[u64] = ext;

        // The P limbs of both accumulators: inner product (by halves of limbs, so that alpha
        // limbs balance over two threads), to coefficients, phase 1.
        let (ap0, ap1) = acc[..2 * alpha * n].split_at_mut(alpha * n);
        let half = n / 2;
        ap0.par_chunks_exact_mut(half).zip(ap1.par_chunks_exact_mut(half)).enumerate().for_each(|(idx, (x0, x1))| {
            let (k, from) = (idx / 2, (idx % 2) * half);
            self.inner_product_limb(q_len + k, from..from + half, d, level, ext, key, perm, |t, r0, r1| {
                x0[t - from..t - from + r0.len()].copy_from_slice(r0);
                x1[t - from..t - from + r1.len()].copy_from_slice(r1);
            });
        });
        ap0.par_chunks_exact_mut(n)
            .chain(ap1.par_chunks_exact_mut(n))
            .zip(yp[..2 * alpha * n].par_chunks_exact_mut(n))
            .enumerate()
            .for_each(|(idx, (x, yk))| {
                let k = idx % alpha;
                ntt[q_len + k].inverse(x);
                conv.scale_input_limb(k, x, yk);
            });
        let yp: &[u64] = &yp[..2 * alpha * n];
        let (yp0, yp1) = yp.split_at(alpha * n);
        {
            let (v0, v1) = v[..2 * n].split_at_mut(n);
            rayon::join(|| conv.rounding_quotients(yp0, v0), || conv.rounding_quotients(yp1, v1));
        }
        let (v0, v1) = v[..2 * n].split_at(n);

        // Per Q limb: the centred conversion of both P parts, to evaluations, then the inner
        // product finished into the exact division by P.
        let limbs = (level + 1) * n;
        let (c0, c1) = cbuf.split_at_mut(q_len * n);
        out0[..limbs]
            .par_chunks_exact_mut(n)
            .zip(out1[..limbs].par_chunks_exact_mut(n))
            .zip(c0[..limbs].par_chunks_exact_mut(n))
            .zip(c1[..limbs].par_chunks_exact_mut(n))
            .enumerate()
            .for_each(|(i, (((o0, o1), c0), c1))| {
                let q = &ctx.q()[i];
                conv.accumulate_output_limb_centered(i, yp0, v0, c0);
                ntt[i].forward(c0);
                conv.accumulate_output_limb_centered(i, yp1, v1, c1);
                ntt[i].forward(c1);
                let (w, wsh) = self.p_inv[i];
                match rotated {
                    None => {
                        // out += (acc - [acc]_P) / P on each tile while it is in L1.
                        let (c0, c1): (&[u64], &[u64]) = (c0, c1);
                        self.inner_product_limb(i, 0..n, d, level, ext, key, perm, |t, r0, r1| {
                            let tile = t..t + r0.len();
                            for (r, c, o) in
                                [(r0, &c0[tile.clone()], &mut o0[tile.clone()]), (r1, &c1[tile.clone()], &mut o1[tile])]
                            {
                                elementwise::sub_assign(q, r, c);
                                elementwise::mul_shoup_assign(q, r, w, wsh);
                                elementwise::add_assign(q, o, r);
                            }
                        });
                    }
                    Some((base, phi)) => {
                        // c_k = (acc_k - [acc_k]_P) / P (+ c_0 for k = 0) in place, tile by
                        // tile, then the permutation into the output.
                        let base = &base[i * n..(i + 1) * n];
                        self.inner_product_limb(i, 0..n, d, level, ext, key, perm, |t, r0, r1| {
                            let tile = t..t + r0.len();
                            for (r, c) in [(&mut *r0, &mut c0[tile.clone()]), (&mut *r1, &mut c1[tile.clone()])] {
                                elementwise::sub_assign(q, r, c);
                                elementwise::mul_shoup_assign(q, r, w, wsh);
                                c.copy_from_slice(r);
                            }
                            elementwise::add_assign(q, &mut c0[tile.clone()], &base[tile]);
                        });
                        automorphism_eval(c0, phi, o0);
                        automorphism_eval(c1, phi, o1);
                    }
                }
            });
    }

    /// Key switches `d` (evaluation form, `level + 1` limbs back to back) with `key`, adding the
    /// result to `(out_0, out_1)`.
    pub(crate) fn key_switch_add(
        &self,
        d: &[u64],
        level: usize,
        key: &KeyEntry,
        ws: &mut Workspace,
        out0: &mut [u64],
        out1: &mut [u64],
    ) {
        self.decompose(d, level, ws);
        self.switch_decomposed(d, level, key, None, ws, out0, out1, None);
    }

    /// Relinearises a degree-2 ciphertext (or returns a degree-1 one unchanged).
    pub fn relinearize(&self, ct: &Ciphertext) -> Result<Ciphertext, crate::Error> {
        self.check(ct)?;
        match ct.c.len() {
            2 => Ok(ct.clone()),
            3 => {
                let key = self.keys.relin(&self.ctx)?;
                let mut out = Ciphertext {
                    c: vec![ct.c[0].clone(), ct.c[1].clone()],
                    level: ct.level,
                    scale: ct.scale,
                    log_slots: ct.log_slots,
                };
                let mut ws = self.pool.get();
                let (o0, o1) = out.c.split_at_mut(1);
                self.key_switch_add(
                    ct.c[2].as_slice(),
                    ct.level,
                    &key,
                    &mut ws,
                    o0[0].as_mut_slice(),
                    o1[0].as_mut_slice(),
                );
                Ok(out)
            }
            _ => Err(crate::Error::InvalidArgument("relinearisation takes ciphertexts of degree 1 or 2")),
        }
    }
}
