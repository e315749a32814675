//! The two-party shape end to end: the owner writes a key directory with bootstrapping keys; the
//! server loads only the public bundle, bootstraps the owner's ciphertext, and the owner decrypts.

use std::sync::Arc;

use hetune::engine::circuits::bootstrap::{BootstrapConfig, BootstrapKeys, Bootstrapper};
use hetune::engine::evaluator::{EvaluationKeys, Evaluator};
use hetune::io::keys::{generate_key_dir, load_owner, load_public, RotationSet};
use hetune_core::ckks::{decrypt, encrypt_sk, Complex, Encoder};
use hetune_core::{Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn server_bootstraps_with_the_public_bundle_only() {
    let dir = std::env::temp_dir().join(format!("hetune-bundle-boot-{}", std::process::id()));
    let params = Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap();
    let cfg = BootstrapConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    generate_key_dir(&dir, &params, &RotationSet::None, Some(&cfg), &mut rng, &|_, _| {}).unwrap();

    // Server side: the bundle only.
    let bundle = load_public(&dir, true, Security::InsecureForTestingOnly).unwrap();
    let (to_sparse, to_dense) = bundle.eval.encapsulation.expect("encapsulation keys in the bundle");
    let ctx = Arc::new(bundle.ctx);
    let keys = EvaluationKeys { relin: bundle.eval.relin, galois: bundle.eval.galois };
    let ev = Evaluator::new(ctx.clone(), keys).unwrap();
    let boot = Bootstrapper::new(&ev, BootstrapKeys { to_sparse, to_dense }, cfg).unwrap();

    // Owner side: encrypt; the server bootstraps; the owner decrypts.
    let owner = load_owner(&dir, Security::InsecureForTestingOnly).unwrap();
    let enc = Encoder::new(&owner.ctx);
    let log_slots = params.log_n() - 1;
    let v: Vec<Complex> =
        (0..1usize << log_slots).map(|j| Complex::new((j as f64 * 0.01).sin(), (j as f64 * 0.02).cos())).collect();
    let pt = enc.encode_complex(&v, log_slots, 0, params.scale()).unwrap();
    let ct = encrypt_sk(&owner.ctx, &owner.sk, &pt, &mut rng).unwrap().expand(&owner.ctx);
    let out = boot.bootstrap(&ev, &ct).unwrap();
    let got = enc.decode_complex(&decrypt(&owner.ctx, &owner.sk, &out).unwrap()).unwrap();
    let max = got.iter().zip(&v).map(|(a, b)| (a.re - b.re).abs().max((a.im - b.im).abs())).fold(0.0, f64::max);
    assert!(-max.log2() >= 19.0, "{:.1} bits", -max.log2());
    std::fs::remove_dir_all(&dir).unwrap();
}
