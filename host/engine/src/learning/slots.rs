//! A third backend of [`HeBackend`]: exact complex slots in f64, with the counting backend's
//! level bookkeeping. The matrix products and the training circuits run on it unchanged, so a
//! whole encrypted step has a slot-level twin: what the circuit computes, without CKKS noise and
//! in milliseconds. Differences between it and a real run are CKKS noise alone; differences
//! between it and the plaintext twin trainer are layout or circuit errors.

use hetune_core::ckks::Complex;

use super::counters::Counter;
use super::ops::{BootLog, HeBackend, Mask};
use super::sim::{Chain, SimCt, Simulator};
use crate::circuits::arith::Arith;
use crate::{Error, Result};

/// A stand-in ciphertext: the slot values, a level and a scale.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotCt {
    /// Level, as a ciphertext would have it.
    pub level: usize,
    /// Scale, as a ciphertext would have it.
    pub scale: f64,
    /// Slot values.
    pub slots: Vec<Complex>,
}

impl SlotCt {
    /// Real slot values at `level` and the nominal scale `2^42`.
    pub fn real(values: &[f64], level: usize) -> Self {
        SlotCt { level, scale: 2f64.powi(42), slots: values.iter().map(|&re| Complex::new(re, 0.0)).collect() }
    }

    /// The real parts.
    pub fn re(&self) -> Vec<f64> {
        self.slots.iter().map(|c| c.re).collect()
    }

    fn meta(&self) -> SimCt {
        SimCt { level: self.level, scale: self.scale }
    }

    fn with(m: SimCt, slots: Vec<Complex>) -> Self {
        SlotCt { level: m.level, scale: m.scale, slots }
    }
}

/// Exact slot arithmetic; levels, scales, counts and bootstraps from an inner [`Simulator`], so
/// it checks what the evaluator checks.
#[derive(Debug)]
pub struct SlotBackend {
    sim: Simulator,
}

impl SlotBackend {
    /// A backend for vectors of `slots` slots on the nominal chain ([`Chain::nominal`], 60
    /// levels).
    pub fn new(slots: usize) -> Self {
        SlotBackend { sim: Simulator::new(slots, Chain::nominal(60)) }
    }

    /// A backend on `chain` (a parameter set's primes: the scales of a real run).
    pub fn with_chain(slots: usize, chain: Chain) -> Self {
        SlotBackend { sim: Simulator::new(slots, chain) }
    }

    /// Real values as a fresh ciphertext of the chain.
    pub fn fresh(&self, values: &[f64]) -> SlotCt {
        SlotCt::with(self.sim.fresh(), values.iter().map(|&re| Complex::new(re, 0.0)).collect())
    }

    /// Real values at `level` and the chain's scale.
    pub fn at(&self, values: &[f64], level: usize) -> SlotCt {
        SlotCt::with(self.sim.at(level), values.iter().map(|&re| Complex::new(re, 0.0)).collect())
    }

    /// The bootstraps made so far.
    pub fn boot_log(&self) -> BootLog {
        self.sim.boot_log()
    }

    fn check(&self, a: &SlotCt) -> Result<()> {
        if a.slots.len() != self.sim.slots() {
            return Err(Error::InvalidArgument("slot vector of the wrong length"));
        }
        Ok(())
    }

    fn zip(&self, a: &SlotCt, b: &SlotCt, m: SimCt, f: impl Fn(Complex, Complex) -> Complex) -> Result<SlotCt> {
        self.check(a)?;
        self.check(b)?;
        Ok(SlotCt::with(m, a.slots.iter().zip(&b.slots).map(|(&x, &y)| f(x, y)).collect()))
    }

    fn map(&self, a: &SlotCt, m: SimCt, f: impl Fn(Complex) -> Complex) -> Result<SlotCt> {
        self.check(a)?;
        Ok(SlotCt::with(m, a.slots.iter().map(|&x| f(x)).collect()))
    }
}

fn mul(x: Complex, y: Complex) -> Complex {
    Complex::new(x.re * y.re - x.im * y.im, x.re * y.im + x.im * y.re)
}

fn plus(x: Complex, y: Complex) -> Complex {
    Complex::new(x.re + y.re, x.im + y.im)
}

impl Arith for SlotBackend {
    type Ct = SlotCt;

