//! The folded layout of a logits block: the softmax on a sparse packing, so that its bootstraps
//! refresh `slots / k` slots instead of all of them.
//!
//! HETAL's logits are tiled horizontally: row `R` of a block holds its `pad_c` classes `k = s1 /
//! pad_c` times over the `s1` columns, so a block carries `slots / k` distinct values in `slots`
//! slots, and a full-slot bootstrap refreshes every copy. Folding keeps the values and drops the
//! copies: cut the `s0` rows into `k` bands of `s0 / k` rows; period `q` of row `R` (columns `q
//! pad_c ..`) holds the classes of row `(R mod s0/k) + q s0/k`, the row of band `q` at the same
//! place in its band. Every band then holds the same values, so the block repeats with period
//! `slots / k` and is bootstrapped as a sparse packing ([`FoldedOps`]). Row sums over the classes
//! stay inside one period, as in the tiled layout.
//!
//! - Into the fold (in DiagABT, [`crate::learning::diag_abt::diag_abt_folded`]): the diagonal
//!   masks also keep only period `t` of the rows of band `t` (no extra level), and `log2 k`
//!   rotate-and-adds by whole bands copy every band's own period into the others.
//! - Out of the fold ([`unfold`]): period `t` of a row of band `t` is its own row's; moved by `δ`
//!   periods inside the row for every `δ` in `-(k-1)..k` (hoisted rotations, then masks: one
//!   level), the copies come back. The softmax's last Newton step unfolds both its factors at
//!   the level its row-sum mask takes anyway, so folding costs no level
//!   ([`super::circuit::lean_softmax`]).

use crate::circuits::arith::Arith;
use crate::learning::counters::Counter;
use crate::learning::ops::{HeBackend, Mask};
use crate::learning::packing::Packing;
use crate::{Error, Result};

/// How a logits block is laid out for the softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// HETAL's horizontal tiling (every row holds its classes `s1 / pad_c` times).
    Tiled,
    /// Folded: period `q` of a row holds band `q`'s row (see the module).
    Folded,
}

/// Whether a packing can be folded: a block row holds two class periods or more.
pub fn foldable(pk: Packing) -> bool {
    pk.copies() >= 2 && pk.s0 >= pk.copies()
}

/// The folded block `x` back in the tiled layout, each source slot weighted by `weight(column
/// in its row)`, landing on `target` scale: `sum_δ rot(S_δ weight x, -δ pad_c)`, `S_δ` the
/// slots of period `t` in the rows of band `t` whose period `t + δ` exists. One level, `2(k -
/// 1)` rotations hoisted together.
pub fn unfold<O: HeBackend>(
    ops: &O,
    x: &O::Ct,
    pk: Packing,
    weight: impl Fn(usize) -> f64,
    target: f64,
) -> Result<O::Ct> {
    let (k, band, slots) = (pk.copies() as i64, pk.band(), pk.slots());
    let deltas: Vec<i64> = (1 - k..k).collect();
    let steps: Vec<i64> = deltas.iter().map(|d| -d * pk.pad_c as i64).collect();
    let rotated = ops.rotate_hoisted(x, &steps)?;
    let mut acc: Option<O::Ct> = None;
    for ((&delta, &step), r) in deltas.iter().zip(&steps).zip(&rotated) {
        // Slot i of rot(v, step) holds v[i + step]: the mask is written at the destination.
        let values: Vec<f64> = (0..slots)
            .map(|i| {
                let src = (i as i64 + step).rem_euclid(slots as i64) as usize;
                let (row, col) = (src / pk.s1, src % pk.s1);
                let t = (col / pk.pad_c) as i64;
                let own = row / band == col / pk.pad_c;
                if own && (0..k).contains(&(t + delta)) {
                    weight(col)
                } else {
                    0.0
                }
            })
            .collect();
        let part = ops.mul_values(r, &values, target)?;
        acc = Some(match acc {
            None => part,
            Some(a) => ops.add(&a, &part)?,
        });
    }
    acc.ok_or(Error::InvalidArgument("a fold without copies"))
}

/// A backend over `inner` whose bootstraps refresh the sparse packing of `slots` slots: for
/// circuits whose ciphertexts all repeat with that period (the folded softmax). Everything
/// else is `inner`'s.
pub struct FoldedOps<'a, O> {
    inner: &'a O,
    slots: usize,
}

impl<'a, O: HeBackend> FoldedOps<'a, O> {
    /// `inner` bootstrapping on `slots` slots (a power of two below its slot count).
    pub fn new(inner: &'a O, slots: usize) -> Result<Self> {
        if !slots.is_power_of_two() || slots >= inner.slots() {
            return Err(Error::InvalidArgument("a sparse period is a power of two below the slot count"));
        }
        Ok(FoldedOps { inner, slots })
    }
}

