//! The compact layout of the weights between steps, and the slot plans that move them to and
//! from HETAL's tiled layout.
//!
//! HETAL keeps `W` (`c x d`) tiled vertically: one `s0 x s1` block per `s1` columns, each row
//! `r` holding row `r mod pad_c`, so 25 ciphertexts at the SNIPS shape, each refreshed by its
//! own bootstrap. Compactly, block `j`'s first period (its `pad_c x s1` tile, `pad_c * s1`
//! slots) goes to slots `[j pad_c s1, (j + 1) pad_c s1)` of one vector: `25 * 8 * 32 = 6400`
//! slots at the SNIPS shape, which a sparse packing of `8192` slots holds. `W` and its Nesterov
//! companion are two such vectors, refreshed together as one complex bootstrap.
//!
//! Expansion to block `j` ([`CompactLayout::expand_steps`]): keep tile `j`'s slots `[j pad_c s1,
//! (j + 1) pad_c s1)` in every repetition of the weights' period (a mask, one level), then
//! `log2(weight_period / (pad_c s1))` rotate-and-adds by growing powers of two periods replicate
//! it over every period. No rotation brings the tile to
//! slot 0 first: the replication sums the masked vector over all its shifts by whole periods,
//! which is periodic, so a rotation by `j` periods would change nothing. Gathering a gradient
//! that arrives tiled (DiagATB's output layout, periodic with one tile per period) is a mask
//! alone: block `j`'s period `j` already sits where the compact vector keeps tile `j`. Neither
//! needs a rotation key per block.

use super::packing::Packing;
use crate::error::PackingError;
use crate::{Error, Result};

/// Where each weight lives in the compact vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CompactLayout {
    /// The packing of the tiled blocks.
    pub packing: Packing,
    /// Rows of `W` (classes).
    pub rows: usize,
    /// Columns of `W` (features plus bias).
    pub cols: usize,
}

/// One step of a slot plan, on a vector of `slots` values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotStep {
    /// Rotate left by this many slots (negative: right).
    Rotate(i64),
    /// Keep the slots whose index modulo `period` lies in `[start, end)`, zero the others (a
    /// plaintext mask: one level).
    Keep(usize, usize, usize),
    /// `x <- x + rotate(x, step)`.
    RotateAdd(i64),
}

impl CompactLayout {
    /// The layout of a `rows x cols` weight matrix for `packing`; it must fit the slots.
    pub fn new(packing: Packing, rows: usize, cols: usize) -> Result<Self> {
        let l = CompactLayout { packing, rows, cols };
        if rows == 0 || rows > packing.pad_c || cols == 0 || l.used() > packing.slots() {
            return Err(PackingError::Compact { rows, cols, slots: packing.slots(), pad_c: packing.pad_c }.into());
        }
        Ok(l)
    }

    /// Slots of one tile: `pad_c * s1`.
    pub fn period(&self) -> usize {
        self.packing.pad_c * self.packing.s1
    }

    /// Number of column blocks.
    pub fn blocks(&self) -> usize {
        self.cols.div_ceil(self.packing.s1)
    }

    /// Slots in use: `blocks * pad_c * s1`.
    pub fn used(&self) -> usize {
        self.blocks() * self.period()
    }

    /// The sparse packing's slot count that holds them: `used` rounded up to a power of two.
    pub fn sparse_slots(&self) -> usize {
        self.used().next_power_of_two()
    }

    /// The period of the compact vector: the weights' sparse packing (its slots), or all slots.
    /// The trainer keeps `W` and `V` periodic with it, as a sparse bootstrap leaves them.
    pub fn weight_period(&self) -> usize {
        self.sparse_slots().min(self.packing.slots())
    }

    /// The slot of `W[r][c]`.
    pub fn slot(&self, r: usize, c: usize) -> usize {
        let s1 = self.packing.s1;
        (c / s1) * self.period() + r * s1 + c % s1
    }

    /// The compact vector (`packing.slots()` values, repeated with [`CompactLayout::weight_period`])
    /// of a row-major `rows x cols` matrix.
    pub fn pack(&self, w: &[f64]) -> Result<Vec<f64>> {
        if w.len() != self.rows * self.cols {
            return Err(Error::CountMismatch {
                what: "weights",
                found: w.len(),
                expected: self.rows * self.cols,
                shape: (self.rows, self.cols),
            });
        }
        let mut v = vec![0.0; self.packing.slots()];
        for r in 0..self.rows {
            for c in 0..self.cols {
                v[self.slot(r, c)] = w[r * self.cols + c];
            }
        }
        let n = self.weight_period();
        for i in n..v.len() {
            v[i] = v[i - n];
        }
        Ok(v)
    }

    /// The row-major matrix held by a compact vector.
    pub fn unpack(&self, v: &[f64]) -> Vec<f64> {
        (0..self.rows * self.cols).map(|i| v[self.slot(i / self.cols, i % self.cols)]).collect()
    }

