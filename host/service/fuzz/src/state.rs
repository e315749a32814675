//! What the `host_files` target and its corpus writer share: a small insecure parameter set, one
//! well-formed file of every kind the host reads, split into its records, and how an input picks
//! a reader and asks for repairs.
//!
//! Input layout: byte 0 picks the file kind ([`KINDS`]), byte 1 the repair (bit 0: recompute each
//! record's checksums and fingerprint, bit 1: also its payload length, so mutants reach the checks
//! behind the checksums), byte 2 the number `k` of records (at most [`MAX_PARTS`]), then `k`
//! little-endian u32 lengths, then the parts. The parts are concatenated into the file (each
//! repaired first when asked); bytes past the declared parts are appended as they are.

use std::path::{Path, PathBuf};

use hetune::io::dataset::read_labels;
use hetune::io::keys::{
    generate_key_dir, key_paths, load_owner, load_public, BundleStore, RotationSet, OWNER_DIR, PUBLIC_FILE,
    SECRET_FILE, SERVER_DIR,
};
use hetune::io::matrix::read_encrypted;
use hetune::io::matrix::write_encrypted;
use hetune::io::npy::read_matrix;
use hetune::io::npy::{write_matrix, Dtype, Matrix};
use hetune::io::tensor::decrypt_matrix;
use hetune::io::tensor::{encrypt_matrix, EncryptOptions, EncryptionKey};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::wire::Limits;
use hetune_core::Security;
use hetune_engine::evaluator::KeyStore;
use hetune_engine::learning::{EncMatrix, MatrixLayout, Packing, Tiling};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The file kinds, in the order byte 0 selects them.
pub const KINDS: &[&str] =
    &["npy matrix", "npy labels", "secret key file", "public bundle", "encrypted chunks", "encrypted blocks"];

/// Most records an input may declare.
pub const MAX_PARTS: usize = 64;

#[path = "../../../../core/tests/common/records.rs"]
#[allow(dead_code)]
mod records;

/// The core's small insecure set (N = 2^10, three levels, two digits): fast to decode.
pub use records::small_params;

/// The readers' fixed state, built once per process.
pub struct State {
    /// Context of the small set (the encrypted tensors are read under it).
    pub ctx: Context,
    /// Secret key of that context (decryption of chunked tensors).
    pub sk: SecretKey,
    /// Well-formed files, one per kind, each as its list of records (npy files: one part).
    pub seeds: Vec<Vec<Vec<u8>>>,
    /// Per-thread working directory (in memory when /dev/shm exists).
    pub dir: PathBuf,
}

/// Splits a file of wire records into its records (by the payload length of each header).
pub fn split_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 54 <= bytes.len() {
        let ext = u16::from_le_bytes([bytes[at + 48], bytes[at + 49]]) as usize;
        let payload = u64::from_le_bytes(bytes[at + 40..at + 48].try_into().unwrap()) as usize;
        let end = (at + 54 + ext + payload + 4).min(bytes.len());
        out.push(bytes[at..end].to_vec());
        at = end;
    }
    if at < bytes.len() {
        out.push(bytes[at..].to_vec());
    }
    out
}

impl State {
    /// Builds the context, keys and seed files (deterministically) under `dir`.
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("working directory");
        let params = small_params();
        let mut rng = ChaCha20Rng::seed_from_u64(0x686f_7374);
        let keys = dir.join("seed-keys");
        let request = RotationSet::Steps(vec![1, -2]).key_request(params.log_n() - 1);
        generate_key_dir(&keys, &params, &request, &mut rng, &|_, _| {}).expect("keygen");
        let owner = hetune::io::keys::load_owner(&keys, Security::InsecureForTestingOnly).expect("owner");
        let (secret, public) = key_paths(&keys);
        let read = |p: &Path| std::fs::read(p).expect("seed file");

        let m = Matrix {
            rows: 3,
            cols: 5,
            data: (0..15).map(|i| i as f64 / 7.0 - 1.0).collect(),
            dtype: Dtype::F64,
            is_vector: false,
        };
        let npy = dir.join("seed.npy");
        write_matrix(&npy, &m).expect("npy");
        let labels = dir.join("seed-labels.npy");
        std::fs::write(&labels, npy_i64(&[0, 2, 1, 1])).expect("labels");
        let chunks = dir.join("seed-chunks.hct");
        let opts = EncryptOptions { level: params.max_level(), seeded: true };
        encrypt_matrix(&owner.ctx, EncryptionKey::Secret(&owner.sk), &m, opts, &chunks, &mut rng).expect("chunks");
        let packing = Packing::new(16, 32, 4).expect("packing");
        let layout = MatrixLayout { rows: 20, cols: 40, packing, tiling: Tiling::None, level: 2 };
        let data: Vec<f64> = (0..800).map(|i| (i % 13) as f64 / 13.0).collect();
        let blocks = EncMatrix::encrypt(&owner.ctx, &owner.sk, &data, &layout, &mut rng).expect("blocks");
        let block_file = dir.join("seed-blocks.hem");
        write_encrypted(&block_file, &owner.ctx, &blocks).expect("blocks file");

