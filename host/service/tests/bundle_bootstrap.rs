//! The two-party shape end to end: the owner writes a key directory with bootstrapping keys; the
//! server keeps the public bundle on disk (keys loaded when first used), bootstraps the owner's
//! ciphertext, and the owner decrypts; the bundle loaded whole gives the same result.

use std::sync::Arc;

use hetune::engine::circuits::bootstrap::{BootstrapConfig, Bootstrapper};
use hetune::engine::evaluator::{Evaluator, KeyRequest};
use hetune::io::keys::{generate_key_dir, load_owner, load_public, BundleStore, RotationSet};
use hetune_core::ckks::{decrypt, encrypt_sk, Complex, Encoder};
use hetune_core::{Parameters, Security};
use hetune_testkit::PrecisionStats;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn server_bootstraps_with_the_public_bundle_only() {
    let dir = std::env::temp_dir().join(format!("hetune-bundle-boot-{}", std::process::id()));
    let params = Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap();
    let cfg = BootstrapConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    // The server's request, as JSON, fulfilled by the owner.
    let mut request = RotationSet::None.key_request(params.log_n() - 1);
    request.merge(&cfg.key_request(params.log_n()));
    let json = serde_json::to_string(&request).unwrap();
    let request: KeyRequest = serde_json::from_str(&json).unwrap();
    generate_key_dir(&dir, &params, &request, &mut rng, &|_, _| {}).unwrap();

    // Server side: the bundle only, its keys left in the file and loaded when first used.
    let store = BundleStore::open(&dir, Security::InsecureForTestingOnly).unwrap();
    let ctx = store.context().clone();
    let ev = Arc::new(Evaluator::with_store(ctx, Arc::new(store)).unwrap());
    assert_eq!(ev.expanded_key_count(), 0);
    let boot = Bootstrapper::new(ev.clone(), cfg).unwrap();

    // Owner side: encrypt; the server bootstraps; the owner decrypts.
    let owner = load_owner(&dir, Security::InsecureForTestingOnly).unwrap();
    let enc = Encoder::new(&owner.ctx);
    let log_slots = params.log_n() - 1;
    let v: Vec<Complex> =
        (0..1usize << log_slots).map(|j| Complex::new((j as f64 * 0.01).sin(), (j as f64 * 0.02).cos())).collect();
    let pt = enc.encode_complex(&v, log_slots, 0, params.scale()).unwrap();
    let ct = encrypt_sk(&owner.ctx, &owner.sk, &pt, &mut rng).unwrap().expand(&owner.ctx);
    let out = boot.bootstrap(&ct).unwrap();
    let got = enc.decode_complex(&decrypt(&owner.ctx, &owner.sk, &out).unwrap()).unwrap();
    let p = PrecisionStats::complex(&got, &v).unwrap();
    assert!(p.min_bits() >= 19.0, "{:.1} bits", p.min_bits());
    let loaded = ev.expanded_key_count();
    assert!(loaded > 0 && loaded < request.count(params.n()));
    ev.release_keys();
    assert_eq!(ev.expanded_key_count(), 0);

    // The same bundle loaded whole: the same keys, the same result.
    let bundle = load_public(&dir, true, Security::InsecureForTestingOnly).unwrap();
    assert_eq!(bundle.eval.galois.len(), request.galois_elements(params.n()).len());
    let ev = Arc::new(Evaluator::new(Arc::new(bundle.ctx), bundle.eval).unwrap());
    let again = Bootstrapper::new(ev, cfg).unwrap().bootstrap(&ct).unwrap();
    assert_eq!(again.c, out.c, "keys from the store and from memory give the same bootstrap");
    std::fs::remove_dir_all(&dir).unwrap();
}
