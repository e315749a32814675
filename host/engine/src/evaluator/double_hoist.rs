//! Double hoisting for the baby-step giant-step linear transforms of bootstrapping (Bossuat,
//! Mouchet, Troncoso-Pastoriza, Hubaux, "Efficient Bootstrapping for Approximate Homomorphic
//! Encryption with Non-Sparse Keys", Eurocrypt 2021, section 3.3): `c_1` is decomposed once,
//! every baby rotation stays in the extended basis `Q_l ∪ P` (key inner product only, no
//! ModDown), the plaintext diagonals multiply them there, and each giant step's sum is brought
//! back to `Q_l` by one ModDown. A baby rotation thus costs its key inner product and a
//! permutation instead of a whole key switch; the ModDown noise is added once per giant step
//! instead of being multiplied by every diagonal.

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::automorphism::automorphism_eval;
use hetune_core::ring::dot::{key_inner_product, KeyDigits};
use hetune_core::ring::elementwise;
use rayon::prelude::*;

use super::workspace::Workspace;
use super::{zero_ciphertext, Evaluator};
use crate::Error;

/// One giant step's terms: `(index into the baby steps, diagonal)`, each diagonal over
/// `Q_l ∪ P` (`level + 1` Q limbs then the `alpha` P limbs, evaluation and Montgomery form),
/// pre-rotated for the giant rotation that follows.
pub(crate) type GiantTerms<'a> = Vec<(usize, &'a [u64])>;

