//! The normalize-and-square softmax as a circuit on HETAL's packed logits, written once against
//! [`HeBackend`]: the CKKS backend runs it on ciphertexts, the simulator on levels and scales
//! (where it bootstraps is the plan), exact slots on f64 (checked against [`NasSoftmax::eval_row`]).
//!
//! Layout: one block of `s0` rows by `s1` columns, the logits tiled horizontally (column `t`
//! holds class `t mod pad_c`; classes `c..pad_c` of each period are padding). Per round:
//! 1. `y^2` (one product);
//! 2. the row sum: `log2 pad_c` rotate-and-adds leave a full period's sum in every column whose
//!    window stays inside the row, among them the first period of every row; a mask keeps that
//!    period, multiplied by the normaliser's affine factor `2/(b - a)` (one level), and
//!    `log2(s1 / pad_c)` right rotate-and-adds tile it over the row again, then the constant
//!    `-(a + b)/(b - a)` is added: the normaliser's variable on `[-1, 1]`;
//! 3. the normaliser polynomial on `[-1, 1]` ([`polynomial::evaluate`]);
//! 4. `y <- y^2 q` (one product).
//!
//! `exp` runs on `x / B` (its affine map inside the polynomial evaluator), and a mask zeroes the
//! padded classes (their `exp` is not zero). The first Newton step `y <- y (2 - sum y)` needs no
//! row sum of its own: after the last round `sum y = q S`, `S` the sum of squares that round
//! already tiled over the row, so `2 - q S` is one product of ciphertexts the round holds
//! (the sum's ciphertext has levels to spare for the scalar `-1/alpha`). Further Newton steps
//! use the row sum with the factor `-1` folded into the mask, then add 2. Bootstraps: [`HeBackend::ensure`] before every
//! stage that needs levels the ciphertext no longer has; values bootstrapped are in `[-1.25,
//! 1.25]` (logits are first divided by `B` when they must be bootstrapped).
//!
//! [`polynomial::evaluate`]: crate::circuits::polynomial::evaluate

use super::fold::{unfold, Layout};
use super::hetal::{self, HetalSoftmax};
use super::lean::LeanNas;
use super::nas::{NasSoftmax, Normalizer};
use crate::circuits::chebyshev::Chebyshev;
use crate::circuits::polynomial::{self, Parity};
use crate::learning::ops::{doubling, HeBackend};
use crate::learning::packing::Packing;
use crate::{Error, Result};

/// The columns of every row that hold a whole period's sum after the rotate-and-adds, as a
/// power of two: the first period when a row holds two periods or more (`t + pad_c <= s1` for
/// every `t < pad_c`), else column 0 alone.
pub fn sum_columns(pk: Packing) -> usize {
    if pk.s1 >= 2 * pk.pad_c {
        pk.pad_c
    } else {
        1
    }
}

/// A row-sum mask: `value` on the first [`sum_columns`] columns of every row, zero elsewhere.
pub fn first_period(pk: Packing, value: f64) -> Vec<f64> {
    let keep = sum_columns(pk);
    (0..pk.slots()).map(|i| if i % pk.s1 < keep { value } else { 0.0 }).collect()
}

/// One on the used classes of every period (`t mod pad_c < classes`), zero on the padding.
pub fn class_mask(pk: Packing, classes: usize) -> Vec<f64> {
    (0..pk.slots()).map(|i| if (i % pk.s1) % pk.pad_c < classes { 1.0 } else { 0.0 }).collect()
}

/// `alpha * (row sum over one period) + beta` in every column of every row.
pub fn row_sum<O: HeBackend>(
    ops: &O,
    x: &O::Ct,
    pk: Packing,
    alpha: f64,
    beta: f64,
    site: &'static str,
) -> Result<O::Ct> {
    row_sum_to(ops, x, pk, alpha, beta, None, site)
}

/// [`row_sum`] landing on `target` scale (the mask's encoding chooses it), `None` for the
/// summed ciphertext's own scale.
pub fn row_sum_to<O: HeBackend>(
    ops: &O,
    x: &O::Ct,
    pk: Packing,
    alpha: f64,
    beta: f64,
    target: Option<f64>,
    site: &'static str,
) -> Result<O::Ct> {
    row_sum_in(ops, x, pk, Layout::Tiled, alpha, beta, target, site)
}

