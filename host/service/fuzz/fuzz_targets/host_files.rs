//! Every file the host reads, on arbitrary bytes: npy features and labels, the owner's secret key
//! file, the public bundle (loaded whole and indexed as a key store), encrypted tensors in chunks
//! and in HETAL blocks. No panic, no abort, and the peak allocation of each execution (a counting
//! allocator) stays within a bound fixed by the file's size and the set's limits.
#![no_main]

#[path = "../../../../core/tests/common/alloc.rs"]
#[allow(dead_code)]
mod alloc;
#[path = "../../../../core/tests/common/fixup.rs"]
mod fixup;
#[path = "../src/state.rs"]
#[allow(dead_code)]
mod state;

use std::path::PathBuf;

use hetune::io::dataset::read_labels;
use hetune::io::keys::{load_owner, load_public, BundleStore, OWNER_DIR, PUBLIC_FILE, SECRET_FILE, SERVER_DIR};
use hetune::io::matrix::read_encrypted;
use hetune::io::npy::read_matrix;
use hetune::io::tensor::decrypt_matrix;
use hetune_core::Security;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static STATE: state::State = {
        let s = state::State::new(&work_dir());
        // Seed corpus: with HETUNE_HOST_CORPUS=DIR, the well-formed files, as they are and with
        // the repair flags, go to DIR on the first execution (run once with -runs=1, then fuzz DIR).
        if let Some(dir) = std::env::var_os("HETUNE_HOST_CORPUS") {
            std::fs::create_dir_all(&dir).unwrap();
            for (i, parts) in s.seeds.iter().enumerate() {
                for flags in [0u8, 3] {
                    let name = format!("{:02}-{}-{flags}", i, state::KINDS[i].replace(' ', "_"));
                    std::fs::write(PathBuf::from(&dir).join(name), state::encode_input(i as u8, flags, parts)).unwrap();
                }
            }
        }
        s
    };
}

/// A private working directory for this process (in memory where /dev/shm exists).
fn work_dir() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    base.join(format!("hetune-host-fuzz-{}", std::process::id()))
}

/// Fixed costs of a reader whatever the file: buffered readers (at most 1 MiB), the context of
/// the file's parameter record (bounded by `Limits::max_context_bytes`), error messages.
const FIXED: u64 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    STATE.with(|s| {
        let Some((kind, file)) = state::decode_input(data, s.ctx.fingerprint(), fixup::fix) else { return };
        let limits = s.limits();
        let keys = s.dir.join("keys");
        let path = match kind {
            2 => keys.join(OWNER_DIR).join(SECRET_FILE),
            3 => keys.join(SERVER_DIR).join(PUBLIC_FILE),
            _ => s.dir.join("input"),
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &file).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let insecure = Security::InsecureForTestingOnly;
        let ((), peak) = alloc::peak_of(|| match kind {
            0 => drop(read_matrix(&path)),
            1 => drop(read_labels(&path)),
            2 => drop(load_owner(&keys, insecure)),
            3 => {
                drop(load_public(&keys, true, insecure));
                if let Ok(store) = BundleStore::open(&keys, insecure) {
                    use hetune_engine::evaluator::KeyStore;
                    let list = store.contents();
                    drop(store.relinearization());
                    for g in list.galois {
                        drop(store.galois(g));
                    }
                    drop(store.encapsulation());
                }
            }
            4 => drop(decrypt_matrix(&s.ctx, &s.sk, &path)),
            _ => drop(read_encrypted(&path, &s.ctx)),
        });
        // What a well-formed file of this size may cost: its decoded values (an npy file of f32
        // becomes f64: twice its bytes; a key or ciphertext record at most the set's limit per
        // record, and at most as many records as the file's bytes can frame), plus the fixed costs.
        let len = file.len() as u64;
        let bound = FIXED + 4 * len + limits.max_bytes;
        assert!(peak <= bound, "{}: peak {peak} bytes for a {len}-byte file (bound {bound})", state::KINDS[kind]);
    });
});
