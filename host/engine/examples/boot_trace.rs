//! Precision of each bootstrapping stage against its exact expectation (diagnostics):
//! `cargo run --release -p hetune-engine --example boot_trace -- test-n12-boot`.

use std::f64::consts::PI;
use std::sync::Arc;

use hetune_core::ckks::{decrypt, encrypt_sk, Complex, Encoder};
use hetune_core::ring::ntt::bit_reverse;
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::circuits::bootstrap::{generate_keys, BootstrapConfig, Bootstrapper};
use hetune_engine::evaluator::Evaluator;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn main() {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "test-n12-boot".into());
    let ctx = Arc::new(Context::new(Parameters::preset(&preset, Security::InsecureForTestingOnly).unwrap()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let a: Vec<String> = std::env::args().collect();
    let mut cfg = BootstrapConfig::default();
    if let (Some(r), Some(d)) = (a.get(2).and_then(|v| v.parse().ok()), a.get(3).and_then(|v| v.parse().ok())) {
        cfg.double_angle = r;
        cfg.degree = d;
    }
    let keys = generate_keys(&ctx, &sk, &cfg, &mut rng).unwrap();
    let ev = Evaluator::new(ctx.clone(), keys.eval).unwrap();
    let boot = Bootstrapper::new(&ev, keys.boot, cfg).unwrap();
    let enc = Encoder::new(&ctx);
    let log_slots = ctx.params().log_n() - 1;
    let n = 1usize << log_slots;
    let uni = |r: &mut ChaCha20Rng| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let v: Vec<Complex> = (0..n).map(|_| Complex::new(uni(&mut rng), uni(&mut rng))).collect();
    let pt = enc.encode_complex(&v, log_slots, 0, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    let k1 = cfg.k as f64 + 1.0;
    let mut raised_coeffs: Vec<f64> = Vec::new();
    boot.bootstrap_traced(&ev, &ct, &mut |stage, c| {
        let dec = decrypt(&ctx, &sk, c).unwrap();
        match stage {
            "raised" => {
                // Coefficients / q_0 = m/q_0 + I: report the fractional parts' size and max |I|.
                raised_coeffs = enc.plaintext_coeffs(&dec).unwrap();
                let max_i = raised_coeffs.iter().map(|x| x.round().abs()).fold(0.0, f64::max);
                let frac = raised_coeffs.iter().map(|x| (x - x.round()).abs()).fold(0.0, f64::max);
                println!("raised: max |I| = {max_i}, max |m/q0| = {frac:.3e}, level {}", c.level);
            }
            "coeff_to_slot" => {
                let got = enc.decode_complex(&dec).unwrap();
                let mut err = 0f64;
                for (j, g) in got.iter().enumerate().take(n) {
                    let k = bit_reverse(j, log_slots);
                    let want = Complex::new(raised_coeffs[k] / (2.0 * k1), raised_coeffs[k + n] / (2.0 * k1));
                    err = err.max((g.re - want.re).abs()).max((g.im - want.im).abs());
                }
                println!("coeff_to_slot: max abs error {err:.3e} ({:.1} bits of the [-1,1] range), scale 2^{:.2}, level {}", -err.log2(), c.scale.log2(), c.level);
            }
            "eval_mod_re" | "eval_mod_im" => {
                let got = enc.decode_complex(&dec).unwrap();
                let off = if stage == "eval_mod_re" { 0 } else { n };
                let mut err = 0f64;
                let mut sig = 0f64;
                for (j, g) in got.iter().enumerate().take(n) {
                    let k = bit_reverse(j, log_slots) + off;
                    let want = (2.0 * PI * raised_coeffs[k]).sin();
                    sig = sig.max(want.abs());
                    err = err.max((g.re - want).abs());
                }
                println!("{stage}: max abs error {err:.3e} vs max signal {sig:.3e} ({:.1} bits relative), scale 2^{:.2}, level {}", (sig / err).log2(), c.scale.log2(), c.level);
            }
            _ => {
                let got = enc.decode_complex(&dec).unwrap();
                let err = got.iter().zip(&v).map(|(a, b)| (a.re - b.re).abs().max((a.im - b.im).abs())).fold(0.0, f64::max);
                let mean = got.iter().zip(&v).map(|(a, b)| (a.re - b.re).abs() + (a.im - b.im).abs()).sum::<f64>() / (2 * n) as f64;
                println!("output: max abs error {err:.3e} ({:.1} bits), mean {:.1} bits, level {}", -err.log2(), -mean.log2(), c.level);
            }
        }
    })
    .unwrap();
}
