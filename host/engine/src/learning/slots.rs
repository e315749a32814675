//! A third backend of [`HeBackend`]: exact complex slots in f64, with the counting backend's
//! level bookkeeping. The matrix products and the training circuits run on it unchanged, so a
//! whole encrypted step has a slot-level twin: what the circuit computes, without CKKS noise and
//! in milliseconds. Differences between it and a real run are CKKS noise alone; differences
//! between it and the plaintext twin trainer are layout or circuit errors.

use hetune_core::ckks::Complex;

use super::counters::Counter;
use super::ops::{HeBackend, Mask};
use crate::{Error, Result};

/// A stand-in ciphertext: the slot values and a level.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotCt {
    /// Level, as a ciphertext would have it.
    pub level: usize,
    /// Slot values.
    pub slots: Vec<Complex>,
}

impl SlotCt {
    /// Real slot values at `level`.
    pub fn real(values: &[f64], level: usize) -> Self {
        SlotCt { level, slots: values.iter().map(|&re| Complex::new(re, 0.0)).collect() }
    }

    /// The real parts.
    pub fn re(&self) -> Vec<f64> {
        self.slots.iter().map(|c| c.re).collect()
    }
}

/// Exact slot arithmetic with operation counts and levels.
#[derive(Debug)]
pub struct SlotBackend {
    slots: usize,
    counter: Counter,
}

impl SlotBackend {
    /// A backend for vectors of `slots` slots.
    pub fn new(slots: usize) -> Self {
        SlotBackend { slots, counter: Counter::new() }
    }

    fn check(&self, a: &SlotCt) -> Result<()> {
        if a.slots.len() != self.slots {
            return Err(Error::InvalidArgument("slot vector of the wrong length"));
        }
        Ok(())
    }

    fn zip(&self, a: &SlotCt, b: &SlotCt, f: impl Fn(Complex, Complex) -> Complex) -> Result<SlotCt> {
        self.check(a)?;
        self.check(b)?;
        Ok(SlotCt {
            level: a.level.min(b.level),
            slots: a.slots.iter().zip(&b.slots).map(|(&x, &y)| f(x, y)).collect(),
        })
    }

    fn lower(op: &'static str, level: usize) -> Result<usize> {
        level.checked_sub(1).ok_or(Error::LevelExhausted { op, level })
    }
}

fn mul(x: Complex, y: Complex) -> Complex {
    Complex::new(x.re * y.re - x.im * y.im, x.re * y.im + x.im * y.re)
}

impl HeBackend for SlotBackend {
    type Ct = SlotCt;

    fn slots(&self) -> usize {
        self.slots
    }
    fn counter(&self) -> &Counter {
        &self.counter
    }
    fn level(&self, ct: &SlotCt) -> usize {
        ct.level
    }
    fn add(&self, a: &SlotCt, b: &SlotCt) -> Result<SlotCt> {
        self.zip(a, b, |x, y| Complex::new(x.re + y.re, x.im + y.im))
    }
    fn sub(&self, a: &SlotCt, b: &SlotCt) -> Result<SlotCt> {
        self.zip(a, b, |x, y| Complex::new(x.re - y.re, x.im - y.im))
    }
    fn mul_by_i(&self, a: &SlotCt) -> Result<SlotCt> {
        self.check(a)?;
        Ok(SlotCt { level: a.level, slots: a.slots.iter().map(|x| Complex::new(-x.im, x.re)).collect() })
    }
    fn drop_level(&self, a: &SlotCt, level: usize) -> Result<SlotCt> {
        if level > a.level {
            return Err(Error::InvalidArgument("cannot raise a ciphertext's level (that needs bootstrapping)"));
        }
        Ok(SlotCt { level, slots: a.slots.clone() })
    }
    fn rotate_hoisted(&self, a: &SlotCt, steps: &[i64]) -> Result<Vec<SlotCt>> {
        self.check(a)?;
        let n = self.slots;
        self.counter.add_rot(steps.iter().filter(|&&s| s.rem_euclid(n as i64) != 0).count() as u64);
        Ok(steps
            .iter()
            .map(|&s| {
                let k = s.rem_euclid(n as i64) as usize;
                SlotCt { level: a.level, slots: (0..n).map(|i| a.slots[(i + k) % n]).collect() }
            })
            .collect())
    }
    fn conjugate(&self, a: &SlotCt) -> Result<SlotCt> {
        self.check(a)?;
        self.counter.add_conj(1);
        Ok(SlotCt { level: a.level, slots: a.slots.iter().map(|x| Complex::new(x.re, -x.im)).collect() })
    }
    fn mul_mask(&self, a: &SlotCt, mask: &Mask) -> Result<SlotCt> {
        self.check(a)?;
        if mask.packing.slots() != self.slots {
            return Err(Error::InvalidArgument("mask and ciphertext have different slot counts"));
        }
        self.counter.add_cmult(1);
        let level = Self::lower("mul_mask", a.level)?;
        Ok(SlotCt { level, slots: a.slots.iter().zip(mask.values()).map(|(&x, m)| mul(x, m)).collect() })
    }
    fn mul_sum(&self, pairs: &[(&SlotCt, &SlotCt)]) -> Result<SlotCt> {
        let (first, rest) = pairs.split_first().ok_or(Error::InvalidArgument("mul_sum of no products"))?;
        self.counter.add_mult(pairs.len() as u64);
        let mut acc = self.zip(first.0, first.1, mul)?;
        for (x, y) in rest {
            let p = self.zip(x, y, mul)?;
            acc = self.add(&acc, &p)?;
        }
        acc.level = Self::lower("mul_sum", acc.level)?;
        Ok(acc)
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
