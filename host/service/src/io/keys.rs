//! Key directories: the owner's `secret.key` (parameters + secret key, mode 0600, never sent)
//! and the server's `public.bundle` (parameters, public key, then the evaluation keys: the
//! relinearisation key, Galois keys, bootstrapping's encapsulation pair). A server either loads
//! the whole bundle ([`load_public`]) or keeps the keys in the file and loads each when first
//! used ([`BundleStore`], a [`KeyStore`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hetune_core::rlwe::{Context, PublicKey, SecretKey, SwitchingKey, SwitchingKind};
use hetune_core::wire::{self, Limits, WireObject};
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::{EncapsulationKeys, EvaluationKeys, KeyList, KeyRequest, KeyStore};
use hetune_engine::wire_io::{IoSink, IoSource};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::error::{Error, KeyFileProblem, Result};

/// File name of the owner's secret key (inside a key directory's [`OWNER_DIR`]).
pub const SECRET_FILE: &str = "secret.key";
/// File name of the public bundle (inside a key directory's [`SERVER_DIR`]).
pub const PUBLIC_FILE: &str = "public.bundle";
/// The owner's part of a key directory: `secret.key`, mode 0700, never sent anywhere.
pub const OWNER_DIR: &str = "owner";
/// The server's part of a key directory: `public.bundle`, the folder to send to the server.
pub const SERVER_DIR: &str = "server";

/// Where the owner's secret key of key directory `dir` lives: `dir/owner/secret.key`.
pub fn secret_path(dir: &Path) -> PathBuf {
    dir.join(OWNER_DIR).join(SECRET_FILE)
}

/// Where the public bundle of `dir` lives: `dir/public.bundle` when `dir` is a server folder
/// (what the owner sent: the key directory's `server/`), else `dir/server/public.bundle`.
pub fn public_path(dir: &Path) -> PathBuf {
    let direct = dir.join(PUBLIC_FILE);
    if direct.is_file() {
        direct
    } else {
        dir.join(SERVER_DIR).join(PUBLIC_FILE)
    }
}

/// Creates `dir` if needed with mode 0700 (owner only) and makes an existing one 0700 too.
fn private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(0o700);
        b.create(dir).map_err(|e| Error::io(dir, e))?;
        let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::KeyFile { path: dir.to_path_buf(), problem: KeyFileProblem::NotADirectory });
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    b.create(dir).map_err(|e| Error::io(dir, e))?;
    Ok(())
}

/// What a server receives: the public key and the evaluation keys.
pub struct PublicBundle {
    /// Context of the bundle's parameters.
    pub ctx: Context,
    /// Public encryption key.
    pub pk: PublicKey,
    /// Evaluation keys.
    pub eval: EvaluationKeys,
}

