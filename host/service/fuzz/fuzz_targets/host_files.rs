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

fuzz_target!(|data: &[u8]| {
    STATE.with(|s| {
        let Some((kind, file)) = state::decode_input(data, s.ctx.fingerprint(), fixup::fix) else { return };
        if let Err(e) = s.execute(kind, &file) {
            panic!("{e}");
        }
    });
});
