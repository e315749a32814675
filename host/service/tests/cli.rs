//! The `hetune` binary end to end: params, keygen, encrypt and decrypt at n16-boot with measured
//! precision and file sizes, and one-line errors with a non-zero exit for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hetune::io::npy::{read_matrix, write_matrix, Dtype, Matrix};

fn hetune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hetune")).args(args).output().expect("run hetune")
}

fn ok(args: &[&str]) -> String {
    let out = hetune(args);
    assert!(out.status.success(), "hetune {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = hetune(args);
    assert!(!out.status.success(), "hetune {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.trim().lines().last().unwrap_or("").starts_with("error: "), "{err}");
    err
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hetune-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 1000 x 16 real features (the built-in SNIPS sample) as f64.
fn sample_f64(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/snips_mpnet_train_1000x16.npy");
    let mut m = read_matrix(&src).unwrap();
    assert_eq!((m.rows, m.cols), (1000, 16));
    m.dtype = Dtype::F64;
    let p = dir.join("x.npy");
    write_matrix(&p, &m).unwrap();
    p
}

#[test]
fn params_n16_boot_is_secure() {
    let out = ok(&["params", "--preset", "n16-boot", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["security_bits"].as_u64().unwrap() >= 128);
    assert!(v["log_qp"].as_f64().unwrap() <= 1747.0);
    assert_eq!(v["n"].as_u64().unwrap(), 65536);
    assert!(v["levels"].as_u64().unwrap() >= 9);
    assert!(v["scale_bits"].as_u64().unwrap() >= 40);
    assert_eq!(v["secure"], serde_json::Value::Bool(true));
    let out = ok(&["params", "--preset", "test-n12"]);
    assert!(out.contains("INSECURE"), "{out}");
}

#[test]
fn n16_boot_round_trip_of_a_1000_by_16_matrix() {
    let dir = tmp("n16");
    let keys = dir.join("keys");
    let x = sample_f64(&dir);
    ok(&["keygen", "--preset", "n16-boot", "--out", s(&keys)]);
    // The owner's and the server's files in separate folders: nothing but the bundle in server/.
    assert!(keys.join("owner/secret.key").exists() && keys.join("server/public.bundle").exists());
    let server: Vec<_> = std::fs::read_dir(keys.join("server")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(server, ["public.bundle"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("owner/secret.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret key readable by others");
        let mode = std::fs::metadata(keys.join("owner")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner folder open to others");
    }
    let seeded = dir.join("x.hct");
    let full = dir.join("x.full.hct");
    let public = dir.join("x.pk.hct");
    ok(&["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&seeded)]);
    ok(&["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&full), "--full"]);
    ok(&["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&public), "--public"]);

    let want = read_matrix(&x).unwrap();
    for (file, min_bits) in [(&seeded, 25.0), (&full, 25.0), (&public, 20.0)] {
        let y = dir.join("y.npy");
        let out = ok(&["decrypt", "--keys", s(&keys), "--input", s(file), "--out", s(&y), "--reference", s(&x)]);
        assert!(out.contains("precision: max abs error"), "{out}");
        let got = read_matrix(&y).unwrap();
        assert_eq!((got.rows, got.cols), (1000, 16));
        let max = got.data.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(max <= 1e-6, "{}: max abs error {max:e}", file.display());
        assert!(-max.log2() >= min_bits, "{}: {:.1} bits", file.display(), -max.log2());
    }

    // A tensor header that over-promises, at the head of a sparse 1 GiB file: a typed error
    // (the header no longer fits, or the first record is missing), never an allocation of the
    // promised rows * cols values (tens of GB: it used to abort).
    {
        let params = hetune_core::Parameters::preset("n16-boot", hetune_core::Security::Require128Bits).unwrap();
        for count in [131_072u32, 2_184] {
            use hetune_core::wire::{write_tensor_header, TensorHeader, TensorLayout};
            let cols = count as u64 * params.max_slots() as u64;
            let t = TensorHeader {
                rows: 1,
                cols,
                layout: TensorLayout::RowMajorChunks,
                block_rows: 0,
                block_cols: 0,
                count,
                dtype: 0,
            };
            let mut h = Vec::new();
            write_tensor_header(&mut h, &params, &t).unwrap();
            let sparse = dir.join("sparse.hct");
            std::fs::write(&sparse, &h).unwrap();
            std::fs::OpenOptions::new().write(true).open(&sparse).unwrap().set_len(1 << 30).unwrap();
            let y = dir.join("y.npy");
            let err = fails(&["decrypt", "--keys", s(&keys), "--input", s(&sparse), "--out", s(&y)]);
            assert!(err.contains("does not fit the file") || err.contains("bad magic"), "{count}: {err}");
            std::fs::remove_file(&sparse).unwrap();
        }
    }

    // Seeded files are about half of full ones, and sizes follow the bit-packing formula.
    let (ls, lf) = (std::fs::metadata(&seeded).unwrap().len(), std::fs::metadata(&full).unwrap().len());
    assert!(ls as f64 <= 0.55 * lf as f64, "seeded {ls} vs full {lf}");
    let params = hetune_core::Parameters::preset("n16-boot", hetune_core::Security::Require128Bits).unwrap();
    let level = params.default_level();
    let bits: u64 = (0..=level).map(|i| params.limb_bits(i) as u64).sum();
    let per_poly = params.n() as u64 * bits / 8;
    for (len, polys) in [(ls, 1u64), (lf, 2)] {
        let expected = polys * per_poly;
        assert!((len as f64 - expected as f64).abs() <= 0.01 * expected as f64, "{len} vs {expected}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tmp("errors");
    let keys = dir.join("keys");
    let x = dir.join("x.npy");
    write_matrix(
        &x,
        &Matrix { rows: 2, cols: 3, data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype: Dtype::F64, is_vector: false },
    )
    .unwrap();
    let err = fails(&["keygen", "--preset", "test-n12", "--out", s(&keys)]);
    assert!(err.contains("INSECURE") && err.contains("--insecure-testing-only"), "{err}");
    ok(&["keygen", "--preset", "test-n12", "--out", s(&keys), "--insecure-testing-only"]);
    // A server's key request is untrusted input: one larger than 1 MiB is refused unread.
    let big = dir.join("request.json");
    std::fs::write(&big, format!("{{\"rotations\": [{}1]}}", "1, ".repeat(400_000))).unwrap();
    let err = fails(&[
        "keygen",
        "--preset",
        "test-n12",
        "--out",
        s(&dir.join("k2")),
        "--request",
        s(&big),
        "--insecure-testing-only",
    ]);
    assert!(err.contains("at most 1048576 bytes"), "{err}");

    const INSECURE: &str = "--insecure-testing-only";
    let err = fails(&[
        "encrypt",
        "--keys",
        s(&keys),
        "--input",
        s(&dir.join("missing.npy")),
        "--out",
        s(&dir.join("o")),
        INSECURE,
    ]);
    assert!(err.contains("file not found"), "{err}");
    let err = fails(&["decrypt", "--keys", s(&dir.join("nokeys")), "--input", s(&x), "--out", s(&dir.join("o"))]);
    assert!(err.contains("file not found"), "{err}");
    let err = fails(&["params", "--preset", "nope"]);
    assert!(err.contains("unknown preset"), "{err}");

    let ct = dir.join("x.hct");
    // Insecure keys are refused unless the opt-in is named, by every loader.
    let err = fails(&["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&ct)]);
    assert!(err.contains("insecure") && err.contains(INSECURE), "{err}");
    let err = fails(&["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&ct), "--public"]);
    assert!(err.contains("insecure") && err.contains(INSECURE), "{err}");
    ok(&["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&ct), INSECURE]);
    let err = fails(&["decrypt", "--keys", s(&keys), "--input", s(&ct), "--out", s(&dir.join("o.npy"))]);
    assert!(err.contains("insecure") && err.contains(INSECURE), "{err}");
    // Corrupt one payload byte: a checksum error, not a panic.
    let mut bytes = std::fs::read(&ct).unwrap();
    let k = bytes.len() - 100;
    bytes[k] ^= 0x40;
    let bad = dir.join("bad.hct");
    std::fs::write(&bad, &bytes).unwrap();
    let err = fails(&["decrypt", "--keys", s(&keys), "--input", s(&bad), "--out", s(&dir.join("o.npy")), INSECURE]);
    assert!(err.contains("corrupt") || err.contains("checksum") || err.contains("out of range"), "{err}");
    // Truncated.
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&["decrypt", "--keys", s(&keys), "--input", s(&bad), "--out", s(&dir.join("o.npy")), INSECURE]);
    assert!(err.contains("truncated"), "{err}");
    // Keys of other parameters.
    let other = dir.join("keys15");
    ok(&["keygen", "--preset", "n15", "--out", s(&other)]);
    let err = fails(&["decrypt", "--keys", s(&other), "--input", s(&ct), "--out", s(&dir.join("o.npy"))]);
    assert!(err.contains("different parameter set"), "{err}");
    // Not an npy file.
    let err = fails(&["encrypt", "--keys", s(&keys), "--input", s(&ct), "--out", s(&dir.join("o")), INSECURE]);
    assert!(err.contains("not a supported .npy"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secret = keys.join("owner/secret.key");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // A key file others can read (or write) is refused, as ssh does.
        for bad_mode in [0o644, 0o620, 0o604] {
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(bad_mode)).unwrap();
            let err =
                fails(&["decrypt", "--keys", s(&keys), "--input", s(&ct), "--out", s(&dir.join("o.npy")), INSECURE]);
            assert!(err.contains("chmod 600"), "{bad_mode:o}: {err}");
        }
        // Keygen over an existing 0644 secret.key leaves a 0600 one.
        ok(&["keygen", "--preset", "test-n12", "--out", s(&keys), INSECURE]);
        assert_eq!(mode(&secret), 0o600);
        // A symbolic link planted at secret.key is replaced, never followed.
        let target = dir.join("planted.txt");
        std::fs::write(&target, b"not a key").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::remove_file(&secret).unwrap();
        std::os::unix::fs::symlink(&target, &secret).unwrap();
        ok(&["keygen", "--preset", "test-n12", "--out", s(&keys), INSECURE]);
        assert_eq!(std::fs::read(&target).unwrap(), b"not a key");
        assert_eq!(mode(&target), 0o644);
        assert!(!std::fs::symlink_metadata(&secret).unwrap().file_type().is_symlink());
        assert_eq!(mode(&secret), 0o600);
        ok(&["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&ct), INSECURE]);
        // The server's folder alone encrypts with the public key (what a server or a sensor has).
        ok(&["encrypt", "--keys", s(&keys.join("server")), "--input", s(&x), "--out", s(&ct), INSECURE]);
        // A secret key beside the bundle (the old layout, or a copy put there) is refused.
        std::fs::copy(&secret, keys.join("server/secret.key")).unwrap();
        let err = fails(&["decrypt", "--keys", s(&keys), "--input", s(&ct), "--out", s(&dir.join("o.npy")), INSECURE]);
        assert!(err.contains("beside the public bundle"), "{err}");
        std::fs::remove_file(keys.join("server/secret.key")).unwrap();
        // A world-readable owner folder is made private again by keygen.
        std::fs::set_permissions(keys.join("owner"), std::fs::Permissions::from_mode(0o755)).unwrap();
        ok(&["keygen", "--preset", "test-n12", "--out", s(&keys), INSECURE]);
        assert_eq!(mode(&keys.join("owner")), 0o700);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hetal_packing_of_features_and_one_hot_labels_reads_back_without_a_layout() {
    const INSECURE: &str = "--insecure-testing-only";
    let dir = tmp("hetal");
    let keys = dir.join("keys");
    let x = sample_f64(&dir);
    ok(&["keygen", "--preset", "test-n12", "--out", s(&keys), INSECURE]);
    // Three classes; labels as a server's training directory has them (int64).
    let labels: Vec<i64> = (0..1000).map(|i| (i * 7 % 3) as i64).collect();
    let y = dir.join("y.npy");
    {
        use npyz::WriterBuilder;
        let f = std::io::BufWriter::new(std::fs::File::create(&y).unwrap());
        let mut w = npyz::WriteOptions::<i64>::new().default_dtype().shape(&[1000]).writer(f).begin_nd().unwrap();
        w.extend(labels.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    let (ex, ey) = (dir.join("x.hetal"), dir.join("y.hetal"));
    let common = ["encrypt", "--keys", s(&keys), "--input", s(&x), "--out", s(&ex), "--packing", "hetal", INSECURE];
    let out =
        ok(&[&common[..], &["--classes", "3", "--batch", "128", "--labels", s(&y), "--labels-out", s(&ey)]].concat());
    // test-n12: 2048 slots, pad_c 4, s0 = 128 rows per block: 8 block rows of 1000 rows, 16 / 16 columns.
    assert!(out.contains("into 8 blocks of 128x16 (pad_c 4)"), "{out}");
    // Decryption reads the layout from the header.
    let back = dir.join("x.back.npy");
    let out =
        ok(&["decrypt", "--keys", s(&keys), "--input", s(&ex), "--out", s(&back), "--reference", s(&x), INSECURE]);
    assert!(out.contains("precision: max abs error"), "{out}");
    let want = read_matrix(&x).unwrap();
    let got = read_matrix(&back).unwrap();
    assert_eq!((got.rows, got.cols), (1000, 16));
    let max = got.data.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max <= 1e-5, "features: max abs error {max:e}");
    let yb = dir.join("y.back.npy");
    ok(&["decrypt", "--keys", s(&keys), "--input", s(&ey), "--out", s(&yb), INSECURE]);
    let got = read_matrix(&yb).unwrap();
    assert_eq!((got.rows, got.cols), (1000, 3));
    for (i, &l) in labels.iter().enumerate() {
        for c in 0..3 {
            let want = if c as i64 == l { 1.0 } else { 0.0 };
            assert!((got.data[i * 3 + c] - want).abs() < 1e-5, "row {i} class {c}: {}", got.data[i * 3 + c]);
        }
    }
    // Missing packing arguments and labels out of range are errors.
    let err = fails(&[&common[..], &["--batch", "128"]].concat());
    assert!(err.contains("--classes is needed with --packing hetal"), "{err}");
    let err = fails(
        &[&common[..], &["--classes", "2", "--batch", "128", "--labels", s(&y), "--labels-out", s(&ey)]].concat(),
    );
    assert!(err.contains("outside 0..2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