/// Which rotation keys keygen makes (the command line's `--rotations`).
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
    /// The key request of the set at `2^log_slots` slots: relinearisation and the rotations.
    pub fn key_request(&self, log_slots: u32) -> KeyRequest {
        let rotations = match self {
            RotationSet::None => return KeyRequest { relinearization: true, ..KeyRequest::default() },
            RotationSet::PowersOfTwo => return KeyRequest::power_of_two(log_slots),
            RotationSet::Steps(s) => s.clone(),
        };
        KeyRequest { relinearization: true, rotations, conjugation: true, encapsulation: None }
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
            return Err(Error::KeyFile { path: path.to_path_buf(), problem: KeyFileProblem::IsDirectory });
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

/// Generates the owner's secret key for `params` and the keys of `request`, and writes them to
/// two separate places: `dir/owner/secret.key` (the folder made mode 0700, the file 0600) and
/// `dir/server/public.bundle` (the folder to send to the server, nothing secret in it). Returns
/// the size in bytes of the public bundle. `progress(done, total)` reports key progress.
pub fn generate_key_dir<R: RngCore + CryptoRng>(
    dir: &Path,
    params: &Parameters,
    request: &KeyRequest,
    rng: &mut R,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<u64> {
    if request.encapsulation.is_some() && params.boot_limbs() == 0 {
        return Err(Error::NotBootstrappable(params.name().to_string()));
    }
    let (secret_path, public_path) = key_paths(dir);
    private_dir(&dir.join(OWNER_DIR))?;
    let server_dir = dir.join(SERVER_DIR);
    std::fs::create_dir_all(&server_dir).map_err(|e| Error::io(&server_dir, e))?;
    let ctx = Context::new(params.clone())?;
    let sk = SecretKey::generate(params, rng);

    // The secret file is assembled in a wiped buffer of its exact size (no growth leaves a copy).
    let mut params_record = Vec::new();
    wire::write_parameters(&mut params_record, params)?;
    let secret_len = params_record.len() + wire::record::FRAME_OVERHEAD + params.n() / 4;
    let mut secret_bytes = Zeroizing::new(Vec::with_capacity(secret_len));
    secret_bytes.extend_from_slice(&params_record);
    wire::export_secret_key_owner_copy(&mut *secret_bytes, params, &sk)?;
    write_secret_file(&secret_path, &secret_bytes)?;

    let mut w = IoSink(create(&public_path)?);
    wire::write_parameters(&mut w, params)?;
    let pk = PublicKey::generate(&ctx, &sk, rng);
    wire::write_public_key(&mut w, params, &pk)?;
    let keys = EvaluationKeys::generate_with_progress(&ctx, &sk, request, rng, progress)?;
    for k in keys.relin.iter().chain(keys.galois.values()) {
        wire::write_switching_key(&mut w, params, k)?;
    }
    if let Some(e) = &keys.encapsulation {
        wire::write_switching_key(&mut w, params, &e.to_dense)?;
        wire::write_encapsulation_key(&mut w, params, &e.to_sparse)?;
    }
    finish(w.0, &public_path)?;
    Ok(std::fs::metadata(&public_path).map_err(|e| Error::io(&public_path, e))?.len())
}

/// Reads the parameter record at the start of a key file under `security`; an insecure set is
/// refused unless the caller opted in by name, and then accepted with a warning on stderr.
fn read_params<S: wire::Source>(src: &mut S, path: &Path, security: Security) -> Result<Parameters> {
    let params = wire::read_parameters(src, None, security, &Limits::default()).map_err(|e| match e {
        hetune_core::Error::Insecure { .. } | hetune_core::Error::InsecureDistribution(_) => {
            Error::InsecureKeys { path: path.to_path_buf(), source: e }
        }
        e => wrap(path, e),
    })?;
    if !params.is_secure() {
        eprintln!("WARNING: {} uses insecure parameters {}", path.display(), params.label());
    }
    Ok(params)
}

fn wrap(path: &Path, e: hetune_core::Error) -> Error {
    Error::corrupt(path, e)
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

/// Loads `dir/owner/secret.key` under `security`. Like ssh, it refuses a key file that others
/// may read or write (any group or other permission bit), checked on the opened file. The file
/// is read into a wiped buffer of its exact size and decoded from there. A `secret.key` lying
/// beside a bundle (the layout before the owner's and the server's parts were separated) is
/// refused with the way to fix it, so a secret never sits in the folder that goes to the server.
pub fn load_owner(dir: &Path, security: Security) -> Result<OwnerKeys> {
    let path = secret_path(dir);
    let misplaced = dir.join(SECRET_FILE);
    if !path.exists() && misplaced.exists() {
        return Err(Error::KeyFile { path: misplaced, problem: KeyFileProblem::Misplaced });
    }
    let beside_bundle = public_path(dir).with_file_name(SECRET_FILE);
    if beside_bundle.exists() {
        return Err(Error::KeyFile { path: beside_bundle, problem: KeyFileProblem::Misplaced });
    }
    let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(&path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyFile { path, problem: KeyFileProblem::Permissions { mode } });
        }
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(Error::KeyFile { path, problem: KeyFileProblem::TooLarge { bytes: meta.len() } });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    f.take(meta.len()).read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
    let mut src: &[u8] = &bytes;
    let params = read_params(&mut src, &path, security)?;
    let sk = wire::import_secret_key_owner_copy(&mut src, &params, &Limits::for_params(&params))
        .map_err(|e| wrap(&path, e))?;
    Ok(OwnerKeys { ctx: Context::new(params)?, sk })
}

/// A reader that knows its position (the offset of the next record).
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.pos += amt as u64;
    }
}

/// What a bundle holds: its public key and its evaluation keys, each kept as `S` (switching
/// keys) or `E` (the encapsulation key): the keys themselves, or where they are in the file.
struct Contents<S, E> {
    pk: PublicKey,
    relin: Option<S>,
    galois: BTreeMap<u64, S>,
    to_dense: Option<S>,
    to_sparse: Option<E>,
}

/// Reads the public bundle of `dir` ([`public_path`]) record by record under `security` (after the public key only when
/// `with_eval`), keeping each evaluation key as `keep(offset, key)` or `keep_enc(offset, key)`.
/// Each record may cost at most what the largest record of the set needs
/// ([`Limits::for_params`]).
fn scan_bundle<S, E>(
    dir: &Path,
    security: Security,
    with_eval: bool,
    keep: impl Fn(u64, SwitchingKey) -> S,
    keep_enc: impl Fn(u64, hetune_core::rlwe::EncapsulationKey) -> E,
) -> Result<(PathBuf, Context, Contents<S, E>)> {
    let path = public_path(dir);
    let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let mut src = IoSource(Counting { inner: BufReader::with_capacity(1 << 16, f), pos: 0 });
    let params = read_params(&mut src, &path, security)?;
    let limits = Limits::for_params(&params);
    let ctx = Context::new(params)?;
    let (mut pk, mut relin, mut galois, mut to_dense, mut to_sparse) = (None, None, BTreeMap::new(), None, None);
    while !src.at_end()? {
        let offset = src.0.pos;
        match wire::read_object(&mut src, &ctx, &limits).map_err(|e| wrap(&path, e))? {
            WireObject::PublicKey(k) => {
                pk = Some(k);
                if !with_eval {
                    break;
                }
            }
            WireObject::SwitchingKey(k) => match k.kind {
                SwitchingKind::Relinearization => relin = Some(keep(offset, k)),
                SwitchingKind::Galois(g) => {
                    galois.insert(g, keep(offset, k));
                }
                SwitchingKind::Encapsulation { to_sparse: false } => to_dense = Some(keep(offset, k)),
                // The wire reader refuses this kind (see `hetune_core::rlwe::encapsulation`).
                SwitchingKind::Encapsulation { to_sparse: true } => {
                    return Err(wrap(&path, hetune_core::Error::Malformed("an encapsulation key of the insecure kind")))
                }
            },
            WireObject::EncapsulationKey(k) => to_sparse = Some(keep_enc(offset, k)),
            _ => return Err(unexpected(&path)),
        }
    }
    let pk = pk.ok_or_else(|| Error::MissingKey { path: path.clone(), key: "public key" })?;
    Ok((path, ctx, Contents { pk, relin, galois, to_dense, to_sparse }))
}

