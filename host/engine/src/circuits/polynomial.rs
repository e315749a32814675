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

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

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

/// The Chebyshev powers `T_i` of the input, computed before the recursion reads them: every
/// power the recursion needs and every power those are built from, in waves of equal depth, each
/// wave's products in parallel (`T_3` beside `T_4`, `T_5 .. T_8` two at a time on two threads).
/// The products are the same whatever the order, so the result is bit for bit the serial one.
struct Powers<O: Arith> {
    t: BTreeMap<usize, O::Ct>,
}

impl<O: Arith + Sync> Powers<O> {
    /// Computes `T_i` for every `i` in `needed` (and what they are built from) from `T_1 = y`.
    fn compute(ops: &O, y: O::Ct, needed: &BTreeSet<usize>) -> Result<Self, Error> {
        // Close `needed` under `i -> ceil(i/2), floor(i/2)`; depth(i) = 1 + depth of its parts.
        let mut all = BTreeSet::new();
        let mut stack: Vec<usize> = needed.iter().copied().filter(|&i| i > 1).collect();
        while let Some(i) = stack.pop() {
            if i > 1 && all.insert(i) {
                stack.push(i.div_ceil(2));
                stack.push(i / 2);
            }
        }
        let mut depth: BTreeMap<usize, usize> = BTreeMap::from([(1, 0)]);
        for &i in &all {
            // Ascending order: both parts are below `i`, so their depths are known.
            let d = 1 + depth[&i.div_ceil(2)].max(depth[&(i / 2)]);
            depth.insert(i, d);
        }
        let mut powers = Powers { t: BTreeMap::from([(1, y)]) };
        let max_depth = depth.values().copied().max().unwrap_or(0);
        for d in 1..=max_depth {
            let wave: Vec<usize> = all.iter().copied().filter(|i| depth[i] == d).collect();
            let made: Vec<Result<O::Ct, Error>> = wave.par_iter().map(|&i| powers.product(ops, i)).collect();
            for (i, ct) in wave.into_iter().zip(made) {
                powers.t.insert(i, ct?);
            }
        }
        Ok(powers)
    }

    /// `T_i = 2 T_a T_b - T_{a-b}` with `a = ceil(i/2)`, `b = floor(i/2)` (both already here).
    fn product(&self, ops: &O, i: usize) -> Result<O::Ct, Error> {
        let (a, b) = (i.div_ceil(2), i / 2);
        let (ta, tb) = (self.get(a)?, self.get(b)?);
        let mut prod = ops.mul_integer(&ops.mul_relin(ta, tb)?, 2)?;
        if a == b {
            prod = ops.add_const(&prod, -1.0)?;
        } else {
            let d = ops.drop_level(self.get(a - b)?, ops.level(&prod))?;
            // Bring T_{a-b} to the product's scale exactly before subtracting.
            let d = ops.mul_const(&d, 1.0, ops.scale(&prod) / ops.scale(&d))?;
            let d = ops.snap_scale(d, ops.scale(&prod))?;
            prod = ops.sub(&prod, &d)?;
        }
        ops.rescale(prod)
    }
}

impl<O: Arith> Powers<O> {
    /// `T_i`, which [`Powers::compute`] made.
    fn get(&self, i: usize) -> Result<&O::Ct, Error> {
        self.t.get(&i).ok_or(Error::InvalidArgument("polynomial evaluation: a Chebyshev power was not computed"))
    }
}

/// The powers the recursion of [`recurse`] reads: its giant steps and the baby steps whose
/// coefficients are not zero.
fn needed_powers(c: &[f64], baby: usize, out: &mut BTreeSet<usize>) {
    if c.len() <= baby {
        out.extend(c.iter().enumerate().skip(1).filter(|(_, &v)| v != 0.0).map(|(i, _)| i));
        return;
    }
    let k = giant_for(c.len(), baby);
    let (r, q) = split(c, k);
    out.insert(k);
    needed_powers(&q, baby, out);
    if r.iter().any(|&v| v != 0.0) {
        needed_powers(&r, baby, out);
    }
}

/// The giant step that splits `len` coefficients: the largest `baby * 2^j` below `len`.
fn giant_for(len: usize, baby: usize) -> usize {
    let mut k = baby;
    while 2 * k < len {
        k *= 2;
    }
    k
}

/// Evaluates `p` at every slot of `ct`; the result has exactly `target_scale`.
pub fn evaluate<O: Arith + Sync>(
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
    let target_level =
        y_level.checked_sub(m + 1).ok_or(Error::LevelExhausted { op: "polynomial evaluation", level: y_level })?;
    let mut needed = BTreeSet::new();
    needed_powers(&c, baby, &mut needed);
    let powers = Powers::compute(ops, y, &needed)?;
    recurse(ops, &c, baby, target_scale, target_level, &powers)
}

/// `p = r + q T_k`: the two halves are independent, so they run side by side.
fn recurse<O: Arith + Sync>(
    ops: &O,
    c: &[f64],
    baby: usize,
    target_scale: f64,
    target_level: usize,
    powers: &Powers<O>,
) -> Result<O::Ct, Error> {
    if c.len() <= baby {
        return baby_step(ops, c, target_scale, target_level, powers);
    }
    let k = giant_for(c.len(), baby);
    let (r, q) = split(c, k);
    let high = || -> Result<O::Ct, Error> {
        let g = powers.get(k)?;
        let prod_level = target_level + 1;
        let q_scale = target_scale * ops.rescale_scale(prod_level) / ops.scale(g);
        let qct = recurse(ops, &q, baby, q_scale, prod_level, powers)?;
        let g = ops.drop_level(g, prod_level)?;
        let out = ops.rescale(ops.mul_relin(&qct, &g)?)?;
        ops.snap_scale(out, target_scale)
    };
    if r.iter().any(|&v| v != 0.0) {
        let (out, rct) = rayon::join(high, || recurse(ops, &r, baby, target_scale, target_level, powers));
        return ops.add(&out?, &rct?);
    }
    high()
}

fn baby_step<O: Arith>(
    ops: &O,
    c: &[f64],
    target_scale: f64,
    target_level: usize,
    powers: &Powers<O>,
) -> Result<O::Ct, Error> {
    let level = target_level + 1;
    let acc_scale = target_scale * ops.rescale_scale(level);
    let mut acc: Option<O::Ct> = None;
    for (i, &ci) in c.iter().enumerate().skip(1) {
        if ci == 0.0 {
            continue;
        }
        let t = ops.drop_level(powers.get(i)?, level)?;
        let term = ops.mul_const(&t, ci, acc_scale / ops.scale(&t))?;
        let term = ops.snap_scale(term, acc_scale)?;
        acc = Some(match acc {
            None => term,
            Some(a) => ops.add(&a, &term)?,
        });
    }
    let mut acc = match acc {
        Some(a) => a,
        None => ops.zero_like(powers.get(1)?, level, acc_scale)?,
    };
    if c[0] != 0.0 {
        acc = ops.add_const(&acc, c[0])?;
    }
    let acc = ops.rescale(acc)?;
    ops.snap_scale(acc, target_scale)
}
