//! What the wire decoders allocate, measured by the counting global allocator of
//! `common::alloc`: for every record kind the peak stays within `Limits` (and the count the
//! decoder keeps is the allocation itself), nothing large is allocated before the first payload
//! byte, allocation follows the bytes that arrive, and a parameter record cannot make a reader
//! build a huge context. The same allocator scans freed memory for secret coefficients after
//! failed secret-key imports.

mod common;

use common::alloc::{peak_of, FOUND, SCAN};
use common::records::{header_len, records};
use hetune_core::ckks::encoder::encode_coeffs;
use hetune_core::ckks::stream::{stream_encrypt_sk, StreamMode, StreamPlaintext, StreamWork};
use hetune_core::ckks::Complex;
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::wire::*;
use hetune_core::{Error, Parameters, ParametersLiteral, SecretDistribution, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn peak_allocation_is_within_the_limit_for_every_record_kind() {
    let ctx = Context::new(Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let limits = Limits::for_params(ctx.params());
    let n = ctx.n() as u64;
    let recs = records(&ctx, &sk, &mut rng);
    assert_eq!(recs.len(), 14);
    for rec in &recs {
        let (res, peak) = peak_of(|| (rec.decode)(&rec.bytes, &limits));
        res.unwrap_or_else(|e| panic!("{}: {e}", rec.name));
        assert!(peak <= limits.max_bytes, "{}: peak {peak} above the limit {}", rec.name, limits.max_bytes);
        if peak > 0 {
            // The decoder's count is the allocation: the measured peak is exactly enough, one
            // byte less is refused before it is allocated.
            let exact = Limits::new(peak, limits.max_context_bytes);
            (rec.decode)(&rec.bytes, &exact).unwrap_or_else(|e| panic!("{}: {e}", rec.name));
            let short = Limits::new(peak - 1, limits.max_context_bytes);
            let (res, short_peak) = peak_of(|| (rec.decode)(&rec.bytes, &short));
            assert!(matches!(res, Err(Error::LimitExceeded { .. })), "{}: {res:?}", rec.name);
            assert!(short_peak < peak, "{}", rec.name);
        }
        // Nothing large before the first payload byte, and then only as bytes arrive: a stream
        // cut k bytes into the payload costs at most one limb plus three times the residues
        // those k bytes hold, at 8 bytes each (a doubling buffer holds its old and new halves).
        let head = header_len(&rec.bytes);
        for k in [0usize, 1, 33, 300, 4096, 40_000, rec.bytes.len()] {
            let cut = (head + k).min(rec.bytes.len() - 1);
            let (res, peak) = peak_of(|| (rec.decode)(&rec.bytes[..cut], &limits));
            assert!(res.is_err(), "{}: a cut record decoded", rec.name);
            let got = (cut - head) as u64;
            let bound = if got == 0 { 256 } else { 256 + 8 * n + 3 * 8 * (8 * got).div_ceil(40) };
            assert!(peak <= bound, "{}: {peak} bytes allocated after {got} payload bytes (bound {bound})", rec.name);
        }
    }
}

#[test]
fn a_ciphertext_header_of_the_largest_preset_allocates_nothing_large() {
    // n16-boot at level 25: 26 limbs, 13.6 MB once decoded. A 66-byte header (and a few bytes)
    // used to make the reader allocate all of it before it found the stream truncated.
    let ctx = Context::new(Parameters::preset("n16-boot", Security::Require128Bits).unwrap()).unwrap();
    let params = ctx.params();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sk = SecretKey::generate(params, &mut rng);
    let mut msg = vec![0f64; 2 << 3];
    encode_coeffs(3, params.scale(), 8, |j| Complex::new(j as f64 / 8.0, 0.0), &mut msg).unwrap();
    let mut rec = Vec::new();
    let mut work = StreamWork::new(params.n(), StreamMode::SecretKey);
    let spt = StreamPlaintext { coeffs: &msg, log_slots: 3, level: params.max_level(), scale: params.scale() };
    stream_encrypt_sk(params, &sk, &spt, &mut rng, &mut work, &mut rec).unwrap();
    let limits = Limits::for_ciphertexts(params);
    let head = header_len(&rec);
    for k in [0usize, 32, 33, 1000] {
        let (res, peak) = peak_of(|| read_ciphertext(&mut &rec[..head + k], &ctx, &limits));
        assert_eq!(res.unwrap_err(), Error::Truncated);
        let bound = if k <= 32 { 256 } else { 256 + 8 * params.n() as u64 };
        assert!(peak <= bound, "{peak} bytes after {k} payload bytes");
    }
    let (res, peak) = peak_of(|| read_ciphertext(&mut &rec[..], &ctx, &limits));
    res.unwrap();
    assert!(peak <= limits.max_bytes, "{peak} > {}", limits.max_bytes);
}

#[test]
fn a_parameter_record_cannot_make_the_reader_build_a_huge_context() {
    // A self-consistent N = 2^17 set with 48 + 16 primes: a 610-byte record whose context would
    // be 268 MB of NTT tables.
    let log_q = [60u32; 48];
    let lit = ParametersLiteral {
        name: "bomb",
        log_n: 17,
        log_q: &log_q,
        log_p: 61,
        dnum: 3,
        log_scale: 40,
        boot_limbs: 0,
        secret: SecretDistribution::Ternary,
        sigma: 3.2,
    };
    let big = Parameters::new(&lit, Security::InsecureForTestingOnly).unwrap();
    assert!(big.context_bytes() > 250 << 20, "{}", big.context_bytes());
    let mut rec = Vec::new();
    write_parameters(&mut rec, &big).unwrap();
    assert!(rec.len() < 700, "{}", rec.len());
    let (res, peak) =
        peak_of(|| read_parameters(&mut rec.as_slice(), None, Security::InsecureForTestingOnly, &Limits::default()));
    assert!(matches!(res, Err(Error::LimitExceeded { .. })), "{res:?}");
    assert!(peak <= 1024, "{peak}");
    // The caller sets the bound: one that admits it reads it.
    let roomy = Limits::new(1 << 20, big.context_bytes());
    assert_eq!(read_parameters(&mut rec.as_slice(), None, Security::InsecureForTestingOnly, &roomy).unwrap(), big);

    // context_bytes bounds what Context::new really allocates.
    for name in ["test-n12", "test-n12-boot", "n15"] {
        let p = Parameters::preset(name, Security::InsecureForTestingOnly).unwrap();
        let bound = p.context_bytes();
        let (ctx, peak) = peak_of(|| Context::new(p));
        drop(ctx);
        assert!(peak <= bound, "{name}: Context::new allocated {peak}, bound {bound}");
        assert!(peak * 10 >= bound * 9, "{name}: bound {bound} far above {peak}");
    }
}

#[test]
fn failed_secret_key_imports_leave_no_coefficients_in_freed_memory() {
    let params = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let sk = SecretKey::generate(&params, &mut rng);
    let mut rec = Vec::new();
    export_secret_key_owner_copy(&mut rec, &params, &sk).unwrap();
    let limits = Limits::for_params(&params);
    // 24 coefficients from the middle of the key (3^-24 odds of a chance match), as the i8
    // bytes a decoder holds them in.
    let pattern: &'static [u8] = Box::leak(sk.coeffs()[2000..2024].iter().map(|&c| c as u8).collect());
    assert!(pattern.iter().any(|&b| b != 0));
    let scanned = |f: &dyn Fn()| {
        FOUND.with(|c| c.set(0));
        SCAN.with(|s| s.set(Some(pattern)));
        f();
        SCAN.with(|s| s.set(None));
        FOUND.with(|c| c.get())
    };
    // The scanner finds an unwiped copy.
    assert_eq!(scanned(&|| drop(sk.coeffs().to_vec())), 1);
    // A successful import hands the coefficients over and frees nothing that holds them.
    assert_eq!(scanned(&|| drop(import_secret_key_owner_copy(&mut rec.as_slice(), &params, &limits).unwrap())), 0);

    let head = header_len(&rec);
    let mut bad_code = rec.clone();
    bad_code[rec.len() - 5] = 0xff; // code 3 in the last byte: after every coefficient is decoded
    let mut bad_crc = rec.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("cut after the first block", rec[..head + 64].to_vec()),
        ("cut past the pattern", rec[..head + 600].to_vec()),
        ("cut before the CRC", rec[..rec.len() - 4].to_vec()),
        ("invalid code", bad_code),
        ("payload CRC", bad_crc),
    ];
    for (name, bytes) in &cases {
        let found = scanned(&|| {
            assert!(import_secret_key_owner_copy(&mut bytes.as_slice(), &params, &limits).is_err(), "{name}");
        });
        assert_eq!(found, 0, "{name}: secret coefficients left in freed memory");
    }
    // Decoding into a buffer too small for the key fails at the limit, wiping what it held.
    let tight = Limits::new(5000, limits.max_context_bytes);
    assert_eq!(scanned(&|| assert!(import_secret_key_owner_copy(&mut rec.as_slice(), &params, &tight).is_err())), 0);
}