    fn level(&self, ct: &SlotCt) -> usize {
        ct.level
    }
    fn scale(&self, ct: &SlotCt) -> f64 {
        ct.scale
    }
    fn rescale_scale(&self, level: usize) -> f64 {
        self.sim.rescale_scale(level)
    }
    fn add(&self, a: &SlotCt, b: &SlotCt) -> Result<SlotCt> {
        self.zip(a, b, self.sim.add(&a.meta(), &b.meta())?, plus)
    }
    fn sub(&self, a: &SlotCt, b: &SlotCt) -> Result<SlotCt> {
        self.zip(a, b, self.sim.sub(&a.meta(), &b.meta())?, |x, y| Complex::new(x.re - y.re, x.im - y.im))
    }
    fn drop_level(&self, a: &SlotCt, level: usize) -> Result<SlotCt> {
        self.map(a, self.sim.drop_level(&a.meta(), level)?, |x| x)
    }
    fn mul_relin(&self, a: &SlotCt, b: &SlotCt) -> Result<SlotCt> {
        self.zip(a, b, self.sim.mul_relin(&a.meta(), &b.meta())?, mul)
    }
    fn rescale(&self, a: SlotCt) -> Result<SlotCt> {
        let m = self.sim.rescale(a.meta())?;
        Ok(SlotCt::with(m, a.slots))
    }
    fn mul_integer(&self, a: &SlotCt, k: i64) -> Result<SlotCt> {
        let k = k as f64;
        self.map(a, self.sim.mul_integer(&a.meta(), 0)?, |x| Complex::new(x.re * k, x.im * k))
    }
    fn add_const(&self, a: &SlotCt, c: f64) -> Result<SlotCt> {
        self.map(a, self.sim.add_const(&a.meta(), c)?, |x| Complex::new(x.re + c, x.im))
    }
    fn mul_const(&self, a: &SlotCt, c: f64, scale: f64) -> Result<SlotCt> {
        // The constant as the evaluator encodes it: rounded at `scale`.
        let c_enc = (c * scale).round() / scale;
        self.map(a, self.sim.mul_const(&a.meta(), c, scale)?, |x| Complex::new(x.re * c_enc, x.im * c_enc))
    }
    fn snap_scale(&self, a: SlotCt, scale: f64) -> Result<SlotCt> {
        let m = self.sim.snap_scale(a.meta(), scale)?;
        Ok(SlotCt::with(m, a.slots))
    }
    fn zero_like(&self, like: &SlotCt, level: usize, scale: f64) -> Result<SlotCt> {
        Ok(SlotCt::with(
            self.sim.zero_like(&like.meta(), level, scale)?,
            vec![Complex::new(0.0, 0.0); like.slots.len()],
        ))
    }
}

