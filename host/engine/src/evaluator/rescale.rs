//! Level and scale bookkeeping: rescaling (rounded division by the last prime), level drops,
//! explicit scale changes, and the rules that reconcile two operands' levels and scales.

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::Context;
use rayon::prelude::*;

use super::{par_new_poly, Evaluator, SCALE_TOLERANCE};
use crate::Error;

/// How two scales are reconciled before an addition: equal (within [`SCALE_TOLERANCE`]), or one
/// an integer multiple of the other, in which case the smaller-scale operand is multiplied by
/// that integer exactly (no level used).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScaleMatch {
    /// The scales are equal.
    Equal,
    /// Multiply the left operand by this integer.
    ScaleLeft(u64),
    /// Multiply the right operand by this integer.
    ScaleRight(u64),
}

/// Decides how to reconcile the scales of two operands of an addition.
pub fn match_scales(left: f64, right: f64) -> Result<ScaleMatch, Error> {
    if !(left > 0.0 && right > 0.0 && left.is_finite() && right.is_finite()) {
        return Err(Error::ScaleMismatch { left, right });
    }
    let (big, small) = if left >= right { (left, right) } else { (right, left) };
    let ratio = big / small;
    if (ratio - 1.0).abs() <= SCALE_TOLERANCE {
        return Ok(ScaleMatch::Equal);
    }
    let k = ratio.round();
    if k >= 2.0 && k < (1u64 << 53) as f64 && (ratio - k).abs() <= k * SCALE_TOLERANCE {
        return Ok(if left >= right { ScaleMatch::ScaleRight(k as u64) } else { ScaleMatch::ScaleLeft(k as u64) });
    }
    Err(Error::ScaleMismatch { left, right })
}

impl Evaluator {
    /// Divides by the last prime `q_l` with rounding: level `l -> l - 1`, scale `s -> s / q_l`.
    pub fn rescale(&self, ct: &Ciphertext) -> Result<Ciphertext, Error> {
        let mut out = ct.clone();
        self.rescale_assign(&mut out)?;
        Ok(out)
    }

    /// In-place [`Evaluator::rescale`].
    pub fn rescale_assign(&self, ct: &mut Ciphertext) -> Result<(), Error> {
        self.check(ct)?;
        let l = ct.level;
        if l == 0 {
            return Err(Error::LevelExhausted { op: "rescale", level: 0 });
        }
        let ctx: &Context = &self.ctx;
        let n = ctx.n();
        let rescaler = self.rescalers[l].as_ref().ok_or(Error::LevelExhausted { op: "rescale", level: l })?;
        let mut ws = self.pool.get();
        let polys = ct.c.len();
        // The prepared last limb of every polynomial, in coefficient form.
        {
            let last = &mut ws.y[..polys * n];
            last.par_chunks_exact_mut(n).zip(ct.c.par_iter()).for_each(|(t, p)| {
                t.copy_from_slice(p.limb(l));
                ctx.ntt()[l].inverse(t);
                rescaler.prepare_last(t);
            });
        }
        let workspace = &mut *ws;
        let last: &[u64] = &workspace.y[..polys * n];
        // Every (polynomial, limb below l) pair in parallel; one scratch limb each.
        let tmp = &mut workspace.conv[..];
        let tmp2 = &mut workspace.tmp[..];
        let per_poly = l;
        let total = polys * per_poly;
        // Process in rounds as large as the scratch allows (one round for degree <= 2).
        let mut tasks: Vec<(usize, &mut [u64])> = Vec::with_capacity(total);
        for (p, poly) in ct.c.iter_mut().enumerate() {
            for (i, limb) in poly.as_mut_slice()[..l * n].chunks_exact_mut(n).enumerate() {
                tasks.push((p * per_poly + i, limb));
            }
        }
        let mut scratch: Vec<&mut [u64]> = tmp.chunks_exact_mut(n).chain(tmp2.chunks_exact_mut(n)).collect();
        while !tasks.is_empty() {
            let take = tasks.len().min(scratch.len());
            let round: Vec<(usize, &mut [u64])> = tasks.drain(..take).collect();
            round.into_par_iter().zip(scratch[..take].par_iter_mut()).for_each(|((id, x), s)| {
                let (p, i) = (id / per_poly, id % per_poly);
                rescaler.rescale_limb(i, &ctx.q()[i], x, &last[p * n..(p + 1) * n], s, Some(&ctx.ntt()[i]));
            });
        }
        for p in ct.c.iter_mut() {
            p.truncate(l);
        }
        ct.level = l - 1;
        ct.scale /= ctx.q()[l].value() as f64;
        Ok(())
    }

