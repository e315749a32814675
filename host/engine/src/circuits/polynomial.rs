//! Homomorphic polynomial evaluation in the Chebyshev basis: baby-step giant-step
//! (Paterson-Stockmeyer style recursion on `p = r + q T_{2^k}`, as in Bossuat et al.,
//! "Efficient Bootstrapping for Approximate HE with Non-Sparse Keys", Eurocrypt 2021, sec. 4),
//! with exact scale management: every intermediate is given a target scale computed backwards
//! from the requested output scale, so the result lands on it exactly (no scale drift).
//!
//! Depth: `ceil(log2(d + 1)) + 1` levels for degree `d` on `[-1, 1]`, one more for another
//! interval (the affine change of variable).

use std::collections::BTreeMap;

use hetune_core::ckks::Ciphertext;

use super::chebyshev::{split, Chebyshev};
use crate::evaluator::{zero_ciphertext, Evaluator};
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

struct Powers<'a> {
    ev: &'a Evaluator,
    t: BTreeMap<usize, Ciphertext>,
}

impl Powers<'_> {
    /// `T_i`, computed on first use from `T_{ceil(i/2)}` and `T_{floor(i/2)}`:
    /// `T_{a+b} = 2 T_a T_b - T_{a-b}`.
    fn get(&mut self, i: usize) -> Result<Ciphertext, Error> {
        if let Some(c) = self.t.get(&i) {
            return Ok(c.clone());
        }
        let (a, b) = (i.div_ceil(2), i / 2);
        let ta = self.get(a)?;
        let tb = self.get(b)?;
        let ev = self.ev;
        let mut prod = ev.mul_relin(&ta, &tb)?;
        ev.mul_integer_assign(&mut prod, 2)?;
        if a == b {
            prod = ev.add_const_real(&prod, -1.0)?;
        } else {
            let d = self.get(a - b)?;
            let d = ev.drop_level(&d, prod.level)?;
            // Bring T_{a-b} to the product's scale exactly before subtracting.
            let mut d = ev.mul_const_real(&d, 1.0, prod.scale / d.scale)?;
            ev.snap_scale(&mut d, prod.scale)?;
            ev.sub_assign(&mut prod, &d)?;
        }
        ev.rescale_assign(&mut prod)?;
        self.t.insert(i, prod.clone());
        Ok(prod)
    }
}

/// Evaluates `p` at every slot of `ct`; the result has exactly `target_scale`.
pub fn evaluate(
    ev: &Evaluator,
    ct: &Ciphertext,
    p: &Chebyshev,
    parity: Parity,
    target_scale: f64,
) -> Result<Ciphertext, Error> {
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
    if ct.level < need {
        return Err(Error::LevelExhausted { op: "polynomial evaluation", level: ct.level });
    }
    // y = (2x - a - b) / (b - a), multiplying by a constant encoded at q_l so the scale survives.
    let y = if p.a == -1.0 && p.b == 1.0 {
        ct.clone()
    } else {
        let alpha = 2.0 / (p.b - p.a);
        let beta = -(p.a + p.b) / (p.b - p.a);
        let ql = ev.rescale_scale(ct.level);
        let mut y = ev.mul_const_real(ct, alpha, ql)?;
        ev.rescale_assign(&mut y)?;
        ev.snap_scale(&mut y, ct.scale * ql / ev.rescale_scale(ct.level))?;
        ev.add_const_real(&y, beta)?
    };
    let degree = c.len() - 1;
    let m = (usize::BITS - degree.max(1).leading_zeros()) as usize;
    let baby = 1usize << m.div_ceil(2).max(1);
    let mut powers = Powers { ev, t: BTreeMap::new() };
    powers.t.insert(1, y.clone());
    let target_level =
        y.level.checked_sub(m + 1).ok_or(Error::LevelExhausted { op: "polynomial evaluation", level: y.level })?;
    recurse(ev, &c, baby, target_scale, target_level, &mut powers, ct.log_slots)
}

fn recurse(
    ev: &Evaluator,
    c: &[f64],
    baby: usize,
    target_scale: f64,
    target_level: usize,
    powers: &mut Powers<'_>,
    log_slots: u32,
) -> Result<Ciphertext, Error> {
    if c.len() <= baby {
        return baby_step(ev, c, target_scale, target_level, powers, log_slots);
    }
    let mut k = baby;
    while 2 * k < c.len() {
        k *= 2;
    }
    let (r, q) = split(c, k);
    let g = powers.get(k)?;
    let prod_level = target_level + 1;
    let q_scale = target_scale * ev.rescale_scale(prod_level) / g.scale;
    let qct = recurse(ev, &q, baby, q_scale, prod_level, powers, log_slots)?;
    let g = ev.drop_level(&g, prod_level)?;
    let mut out = ev.mul_relin(&qct, &g)?;
    ev.rescale_assign(&mut out)?;
    ev.snap_scale(&mut out, target_scale)?;
    if r.iter().any(|&v| v != 0.0) {
        let rct = recurse(ev, &r, baby, target_scale, target_level, powers, log_slots)?;
        ev.add_assign(&mut out, &rct)?;
    }
    Ok(out)
}

fn baby_step(
    ev: &Evaluator,
    c: &[f64],
    target_scale: f64,
    target_level: usize,
    powers: &mut Powers<'_>,
    log_slots: u32,
) -> Result<Ciphertext, Error> {
    let level = target_level + 1;
    let acc_scale = target_scale * ev.rescale_scale(level);
    let mut acc: Option<Ciphertext> = None;
    for (i, &ci) in c.iter().enumerate().skip(1) {
        if ci == 0.0 {
            continue;
        }
        let t = powers.get(i)?;
        let t = ev.drop_level(&t, level)?;
        let mut term = ev.mul_const_real(&t, ci, acc_scale / t.scale)?;
        ev.snap_scale(&mut term, acc_scale)?;
        match acc.as_mut() {
            None => acc = Some(term),
            Some(a) => ev.add_assign(a, &term)?,
        }
    }
    let ctx = ev.context();
    let mut acc = acc.unwrap_or_else(|| zero_ciphertext(ctx.n(), 2, level, acc_scale, log_slots));
    if c[0] != 0.0 {
        acc = ev.add_const_real(&acc, c[0])?;
    }
    ev.rescale_assign(&mut acc)?;
    ev.snap_scale(&mut acc, target_scale)?;
    Ok(acc)
}
