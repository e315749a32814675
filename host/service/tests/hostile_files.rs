//! Files the host reads, crafted to over-promise: each gives a typed error at once. The cases
//! come from the host fuzz target (`host/service/fuzz`), which found the first.

use hetune::error::{Error, NpyProblem};
use hetune::io::dataset::read_labels;
use hetune::io::npy::read_matrix;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hetune-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("f.npy")
}

/// An npy file of `version` whose header declares `declared` bytes and holds `header`.
fn npy(version: u8, declared: u32, header: &str) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(declared as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&declared.to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out
}

#[test]
fn npy_headers_longer_than_the_file_are_refused_before_reading_them() {
    let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }";
    // The fuzz finding: a 105-byte format-3 file whose header claims about 8 MB (the reader
    // allocated 662 MB for it).
    for (version, declared) in [(3u8, 0x007b_0076u32), (2, u32::MAX), (1, 0xffff)] {
        let path = tmp(&format!("v{version}"));
        std::fs::write(&path, npy(version, declared, header)).unwrap();
        for err in [read_labels(&path).unwrap_err(), read_matrix(&path).unwrap_err()] {
            assert!(
                matches!(&err, Error::Npy { problem: NpyProblem::HeaderLargerThanFile, .. }),
                "version {version}: {err}"
            );
        }
    }
    // Not an npy file at all, and an unknown format version.
    for (name, bytes) in [("text", b"hello, world".to_vec()), ("v9", npy(9, 10, header))] {
        let path = tmp(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read_matrix(&path).unwrap_err();
        assert!(matches!(&err, Error::Npy { problem: NpyProblem::Read(_), .. }), "{name}: {err}");
    }
}

#[test]
fn npy_headers_with_nested_literals_are_refused_before_parsing() {
    // The fuzz finding (a timeout: the header parser ran for 28 minutes on 251 bytes), and a
    // structured dtype, which the readers never take.
    let nested = format!("{{'descr': '<i8',  {}es    (   ", "[".repeat(96));
    let structured = "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }".to_string();
    for (name, header) in [("nested", nested), ("structured", structured)] {
        let path = tmp(name);
        let mut bytes = npy(1, header.len() as u32, &header);
        bytes.extend_from_slice(&[0; 16]);
        std::fs::write(&path, bytes).unwrap();
        for err in [read_labels(&path).unwrap_err(), read_matrix(&path).unwrap_err()] {
            assert!(matches!(&err, Error::Npy { problem: NpyProblem::StructuredDtype, .. }), "{name}: {err}");
        }
    }
    let long = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }}{}", " ".repeat(5000));
    let path = tmp("long");
    std::fs::write(&path, npy(1, long.len() as u32, &long)).unwrap();
    let err = read_matrix(&path).unwrap_err();
    assert!(matches!(&err, Error::Npy { problem: NpyProblem::HeaderTooLong { .. }, .. }), "{err}");
}

#[test]
fn npy_shapes_larger_than_the_file_are_refused() {
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }";
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let path = tmp("shape");
    std::fs::write(&path, npy(1, h.len() as u32, &h)).unwrap();
    let err = read_matrix(&path).unwrap_err();
    assert!(matches!(&err, Error::Npy { problem: NpyProblem::ShapeLargerThanFile, .. }), "{err}");
}

#[path = "../../../core/tests/common/alloc.rs"]
#[allow(dead_code)]
mod alloc;
#[path = "../../../core/tests/common/fixup.rs"]
mod fixup;
#[path = "../fuzz/src/state.rs"]
#[allow(dead_code)]
mod state;

/// Mutants per file kind (six kinds).
const MUTANTS: usize = 400;

/// The host fuzz target's check, seeded, inside `cargo test`: mutants of every file kind the
/// host reads (repaired half of the time so they pass the checksums) give a value or a typed
/// error, never a panic, and stay within the target's allocation bound.
#[test]
fn mutants_of_every_host_file_fail_typed_within_their_bound() {
    use rand_core::{RngCore, SeedableRng};
    let dir = std::env::temp_dir().join(format!("hetune-host-mutants-{}", std::process::id()));
    let s = state::State::new(&dir);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x686f_7374);
    let mut failures = Vec::new();
    for (kind, parts) in s.seeds.iter().enumerate() {
        // The well-formed file reads back.
        let whole: Vec<u8> = parts.concat();
        s.execute(kind, &whole).unwrap();
        for i in 0..MUTANTS {
            let flags = (rng.next_u32() % 4) as u8;
            let mutant = state::mutate(parts, &mut || rng.next_u64());
            let input = state::encode_input(kind as u8, flags, &mutant);
            let (k, file) = state::decode_input(&input, s.ctx.fingerprint(), fixup::fix).unwrap();
            assert_eq!(k, kind);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.execute(kind, &file)));
            match run {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{} mutant {i}: {e}", state::KINDS[kind])),
                Err(_) => failures.push(format!("{} mutant {i}: panic", state::KINDS[kind])),
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "{failures:#?}");
}
