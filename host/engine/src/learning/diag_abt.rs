//! DiagABT (HETAL, Lee et al., ICML 2023, section 4.2): `C = A B^T` for `A` (`a x b`, untiled)
//! and `B` (`c x b`, tiled vertically), computed one generalised diagonal of `C` at a time.
//!
//! Rotating the tiled `B` up by `k` rows is one rotation by `k * s1` per block (exact, the tiling
//! repeats every `pad_c` rows); multiplied with `A` block-wise and summed over the column blocks,
//! row `r` holds the products of row `r` of `A` with row `r + k` of `B`. Summing each `s1`-wide
//! row (`log2 s1` rotate-and-adds) leaves `C[r][r + k]` in column 0; a mask keeps column 0, a
//! second tree of `log2 s1` right rotations spreads it over the row, and a diagonal mask puts it
//! in the columns `t = r + k (mod pad_c)`: the result is `C` tiled horizontally, the layout
//! DiagATB takes `P - Y` in.
//!
//! Pairing: diagonals `p` and `p + pad_c/2` share one product. `B' = B + i rot(B, pad_c/2 rows)`
//! carries both, so `A * rot(B', p rows)` holds diagonal `p` in its real part and `p + pad_c/2`
//! in its imaginary part; the mask `(M_p - i M_{p+pad_c/2}) / 2` makes the real part of the sum
//! `C`, and one conjugation per output block (`x + conj(x)`) removes the imaginary rest. Hence
//! HETAL's counts: `CMult = c`, `Mult = (c/2) A0 B1`, `Rot = (c/2)(B1 + 2 A0 log2 s1)` (with
//! `A0 = 1`; here `pad_c` for `c`, and each block row of `A` has its own masks). HETAL's table
//! counts no conjugation; we report it apart (`Conj`, one per output block).
//!
//! Levels: the product, the column-0 mask and the diagonal mask: three below the lower input.

use super::matrix::EncMatrix;
use super::ops::{doubling, HeBackend, Mask, MaskKind};
use super::packing::Tiling;
use crate::{Error, Result};

/// `A B^T` by HETAL's DiagABT: `a` untiled (`a x b`), `b` tiled vertically (`c x b`), both in
/// one packing. The result (`a x c`) is tiled horizontally.
pub fn diag_abt<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>, b: &EncMatrix<O::Ct>) -> Result<EncMatrix<O::Ct>> {
    let blocks = products(ops, a, b, false)?;
    EncMatrix::new(a.rows, b.rows, a.packing, Tiling::Horizontal, blocks)
}

/// [`diag_abt`] with each output block folded for the softmax
/// ([`crate::learning::softmax::fold`]): the diagonal masks keep only each band's own period
/// (no extra level) and `log2 copies` rotate-and-adds by whole bands replicate it, so a block
/// repeats with period [`crate::learning::packing::Packing::folded_slots`]. One block per block
/// row of `a`.
pub fn diag_abt_folded<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>, b: &EncMatrix<O::Ct>) -> Result<Vec<O::Ct>> {
    let pk = a.packing;
    if pk.copies() < 2 || pk.s0 < pk.copies() {
        return Err(Error::InvalidConfig {
            what: "folded logits",
            need: "a block row holding two class periods or more",
        });
    }
    let blocks = products(ops, a, b, true)?;
    let period = pk.folded_slots() as i64;
    blocks.into_iter().map(|x| ops.rotate_add(x, doubling(period, pk.copies()))).collect()
}

fn products<O: HeBackend>(ops: &O, a: &EncMatrix<O::Ct>, b: &EncMatrix<O::Ct>, folded: bool) -> Result<Vec<O::Ct>> {
    let pk = a.packing;
    if b.packing != pk || a.tiling != Tiling::None || b.tiling != Tiling::Vertical {
        return Err(Error::LayoutMismatch {
            op: "diag_abt",
            expected: "A untiled and B tiled vertically, in one packing",
        });
    }
    if a.cols != b.cols || ops.slots() != pk.slots() {
        return Err(Error::ShapeMismatch { op: "diag_abt", left: (a.rows, a.cols), right: (b.rows, b.cols) });
    }
    let (a0, b1) = a.grid;
    let s1 = pk.s1 as i64;
    let h = pk.half();
    // B' = B + i rot(B, h rows), then rot(B', p rows) for every pair p, hoisted per block.
    let steps: Vec<i64> = (0..h as i64).map(|p| p * s1).collect();
    let shifted: Vec<Vec<O::Ct>> = (0..b1)
        .map(|j| {
            let bj = b.block(0, j);
            let up = ops.rotate(bj, h as i64 * s1)?;
            let paired = ops.add(bj, &ops.mul_by_i(&up)?)?;
            ops.rotate_hoisted(&paired, &steps)
        })
        .collect::<Result<_>>()?;
    let col0 = Mask::new(pk, MaskKind::Col(0));
    let mut out = Vec::with_capacity(a0);
    for i in 0..a0 {
        let mut acc: Option<O::Ct> = None;
        for p in 0..h {
            let pairs: Vec<(&O::Ct, &O::Ct)> =
                shifted.iter().enumerate().map(|(j, s)| (a.block(i, j), &s[p])).collect();
            let prod = ops.mul_sum(&pairs)?;
            let sums = ops.rotate_add(prod, doubling(1, pk.s1))?;
            let kept = ops.mul_mask(&sums, &col0)?;
            let spread = ops.rotate_add(kept, doubling(-1, pk.s1))?;
            let kind = if folded { MaskKind::PairDiagAbtFolded(p) } else { MaskKind::PairDiagAbt(p) };
            let diag = ops.mul_mask(&spread, &Mask::new(pk, kind))?;
            acc = Some(match acc {
                None => diag,
                Some(x) => ops.add(&x, &diag)?,
            });
        }
        let acc = acc.ok_or(Error::InvalidArgument("a packing has at least one pair of diagonals"))?;
        out.push(ops.real_twice(&acc)?);
    }
    Ok(out)
}
