//! `hetune encrypt` and `hetune decrypt`.

use std::path::Path;
use std::time::Instant;

use hetune_core::wire::TensorLayout;
use hetune_core::Security;
use hetune_engine::learning::{Packing, Tiling};
use hetune_engine::precision::PrecisionStats;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::error::{Error, Result};
use crate::io::dataset::read_labels;
use crate::io::keys::{load_owner, load_public, secret_path};
use crate::io::matrix::{decrypt_npy, encrypt_npy, one_hot, read_encrypted, tensor_layout, write_encrypted};
use crate::io::npy::{read_matrix, write_matrix, Matrix};
use crate::io::tensor::{decrypt_matrix, encrypt_matrix, EncryptOptions, EncryptionKey};

pub(super) fn encrypt(
    keys: &Path,
    input: &Path,
    out: &Path,
    level: Option<usize>,
    public: bool,
    full: bool,
    security: Security,
) -> Result<()> {
    let m = read_matrix(input)?;
    let mut rng = ChaCha20Rng::from_os_rng();
    let start = Instant::now();
    let use_secret = !public && secret_path(keys).exists();
    let stats = if use_secret {
        let owner = load_owner(keys, security)?;
        let level = level.unwrap_or(owner.ctx.params().default_level());
        let opts = EncryptOptions { level, seeded: !full };
        encrypt_matrix(&owner.ctx, EncryptionKey::Secret(&owner.sk), &m, opts, out, &mut rng)?
    } else {
        let bundle = load_public(keys, false, security)?;
        let level = level.unwrap_or(bundle.ctx.params().default_level());
        let opts = EncryptOptions { level, seeded: false };
        encrypt_matrix(&bundle.ctx, EncryptionKey::Public(&bundle.pk), &m, opts, out, &mut rng)?
    };
    println!(
        "encrypted {}x{} ({} key) into {} ciphertexts, {:.2} MB, in {:.2} s",
        m.rows,
        m.cols,
        if use_secret { "secret" } else { "public" },
        stats.ciphertexts,
        stats.bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `hetune encrypt --packing hetal` encrypts.
pub(super) struct HetalArgs<'a> {
    pub keys: &'a Path,
    pub features: &'a Path,
    pub out: &'a Path,
    pub classes: Option<usize>,
    pub batch: Option<usize>,
    pub labels: Option<&'a Path>,
    pub labels_out: Option<&'a Path>,
    pub level: Option<usize>,
    pub security: Security,
}

/// Encrypts features (and one-hot labels) into HETAL's block packing for training: features
/// untiled, labels tiled horizontally, each block row one batch.
pub(super) fn encrypt_hetal(a: &HetalArgs<'_>) -> Result<()> {
    let need = |name: &'static str| Error::MissingArgument { name, with: "--packing hetal" };
    let classes = a.classes.ok_or_else(|| need("--classes"))?;
    let batch = a.batch.ok_or_else(|| need("--batch"))?;
    if a.labels.is_some() != a.labels_out.is_some() {
        return Err(need(if a.labels.is_some() { "--labels-out" } else { "--labels" }));
    }
    let owner = load_owner(a.keys, a.security)?;
    let (ctx, sk) = (&owner.ctx, &owner.sk);
    let level = a.level.unwrap_or(ctx.params().default_level());
    let packing = Packing::hetal(classes, batch, ctx.params().max_slots())?;
    let mut rng = ChaCha20Rng::from_os_rng();
    let start = Instant::now();
    let x = read_matrix(a.features)?;
    let ex = encrypt_npy(ctx, sk, &x, packing, Tiling::None, level, &mut rng)?;
    let bytes = write_encrypted(a.out, ctx, &ex)?;
    println!(
        "encrypted features {}x{} into {} blocks of {}x{} (pad_c {}), {:.2} MB",
        x.rows,
        x.cols,
        ex.blocks.len(),
        packing.s0,
        packing.s1,
        packing.pad_c,
        bytes as f64 / 1e6
    );
    if let (Some(labels), Some(out)) = (a.labels, a.labels_out) {
        let y = one_hot(&read_labels(labels)?, classes)?;
        if y.rows != x.rows {
            return Err(Error::ShapeMismatch { what: "labels", found: (y.rows, 1), expected: (x.rows, 1) });
        }
        let ey = encrypt_npy(ctx, sk, &y, packing, Tiling::Horizontal, level, &mut rng)?;
        let bytes = write_encrypted(out, ctx, &ey)?;
        println!(
            "encrypted one-hot labels {}x{} into {} blocks, {:.2} MB",
            y.rows,
            y.cols,
            ey.blocks.len(),
            bytes as f64 / 1e6
        );
    }
    println!("in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Precision of `got` against the reference `want` (of the same number of values).
pub fn precision(got: &Matrix, want: &Matrix) -> Result<PrecisionStats> {
    if got.data.len() != want.data.len() {
        return Err(Error::ShapeMismatch {
            what: "reference",
            found: (want.rows, want.cols),
            expected: (got.rows, got.cols),
        });
    }
    Ok(PrecisionStats::real(&got.data, &want.data)?)
}

pub(super) fn decrypt(
    keys: &Path,
    input: &Path,
    out: &Path,
    reference: Option<&Path>,
    security: Security,
) -> Result<()> {
    let owner = load_owner(keys, security)?;
    let start = Instant::now();
    let mut m = match tensor_layout(input, &owner.ctx)? {
        TensorLayout::Blocks => decrypt_npy(&read_encrypted(input, &owner.ctx)?, &owner.ctx, &owner.sk)?,
        TensorLayout::RowMajorChunks => decrypt_matrix(&owner.ctx, &owner.sk, input)?,
    };
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(r) = reference {
        let want = read_matrix(r)?;
        m.is_vector = want.is_vector;
        println!("precision: {}", precision(&m, &want)?);
    }
    write_matrix(out, &m)?;
    println!("decrypted {}x{} in {elapsed:.2} s into {}", m.rows, m.cols, out.display());
    Ok(())
}
