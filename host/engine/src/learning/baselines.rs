//! The earlier methods HETAL compares against, implemented as their papers describe them.
//!
//! Crockett ("A low-depth homomorphic circuit for logistic regression model training", 2020),
//! on HETAL's block packing without tiling, one output column or row at a time:
//! - [`col_major_abt`] (`A B^T`): for each row `k` of `B`: mask it, replicate it down the `s0`
//!   rows of every block (`log2 s0` rotations), multiply with `A`, sum each row (`log2 s1`), keep
//!   column 0 and rotate it right into column `k`.
//! - [`row_major_atb`] (`A^T B`): for each column `k` of `A`: mask it, rotate it into column 0,
//!   replicate it across the row (`log2 s1`), multiply with `B`, sum the rows of each block
//!   (`log2 s0`) and keep row `k`.
//!
//! Counts (`A0 = 1`, HETAL's table): `CMult = c (1 + A0 B1)`, `Mult = c A0 B1`,
//! `Rot = c (B1 log2 s0 + log2 s1 + 1) - 1`, for both.
//!
//! Jin et al. (PrivGD): column packing. A tall matrix is one ciphertext per column (per `slots`
//! rows); a small one is one ciphertext per entry, the entry in every slot.
//! - [`privgd_abt`]: `C[:, k] = sum_j A[:, j] * B[k][j]`: `b c` multiplications, no rotation.
//! - [`privgd_atb`]: `D[k][j] = sum_r A[r][k] B[r][j]`: `b c` multiplications, each followed by
//!   a sum over all slots (`log2 slots` rotations); the result is entry-packed, the layout
//!   [`privgd_abt`] takes its `B` in.

use super::matrix::EncMatrix;
use super::ops::{doubling, HeBackend, Mask, MaskKind};
use super::packing::{Packing, Tiling};
use crate::{Error, Result};

fn untiled_pair<C>(a: &EncMatrix<C>, b: &EncMatrix<C>, slots: usize) -> Result<()> {
    if a.packing != b.packing || a.tiling != Tiling::None || b.tiling != Tiling::None || slots != a.packing.slots() {
        return Err(Error::LayoutMismatch {
            op: "the Crockett baselines",
            expected: "untiled matrices in one packing of the backend's slots",
        });
    }
    Ok(())
}

/// Checks the operands of a Crockett baseline `op`: untiled, in one packing of `slots` slots,
/// the shared dimension matching (`inner_match`) and the small one, `c`, at most a block side.
fn crockett_operands<C>(
    op: &'static str,
    a: &EncMatrix<C>,
    b: &EncMatrix<C>,
    slots: usize,
    c: usize,
    inner_match: bool,
) -> Result<Packing> {
    untiled_pair(a, b, slots)?;
    let pk = a.packing;
    if !inner_match || c > pk.s0 || c > pk.s1 {
        return Err(Error::ShapeMismatch { op, left: (a.rows, a.cols), right: (b.rows, b.cols) });
    }
    Ok(pk)
}

fn add_into<O: HeBackend>(ops: &O, acc: &mut Option<O::Ct>, x: O::Ct) -> Result<()> {
    *acc = Some(match acc.take() {
        None => x,
        Some(y) => ops.add(&y, &x)?,
    });
    Ok(())
}

fn collect<O: HeBackend>(acc: Vec<Option<O::Ct>>) -> Result<Vec<O::Ct>> {
    acc.into_iter().map(|x| x.ok_or(Error::InvalidArgument("empty product"))).collect()
}

/// `A B^T` by Crockett's ColMajor: `a` is `a x b`, `b` is `c x b` with `c <= min(s0, s1)`.
pub fn col_major_abt<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>, b: &EncMatrix<O::Ct>) -> Result<EncMatrix<O::Ct>> {
    let c = b.rows;
    let pk = crockett_operands("col_major_abt", a, b, ops.slots(), c, a.cols == b.cols)?;
    let (a0, b1) = a.grid;
    let mut acc: Vec<Option<O::Ct>> = vec![None; a0];
    for k in 0..c {
        let row_k = Mask::new(pk, MaskKind::Row(k));
        let rep: Vec<O::Ct> = (0..b1)
            .map(|j| {
                let m = ops.mul_mask(b.block(0, j), &row_k)?;
                ops.rotate_add(m, doubling(pk.s1 as i64, pk.s0))
            })
            .collect::<Result<_>>()?;
        for (i, slot) in acc.iter_mut().enumerate() {
            let pairs: Vec<(&O::Ct, &O::Ct)> = (0..b1).map(|j| (a.block(i, j), &rep[j])).collect();
            let sums = ops.rotate_add(ops.mul_sum(&pairs)?, doubling(1, pk.s1))?;
            let mut col = ops.mul_mask(&sums, &Mask::new(pk, MaskKind::Col(0)))?;
            if k > 0 {
                col = ops.rotate(&col, -(k as i64))?;
            }
            add_into(ops, slot, col)?;
        }
    }
    EncMatrix::new(a.rows, c, pk, Tiling::None, collect::<O>(acc)?)
}