/// [`row_sum_to`] in either layout. Folded, a period's sum is kept in the period's first column
/// (the one whose window is that period) and spread over the period: `log2 pad_c` right
/// rotate-and-adds (tiled: `log2(s1 / pad_c)` from the row's first period).
#[allow(clippy::too_many_arguments)]
pub fn row_sum_in<O: HeBackend>(
    ops: &O,
    x: &O::Ct,
    pk: Packing,
    layout: Layout,
    alpha: f64,
    beta: f64,
    target: Option<f64>,
    site: &'static str,
) -> Result<O::Ct> {
    let sums = ops.rotate_add(x.clone(), doubling(1, pk.pad_c))?;
    let sums = ops.ensure(&sums, 1, site)?;
    let target = target.unwrap_or_else(|| ops.scale(&sums));
    let tiled = match layout {
        Layout::Tiled => {
            let kept = ops.mul_values(&sums, &first_period(pk, alpha), target)?;
            let keep = sum_columns(pk);
            ops.rotate_add(kept, doubling(-(keep as i64), pk.s1 / keep))?
        }
        Layout::Folded => {
            let m: Vec<f64> =
                (0..pk.slots()).map(|i| if (i % pk.s1).is_multiple_of(pk.pad_c) { alpha } else { 0.0 }).collect();
            let kept = ops.mul_values(&sums, &m, target)?;
            ops.rotate_add(kept, doubling(-1, pk.pad_c))?
        }
    };
    if beta == 0.0 {
        Ok(tiled)
    } else {
        ops.add_const(&tiled, beta)
    }
}

/// `a * b` with both brought to one level (bootstrapping one that has no level left).
pub fn mul_aligned<O: HeBackend>(ops: &O, a: &O::Ct, b: &O::Ct, site: &'static str) -> Result<O::Ct> {
    let a = ops.ensure(a, 1, site)?;
    let b = ops.ensure(b, 1, site)?;
    let level = ops.level(&a).min(ops.level(&b));
    ops.mul(&ops.drop_level(&a, level)?, &ops.drop_level(&b, level)?)
}

/// The same polynomial on `[-1, 1]`.
fn unit(p: &Chebyshev) -> Chebyshev {
    Chebyshev::from_coeffs(p.coeffs.clone())
}

/// Levels `evaluate` needs for `p` on `[-1, 1]`.
pub fn unit_depth(p: &Chebyshev) -> usize {
    polynomial::depth(&unit(p))
}

/// The softmax of every row of one horizontally tiled logits block of `classes` classes.
pub fn nas_softmax<O: HeBackend>(ops: &O, nas: &NasSoftmax, logits: &O::Ct, pk: Packing) -> Result<O::Ct> {
    if nas.normalizer != Normalizer::Inverse {
        return Err(Error::InvalidConfig {
            what: "the encrypted normalize-and-square softmax",
            need: "the inverse normaliser (the configuration of NasConfig::default_for_training)",
        });
    }
    if nas.classes > pk.pad_c || ops.slots() != pk.slots() {
        return Err(Error::InvalidConfig {
            what: "the encrypted softmax",
            need: "classes within the packing's period",
        });
    }
    let mut y = exp_of_logits(ops, &nas.exp, nas.bound, nas.classes, logits, pk)?;
    let mut newton = nas.newton;
    for round in 0..nas.rounds {
        let poly = if round == 0 { &nas.first } else { &nas.rest };
        // The whole round on one refresh: square, sum mask, normaliser, product.
        let y1 = ops.ensure(&y, 3 + unit_depth(poly), "softmax: round")?;
        let sq = ops.square(&y1)?;
        let (alpha, beta) = (2.0 / (poly.b - poly.a), -(poly.a + poly.b) / (poly.b - poly.a));
        let u = row_sum(ops, &sq, pk, alpha, beta, "softmax: round sum")?;
        let u = ops.ensure(&u, unit_depth(poly), "softmax: normaliser")?;
        let q = polynomial::evaluate(ops, &u, &unit(poly), Parity::None, ops.scale(&u))?;
        y = mul_aligned(ops, &sq, &q, "softmax: normalised square")?;
        if round + 1 == nas.rounds && newton > 0 && ops.level(&u) > ops.level(&q) && ops.level(&q) >= 1 {
            // The first Newton step's sum is free: sum(y) = q S with S = sum(sq) = (u - beta)
            // / alpha already tiled over the row, so y (2 - q S) costs one product after y.
            let neg_s = ops.mul_const_to(&u, -1.0 / alpha, ops.scale(&u))?;
            let neg_s = ops.add_const(&neg_s, beta / alpha)?;
            let factor = ops.add_const(&mul_aligned(ops, &q, &neg_s, "softmax: Newton")?, 2.0)?;
            y = mul_aligned(ops, &y, &factor, "softmax: Newton product")?;
            newton -= 1;
        }
    }
    for _ in 0..newton {
        // Sum mask and product on one refresh.
        y = ops.ensure(&y, 2, "softmax: Newton")?;
        let s = row_sum(ops, &y, pk, -1.0, 2.0, "softmax: Newton sum")?;
        y = mul_aligned(ops, &y, &s, "softmax: Newton product")?;
    }
    Ok(y)
}

