//! DiagATB (HETAL, Lee et al., ICML 2023, section 4.2): `D = A^T B` for `A` (`a x c`, tiled
//! horizontally: the softmax residual `P - Y`) and `B` (`a x b`, untiled: the features), one
//! generalised diagonal of `D` at a time.
//!
//! Rotating every row of the tiled `A` left by `k` inside the row ("row rotation") takes two
//! rotations (by `k` and by `k - pad_c`, hoisted: they share the input) and one mask choosing
//! between them. Multiplied with `B` block-wise and summed over the `s0` rows of a block
//! (`log2 s0` rotate-and-adds by multiples of `s1`), every row holds in column `t` the entry
//! `D[t + k][t]`; a diagonal mask keeps it in the rows `r = t + k (mod pad_c)`: the result is
//! `D` tiled vertically, the layout of the weights.
//!
//! Pairing: `A' = A + i rowrot(A, pad_c/2)` (once: two rotations and a mask per block) carries
//! diagonals `p` and `p + pad_c/2` together, so `pad_c/2` row rotations of `A'` serve all
//! diagonals; the complex mask and one conjugation per output block make the result real, as in
//! [`super::diag_abt`]. Counts (HETAL, `A0 = 1`): `CMult = 1 + (c/2)(A0 + B1) - A0`,
//! `Mult = (c/2) A0 B1`, `Rot = 2 + (c/2)(2 A0 + B1 log2 s0) - 2 A0`.
//!
//! PRotUp, for `A` below `B` in level: instead of masking `A` for each row rotation, rotate `A'`
//! by `p` only (its last `p` columns then read the next row) and give `B` the same shift where it
//! matters: `B~ = B - M B + rot(M B, s1)` with `M` the last `p` columns. The mask falls on `B`,
//! which has levels to spare, and `A` keeps one level. Counts (`A0 = 1`): `CMult = 1 + (c - 1) B1`,
//! `Mult = (c/2) A0 B1`, `Rot = 2 + (c/2)(A0 + A0 B1 + B1 log2 s0) - A0 - A0 B1` (HETAL's
//! corrected table).
//!
//! Merged row sums ([`RowSums::Merged`], the trainer's): the diagonal masks move in front of the
//! row sums (`M rot(x, k s1) = rot(M' x, k s1)`, `M'` the mask read `k` rows up), so the `c/2`
//! pairs of one output block are masked and added under each of the `pad_c` row shifts of a group
//! and summed by one tree of `pad_c - 1` rotations, then the last `log2(s0 / pad_c)` rounds run
//! once per output block: `Rot` per output block `pad_c - 1 + log2(s0 / pad_c)` instead of
//! `(c/2) log2 s0` (1,008 -> 358 at the SNIPS shape), `CMult` per output block `(c/2) pad_c`
//! instead of `c/2` (plaintext products, summed before one rescale), same products and levels.
//!
//! Levels (from the lower input when both start level): four (pairing mask, row-rotation mask,
//! product, diagonal mask) of which two fall on `A` alone; PRotUp: three from `A` (pairing mask,
//! product, diagonal mask), the row fix-up mask on `B`.

use super::matrix::EncMatrix;
use super::ops::{doubling, HeBackend, Mask, MaskKind};
use super::packing::{Packing, Tiling};
use crate::{Error, Result};
use rayon::prelude::*;

/// Row `r` of the result holds row `r` of the tiled `x` rotated left by `k` inside the row.
fn row_rotate<O: HeBackend>(ops: &O, x: &O::Ct, k: usize, pk: Packing) -> Result<O::Ct> {
    let r = ops.rotate_hoisted(x, &[k as i64, k as i64 - pk.pad_c as i64])?;
    // `rot(x, k)` is right where `t + k` stays in the row, `rot(x, k - pad_c)` everywhere else.
    let diff = ops.sub(&r[0], &r[1])?;
    let fix = ops.mul_mask(&diff, &Mask::new(pk, MaskKind::ColsBelow(pk.s1 - k)))?;
    ops.add(&r[1], &fix)
}

/// `A' = A + i rowrot(A, pad_c / 2)` for every block of `a`.
fn pair_up<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>) -> Result<Vec<O::Ct>> {
    let h = a.packing.half();
    a.blocks
        .iter()
        .map(|x| {
            let r = row_rotate(ops, x, h, a.packing)?;
            ops.add(x, &ops.mul_by_i(&r)?)
        })
        .collect()
}

fn check<C>(a: &EncMatrix<C>, b: &EncMatrix<C>, slots: usize) -> Result<Packing> {
    let pk = a.packing;
    if b.packing != pk || a.tiling != Tiling::Horizontal || b.tiling != Tiling::None {
        return Err(Error::LayoutMismatch {
            op: "diag_atb",
            expected: "A tiled horizontally and B untiled, in one packing",
        });
    }
    if a.rows != b.rows || slots != pk.slots() {
        return Err(Error::ShapeMismatch { op: "diag_atb", left: (a.rows, a.cols), right: (b.rows, b.cols) });
    }
    Ok(pk)
}

