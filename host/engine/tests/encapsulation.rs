//! Sparse-secret encapsulation at level 0 with one special prime: the switched ciphertext
//! decrypts under the sparse secret to the same message, losing almost nothing.

use std::sync::Arc;

use hetune_engine::circuits::bootstrap::{generate_keys, BootstrapConfig};
use hetune_engine::evaluator::{EncapsulationSwitch, EvaluationKeys, Evaluator};
use hetune_core::ckks::{decrypt, encrypt_sk, Encoder};
use hetune_core::rlwe::sampling::sparse_ternary;
use hetune_core::rlwe::{Context, EncapsulationKey, SecretKey, ENCAPSULATION_WEIGHT};
use hetune_core::{Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn encapsulated_ciphertext_decrypts_under_the_sparse_secret() {
    let ctx = Arc::new(Context::new(Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let mut coeffs = vec![0i8; ctx.n()];
    sparse_ternary(&mut rng, ENCAPSULATION_WEIGHT, &mut coeffs);
    let sparse = SecretKey::from_coeffs(coeffs);
    let key = EncapsulationKey::generate(&ctx, &sk, &sparse, &mut rng).unwrap();
    let ev = Evaluator::new(ctx.clone(), EvaluationKeys::new()).unwrap();
    let switch = EncapsulationSwitch::new(&ctx, key).unwrap();

    let enc = Encoder::new(&ctx);
    let log_slots = ctx.params().log_n() - 1;
    let xs: Vec<f64> = (0..1usize << log_slots).map(|j| ((j * 37 % 101) as f64 / 50.0) - 1.0).collect();
    // A level-0 message filling q_0 up to 2^4, as bootstrapping's boost leaves it.
    let scale = ctx.q()[0].value() as f64 / 16.0;
    let pt = enc.encode_real(&xs, log_slots, 0, scale).unwrap();
    let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    let out = ev.encapsulate(&ct, &switch).unwrap();
    let under_dense = enc.decode_real(&decrypt(&ctx, &sk, &ct).unwrap()).unwrap();
    let under_sparse = enc.decode_real(&decrypt(&ctx, &sparse, &out).unwrap()).unwrap();
    let max = under_sparse.iter().zip(&under_dense).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    // The switch adds (c_1 e + rounding) / p_0, a few hundred against a scale of 2^56.
    assert!(-max.log2() >= 40.0, "switch error 2^{:.1}", max.log2());
    // Decrypting under the wrong (dense) secret gives noise, not the message.
    let wrong = enc.decode_real(&decrypt(&ctx, &sk, &out).unwrap()).unwrap();
    assert!(wrong.iter().zip(&xs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) > 1.0);
}

#[test]
fn bootstrapping_refuses_an_unanalysed_encapsulation_weight() {
    let ctx = Context::new(Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    for weight in [0, 4, 64] {
        let cfg = BootstrapConfig { sparse_weight: weight, ..BootstrapConfig::default() };
        assert!(generate_keys(&ctx, &sk, &cfg, &mut rng).is_err(), "weight {weight}");
    }
}