/// `exp((x - B) / 2^k) / sqrt(c)` of the logits by the interpolant `exp` on `x / B` (the affine
/// map inside the evaluator when the logits have the levels, else after a refresh of `x / B`),
/// then the padded classes zeroed by a mask.
fn exp_of_logits<O: HeBackend>(
    ops: &O,
    exp: &Chebyshev,
    b: f64,
    classes: usize,
    logits: &O::Ct,
    pk: Packing,
) -> Result<O::Ct> {
    let on_range = Chebyshev { coeffs: exp.coeffs.clone(), a: -b, b };
    let scale = ops.scale(logits);
    let y = if ops.level(logits) >= polynomial::depth(&on_range) {
        polynomial::evaluate(ops, logits, &on_range, Parity::None, scale)?
    } else {
        let t = ops.ensure(logits, 1, "softmax: logits / B")?;
        let t = ops.mul_const_to(&t, 1.0 / b, ops.scale(&t))?;
        let t = ops.ensure(&t, unit_depth(exp), "softmax: exp input")?;
        polynomial::evaluate(ops, &t, &unit(exp), Parity::None, ops.scale(&t))?
    };
    let y = ops.ensure(&y, 1, "softmax: padding mask")?;
    ops.mul_values(&y, &class_mask(pk, classes), ops.scale(&y))
}

/// The lean normalize-and-square softmax ([`LeanNas`], twin [`LeanNas::eval_row`]) of every row
/// of one horizontally tiled logits block. `exp` and the padding mask as in [`nas_softmax`]; per
/// round: `sq = y^2`; the row sum with the normaliser's linear factor folded into its mask
/// (`lin = zeta (S - r0)`, tiled over the row); each quadratic factor `(lin + zeta (r0 - a))^2 +
/// zeta^2 b^2` one square; then `lin sq` and the quadratics multiplied as a balanced tree. A
/// bootstrap may fall before a round's square (on `y`), after it (on `sq`, the one ciphertext
/// the rest of the round needs), or after the mask (`sq` and `lin` as one complex bootstrap, when
/// `sq` has a level for the mask but not the round), wherever the levels run out; then the
/// Newton steps. Each round's output lands on the scale of `exp`'s output.
pub fn lean_softmax<O: HeBackend>(ops: &O, nas: &LeanNas, logits: &O::Ct, pk: Packing) -> Result<O::Ct> {
    lean_softmax_in(ops, nas, logits, pk, Layout::Tiled)
}