/// How the products' sums over the `s0` rows of a block are reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RowSums {
    /// HETAL's: every product summed over all rows (`log2 s0` rotate-and-adds each), then its
    /// diagonal mask: `(c/2) B1 log2 s0` rotations.
    Hetal,
    /// Merged: the diagonal masks first, read `k` rows up for the shift by `k` rows (`M rot(x,
    /// k s1) = rot(M' x, k s1)`), the `c/2` masked products of an output block summed under each
    /// of the `pad_c` shifts of a group (one rescale per shift), those `pad_c` sums rotated into
    /// place by one tree (`pad_c - 1` rotations, keys `s1 2^k`), and the remaining
    /// `log2(s0 / pad_c)` rounds once per output block: `B1 (pad_c - 1 + log2(s0 / pad_c))`
    /// rotations and `B1 (c/2) pad_c` plaintext products. Exact: the diagonal masks repeat every
    /// `pad_c` rows and the remaining rounds shift by multiples of `pad_c` rows. Same levels as
    /// HETAL's; the rotations run one level lower. With PRotUp, the row fix-up of `B` also
    /// rotates each block once for all pairs (`B + M_p (rot(B, s1) - B)`), at the products'
    /// level: `(c/2 - 2) A0 B1` rotations fewer.
    #[default]
    Merged,
}

/// `sum_k rot(terms[k], k unit)` for a power-of-two number of terms, as a tree of pairs: round
/// `m` adds `rot(u, 2^m unit)` of every odd entry to the even one before it (`n - 1` rotations,
/// by `unit`, `2 unit`, `4 unit`, ...: the keys of a rotate-and-add by `unit`).
fn rotate_tree<O: HeBackend>(ops: &O, mut terms: Vec<O::Ct>, unit: i64) -> Result<O::Ct> {
    if !terms.len().is_power_of_two() {
        return Err(Error::InvalidArgument("a rotation tree takes a power-of-two number of terms"));
    }
    let mut step = unit;
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len() / 2);
        let mut it = terms.into_iter();
        while let (Some(even), Some(odd)) = (it.next(), it.next()) {
            next.push(ops.add(&even, &ops.rotate(&odd, step)?)?);
        }
        terms = next;
        step *= 2;
    }
    terms.pop().ok_or(Error::InvalidArgument("a rotation tree of no terms"))
}

/// Output block `j` from its products (`prods[p]`: pair `p`'s product, summed over `A`'s block
/// rows): the row sums, the diagonal masks, the pairs added, the real part.
fn reduce<O: HeBackend>(ops: &O, prods: Vec<O::Ct>, pk: Packing, rows: RowSums) -> Result<O::Ct> {
    let s1 = pk.s1 as i64;
    // The masks repeat every `pad_c` rows; a block of fewer rows (or not a multiple: no packing
    // makes one) takes HETAL's sums.
    let merged = rows == RowSums::Merged && pk.s0 % pk.pad_c == 0;
    let z = if !merged {
        let mut acc: Option<O::Ct> = None;
        for (p, prod) in prods.into_iter().enumerate() {
            let sums = ops.rotate_add(prod, doubling(s1, pk.s0))?;
            let diag = ops.mul_mask(&sums, &Mask::new(pk, MaskKind::PairDiagAtb(p)))?;
            acc = Some(match acc {
                None => diag,
                Some(x) => ops.add(&x, &diag)?,
            });
        }
        acc.ok_or(Error::InvalidArgument("a packing has at least one pair of diagonals"))?
    } else {
        // M_p sum_k rot(x_p, k s1) = sum_k rot(M_pk x_p, k s1) (M_pk: M_p read k rows up,
        // k < pad_c): the masks first, the pairs added under each shift, then one tree.
        let group = pk.pad_c;
        let shifted = (0..group)
            .map(|k| {
                let terms: Vec<(&O::Ct, Mask)> =
                    prods.iter().enumerate().map(|(p, x)| (x, Mask::new(pk, MaskKind::PairDiagAtbUp(p, k)))).collect();
                ops.mul_masks_sum(&terms)
            })
            .collect::<Result<Vec<_>>>()?;
        let z = rotate_tree(ops, shifted, s1)?;
        // The rounds left: shifts of `group * 2^k` rows up to `s0 / 2`.
        ops.rotate_add(z, doubling(s1 * group as i64, pk.s0 / group))?
    };
    ops.real_twice(&z)
}

/// `A^T B` by HETAL's DiagATB, row rotations on `A` (the variant for `A` at or above `B`'s
/// level), with HETAL's row sums (its counts). The result (`c x b`) is tiled vertically.
pub fn diag_atb<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>, b: &EncMatrix<O::Ct>) -> Result<EncMatrix<O::Ct>> {
    diag_atb_with(ops, a, b, RowSums::Hetal)
}