    /// The plan that turns the compact vector into tiled block `j`.
    pub fn expand_steps(&self, j: usize) -> Vec<SlotStep> {
        let p = self.period();
        let n = self.weight_period();
        let mut steps = vec![SlotStep::Keep(j * p, (j + 1) * p, n)];
        let mut span = p;
        // The masked tile repeats with the weights' period already: replicate inside it.
        while span < n {
            steps.push(SlotStep::RotateAdd(-(span as i64)));
            span *= 2;
        }
        steps
    }

    /// The plan that moves tiled block `j`'s tile to its place in the compact vector (the
    /// results of all blocks are added): the tiled block holds it in every period, so keeping
    /// period `j` is all it takes.
    pub fn gather_steps(&self, j: usize) -> Vec<SlotStep> {
        vec![SlotStep::Keep(j * self.period(), (j + 1) * self.period(), self.weight_period())]
    }

    /// Rotations of the full expansion (all blocks): what the planner charges for it.
    pub fn expansion_rotations(&self) -> usize {
        (0..self.blocks())
            .map(|j| self.expand_steps(j).iter().filter(|s| !matches!(s, SlotStep::Keep(..))).count())
            .sum::<usize>()
    }
}

/// Applies a plan to plaintext slots (the reference the encrypted plan is tested against).
pub fn apply_plain(v: &[f64], steps: &[SlotStep]) -> Vec<f64> {
    let n = v.len();
    let rot = |x: &[f64], k: i64| -> Vec<f64> {
        let k = k.rem_euclid(n as i64) as usize;
        (0..n).map(|i| x[(i + k) % n]).collect()
    };
    let mut x = v.to_vec();
    for s in steps {
        x = match *s {
            SlotStep::Rotate(k) => rot(&x, k),
            SlotStep::Keep(a, b, period) => {
                x.iter().enumerate().map(|(i, &y)| if (a..b).contains(&(i % period)) { y } else { 0.0 }).collect()
            }
            SlotStep::RotateAdd(k) => rot(&x, k).iter().zip(&x).map(|(a, b)| a + b).collect(),
        };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::packing::Tiling;

    #[test]
    fn expansion_gives_hetal_tiling_and_gathering_inverts_it() {
        // The SNIPS shape at a quarter of the slots (s0 = 256 instead of 1024), ragged ones, and
        // shapes whose compact vector repeats with a period below the slots (the SNIPS shape
        // itself: 6,400 slots used, period 8,192 of 32,768; one block of 1,024 in 32,768).
        for (c, cols, batch, slots) in [
            (7usize, 769usize, 256usize, 8192usize),
            (3, 50, 16, 256),
            (10, 129, 64, 4096),
            (7, 769, 1024, 32768),
            (7, 100, 256, 32768),
        ] {
            let pk = Packing::hetal(c, batch, slots).unwrap();
            let l = CompactLayout::new(pk, c, cols).unwrap();
            let w: Vec<f64> = (0..c * cols).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
            let compact = l.pack(&w).unwrap();
            assert_eq!(l.unpack(&compact), w);
            let n = l.weight_period();
            assert!((n..slots).all(|i| compact[i] == compact[i - n]), "periodic");
            let tiled = pk.pack(&w, c, cols, Tiling::Vertical).unwrap();
            assert_eq!(tiled.len(), l.blocks());
            let mut gathered = vec![0.0; slots];
            for (j, block) in tiled.iter().enumerate() {
                assert_eq!(&apply_plain(&compact, &l.expand_steps(j)), block, "c={c} block {j}");
                let g = apply_plain(block, &l.gather_steps(j));
                gathered.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
            }
            assert_eq!(gathered, compact);
        }
    }

    #[test]
    fn snips_shape_fits_a_sparse_packing_of_8192_slots() {
        let pk = Packing::hetal(7, 1024, 32768).unwrap();
        let l = CompactLayout::new(pk, 7, 769).unwrap();
        assert_eq!((l.blocks(), l.used(), l.sparse_slots()), (25, 6400, 8192));
        // 5 doublings per block inside the period of 8,192 (HETAL-style expansion: a rotation per
        // block first and 7 doublings, 199 in all).
        assert_eq!(l.expansion_rotations(), 25 * 5);
        // No plan rotates by a multiple of the period other than the doublings: no key per block.
        let steps: Vec<i64> = (0..l.blocks())
            .flat_map(|j| l.expand_steps(j).into_iter().chain(l.gather_steps(j)))
            .filter_map(|s| match s {
                SlotStep::Rotate(k) | SlotStep::RotateAdd(k) => Some(k),
                SlotStep::Keep(..) => None,
            })
            .collect();
        assert!(steps.iter().all(|k| (-k as usize).is_power_of_two() && -k as usize >= l.period()));
        assert!(CompactLayout::new(pk, 9, 769).is_err());
    }
}
