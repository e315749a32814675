//! An encrypted matrix: its layout (logical shape, packing, tiling, level) and one ciphertext
//! per block (block-row-major). Encryption and decryption of row-major values, and the wire form
//! over any `std::io` reader or writer: a self-describing tensor header (`TensorLayout::Blocks`
//! with block rows `s0`, block columns `s1` and the [`BlockLayout`]: `pad_c`, tiling, level)
//! followed by the block ciphertexts, so a reader needs no layout from the caller.

use std::io::{BufRead, Write};

use hetune_core::ckks::{encrypt_sk, Ciphertext, Encoder};
use hetune_core::rlwe::{Context, SecretKey, SecretRng};
use hetune_core::wire::{self, BlockLayout, Limits, TensorHeader, TensorLayout};
use hetune_core::Error as CoreError;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use zeroize::Zeroizing;

use super::ops::LevelOnly;
use super::packing::{Packing, Tiling};
use crate::error::PackingError;
use crate::owner::decrypt_decode;
use crate::wire_io::{IoSink, IoSource};
use crate::{Error, Result};

/// A matrix in HETAL block packing; `C` is a ciphertext or a counting stand-in.
#[derive(Clone, Debug)]
pub struct EncMatrix<C> {
    /// Rows of the matrix (without padding or tiling).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Block shape.
    pub packing: Packing,
    /// Repetition inside the blocks.
    pub tiling: Tiling,
    /// Block grid `(block rows, block columns)`.
    pub grid: (usize, usize),
    /// Block ciphertexts, block-row-major.
    pub blocks: Vec<C>,
}

/// Everything about an encrypted matrix but its ciphertexts: what [`EncMatrix::encrypt`] makes
/// and what the matrix's tensor header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixLayout {
    /// Rows of the matrix (without padding or tiling).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Block shape and class period.
    pub packing: Packing,
    /// Repetition inside the blocks.
    pub tiling: Tiling,
    /// Level of the block ciphertexts.
    pub level: usize,
}

impl<C> EncMatrix<C> {
    /// Wraps `blocks`, checking their number against the shape.
    pub fn new(rows: usize, cols: usize, packing: Packing, tiling: Tiling, blocks: Vec<C>) -> Result<Self> {
        let grid = packing.grid(rows, cols, tiling)?;
        if blocks.len() != grid.0 * grid.1 {
            return Err(Error::CountMismatch {
                what: "blocks",
                found: blocks.len(),
                expected: grid.0 * grid.1,
                shape: (rows, cols),
            });
        }
        Ok(EncMatrix { rows, cols, packing, tiling, grid, blocks })
    }

    /// Block `(i, j)`.
    pub fn block(&self, i: usize, j: usize) -> &C {
        &self.blocks[i * self.grid.1 + j]
    }
}

impl EncMatrix<LevelOnly> {
    /// A stand-in matrix for the counting backend, every block at `level`.
    pub fn level_only(rows: usize, cols: usize, packing: Packing, tiling: Tiling, level: usize) -> Result<Self> {
        let (br, bc) = packing.grid(rows, cols, tiling)?;
        Self::new(rows, cols, packing, tiling, vec![LevelOnly { level }; br * bc])
    }
}

