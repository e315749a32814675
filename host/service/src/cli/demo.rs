//! `hetune demo`: the main job on the built-in sample (real SNIPS features) until encrypted
//! training lands: keygen, encryption, decryption and the measured precision.

use std::path::PathBuf;
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::params::build_preset;
use super::tensor::precision;
use crate::error::{Error, Result};
use crate::io::keys::{generate_key_dir, load_owner, RotationSet};
use crate::io::npy::{read_matrix, write_matrix};
use crate::io::tensor::{decrypt_matrix, encrypt_matrix, EncryptOptions, EncryptionKey};

/// The built-in sample: 1000 x 16 SNIPS features from all-mpnet-base-v2 (see host/service/data/README.md).
pub const SAMPLE: &[u8] = include_bytes!("../../data/snips_mpnet_train_1000x16.npy");

pub(super) fn run(preset: &str, dir: Option<PathBuf>, insecure: bool) -> Result<()> {
    let params = build_preset(preset, insecure)?;
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("hetune-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let sample = dir.join("sample.npy");
    std::fs::write(&sample, SAMPLE).map_err(|e| Error::io(&sample, e))?;
    let x = read_matrix(&sample)?;
    println!("sample: {}x{} real SNIPS features (all-mpnet-base-v2), preset {}", x.rows, x.cols, params.label());

    let mut rng = ChaCha20Rng::from_os_rng();
    let t = Instant::now();
    let keys = dir.join("keys");
    let bundle = generate_key_dir(&keys, &params, &RotationSet::None, None, &mut rng, &|_, _| {})?;
    println!("keygen: {:.2} s, public bundle {:.1} MB", t.elapsed().as_secs_f64(), bundle as f64 / 1e6);

    let owner = load_owner(&keys)?;
    let level = params.default_level();
    let mut sizes = Vec::new();
    for seeded in [true, false] {
        let path = dir.join(if seeded { "x.seeded.hct" } else { "x.full.hct" });
        let t = Instant::now();
        let s = encrypt_matrix(
            &owner.ctx,
            EncryptionKey::Secret(&owner.sk),
            &x,
            EncryptOptions { level, seeded },
            &path,
            &mut rng,
        )?;
        let enc = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut y = decrypt_matrix(&owner.ctx, &owner.sk, &path)?;
        let dec = t.elapsed().as_secs_f64();
        y.dtype = x.dtype;
        let (max, mean, bits) = precision(&y, &x)?;
        println!(
            "{:<6} ciphertexts at level {level}: {:.2} MB, encrypt {enc:.2} s, decrypt {dec:.2} s, max abs error {max:.2e}, mean {mean:.2e} ({bits:.1} bits)",
            if seeded { "seeded" } else { "full" },
            s.bytes as f64 / 1e6
        );
        sizes.push(s.bytes);
        write_matrix(&dir.join("x.decrypted.npy"), &y)?;
    }
    println!("seeded / full size: {:.3}", sizes[0] as f64 / sizes[1] as f64);
    println!("files in {}", dir.display());
    Ok(())
}
