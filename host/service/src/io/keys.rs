//! Key directories: the owner's `secret.key` (parameters + secret key, mode 0600, never sent)
//! and the server's `public.bundle` (parameters, public key, relinearisation key, Galois keys).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use hetune_core::ring::automorphism::{galois_element_conjugate, galois_element_for_step};
use hetune_core::rlwe::{Context, EncapsulationKey, PublicKey, SecretKey, SwitchingKey, SwitchingKind};
use hetune_core::wire::{self, Limits, WireObject};
use hetune_core::{Parameters, Security};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use hetune_engine::circuits::bootstrap::{generate_keys_with_progress, BootstrapConfig};
use hetune_engine::wire_io::{IoSink, IoSource};

/// File name of the owner's secret key inside a key directory.
pub const SECRET_FILE: &str = "secret.key";
/// File name of the public bundle inside a key directory.
pub const PUBLIC_FILE: &str = "public.bundle";

/// Evaluation keys a server holds.
pub struct EvalKeySet {
    /// Relinearisation key.
    pub relin: Option<SwitchingKey>,
    /// Galois keys by Galois element.
    pub galois: BTreeMap<u64, SwitchingKey>,
    /// Bootstrapping's encapsulation keys, dense to sparse and back (keygen `--bootstrap`).
    pub encapsulation: Option<(EncapsulationKey, SwitchingKey)>,
}

/// What a server receives: the public key and the evaluation keys.
pub struct PublicBundle {
    /// Context of the bundle's parameters.
    pub ctx: Context,
    /// Public encryption key.
    pub pk: PublicKey,
    /// Evaluation keys.
    pub eval: EvalKeySet,
}

/// Which rotation keys keygen makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationSet {
    /// None (relinearisation only).
    None,
    /// Left rotations by every power of two below the slot count, and conjugation.
    PowersOfTwo,
    /// The given steps (negative: right), plus conjugation.
    Steps(Vec<i64>),
}

impl RotationSet {
    /// The Galois elements of the set.
    pub fn galois_elements(&self, n: usize) -> Vec<u64> {
        let mut g: Vec<u64> = match self {
            RotationSet::None => return Vec::new(),
            RotationSet::PowersOfTwo => {
                (0..(n / 2).trailing_zeros()).map(|k| galois_element_for_step(1 << k, n)).collect()
            }
            RotationSet::Steps(s) => s.iter().map(|&k| galois_element_for_step(k, n)).collect(),
        };
        g.push(galois_element_conjugate(n));
        g.sort_unstable();
        g.dedup();
        g.retain(|&x| x != 1);
        g
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    Ok(BufWriter::new(f))
}

fn finish(mut w: BufWriter<File>, path: &Path) -> Result<()> {
    w.flush().map_err(|e| Error::io(path, e))?;
    w.get_ref().sync_all().map_err(|e| Error::io(path, e))
}

/// Writes the owner's secret file: whatever is at `path` is removed first (a symbolic link is
/// removed, never followed), then the file is created exclusively (`O_CREAT | O_EXCL`: a file or
/// link planted meanwhile makes it fail) with mode 0600 from its first byte. `bytes` is written
/// in one call, with no buffer of its own.
fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(Error::Keys(format!("{}: is a directory, not a key file", path.display())));
        }
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Generates keys for `params` and writes `dir/secret.key` and `dir/public.bundle`; with
/// `bootstrap`, also every key that bootstrapping needs. Returns the size in bytes of the public
/// bundle. `progress(done, total)` reports key progress.
pub fn generate_key_dir<R: RngCore + CryptoRng>(
    dir: &Path,
    params: &Parameters,
    rotations: &RotationSet,
    bootstrap: Option<&BootstrapConfig>,
    rng: &mut R,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ctx = Context::new(params.clone())?;
    let sk = SecretKey::generate(params, rng);

    // The secret file is assembled in a wiped buffer of its exact size (no growth leaves a copy).
    let mut params_record = Vec::new();
    wire::write_parameters(&mut params_record, params)?;
    let secret_len = params_record.len() + wire::record::FRAME_OVERHEAD + params.n() / 4;
    let mut secret_bytes = Zeroizing::new(Vec::with_capacity(secret_len));
    secret_bytes.extend_from_slice(&params_record);
    wire::export_secret_key_owner_copy(&mut *secret_bytes, params, &sk)?;
    let secret_path = dir.join(SECRET_FILE);
    write_secret_file(&secret_path, &secret_bytes)?;

    let public_path = dir.join(PUBLIC_FILE);
    let mut w = IoSink(create(&public_path)?);
    wire::write_parameters(&mut w, params)?;
    let pk = PublicKey::generate(&ctx, &sk, rng);
    wire::write_public_key(&mut w, params, &pk)?;
    let mut gs = rotations.galois_elements(ctx.n());
    if let Some(cfg) = bootstrap {
        if params.boot_limbs() == 0 {
            return Err(Error::InvalidInput(format!("preset {} reserves no limbs for bootstrapping", params.name())));
        }
        let keys = generate_keys_with_progress(&ctx, &sk, cfg, rng, progress)?;
        gs.retain(|g| !keys.eval.galois.contains_key(g));
        let relin = keys.eval.relin.iter();
        for k in relin.chain(keys.eval.galois.values()).chain([&keys.boot.to_dense]) {
            wire::write_switching_key(&mut w, params, k)?;
        }
        wire::write_encapsulation_key(&mut w, params, &keys.boot.to_sparse)?;
    } else {
        progress(0, 1 + gs.len());
        wire::write_switching_key(&mut w, params, &SwitchingKey::relinearization(&ctx, &sk, rng))?;
        progress(1, 1 + gs.len());
    }
    let total = 1 + gs.len();
    for (k, &g) in gs.iter().enumerate() {
        wire::write_switching_key(&mut w, params, &SwitchingKey::galois(&ctx, &sk, g, rng))?;
        progress(2 + k, total);
    }
    finish(w.0, &public_path)?;
    Ok(std::fs::metadata(&public_path).map_err(|e| Error::io(&public_path, e))?.len())
}