impl EncMatrix<Ciphertext> {
    /// Encrypts the row-major matrix `data` (`layout.rows x layout.cols`) with the secret key in
    /// `layout`, one block per ciphertext (in parallel; each block's randomness from its own
    /// seed drawn from `rng`).
    pub fn encrypt<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        data: &[f64],
        layout: &MatrixLayout,
        rng: &mut R,
    ) -> Result<Self> {
        let MatrixLayout { rows, cols, packing, tiling, level } = *layout;
        let params = ctx.params();
        if packing.slots() != params.max_slots() {
            return Err(PackingError::Slots { packing: packing.slots(), params: params.max_slots() }.into());
        }
        if level > params.max_level() {
            return Err(Error::LevelAboveTop { level, top: params.max_level() });
        }
        let slot_blocks = packing.pack(data, rows, cols, tiling)?;
        // Each block's encryption randomness (the errors, with which the secret follows from the
        // ciphertext) comes from its own seed: the seeds and the generators' states are wiped.
        let seeds: Zeroizing<Vec<[u8; 32]>> = Zeroizing::new(
            slot_blocks
                .iter()
                .map(|_| {
                    let mut s = [0u8; 32];
                    rng.fill_bytes(&mut s);
                    s
                })
                .collect(),
        );
        let encoder = Encoder::new(ctx);
        let log_slots = packing.slots().trailing_zeros();
        let blocks = slot_blocks
            .par_iter()
            .zip(seeds.par_iter())
            .map(|(v, seed)| {
                let pt = encoder.encode_real(v, log_slots, level, params.scale())?;
                Ok(encrypt_sk(ctx, sk, &pt, &mut SecretRng::new(seed))?.expand(ctx))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(rows, cols, packing, tiling, blocks)
    }

    /// Decrypts to a row-major `rows x cols` vector (real parts of the slots).
    pub fn decrypt(&self, ctx: &Context, sk: &SecretKey) -> Result<Vec<f64>> {
        let slot_blocks = self.blocks.par_iter().map(|ct| decrypt_decode(ctx, sk, ct)).collect::<Result<Vec<_>>>()?;
        self.packing.unpack(&slot_blocks, self.rows, self.cols, self.tiling)
    }

    /// Lowest level among the blocks.
    pub fn level(&self) -> usize {
        self.blocks.iter().map(|c| c.level).min().unwrap_or(0)
    }

    /// The matrix's layout (at its lowest level).
    pub fn layout(&self) -> MatrixLayout {
        MatrixLayout {
            rows: self.rows,
            cols: self.cols,
            packing: self.packing,
            tiling: self.tiling,
            level: self.level(),
        }
    }

    /// Writes the wire form: a tensor header with the block layout, then every block as a full
    /// ciphertext record (all at one level).
    pub fn write_wire<W: Write>(&self, ctx: &Context, out: W) -> Result<()> {
        let params = ctx.params();
        if self.blocks.iter().any(|c| c.level != self.level()) {
            return Err(Error::InvalidArgument("the blocks of a matrix on the wire share one level"));
        }
        let layout = BlockLayout {
            pad_c: u32::try_from(self.packing.pad_c).map_err(|_| CoreError::InvalidArgument("class period"))?,
            tiling: self.tiling.code(),
            level: u8::try_from(self.level()).map_err(|_| CoreError::InvalidArgument("level"))?,
        };
        let header = TensorHeader {
            rows: self.rows as u64,
            cols: self.cols as u64,
            layout: TensorLayout::Blocks,
            block_rows: self.packing.s0 as u32,
            block_cols: self.packing.s1 as u32,
            count: u32::try_from(self.blocks.len()).map_err(|_| CoreError::InvalidArgument("more than 2^32 blocks"))?,
            dtype: 0,
        };
        let mut sink = IoSink(out);
        wire::write_block_tensor_header(&mut sink, params, &header, &layout)?;
        for ct in &self.blocks {
            wire::write_ciphertext(&mut sink, params, ct)?;
        }
        sink.0.flush().map_err(|_| Error::Core(hetune_core::Error::Io))
    }

    /// Reads the wire form; the layout comes from its header.
    pub fn read_wire<R: BufRead>(ctx: &Context, input: R) -> Result<Self> {
        let params = ctx.params();
        let limits = Limits::for_ciphertexts(params);
        let mut src = IoSource(input);
        let (h, layout) = wire::read_tensor_header_with_layout(&mut src, ctx, &limits)?;
        if h.layout != TensorLayout::Blocks {
            return Err(CoreError::Malformed("not a block-packed matrix").into());
        }
        let layout = layout.ok_or(CoreError::Malformed("a block-packed matrix without its block layout"))?;
        let tiling = Tiling::from_code(layout.tiling).ok_or(CoreError::Malformed("tensor tiling"))?;
        let packing = Packing::new(h.block_rows as usize, h.block_cols as usize, layout.pad_c as usize)
            .map_err(|_| CoreError::Malformed("block shape and class period are not a packing"))?;
        if packing.slots() != params.max_slots() {
            return Err(CoreError::Malformed("block shape does not match the parameter set's slots").into());
        }
        let (rows, cols) = (usize::try_from(h.rows), usize::try_from(h.cols));
        let (Ok(rows), Ok(cols)) = (rows, cols) else {
            return Err(CoreError::Malformed("matrix shape too large").into());
        };
        let (br, bc) =
            packing.grid(rows, cols, tiling).map_err(|_| CoreError::Malformed("shape and tiling do not fit"))?;
        if br.checked_mul(bc) != Some(h.count as usize) {
            return Err(CoreError::Malformed("block count does not match the shape").into());
        }
        let blocks = (0..h.count)
            .map(|_| {
                let ct = wire::read_ciphertext(&mut src, ctx, &limits)?.into_full(ctx);
                if ct.level != usize::from(layout.level) {
                    return Err(CoreError::Malformed("a block at another level than its header's").into());
                }
                Ok(ct)
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(rows, cols, packing, tiling, blocks)
    }
}