/// `A^T B` by Crockett's RowMajor: `a` is `a x c` with `c <= min(s0, s1)`, `b` is `a x b`.
pub fn row_major_atb<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>, b: &EncMatrix<O::Ct>) -> Result<EncMatrix<O::Ct>> {
    let c = a.cols;
    let pk = crockett_operands("row_major_atb", a, b, ops.slots(), c, a.rows == b.rows)?;
    let (a0, b1) = b.grid;
    let mut acc: Vec<Option<O::Ct>> = vec![None; b1];
    for k in 0..c {
        let col_k = Mask::new(pk, MaskKind::Col(k));
        let rep: Vec<O::Ct> = (0..a0)
            .map(|i| {
                let mut m = ops.mul_mask(a.block(i, 0), &col_k)?;
                if k > 0 {
                    m = ops.rotate(&m, k as i64)?;
                }
                ops.rotate_add(m, doubling(-1, pk.s1))
            })
            .collect::<Result<_>>()?;
        for (j, slot) in acc.iter_mut().enumerate() {
            let pairs: Vec<(&O::Ct, &O::Ct)> = (0..a0).map(|i| (&rep[i], b.block(i, j))).collect();
            let sums = ops.rotate_add(ops.mul_sum(&pairs)?, doubling(pk.s1 as i64, pk.s0))?;
            add_into(ops, slot, ops.mul_mask(&sums, &Mask::new(pk, MaskKind::Row(k)))?)?;
        }
    }
    EncMatrix::new(c, b.cols, pk, Tiling::None, collect::<O>(acc)?)
}

/// A column-packed matrix (PrivGD): `cols[j][m]` holds rows `m * slots ..` of column `j`.
#[derive(Clone, Debug)]
pub struct ColumnPacked<C> {
    /// Rows.
    pub rows: usize,
    /// Ciphertexts by column, then by chunk of `slots` rows.
    pub cols: Vec<Vec<C>>,
}

/// An entry-packed matrix (PrivGD): `entries[k][j]` holds entry `(k, j)` in every slot.
#[derive(Clone, Debug)]
pub struct EntryPacked<C> {
    /// Ciphertexts by row, then by column.
    pub entries: Vec<Vec<C>>,
}

/// `A B^T` by PrivGD: `a` column-packed (`a x b`), `b` entry-packed (`c x b`); the result is
/// column-packed (`a x c`).
pub fn privgd_abt<O: HeBackend>(
    ops: &O,
    a: &ColumnPacked<O::Ct>,
    b: &EntryPacked<O::Ct>,
) -> Result<ColumnPacked<O::Ct>> {
    let chunks = a.cols.first().map_or(0, Vec::len);
    if b.entries.iter().any(|r| r.len() != a.cols.len()) || a.cols.iter().any(|c| c.len() != chunks) || chunks == 0 {
        return Err(Error::ShapeMismatch {
            op: "privgd_abt",
            left: (a.rows, a.cols.len()),
            right: (b.entries.len(), b.entries.first().map_or(0, Vec::len)),
        });
    }
    let cols = b
        .entries
        .iter()
        .map(|row| {
            (0..chunks)
                .map(|m| {
                    let pairs: Vec<(&O::Ct, &O::Ct)> = a.cols.iter().zip(row).map(|(col, e)| (&col[m], e)).collect();
                    ops.mul_sum(&pairs)
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ColumnPacked { rows: a.rows, cols })
}

/// `A^T B` by PrivGD: both column-packed (`a x c` and `a x b`); the result is entry-packed
/// (`c x b`).
pub fn privgd_atb<O: HeBackend>(
    ops: &O,
    a: &ColumnPacked<O::Ct>,
    b: &ColumnPacked<O::Ct>,
) -> Result<EntryPacked<O::Ct>> {
    let chunks = a.cols.first().map_or(0, Vec::len);
    if a.rows != b.rows || chunks == 0 || a.cols.iter().chain(&b.cols).any(|c| c.len() != chunks) {
        return Err(Error::ShapeMismatch {
            op: "privgd_atb",
            left: (a.rows, a.cols.len()),
            right: (b.rows, b.cols.len()),
        });
    }
    let entries = a
        .cols
        .iter()
        .map(|ak| {
            b.cols
                .iter()
                .map(|bj| {
                    let pairs: Vec<(&O::Ct, &O::Ct)> = ak.iter().zip(bj).collect();
                    ops.rotate_add(ops.mul_sum(&pairs)?, doubling(1, ops.slots()))
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EntryPacked { entries })
}
