//! Addition, subtraction and negation of ciphertexts; addition and multiplication by plaintexts,
//! by real and complex constants and by integers; multiplication by monomials and by `i`.
//!
//! Operands at different levels meet at the lower one (the higher is dropped, which leaves its
//! scale unchanged). Scales are reconciled by [`match_scales`]; anything else is an error.

use hetune_core::ckks::{Ciphertext, Complex, Plaintext};
use hetune_core::ring::{elementwise, Modulus, RnsPoly};
use rayon::prelude::*;

use super::rescale::{match_scales, ScaleMatch};
use super::{par_limbs, par_new_poly, Evaluator};
use crate::Error;

/// Largest magnitude of a rounded constant (`value * scale`) accepted; keeps `f64` rounding exact
/// enough and the residues meaningful.
const MAX_CONSTANT: f64 = 1.329_227_995_784_916e36; // 2^120

/// Residue of an integer-valued `f64` (any magnitude below 2^120).
#[inline]
fn residue(q: &Modulus, x: f64) -> u64 {
    q.reduce_f64(x)
}

/// `(k mod q, Shoup companion)` for a signed integer `k`.
#[inline]
fn shoup_const(q: &Modulus, k: i64) -> (u64, u64) {
    let w = q.reduce_i64(k);
    (w, q.shoup(w))
}

impl Evaluator {
    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<(), Error> {
        self.check(a)?;
        self.check(b)?;
        if a.log_slots != b.log_slots {
            return Err(Error::SlotCountMismatch { left: a.log_slots, right: b.log_slots });
        }
        Ok(())
    }

