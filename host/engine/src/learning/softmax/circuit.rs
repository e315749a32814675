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
//! padded classes (their `exp` is not zero). The Newton steps use the same row sum with the
//! factor `-1` folded into the mask, then add 2. Bootstraps: [`HeBackend::ensure`] before every
//! stage that needs levels the ciphertext no longer has; values bootstrapped are in `[-1.25,
//! 1.25]` (logits are first divided by `B` when they must be bootstrapped).
//!
//! [`polynomial::evaluate`]: crate::circuits::polynomial::evaluate

use super::nas::{NasSoftmax, Normalizer};
use crate::circuits::chebyshev::Chebyshev;
use crate::circuits::polynomial::{self, Parity};
use crate::learning::ops::{doubling, HeBackend};
use crate::learning::packing::Packing;
use crate::{Error, Result};

/// A row-sum mask: `value` on the first period of every row's columns (`t < pad_c`), zero
/// elsewhere.
pub fn first_period(pk: Packing, value: f64) -> Vec<f64> {
    (0..pk.slots()).map(|i| if i % pk.s1 < pk.pad_c { value } else { 0.0 }).collect()
}

/// One on the used classes of every period (`t mod pad_c < classes`), zero on the padding.
pub fn class_mask(pk: Packing, classes: usize) -> Vec<f64> {
    (0..pk.slots()).map(|i| if (i % pk.s1) % pk.pad_c < classes { 1.0 } else { 0.0 }).collect()
}

/// `alpha * (row sum over one period) + beta` in every column of every row.
pub fn row_sum<O: HeBackend>(ops: &O, x: &O::Ct, pk: Packing, alpha: f64, beta: f64, site: &'static str) -> Result<O::Ct> {
    let sums = ops.rotate_add(x.clone(), doubling(1, pk.pad_c))?;
    let sums = ops.ensure(&sums, 1, site)?;
    let kept = ops.mul_values(&sums, &first_period(pk, alpha), ops.scale(&sums))?;
    let tiled = ops.rotate_add(kept, doubling(-(pk.pad_c as i64), pk.s1 / pk.pad_c))?;
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
        return Err(Error::InvalidConfig { what: "the encrypted softmax", need: "classes within the packing's period" });
    }
    let b = nas.bound;
    // exp((x - B) / 2^k) / sqrt(c) on x / B.
    let on_range = Chebyshev { coeffs: nas.exp.coeffs.clone(), a: -b, b };
    let scale = ops.scale(logits);
    let y = if ops.level(logits) >= polynomial::depth(&on_range) {
        polynomial::evaluate(ops, logits, &on_range, Parity::None, scale)?
    } else {
        let t = ops.ensure(logits, 1, "softmax: logits / B")?;
        let t = ops.mul_const_to(&t, 1.0 / b, ops.scale(&t))?;
        let t = ops.ensure(&t, unit_depth(&nas.exp), "softmax: exp input")?;
        polynomial::evaluate(ops, &t, &unit(&nas.exp), Parity::None, ops.scale(&t))?
    };
    let y = ops.ensure(&y, 1, "softmax: padding mask")?;
    let mut y = ops.mul_values(&y, &class_mask(pk, nas.classes), ops.scale(&y))?;
    for round in 0..nas.rounds {
        let poly = if round == 0 { &nas.first } else { &nas.rest };
        let y1 = ops.ensure(&y, 1, "softmax: round square")?;
        let sq = ops.square(&y1)?;
        let (alpha, beta) = (2.0 / (poly.b - poly.a), -(poly.a + poly.b) / (poly.b - poly.a));
        let u = row_sum(ops, &sq, pk, alpha, beta, "softmax: round sum")?;
        let u = ops.ensure(&u, unit_depth(poly), "softmax: normaliser")?;
        let q = polynomial::evaluate(ops, &u, &unit(poly), Parity::None, ops.scale(&u))?;
        y = mul_aligned(ops, &sq, &q, "softmax: normalised square")?;
    }
    for _ in 0..nas.newton {
        let s = row_sum(ops, &y, pk, -1.0, 2.0, "softmax: Newton sum")?;
        y = mul_aligned(ops, &y, &s, "softmax: Newton product")?;
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::bootstrap::BootstrapConfig;
    use crate::learning::sim::{Chain, Simulator};
    use crate::learning::slots::SlotBackend;
    use crate::learning::softmax::{sample_row, NasConfig, Sampling};
    use crate::learning::Packing;
    use hetune_core::{Parameters, Security};
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn chain() -> Chain {
        let p = Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap();
        Chain::of(&p, &BootstrapConfig::default())
    }

    #[test]
    fn circuit_on_exact_slots_equals_the_twin_row_by_row() {
        for classes in [3usize, 7, 10] {
            let nas = NasSoftmax::new(classes, NasConfig::default_for_training(classes)).unwrap();
            let pk = Packing::hetal(classes, 64, 2048).unwrap();
            let rows = pk.s0;
            let mut rng = ChaCha8Rng::seed_from_u64(classes as u64);
            let mut z = vec![0.0; rows * classes];
            for r in 0..rows {
                sample_row(&mut rng, classes, 30.0, Sampling::Uniform, &mut z[r * classes..(r + 1) * classes]);
            }
            let blocks = pk.pack(&z, rows, classes, crate::learning::Tiling::Horizontal).unwrap();
            let ops = SlotBackend::with_chain(2048, chain());
            // Logits as DiagABT leaves them at this chain: fresh minus a few levels.
            let x = ops.at(&blocks[0], 5);
            let p = nas_softmax(&ops, &nas, &x, pk).unwrap();
            let got = pk.unpack(&[p.re()], rows, classes, crate::learning::Tiling::Horizontal).unwrap();
            let mut want = vec![0.0; classes];
            let mut worst = 0.0f64;
            for r in 0..rows {
                nas.eval_row(&z[r * classes..(r + 1) * classes], &mut want);
                for (g, w) in got[r * classes..(r + 1) * classes].iter().zip(&want) {
                    worst = worst.max((g - w).abs());
                }
            }
            assert!(worst < 1e-9, "{classes} classes: {worst:e}");
            // The padded classes are zero in every period.
            let re = p.re();
            for i in 0..2048 {
                if (i % pk.s1) % pk.pad_c >= classes {
                    assert!(re[i].abs() < 1e-12, "slot {i}: {}", re[i]);
                }
            }
            // The simulator bootstraps at the same places.
            let sim = Simulator::new(2048, chain());
            nas_softmax(&sim, &nas, &sim.at(5), pk).unwrap();
            assert_eq!(sim.boot_log().events, ops.boot_log().events);
            assert!(sim.boot_log().count() >= nas.rounds as usize, "{:?}", sim.boot_log());
        }
    }
}