impl<O: HeBackend> Arith for FoldedOps<'_, O> {
    type Ct = O::Ct;

    fn level(&self, ct: &O::Ct) -> usize {
        self.inner.level(ct)
    }
    fn scale(&self, ct: &O::Ct) -> f64 {
        self.inner.scale(ct)
    }
    fn rescale_scale(&self, level: usize) -> f64 {
        self.inner.rescale_scale(level)
    }
    fn add(&self, a: &O::Ct, b: &O::Ct) -> Result<O::Ct> {
        self.inner.add(a, b)
    }
    fn sub(&self, a: &O::Ct, b: &O::Ct) -> Result<O::Ct> {
        self.inner.sub(a, b)
    }
    fn drop_level(&self, a: &O::Ct, level: usize) -> Result<O::Ct> {
        self.inner.drop_level(a, level)
    }
    fn mul_relin(&self, a: &O::Ct, b: &O::Ct) -> Result<O::Ct> {
        self.inner.mul_relin(a, b)
    }
    fn rescale(&self, a: O::Ct) -> Result<O::Ct> {
        self.inner.rescale(a)
    }
    fn mul_integer(&self, a: &O::Ct, k: i64) -> Result<O::Ct> {
        self.inner.mul_integer(a, k)
    }
    fn add_const(&self, a: &O::Ct, c: f64) -> Result<O::Ct> {
        self.inner.add_const(a, c)
    }
    fn mul_const(&self, a: &O::Ct, c: f64, scale: f64) -> Result<O::Ct> {
        self.inner.mul_const(a, c, scale)
    }
    fn snap_scale(&self, a: O::Ct, scale: f64) -> Result<O::Ct> {
        self.inner.snap_scale(a, scale)
    }
    fn zero_like(&self, like: &O::Ct, level: usize, scale: f64) -> Result<O::Ct> {
        self.inner.zero_like(like, level, scale)
    }
}

impl<O: HeBackend> HeBackend for FoldedOps<'_, O> {
    fn slots(&self) -> usize {
        self.inner.slots()
    }
    fn counter(&self) -> &Counter {
        self.inner.counter()
    }
    fn mul_by_i(&self, a: &O::Ct) -> Result<O::Ct> {
        self.inner.mul_by_i(a)
    }
    fn rotate_hoisted(&self, a: &O::Ct, steps: &[i64]) -> Result<Vec<O::Ct>> {
        self.inner.rotate_hoisted(a, steps)
    }
    fn conjugate(&self, a: &O::Ct) -> Result<O::Ct> {
        self.inner.conjugate(a)
    }
    fn mul_mask(&self, a: &O::Ct, mask: &Mask) -> Result<O::Ct> {
        self.inner.mul_mask(a, mask)
    }
    fn mul_masks_sum(&self, terms: &[(&O::Ct, Mask)]) -> Result<O::Ct> {
        self.inner.mul_masks_sum(terms)
    }
    fn mul_sum(&self, pairs: &[(&O::Ct, &O::Ct)]) -> Result<O::Ct> {
        self.inner.mul_sum(pairs)
    }
    fn mul_values(&self, a: &O::Ct, values: &[f64], target_scale: f64) -> Result<O::Ct> {
        self.inner.mul_values(a, values, target_scale)
    }
    fn bootstrap_level(&self) -> Option<usize> {
        self.inner.bootstrap_level()
    }
    /// The sparse bootstrap of `a` (with a zero imaginary part: one refresh either way).
    fn bootstrap(&self, a: &O::Ct, site: &'static str) -> Result<O::Ct> {
        let zero = self.inner.zero_like(a, self.inner.level(a), self.inner.scale(a))?;
        Ok(self.inner.bootstrap_pair_sparse(a, &zero, self.slots, site)?.0)
    }
    fn bootstrap_pair(&self, a: &O::Ct, b: &O::Ct, site: &'static str) -> Result<(O::Ct, O::Ct)> {
        self.inner.bootstrap_pair_sparse(a, b, self.slots, site)
    }
    fn bootstrap_pair_sparse(&self, a: &O::Ct, b: &O::Ct, slots: usize, site: &'static str) -> Result<(O::Ct, O::Ct)> {
        self.inner.bootstrap_pair_sparse(a, b, slots, site)
    }
}