/// [`lean_softmax`] of a block in `layout`. Folded ([`super::fold`], `ops` bootstrapping the
/// folded period, e.g. [`super::fold::FoldedOps`]), the output is tiled again: the last Newton
/// step unfolds `y` and its row sum at the level the sum's mask takes anyway (without Newton
/// steps, one level more at the end).
pub fn lean_softmax_in<O: HeBackend>(
    ops: &O,
    nas: &LeanNas,
    logits: &O::Ct,
    pk: Packing,
    layout: Layout,
) -> Result<O::Ct> {
    if nas.classes > pk.pad_c || ops.slots() != pk.slots() {
        return Err(Error::InvalidConfig {
            what: "the encrypted softmax",
            need: "classes within the packing's period",
        });
    }
    if layout == Layout::Folded && !super::fold::foldable(pk) {
        return Err(Error::InvalidConfig { what: "the folded softmax", need: "two class periods or more in a row" });
    }
    let mut y = exp_of_logits(ops, &nas.exp, nas.bound, nas.classes, logits, pk)?;
    // Every round and Newton step ends on this scale: products of ciphertexts would otherwise let
    // it drift by the primes' distance from it, doubled by every later square.
    let scale = ops.scale(&y);
    for q in &nas.rounds {
        let y1 = ops.ensure(&y, 1, "softmax: square")?;
        let sq = ops.square(&y1)?;
        let rest = q.round_levels() - 1;
        let (sq, lin) = if ops.level(&sq) >= rest || ops.level(&sq) == 0 {
            // The round on one refresh (bootstrapping sq first if it has no level for the mask).
            let sq = ops.ensure(&sq, rest, "softmax: round")?;
            let lin_scale = linear_factor_scale(ops, ops.scale(&sq), ops.level(&sq) - 1, q.pairs.len(), scale);
            let lin = row_sum_in(ops, &sq, pk, layout, q.zeta, -q.zeta * q.r0, Some(lin_scale), "softmax: round sum")?;
            (sq, lin)
        } else {
            // The mask on the levels left, then sq and the linear factor refreshed together as
            // one complex bootstrap; the factor is divided by a power of two `lam` for the
            // bootstrap (|lin| <= |zeta| hi) and multiplied back exactly (an integer). The round's
            // output scale then follows the bootstrap's; the next round's factor corrects it.
            let lam = (q.zeta.abs() * q.hi).log2().ceil().exp2().max(1.0);
            let lin = row_sum_in(
                ops,
                &sq,
                pk,
                layout,
                q.zeta / lam,
                -q.zeta * q.r0 / lam,
                Some(ops.scale(&sq)),
                "softmax: round sum",
            )?;
            let sq = ops.drop_level(&sq, ops.level(&lin))?;
            let (sq, lin) = ops.bootstrap_pair(&sq, &lin, "softmax: round (pair)")?;
            (sq, ops.mul_integer(&lin, lam as i64)?)
        };
        let mut leaves = vec![mul_aligned(ops, &lin, &sq, "softmax: linear factor")?];
        for &(a, b2) in &q.pairs {
            let u = ops.add_const(&lin, q.zeta * (q.r0 - a))?;
            let u = ops.square(&u)?;
            leaves.push(ops.add_const(&u, q.zeta * q.zeta * b2)?);
        }
        while leaves.len() > 1 {
            let mut next = Vec::with_capacity(leaves.len().div_ceil(2));
            for pair in leaves.chunks(2) {
                next.push(match pair {
                    [a, b] => mul_aligned(ops, a, b, "softmax: normaliser product")?,
                    [a] => a.clone(),
                    _ => unreachable!("chunks of two"),
                });
            }
            leaves = next;
        }
        y = leaves.pop().ok_or(Error::InvalidArgument("a round without factors"))?;
    }
    for k in 0..nas.newton {
        y = ops.ensure(&y, 2, "softmax: Newton")?;
        // The sum lands on the prime its product with y rescales by: y keeps its scale.
        let q = ops.rescale_scale(ops.level(&y) - 1);
        if layout == Layout::Folded && k + 1 == nas.newton {
            // Both factors unfolded by the masks this step takes anyway: the sum's mask
            // (-1 on each period's first column) moves into the unfolding's.
            let sums = ops.rotate_add(y.clone(), doubling(1, pk.pad_c))?;
            let first = |col: usize| if col.is_multiple_of(pk.pad_c) { -1.0 } else { 0.0 };
            let s = unfold(ops, &sums, pk, first, q)?;
            let s = ops.add_const(&ops.rotate_add(s, doubling(-1, pk.pad_c))?, 2.0)?;
            let yt = unfold(ops, &y, pk, |_| 1.0, ops.scale(&y))?;
            return mul_aligned(ops, &yt, &s, "softmax: Newton product");
        }
        let s = row_sum_in(ops, &y, pk, layout, -1.0, 2.0, Some(q), "softmax: Newton sum")?;
        y = mul_aligned(ops, &y, &s, "softmax: Newton product")?;
    }
    match layout {
        Layout::Tiled => Ok(y),
        Layout::Folded => {
            let y = ops.ensure(&y, 1, "softmax: unfold")?;
            unfold(ops, &y, pk, |_| 1.0, ops.scale(&y))
        }
    }
}