    /// Drops `ct` to `level` (fewer limbs; the scale is unchanged).
    pub fn drop_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if level > ct.level {
            return Err(Error::InvalidArgument("cannot raise a ciphertext's level (that needs bootstrapping)"));
        }
        // Copied limb by limb on the thread pool: a serial copy of a top-level ciphertext (tens
        // of MB into fresh pages) made `add` and its kin slower with two threads than with one.
        Ok(Ciphertext {
            c: ct.c.iter().map(|p| par_new_poly(p.n(), level + 1, |i, o| o.copy_from_slice(p.limb(i)))).collect(),
            level,
            scale: ct.scale,
            log_slots: ct.log_slots,
        })
    }

    /// In-place [`Evaluator::drop_level`].
    pub fn drop_level_assign(&self, ct: &mut Ciphertext, level: usize) -> Result<(), Error> {
        self.check(ct)?;
        if level > ct.level {
            return Err(Error::InvalidArgument("cannot raise a ciphertext's level (that needs bootstrapping)"));
        }
        for p in ct.c.iter_mut() {
            p.truncate(level + 1);
        }
        ct.level = level;
        Ok(())
    }

    /// Brings `ct` to `target` scale using one level: multiplies by the integer nearest to
    /// `target * q_l / scale`, then rescales. The new scale is recorded exactly (it equals
    /// `target` to within 2^-(log2 q_l - 1) relative, inside [`SCALE_TOLERANCE`] for the primes
    /// used here), so the result adds to ciphertexts at `target`.
    pub fn set_scale(&self, ct: &Ciphertext, target: f64) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if ct.level == 0 {
            return Err(Error::LevelExhausted { op: "set_scale", level: 0 });
        }
        if !(target > 0.0 && target.is_finite()) {
            return Err(Error::InvalidArgument("target scale must be positive and finite"));
        }
        let ql = self.q()[ct.level].value() as f64;
        let k = (target * ql / ct.scale).round();
        if !(k >= 1.0 && k < 2f64.powi(62)) {
            return Err(Error::ScaleMismatch { left: ct.scale, right: target });
        }
        let mut out = ct.clone();
        self.mul_integer_assign(&mut out, k as i64)?;
        self.rescale_assign(&mut out)?;
        // The exact scale after the product and the division.
        out.scale = ct.scale * k / ql;
        Ok(out)
    }

    /// Records `scale` as the scale of `ct` where it equals the recorded one up to the rounding
    /// of the floating-point bookkeeping (within [`SCALE_TOLERANCE`]), so that values computed
    /// to land on the same scale add exactly.
    pub fn snap_scale(&self, ct: &mut Ciphertext, scale: f64) -> Result<(), Error> {
        if !(scale > 0.0 && scale.is_finite()) || ((ct.scale / scale) - 1.0).abs() > SCALE_TOLERANCE {
            return Err(Error::ScaleMismatch { left: ct.scale, right: scale });
        }
        ct.scale = scale;
        Ok(())
    }

    /// Reads the data of `ct` at another scale: its message is multiplied by `ct.scale / scale`
    /// at no cost (bootstrapping reads a raised ciphertext at scale `q_0`, and folds constant
    /// factors of its transforms into the scale this way).
    pub fn reinterpret_scale(&self, ct: &mut Ciphertext, scale: f64) -> Result<(), Error> {
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(Error::InvalidArgument("a scale must be positive and finite"));
        }
        ct.scale = scale;
        Ok(())
    }

    /// Reads `ct` as packing `2^log_slots` slots: a sparse packing's data seen on the full slots
    /// (its slots repeat), or the full slots read sparsely after a trace onto the subring.
    pub fn reinterpret_slots(&self, ct: &mut Ciphertext, log_slots: u32) -> Result<(), Error> {
        if log_slots > self.ctx.params().log_n() - 1 {
            return Err(Error::ParameterMismatch("more slots than N/2"));
        }
        ct.log_slots = log_slots;
        Ok(())
    }
}
