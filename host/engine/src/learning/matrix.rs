//! An encrypted matrix: its shape, packing and tiling, and one ciphertext per block
//! (block-row-major). Encryption and decryption of row-major values, and the wire form over any
//! `std::io` reader or writer:
//! a tensor header (`TensorLayout::Blocks`, block rows `s0`, block columns `s1`) followed by the
//! block ciphertexts. The core's header has no tiling field, so a reader states the tiling it
//! expects; a tiled matrix decrypts to the same values either way.

use std::io::{BufRead, Write};

use hetune_core::ckks::{encrypt_sk, Ciphertext, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::wire::{self, Limits, TensorHeader, TensorLayout};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use rayon::prelude::*;

use super::ops::LevelOnly;
use super::packing::{Packing, Tiling};
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

impl<C> EncMatrix<C> {
    /// Wraps `blocks`, checking their number against the shape.
    pub fn new(rows: usize, cols: usize, packing: Packing, tiling: Tiling, blocks: Vec<C>) -> Result<Self> {
        let grid = packing.grid(rows, cols, tiling)?;
        if blocks.len() != grid.0 * grid.1 {
            return Err(Error::InvalidInput(format!(
                "{} blocks for a {rows} x {cols} matrix ({} x {} grid)",
                blocks.len(),
                grid.0,
                grid.1
            )));
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
    /// Encrypts a row-major `rows x cols` matrix with the secret key at `level`, one block per
    /// ciphertext (in parallel; each block's randomness from its own seed drawn from `rng`).
    #[allow(clippy::too_many_arguments)]
    pub fn encrypt<R: RngCore + CryptoRng>(
        ctx: &Context,
        sk: &SecretKey,
        data: &[f64],
        rows: usize,
        cols: usize,
        packing: Packing,
        tiling: Tiling,
        level: usize,
        rng: &mut R,
    ) -> Result<Self> {
        let params = ctx.params();
        if packing.slots() != params.max_slots() {
            return Err(Error::InvalidInput(format!(
                "packing of {} slots for a parameter set of {} slots",
                packing.slots(),
                params.max_slots()
            )));
        }
        if level > params.max_level() {
            return Err(Error::InvalidInput(format!("level {level} above the top level {}", params.max_level())));
        }
        let slot_blocks = packing.pack(data, rows, cols, tiling)?;
        let seeds: Vec<[u8; 32]> = slot_blocks
            .iter()
            .map(|_| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                s
            })
            .collect();
        let encoder = Encoder::new(ctx);
        let log_slots = packing.slots().trailing_zeros();
        let blocks = slot_blocks
            .par_iter()
            .zip(seeds)
            .map(|(v, seed)| {
                let pt = encoder.encode_real(v, log_slots, level, params.scale())?;
                Ok(encrypt_sk(ctx, sk, &pt, &mut ChaCha20Rng::from_seed(seed))?.expand(ctx))
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

    /// Writes the wire form: a tensor header, then every block as a full ciphertext record.
    pub fn write_wire<W: Write>(&self, ctx: &Context, out: W) -> Result<()> {
        let params = ctx.params();
        let header = TensorHeader {
            rows: self.rows as u64,
            cols: self.cols as u64,
            layout: TensorLayout::Blocks,
            block_rows: self.packing.s0 as u32,
            block_cols: self.packing.s1 as u32,
            count: u32::try_from(self.blocks.len()).map_err(|_| Error::InvalidInput("too many blocks".into()))?,
            dtype: 0,
        };
        let mut sink = IoSink(out);
        wire::write_tensor_header(&mut sink, params, &header)?;
        for ct in &self.blocks {
            wire::write_ciphertext(&mut sink, params, ct)?;
        }
        sink.0.flush().map_err(|_| Error::Core(hetune_core::Error::Io))
    }

    /// Reads the wire form, with the class period `pad_c` and the tiling the caller expects.
    pub fn read_wire<R: BufRead>(ctx: &Context, input: R, pad_c: usize, tiling: Tiling) -> Result<Self> {
        let params = ctx.params();
        let limits = Limits::for_ciphertexts(params);
        let mut src = IoSource(input);
        let h = wire::read_tensor_header(&mut src, ctx, &limits)?;
        if h.layout != TensorLayout::Blocks {
            return Err(Error::InvalidInput("not a block-packed matrix".into()));
        }
        let packing = Packing::new(h.block_rows as usize, h.block_cols as usize, pad_c)?;
        if packing.slots() != params.max_slots() {
            return Err(Error::InvalidInput("block shape does not match the parameter set's slots".into()));
        }
        let (rows, cols) = (usize::try_from(h.rows), usize::try_from(h.cols));
        let (Ok(rows), Ok(cols)) = (rows, cols) else {
            return Err(Error::InvalidInput("matrix shape too large".into()));
        };
        let (br, bc) = packing.grid(rows, cols, tiling)?;
        if br.checked_mul(bc) != Some(h.count as usize) {
            return Err(Error::InvalidInput("block count does not match the shape".into()));
        }
        let blocks = (0..h.count)
            .map(|_| Ok(wire::read_ciphertext(&mut src, ctx, &limits)?.into_full(ctx)))
            .collect::<Result<Vec<_>>>()?;
        Self::new(rows, cols, packing, tiling, blocks)
    }
}
