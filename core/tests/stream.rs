//! The device's streaming encryptor: both modes decrypt with measured precision at every level,
//! the secret-key stream is the in-memory encryptor's ciphertext byte for byte, the public-key
//! stream reads its key from a stored record exactly as from memory, the working memory is the
//! documented number, and a stored public key is checked like any other record.

use hetune_core::ckks::encoder::encode_coeffs;
use hetune_core::ckks::stream::{
    caller_bytes, stream_encrypt_pk, stream_encrypt_sk, stream_public_key, PublicKeyLimbs, StreamMode, StreamPlaintext,
    StreamWork,
};
use hetune_core::ckks::{decrypt, encrypt_pk, encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use hetune_core::wire::*;
use hetune_core::{Error, Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const LOG_SLOTS: u32 = 9;

struct Fixture {
    ctx: Context,
    sk: SecretKey,
    pk: PublicKey,
    values: Vec<Complex>,
    message: Vec<f64>,
}

fn fixture() -> Fixture {
    let ctx = Context::new(Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    let values: Vec<Complex> = (0..1usize << LOG_SLOTS)
        .map(|j| Complex::new(((j * 37 % 101) as f64 / 50.0) - 1.0, ((j * 13 % 29) as f64 / 14.0) - 1.0))
        .collect();
    let mut message = vec![0f64; 2 << LOG_SLOTS];
    encode_coeffs(LOG_SLOTS, ctx.params().scale(), values.len(), |j| values[j], &mut message).unwrap();
    Fixture { ctx, sk, pk, values, message }
}

impl Fixture {
    fn plaintext(&self, level: usize) -> StreamPlaintext<'_> {
        StreamPlaintext { coeffs: &self.message, log_slots: LOG_SLOTS, level, scale: self.ctx.params().scale() }
    }

    /// -log2 of the largest error over every slot, real and imaginary parts.
    fn precision(&self, record: &[u8]) -> f64 {
        let limits = Limits::default();
        let ct = read_ciphertext(&mut &record[..], &self.ctx, &limits).unwrap().into_full(&self.ctx);
        let out = Encoder::new(&self.ctx).decode_complex(&decrypt(&self.ctx, &self.sk, &ct).unwrap()).unwrap();
        let worst =
            out.iter().zip(&self.values).map(|(a, b)| (a.re - b.re).abs().max((a.im - b.im).abs())).fold(0.0, f64::max);
        -worst.log2()
    }
}

#[test]
fn secret_key_stream_decrypts_and_is_the_in_memory_ciphertext() {
    let f = fixture();
    let params = f.ctx.params().clone();
    let mut work = StreamWork::new(params.n(), StreamMode::SecretKey);
    assert_eq!(work.bytes(), StreamWork::bytes_for(params.n(), StreamMode::SecretKey));
    assert_eq!(work.bytes(), 9 * params.n());
    let encoder = Encoder::new(&f.ctx);
    for level in [0, 3, params.max_level()] {
        let mut record = Vec::new();
        let mut rng = ChaCha20Rng::seed_from_u64(level as u64);
        stream_encrypt_sk(&params, &f.sk, &f.plaintext(level), &mut rng, &mut work, &mut record).unwrap();
        assert_eq!(record.len() as u64, seeded_ciphertext_size(&params, level));
        let bits = f.precision(&record);
        assert!(bits >= 28.0, "level {level}: {bits:.1} bits");

        // The same draws through the in-memory encryptor: the same ciphertext exactly.
        let pt = encoder.encode_complex(&f.values, LOG_SLOTS, level, params.scale()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(level as u64);
        let reference = encrypt_sk(&f.ctx, &f.sk, &pt, &mut rng).unwrap();
        let AnyCiphertext::Seeded(mut streamed) =
            read_ciphertext(&mut &record[..], &f.ctx, &Limits::default()).unwrap()
        else {
            panic!("a seeded ciphertext")
        };
        assert!(!streamed.c0_ntt);
        streamed.c0.ntt(&f.ctx.ntt()[..=level]);
        assert_eq!(streamed.seed, reference.seed);
        assert_eq!(streamed.c0, reference.c0, "level {level}");
    }
}

#[test]
fn public_key_stream_decrypts_from_memory_and_from_a_stored_record_alike() {
    let f = fixture();
    let params = f.ctx.params().clone();
    let mut work = StreamWork::new(params.n(), StreamMode::PublicKey);
    assert_eq!(work.bytes(), 17 * params.n());
    let mut stored_bytes = Vec::new();
    write_public_key(&mut stored_bytes, &params, &f.pk).unwrap();
    for level in [0, params.max_level()] {
        let mut from_memory = Vec::new();
        let mut rng = ChaCha20Rng::seed_from_u64(100 + level as u64);
        let mut pk = f.pk.clone();
        stream_encrypt_pk(&params, &mut pk, &f.plaintext(level), &mut rng, &mut work, &mut from_memory).unwrap();
        assert_eq!(from_memory.len() as u64, ciphertext_size(&params, level));
        let bits = f.precision(&from_memory);
        // The division by one special prime leaves a rounding term times the secret: about 2
        // bits above the secret-key error at N = 2^12.
        assert!(bits >= 26.0, "level {level}: {bits:.1} bits");

        let mut stored = StoredPublicKey::open(stored_bytes.as_slice(), &params, &Limits::default()).unwrap();
        assert_eq!(stored.record_len(), stored_bytes.len() as u64);
        let mut from_storage = Vec::new();
        let mut rng = ChaCha20Rng::seed_from_u64(100 + level as u64);
        stream_encrypt_pk(&params, &mut stored, &f.plaintext(level), &mut rng, &mut work, &mut from_storage).unwrap();
        assert_eq!(from_memory, from_storage, "level {level}");
    }
    // As precise as the in-memory encryptor (which divides by p_0 too, over the whole polynomial).
    let pt = Encoder::new(&f.ctx).encode_complex(&f.values, LOG_SLOTS, 2, params.scale()).unwrap();
    let ct = encrypt_pk(&f.ctx, &f.pk, &pt, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
    let mut host = Vec::new();
    write_ciphertext(&mut host, &params, &ct).unwrap();
    let mut device = Vec::new();
    let mut pk = f.pk.clone();
    stream_encrypt_pk(&params, &mut pk, &f.plaintext(2), &mut ChaCha20Rng::seed_from_u64(3), &mut work, &mut device)
        .unwrap();
    let (h, d) = (f.precision(&host), f.precision(&device));
    assert!(d >= h - 1.5, "device {d:.1} bits, host {h:.1} bits");
}

#[test]
fn the_streamed_public_key_works_and_modes_check_their_memory() {
    let f = fixture();
    let params = f.ctx.params().clone();
    let mut work = StreamWork::new(params.n(), StreamMode::SecretKey);
    let mut record = Vec::new();
    stream_public_key(&params, &f.sk, &mut ChaCha20Rng::seed_from_u64(4), &mut work, &mut record).unwrap();
    let pk = read_public_key(&mut record.as_slice(), &f.ctx, &Limits::default()).unwrap();
    let mut pk_work = StreamWork::new(params.n(), StreamMode::PublicKey);
    let mut out = Vec::new();
    let mut pk_mut = pk.clone();
    stream_encrypt_pk(
        &params,
        &mut pk_mut,
        &f.plaintext(1),
        &mut ChaCha20Rng::seed_from_u64(5),
        &mut pk_work,
        &mut out,
    )
    .unwrap();
    assert!(f.precision(&out) >= 26.0);

    // Secret-key working memory cannot serve the public-key mode; the message must be compact.
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut pk_mut = pk.clone();
    assert!(matches!(
        stream_encrypt_pk(&params, &mut pk_mut, &f.plaintext(1), &mut rng, &mut work, &mut Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
    let long = vec![0f64; params.n()];
    let bad = StreamPlaintext { coeffs: &long, ..f.plaintext(1) };
    assert!(matches!(
        stream_encrypt_sk(&params, &f.sk, &bad, &mut rng, &mut work, &mut Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(caller_bytes(params.n(), StreamMode::SecretKey, LOG_SLOTS), 16 * 512 + params.n());
    assert_eq!(caller_bytes(params.n(), StreamMode::PublicKey, LOG_SLOTS), 16 * 512);
}

/// Recomputes the payload CRC of a record that starts at 0 and has a 2-byte extension.
fn fix_payload_crc(record: &mut [u8]) {
    let payload = 50 + 2 + 4;
    let end = record.len() - 4;
    let crc = crc32fast::hash(&record[payload..end]);
    record[end..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_stored_public_key_is_checked_like_any_record() {
    let f = fixture();
    let params = f.ctx.params().clone();
    let limits = Limits::default();
    let mut bytes = Vec::new();
    write_public_key(&mut bytes, &params, &f.pk).unwrap();
    let open = |b: &[u8]| StoredPublicKey::open(b, &params, &limits).map(|_| ());
    assert_eq!(open(&bytes), Ok(()));

    // Every limb reads back as the key holds it.
    let mut stored = StoredPublicKey::open(bytes.as_slice(), &params, &limits).unwrap();
    assert_eq!(stored.seed(), f.pk.seed);
    for i in [0, params.q().len(), params.q().len() + params.p().len() - 1] {
        let mut limb = vec![0u64; params.n()];
        stored.for_each_b(i, |t, v| limb[t] = v).unwrap();
        assert_eq!(limb, f.pk.b.limb(i));
    }
    assert!(matches!(stored.for_each_b(99, |_, _| ()), Err(Error::InvalidArgument(_))));

    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 4;
    assert_eq!(open(&bad), Err(Error::ChecksumMismatch));
    assert_eq!(open(&bytes[..bytes.len() - 10]), Err(Error::Truncated));
    let other = Parameters::preset("test-n12-deep", Security::InsecureForTestingOnly).unwrap();
    assert_eq!(StoredPublicKey::open(bytes.as_slice(), &other, &limits).map(|_| ()), Err(Error::FingerprintMismatch));
    assert!(matches!(
        StoredPublicKey::open(bytes.as_slice(), &params, &Limits::new(1000, 1000)).map(|_| ()),
        Err(Error::LimitExceeded { .. })
    ));

    // b in coefficient form: the device could not transform it in its memory.
    let mut coeff_form = Vec::new();
    let mut work = StreamWork::new(params.n(), StreamMode::SecretKey);
    stream_public_key(&params, &f.sk, &mut ChaCha20Rng::seed_from_u64(8), &mut work, &mut coeff_form).unwrap();
    assert!(matches!(open(&coeff_form), Err(Error::InvalidArgument(_))));

    // A residue at its prime's value with a consistent CRC: the record opens, reading the limb
    // fails with the typed error. Limb 0 starts after the header (56 bytes) and the seed.
    let bits = params.limb_bits(0) as usize;
    let mut bad = bytes.clone();
    let start = 56 + 32;
    let q0 = params.q()[0];
    for b in 0..bits {
        let bit = (q0 >> b) & 1;
        let at = start + b / 8;
        bad[at] = (bad[at] & !(1 << (b % 8))) | ((bit as u8) << (b % 8));
    }
    fix_payload_crc(&mut bad);
    let mut stored = StoredPublicKey::open(bad.as_slice(), &params, &limits).unwrap();
    assert_eq!(stored.for_each_b(0, |_, _| ()), Err(Error::ResidueOutOfRange { limb: 0 }));
    assert_eq!(stored.for_each_b(1, |_, _| ()), Ok(()));
}

/// Bit packing of limbs (the device's hot path, done in 32-bit words): every width from 2 to 62
/// bits and lengths that do and do not fill whole words round-trip, and a cut limb is an error.
#[test]
fn limbs_pack_and_unpack_at_every_width() {
    use hetune_core::ring::Modulus;
    use hetune_core::ObjectKind;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for bits in 2..=62u32 {
        // A modulus of exactly `bits` bits (odd, not necessarily prime: packing only needs q).
        let q = Modulus::new((1u64 << (bits - 1)) | 1 | ((s >> 7) & ((1u64 << (bits - 1)) - 1)));
        for n in [8usize, 24, 1000] {
            let limb: Vec<u64> = (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (s >> 3) % q.value()
                })
                .collect();
            let len = (n as u64 * bits as u64).div_ceil(8);
            let mut buf = Vec::new();
            let mut w = RecordWriter::begin(&mut buf, ObjectKind::Plaintext, &[1; 32], len, &[]).unwrap();
            w.limb(&limb, bits).unwrap();
            w.finish().unwrap();
            assert_eq!(buf.len() as u64, 58 + len, "{bits} bits, n = {n}");
            let mut src = buf.as_slice();
            let (mut r, _) = RecordReader::begin(&mut src, &[ObjectKind::Plaintext], None, &Limits::default()).unwrap();
            let mut back = vec![0u64; n];
            r.limb(&mut back, &q, 0).unwrap();
            r.finish().unwrap();
            assert_eq!(back, limb, "{bits} bits, n = {n}");
            // One residue more than the payload holds.
            let mut src = buf.as_slice();
            let (mut r, _) = RecordReader::begin(&mut src, &[ObjectKind::Plaintext], None, &Limits::default()).unwrap();
            let mut longer = vec![0u64; n + 8];
            assert!(r.limb(&mut longer, &q, 0).is_err(), "{bits} bits, n = {n}");
        }
    }
}