/// The scale the linear factor (at `level`) must have for a round's product tree (`lin sq` and
/// `pairs` squares of `lin` plus constants, multiplied pairwise as in [`lean_softmax`]) to end on
/// `target`: the tree's log-scale is affine in the factor's with slope `2 pairs + 1`.
fn linear_factor_scale<O: HeBackend>(ops: &O, sq_scale: f64, level: usize, pairs: usize, target: f64) -> f64 {
    let lq = |l: usize| ops.rescale_scale(l).log2();
    let out = |x: f64| {
        let mut leaves = vec![(level - 1, x + sq_scale.log2() - lq(level))];
        leaves.extend((0..pairs).map(|_| (level - 1, 2.0 * x - lq(level))));
        while leaves.len() > 1 {
            leaves = leaves
                .chunks(2)
                .map(|p| match p {
                    [(la, sa), (lb, sb)] => {
                        let l = (*la).min(*lb);
                        (l - 1, sa + sb - lq(l))
                    }
                    [a] => *a,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
        }
        leaves[0].1
    };
    let slope = (2 * pairs + 1) as f64;
    2f64.powf((target.log2() - out(0.0)) / slope)
}

/// `max(a, b) = b + (a - b) s`, `s = (comp(a - b) + 1) / 2`, landing on `b`'s scale.
fn hetal_max<O: HeBackend>(ops: &O, a: &O::Ct, b: &O::Ct, comp: &[(Chebyshev, Parity)]) -> Result<O::Ct> {
    let diff = ops.sub(a, b)?;
    let mut c = diff.clone();
    let last = comp.len() - 1;
    for (k, (p, parity)) in comp.iter().enumerate() {
        c = ops.ensure(&c, polynomial::depth(p), "softmax (HETAL): comparison")?;
        if k < last {
            c = polynomial::evaluate(ops, &c, p, *parity, ops.scale(&c))?;
        } else {
            // s lands where diff * s, rescaled, has exactly b's scale.
            let out_level = ops.level(&c) - polynomial::depth(p);
            let diff = ops.ensure(&diff, 1, "softmax (HETAL): max product")?;
            let l = out_level.min(ops.level(&diff));
            if l == 0 {
                return Err(Error::LevelExhausted { op: "softmax (HETAL): max product", level: 0 });
            }
            let target = ops.scale(b) * ops.rescale_scale(l) / ops.scale(&diff);
            let c_at = ops.drop_level(&c, l + polynomial::depth(p))?;
            let s = polynomial::evaluate(ops, &c_at, p, *parity, target)?;
            let prod = ops.mul(&ops.drop_level(&diff, l)?, &s)?;
            let prod = ops.snap_scale(prod, ops.scale(b))?;
            return ops.add(&prod, b);
        }
    }
    Err(Error::InvalidArgument("a comparison of no polynomials"))
}

/// HETAL's softmax (its f64 twin: [`HetalSoftmax::eval_row`]) on one horizontally tiled logits
/// block: normalise by `2 Rmax` with the padded classes set to `pad_value` (one mask), the row
/// maximum by `log2 pad_c` rounds of comparisons with the rotations by `1, 2, ..` (column 0 sees
/// exactly the twin's entry-0 tree), column 0 kept and spread over the row, domain extension as
/// `n` odd cubics on the normalised variable (`v <- L v - (4/27) L^3 v^3`, the twin's steps with
/// `d = r L^(i+1) v`), `exp` as `p(v r / 2^k)` then `k` squarings, the padded classes zeroed,
/// Goldschmidt's inverse started from two masks of one row sum (`(2 - a)/R` and `1 - a`, `a` the
/// sum over `R`), and the product.
pub fn hetal_softmax<O: HeBackend>(ops: &O, h: &HetalSoftmax, logits: &O::Ct, pk: Packing) -> Result<O::Ct> {
    if h.classes > pk.pad_c || h.pad_c != pk.pad_c || ops.slots() != pk.slots() || h.extension.precise {
        return Err(Error::InvalidConfig {
            what: "the encrypted HETAL softmax",
            need: "the packing's class period and the basic (not precise) domain extension",
        });
    }
    let norm = 2.0 * h.rmax;
    // z = x / norm on the used classes, pad_value / norm on the padded ones.
    let x = ops.ensure(logits, 1, "softmax (HETAL): normalise")?;
    let shifted = ops.add_const(&x, -h.pad_value)?;
    let used: Vec<f64> = class_mask(pk, h.classes).iter().map(|m| m / norm).collect();
    let z = ops.mul_values(&shifted, &used, ops.scale(&shifted))?;
    let z = ops.add_const(&z, h.pad_value / norm)?;
    // Comparison polynomials: g, .., g, then (f + 1) / 2 (f applied comp_f times, the last one
    // carrying the affine map to s).
    let odd = |c: &[f64]| (Chebyshev::from_power(c, -1.0, 1.0), Parity::Odd);
    let mut comp: Vec<(Chebyshev, Parity)> = (0..h.comp_g).map(|_| odd(&hetal::COMP_G)).collect();
    comp.extend((1..h.comp_f).map(|_| odd(&hetal::COMP_F)));
    let mut half_f: Vec<f64> = hetal::COMP_F.iter().map(|v| v / 2.0).collect();
    half_f[0] += 0.5;
    comp.push((Chebyshev::from_power(&half_f, -1.0, 1.0), Parity::None));
    let mut m = z.clone();
    let mut step = 1usize;
    while step < pk.pad_c {
        let mm = ops.ensure(&m, 1, "softmax (HETAL): max round")?;
        let r = ops.rotate(&mm, step as i64)?;
        m = hetal_max(ops, &mm, &r, &comp)?;
        step *= 2;
    }
    let m = ops.ensure(&m, 1, "softmax (HETAL): keep the maximum")?;
    let col0: Vec<f64> = (0..pk.slots()).map(|i| if i % pk.s1 == 0 { 1.0 } else { 0.0 }).collect();
    let m = ops.mul_values(&m, &col0, ops.scale(&m))?;
    let m = ops.rotate_add(m, doubling(-1, pk.s1))?;
    let mut v = ops.sub(&z, &m)?;
    // Domain extension: v = d / (r L^n) in [-1, 0]; each step v <- L v - (4/27) L^3 v^3.
    let ext = h.extension;
    let kappa = norm / (ext.r * ext.l.powi(ext.n as i32));
    for i in 0..ext.n {
        let k = if i == 0 { kappa } else { 1.0 };
        let cubic = [0.0, ext.l * k, 0.0, -4.0 / 27.0 * ext.l.powi(3) * k.powi(3)];
        let p = Chebyshev::from_power(&cubic, -1.0, 1.0);
        v = ops.ensure(&v, polynomial::depth(&p), "softmax (HETAL): domain extension")?;
        v = polynomial::evaluate(ops, &v, &p, Parity::Odd, ops.scale(&v))?;
    }
    // exp(d) ~ p(d / 2^k)^(2^k) with d = r v.
    let shrink = ext.r / f64::from(1u32 << h.exp_squarings);
    let exp_c: Vec<f64> = hetal::EXP_P.iter().enumerate().map(|(j, c)| c * shrink.powi(j as i32)).collect();
    let p = Chebyshev::from_power(&exp_c, -1.0, 1.0);
    let v = ops.ensure(&v, polynomial::depth(&p), "softmax (HETAL): exp")?;
    let mut e = polynomial::evaluate(ops, &v, &p, Parity::None, ops.scale(&v))?;
    for _ in 0..h.exp_squarings {
        e = ops.ensure(&e, 1, "softmax (HETAL): exp squaring")?;
        e = ops.square(&e)?;
    }
    if h.mask_padded {
        e = ops.ensure(&e, 1, "softmax (HETAL): padding mask")?;
        e = ops.mul_values(&e, &class_mask(pk, h.classes), ops.scale(&e))?;
    }
    // Goldschmidt: a = sum / R, y = (2 - a) / R (the final 1 / R folded in), t = 1 - a.
    let big_r = h.inverse_scale;
    let mut y = row_sum(ops, &e, pk, -1.0 / (big_r * big_r), 2.0 / big_r, "softmax (HETAL): row sum")?;
    let mut t = row_sum(ops, &e, pk, -1.0 / big_r, 1.0, "softmax (HETAL): row sum")?;
    for _ in 0..h.inverse_iterations {
        t = ops.ensure(&t, 1, "softmax (HETAL): Goldschmidt")?;
        t = ops.square(&t)?;
        let one_t = ops.add_const(&t, 1.0)?;
        y = mul_aligned(ops, &y, &one_t, "softmax (HETAL): Goldschmidt")?;
    }
    mul_aligned(ops, &e, &y, "softmax (HETAL): exp times inverse")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::bootstrap::BootstrapConfig;
    use crate::learning::sim::{Chain, Simulator};
    use crate::learning::slots::SlotBackend;
    use crate::learning::softmax::{sample_row, NasConfig, Sampling};
    use crate::learning::{Arith, Packing};
    use hetune_core::{Parameters, Security};
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn chain() -> Chain {
        let p = Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap();
        Chain::of(&p, &BootstrapConfig::default())
    }

    /// Uniform logits in [-30, 30] for the `pk.s0` rows of one block, and the block itself.
    fn logits(classes: usize, pk: Packing, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let rows = pk.s0;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut z = vec![0.0; rows * classes];
        for r in 0..rows {
            sample_row(&mut rng, classes, 30.0, Sampling::Uniform, &mut z[r * classes..(r + 1) * classes]);
        }
        let block = pk.pack(&z, rows, classes, crate::learning::Tiling::Horizontal).unwrap().swap_remove(0);
        (z, block)
    }

    /// The circuit's output `p` against `twin` row by row (below 1e-9), and its padded classes
    /// at zero in every period.
    fn assert_rows_equal(classes: usize, pk: Packing, z: &[f64], p: &[f64], twin: impl Fn(&[f64], &mut [f64])) {
        let rows = pk.s0;
        let got = pk.unpack(&[p.to_vec()], rows, classes, crate::learning::Tiling::Horizontal).unwrap();
        let mut want = vec![0.0; classes];
        let mut worst = 0.0f64;
        for r in 0..rows {
            twin(&z[r * classes..(r + 1) * classes], &mut want);
            for (g, w) in got[r * classes..(r + 1) * classes].iter().zip(&want) {
                worst = worst.max((g - w).abs());
            }
        }
        assert!(worst < 1e-9, "{classes} classes: {worst:e}");
        for (i, v) in p.iter().enumerate() {
            if (i % pk.s1) % pk.pad_c >= classes {
                assert!(v.abs() < 1e-12, "slot {i}: {v}");
            }
        }
    }

    #[test]
    fn circuit_on_exact_slots_equals_the_twin_row_by_row() {
        for classes in [3usize, 7, 10] {
            let nas = NasSoftmax::new(classes, NasConfig::default_for_training(classes)).unwrap();
            // s1 = 32 (four periods a row) and, for 7 classes, s1 = pad_c (one period a row).
            let batch = if classes == 7 { 256 } else { 64 };
            let pk = Packing::hetal(classes, batch, 2048).unwrap();
            let (z, block) = logits(classes, pk, classes as u64);
            let ops = SlotBackend::with_chain(2048, chain());
            // Logits as DiagABT leaves them at this chain: fresh minus a few levels.
            let p = nas_softmax(&ops, &nas, &ops.at(&block, 5), pk).unwrap();
            assert_rows_equal(classes, pk, &z, &p.re(), |x, out| nas.eval_row(x, out));
            // The simulator bootstraps at the same places.
            let sim = Simulator::new(2048, chain());
            nas_softmax(&sim, &nas, &sim.at(5), pk).unwrap();
            assert_eq!(sim.boot_log().events, ops.boot_log().events);
            assert!(sim.boot_log().count() >= nas.rounds as usize, "{:?}", sim.boot_log());
        }
    }

    #[test]
    fn lean_circuit_on_exact_slots_equals_the_twin_row_by_row() {
        for classes in [3usize, 7, 10, 16] {
            let nas = LeanNas::default_for(classes).unwrap();
            let batch = if classes == 7 { 256 } else { 64 };
            let pk = Packing::hetal(classes, batch, 2048).unwrap();
            let (z, block) = logits(classes, pk, classes as u64 + 7);
            let ops = SlotBackend::with_chain(2048, chain());
            let p = lean_softmax(&ops, &nas, &ops.at(&block, 5), pk).unwrap();
            assert_rows_equal(classes, pk, &z, &p.re(), |x, out| nas.eval_row(x, out));
            let sim = Simulator::new(2048, chain());
            lean_softmax(&sim, &nas, &sim.at(5), pk).unwrap();
            assert_eq!(sim.boot_log().events, ops.boot_log().events);
            eprintln!("lean {classes} classes: {} bootstraps", sim.boot_log().count());
            // Above 10 classes round 2 refreshes sq and its linear factor together.
            let pair = sim.boot_log().events.iter().any(|e| e.site == "softmax: round (pair)");
            assert_eq!(pair, classes > 10, "{:?}", sim.boot_log());
            // At n16-boot's primes (further from the scale than test-n12-boot's) the output keeps
            // the input's scale: the linear factors' and Newton sums' scales are chosen for it.
            let p16 = Parameters::preset("n16-boot", Security::InsecureForTestingOnly).unwrap();
            let pk16 = Packing::hetal(classes, 1024, p16.max_slots()).unwrap();
            let sim16 = Simulator::new(p16.max_slots(), Chain::of(&p16, &BootstrapConfig::default()));
            let x16 = sim16.at(5);
            let out = lean_softmax(&sim16, &nas, &x16, pk16).unwrap();
            let ratio = sim16.scale(&out) / sim16.scale(&x16);
            assert!((ratio - 1.0).abs() < 1e-9, "{classes} classes: output scale off by {ratio}");
        }
    }

    #[test]
    fn hetal_circuit_on_exact_slots_equals_its_twin_row_by_row() {
        for (classes, batch) in [(7usize, 64usize), (10, 64), (3, 512)] {
            let h = crate::learning::softmax::HetalSoftmax::published(classes);
            let pk = Packing::hetal(classes, batch, 2048).unwrap();
            let rows = pk.s0;
            let mut rng = ChaCha8Rng::seed_from_u64(classes as u64 + 100);
            let mut z = vec![0.0; rows * classes];
            for r in 0..rows {
                sample_row(&mut rng, classes, 100.0, Sampling::Uniform, &mut z[r * classes..(r + 1) * classes]);
            }
            let blocks = pk.pack(&z, rows, classes, crate::learning::Tiling::Horizontal).unwrap();
            let ops = SlotBackend::with_chain(2048, chain());
            let p = hetal_softmax(&ops, &h, &ops.at(&blocks[0], 5), pk).unwrap();
            let got = pk.unpack(&[p.re()], rows, classes, crate::learning::Tiling::Horizontal).unwrap();
            let mut want = vec![0.0; classes];
            let mut worst = 0.0f64;
            for r in 0..rows {
                h.eval_row(&z[r * classes..(r + 1) * classes], &mut want);
                for (g, w) in got[r * classes..(r + 1) * classes].iter().zip(&want) {
                    worst = worst.max((g - w).abs());
                }
            }
            let sim = Simulator::new(2048, chain());
            hetal_softmax(&sim, &h, &sim.at(5), pk).unwrap();
            eprintln!("HETAL {classes} classes: {worst:e}, {} bootstraps", sim.boot_log().count());
            assert!(worst < 1e-9, "{classes} classes: {worst:e}");
            assert_eq!(sim.boot_log().events, ops.boot_log().events);
        }
    }
}
