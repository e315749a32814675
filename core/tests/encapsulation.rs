//! The bootstrapping encapsulation key to the sparse secret: generated over `q_0 p_0` only, read
//! back exactly, and refused over any larger modulus or with another Hamming weight.

use hetune_core::rlwe::encapsulation::{encapsulation_moduli, EncapsulationKey, ENCAPSULATION_WEIGHT};
use hetune_core::rlwe::sampling::sparse_ternary;
use hetune_core::rlwe::{Context, SecretKey, SwitchingKey, SwitchingKind};
use hetune_core::wire::*;
use hetune_core::{Error, ObjectKind, Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn setup(weight: usize) -> (Context, SecretKey, SecretKey, ChaCha20Rng) {
    let ctx = Context::new(Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let mut sparse = vec![0i8; ctx.n()];
    sparse_ternary(&mut rng, weight, &mut sparse);
    (ctx, sk, SecretKey::from_coeffs(sparse), rng)
}

#[test]
fn the_key_lives_on_q0_and_one_special_prime() {
    let (ctx, sk, sparse, mut rng) = setup(ENCAPSULATION_WEIGHT);
    let key = EncapsulationKey::generate(&ctx, &sk, &sparse, &mut rng).unwrap();
    assert_eq!(key.b.limbs(), 2);
    assert_eq!(encapsulation_moduli(&ctx), [0, ctx.q_len()]);
    let bits = EncapsulationKey::log2_modulus(&ctx);
    // q_0 (60 bits) and p_0 (61 bits) at the n16-boot chain and its n12 twin.
    assert!((120.0..122.0).contains(&bits), "log2(q_0 p_0) = {bits}");

    // b + a s' = e + p_0 s modulo q_0 and e modulo p_0: check modulo p_0, where it is small.
    let ip = ctx.q_len();
    let (p, t) = (&ctx.qp()[ip], &ctx.ntt()[ip]);
    let mut a = vec![0u64; ctx.n()];
    key.a_limb(&ctx, 1, &mut a);
    let mut s = vec![0u64; ctx.n()];
    sparse.ntt_limb(t, &mut s);
    let mut e: Vec<u64> =
        key.b.limb(1).iter().zip(a.iter().zip(&s)).map(|(&b, (&a, &s))| p.add(b, p.mul(a, s))).collect();
    t.inverse(&mut e);
    let max = e.iter().map(|&v| p.center(v).unsigned_abs()).max().unwrap();
    assert!(max <= 41, "error coefficient {max}");

    let mut bytes = Vec::new();
    write_encapsulation_key(&mut bytes, ctx.params(), &key).unwrap();
    let back = read_encapsulation_key(&mut &bytes[..], &ctx, &Limits::default()).unwrap();
    assert_eq!(back, key);
    match read_object(&mut &bytes[..], &ctx, &Limits::default()).unwrap() {
        WireObject::EncapsulationKey(k) => assert_eq!(k, key),
        other => panic!("read as {other:?}"),
    }
}

#[test]
fn other_weights_are_refused() {
    for weight in [0, 4, 31, 64] {
        let (ctx, sk, sparse, mut rng) = setup(weight);
        assert!(EncapsulationKey::generate(&ctx, &sk, &sparse, &mut rng).is_err(), "weight {weight}");
    }
}

#[test]
fn a_key_to_the_sparse_secret_over_the_whole_modulus_is_refused() {
    let (ctx, sk, sparse, mut rng) = setup(ENCAPSULATION_WEIGHT);
    let params = ctx.params();
    // The old, insecure shape: a full hybrid key (dnum digits over Q ∪ P) under the sparse secret.
    let dense = sk.to_ntt(&ctx, ctx.qp().len());
    let full =
        SwitchingKey::generate(&ctx, &sparse, &dense, SwitchingKind::Encapsulation { to_sparse: true }, &mut rng);
    assert!(write_switching_key(&mut Vec::new(), params, &full).is_err());

    // A record with that shape, framed by hand: every reader refuses it from the header alone.
    let mut ext = [0u8; 12];
    ext[0] = 1;
    ext[8] = params.dnum() as u8;
    ext[9] = params.q().len() as u8;
    ext[10] = params.p().len() as u8;
    for (dnum, q_len, p_len) in [(params.dnum(), params.q().len(), params.p().len()), (1, 1, 2), (1, 2, 1)] {
        ext[8] = dnum as u8;
        ext[9] = q_len as u8;
        ext[10] = p_len as u8;
        let mut bytes = Vec::new();
        let mut w =
            RecordWriter::begin(&mut bytes, ObjectKind::EncapsulationKey, &params.fingerprint(), 32, &ext).unwrap();
        w.bytes(&[7u8; 32]).unwrap();
        w.finish().unwrap();
        let insecure = |e: Error| matches!(e, Error::Malformed(m) if m.contains("insecure"));
        assert!(insecure(read_object(&mut &bytes[..], &ctx, &Limits::default()).unwrap_err()));
        assert!(insecure(read_encapsulation_key(&mut &bytes[..], &ctx, &Limits::default()).unwrap_err()));
        assert!(insecure(read_switching_key(&mut &bytes[..], &ctx, &Limits::default()).unwrap_err()));
    }
}