        let seeds = vec![
            vec![read(&npy)],
            vec![read(&labels)],
            split_records(&read(&secret)),
            split_records(&read(&public)),
            split_records(&read(&chunks)),
            split_records(&read(&block_file)),
        ];
        State { ctx: owner.ctx, sk: owner.sk, seeds, dir: dir.to_path_buf() }
    }

    /// The limits a reader of this set runs under (the largest record it may decode).
    pub fn limits(&self) -> Limits {
        Limits::for_params(self.ctx.params())
    }

    /// Writes `file` where the reader of `kind` looks for it, runs the reader under the counting
    /// allocator and checks its peak allocation against what a file of that size may cost: its
    /// decoded values (an npy file of f32 becomes f64: twice its bytes), a record at most the
    /// set's limit, and fixed costs (buffered readers, the file's own parameter context bounded by
    /// `Limits::max_context_bytes`, messages). A panic in the reader propagates.
    pub fn execute(&self, kind: usize, file: &[u8]) -> Result<(), String> {
        const FIXED: u64 = 4 << 20;
        let keys = self.dir.join("keys");
        let path = match kind {
            2 => keys.join(OWNER_DIR).join(SECRET_FILE),
            3 => keys.join(SERVER_DIR).join(PUBLIC_FILE),
            _ => self.dir.join("input"),
        };
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&path, file).map_err(|e| e.to_string())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        }
        let insecure = Security::InsecureForTestingOnly;
        let ((), peak) = crate::alloc::peak_of(|| match kind {
            0 => drop(read_matrix(&path)),
            1 => drop(read_labels(&path)),
            2 => drop(load_owner(&keys, insecure)),
            3 => {
                drop(load_public(&keys, true, insecure));
                if let Ok(store) = BundleStore::open(&keys, insecure) {
                    let list = store.contents();
                    drop(store.relinearization());
                    for g in list.galois {
                        drop(store.galois(g));
                    }
                    drop(store.encapsulation());
                }
            }
            4 => drop(decrypt_matrix(&self.ctx, &self.sk, &path)),
            _ => drop(read_encrypted(&path, &self.ctx)),
        });
        let len = file.len() as u64;
        let bound = FIXED + 4 * len + self.limits().max_bytes;
        if peak > bound {
            return Err(format!("{}: peak {peak} bytes for a {len}-byte file (bound {bound})", KINDS[kind]));
        }
        Ok(())
    }
}

/// A 1-D `<i8` npy file.
pub fn npy_i64(v: &[i64]) -> Vec<u8> {
    let mut header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}", v.len());
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Random mutants of a well-formed file's records, for the seeded mutation test in `cargo test`
/// (`host/service/tests/hostile_files.rs`): one to three edits (bit flips, random bytes, header
/// fields set to boundary values, cuts, insertions, deletions, duplicated runs) in one part.
pub fn mutate(parts: &[Vec<u8>], next: &mut impl FnMut() -> u64) -> Vec<Vec<u8>> {
    const BOUNDARY: [u64; 8] = [0, 1, 0x7f, 0xff, 0xffff, 0xffff_ffff, u64::MAX / 2, u64::MAX];
    let mut out = parts.to_vec();
    let which = (next() % out.len().max(1) as u64) as usize;
    let Some(m) = out.get_mut(which) else { return out };
    for _ in 0..1 + next() % 3 {
        if m.is_empty() {
            break;
        }
        let len = m.len();
        // Half of the edits in the first 128 bytes, where the headers are.
        let at = (next() % if next().is_multiple_of(2) { len.min(128) } else { len } as u64) as usize;
        match next() % 7 {
            0 => m[at] ^= 1 << (next() % 8),
            1 => m[at] = next() as u8,
            2 => {
                let v = BOUNDARY[(next() % 8) as usize].to_le_bytes();
                let w = [1usize, 2, 4, 8][(next() % 4) as usize].min(len - at);
                m[at..at + w].copy_from_slice(&v[..w]);
            }
            3 => m.truncate(at),
            4 => {
                let extra: Vec<u8> = (0..1 + next() % 32).map(|_| next() as u8).collect();
                m.splice(at..at, extra);
            }
            5 => {
                let end = (at + 1 + (next() % 64) as usize).min(len);
                m.drain(at..end);
            }
            _ => {
                let end = (at + 1 + (next() % 64) as usize).min(len);
                let copy = m[at..end].to_vec();
                m.splice(end..end, copy);
            }
        }
    }
    out
}

/// An input for the target: kind, repair flags, the parts.
pub fn encode_input(kind: u8, flags: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![kind, flags, parts.len() as u8];
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The file bytes an input describes (repairing each part when asked); `None` when the input is
/// too short for its own prefix.
pub fn decode_input(
    data: &[u8],
    fingerprint: &[u8; 32],
    fix: impl Fn(&mut [u8], bool, Option<&[u8; 32]>),
) -> Option<(usize, Vec<u8>)> {
    let [kind, flags, k, rest @ ..] = data else { return None };
    let k = (*k as usize).min(MAX_PARTS);
    if rest.len() < 4 * k {
        return None;
    }
    let (lens, mut body) = rest.split_at(4 * k);
    let mut file = Vec::with_capacity(body.len());
    for l in lens.chunks_exact(4) {
        let len = (u32::from_le_bytes(l.try_into().ok()?) as usize).min(body.len());
        let (part, tail) = body.split_at(len);
        let mut part = part.to_vec();
        if flags & 1 == 1 {
            fix(&mut part, flags & 2 == 2, Some(fingerprint));
        }
        file.extend_from_slice(&part);
        body = tail;
    }
    file.extend_from_slice(body);
    Some((*kind as usize % KINDS.len(), file))
}
