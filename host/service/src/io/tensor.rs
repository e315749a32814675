//! Encrypted tensors in files: a tensor-header record followed by one ciphertext record per
//! `N/2` values (row-major chunks), encrypted and decrypted in parallel batches.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use hetune_core::ckks::{encrypt_sk, Encoder};
use hetune_core::rlwe::{Context, PublicKey, SecretKey, SecretRng};
use hetune_core::wire::{self, Limits, TensorHeader, TensorLayout};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use zeroize::Zeroizing;

use super::npy::{Dtype, Matrix};
use crate::error::{Error, Result};
use hetune_engine::owner::{decrypt_decode, PkEncryptor};
use hetune_engine::wire_io::{IoSink, IoSource};

/// The key a tensor is encrypted under, ready to encrypt.
enum Encrypting<'a> {
    Secret(&'a SecretKey),
    Public(PkEncryptor<'a>),
}

/// Which key encrypts.
pub enum EncryptionKey<'a> {
    /// The owner's secret key: seeded ciphertexts, half the bytes.
    Secret(&'a SecretKey),
    /// A public key: full ciphertexts.
    Public(&'a PublicKey),
}

/// Options of [`encrypt_matrix`].
#[derive(Clone, Copy, Debug)]
pub struct EncryptOptions {
    /// Level of the ciphertexts.
    pub level: usize,
    /// With the secret key: write seeded ciphertexts (true) or full ones.
    pub seeded: bool,
}

/// What [`encrypt_matrix`] wrote.
#[derive(Clone, Copy, Debug)]
pub struct EncryptStats {
    /// Ciphertexts written.
    pub ciphertexts: usize,
    /// Bytes written.
    pub bytes: u64,
}

fn batch_size() -> usize {
    2 * rayon::current_num_threads()
}

/// Encrypts `m` row-major into `ceil(rows * cols / (N/2))` ciphertexts and writes them, after a
/// tensor header, to `path`.
pub fn encrypt_matrix<R: RngCore + CryptoRng>(
    ctx: &Context,
    key: EncryptionKey<'_>,
    m: &Matrix,
    opts: EncryptOptions,
    path: &Path,
    rng: &mut R,
) -> Result<EncryptStats> {
    let params = ctx.params();
    if opts.level > params.max_level() {
        return Err(hetune_engine::Error::LevelAboveTop { level: opts.level, top: params.max_level() }.into());
    }
    let slots = params.max_slots();
    let log_slots = slots.trailing_zeros();
    let count = m.data.len().div_ceil(slots).max(1);
    let header = TensorHeader {
        rows: m.rows as u64,
        cols: m.cols as u64,
        layout: TensorLayout::RowMajorChunks,
        block_rows: 0,
        block_cols: 0,
        count: u32::try_from(count)
            .map_err(|_| hetune_core::Error::InvalidArgument("tensor of more than 2^32 ciphertexts"))?,
        dtype: if m.dtype == Dtype::F32 { 1 } else { 0 },
    };
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut sink = IoSink(BufWriter::with_capacity(1 << 20, file));
    wire::write_tensor_header(&mut sink, params, &header)?;
    let encoder = Encoder::new(ctx);
    let scale = params.scale();
    // The public key's uniform half, expanded once for the whole tensor.
    let encrypting = match key {
        EncryptionKey::Public(pk) => Encrypting::Public(PkEncryptor::new(ctx, pk)?),
        EncryptionKey::Secret(sk) => Encrypting::Secret(sk),
    };
    let mut chunk = 0;
    while chunk < count {
        let end = (chunk + batch_size()).min(count);
        // Seeds drawn in order from the caller's CSPRNG, so the output does not depend on threads.
        // They regenerate the encryption errors (with which the key follows from a ciphertext),
        // so the seeds and each generator's state are wiped.
        let seeds: Zeroizing<Vec<[u8; 32]>> = Zeroizing::new(
            (chunk..end)
                .map(|_| {
                    let mut s = [0u8; 32];
                    rng.fill_bytes(&mut s);
                    s
                })
                .collect(),
        );
        let records: Vec<Result<Vec<u8>>> = (chunk..end)
            .into_par_iter()
            .zip(seeds.par_iter())
            .map(|(c, seed)| {
                let mut crng = SecretRng::new(seed);
                let lo = (c * slots).min(m.data.len());
                let hi = ((c + 1) * slots).min(m.data.len());
                let pt = encoder.encode_real(&m.data[lo..hi], log_slots, opts.level, scale)?;
                let mut buf = Vec::new();
                match &encrypting {
                    Encrypting::Public(enc) => {
                        wire::write_ciphertext(&mut buf, params, &enc.encrypt(&pt, &mut crng)?)?;
                    }
                    Encrypting::Secret(sk) => {
                        let ct = encrypt_sk(ctx, sk, &pt, &mut crng)?;
                        if opts.seeded {
                            wire::write_seeded_ciphertext(&mut buf, params, &ct)?;
                        } else {
                            wire::write_ciphertext(&mut buf, params, &ct.expand(ctx))?;
                        }
                    }
                }
                Ok(buf)
            })
            .collect();
        for r in records {
            hetune_core::wire::Sink::write_all(&mut sink, &r?)?;
        }
        chunk = end;
    }
    sink.0.flush().map_err(|e| Error::io(path, e))?;
    let bytes = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    Ok(EncryptStats { ciphertexts: count, bytes })
}

/// Reads an encrypted tensor file and decrypts it.
pub fn decrypt_matrix(ctx: &Context, sk: &SecretKey, path: &Path) -> Result<Matrix> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut src = IoSource(BufReader::with_capacity(1 << 20, file));
    // No record of this parameter set is larger than a degree-2 ciphertext at the top level.
    let params = ctx.params();
    let limits = Limits::for_ciphertexts(params);
    let wrap = |e: hetune_core::Error| Error::corrupt(path, e);
    let h = wire::read_tensor_header(&mut src, ctx, &limits).map_err(wrap)?;
    let slots = ctx.params().max_slots() as u64;
    let total = h.rows.checked_mul(h.cols).ok_or_else(|| wrap(hetune_core::Error::Malformed("tensor shape")))?;
    // Every ciphertext record is at least a seeded one at level 0: a header promising more
    // records than the file can hold is refused at once.
    let min_record = wire::seeded_ciphertext_size(params, 0);
    if h.layout != TensorLayout::RowMajorChunks
        || total > h.count as u64 * slots
        || (h.count as u64).saturating_mul(min_record) > file_len
    {
        return Err(wrap(hetune_core::Error::Malformed("tensor header does not fit the file")));
    }
    // Allocation follows the records actually read (a sparse file can still over-promise):
    // values are added batch by batch as they decrypt, a failed allocation is a typed error.
    let mut data: Vec<f64> = Vec::new();
    let mut read = 0u64;
    while read < h.count as u64 {
        let end = (read + batch_size() as u64).min(h.count as u64);
        let cts = (read..end)
            .map(|_| wire::read_ciphertext(&mut src, ctx, &limits).map(|c| c.into_full(ctx)).map_err(wrap))
            .collect::<Result<Vec<_>>>()?;
        let decoded = cts.par_iter().map(|ct| decrypt_decode(ctx, sk, ct)).collect::<Result<Vec<_>, _>>()?;
        for d in decoded {
            let take = (total - data.len() as u64).min(d.len() as u64) as usize;
            data.try_reserve(take)
                .map_err(|_| wrap(hetune_core::Error::AllocationFailed { bytes: 8 * take as u64 }))?;
            data.extend_from_slice(&d[..take]);
        }
        read = end;
    }
    if !src.at_end().map_err(wrap)? {
        return Err(wrap(hetune_core::Error::Malformed("trailing bytes after the last ciphertext")));
    }
    Ok(Matrix {
        rows: h.rows as usize,
        cols: h.cols as usize,
        data,
        dtype: if h.dtype == 1 { Dtype::F32 } else { Dtype::F64 },
        is_vector: false,
    })
}