impl HeBackend for SlotBackend {
    fn slots(&self) -> usize {
        self.sim.slots()
    }
    fn counter(&self) -> &Counter {
        self.sim.counter()
    }
    fn mul_by_i(&self, a: &SlotCt) -> Result<SlotCt> {
        self.map(a, a.meta(), |x| Complex::new(-x.im, x.re))
    }
    fn rotate_hoisted(&self, a: &SlotCt, steps: &[i64]) -> Result<Vec<SlotCt>> {
        self.check(a)?;
        let n = self.sim.slots();
        let metas = self.sim.rotate_hoisted(&a.meta(), steps)?;
        Ok(steps
            .iter()
            .zip(metas)
            .map(|(&s, m)| {
                let k = s.rem_euclid(n as i64) as usize;
                SlotCt::with(m, (0..n).map(|i| a.slots[(i + k) % n]).collect())
            })
            .collect())
    }
    fn conjugate(&self, a: &SlotCt) -> Result<SlotCt> {
        self.map(a, self.sim.conjugate(&a.meta())?, |x| Complex::new(x.re, -x.im))
    }
    fn mul_mask(&self, a: &SlotCt, mask: &Mask) -> Result<SlotCt> {
        self.check(a)?;
        let m = self.sim.mul_mask(&a.meta(), mask)?;
        Ok(SlotCt::with(m, a.slots.iter().zip(mask.values()).map(|(&x, v)| mul(x, v)).collect()))
    }
    fn mul_sum(&self, pairs: &[(&SlotCt, &SlotCt)]) -> Result<SlotCt> {
        let metas: Vec<(SimCt, SimCt)> = pairs.iter().map(|(x, y)| (x.meta(), y.meta())).collect();
        let refs: Vec<(&SimCt, &SimCt)> = metas.iter().map(|(x, y)| (x, y)).collect();
        let m = self.sim.mul_sum(&refs)?;
        let mut acc = vec![Complex::new(0.0, 0.0); self.sim.slots()];
        for (x, y) in pairs {
            self.check(x)?;
            self.check(y)?;
            acc.iter_mut().zip(x.slots.iter().zip(&y.slots)).for_each(|(a, (&u, &v))| *a = plus(*a, mul(u, v)));
        }
        Ok(SlotCt::with(m, acc))
    }
    fn mul_values(&self, a: &SlotCt, values: &[f64], target_scale: f64) -> Result<SlotCt> {
        self.check(a)?;
        let m = self.sim.mul_values(&a.meta(), values, target_scale)?;
        Ok(SlotCt::with(m, a.slots.iter().zip(values).map(|(&x, &v)| Complex::new(x.re * v, x.im * v)).collect()))
    }
    fn bootstrap_level(&self) -> Option<usize> {
        self.sim.bootstrap_level()
    }
    fn bootstrap(&self, a: &SlotCt, site: &'static str) -> Result<SlotCt> {
        // The real part, as the CKKS backend's `z/2 + conj(z/2)` leaves it.
        self.map(a, self.sim.bootstrap(&a.meta(), site)?, |x| Complex::new(x.re, 0.0))
    }
    fn bootstrap_pair(&self, a: &SlotCt, b: &SlotCt, site: &'static str) -> Result<(SlotCt, SlotCt)> {
        let (ma, mb) = self.sim.bootstrap_pair(&a.meta(), &b.meta(), site)?;
        Ok((self.map(a, ma, |x| Complex::new(x.re, 0.0))?, self.map(b, mb, |x| Complex::new(x.re, 0.0))?))
    }
    fn bootstrap_pair_sparse(
        &self,
        a: &SlotCt,
        b: &SlotCt,
        slots: usize,
        site: &'static str,
    ) -> Result<(SlotCt, SlotCt)> {
        self.check(a)?;
        self.check(b)?;
        // A sparse bootstrap keeps the first `slots` slots and repeats them: exactly the input
        // only if it repeats with that period.
        for x in [a, b] {
            if (slots..x.slots.len()).any(|i| (x.slots[i].re - x.slots[i % slots].re).abs() > 1e-9) {
                return Err(Error::InvalidArgument("a sparse bootstrap of slots that do not repeat with its period"));
            }
        }
        let (ma, mb) = self.sim.bootstrap_pair_sparse(&a.meta(), &b.meta(), slots, site)?;
        Ok((self.map(a, ma, |x| Complex::new(x.re, 0.0))?, self.map(b, mb, |x| Complex::new(x.re, 0.0))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::{diag_abt, diag_atb, CountingBackend, EncMatrix, LevelOnly, Packing, Tiling};

    fn encode(pk: Packing, m: &[f64], rows: usize, cols: usize, tiling: Tiling, level: usize) -> EncMatrix<SlotCt> {
        let blocks = pk.pack(m, rows, cols, tiling).unwrap().iter().map(|b| SlotCt::real(b, level)).collect();
        EncMatrix::new(rows, cols, pk, tiling, blocks).unwrap()
    }

    fn decode(pk: Packing, m: &EncMatrix<SlotCt>) -> Vec<f64> {
        let blocks: Vec<Vec<f64>> = m.blocks.iter().map(SlotCt::re).collect();
        pk.unpack(&blocks, m.rows, m.cols, m.tiling).unwrap()
    }

    #[test]
    fn one_training_step_of_hetal_products_on_exact_slots() {
        // The SNIPS shape at a quarter of the slots: logits = X W^T by DiagABT and the gradient
        // (P - Y)^T X by DiagATB, exact to rounding, with the counting backend's counts and levels.
        let (a, b, c, slots) = (256usize, 769usize, 7usize, 8192usize);
        let pk = Packing::hetal(c, a, slots).unwrap();
        let x: Vec<f64> = (0..a * b).map(|i| ((i * 7919 % 1009) as f64 - 504.0) / 5040.0).collect();
        let w: Vec<f64> = (0..c * b).map(|i| ((i * 104_729 % 997) as f64 - 498.0) / 4980.0).collect();
        let ops = SlotBackend::new(slots);
        let xe = encode(pk, &x, a, b, Tiling::None, 12);
        let logits = diag_abt(&ops, &xe, &encode(pk, &w, c, b, Tiling::Vertical, 12)).unwrap();
        let z = decode(pk, &logits);
        for r in 0..a {
            for j in 0..c {
                let want: f64 = (0..b).map(|k| x[r * b + k] * w[j * b + k]).sum();
                assert!((z[r * c + j] - want).abs() < 1e-12, "logit ({r}, {j})");
            }
        }
        let g = decode(pk, &diag_atb(&ops, &logits, &xe).unwrap());
        for j in 0..c {
            for k in (0..b).step_by(37) {
                let want: f64 = (0..a).map(|r| z[r * c + j] * x[r * b + k]).sum();
                assert!((g[j * b + k] - want).abs() < 1e-9, "gradient ({j}, {k})");
            }
        }
        let count = CountingBackend::new(slots);
        let lv = |r, cl, t| EncMatrix::<LevelOnly>::level_only(r, cl, pk, t, 12).unwrap();
        let lz = diag_abt(&count, &lv(a, b, Tiling::None), &lv(c, b, Tiling::Vertical)).unwrap();
        diag_atb(&count, &lz, &lv(a, b, Tiling::None)).unwrap();
        assert_eq!(ops.counter().snapshot(), count.counter().snapshot());
        assert_eq!(logits.blocks[0].level, lz.blocks[0].level);
    }
}
