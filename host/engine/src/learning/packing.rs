//! HETAL's block packing (Lee et al., ICML 2023, section 4.1): a matrix is cut into `s0 x s1`
//! blocks, each block one ciphertext with its values in row-major slot order (slot `r * s1 + t`
//! holds row `r`, column `t` of the block), zero padded. `s0` and `s1` follow from the class count
//! and the batch: `pad_c = 2^ceil(log2 c)`, `s0 = min(max(batch, pad_c), slots / pad_c)`,
//! `s1 = slots / s0`.
//!
//! Tiling repeats a narrow matrix with period `pad_c` so that rotations by whole periods are
//! exact: the weights `W` (`c x d`) are tiled vertically (row `r` of a block holds row
//! `r mod pad_c`), the softmax residual `P - Y` (`batch x c`) horizontally (column `t` holds
//! column `t mod pad_c`). Rows or columns `>= c` of a period are zero.

use crate::error::PackingError;
use crate::{Error, Result};

/// Block shape of one packing: `s0 x s1 = slots`, both powers of two, and the class period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Packing {
    /// Rows per block.
    pub s0: usize,
    /// Columns per block.
    pub s1: usize,
    /// The class count rounded up to a power of two (at least 2): the tiling period.
    pub pad_c: usize,
}

/// How a matrix repeats inside its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Tiling {
    /// No repetition: blocks cover the matrix once, zero padded.
    None,
    /// Rows repeat with period `pad_c` down the `s0` rows of one block row (the matrix has at
    /// most `pad_c` rows).
    Vertical,
    /// Columns repeat with period `pad_c` across the `s1` columns of one block column (the
    /// matrix has at most `pad_c` columns).
    Horizontal,
}

impl Tiling {
    /// The tiling's code in a tensor header (0 none, 1 vertical, 2 horizontal).
    pub fn code(self) -> u8 {
        match self {
            Tiling::None => 0,
            Tiling::Vertical => 1,
            Tiling::Horizontal => 2,
        }
    }

    /// The tiling of a header code.
    pub fn from_code(code: u8) -> Option<Self> {
        [Tiling::None, Tiling::Vertical, Tiling::Horizontal].into_iter().find(|t| t.code() == code)
    }

    /// The tiling's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Tiling::None => "none",
            Tiling::Vertical => "vertically",
            Tiling::Horizontal => "horizontally",
        }
    }
}

impl Packing {
    /// HETAL's packing for `classes` classes, a batch of `batch` rows and `slots` slots. The
    /// batch is rounded up to a power of two (blocks must tile the slots exactly).
    pub fn hetal(classes: usize, batch: usize, slots: usize) -> Result<Self> {
        if classes == 0 || batch == 0 {
            return Err(PackingError::Empty.into());
        }
        if !slots.is_power_of_two() {
            return Err(PackingError::SlotsNotPowerOfTwo(slots).into());
        }
        let pad_c = classes.next_power_of_two().max(2);
        if pad_c * 2 > slots {
            return Err(PackingError::TooManyClasses { classes, slots }.into());
        }
        let s0 = batch.next_power_of_two().max(pad_c).min(slots / pad_c);
        Ok(Packing { s0, s1: slots / s0, pad_c })
    }

    /// An explicit packing; `s0 * s1` is the slot count, `pad_c` divides both.
    pub fn new(s0: usize, s1: usize, pad_c: usize) -> Result<Self> {
        let ok = s0.is_power_of_two() && s1.is_power_of_two() && pad_c.is_power_of_two() && pad_c >= 2;
        if !ok || pad_c > s0 || pad_c > s1 {
            return Err(PackingError::Shape { s0, s1, pad_c }.into());
        }
        Ok(Packing { s0, s1, pad_c })
    }

    /// Slots per ciphertext.
    pub fn slots(&self) -> usize {
        self.s0 * self.s1
    }

    /// Copies of the class period in one block row (`s1 / pad_c`): the horizontal tiling's
    /// repetitions, and the factor by which folding shrinks the softmax's period.
    pub fn copies(&self) -> usize {
        (self.s1 / self.pad_c).max(1)
    }

    /// Rows of one band of the folded layout (`s0 / copies`, at least 1).
    pub fn band(&self) -> usize {
        (self.s0 / self.copies()).max(1)
    }

    /// Slots of one period of the folded layout (`slots / copies`).
    pub fn folded_slots(&self) -> usize {
        self.slots() / self.copies()
    }

    /// Half the class period: the number of paired diagonals in DiagABT and DiagATB.
    pub fn half(&self) -> usize {
        self.pad_c / 2
    }

    /// Block grid `(block rows, block columns)` of a `rows x cols` matrix under `tiling`.
    pub fn grid(&self, rows: usize, cols: usize, tiling: Tiling) -> Result<(usize, usize)> {
        match tiling {
            Tiling::None => Ok((rows.div_ceil(self.s0).max(1), cols.div_ceil(self.s1).max(1))),
            Tiling::Vertical if rows <= self.pad_c => Ok((1, cols.div_ceil(self.s1).max(1))),
            Tiling::Horizontal if cols <= self.pad_c => Ok((rows.div_ceil(self.s0).max(1), 1)),
            _ => Err(PackingError::Tiling { rows, cols, tiling: tiling.name(), pad_c: self.pad_c }.into()),
        }
    }

