//! `hetune keygen`.

use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::params::build_preset;
use crate::error::{Error, Result};
use crate::io::keys::{generate_key_dir, key_paths, RotationSet};
use hetune_engine::circuits::bootstrap::BootstrapConfig;

/// Parses `none`, `pow2` or a comma list of steps.
pub fn parse_rotations(s: &str) -> Result<RotationSet> {
    match s {
        "none" => Ok(RotationSet::None),
        "pow2" => Ok(RotationSet::PowersOfTwo),
        list => list
            .split(',')
            .map(|t| t.trim().parse::<i64>().map_err(|_| Error::InvalidInput(format!("bad rotation step {t:?}"))))
            .collect::<Result<Vec<_>>>()
            .map(RotationSet::Steps),
    }
}

pub(super) fn run(preset: &str, out: &Path, rotations: &str, bootstrap: bool, insecure: bool) -> Result<()> {
    let params = build_preset(preset, insecure)?;
    let rot = parse_rotations(rotations)?;
    let mut rng = ChaCha20Rng::from_os_rng();
    let start = Instant::now();
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} keys")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("keygen {}", params.label()));
    let cfg = BootstrapConfig::default();
    let bytes = generate_key_dir(out, &params, &rot, bootstrap.then_some(&cfg), &mut rng, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let (s, p) = key_paths(out);
    println!("secret key (owner only): {}", s.display());
    println!("public bundle (send to the server): {} ({:.1} MB)", p.display(), bytes as f64 / 1e6);
    println!("keygen took {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