    /// `a + b`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        self.check_pair(a, b)?;
        if let Some(out) = self.combine_into(a, b, false)? {
            return Ok(out);
        }
        let mut out = self.drop_level(a, a.level.min(b.level))?;
        self.combine_assign(&mut out, b, false)?;
        Ok(out)
    }

    /// `a += b`.
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), Error> {
        self.combine_assign(a, b, false)
    }

    /// `a - b`.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        self.check_pair(a, b)?;
        if let Some(out) = self.combine_into(a, b, true)? {
            return Ok(out);
        }
        let mut out = self.drop_level(a, a.level.min(b.level))?;
        self.combine_assign(&mut out, b, true)?;
        Ok(out)
    }

    /// `a -= b`.
    pub fn sub_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), Error> {
        self.combine_assign(a, b, true)
    }

    /// `-a`.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext, Error> {
        let mut out = a.clone();
        self.neg_assign(&mut out)?;
        Ok(out)
    }

    /// `a = -a`.
    pub fn neg_assign(&self, a: &mut Ciphertext) -> Result<(), Error> {
        self.check(a)?;
        let q = self.q();
        let limbs = a.level + 1;
        for p in a.c.iter_mut() {
            par_limbs(p, limbs, |i, x| elementwise::neg_assign(&q[i], x));
        }
        Ok(())
    }

    /// `a +- b` written in one pass into a new ciphertext (no copy of `a` first), for the usual
    /// case of equal scales and equal degrees; `None` otherwise (the caller combines in place).
    fn combine_into(&self, a: &Ciphertext, b: &Ciphertext, subtract: bool) -> Result<Option<Ciphertext>, Error> {
        if a.c.len() != b.c.len() || match_scales(a.scale, b.scale)? != ScaleMatch::Equal {
            return Ok(None);
        }
        let level = a.level.min(b.level);
        let (n, q) = (self.n(), self.q());
        let c =
            a.c.iter()
                .zip(&b.c)
                .map(|(pa, pb)| {
                    par_new_poly(n, level + 1, |i, o| {
                        if subtract {
                            elementwise::sub_into(&q[i], o, pa.limb(i), pb.limb(i));
                        } else {
                            elementwise::add_into(&q[i], o, pa.limb(i), pb.limb(i));
                        }
                    })
                })
                .collect();
        Ok(Some(Ciphertext { c, level, scale: a.scale, log_slots: a.log_slots }))
    }

    /// `a = ka * a +- kb * b` with the integers from scale matching; `a` and `b` may differ in
    /// level (the result takes the lower) and degree (the result takes the higher).
    fn combine_assign(&self, a: &mut Ciphertext, b: &Ciphertext, subtract: bool) -> Result<(), Error> {
        self.check_pair(a, b)?;
        let m = match_scales(a.scale, b.scale)?;
        if a.level > b.level {
            self.drop_level_assign(a, b.level)?;
        }
        let limbs = a.level + 1;
        let n = self.n();
        while a.c.len() < b.c.len() {
            a.c.push(RnsPoly::zero(n, limbs));
        }
        let (ka, kb, scale) = match m {
            ScaleMatch::Equal => (1i64, 1i64, a.scale),
            ScaleMatch::ScaleLeft(k) => (k as i64, 1, b.scale),
            ScaleMatch::ScaleRight(k) => (1, k as i64, a.scale),
        };
        let q = self.q();
        for (p, pa) in a.c.iter_mut().enumerate() {
            let pb = b.c.get(p);
            if pb.is_none() && ka == 1 {
                continue;
            }
            par_limbs(pa, limbs, |i, x| {
                let q = &q[i];
                let (wa, wsa) = shoup_const(q, ka);
                let (wb, wsb) = shoup_const(q, kb);
                match pb {
                    None => elementwise::mul_shoup_assign(q, x, wa, wsa),
                    Some(pb) => {
                        let y = pb.limb(i);
                        match (ka, kb, subtract) {
                            (1, 1, false) => elementwise::add_assign(q, x, y),
                            (1, 1, true) => elementwise::sub_assign(q, x, y),
                            (_, _, false) => x
                                .iter_mut()
                                .zip(y)
                                .for_each(|(v, &w)| *v = q.add(q.mul_shoup(*v, wa, wsa), q.mul_shoup(w, wb, wsb))),
                            (_, _, true) => x
                                .iter_mut()
                                .zip(y)
                                .for_each(|(v, &w)| *v = q.sub(q.mul_shoup(*v, wa, wsa), q.mul_shoup(w, wb, wsb))),
                        }
                    }
                }
            });
        }
        a.scale = scale;
        Ok(())
    }

    /// The plaintext's limbs in evaluation form, checked against the context.
    fn plain_ntt<'p>(&self, pt: &'p Plaintext) -> Result<std::borrow::Cow<'p, RnsPoly>, Error> {
        if pt.poly.n() != self.n() || pt.poly.limbs() != pt.level + 1 || pt.level > self.ctx.params().max_level() {
            return Err(Error::ParameterMismatch("plaintext does not match this parameter set (ring degree or limbs)"));
        }
        if !(pt.scale > 0.0 && pt.scale.is_finite()) {
            return Err(Error::InvalidArgument("plaintext scale must be positive and finite"));
        }
        if pt.ntt {
            Ok(std::borrow::Cow::Borrowed(&pt.poly))
        } else {
            let mut p = pt.poly.clone();
            let ntt = self.ctx.ntt();
            let limbs = pt.level + 1;
            par_limbs(&mut p, limbs, |i, x| ntt[i].forward(x));
            Ok(std::borrow::Cow::Owned(p))
        }
    }

    /// `ct + pt`; the scales are reconciled as for two ciphertexts.
    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, Error> {
        self.plain_add_sub(ct, pt, false)
    }

    /// `ct - pt`.
    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, Error> {
        self.plain_add_sub(ct, pt, true)
    }

    fn plain_add_sub(&self, ct: &Ciphertext, pt: &Plaintext, subtract: bool) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if ct.log_slots != pt.log_slots {
            return Err(Error::SlotCountMismatch { left: ct.log_slots, right: pt.log_slots });
        }
        let m = match_scales(ct.scale, pt.scale)?;
        let p = self.plain_ntt(pt)?;
        let mut out = self.drop_level(ct, ct.level.min(pt.level))?;
        let (kc, kp) = match m {
            ScaleMatch::Equal => (1i64, 1i64),
            ScaleMatch::ScaleLeft(k) => (k as i64, 1),
            ScaleMatch::ScaleRight(k) => (1, k as i64),
        };
        if kc != 1 {
            self.mul_integer_assign(&mut out, kc)?;
            out.scale = pt.scale;
        }
        let q = self.q();
        let limbs = out.level + 1;
        par_limbs(&mut out.c[0], limbs, |i, x| {
            let q = &q[i];
            let (w, ws) = shoup_const(q, kp);
            let y = p.limb(i);
            if subtract {
                x.iter_mut().zip(y).for_each(|(v, &u)| *v = q.sub(*v, q.mul_shoup(u, w, ws)));
            } else {
                x.iter_mut().zip(y).for_each(|(v, &u)| *v = q.add(*v, q.mul_shoup(u, w, ws)));
            }
        });
        Ok(out)
    }

    /// `ct * pt`: the result's scale is the product of the scales (rescale afterwards). A
    /// plaintext encoded at scale [`Evaluator::rescale_scale`] leaves the scale unchanged after
    /// one rescale.
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if ct.log_slots != pt.log_slots {
            return Err(Error::SlotCountMismatch { left: ct.log_slots, right: pt.log_slots });
        }
        let p = self.plain_ntt(pt)?;
        let level = ct.level.min(pt.level);
        let scale = ct.scale * pt.scale;
        self.check_scale_fits(scale, level)?;
        // Written in one pass into the result (no copy of `ct` first).
        let (n, q) = (self.n(), self.q());
        let c =
            ct.c.iter()
                .map(|pc| par_new_poly(n, level + 1, |i, o| elementwise::mul_into(&q[i], o, pc.limb(i), p.limb(i))))
                .collect();
        Ok(Ciphertext { c, level, scale, log_slots: ct.log_slots })
    }

    /// `sum_k ct_k * pt_k` in one pass over the limbs (no intermediate products), at the lowest
    /// level among the operands. Every term must have the same product scale and the same
    /// slot count; the result's degree is the highest of the ciphertexts'.
    pub fn mul_plain_sum(&self, terms: &[(&Ciphertext, &Plaintext)]) -> Result<Ciphertext, Error> {
        let first = terms.first().ok_or(Error::InvalidArgument("mul_plain_sum of no terms"))?;
        let scale = first.0.scale * first.1.scale;
        let mut level = usize::MAX;
        let mut polys = 0;
        let mut plains = Vec::with_capacity(terms.len());
        for (ct, pt) in terms {
            self.check(ct)?;
            if ct.log_slots != first.0.log_slots || pt.log_slots != first.0.log_slots {
                return Err(Error::SlotCountMismatch {
                    left: first.0.log_slots,
                    right: pt.log_slots.min(ct.log_slots),
                });
            }
            let s = ct.scale * pt.scale;
            if match_scales(scale, s)? != ScaleMatch::Equal {
                return Err(Error::ScaleMismatch { left: scale, right: s });
            }
            level = level.min(ct.level).min(pt.level);
            polys = polys.max(ct.c.len());
            plains.push(self.plain_ntt(pt)?);
        }
        self.check_scale_fits(scale, level)?;
        let (n, q) = (self.n(), self.q());
        let c = (0..polys)
            .map(|j| {
                par_new_poly(n, level + 1, |i, o| {
                    let mut written = false;
                    for ((ct, _), p) in terms.iter().zip(&plains) {
                        if let Some(pc) = ct.c.get(j) {
                            if written {
                                elementwise::mul_acc(&q[i], o, pc.limb(i), p.limb(i));
                            } else {
                                elementwise::mul_into(&q[i], o, pc.limb(i), p.limb(i));
                                written = true;
                            }
                        }
                    }
                })
            })
            .collect();
        Ok(Ciphertext { c, level, scale, log_slots: first.0.log_slots })
    }

    /// The scale at which a plaintext or constant multiplies a ciphertext at `level` so that one
    /// rescale afterwards restores the ciphertext's scale: `q_level`.
    pub fn rescale_scale(&self, level: usize) -> f64 {
        self.q()[level.min(self.ctx.params().max_level())].value() as f64
    }

    /// Rounded residues of `c * scale` on limb `i`: `(value on slots' first half, second half)`
    /// of the polynomial `round(re s) + round(im s) X^(N/2)` in evaluation form (`X^(N/2)` is
    /// `+i` at the first half of the evaluation points and `-i` at the second).
    fn constant_residues(&self, c: Complex, scale: f64) -> Result<Vec<(u64, u64)>, Error> {
        let re = (c.re * scale).round();
        let im = (c.im * scale).round();
        if !(re.is_finite() && im.is_finite()) || re.abs() >= MAX_CONSTANT || im.abs() >= MAX_CONSTANT {
            return Err(Error::Core(hetune_core::Error::EncodingOverflow));
        }
        Ok(self
            .q()
            .iter()
            .zip(&self.imag)
            .map(|(q, &iq)| {
                let r = residue(q, re);
                let m = q.mul(residue(q, im), iq);
                (q.add(r, m), q.sub(r, m))
            })
            .collect())
    }

    /// Multiplies every polynomial of `ct` by the constant with per-limb values `vals`.
    fn mul_by_slot_constant(&self, ct: &mut Ciphertext, vals: &[(u64, u64)]) {
        let q = self.q();
        let half = self.n() / 2;
        let limbs = ct.level + 1;
        for c in ct.c.iter_mut() {
            par_limbs(c, limbs, |i, x| {
                let q = &q[i];
                let (vp, vm) = vals[i];
                let (sp, sm) = (q.shoup(vp), q.shoup(vm));
                let (lo, hi) = x.split_at_mut(half);
                lo.iter_mut().for_each(|v| *v = q.mul_shoup(*v, vp, sp));
                hi.iter_mut().for_each(|v| *v = q.mul_shoup(*v, vm, sm));
            });
        }
    }

    /// `ct + c` in every slot, `c` encoded at the ciphertext's own scale.
    pub fn add_const(&self, ct: &Ciphertext, c: Complex) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        let vals = self.constant_residues(c, ct.scale)?;
        let mut out = ct.clone();
        let q = self.q();
        let half = self.n() / 2;
        par_limbs(&mut out.c[0], ct.level + 1, |i, x| {
            let q = &q[i];
            let (vp, vm) = vals[i];
            let (lo, hi) = x.split_at_mut(half);
            lo.iter_mut().for_each(|v| *v = q.add(*v, vp));
            hi.iter_mut().for_each(|v| *v = q.add(*v, vm));
        });
        Ok(out)
    }

    /// `ct + c` for a real constant.
    pub fn add_const_real(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext, Error> {
        self.add_const(ct, Complex::new(c, 0.0))
    }

    /// `ct * c` in every slot, `c` encoded at `scale`: the result's scale is `ct.scale * scale`
    /// (use [`Evaluator::rescale_scale`] to keep the scale through the next rescale).
    pub fn mul_const(&self, ct: &Ciphertext, c: Complex, scale: f64) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(Error::InvalidArgument("constant scale must be positive and finite"));
        }
        let result_scale = ct.scale * scale;
        self.check_scale_fits(result_scale, ct.level)?;
        let vals = self.constant_residues(c, scale)?;
        let mut out = ct.clone();
        self.mul_by_slot_constant(&mut out, &vals);
        out.scale = result_scale;
        Ok(out)
    }

    /// `ct * c` for a real constant encoded at `scale`.
    pub fn mul_const_real(&self, ct: &Ciphertext, c: f64, scale: f64) -> Result<Ciphertext, Error> {
        self.mul_const(ct, Complex::new(c, 0.0), scale)
    }

    /// `ct * k` for an integer `k`: exact, no scale change, no level used.
    pub fn mul_integer(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext, Error> {
        let mut out = ct.clone();
        self.mul_integer_assign(&mut out, k)?;
        Ok(out)
    }

    /// In-place [`Evaluator::mul_integer`].
    pub fn mul_integer_assign(&self, ct: &mut Ciphertext, k: i64) -> Result<(), Error> {
        self.check(ct)?;
        let q = self.q();
        let limbs = ct.level + 1;
        for c in ct.c.iter_mut() {
            par_limbs(c, limbs, |i, x| {
                let q = &q[i];
                let (w, ws) = shoup_const(q, k);
                x.iter_mut().for_each(|v| *v = q.mul_shoup(*v, w, ws));
            });
        }
        Ok(())
    }

    /// `ct * i` (every slot times the imaginary unit): multiplication by `X^(N/2)`, exact.
    pub fn mul_by_i(&self, ct: &Ciphertext) -> Result<Ciphertext, Error> {
        let mut out = ct.clone();
        self.mul_by_i_assign(&mut out)?;
        Ok(out)
    }

    /// In-place [`Evaluator::mul_by_i`].
    pub fn mul_by_i_assign(&self, ct: &mut Ciphertext) -> Result<(), Error> {
        self.check(ct)?;
        let vals: Vec<(u64, u64)> = self.q().iter().zip(&self.imag).map(|(q, &iq)| (iq, q.neg(iq))).collect();
        self.mul_by_slot_constant(ct, &vals);
        Ok(())
    }

    /// `ct * X^k` (negacyclic: `X^N = -1`), exact; `k` is taken modulo `2N`.
    pub fn mul_monomial(&self, ct: &Ciphertext, k: usize) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        let n = self.n();
        let k = k % (2 * n);
        let (pos, negate) = if k < n { (k, false) } else { (k - n, true) };
        let mut out = ct.clone();
        let limbs = ct.level + 1;
        let mut ws = self.pool.get();
        let ntt = self.ctx.ntt();
        let q = self.q();
        let mono = &mut ws.tmp[..limbs * n];
        mono.par_chunks_exact_mut(n).enumerate().for_each(|(i, m)| {
            m.iter_mut().for_each(|v| *v = 0);
            m[pos] = if negate { q[i].neg(1) } else { 1 };
            ntt[i].forward(m);
        });
        let mono: &[u64] = mono;
        for c in out.c.iter_mut() {
            par_limbs(c, limbs, |i, x| {
                let q = &q[i];
                x.iter_mut().zip(&mono[i * n..(i + 1) * n]).for_each(|(v, &m)| *v = q.mul(*v, m));
            });
        }
        Ok(out)
    }
}
