//! One record of every kind the wire format has, with its reader, for the allocation, mutation
//! and fuzz tests.

use hetune_core::ckks::encoder::encode_coeffs;
use hetune_core::ckks::stream::{stream_encrypt_sk, stream_public_key, StreamMode, StreamPlaintext, StreamWork};
use hetune_core::ckks::{encrypt_pk, encrypt_sk, Complex, Encoder};
use hetune_core::ring::automorphism::galois_element_for_step;
use hetune_core::rlwe::encapsulation::ENCAPSULATION_WEIGHT;
use hetune_core::rlwe::sampling::sparse_ternary;
use hetune_core::rlwe::{Context, EncapsulationKey, PublicKey, SecretKey, SwitchingKey, SwitchingKind};
use hetune_core::wire::*;
use hetune_core::{Error, Parameters, ParametersLiteral, SecretDistribution, Security};
use rand_chacha::ChaCha20Rng;

/// A small insecure set (N = 2^10, three levels, two digits) whose records decode fast: what the
/// mutation test and the fuzz targets work on.
pub fn small_params() -> Parameters {
    let lit = ParametersLiteral {
        name: "fuzz-n10",
        log_n: 10,
        log_q: &[60, 40, 40, 40],
        log_p: 61,
        dnum: 2,
        log_scale: 40,
        boot_limbs: 0,
        secret: SecretDistribution::Ternary,
        sigma: 3.2,
    };
    Parameters::new(&lit, Security::InsecureForTestingOnly).expect("a valid literal")
}

/// A record reader over bytes.
pub type Decode<'a> = Box<dyn Fn(&[u8], &Limits) -> Result<(), Error> + 'a>;

/// A record and its reader.
pub struct Record<'a> {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub decode: Decode<'a>,
}

/// Bytes of the fixed header, extension and header CRC.
pub fn header_len(rec: &[u8]) -> usize {
    54 + u16::from_le_bytes([rec[48], rec[49]]) as usize
}

/// One record of every kind the wire format has, with its reader.
pub fn records<'a>(ctx: &'a Context, sk: &SecretKey, rng: &mut ChaCha20Rng) -> Vec<Record<'a>> {
    let params = ctx.params();
    let pk = PublicKey::generate(ctx, sk, rng);
    let enc = Encoder::new(ctx);
    let vals: Vec<f64> = (0..64).map(|j| (j as f64 / 32.0) - 1.0).collect();
    let pt = enc.encode_real(&vals, 6, params.max_level(), params.scale()).unwrap();
    let mut out = Vec::new();
    let mut add = |name, bytes: Vec<u8>, decode: Decode<'a>| out.push(Record { name, bytes, decode });

    let mut b = Vec::new();
    write_parameters(&mut b, params).unwrap();
    add(
        "parameters",
        b,
        Box::new(|s, l| read_parameters(&mut &s[..], None, Security::InsecureForTestingOnly, l).map(drop)),
    );
    let mut b = Vec::new();
    write_public_key(&mut b, params, &pk).unwrap();
    add("public key", b, Box::new(move |s, l| read_public_key(&mut &s[..], ctx, l).map(drop)));
    let mut b = Vec::new();
    stream_public_key(params, sk, rng, &mut StreamWork::new(params.n(), StreamMode::SecretKey), &mut b).unwrap();
    add("public key, coefficient form", b, Box::new(move |s, l| read_public_key(&mut &s[..], ctx, l).map(drop)));
    let other = SecretKey::generate(params, rng);
    let s_ntt_other = other.to_ntt(ctx, ctx.qp().len());
    for (name, key) in [
        ("relinearisation key", SwitchingKey::relinearization(ctx, sk, rng)),
        ("galois key", SwitchingKey::galois(ctx, sk, galois_element_for_step(1, ctx.n()), rng)),
        (
            "decapsulation key",
            SwitchingKey::generate(ctx, sk, &s_ntt_other, SwitchingKind::Encapsulation { to_sparse: false }, rng),
        ),
    ] {
        let mut b = Vec::new();
        write_switching_key(&mut b, params, &key).unwrap();
        add(name, b, Box::new(move |s, l| read_switching_key(&mut &s[..], ctx, l).map(drop)));
    }
    let mut sparse = vec![0i8; params.n()];
    sparse_ternary(rng, ENCAPSULATION_WEIGHT, &mut sparse);
    let key = EncapsulationKey::generate(ctx, sk, &SecretKey::from_coeffs(sparse), rng).unwrap();
    let mut b = Vec::new();
    write_encapsulation_key(&mut b, params, &key).unwrap();
    add("encapsulation key", b, Box::new(move |s, l| read_encapsulation_key(&mut &s[..], ctx, l).map(drop)));
    let read_ct: fn(&[u8], &Context, &Limits) -> Result<(), Error> =
        |s, ctx, l| read_ciphertext(&mut &s[..], ctx, l).map(drop);
    let mut b = Vec::new();
    write_ciphertext(&mut b, params, &encrypt_pk(ctx, &pk, &pt, rng).unwrap()).unwrap();
    add("ciphertext", b, Box::new(move |s, l| read_ct(s, ctx, l)));
    let mut b = Vec::new();
    write_seeded_ciphertext(&mut b, params, &encrypt_sk(ctx, sk, &pt, rng).unwrap()).unwrap();
    add("seeded ciphertext", b, Box::new(move |s, l| read_ct(s, ctx, l)));
    let mut msg = vec![0f64; 2 << 6];
    encode_coeffs(6, params.scale(), 64, |j| Complex::new(vals[j], 0.0), &mut msg).unwrap();
    let mut b = Vec::new();
    let mut work = StreamWork::new(params.n(), StreamMode::SecretKey);
    let spt = StreamPlaintext { coeffs: &msg, log_slots: 6, level: params.max_level(), scale: params.scale() };
    stream_encrypt_sk(params, sk, &spt, rng, &mut work, &mut b).unwrap();
    add("seeded ciphertext, coefficient form", b, Box::new(move |s, l| read_ct(s, ctx, l)));
    let mut b = Vec::new();
    write_plaintext(&mut b, params, &pt).unwrap();
    add("plaintext", b, Box::new(move |s, l| read_plaintext(&mut &s[..], ctx, l).map(drop)));
    let mut b = Vec::new();
    export_secret_key_owner_copy(&mut b, params, sk).unwrap();
    add("secret key", b, Box::new(move |s, l| import_secret_key_owner_copy(&mut &s[..], params, l).map(drop)));
    let t = TensorHeader {
        rows: 3,
        cols: 5,
        layout: TensorLayout::RowMajorChunks,
        block_rows: 0,
        block_cols: 0,
        count: 1,
        dtype: 0,
    };
    let mut b = Vec::new();
    write_tensor_header(&mut b, params, &t).unwrap();
    add("tensor header", b, Box::new(move |s, l| read_tensor_header(&mut &s[..], ctx, l).map(drop)));
    let t = TensorHeader { layout: TensorLayout::Blocks, block_rows: 32, block_cols: 16, count: 2, ..t };
    let mut b = Vec::new();
    write_block_tensor_header(&mut b, params, &t, &BlockLayout { pad_c: 8, tiling: 2, level: 2 }).unwrap();
    add(
        "tensor header with a block layout",
        b,
        Box::new(move |s, l| read_tensor_header_with_layout(&mut &s[..], ctx, l).map(drop)),
    );
    out
}
