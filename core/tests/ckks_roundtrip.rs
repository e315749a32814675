//! Encode, encrypt, decrypt and decode against an f64 reference, with measured precision.

use hetune_core::ckks::{decrypt, encrypt_pk, encrypt_sk, Complex, Encoder};
use hetune_core::ring::automorphism::{automorphism_coeff, automorphism_eval, automorphism_eval_permutation};
use hetune_core::ring::ntt::naive_evaluations;
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use hetune_core::{Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn ctx(name: &str) -> Context {
    Context::new(Parameters::preset(name, Security::InsecureForTestingOnly).unwrap()).unwrap()
}

fn bits(err: f64) -> f64 {
    -err.log2()
}

#[test]
fn secret_and_public_key_encryption_round_trip_at_test_n12() {
    let ctx = ctx("test-n12");
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    let enc = Encoder::new(&ctx);
    let log_slots = 11;
    let vals: Vec<Complex> =
        (0..1 << log_slots).map(|j| Complex::new((j as f64 * 0.013).sin(), (j as f64 * 0.029).cos())).collect();
    for level in [0, 3, ctx.params().max_level()] {
        let pt = enc.encode_complex(&vals, log_slots, level, ctx.params().scale()).unwrap();
        let seeded = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap();
        let full = seeded.expand(&ctx);
        let pkct = encrypt_pk(&ctx, &pk, &pt, &mut rng).unwrap();
        // Public-key encryption divides its noise v e + e_0 + e_1 s by P; the rounding of that
        // division, times s, is what remains.
        for (ct, min_bits) in [(&full, 28.0), (&pkct, 26.0)] {
            let out = enc.decode_complex(&decrypt(&ctx, &sk, ct).unwrap()).unwrap();
            let err =
                vals.iter().zip(&out).map(|(a, b)| (a.re - b.re).abs().max((a.im - b.im).abs())).fold(0.0, f64::max);
            eprintln!("level {level}: {:.1} bits (min {min_bits})", bits(err));
            assert!(bits(err) >= min_bits, "level {level}: {:.1} bits", bits(err));
        }
    }
}

#[test]
fn sparse_real_packing_round_trips() {
    let ctx = ctx("test-n12");
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let enc = Encoder::new(&ctx);
    for log_slots in [0u32, 4, 7] {
        let vals: Vec<f64> = (0..1 << log_slots).map(|j| j as f64 / 10.0 - 3.0).collect();
        let pt = enc.encode_real(&vals, log_slots, 2, ctx.params().scale()).unwrap();
        let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
        let out = enc.decode_real(&decrypt(&ctx, &sk, &ct).unwrap()).unwrap();
        let err = vals.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(bits(err) >= 25.0, "slots 2^{log_slots}: {:.1} bits", bits(err));
    }
}

#[test]
fn ntt_order_matches_documentation_for_every_preset_prime() {
    // Full check at N = 2^12.
    let ctx12 = ctx("test-n12");
    for t in ctx12.ntt() {
        let q = t.modulus();
        let n = t.n();
        let mut x = vec![0u64; n];
        x[1] = 1;
        t.forward(&mut x);
        let psi = x[0];
        let coeffs: Vec<u64> = (0..n as u64).map(|i| (i * 7919 + 3) % q.value()).collect();
        let mut fwd = coeffs.clone();
        t.forward(&mut fwd);
        assert_eq!(fwd, naive_evaluations(t, &coeffs, psi));
    }
    // Every prime of every other preset: the transform of X is psi^(2 bitrev(j) + 1).
    for p in hetune_core::rlwe::params::PRESETS {
        let params = Parameters::new(&p.literal, Security::InsecureForTestingOnly).unwrap();
        let n = params.n();
        let log_n = params.log_n();
        for &qv in params.q().iter().chain(params.p()) {
            let q = hetune_core::ring::Modulus::new(qv);
            let t = hetune_core::ring::NttTable::new(n, q).unwrap();
            let mut x = vec![0u64; n];
            x[1] = 1;
            t.forward(&mut x);
            let psi = x[0];
            assert_eq!(q.pow(psi, n as u64), qv - 1, "psi is a primitive 2N-th root");
            for j in (0..n).step_by(n / 64).chain([1, n - 1]) {
                let e = hetune_core::ring::ntt::eval_exponent(j, log_n) as u64;
                assert_eq!(x[j], q.pow(psi, e), "{} prime {qv} slot {j}", p.literal.name);
            }
        }
    }
}

#[test]
fn encryption_round_trip_at_n16_boot() {
    let ctx = Context::new(Parameters::preset("n16-boot", Security::Require128Bits).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    let enc = Encoder::new(&ctx);
    let log_slots = 15;
    let vals: Vec<f64> = (0..1 << log_slots).map(|j| (j as f64 * 0.001).sin()).collect();
    let level = ctx.params().default_level();
    let pt = enc.encode_real(&vals, log_slots, level, ctx.params().scale()).unwrap();
    let sk_ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    let pk_ct = encrypt_pk(&ctx, &pk, &pt, &mut rng).unwrap();
    for (ct, min_bits, what) in [(&sk_ct, 28.0, "secret key"), (&pk_ct, 24.0, "public key")] {
        let out = enc.decode_real(&decrypt(&ctx, &sk, ct).unwrap()).unwrap();
        let err = vals.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("n16-boot {what}: {:.1} bits", bits(err));
        assert!(bits(err) >= min_bits, "{what}: {:.1} bits", bits(err));
    }
}

#[test]
fn automorphisms_agree_in_both_domains() {
    let ctx = ctx("test-n12");
    let t = &ctx.ntt()[1];
    let q = t.modulus();
    let n = t.n();
    let a: Vec<u64> = (0..n as u64).map(|i| (i * i * 31 + 5) % q.value()).collect();
    for g in [5u64, 25, 2 * n as u64 - 1, 3 * 5 % (2 * n as u64)] {
        let mut coeff_out = vec![0u64; n];
        automorphism_coeff(&a, g, q, &mut coeff_out);
        t.forward(&mut coeff_out);
        let mut a_ntt = a.clone();
        t.forward(&mut a_ntt);
        let perm = automorphism_eval_permutation(g, n);
        let mut eval_out = vec![0u64; n];
        automorphism_eval(&a_ntt, &perm, &mut eval_out);
        assert_eq!(coeff_out, eval_out, "g = {g}");
    }
}