    /// Slot vectors of every block of a row-major `rows x cols` matrix, block-row-major.
    pub fn pack(&self, data: &[f64], rows: usize, cols: usize, tiling: Tiling) -> Result<Vec<Vec<f64>>> {
        if data.len() != rows * cols {
            return Err(Error::CountMismatch {
                what: "values",
                found: data.len(),
                expected: rows * cols,
                shape: (rows, cols),
            });
        }
        let (br, bc) = self.grid(rows, cols, tiling)?;
        let (s0, s1, pc) = (self.s0, self.s1, self.pad_c);
        let mut out = Vec::with_capacity(br * bc);
        for bi in 0..br {
            for bj in 0..bc {
                let mut v = vec![0.0; s0 * s1];
                for r in 0..s0 {
                    for t in 0..s1 {
                        let (gr, gc) = match tiling {
                            Tiling::None => (bi * s0 + r, bj * s1 + t),
                            Tiling::Vertical => (r % pc, bj * s1 + t),
                            Tiling::Horizontal => (bi * s0 + r, t % pc),
                        };
                        if gr < rows && gc < cols {
                            v[r * s1 + t] = data[gr * cols + gc];
                        }
                    }
                }
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The row-major `rows x cols` matrix held by `blocks` (the first copy of a tiled matrix).
    pub fn unpack(&self, blocks: &[Vec<f64>], rows: usize, cols: usize, tiling: Tiling) -> Result<Vec<f64>> {
        let (br, bc) = self.grid(rows, cols, tiling)?;
        if blocks.len() != br * bc || blocks.iter().any(|b| b.len() < self.slots()) {
            return Err(Error::CountMismatch {
                what: "full blocks",
                found: blocks.iter().filter(|b| b.len() >= self.slots()).count(),
                expected: br * bc,
                shape: (rows, cols),
            });
        }
        let (s0, s1) = (self.s0, self.s1);
        let mut out = vec![0.0; rows * cols];
        for gr in 0..rows {
            for gc in 0..cols {
                let (bi, bj) = match tiling {
                    Tiling::None => (gr / s0, gc / s1),
                    Tiling::Vertical => (0, gc / s1),
                    Tiling::Horizontal => (gr / s0, 0),
                };
                out[gr * cols + gc] = blocks[bi * bc + bj][(gr % s0) * s1 + gc % s1];
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hetal_block_shapes_match_the_paper() {
        // The datasets of HETAL's table at N = 2^16 (32768 slots).
        for (c, batch, s0, s1) in [(10, 1024, 1024, 32), (10, 2048, 2048, 16), (3, 512, 512, 64), (7, 1024, 1024, 32)] {
            let p = Packing::hetal(c, batch, 32768).unwrap();
            assert_eq!((p.s0, p.s1), (s0, s1), "c={c} batch={batch}");
        }
        assert_eq!(Packing::hetal(16, 4096, 32768).unwrap().s0, 2048);
        assert_eq!(Packing::hetal(5, 100, 2048).unwrap(), Packing { s0: 128, s1: 16, pad_c: 8 });
    }

    #[test]
    fn pack_unpack_round_trips_every_tiling() {
        let p = Packing::new(8, 4, 4).unwrap();
        let m: Vec<f64> = (0..(11 * 6)).map(|x| x as f64).collect();
        let blocks = p.pack(&m, 11, 6, Tiling::None).unwrap();
        assert_eq!(blocks.len(), 2 * 2);
        assert_eq!(blocks[1][0], m[4]); // block (0, 1) starts at column 4
        assert_eq!(p.unpack(&blocks, 11, 6, Tiling::None).unwrap(), m);

        let w: Vec<f64> = (0..(3 * 6)).map(|x| x as f64 + 0.5).collect();
        let bv = p.pack(&w, 3, 6, Tiling::Vertical).unwrap();
        assert_eq!(bv.len(), 2);
        assert_eq!(bv[0][4 * 4 + 1], w[1]); // row 4 repeats row 0
        assert_eq!(bv[0][3 * 4], 0.0); // row 3 of each period is padding
        assert_eq!(p.unpack(&bv, 3, 6, Tiling::Vertical).unwrap(), w);

        let r: Vec<f64> = (0..(9 * 3)).map(|x| -(x as f64)).collect();
        let ph = Packing::new(4, 8, 4).unwrap();
        let bh = ph.pack(&r, 9, 3, Tiling::Horizontal).unwrap();
        assert_eq!(bh.len(), 3);
        assert_eq!(bh[0][8 + 1], r[3 + 1]); // row 1, column 1
        assert_eq!(bh[0][8 + 5], r[3 + 1]); // column 5 repeats column 1
        assert_eq!(bh[0][8 + 3], 0.0); // column 3 of each period is padding
        assert_eq!(ph.unpack(&bh, 9, 3, Tiling::Horizontal).unwrap(), r);
        assert!(p.pack(&m, 11, 6, Tiling::Vertical).is_err());
    }
}
