//! Encrypted matrices in HETAL's packing from and to `.npy` matrices.

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::{Context, SecretKey};
use hetune_engine::learning::{EncMatrix, Packing, Tiling};
use rand_core::{CryptoRng, RngCore};

use super::npy::{Dtype, Matrix};
use crate::Result;

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
    Ok(EncMatrix::encrypt(ctx, sk, &m.data, m.rows, m.cols, packing, tiling, level, rng)?)
}

/// Decrypts an encrypted matrix to an f64 `.npy` matrix.
pub fn decrypt_npy(e: &EncMatrix<Ciphertext>, ctx: &Context, sk: &SecretKey) -> Result<Matrix> {
    Ok(Matrix { rows: e.rows, cols: e.cols, data: e.decrypt(ctx, sk)?, dtype: Dtype::F64, is_vector: false })
}