/// [`diag_atb`] with the row sums reduced as `sums` says.
pub fn diag_atb_with<O: HeBackend>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
    sums: RowSums,
) -> Result<EncMatrix<O::Ct>> {
    let pk = check(a, b, ops.slots())?;
    let (a0, b1) = b.grid;
    let h = pk.half();
    let paired = pair_up(ops, a)?;
    let mut shifted: Vec<Vec<O::Ct>> = Vec::with_capacity(h);
    shifted.push(paired.clone());
    for p in 1..h {
        shifted.push(paired.iter().map(|x| row_rotate(ops, x, p, pk)).collect::<Result<_>>()?);
    }
    // Every product at one level, so that all of them share one scale.
    let level = shifted.iter().flatten().map(|x| ops.level(x)).min().unwrap_or(0);
    let shifted = shifted
        .iter()
        .map(|rows| rows.iter().map(|x| ops.drop_level(x, level)).collect::<Result<Vec<_>>>())
        .collect::<Result<Vec<_>>>()?;
    // Output blocks side by side (each is independent: the same bits in any order).
    let out = (0..b1)
        .into_par_iter()
        .map(|j| {
            let prods = shifted
                .iter()
                .map(|rows| {
                    let pairs: Vec<(&O::Ct, &O::Ct)> = (0..a0).map(|i| (&rows[i], b.block(i, j))).collect();
                    ops.mul_sum(&pairs)
                })
                .collect::<Result<Vec<_>>>()?;
            reduce(ops, prods, pk, sums)
        })
        .collect::<Result<Vec<_>>>()?;
    EncMatrix::new(a.cols, b.cols, pk, Tiling::Vertical, out)
}

/// `A^T B` by DiagATB with PRotUp: plain rotations of `A'` and the row fix-up on `B` (the
/// variant for `A` below `B`'s level; one level of `A` saved), with HETAL's row sums (its counts).
pub fn diag_atb_prot_up<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>, b: &EncMatrix<O::Ct>) -> Result<EncMatrix<O::Ct>> {
    diag_atb_prot_up_with(ops, a, b, RowSums::Hetal)
}

/// [`diag_atb_prot_up`] with the row sums reduced as `sums` says.
pub fn diag_atb_prot_up_with<O: HeBackend>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
    sums: RowSums,
) -> Result<EncMatrix<O::Ct>> {
    let pk = check(a, b, ops.slots())?;
    let (a0, b1) = b.grid;
    let h = pk.half();
    let s1 = pk.s1 as i64;
    let paired = pair_up(ops, a)?;
    // B's fixed-up blocks sit one level down for p >= 1; p = 0 joins them there.
    let b_level = b.blocks.iter().map(|x| ops.level(x)).min().unwrap_or(0);
    let b_level = if h > 1 {
        b_level.checked_sub(1).ok_or(Error::LevelExhausted { op: "diag_atb_prot_up", level: 0 })?
    } else {
        b_level
    };
    // Merged: B~ = B + M (rot(B, s1) - B), since rot(M B, s1) = M rot(B, s1) (M is a column
    // mask); the difference is rotated once per block for all pairs, at the level the products
    // take (B drops there first: the rotation costs the fewest limbs).
    let a_level = paired.iter().map(|x| ops.level(x)).min().unwrap_or(0);
    let shared = sums == RowSums::Merged && h > 1 && a_level <= b_level;
    let shifted: Vec<Vec<O::Ct>> = (0..h)
        .map(|p| {
            if p == 0 {
                Ok(paired.clone())
            } else {
                paired.iter().map(|x| ops.rotate(x, p as i64)).collect::<Result<_>>()
            }
        })
        .collect::<Result<_>>()?;
    // Output blocks side by side (each is independent: the same bits in any order).
    let out = (0..b1)
        .into_par_iter()
        .map(|j| {
            let diffs: Vec<(O::Ct, O::Ct)> = if shared {
                (0..a0)
                    .map(|i| {
                        let low = ops.drop_level(b.block(i, j), a_level + 1)?;
                        let d = ops.sub(&ops.rotate(&low, s1)?, &low)?;
                        Ok((ops.drop_level(&low, a_level)?, d))
                    })
                    .collect::<Result<_>>()?
            } else {
                Vec::new()
            };
            let mut prods = Vec::with_capacity(h);
            for (p, rows) in shifted.iter().enumerate() {
                let last = Mask::new(pk, MaskKind::ColsFrom(pk.s1 - p));
                let fixed: Vec<O::Ct> = (0..a0)
                    .map(|i| {
                        if shared {
                            let (low, d) = &diffs[i];
                            return if p == 0 { Ok(low.clone()) } else { ops.add(low, &ops.mul_mask(d, &last)?) };
                        }
                        let bij = b.block(i, j);
                        if p == 0 {
                            return ops.drop_level(bij, b_level);
                        }
                        // Where rot(A', p) reads row r + 1, read row r + 1 of B as well.
                        let m = ops.mul_mask(bij, &last)?;
                        let kept = ops.sub(bij, &m)?;
                        ops.add(&kept, &ops.rotate(&m, s1)?)
                    })
                    .collect::<Result<_>>()?;
                let pairs: Vec<(&O::Ct, &O::Ct)> = rows.iter().zip(&fixed).collect();
                prods.push(ops.mul_sum(&pairs)?);
            }
            reduce(ops, prods, pk, sums)
        })
        .collect::<Result<Vec<_>>>()?;
    EncMatrix::new(a.cols, b.cols, pk, Tiling::Vertical, out)
}