fn open(path: &Path) -> Result<IoSource<BufReader<File>>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(IoSource(BufReader::with_capacity(1 << 16, f)))
}

/// Reads the parameter record at the start of a key file under `security`; an insecure set is
/// refused unless the caller opted in by name, and then accepted with a warning on stderr.
fn read_params<S: wire::Source>(src: &mut S, path: &Path, security: Security) -> Result<Parameters> {
    let params = wire::read_parameters(src, None, security, &Limits::default()).map_err(|e| match e {
        hetune_core::Error::Insecure { .. } | hetune_core::Error::InsecureDistribution(_) => Error::InvalidInput(
            format!("{}: {e}; pass --insecure-testing-only to use these keys anyway (tests only)", path.display()),
        ),
        e => wrap(path, e),
    })?;
    if !params.is_secure() {
        eprintln!("WARNING: {} uses insecure parameters {}", path.display(), params.label());
    }
    Ok(params)
}

fn wrap(path: &Path, e: hetune_core::Error) -> Error {
    Error::InvalidInput(format!("{}: {e}", path.display()))
}

/// The owner's keys: context and secret key.
pub struct OwnerKeys {
    /// Context.
    pub ctx: Context,
    /// Secret key.
    pub sk: SecretKey,
}

/// Largest secret-key file read (an N = 2^17 key is 32 KiB plus the parameter record).
const MAX_SECRET_FILE: u64 = 1 << 20;

/// Loads `dir/secret.key` under `security`. Like ssh, it refuses a key file that others may read
/// or write (any group or other permission bit), checked on the opened file. The file is read
/// into a wiped buffer of its exact size and decoded from there.
pub fn load_owner(dir: &Path, security: Security) -> Result<OwnerKeys> {
    let path = dir.join(SECRET_FILE);
    let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(&path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Keys(format!(
                "{}: mode {mode:03o} lets others read or write the secret key; run chmod 600 {}",
                path.display(),
                path.display()
            )));
        }
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(Error::Keys(format!(
            "{}: {} bytes is too large for a secret key file",
            path.display(),
            meta.len()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    f.take(meta.len()).read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
    let mut src: &[u8] = &bytes;
    let params = read_params(&mut src, &path, security)?;
    let sk = wire::import_secret_key_owner_copy(&mut src, &params, &Limits::for_params(&params))
        .map_err(|e| wrap(&path, e))?;
    Ok(OwnerKeys { ctx: Context::new(params)?, sk })
}

/// Loads `dir/public.bundle`; with `with_eval` false it stops after the public key.
///
/// Insecure parameters are refused unless `security` opts in; each record may cost at most
/// what the largest record of the set needs ([`Limits::for_params`]).
pub fn load_public(dir: &Path, with_eval: bool, security: Security) -> Result<PublicBundle> {
    let path = dir.join(PUBLIC_FILE);
    let mut src = open(&path)?;
    let params = read_params(&mut src, &path, security)?;
    let limits = Limits::for_params(&params);
    let ctx = Context::new(params)?;
    let mut pk = None;
    let mut eval = EvalKeySet { relin: None, galois: BTreeMap::new(), encapsulation: None };
    let (mut to_sparse, mut to_dense) = (None, None);
    while !src.at_end()? {
        match wire::read_object(&mut src, &ctx, &limits).map_err(|e| wrap(&path, e))? {
            WireObject::PublicKey(k) => {
                pk = Some(k);
                if !with_eval {
                    break;
                }
            }
            WireObject::SwitchingKey(k) => match k.kind {
                SwitchingKind::Relinearization => eval.relin = Some(k),
                SwitchingKind::Galois(g) => {
                    eval.galois.insert(g, k);
                }
                SwitchingKind::Encapsulation { to_sparse: false } => to_dense = Some(k),
                // The wire reader refuses this kind (see `hetune_core::rlwe::encapsulation`).
                SwitchingKind::Encapsulation { to_sparse: true } => {
                    return Err(Error::Keys(format!("{}: insecure encapsulation key", path.display())))
                }
            },
            WireObject::EncapsulationKey(k) => to_sparse = Some(k),
            _ => return Err(Error::Keys(format!("{}: unexpected record in a key bundle", path.display()))),
        }
    }
    let pk = pk.ok_or_else(|| Error::Keys(format!("{}: no public key in the bundle", path.display())))?;
    eval.encapsulation = to_sparse.zip(to_dense);
    Ok(PublicBundle { ctx, pk, eval })
}

/// Path of a key directory's files, for messages.
pub fn key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(SECRET_FILE), dir.join(PUBLIC_FILE))
}