/// The folded layout of a matrix of `classes` columns and `pk.s0` rows (row-major `z`), as slot
/// values: period `t` of row `R` holds row `R mod band + t band`.
pub fn fold_values(pk: Packing, z: &[f64], classes: usize) -> Vec<f64> {
    let band = pk.band();
    (0..pk.slots())
        .map(|i| {
            let (row, col) = (i / pk.s1, i % pk.s1);
            let (t, m) = (col / pk.pad_c, col % pk.pad_c);
            let src = row % band + t * band;
            if m < classes && src < pk.s0 {
                z[src * classes + m]
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::bootstrap::BootstrapConfig;
    use crate::learning::diag_abt::{diag_abt, diag_abt_folded};
    use crate::learning::sim::{Chain, Simulator};
    use crate::learning::slots::{SlotBackend, SlotCt};
    use crate::learning::softmax::circuit::{lean_softmax, lean_softmax_in};
    use crate::learning::softmax::{sample_row, LeanNas, Sampling};
    use crate::learning::{EncMatrix, Tiling};
    use hetune_core::{Parameters, Security};
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn chain() -> Chain {
        let p = Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap();
        Chain::of(&p, &BootstrapConfig::default())
    }

    #[test]
    fn folded_products_are_the_fold_of_the_tiled_ones_and_unfold_back() {
        // Four periods a row (7 classes, s1 = 32) and two (10 classes, s1 = 32).
        for (a, b, c) in [(64usize, 100usize, 7usize), (64, 70, 10)] {
            let slots = 2048;
            let pk = Packing::hetal(c, a, slots).unwrap();
            assert!(foldable(pk), "{pk:?}");
            let x: Vec<f64> = (0..a * b).map(|i| ((i * 7919 % 1009) as f64 - 504.0) / 5040.0).collect();
            let w: Vec<f64> = (0..c * b).map(|i| ((i * 104_729 % 997) as f64 - 498.0) / 4980.0).collect();
            let ops = SlotBackend::new(slots);
            let enc = |m: &[f64], r, cl, t| {
                let blocks = pk.pack(m, r, cl, t).unwrap().iter().map(|v| SlotCt::real(v, 12)).collect();
                EncMatrix::new(r, cl, pk, t, blocks).unwrap()
            };
            let (xe, we) = (enc(&x, a, b, Tiling::None), enc(&w, c, b, Tiling::Vertical));
            let tiled = diag_abt(&ops, &xe, &we).unwrap();
            let z = pk.unpack(&[tiled.blocks[0].re()], a, c, Tiling::Horizontal).unwrap();
            let folded = diag_abt_folded(&ops, &xe, &we).unwrap();
            let want = fold_values(pk, &z, c);
            let got = folded[0].re();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-12, "{c} classes, slot {i}: {g} vs {w}");
            }
            // Same levels as the tiled product, and periodic with the folded period.
            assert_eq!(folded[0].level, tiled.blocks[0].level);
            let n = pk.folded_slots();
            assert!((n..slots).all(|i| got[i] == got[i % n]));
            // Unfolding gives the tiled block back (one level).
            let back = unfold(&ops, &folded[0], pk, |_| 1.0, ops.scale(&folded[0])).unwrap();
            for (i, (g, w)) in back.re().iter().zip(&tiled.blocks[0].re()).enumerate() {
                assert!((g - w).abs() < 1e-12, "{c} classes, unfolded slot {i}: {g} vs {w}");
            }
            assert_eq!(back.level + 1, folded[0].level);
        }
    }

    #[test]
    fn folded_lean_softmax_equals_the_twin_with_sparse_bootstraps_and_no_extra_level() {
        for classes in [3usize, 7, 10, 16] {
            let nas = LeanNas::default_for(classes).unwrap();
            let pk = Packing::hetal(classes, 64, 2048).unwrap();
            let rows = pk.s0;
            let mut rng = ChaCha8Rng::seed_from_u64(classes as u64 + 70);
            let mut z = vec![0.0; rows * classes];
            for r in 0..rows {
                sample_row(&mut rng, classes, 30.0, Sampling::Uniform, &mut z[r * classes..(r + 1) * classes]);
            }
            let ops = SlotBackend::with_chain(2048, chain());
            // The slot backend refuses a sparse bootstrap of slots that do not repeat.
            let folded = FoldedOps::new(&ops, pk.folded_slots()).unwrap();
            let p =
                lean_softmax_in(&folded, &nas, &ops.at(&fold_values(pk, &z, classes), 5), pk, Layout::Folded).unwrap();
            let got = pk.unpack(&[p.re()], rows, classes, Tiling::Horizontal).unwrap();
            let mut want = vec![0.0; classes];
            let mut worst = 0.0f64;
            for r in 0..rows {
                nas.eval_row(&z[r * classes..(r + 1) * classes], &mut want);
                for (g, w) in got[r * classes..(r + 1) * classes].iter().zip(&want) {
                    worst = worst.max((g - w).abs());
                }
            }
            assert!(worst < 1e-9, "{classes} classes: {worst:e}");
            // The tiled circuit's bootstraps, each on the folded period, and its output level.
            let sim = Simulator::new(2048, chain());
            let tiled = lean_softmax(&sim, &nas, &sim.at(5), pk).unwrap();
            let events = ops.boot_log().events;
            assert_eq!(events.len(), sim.boot_log().count(), "{classes} classes");
            assert!(events.iter().all(|e| e.slots == pk.folded_slots()), "{events:?}");
            assert_eq!(p.level, tiled.level, "{classes} classes");
        }
    }
}