fn unexpected(path: &Path) -> Error {
    wrap(path, hetune_core::Error::Malformed("unexpected record in a key bundle"))
}

/// Loads the public bundle of `dir` ([`public_path`]); with `with_eval` false it stops after the public key.
///
/// Insecure parameters are refused unless `security` opts in.
pub fn load_public(dir: &Path, with_eval: bool, security: Security) -> Result<PublicBundle> {
    let (_, ctx, c) = scan_bundle(dir, security, with_eval, |_, k| k, |_, k| k)?;
    let encapsulation =
        c.to_sparse.zip(c.to_dense).map(|(to_sparse, to_dense)| EncapsulationKeys { to_sparse, to_dense });
    Ok(PublicBundle { ctx, pk: c.pk, eval: EvaluationKeys { relin: c.relin, galois: c.galois, encapsulation } })
}

/// The evaluation keys of a public bundle kept in the file: an index of record offsets made
/// by one pass over the file, each key read again when the evaluator asks for it (with
/// [`hetune_engine::evaluator::Evaluator::with_store`]), so a server need not hold gigabytes of
/// bootstrapping keys in memory.
pub struct BundleStore {
    path: PathBuf,
    ctx: Arc<Context>,
    limits: Limits,
    index: Contents<u64, u64>,
}

impl BundleStore {
    /// Indexes the public bundle of `dir` ([`public_path`]; every record is read and checked once) under `security`.
    pub fn open(dir: &Path, security: Security) -> Result<Self> {
        let (path, ctx, index) = scan_bundle(dir, security, true, |offset, _| offset, |offset, _| offset)?;
        let limits = Limits::for_params(ctx.params());
        Ok(BundleStore { path, ctx: Arc::new(ctx), limits, index })
    }

    /// The bundle's context.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The bundle's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.index.pk
    }

    /// The object at `offset`.
    fn read_at(&self, offset: u64) -> Result<WireObject> {
        let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(&self.path, e))?;
        let mut src = IoSource(BufReader::with_capacity(1 << 16, f));
        wire::read_object(&mut src, &self.ctx, &self.limits).map_err(|e| wrap(&self.path, e))
    }

    fn switching_key_at(&self, offset: u64) -> Result<SwitchingKey> {
        match self.read_at(offset)? {
            WireObject::SwitchingKey(k) => Ok(k),
            _ => Err(unexpected(&self.path)),
        }
    }
}

/// A service error as the engine's key-store error.
fn store_error(e: Error) -> hetune_engine::Error {
    hetune_engine::Error::KeyStore(Box::new(e))
}

impl KeyStore for BundleStore {
    fn contents(&self) -> KeyList {
        KeyList {
            relinearization: self.index.relin.is_some(),
            galois: self.index.galois.keys().copied().collect(),
            encapsulation: self.index.to_sparse.is_some() && self.index.to_dense.is_some(),
        }
    }
    fn relinearization(&self) -> Result<SwitchingKey, hetune_engine::Error> {
        let offset = self.index.relin.ok_or(hetune_engine::Error::MissingRelinearizationKey)?;
        self.switching_key_at(offset).map_err(store_error)
    }
    fn galois(&self, g: u64) -> Result<SwitchingKey, hetune_engine::Error> {
        let offset = *self.index.galois.get(&g).ok_or(hetune_engine::Error::MissingGaloisKey(g))?;
        self.switching_key_at(offset).map_err(store_error)
    }
    fn encapsulation(&self) -> Result<EncapsulationKeys, hetune_engine::Error> {
        let (Some(sparse), Some(dense)) = (self.index.to_sparse, self.index.to_dense) else {
            return Err(hetune_engine::Error::MissingEncapsulationKeys);
        };
        let to_sparse = match self.read_at(sparse).map_err(store_error)? {
            WireObject::EncapsulationKey(k) => k,
            _ => return Err(store_error(unexpected(&self.path))),
        };
        Ok(EncapsulationKeys { to_sparse, to_dense: self.switching_key_at(dense).map_err(store_error)? })
    }
}

/// Where [`generate_key_dir`] writes the files of key directory `dir`: the owner's secret key
/// and the server's bundle, in separate folders.
pub fn key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (secret_path(dir), dir.join(SERVER_DIR).join(PUBLIC_FILE))
}