impl Evaluator {
    /// For each giant step, `sum_(b, d) d * rot_b(ct)` over its terms, as a ciphertext at
    /// `ct.level` and `ct.scale` (the caller sets the product's scale), computed with one
    /// decomposition of `c_1` and one ModDown per giant step. `None` when a non-zero baby step
    /// has no key of its own (the caller then rotates the usual way).
    pub(crate) fn baby_sums_double_hoisted(
        &self,
        ct: &Ciphertext,
        babies: &[i64],
        giants: &[GiantTerms<'_>],
    ) -> Result<Option<Vec<Ciphertext>>, Error> {
        self.check(ct)?;
        if ct.c.len() != 2 {
            return Err(Error::InvalidArgument("rotate ciphertexts of degree 1 (relinearise first)"));
        }
        let mut keys = Vec::with_capacity(babies.len());
        for &b in babies {
            let path = self.rotation_path(b, ct.log_slots)?;
            match path.as_slice() {
                [] => keys.push(None),
                [g] => match self.keys.galois(&self.ctx, *g) {
                    Some(k) => keys.push(Some(k?)),
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        let ctx = &*self.ctx;
        let n = ctx.n();
        let level = ct.level;
        let q_len = ctx.q_len();
        let alpha = ctx.params().alpha();
        let ext_limbs = level + 1 + alpha;
        let global = |i: usize| if i <= level { i } else { q_len + i - level - 1 };
        if giants.iter().flatten().any(|&(b, d)| b >= babies.len() || d.len() < ext_limbs * n) {
            return Err(Error::InvalidArgument("a diagonal does not cover the extended basis"));
        }
        let mut ws = self.pool.get();
        let d = ct.c[1].as_slice();
        self.decompose(d, level, &mut ws);
        let ext: &[u64] = &ws.ext;
        let (c0, c1) = (ct.c[0].as_slice(), ct.c[1].as_slice());
        let gcount = giants.len();
        // sums[((i * gcount + g) * 2 + k) * n ..]: limb i of polynomial k of giant g's sum.
        let mut sums = vec![0u64; ext_limbs * gcount * 2 * n];
        sums.par_chunks_exact_mut(gcount * 2 * n).enumerate().for_each_init(
            || (vec![0u64; 2 * n], vec![0u64; babies.len() * 2 * n]),
            |(u, rot), (i, out)| {
                let gi = global(i);
                let q = &ctx.qp()[gi];
                let (u0, u1) = u.split_at_mut(n);
                for (bi, key) in keys.iter().enumerate() {
                    let (r0, r1) = rot[bi * 2 * n..(bi + 1) * 2 * n].split_at_mut(n);
                    match key {
                        // The identity: (P c_0, P c_1) on Q, zero on P.
                        None => {
                            if i <= level {
                                let pm = ctx.p_mod_q(i);
                                let psh = q.shoup(pm);
                                r0.copy_from_slice(&c0[i * n..(i + 1) * n]);
                                r1.copy_from_slice(&c1[i * n..(i + 1) * n]);
                                elementwise::mul_shoup_assign(q, r0, pm, psh);
                                elementwise::mul_shoup_assign(q, r1, pm, psh);
                            } else {
                                r0.fill(0);
                                r1.fill(0);
                            }
                        }
                        // (P c_0 + <digits, key_b>, <digits, key'_b>) with the key held as
                        // phi^-1 of itself, then phi applied: the rotation in Q_l ∪ P.
                        Some(key) => {
                            self.inner_product_limb(gi, 0..n, d, level, ext, key, None, |t, x0, x1| {
                                u0[t..t + x0.len()].copy_from_slice(x0);
                                u1[t..t + x1.len()].copy_from_slice(x1);
                            });
                            if i <= level {
                                let pm = ctx.p_mod_q(i);
                                let psh = q.shoup(pm);
                                r0.copy_from_slice(&c0[i * n..(i + 1) * n]);
                                elementwise::mul_shoup_assign(q, r0, pm, psh);
                                elementwise::add_assign(q, u0, r0);
                            }
                            // Present for every Galois key (checked when the evaluator was built).
                            let perm = key.perm.as_deref().unwrap_or(&[]);
                            automorphism_eval(u0, perm, r0);
                            automorphism_eval(u1, perm, r1);
                        }
                    }
                }
                let mont = &self.mont[gi];
                let rot: &[u64] = rot;
                for (g, terms) in giants.iter().enumerate() {
                    let (s0, s1) = out[g * 2 * n..(g + 1) * 2 * n].split_at_mut(n);
                    if terms.is_empty() {
                        s0.fill(0);
                        s1.fill(0);
                        continue;
                    }
                    let x: Vec<&[u64]> = terms.iter().map(|&(_, dg)| &dg[i * n..(i + 1) * n]).collect();
                    let kb: Vec<&[u64]> = terms.iter().map(|&(b, _)| &rot[b * 2 * n..b * 2 * n + n]).collect();
                    let ka: Vec<&[u64]> = terms.iter().map(|&(b, _)| &rot[b * 2 * n + n..(b + 1) * 2 * n]).collect();
                    // The diagonals are in Montgomery form, so the kernel's reduction leaves
                    // the plain products' sum.
                    key_inner_product(q, mont, &KeyDigits { x: &x, perm: None, kb: &kb, ka: &ka }, 0, s0, s1);
                }
            },
        );
        drop(ws);
        let mut ws = self.pool.get();
        let mut outs = Vec::with_capacity(gcount);
        for g in 0..gcount {
            let mut out = zero_ciphertext(n, 2, level, ct.scale, ct.log_slots);
            let src = |k: usize, i: usize| &sums[((i * gcount + g) * 2 + k) * n..((i * gcount + g) * 2 + k + 1) * n];
            let (o0, o1) = out.c.split_at_mut(1);
            self.mod_down_pair(level, &src, &mut ws, o0[0].as_mut_slice(), o1[0].as_mut_slice());
            outs.push(out);
        }
        Ok(Some(outs))
    }

    /// ModDown of two polynomials over `Q_l ∪ P` (`src(k, i)`: limb `i` of polynomial `k`, Q
    /// limbs first, evaluation form) into `out_k = round(src_k / P)` over `Q_l`, with the
    /// centred conversion of [`Evaluator::switch_decomposed`].
    pub(crate) fn mod_down_pair<'s>(
        &self,
        level: usize,
        src: &(dyn Fn(usize, usize) -> &'s [u64] + Sync),
        ws: &mut Workspace,
        out0: &mut [u64],
        out1: &mut [u64],
    ) {
        let ctx = &*self.ctx;
        let n = ctx.n();
        let q_len = ctx.q_len();
        let alpha = ctx.params().alpha();
        let ntt = ctx.ntt();
        let conv = ctx.p_to_q();
        let Workspace { acc, yp, conv: cbuf, v, .. } = ws;
        acc[..2 * alpha * n]
            .par_chunks_exact_mut(n)
            .zip(yp[..2 * alpha * n].par_chunks_exact_mut(n))
            .enumerate()
            .for_each(|(idx, (x, yk))| {
                let (k, j) = (idx / alpha, idx % alpha);
                x.copy_from_slice(src(k, level + 1 + j));
                ntt[q_len + j].inverse(x);
                conv.scale_input_limb(j, x, yk);
            });
        let yp: &[u64] = &yp[..2 * alpha * n];
        let (yp0, yp1) = yp.split_at(alpha * n);
        {
            let (v0, v1) = v[..2 * n].split_at_mut(n);
            rayon::join(|| conv.rounding_quotients(yp0, v0), || conv.rounding_quotients(yp1, v1));
        }
        let (v0, v1) = v[..2 * n].split_at(n);
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
                let (w, wsh) = self.p_inv[i];
                for (k, o, c, yk, vk) in [(0, o0, c0, yp0, v0), (1, o1, c1, yp1, v1)] {
                    conv.accumulate_output_limb_centered(i, yk, vk, c);
                    ntt[i].forward(c);
                    o.copy_from_slice(src(k, i));
                    elementwise::sub_assign(q, o, c);
                    elementwise::mul_shoup_assign(q, o, w, wsh);
                }
            });
    }
}
