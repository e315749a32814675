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
//! Merged row sums ([`RowSums::Merged`], the trainer's): each product is summed over groups of
//! `pad_c` rows only, masked, and the pairs of one output block are added before the last
//! `log2(s0 / pad_c)` rounds: `Rot` drops by `B1 ((c/2 - 1) log2(s0 / pad_c))` (1,008 -> 483 at
//! the SNIPS shape), with the same masks, products and levels.
//!
//! Levels (from the lower input when both start level): four (pairing mask, row-rotation mask,
//! product, diagonal mask) of which two fall on `A` alone; PRotUp: three from `A` (pairing mask,
//! product, diagonal mask), the row fix-up mask on `B`.

use super::matrix::EncMatrix;
use super::ops::{doubling, HeBackend, Mask, MaskKind};
use super::packing::{Packing, Tiling};
use crate::{Error, Result};

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
    /// Merged: each product summed over groups of `pad_c` consecutive rows only (`log2 pad_c`
    /// rotate-and-adds), masked, and the `c/2` masked partial sums of one output block added
    /// before the remaining `log2(s0 / pad_c)` rounds, which run once per output block:
    /// `B1 ((c/2) log2 pad_c + log2(s0 / pad_c))` rotations. Exact: the diagonal masks repeat
    /// every `pad_c` rows and the remaining rounds shift by multiples of `pad_c` rows, so mask and
    /// rounds commute, and the groups starting at rows `r, r + pad_c, ...` cover every row once.
    /// Same levels and masks as HETAL's; the last rounds run one level lower. With PRotUp, the
    /// row fix-up of `B` also rotates each block once for all pairs (`B + M_p (rot(B, s1) -
    /// B)`), at the products' level: `(c/2 - 2) A0 B1` rotations fewer.
    #[default]
    Merged,
}

/// Rows summed before the masks (a group of consecutive rows; the rest of the sum follows them).
fn group_rows(pk: Packing, rows: RowSums) -> usize {
    match rows {
        RowSums::Hetal => pk.s0,
        RowSums::Merged => pk.pad_c.min(pk.s0),
    }
}

/// Sums product `prod` over its first rounds of rows, masks pair `p`'s diagonals, and adds into
/// `acc[j]`.
fn accumulate<O: HeBackend>(
    ops: &O,
    acc: &mut [Option<O::Ct>],
    j: usize,
    prod: O::Ct,
    p: usize,
    pk: Packing,
    rows: RowSums,
) -> Result<()> {
    let sums = ops.rotate_add(prod, doubling(pk.s1 as i64, group_rows(pk, rows)))?;
    let diag = ops.mul_mask(&sums, &Mask::new(pk, MaskKind::PairDiagAtb(p)))?;
    acc[j] = Some(match acc[j].take() {
        None => diag,
        Some(x) => ops.add(&x, &diag)?,
    });
    Ok(())
}

fn finish<O: HeBackend>(
    ops: &O,
    acc: Vec<Option<O::Ct>>,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
    rows: RowSums,
) -> Result<EncMatrix<O::Ct>> {
    let pk = a.packing;
    let group = group_rows(pk, rows);
    let out = acc
        .into_iter()
        .map(|x| {
            let x = x.ok_or(Error::InvalidArgument("a packing has at least one pair of diagonals"))?;
            // The rounds left after the masks: shifts of `group * 2^k` rows up to `s0 / 2`.
            let x = ops.rotate_add(x, doubling(pk.s1 as i64 * group as i64, pk.s0 / group))?;
            ops.real_twice(&x)
        })
        .collect::<Result<Vec<_>>>()?;
    EncMatrix::new(a.cols, b.cols, a.packing, Tiling::Vertical, out)
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
    let mut acc: Vec<Option<O::Ct>> = vec![None; b1];
    for (p, rows) in shifted.iter().enumerate() {
        let rows = rows.iter().map(|x| ops.drop_level(x, level)).collect::<Result<Vec<_>>>()?;
        for j in 0..b1 {
            let pairs: Vec<(&O::Ct, &O::Ct)> = (0..a0).map(|i| (&rows[i], b.block(i, j))).collect();
            let prod = ops.mul_sum(&pairs)?;
            accumulate(ops, &mut acc, j, prod, p, pk, sums)?;
        }
    }
    finish(ops, acc, a, b, sums)
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
    let diffs: Vec<Vec<(O::Ct, O::Ct)>> = if shared {
        (0..a0)
            .map(|i| {
                (0..b1)
                    .map(|j| {
                        let low = ops.drop_level(b.block(i, j), a_level + 1)?;
                        let d = ops.sub(&ops.rotate(&low, s1)?, &low)?;
                        Ok((ops.drop_level(&low, a_level)?, d))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let mut acc: Vec<Option<O::Ct>> = vec![None; b1];
    for p in 0..h {
        let rows: Vec<O::Ct> = if p == 0 {
            paired.clone()
        } else {
            paired.iter().map(|x| ops.rotate(x, p as i64)).collect::<Result<_>>()?
        };
        let last = Mask::new(pk, MaskKind::ColsFrom(pk.s1 - p));
        for j in 0..b1 {
            let fixed: Vec<O::Ct> = (0..a0)
                .map(|i| {
                    if shared {
                        let (low, d) = &diffs[i][j];
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
            let prod = ops.mul_sum(&pairs)?;
            accumulate(ops, &mut acc, j, prod, p, pk, sums)?;
        }
    }
    finish(ops, acc, a, b, sums)
}
