//! Homomorphic polynomial evaluation in the Chebyshev basis: baby-step giant-step
//! (Paterson-Stockmeyer style recursion on `p = r + q T_{2^k}`, as in Bossuat et al.,
//! "Efficient Bootstrapping for Approximate HE with Non-Sparse Keys", Eurocrypt 2021, sec. 4),
//! with exact scale management: every intermediate is given a target scale computed backwards
//! from the requested output scale, so the result lands on it exactly (no scale drift).
//!
//! Written against [`Arith`], so the evaluator, the level-and-scale simulator and exact slots
//! run the same recursion.
//!
//! Depth: `ceil(log2(d + 1)) + 1` levels for degree `d` on `[-1, 1]`, one more for another
//! interval (the affine change of variable).

use std::collections::BTreeMap;

use super::arith::Arith;
use super::chebyshev::{split, Chebyshev};
use crate::Error;

/// Parity of a polynomial, to skip the coefficients that are zero by symmetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    /// No symmetry.
    None,
    /// Only odd powers (sine, sigmoid minus 1/2, ...).
    Odd,
    /// Only even powers.
    Even,
}

/// Levels consumed by [`evaluate`] for `p`.
pub fn depth(p: &Chebyshev) -> usize {
    let d = p.degree().max(1);
    let affine = usize::from(!(p.a == -1.0 && p.b == 1.0));
    (usize::BITS - d.leading_zeros()) as usize + 1 + affine
}

struct Powers<'a, O: Arith> {
    ops: &'a O,
    t: BTreeMap<usize, O::Ct>,
}

impl<O: Arith> Powers<'_, O> {
    /// `T_i`, computed on first use from `T_{ceil(i/2)}` and `T_{floor(i/2)}`:
    /// `T_{a+b} = 2 T_a T_b - T_{a-b}`.
    fn get(&mut self, i: usize) -> Result<O::Ct, Error> {
        if let Some(c) = self.t.get(&i) {
            return Ok(c.clone());
        }
        let (a, b) = (i.div_ceil(2), i / 2);
        let ta = self.get(a)?;
        let tb = self.get(b)?;
        let ops = self.ops;
        let mut prod = ops.mul_integer(&ops.mul_relin(&ta, &tb)?, 2)?;
        if a == b {
            prod = ops.add_const(&prod, -1.0)?;
        } else {
            let d = self.get(a - b)?;
            let d = ops.drop_level(&d, ops.level(&prod))?;
            // Bring T_{a-b} to the product's scale exactly before subtracting.
            let d = ops.mul_const(&d, 1.0, ops.scale(&prod) / ops.scale(&d))?;
            let d = ops.snap_scale(d, ops.scale(&prod))?;
            prod = ops.sub(&prod, &d)?;
        }
        let prod = ops.rescale(prod)?;
        self.t.insert(i, prod.clone());
        Ok(prod)
    }
}

/// Evaluates `p` at every slot of `ct`; the result has exactly `target_scale`.
pub fn evaluate<O: Arith>(
    ops: &O,
    ct: &O::Ct,
    p: &Chebyshev,
    parity: Parity,
    target_scale: f64,
) -> Result<O::Ct, Error> {
    let mut c = p.coeffs.clone();
    match parity {
        Parity::Odd => c.iter_mut().step_by(2).for_each(|v| *v = 0.0),
        Parity::Even => c.iter_mut().skip(1).step_by(2).for_each(|v| *v = 0.0),
        Parity::None => {}
    }
    while c.len() > 1 && c[c.len() - 1] == 0.0 {
        c.pop();
    }
    let need = depth(p);
    let level = ops.level(ct);
    if level < need {
        return Err(Error::LevelExhausted { op: "polynomial evaluation", level });
    }
    // y = (2x - a - b) / (b - a), multiplying by a constant encoded at q_l so the scale survives.
    let y = if p.a == -1.0 && p.b == 1.0 {
        ct.clone()
    } else {
        let alpha = 2.0 / (p.b - p.a);
        let beta = -(p.a + p.b) / (p.b - p.a);
        let ql = ops.rescale_scale(level);
        let y = ops.rescale(ops.mul_const(ct, alpha, ql)?)?;
        let y = ops.snap_scale(y, ops.scale(ct))?;
        ops.add_const(&y, beta)?
    };
    let degree = c.len() - 1;
    let m = (usize::BITS - degree.max(1).leading_zeros()) as usize;
    let baby = 1usize << m.div_ceil(2).max(1);
    let y_level = ops.level(&y);
    let mut powers = Powers { ops, t: BTreeMap::new() };
    powers.t.insert(1, y);
    let target_level =
        y_level.checked_sub(m + 1).ok_or(Error::LevelExhausted { op: "polynomial evaluation", level: y_level })?;
    recurse(ops, &c, baby, target_scale, target_level, &mut powers)
}

fn recurse<O: Arith>(
    ops: &O,
    c: &[f64],
    baby: usize,
    target_scale: f64,
    target_level: usize,
    powers: &mut Powers<'_, O>,
) -> Result<O::Ct, Error> {
    if c.len() <= baby {
        return baby_step(ops, c, target_scale, target_level, powers);
    }
    let mut k = baby;
    while 2 * k < c.len() {
        k *= 2;
    }
    let (r, q) = split(c, k);
    let g = powers.get(k)?;
    let prod_level = target_level + 1;
    let q_scale = target_scale * ops.rescale_scale(prod_level) / ops.scale(&g);
    let qct = recurse(ops, &q, baby, q_scale, prod_level, powers)?;
    let g = ops.drop_level(&g, prod_level)?;
    let out = ops.rescale(ops.mul_relin(&qct, &g)?)?;
    let out = ops.snap_scale(out, target_scale)?;
    if r.iter().any(|&v| v != 0.0) {
        let rct = recurse(ops, &r, baby, target_scale, target_level, powers)?;
        return ops.add(&out, &rct);
    }
    Ok(out)
}

fn baby_step<O: Arith>(
    ops: &O,
    c: &[f64],
    target_scale: f64,
    target_level: usize,
    powers: &mut Powers<'_, O>,
) -> Result<O::Ct, Error> {
    let level = target_level + 1;
    let acc_scale = target_scale * ops.rescale_scale(level);
    let mut acc: Option<O::Ct> = None;
    for (i, &ci) in c.iter().enumerate().skip(1) {
        if ci == 0.0 {
            continue;
        }
        let t = powers.get(i)?;
        let t = ops.drop_level(&t, level)?;
        let term = ops.mul_const(&t, ci, acc_scale / ops.scale(&t))?;
        let term = ops.snap_scale(term, acc_scale)?;
        acc = Some(match acc {
            None => term,
            Some(a) => ops.add(&a, &term)?,
        });
    }
    let mut acc = match acc {
        Some(a) => a,
        None => {
            let one = powers.get(1)?;
            ops.zero_like(&one, level, acc_scale)?
        }
    };
    if c[0] != 0.0 {
        acc = ops.add_const(&acc, c[0])?;
    }
    let acc = ops.rescale(acc)?;
    ops.snap_scale(acc, target_scale)
}
