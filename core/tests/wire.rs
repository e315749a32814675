//! Wire format v1: a round trip for every object kind, one rejection test per failure class,
//! a corpus of truncated and bit-flipped records, and record sizes (streaming encryption: stream.rs).

use hetune_core::ckks::{decrypt, encrypt_pk, encrypt_sk, Encoder};
use hetune_core::ring::automorphism::galois_element_for_step;
use hetune_core::rlwe::{Context, PublicKey, SecretKey, SwitchingKey, SwitchingKind};
use hetune_core::wire::*;
use hetune_core::{Error, ObjectKind, Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Fixture {
    ctx: Context,
    sk: SecretKey,
    pk: PublicKey,
    rng: ChaCha20Rng,
}

fn fixture() -> Fixture {
    let ctx = Context::new(Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    Fixture { ctx, sk, pk, rng }
}

fn values(n: usize) -> Vec<f64> {
    (0..n).map(|j| ((j * 37 % 101) as f64 / 50.0) - 1.0).collect()
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn seeded_record(f: &mut Fixture) -> Vec<u8> {
    let enc = Encoder::new(&f.ctx);
    let pt = enc.encode_real(&values(64), 6, 2, f.ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&f.ctx, &f.sk, &pt, &mut f.rng).unwrap();
    let mut buf = Vec::new();
    write_seeded_ciphertext(&mut buf, f.ctx.params(), &ct).unwrap();
    buf
}

#[test]
fn every_object_kind_round_trips() {
    let mut f = fixture();
    let params = f.ctx.params().clone();
    let limits = Limits::default();

    // Parameters.
    let mut buf = Vec::new();
    write_parameters(&mut buf, &params).unwrap();
    let back = read_parameters(&mut buf.as_slice(), None, Security::InsecureForTestingOnly, &limits).unwrap();
    assert_eq!(back, params);
    assert!(matches!(
        read_parameters(&mut buf.as_slice(), None, Security::Require128Bits, &limits),
        Err(Error::Insecure { .. })
    ));

    // Public key.
    buf.clear();
    write_public_key(&mut buf, &params, &f.pk).unwrap();
    assert_eq!(read_public_key(&mut buf.as_slice(), &f.ctx, &limits).unwrap(), f.pk);

    // Relinearisation and Galois keys.
    let rlk = SwitchingKey::relinearization(&f.ctx, &f.sk, &mut f.rng);
    let gk = SwitchingKey::galois(&f.ctx, &f.sk, galois_element_for_step(3, f.ctx.n()), &mut f.rng);
    let s_ntt = f.sk.to_ntt(&f.ctx, f.ctx.qp().len());
    let other = SecretKey::generate(f.ctx.params(), &mut f.rng);
    let ek =
        SwitchingKey::generate(&f.ctx, &other, &s_ntt, SwitchingKind::Encapsulation { to_sparse: true }, &mut f.rng);
    for key in [&rlk, &gk, &ek] {
        buf.clear();
        write_switching_key(&mut buf, &params, key).unwrap();
        assert_eq!(&read_switching_key(&mut buf.as_slice(), &f.ctx, &limits).unwrap(), key);
    }

    // Plaintext, seeded and full ciphertexts.
    let enc = Encoder::new(&f.ctx);
    let vals = values(128);
    let pt = enc.encode_real(&vals, 7, 3, params.scale()).unwrap();
    buf.clear();
    write_plaintext(&mut buf, &params, &pt).unwrap();
    assert_eq!(read_plaintext(&mut buf.as_slice(), &f.ctx, &limits).unwrap(), pt);

    let seeded = encrypt_sk(&f.ctx, &f.sk, &pt, &mut f.rng).unwrap();
    buf.clear();
    write_seeded_ciphertext(&mut buf, &params, &seeded).unwrap();
    let back = read_ciphertext(&mut buf.as_slice(), &f.ctx, &limits).unwrap();
    assert_eq!(back, AnyCiphertext::Seeded(seeded.clone()));
    let full = seeded.expand(&f.ctx);
    let pkct = encrypt_pk(&f.ctx, &f.pk, &pt, &mut f.rng).unwrap();
    for ct in [&full, &pkct] {
        buf.clear();
        write_ciphertext(&mut buf, &params, ct).unwrap();
        let back = read_ciphertext(&mut buf.as_slice(), &f.ctx, &limits).unwrap().into_full(&f.ctx);
        assert_eq!(&back, ct);
        let out = enc.decode_real(&decrypt(&f.ctx, &f.sk, &back).unwrap()).unwrap();
        assert!(max_err(&out, &vals) < 1e-6);
    }
    // Seeded and unseeded forms decrypt alike.
    let a = enc.decode_real(&decrypt(&f.ctx, &f.sk, &full).unwrap()).unwrap();
    let b = enc.decode_real(&decrypt(&f.ctx, &f.sk, &back.into_full(&f.ctx)).unwrap()).unwrap();
    assert!(max_err(&a, &b) < 1e-6);

    // Secret key (owner copy).
    buf.clear();
    export_secret_key_owner_copy(&mut buf, &params, &f.sk).unwrap();
    let sk2 = import_secret_key_owner_copy(&mut buf.as_slice(), &params, &limits).unwrap();
    assert_eq!(sk2.coeffs(), f.sk.coeffs());
    // ... and no server-side reader accepts it.
    assert!(matches!(read_ciphertext(&mut buf.as_slice(), &f.ctx, &limits), Err(Error::WrongKind { found: 8, .. })));
    assert!(matches!(read_public_key(&mut buf.as_slice(), &f.ctx, &limits), Err(Error::WrongKind { .. })));

    // Tensor header.
    let t = TensorHeader {
        rows: 1000,
        cols: 16,
        layout: TensorLayout::RowMajorChunks,
        block_rows: 0,
        block_cols: 0,
        count: 8,
        dtype: 1,
    };
    buf.clear();
    write_tensor_header(&mut buf, &params, &t).unwrap();
    assert_eq!(read_tensor_header(&mut buf.as_slice(), &f.ctx, &limits).unwrap(), t);
}

fn read(buf: &[u8], f: &Fixture, limits: &Limits) -> Result<AnyCiphertext, Error> {
    read_ciphertext(&mut &buf[..], &f.ctx, limits)
}

/// Rewrites the header CRC after a deliberate header edit, so the edit itself is what is tested.
fn fix_header_crc(buf: &mut [u8]) {
    let ext = u16::from_le_bytes([buf[48], buf[49]]) as usize;
    let end = 50 + ext;
    let crc = crc32(&buf[..end]);
    buf[end..end + 4].copy_from_slice(&crc.to_le_bytes());
}

fn fix_payload_crc(buf: &mut [u8]) {
    let ext = u16::from_le_bytes([buf[48], buf[49]]) as usize;
    let start = 50 + ext + 4;
    let end = buf.len() - 4;
    let crc = crc32(&buf[start..end]);
    buf[end..].copy_from_slice(&crc.to_le_bytes());
}

fn crc32(b: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), independent of the implementation under test.
    let mut c = 0xffff_ffffu32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn each_failure_class_has_its_typed_error() {
    let mut f = fixture();
    let good = seeded_record(&mut f);
    let limits = Limits::default();
    assert!(read(&good, &f, &limits).is_ok());

    let mut b = good.clone();
    b[0] ^= 0xff;
    assert_eq!(read(&b, &f, &limits).unwrap_err(), Error::BadMagic);

    let mut b = good.clone();
    b[4] = 2;
    fix_header_crc(&mut b);
    assert_eq!(read(&b, &f, &limits).unwrap_err(), Error::UnsupportedVersion(2));

    let mut pkbuf = Vec::new();
    write_public_key(&mut pkbuf, f.ctx.params(), &f.pk).unwrap();
    assert_eq!(
        read(&pkbuf, &f, &limits).unwrap_err(),
        Error::WrongKind { expected: ObjectKind::Ciphertext as u16, found: ObjectKind::PublicKey as u16 }
    );

    let other = Context::new(Parameters::preset("n15", Security::Require128Bits).unwrap()).unwrap();
    assert_eq!(read_ciphertext(&mut &good[..], &other, &limits).unwrap_err(), Error::FingerprintMismatch);

    assert_eq!(read(&good[..good.len() - 1], &f, &limits).unwrap_err(), Error::Truncated);
    assert_eq!(read(&good[..30], &f, &limits).unwrap_err(), Error::Truncated);

    // A residue equal to its modulus: set the first packed residue of limb 0 to q_0 exactly.
    let mut b = good.clone();
    let payload = 50 + 12 + 4 + 32;
    let q0 = f.ctx.params().q()[0];
    let bits = f.ctx.params().limb_bits(0);
    let mut word = u128::from_le_bytes({
        let mut w = [0u8; 16];
        w.copy_from_slice(&b[payload..payload + 16]);
        w
    });
    word = (word & !((1u128 << bits) - 1)) | q0 as u128;
    b[payload..payload + 16].copy_from_slice(&word.to_le_bytes());
    fix_payload_crc(&mut b);
    assert_eq!(read(&b, &f, &limits).unwrap_err(), Error::ResidueOutOfRange { limb: 0 });

    let small = Limits::new(1000, 1 << 30);
    assert!(matches!(read(&good, &f, &small).unwrap_err(), Error::LimitExceeded { limit: 1000, .. }));

    let mut b = good.clone();
    let last = b.len() - 10;
    b[last] ^= 0x10;
    assert_eq!(read(&b, &f, &limits).unwrap_err(), Error::ChecksumMismatch);
    let mut b = good.clone();
    b[45] ^= 1; // payload length byte inside the CRC-protected header
    assert_eq!(read(&b, &f, &limits).unwrap_err(), Error::ChecksumMismatch);

    // A header that lies about its payload length (with a valid CRC) is malformed, not a panic.
    let mut b = good.clone();
    b[40] = b[40].wrapping_add(8);
    fix_header_crc(&mut b);
    assert!(matches!(read(&b, &f, &limits).unwrap_err(), Error::Malformed(_)));
}

#[test]
fn truncated_and_bit_flipped_corpus_is_rejected_without_panic() {
    let mut f = fixture();
    let good = seeded_record(&mut f);
    let limits = Limits::default();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    use rand_core::RngCore;
    for cut in (0..good.len()).step_by(97).chain(good.len() - 8..good.len()) {
        assert!(read(&good[..cut], &f, &limits).is_err(), "prefix {cut}");
    }
    for _ in 0..400 {
        let mut b = good.clone();
        let pos = (rng.next_u64() % b.len() as u64) as usize;
        b[pos] ^= 1 << (rng.next_u32() % 8);
        assert!(read(&b, &f, &limits).is_err(), "flip at {pos}");
    }
    for key_kind in 0..2 {
        let mut buf = Vec::new();
        if key_kind == 0 {
            write_public_key(&mut buf, f.ctx.params(), &f.pk).unwrap();
        } else {
            write_parameters(&mut buf, f.ctx.params()).unwrap();
        }
        for _ in 0..100 {
            let mut b = buf.clone();
            let pos = (rng.next_u64() % b.len() as u64) as usize;
            b[pos] ^= 1 << (rng.next_u32() % 8);
            let r = if key_kind == 0 {
                read_public_key(&mut b.as_slice(), &f.ctx, &limits).map(|_| ())
            } else {
                read_parameters(&mut b.as_slice(), None, Security::InsecureForTestingOnly, &limits).map(|_| ())
            };
            assert!(r.is_err(), "flip at {pos}");
        }
    }
}
