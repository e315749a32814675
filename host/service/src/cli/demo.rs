//! `hetune demo`: the main job on the built-in sample (real SNIPS features) until encrypted
//! training lands: keygen, encryption, decryption and the measured precision.

use std::path::PathBuf;
use std::time::Instant;

use hetune_core::Security;
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
    let mut rng = ChaCha20Rng::from_os_rng();
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
            d
        }
        None => super::private_temp_dir("hetune-demo")?,
    };
    let sample = dir.join("sample.npy");
    std::fs::write(&sample, SAMPLE).map_err(|e| Error::io(&sample, e))?;
    let x = read_matrix(&sample)?;
    println!("sample: {}x{} real SNIPS features (all-mpnet-base-v2), preset {}", x.rows, x.cols, params.label());

    let t = Instant::now();
    let keys = dir.join("keys");
    let bundle =
        generate_key_dir(&keys, &params, &RotationSet::None.key_request(params.log_n() - 1), &mut rng, &|_, _| {})?;
    println!("keygen: {:.2} s, public bundle {:.1} MB", t.elapsed().as_secs_f64(), bundle as f64 / 1e6);

    let security = if insecure { Security::InsecureForTestingOnly } else { Security::Require128Bits };
    let owner = load_owner(&keys, security)?;
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
        let p = precision(&y, &x)?;
        let (max, mean, bits) = (p.max_abs_error, p.mean_abs_error, p.min_bits());
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
