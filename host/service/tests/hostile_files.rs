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
fn npy_shapes_larger_than_the_file_are_refused() {
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }";
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let path = tmp("shape");
    std::fs::write(&path, npy(1, h.len() as u32, &h)).unwrap();
    let err = read_matrix(&path).unwrap_err();
    assert!(matches!(&err, Error::Npy { problem: NpyProblem::ShapeLargerThanFile, .. }), "{err}");
}
