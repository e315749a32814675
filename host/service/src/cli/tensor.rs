//! `hetune encrypt` and `hetune decrypt`.

use std::path::Path;
use std::time::Instant;

use hetune_core::Security;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::error::{Error, Result};
use crate::io::keys::{load_owner, load_public, SECRET_FILE};
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
    let use_secret = !public && keys.join(SECRET_FILE).exists();
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

/// Precision of `got` against `want`: max and mean absolute error and bits.
pub fn precision(got: &Matrix, want: &Matrix) -> Result<(f64, f64, f64)> {
    if got.data.len() != want.data.len() {
        return Err(Error::InvalidInput(format!(
            "reference has {} values, the ciphertext {}",
            want.data.len(),
            got.data.len()
        )));
    }
    let (mut max, mut sum) = (0f64, 0f64);
    for (a, b) in got.data.iter().zip(&want.data) {
        let e = (a - b).abs();
        max = max.max(e);
        sum += e;
    }
    let mean = sum / got.data.len().max(1) as f64;
    Ok((max, mean, -max.log2()))
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
    let mut m = decrypt_matrix(&owner.ctx, &owner.sk, input)?;
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(r) = reference {
        let want = read_matrix(r)?;
        m.is_vector = want.is_vector;
        let (max, mean, bits) = precision(&m, &want)?;
        println!("precision: max abs error {max:.3e}, mean abs error {mean:.3e}, {bits:.1} bits");
    }
    write_matrix(out, &m)?;
    println!("decrypted {}x{} in {elapsed:.2} s into {}", m.rows, m.cols, out.display());
    Ok(())
}
