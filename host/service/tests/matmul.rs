//! Encrypted matrices through files and the CLI: the wire form and `.npy` conversions of an
//! encrypted matrix, and `hetune bench matmul`.

use hetune::engine::learning::{EncMatrix, Packing, Tiling};
use hetune::io::matrix::{decrypt_npy, encrypt_npy};
use hetune_core::wire::{
    write_block_tensor_header, write_ciphertext, write_tensor_header, BlockLayout, TensorHeader, TensorLayout,
};
use hetune_testkit::{assert_close, owner, uniform as random};

#[test]
fn wire_form_and_npy_round_trip() {
    let (a, b, c) = (70, 9, 2);
    let pk = Packing::hetal(c, a, 2048).unwrap();
    let fx = owner("test-n12");
    let top = fx.top();
    let mut rng = fx.rng(4);
    let m = hetune::io::npy::Matrix {
        rows: c,
        cols: b,
        data: random(c, b, 40),
        dtype: hetune::io::npy::Dtype::F64,
        is_vector: false,
    };
    let e = encrypt_npy(&fx.ctx, &fx.sk, &m, pk, Tiling::Vertical, top, &mut rng).unwrap();
    let mut bytes = Vec::new();
    e.write_wire(&fx.ctx, &mut bytes).unwrap();
    let back = EncMatrix::read_wire(&fx.ctx, &bytes[..]).unwrap();
    assert_eq!((back.rows, back.cols, back.packing, back.grid), (c, b, pk, (1, 1)));
    assert_eq!(back.layout(), e.layout());
    assert_eq!((back.tiling, back.level()), (Tiling::Vertical, top));
    let d = decrypt_npy(&back, &fx.ctx, &fx.sk).unwrap();
    assert_close(&d.data, &m.data, "wire round trip");
    // A truncated stream, a header without its layout and a header whose tiling does not fit
    // the shape are errors, not panics.
    assert!(EncMatrix::read_wire(&fx.ctx, &bytes[..bytes.len() - 3]).is_err());
    let params = fx.ctx.params();
    let t = TensorHeader {
        rows: c as u64,
        cols: b as u64,
        layout: TensorLayout::Blocks,
        block_rows: pk.s0 as u32,
        block_cols: pk.s1 as u32,
        count: 1,
        dtype: 0,
    };
    let blocks = {
        let mut v = Vec::new();
        write_ciphertext(&mut v, params, &e.blocks[0]).unwrap();
        v
    };
    let mut no_layout = Vec::new();
    write_tensor_header(&mut no_layout, params, &t).unwrap();
    assert!(EncMatrix::read_wire(&fx.ctx, &[no_layout, blocks.clone()].concat()[..]).is_err());
    let mut wrong_tiling = Vec::new();
    let l = BlockLayout { pad_c: pk.pad_c as u32, tiling: Tiling::Horizontal.code(), level: top as u8 };
    write_block_tensor_header(&mut wrong_tiling, params, &t, &l).unwrap();
    assert!(EncMatrix::read_wire(&fx.ctx, &[wrong_tiling, blocks][..].concat()[..]).is_err());
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
