//! Encrypted matrices in HETAL's packing in files: from and to `.npy` matrices, one-hot labels,
//! and the self-describing wire form (the header carries the layout).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::wire::{self, Limits, TensorLayout};
use hetune_engine::learning::{EncMatrix, MatrixLayout, Packing, Tiling};
use hetune_engine::wire_io::IoSource;
use rand_core::{CryptoRng, RngCore};

use super::npy::{Dtype, Matrix};
use crate::{Error, Result};

/// Encrypts an `.npy` matrix with the secret key at `level` (see [`EncMatrix::encrypt`]).
pub fn encrypt_npy<R: RngCore + CryptoRng>(
    ctx: &Context,
    sk: &SecretKey,
    m: &Matrix,
    packing: Packing,
    tiling: Tiling,
    level: usize,
    rng: &mut R,
) -> Result<EncMatrix<Ciphertext>> {
    let layout = MatrixLayout { rows: m.rows, cols: m.cols, packing, tiling, level };
    Ok(EncMatrix::encrypt(ctx, sk, &m.data, &layout, rng)?)
}

/// Decrypts an encrypted matrix to an f64 `.npy` matrix.
pub fn decrypt_npy(e: &EncMatrix<Ciphertext>, ctx: &Context, sk: &SecretKey) -> Result<Matrix> {
    Ok(Matrix { rows: e.rows, cols: e.cols, data: e.decrypt(ctx, sk)?, dtype: Dtype::F64, is_vector: false })
}

/// The one-hot `labels.len() x classes` matrix of `labels` (each in `0..classes`).
pub fn one_hot(labels: &[i64], classes: usize) -> Result<Matrix> {
    let mut data = vec![0.0; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        let l = usize::try_from(label).ok().filter(|&l| l < classes).ok_or_else(|| {
            Error::from(hetune_engine::Error::Dataset {
                name: "labels".into(),
                problem: hetune_engine::error::DatasetProblem::LabelOutOfRange { row, label, classes },
            })
        })?;
        data[row * classes + l] = 1.0;
    }
    Ok(Matrix { rows: labels.len(), cols: classes, data, dtype: Dtype::F64, is_vector: false })
}

/// Writes an encrypted matrix to `path`; returns the bytes written.
pub fn write_encrypted(path: &Path, ctx: &Context, m: &EncMatrix<Ciphertext>) -> Result<u64> {
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    m.write_wire(ctx, BufWriter::with_capacity(1 << 20, f)).map_err(|e| match e {
        hetune_engine::Error::Core(c) => Error::corrupt(path, c),
        e => e.into(),
    })?;
    Ok(std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len())
}

/// Reads an encrypted matrix from `path` (its layout from the header).
pub fn read_encrypted(path: &Path, ctx: &Context) -> Result<EncMatrix<Ciphertext>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    EncMatrix::read_wire(ctx, BufReader::with_capacity(1 << 20, f)).map_err(|e| match e {
        hetune_engine::Error::Core(c) => Error::corrupt(path, c),
        e => e.into(),
    })
}

/// The layout of the encrypted tensor in `path`, from its header.
pub fn tensor_layout(path: &Path, ctx: &Context) -> Result<TensorLayout> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut src = IoSource(BufReader::new(f));
    let h = wire::read_tensor_header(&mut src, ctx, &Limits::for_ciphertexts(ctx.params()))
        .map_err(|e| Error::corrupt(path, e))?;
    Ok(h.layout)
}
