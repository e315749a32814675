//! Precision of each bootstrapping stage against its exact expectation (diagnostics):
//! `cargo run --release -p hetune-engine --example boot_trace -- test-n12-boot [double_angle
//! degree [message_ratio_bits]]`. Besides each stage's error it splits the output's: the sine's
//! curvature alone, EvalMod's error against the exact sine, and SlotToCoeff's own error against
//! an exact DFT of EvalMod's decrypted output.

use std::f64::consts::PI;
use std::sync::Arc;

use hetune_core::ckks::{decrypt, encrypt_sk, Complex, Encoder};
use hetune_core::ring::ntt::bit_reverse;
use hetune_engine::circuits::bootstrap::{BootstrapConfig, Bootstrapper};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

fn main() {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "test-n12-boot".into());
    // The owner and its keys from the test kit (insecure presets allowed: diagnostics only).
    let owner = hetune_testkit::owner(&preset);
    let (ctx, sk, mut rng) = (owner.ctx.clone(), &owner.sk, owner.rng(1));
    let a: Vec<String> = std::env::args().collect();
    let mut cfg = BootstrapConfig::default();
    if let (Some(r), Some(d)) = (a.get(2).and_then(|v| v.parse().ok()), a.get(3).and_then(|v| v.parse().ok())) {
        cfg.double_angle = r;
        cfg.degree = d;
    }
    if let Some(m) = a.get(4).and_then(|v| v.parse().ok()) {
        cfg.message_ratio_bits = m;
    }
    let ev = Arc::new(owner.evaluator(&cfg.key_request(ctx.params().log_n())));
    let boot = Bootstrapper::new(ev.clone(), cfg).unwrap();
    let enc = Encoder::new(&ctx);
    let log_slots = ctx.params().log_n() - 1;
    let n = 1usize << log_slots;
    let uni = |r: &mut ChaCha20Rng| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let v: Vec<Complex> = (0..n).map(|_| Complex::new(uni(&mut rng), uni(&mut rng))).collect();
    let pt = enc.encode_complex(&v, log_slots, 0, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, sk, &pt, &mut rng).unwrap().expand(&ctx);
    let k1 = cfg.k as f64 + 1.0;
    let mut raised_coeffs: Vec<f64> = Vec::new();
    // Coefficient units of the output per unit of x = m/q_0.
    let q0 = ctx.q()[0].value() as f64;
    let unit = q0 / (ctx.params().scale() * 2f64.powi(boot.boost_bits() as i32));
    let nn = ctx.n();
    // Mean absolute slot error of a coefficient error vector (output units).
    let slot_err = |mut e: Vec<f64>| {
        let mut s = 0f64;
        hetune_core::ckks::encoder::decode_coeffs(log_slots, &mut e, |_, c| s += c.re.abs() + c.im.abs()).unwrap();
        s / (2 * n) as f64
    };
    let mut evalmod_err = vec![0f64; nn];
    let mut evalmod_out = vec![0f64; nn];
    let mut cts_out: Vec<Complex> = Vec::new();
    let decode = |mut e: Vec<f64>| {
        let mut out = vec![Complex::default(); n];
        hetune_core::ckks::encoder::decode_coeffs(log_slots, &mut e, |j, c| out[j] = c).unwrap();
        out
    };
    let mean_bits = |a: &[Complex], b: &[Complex]| {
        let m = a.iter().zip(b).map(|(a, b)| (a.re - b.re).abs() + (a.im - b.im).abs()).sum::<f64>() / (2 * n) as f64;
        -m.log2()
    };
    boot.bootstrap_traced(&ct, &mut |stage, c| {
        let dec = decrypt(&ctx, sk, c).unwrap();
        match stage {
            "raised" => {
                // Coefficients / q_0 = m/q_0 + I: report the fractional parts' size and max |I|.
                raised_coeffs = enc.plaintext_coeffs(&dec).unwrap();
                let max_i = raised_coeffs.iter().map(|x| x.round().abs()).fold(0.0, f64::max);
                let frac = raised_coeffs.iter().map(|x| (x - x.round()).abs()).fold(0.0, f64::max);
                println!("raised: max |I| = {max_i}, max |m/q0| = {frac:.3e}, level {}", c.level);
                let curv: Vec<f64> = raised_coeffs
                    .iter()
                    .map(|x| {
                        let f = x - x.round();
                        ((2.0 * PI * f).sin() / (2.0 * PI) - f) * unit
                    })
                    .collect();
                println!("  sine curvature alone: mean {:.1} bits", -slot_err(curv).log2());
                let exact: Vec<f64> = raised_coeffs.iter().map(|x| (x - x.round()) * unit).collect();
                println!("  input side (raised message vs the slots): mean {:.1} bits", mean_bits(&decode(exact), &v));
            }
            "coeff_to_slot" => {
                let got = enc.decode_complex(&dec).unwrap();
                let mut err = 0f64;
                for (j, g) in got.iter().enumerate().take(n) {
                    let k = bit_reverse(j, log_slots);
                    let want = Complex::new(raised_coeffs[k] / (2.0 * k1), raised_coeffs[k + n] / (2.0 * k1));
                    err = err.max((g.re - want.re).abs()).max((g.im - want.im).abs());
                }
                cts_out = got.clone();
                println!("coeff_to_slot: max abs error {err:.3e} ({:.1} bits of the [-1,1] range), scale 2^{:.2}, level {}", -err.log2(), c.scale.log2(), c.level);
            }
            "eval_mod_re" | "eval_mod_im" => {
                let got = enc.decode_complex(&dec).unwrap();
                let off = if stage == "eval_mod_re" { 0 } else { n };
                let mut err = 0f64;
                let mut sig = 0f64;
                let mut own = 0f64;
                let mut own_im = 0f64;
                for (j, g) in got.iter().enumerate().take(n) {
                    let k = bit_reverse(j, log_slots) + off;
                    let want = (2.0 * PI * raised_coeffs[k]).sin();
                    sig = sig.max(want.abs());
                    err = err.max((g.re - want).abs());
                    evalmod_err[k] = (g.re - want) / (2.0 * PI) * unit;
                    evalmod_out[k] = g.re / (2.0 * PI) * unit;
                    let xin = if off == 0 { cts_out[j].re } else { cts_out[j].im };
                    own += (g.re - (2.0 * PI * 2.0 * k1 * xin).sin()).powi(2);
                    own_im += g.im.powi(2);
                }
                println!("  rms error vs the sine of CoeffToSlot's decrypted output: {:.3e}; rms imaginary part {:.3e}", (own / n as f64).sqrt(), (own_im / n as f64).sqrt());
                if stage == "eval_mod_im" {
                    println!("  EvalMod's error vs the exact sine, alone: mean {:.1} bits", -slot_err(evalmod_err.clone()).log2());
                }
                println!("{stage}: max abs error {err:.3e} vs max signal {sig:.3e} ({:.1} bits relative), scale 2^{:.2}, level {}", (sig / err).log2(), c.scale.log2(), c.level);
            }
            _ => {
                let got = enc.decode_complex(&dec).unwrap();
                let ideal = decode(evalmod_out.clone());
                println!("  SlotToCoeff's own error (vs an exact DFT of EvalMod's output): mean {:.1} bits", mean_bits(&got, &ideal));
                println!("  everything before SlotToCoeff: mean {:.1} bits", mean_bits(&ideal, &v));
                let err = got.iter().zip(&v).map(|(a, b)| (a.re - b.re).abs().max((a.im - b.im).abs())).fold(0.0, f64::max);
                let mean = got.iter().zip(&v).map(|(a, b)| (a.re - b.re).abs() + (a.im - b.im).abs()).sum::<f64>() / (2 * n) as f64;
                println!("output: max abs error {err:.3e} ({:.1} bits), mean {:.1} bits, level {}", -err.log2(), -mean.log2(), c.level);
            }
        }
    })
    .unwrap();
}
