//! Encrypted matrices through files and the CLI: the wire form and `.npy` conversions of an
//! encrypted matrix, and `hetune bench matmul`.

use std::sync::Arc;

use hetune::engine::learning::{EncMatrix, Packing, Tiling};
use hetune::io::matrix::{decrypt_npy, encrypt_npy};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

struct Fx {
    ctx: Arc<Context>,
    sk: SecretKey,
    rng: ChaCha20Rng,
}

/// test-n12 without evaluation keys.
fn fixture(seed: u64) -> Fx {
    let ctx =
        Arc::new(Context::new(Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    Fx { ctx, sk, rng }
}

impl Fx {
    fn top(&self) -> usize {
        self.ctx.params().max_level()
    }
}

fn random(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    (0..rows * cols).map(|_| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).collect()
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let max = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let err = got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    assert!(max > 0.0 && err / max < 1e-3, "{what}: error {err:e} relative to {max} is {:e}", err / max);
}

#[test]
fn wire_form_and_npy_round_trip() {
    let (a, b, c) = (70, 9, 2);
    let pk = Packing::hetal(c, a, 2048).unwrap();
    let mut fx = fixture(4);
    let top = fx.top();
    let m = hetune::io::npy::Matrix {
        rows: c,
        cols: b,
        data: random(c, b, 40),
        dtype: hetune::io::npy::Dtype::F64,
        is_vector: false,
    };
    let e = encrypt_npy(&fx.ctx, &fx.sk, &m, pk, Tiling::Vertical, top, &mut fx.rng).unwrap();
    let mut bytes = Vec::new();
    e.write_wire(&fx.ctx, &mut bytes).unwrap();
    let back = EncMatrix::read_wire(&fx.ctx, &bytes[..], pk.pad_c, Tiling::Vertical).unwrap();
    assert_eq!((back.rows, back.cols, back.packing, back.grid), (c, b, pk, (1, 1)));
    let d = decrypt_npy(&back, &fx.ctx, &fx.sk).unwrap();
    assert_close(&d.data, &m.data, "wire round trip");
    // A truncated stream and a wrong tiling are errors, not panics.
    assert!(EncMatrix::read_wire(&fx.ctx, &bytes[..bytes.len() - 3], pk.pad_c, Tiling::Vertical).is_err());
    assert!(EncMatrix::read_wire(&fx.ctx, &bytes[..], pk.pad_c, Tiling::Horizontal).is_err());
}

#[test]
fn bench_matmul_cli_reports_counts_errors_and_speedups() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hetune"))
        .args(["bench", "matmul", "--preset", "test-n12", "--threads", "1", "--shapes", "128x128x4"])
        .args(["--algorithms", "diag_abt,col_major_abt", "--budget-s", "0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["insecure"], true);
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    // 2048 slots: s0 = 128, s1 = 16, A0 = 1, B1 = 8.
    assert_eq!(res[0]["algorithm"], "diag_abt");
    assert_eq!(res[0]["blocks"], serde_json::json!([128, 16]));
    assert_eq!(res[0]["counts"], serde_json::json!({"cmult": 4, "mult": 16, "rot": 32, "conj": 1}));
    assert_eq!(res[0]["levels"], 3);
    assert!(res.iter().all(|r| r["relative_error"].as_f64().unwrap() < 1e-3));
    assert!(v["speedups"][0]["diag_abt_over_col_major"].as_f64().unwrap() > 0.0);
    // Unknown algorithms and malformed shapes are errors.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_hetune"))
        .args(["bench", "matmul", "--preset", "test-n12", "--shapes", "12x3"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
