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
use hetune_engine::evaluator::KeyRequest;

/// Parses `none`, `pow2` or a comma list of steps.
pub fn parse_rotations(s: &str) -> Result<RotationSet> {
    match s {
        "none" => Ok(RotationSet::None),
        "pow2" => Ok(RotationSet::PowersOfTwo),
        list => list
            .split(',')
            .map(|t| {
                t.trim().parse::<i64>().map_err(|_| Error::BadArgument {
                    name: "rotation step",
                    value: t.to_string(),
                    expected: "\"none\", \"pow2\" or a comma list of integers".into(),
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(RotationSet::Steps),
    }
}

/// Largest key request read: a request for every rotation of 2^15 slots is about 250 KB.
const MAX_REQUEST_BYTES: u64 = 1 << 20;

/// Reads a key request (JSON, as a server writes it: untrusted, so its size is bounded before
/// it is read).
pub fn read_request(path: &Path) -> Result<KeyRequest> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > MAX_REQUEST_BYTES {
        return Err(Error::BadArgument {
            name: "key request",
            value: path.display().to_string(),
            expected: format!("a JSON key request of at most {MAX_REQUEST_BYTES} bytes (this one has {len})"),
        });
    }
    let mut text = String::with_capacity(len as usize);
    f.take(MAX_REQUEST_BYTES).read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::BadArgument {
        name: "key request",
        value: path.display().to_string(),
        expected: format!("a JSON key request ({e})"),
    })
}

/// What `hetune keygen` makes: the rotations, bootstrapping's keys and a server's request.
pub(super) struct KeygenArgs<'a> {
    pub preset: &'a str,
    pub out: &'a Path,
    pub rotations: &'a str,
    pub bootstrap: bool,
    pub request: Option<&'a Path>,
    pub insecure: bool,
}

pub(super) fn run(a: KeygenArgs<'_>) -> Result<()> {
    let params = build_preset(a.preset, a.insecure)?;
    let mut request = parse_rotations(a.rotations)?.key_request(params.log_n() - 1);
    if a.bootstrap {
        request.merge(&BootstrapConfig::default().key_request(params.log_n()));
    }
    if let Some(path) = a.request {
        request.merge(&read_request(path)?);
    }
    let mut rng = ChaCha20Rng::from_os_rng();
    let start = Instant::now();
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} keys")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("keygen {}", params.label()));
    let bytes = generate_key_dir(a.out, &params, &request, &mut rng, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let (s, p) = key_paths(a.out);
    println!("secret key (owner only, never sent): {}", s.display());
    let server = p.parent().unwrap_or(a.out);
    println!(
        "public bundle: {} ({:.1} MB); send the folder {} to the server",
        p.display(),
        bytes as f64 / 1e6,
        server.display()
    );
    println!("keygen took {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
