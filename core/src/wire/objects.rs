//! Every object of the system in wire format v1: parameters, public key, relinearisation and
//! Galois keys, ciphertexts (full and seeded), plaintexts, the encrypted-tensor header, and the
//! owner's secret-key export.

use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::record::{
    grow_wiping, growth_peak, next_capacity, packed_limb_len, Header, Limits, RecordReader, RecordWriter, Sink, Source,
};
use crate::ckks::{Ciphertext, Plaintext, SeededCiphertext};
use crate::ring::{Modulus, RnsPoly};
use crate::rlwe::encapsulation::encapsulation_moduli;
use crate::rlwe::{Context, EncapsulationKey, PublicKey, SecretKey, SwitchingKey, SwitchingKind};
use crate::{Error, ObjectKind, Parameters, SecretDistribution, Security};

fn limbs_len(params: &Parameters, limb_indices: core::ops::Range<usize>) -> u64 {
    limb_indices.map(|i| packed_limb_len(params.n(), params.limb_bits(i))).sum()
}

fn modulus_of(params: &Parameters, i: usize) -> Modulus {
    let q = params.q();
    Modulus::new(if i < q.len() { q[i] } else { params.p()[i - q.len()] })
}

/// Header extension shared by ciphertexts, seeded ciphertexts and plaintexts:
/// level, polynomial count, log_slots, NTT flags (bit k: polynomial k in evaluation form), scale.
fn ct_ext(level: usize, polys: usize, log_slots: u32, ntt_flags: u8, scale: f64) -> [u8; 12] {
    let mut e = [0u8; 12];
    e[0] = level as u8;
    e[1] = polys as u8;
    e[2] = log_slots as u8;
    e[3] = ntt_flags;
    e[4..12].copy_from_slice(&scale.to_bits().to_le_bytes());
    e
}

struct CtExt {
    level: usize,
    polys: usize,
    log_slots: u32,
    ntt_flags: u8,
    scale: f64,
}

fn parse_ct_ext(ext: &[u8], params: &Parameters, max_polys: usize) -> Result<CtExt, Error> {
    if ext.len() != 12 {
        return Err(Error::Malformed("header extension length"));
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&ext[4..12]);
    let c = CtExt {
        level: ext[0] as usize,
        polys: ext[1] as usize,
        log_slots: ext[2] as u32,
        ntt_flags: ext[3],
        scale: f64::from_bits(u64::from_le_bytes(s)),
    };
    if c.level > params.max_level() {
        return Err(Error::Malformed("level above the parameter set's top"));
    }
    if c.polys == 0 || c.polys > max_polys {
        return Err(Error::Malformed("polynomial count"));
    }
    if c.log_slots >= params.log_n() {
        return Err(Error::Malformed("slot count"));
    }
    if c.ntt_flags >> c.polys != 0 {
        return Err(Error::Malformed("unknown flag bits"));
    }
    if !(c.scale.is_finite() && c.scale >= 1.0) {
        return Err(Error::Malformed("scale"));
    }
    Ok(c)
}

/// Reads a polynomial limb by limb, its buffer grown as the limbs arrive.
fn read_poly<S: Source>(
    r: &mut RecordReader<'_, S>,
    params: &Parameters,
    limbs: core::ops::Range<usize>,
) -> Result<RnsPoly, Error> {
    let n = params.n();
    let total = limbs.len() * n;
    let mut data = Vec::new();
    for i in limbs {
        r.limb_into(&mut data, n, total, &modulus_of(params, i), i)?;
    }
    Ok(RnsPoly::from_vec(n, data))
}

/// Charges and allocates room for `count` polynomials (the small vector that holds them).
fn poly_vec<S: Source>(r: &mut RecordReader<'_, S>, count: usize) -> Result<Vec<RnsPoly>, Error> {
    r.charge((count * core::mem::size_of::<RnsPoly>()) as u64)?;
    Ok(Vec::with_capacity(count))
}

/// Peak bytes a decoder holds for `polys` polynomials of `limbs` limbs (all but the last held
/// whole while the last grows), plus the vector of `polys` when it is one.
fn polys_need(params: &Parameters, limbs: usize, polys: usize, in_vec: bool) -> u64 {
    let n = params.n();
    let whole = (limbs * n * 8) as u64;
    let vec = if in_vec { (polys * core::mem::size_of::<RnsPoly>()) as u64 } else { 0 };
    vec + (polys as u64 - 1) * whole + growth_peak(limbs * n, n, 8)
}

/// Coefficients per growth step of the secret-key decoder (256 packed bytes).
const SECRET_STEP: usize = 1024;

impl Limits {
    /// Limits that admit every record kind of `params` (the largest is a switching key) and
    /// its context, and nothing larger: what a reader of a key bundle needs.
    pub fn for_params(params: &Parameters) -> Self {
        let qp = params.q().len() + params.p().len();
        let top = params.max_level() + 1;
        let need = [
            polys_need(params, qp, params.dnum(), true),
            polys_need(params, qp, 1, false),
            polys_need(params, top, 3, true),
            growth_peak(params.n(), SECRET_STEP.min(params.n()), 1),
        ];
        Limits::new(need.into_iter().max().unwrap_or(0), params.context_bytes())
    }

    /// Limits that admit any ciphertext, plaintext or tensor header of `params` at any level,
    /// and no key: what a reader of encrypted tensors needs.
    pub fn for_ciphertexts(params: &Parameters) -> Self {
        Limits::new(polys_need(params, params.max_level() + 1, 3, true), params.context_bytes())
    }
}

fn write_poly<S: Sink>(
    w: &mut RecordWriter<'_, S>,
    params: &Parameters,
    p: &RnsPoly,
    first_limb: usize,
) -> Result<(), Error> {
    for (k, limb) in p.limbs_iter().enumerate() {
        w.limb(limb, params.limb_bits(first_limb + k))?;
    }
    Ok(())
}

fn check_expected_len(declared: u64, expected: u64) -> Result<(), Error> {
    if declared != expected {
        return Err(Error::Malformed("payload length does not match the header"));
    }
    Ok(())
}

/// Writes a full ciphertext (every polynomial in evaluation form).
pub fn write_ciphertext<S: Sink>(sink: &mut S, params: &Parameters, ct: &Ciphertext) -> Result<(), Error> {
    let polys = ct.c.len();
    if ct.c.iter().any(|c| c.limbs() != ct.level + 1) {
        return Err(Error::InvalidArgument("ciphertext shape"));
    }
    let flags = (1u8 << polys) - 1;
    let mut w = begin_ciphertext(sink, params, ct.level, polys, ct.log_slots, ct.scale, flags)?;
    for c in &ct.c {
        write_poly(&mut w, params, c, 0)?;
    }
    w.finish()
}

/// Starts a full-ciphertext record of `polys` (2 or 3) polynomials at `level`; the caller streams
/// the limbs q_0..q_level of each polynomial in turn and finishes (the streaming encryptor's
/// path). Bit k of `ntt_flags` says polynomial k is in evaluation form.
pub fn begin_ciphertext<'a, S: Sink>(
    sink: &'a mut S,
    params: &Parameters,
    level: usize,
    polys: usize,
    log_slots: u32,
    scale: f64,
    ntt_flags: u8,
) -> Result<RecordWriter<'a, S>, Error> {
    if !(2..=3).contains(&polys) || ntt_flags >> polys != 0 || level > params.max_level() {
        return Err(Error::InvalidArgument("ciphertext shape"));
    }
    let len = polys as u64 * limbs_len(params, 0..level + 1);
    let ext = ct_ext(level, polys, log_slots, ntt_flags, scale);
    RecordWriter::begin(sink, ObjectKind::Ciphertext, &params.fingerprint(), len, &ext)
}

/// Writes a seeded ciphertext: the 32-byte seed, then `c_0`.
pub fn write_seeded_ciphertext<S: Sink>(sink: &mut S, params: &Parameters, ct: &SeededCiphertext) -> Result<(), Error> {
    let mut w = begin_seeded(sink, params, ct.level, ct.log_slots, ct.scale, ct.c0_ntt, &ct.seed)?;
    write_poly(&mut w, params, &ct.c0, 0)?;
    w.finish()
}

/// Starts a seeded-ciphertext record and writes its seed; the caller streams `level + 1` limbs
/// of `c_0` and finishes (the streaming encryptor's path).
pub fn begin_seeded<'a, S: Sink>(
    sink: &'a mut S,
    params: &Parameters,
    level: usize,
    log_slots: u32,
    scale: f64,
    c0_ntt: bool,
    seed: &[u8; 32],
) -> Result<RecordWriter<'a, S>, Error> {
    let len = 32 + limbs_len(params, 0..level + 1);
    let ext = ct_ext(level, 1, log_slots, c0_ntt as u8, scale);
    let mut w = RecordWriter::begin(sink, ObjectKind::SeededCiphertext, &params.fingerprint(), len, &ext)?;
    w.bytes(seed)?;
    Ok(w)
}

/// Writes a plaintext.
pub fn write_plaintext<S: Sink>(sink: &mut S, params: &Parameters, pt: &Plaintext) -> Result<(), Error> {
    let len = limbs_len(params, 0..pt.level + 1);
    let ext = ct_ext(pt.level, 1, pt.log_slots, pt.ntt as u8, pt.scale);
    let mut w = RecordWriter::begin(sink, ObjectKind::Plaintext, &params.fingerprint(), len, &ext)?;
    write_poly(&mut w, params, &pt.poly, 0)?;
    w.finish()
}

/// A ciphertext as read from the wire, in either form.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyCiphertext {
    /// A full ciphertext.
    Full(Ciphertext),
    /// A seeded ciphertext.
    Seeded(SeededCiphertext),
}

impl AnyCiphertext {
    /// The ciphertext in full, evaluation form.
    pub fn into_full(self, ctx: &Context) -> Ciphertext {
        match self {
            AnyCiphertext::Full(c) => c,
            AnyCiphertext::Seeded(s) => s.expand(ctx),
        }
    }
}

/// Reads a ciphertext, full or seeded. Polynomials written in coefficient form are moved to
/// evaluation form for full ciphertexts.
pub fn read_ciphertext<S: Source>(src: &mut S, ctx: &Context, limits: &Limits) -> Result<AnyCiphertext, Error> {
    let (r, h) = RecordReader::begin(
        src,
        &[ObjectKind::Ciphertext, ObjectKind::SeededCiphertext],
        Some(ctx.fingerprint()),
        limits,
    )?;
    ciphertext_body(r, &h, ctx)
}

fn ciphertext_body<S: Source>(mut r: RecordReader<'_, S>, h: &Header, ctx: &Context) -> Result<AnyCiphertext, Error> {
    let params = ctx.params();
    if h.kind == ObjectKind::Ciphertext {
        let e = parse_ct_ext(&h.ext, params, 3)?;
        if e.polys < 2 {
            return Err(Error::Malformed("polynomial count"));
        }
        check_expected_len(h.payload_len, e.polys as u64 * limbs_len(params, 0..e.level + 1))?;
        let mut c = poly_vec(&mut r, e.polys)?;
        for k in 0..e.polys {
            let mut p = read_poly(&mut r, params, 0..e.level + 1)?;
            if e.ntt_flags & (1 << k) == 0 {
                p.ntt(&ctx.ntt()[..=e.level]);
            }
            c.push(p);
        }
        r.finish()?;
        Ok(AnyCiphertext::Full(Ciphertext { c, level: e.level, scale: e.scale, log_slots: e.log_slots }))
    } else {
        let e = parse_ct_ext(&h.ext, params, 1)?;
        check_expected_len(h.payload_len, 32 + limbs_len(params, 0..e.level + 1))?;
        let mut seed = [0u8; 32];
        r.bytes(&mut seed)?;
        let c0 = read_poly(&mut r, params, 0..e.level + 1)?;
        r.finish()?;
        Ok(AnyCiphertext::Seeded(SeededCiphertext {
            seed,
            c0,
            c0_ntt: e.ntt_flags & 1 == 1,
            level: e.level,
            scale: e.scale,
            log_slots: e.log_slots,
        }))
    }
}

/// Reads a plaintext.
pub fn read_plaintext<S: Source>(src: &mut S, ctx: &Context, limits: &Limits) -> Result<Plaintext, Error> {
    let (r, h) = RecordReader::begin(src, &[ObjectKind::Plaintext], Some(ctx.fingerprint()), limits)?;
    plaintext_body(r, &h, ctx)
}

fn plaintext_body<S: Source>(mut r: RecordReader<'_, S>, h: &Header, ctx: &Context) -> Result<Plaintext, Error> {
    let params = ctx.params();
    let e = parse_ct_ext(&h.ext, params, 1)?;
    check_expected_len(h.payload_len, limbs_len(params, 0..e.level + 1))?;
    let poly = read_poly(&mut r, params, 0..e.level + 1)?;
    r.finish()?;
    Ok(Plaintext { poly, level: e.level, scale: e.scale, log_slots: e.log_slots, ntt: e.ntt_flags & 1 == 1 })
}

/// Writes a public key: seed, then `b` over Q. `b_ntt` says which form `b` is in (the streaming
/// device writes coefficient form).
pub fn begin_public_key<'a, S: Sink>(
    sink: &'a mut S,
    params: &Parameters,
    seed: &[u8; 32],
    b_ntt: bool,
) -> Result<RecordWriter<'a, S>, Error> {
    let limbs = params.q().len() + params.p().len();
    let len = 32 + limbs_len(params, 0..limbs);
    let ext = [limbs as u8, b_ntt as u8];
    let mut w = RecordWriter::begin(sink, ObjectKind::PublicKey, &params.fingerprint(), len, &ext)?;
    w.bytes(seed)?;
    Ok(w)
}

/// Writes a public key.
pub fn write_public_key<S: Sink>(sink: &mut S, params: &Parameters, pk: &PublicKey) -> Result<(), Error> {
    let mut w = begin_public_key(sink, params, &pk.seed, true)?;
    write_poly(&mut w, params, &pk.b, 0)?;
    w.finish()
}

/// Reads a public key (moving `b` to evaluation form if needed).
pub fn read_public_key<S: Source>(src: &mut S, ctx: &Context, limits: &Limits) -> Result<PublicKey, Error> {
    let (r, h) = RecordReader::begin(src, &[ObjectKind::PublicKey], Some(ctx.fingerprint()), limits)?;
    public_key_body(r, &h, ctx)
}

fn public_key_body<S: Source>(mut r: RecordReader<'_, S>, h: &Header, ctx: &Context) -> Result<PublicKey, Error> {
    let params = ctx.params();
    let limbs = params.q().len() + params.p().len();
    if h.ext.len() != 2 || h.ext[0] as usize != limbs || h.ext[1] > 1 {
        return Err(Error::Malformed("public key header"));
    }
    check_expected_len(h.payload_len, 32 + limbs_len(params, 0..limbs))?;
    let mut seed = [0u8; 32];
    r.bytes(&mut seed)?;
    let mut b = read_poly(&mut r, params, 0..limbs)?;
    r.finish()?;
    if h.ext[1] == 0 {
        b.ntt(ctx.ntt());
    }
    Ok(PublicKey { seed, b })
}

/// Writes a relinearisation or Galois key: seed, then each digit over Q ∪ P.
pub fn write_switching_key<S: Sink>(sink: &mut S, params: &Parameters, key: &SwitchingKey) -> Result<(), Error> {
    let limbs = params.q().len() + params.p().len();
    if key.digits.len() != params.dnum() || key.digits.iter().any(|d| d.limbs() != limbs) {
        return Err(Error::InvalidArgument("switching key shape"));
    }
    let (kind, g) = match key.kind {
        SwitchingKind::Relinearization => (ObjectKind::RelinKey, 0u64),
        SwitchingKind::Galois(g) => (ObjectKind::GaloisKey, g),
        // The key to the sparse secret has its own shape (`write_encapsulation_key`): over Q ∪ P
        // it would expose the owner's secret (see `rlwe::encapsulation`).
        SwitchingKind::Encapsulation { to_sparse: true } => {
            return Err(Error::InvalidArgument("an encapsulation key to the sparse secret over Q ∪ P is insecure"))
        }
        SwitchingKind::Encapsulation { to_sparse: false } => (ObjectKind::EncapsulationKey, 2),
    };
    let mut ext = [0u8; 12];
    ext[..8].copy_from_slice(&g.to_le_bytes());
    ext[8] = params.dnum() as u8;
    ext[9] = params.q().len() as u8;
    ext[10] = params.p().len() as u8;
    let len = 32 + params.dnum() as u64 * limbs_len(params, 0..limbs);
    let mut w = RecordWriter::begin(sink, kind, &params.fingerprint(), len, &ext)?;
    w.bytes(&key.seed)?;
    for d in &key.digits {
        write_poly(&mut w, params, d, 0)?;
    }
    w.finish()
}

/// Reads a relinearisation or Galois key.
pub fn read_switching_key<S: Source>(src: &mut S, ctx: &Context, limits: &Limits) -> Result<SwitchingKey, Error> {
    let (r, h) = RecordReader::begin(
        src,
        &[ObjectKind::RelinKey, ObjectKind::GaloisKey, ObjectKind::EncapsulationKey],
        Some(ctx.fingerprint()),
        limits,
    )?;
    switching_key_body(r, &h, ctx)
}

/// Galois element field of a switching-key extension (0 when the extension is short; the shape
/// checks reject that case).
fn ext_element(h: &Header) -> u64 {
    let mut g = [0u8; 8];
    if h.ext.len() >= 8 {
        g.copy_from_slice(&h.ext[..8]);
    }
    u64::from_le_bytes(g)
}

/// Galois-element field of kind 10 for the key to the sparse secret (2: the key back).
const ENCAPSULATION_TO_SPARSE: u64 = 1;

/// A to-sparse encapsulation key with any shape but (1 digit, q_0, one special prime): refused,
/// since its modulus would be larger than the one its security statement covers.
const INSECURE_ENCAPSULATION: Error =
    Error::Malformed("encapsulation key to the sparse secret over more than q_0 and one special prime (insecure)");

/// Writes the encapsulation key to the sparse secret (kind 10, element 1): seed, then its limbs
/// modulo `q_0` and `p_0`.
pub fn write_encapsulation_key<S: Sink>(
    sink: &mut S,
    params: &Parameters,
    key: &EncapsulationKey,
) -> Result<(), Error> {
    if key.b.limbs() != 2 || key.b.n() != params.n() || params.p().is_empty() {
        return Err(Error::InvalidArgument("encapsulation key shape"));
    }
    let first_special = params.q().len();
    let mut ext = [0u8; 12];
    ext[..8].copy_from_slice(&ENCAPSULATION_TO_SPARSE.to_le_bytes());
    ext[8] = 1;
    ext[9] = 1;
    ext[10] = 1;
    let len = 32 + limbs_len(params, 0..1) + limbs_len(params, first_special..first_special + 1);
    let mut w = RecordWriter::begin(sink, ObjectKind::EncapsulationKey, &params.fingerprint(), len, &ext)?;
    w.bytes(&key.seed)?;
    w.limb(key.b.limb(0), params.limb_bits(0))?;
    w.limb(key.b.limb(1), params.limb_bits(first_special))?;
    w.finish()
}

/// Reads the encapsulation key to the sparse secret; refuses one over a larger modulus.
pub fn read_encapsulation_key<S: Source>(
    src: &mut S,
    ctx: &Context,
    limits: &Limits,
) -> Result<EncapsulationKey, Error> {
    let (r, h) = RecordReader::begin(src, &[ObjectKind::EncapsulationKey], Some(ctx.fingerprint()), limits)?;
    encapsulation_key_body(r, &h, ctx)
}

fn encapsulation_key_body<S: Source>(
    mut r: RecordReader<'_, S>,
    h: &Header,
    ctx: &Context,
) -> Result<EncapsulationKey, Error> {
    let params = ctx.params();
    if h.ext.len() != 12 || ext_element(h) != ENCAPSULATION_TO_SPARSE || h.ext[11] != 0 {
        return Err(Error::Malformed("encapsulation key header"));
    }
    if h.ext[8] != 1 || h.ext[9] != 1 || h.ext[10] != 1 || params.p().is_empty() {
        return Err(INSECURE_ENCAPSULATION);
    }
    let [iq, ip] = encapsulation_moduli(ctx);
    check_expected_len(h.payload_len, 32 + limbs_len(params, iq..iq + 1) + limbs_len(params, ip..ip + 1))?;
    let mut seed = [0u8; 32];
    r.bytes(&mut seed)?;
    // Budgeted like every decoder: the buffer grows only as limb bytes arrive.
    let n = params.n();
    let mut data = Vec::new();
    r.limb_into(&mut data, n, 2 * n, &modulus_of(params, iq), iq)?;
    r.limb_into(&mut data, n, 2 * n, &modulus_of(params, ip), ip)?;
    r.finish()?;
    Ok(EncapsulationKey { seed, b: RnsPoly::from_vec(n, data) })
}

fn switching_key_body<S: Source>(mut r: RecordReader<'_, S>, h: &Header, ctx: &Context) -> Result<SwitchingKey, Error> {
    let params = ctx.params();
    let limbs = params.q().len() + params.p().len();
    if h.kind == ObjectKind::EncapsulationKey && h.ext.len() == 12 && ext_element(h) == ENCAPSULATION_TO_SPARSE {
        return Err(INSECURE_ENCAPSULATION);
    }
    if h.ext.len() != 12
        || h.ext[8] as usize != params.dnum()
        || h.ext[9] as usize != params.q().len()
        || h.ext[10] as usize != params.p().len()
        || h.ext[11] != 0
    {
        return Err(Error::Malformed("switching key header"));
    }
    let g = ext_element(h);
    let kind = match h.kind {
        ObjectKind::RelinKey if g == 0 => SwitchingKind::Relinearization,
        ObjectKind::GaloisKey if g % 2 == 1 && g < 2 * params.n() as u64 => SwitchingKind::Galois(g),
        ObjectKind::EncapsulationKey if g == ENCAPSULATION_TO_SPARSE => return Err(INSECURE_ENCAPSULATION),
        ObjectKind::EncapsulationKey if g == 2 => SwitchingKind::Encapsulation { to_sparse: false },
        _ => return Err(Error::Malformed("galois element")),
    };
    check_expected_len(h.payload_len, 32 + params.dnum() as u64 * limbs_len(params, 0..limbs))?;
    let mut seed = [0u8; 32];
    r.bytes(&mut seed)?;
    let mut digits = poly_vec(&mut r, params.dnum())?;
    for _ in 0..params.dnum() {
        digits.push(read_poly(&mut r, params, 0..limbs)?);
    }
    r.finish()?;
    Ok(SwitchingKey { kind, seed, digits })
}

/// Writes a parameter set. Its fingerprint field is the set's own fingerprint.
pub fn write_parameters<S: Sink>(sink: &mut S, params: &Parameters) -> Result<(), Error> {
    let mut body: Vec<u8> = Vec::new();
    params.canonical_bytes(|b| body.extend_from_slice(b));
    let name = params.name().as_bytes();
    let len = body.len() as u64 + 1 + name.len() as u64;
    let mut w = RecordWriter::begin(sink, ObjectKind::Parameters, &params.fingerprint(), len, &[])?;
    w.bytes(&body)?;
    w.bytes(&[name.len() as u8])?;
    w.bytes(name)?;
    w.finish()
}

/// Reads a parameter set, checks that its fingerprint matches its contents (and `expected`, if
/// given), and applies the security gate.
pub fn read_parameters<S: Source>(
    src: &mut S,
    expected: Option<&[u8; 32]>,
    security: Security,
    limits: &Limits,
) -> Result<Parameters, Error> {
    let (mut r, h) = RecordReader::begin(src, &[ObjectKind::Parameters], expected, limits)?;
    if !h.ext.is_empty() || h.payload_len > 1024 {
        return Err(Error::Malformed("parameter record size"));
    }
    let mut body = [0u8; 1024];
    let body = &mut body[..h.payload_len as usize];
    r.bytes(body)?;
    r.finish()?;
    let fixed = 16 + 4 + 2 + 1 + 4 + 8;
    if body.len() < fixed + 1 || &body[..16] != b"hetune-params-v1" {
        return Err(Error::Malformed("parameter body"));
    }
    let (log_n, nq, np, dnum) = (body[16] as u32, body[17] as usize, body[18] as usize, body[19] as usize);
    let (log_scale, boot_limbs, sk_kind) = (body[20] as u32, body[21] as usize, body[22]);
    let h_w = u32::from_le_bytes([body[23], body[24], body[25], body[26]]);
    let mut sg = [0u8; 8];
    sg.copy_from_slice(&body[27..35]);
    let sigma = f64::from_bits(u64::from_le_bytes(sg));
    let primes_end = fixed + 8 * (nq + np);
    if body.len() < primes_end + 1 {
        return Err(Error::Malformed("parameter body"));
    }
    let name_len = body[primes_end] as usize;
    if body.len() != primes_end + 1 + name_len {
        return Err(Error::Malformed("parameter body"));
    }
    let prime = |k: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[fixed + 8 * k..fixed + 8 * k + 8]);
        u64::from_le_bytes(b)
    };
    // At most 124 primes fit the 1024-byte body: a few hundred bytes on the stack.
    let mut q: heapless::Vec<u64, 128> = heapless::Vec::new();
    let mut p: heapless::Vec<u64, 128> = heapless::Vec::new();
    for k in 0..nq + np {
        // The body length was checked to hold nq + np primes, so both pushes fit.
        let _ = if k < nq { q.push(prime(k)) } else { p.push(prime(k)) };
    }
    let secret = match sk_kind {
        0 => SecretDistribution::Ternary,
        1 => SecretDistribution::SparseTernary { hamming_weight: h_w },
        _ => return Err(Error::Malformed("secret distribution")),
    };
    let name = core::str::from_utf8(&body[primes_end + 1..]).map_err(|_| Error::Malformed("name"))?;
    let params = Parameters::from_primes(name, log_n, &q, &p, dnum, log_scale, boot_limbs, secret, sigma, security)?;
    if params.fingerprint() != h.fingerprint {
        return Err(Error::FingerprintMismatch);
    }
    // What Context::new would build for it (2^17 and 64 primes: 268 MB from a 609-byte record).
    if params.context_bytes() > limits.max_context_bytes {
        return Err(Error::LimitExceeded { declared: params.context_bytes(), limit: limits.max_context_bytes });
    }
    Ok(params)
}

/// Exports the secret key for the owner's own storage: coefficients packed at 2 bits
/// (0 -> 0, 1 -> +1, 2 -> -1). Never send this record anywhere: server-side readers refuse it.
pub fn export_secret_key_owner_copy<S: Sink>(sink: &mut S, params: &Parameters, sk: &SecretKey) -> Result<(), Error> {
    let n = params.n();
    if sk.coeffs().len() != n {
        return Err(Error::InvalidArgument("secret key does not match the parameters"));
    }
    let mut w = RecordWriter::begin(sink, ObjectKind::SecretKey, &params.fingerprint(), n as u64 / 4, &[])?;
    // Wiped on every path, the error returns included.
    let mut chunk = Zeroizing::new([0u8; 64]);
    for block in sk.coeffs().chunks(256) {
        let mut len = 0;
        for (k, quad) in block.chunks(4).enumerate() {
            let mut b = 0u8;
            for (t, &c) in quad.iter().enumerate() {
                // Branch-free map: 0 -> 0, 1 -> 1, -1 -> 2.
                let neg = (c as u8) >> 7;
                let code = (neg << 1) | ((c as u8) & 1 & (neg ^ 1));
                b |= code << (2 * t);
            }
            chunk[k] = b;
            len = k + 1;
        }
        w.bytes(&chunk[..len])?;
    }
    w.finish()
}

/// Reads the owner's secret-key export. Every buffer that holds coefficients or their bytes is
/// wiped on every path, the error returns included.
pub fn import_secret_key_owner_copy<S: Source>(
    src: &mut S,
    params: &Parameters,
    limits: &Limits,
) -> Result<SecretKey, Error> {
    let n = params.n();
    let (mut r, h) = RecordReader::begin(src, &[ObjectKind::SecretKey], Some(&params.fingerprint()), limits)?;
    if !h.ext.is_empty() {
        return Err(Error::Malformed("secret key header"));
    }
    check_expected_len(h.payload_len, n as u64 / 4)?;
    let mut coeffs: Zeroizing<Vec<i8>> = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new([0u8; 64]);
    let mut bad = 0u8;
    for start in (0..n).step_by(256) {
        let len = 256.min(n - start);
        let bytes = &mut chunk[..len / 4];
        r.bytes(bytes)?;
        if coeffs.capacity() < start + len {
            let cap = next_capacity(coeffs.capacity(), SECRET_STEP.min(n), n);
            grow_wiping(&mut coeffs, cap, r.budget())?;
        }
        for &b in bytes.iter() {
            for t in 0..4 {
                let code = (b >> (2 * t)) & 3;
                bad |= code & (code >> 1); // code 3 is invalid
                coeffs.push((code & 1) as i8 - ((code >> 1) & 1) as i8);
            }
        }
    }
    if bad != 0 {
        return Err(Error::ResidueOutOfRange { limb: 0 });
    }
    r.finish()?;
    Ok(SecretKey::from_coeffs(core::mem::take(&mut *coeffs)))
}

/// Layout of an encrypted tensor's values across its ciphertexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorLayout {
    /// Row-major values, `slots` per ciphertext, the last one zero-padded.
    RowMajorChunks = 0,
    /// HETAL block packing: `s0 x s1` blocks, one ciphertext each, row-major inside a block.
    Blocks = 1,
}

/// The header record of an encrypted tensor; `count` ciphertext records follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorHeader {
    /// Rows (1 for a vector).
    pub rows: u64,
    /// Columns.
    pub cols: u64,
    /// Layout.
    pub layout: TensorLayout,
    /// Block rows (s0) for [`TensorLayout::Blocks`], else 0.
    pub block_rows: u32,
    /// Block columns (s1) for [`TensorLayout::Blocks`], else 0.
    pub block_cols: u32,
    /// Number of ciphertext records that follow.
    pub count: u32,
    /// Element type of the source array: 0 = f64, 1 = f32.
    pub dtype: u8,
}

/// How a HETAL block-packed tensor ([`TensorLayout::Blocks`]) is laid out beyond its block
/// shape, so that a reader needs no layout from elsewhere: the class period, the tiling and the
/// level of its ciphertexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// Class period `pad_c` (a power of two dividing both block dimensions).
    pub pad_c: u32,
    /// Repetition inside the blocks: 0 none, 1 rows repeat (vertical), 2 columns repeat
    /// (horizontal).
    pub tiling: u8,
    /// Level of the block ciphertexts.
    pub level: u8,
}

/// Tensor extension bytes without and with a [`BlockLayout`].
const TENSOR_EXT: usize = 30;
const TENSOR_EXT_BLOCKS: usize = 36;

/// Writes a tensor header.
pub fn write_tensor_header<S: Sink>(sink: &mut S, params: &Parameters, t: &TensorHeader) -> Result<(), Error> {
    write_tensor_header_ext(sink, params, t, None)
}

/// Writes the header of a block-packed tensor with its [`BlockLayout`].
pub fn write_block_tensor_header<S: Sink>(
    sink: &mut S,
    params: &Parameters,
    t: &TensorHeader,
    layout: &BlockLayout,
) -> Result<(), Error> {
    if t.layout != TensorLayout::Blocks || layout.tiling > 2 {
        return Err(Error::InvalidArgument("a block layout belongs to a block-packed tensor"));
    }
    write_tensor_header_ext(sink, params, t, Some(layout))
}

fn write_tensor_header_ext<S: Sink>(
    sink: &mut S,
    params: &Parameters,
    t: &TensorHeader,
    layout: Option<&BlockLayout>,
) -> Result<(), Error> {
    let mut ext = [0u8; TENSOR_EXT_BLOCKS];
    ext[0..8].copy_from_slice(&t.rows.to_le_bytes());
    ext[8..16].copy_from_slice(&t.cols.to_le_bytes());
    ext[16] = t.layout as u8;
    ext[17] = t.dtype;
    ext[18..22].copy_from_slice(&t.block_rows.to_le_bytes());
    ext[22..26].copy_from_slice(&t.block_cols.to_le_bytes());
    ext[26..30].copy_from_slice(&t.count.to_le_bytes());
    let len = match layout {
        Some(b) => {
            ext[30..34].copy_from_slice(&b.pad_c.to_le_bytes());
            ext[34] = b.tiling;
            ext[35] = b.level;
            TENSOR_EXT_BLOCKS
        }
        None => TENSOR_EXT,
    };
    RecordWriter::begin(sink, ObjectKind::TensorHeader, &params.fingerprint(), 0, &ext[..len])?.finish()
}

/// Reads a tensor header (with or without a block layout).
pub fn read_tensor_header<S: Source>(src: &mut S, ctx: &Context, limits: &Limits) -> Result<TensorHeader, Error> {
    Ok(read_tensor_header_with_layout(src, ctx, limits)?.0)
}

/// Reads a tensor header and, for a block-packed tensor written with one, its [`BlockLayout`].
pub fn read_tensor_header_with_layout<S: Source>(
    src: &mut S,
    ctx: &Context,
    limits: &Limits,
) -> Result<(TensorHeader, Option<BlockLayout>), Error> {
    let (r, h) = RecordReader::begin(src, &[ObjectKind::TensorHeader], Some(ctx.fingerprint()), limits)?;
    let t = tensor_header_body(r, &h)?;
    let e = &h.ext;
    if e.len() != TENSOR_EXT_BLOCKS {
        return Ok((t, None));
    }
    if t.layout != TensorLayout::Blocks || e[34] > 2 {
        return Err(Error::Malformed("tensor block layout"));
    }
    let layout = BlockLayout { pad_c: u32::from_le_bytes([e[30], e[31], e[32], e[33]]), tiling: e[34], level: e[35] };
    Ok((t, Some(layout)))
}

fn tensor_header_body<S: Source>(r: RecordReader<'_, S>, h: &Header) -> Result<TensorHeader, Error> {
    if !(h.ext.len() == TENSOR_EXT || h.ext.len() == TENSOR_EXT_BLOCKS) || h.payload_len != 0 {
        return Err(Error::Malformed("tensor header"));
    }
    r.finish()?;
    let e = &h.ext;
    let u64_at =
        |o: usize| u64::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3], e[o + 4], e[o + 5], e[o + 6], e[o + 7]]);
    let u32_at = |o: usize| u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]);
    let layout = match e[16] {
        0 => TensorLayout::RowMajorChunks,
        1 => TensorLayout::Blocks,
        _ => return Err(Error::Malformed("tensor layout")),
    };
    if e[17] > 1 {
        return Err(Error::Malformed("tensor dtype"));
    }
    Ok(TensorHeader {
        rows: u64_at(0),
        cols: u64_at(8),
        layout,
        dtype: e[17],
        block_rows: u32_at(18),
        block_cols: u32_at(22),
        count: u32_at(26),
    })
}

/// Exact byte size of a seeded ciphertext record at `level`.
pub fn seeded_ciphertext_size(params: &Parameters, level: usize) -> u64 {
    super::record::FRAME_OVERHEAD as u64 + 12 + 32 + limbs_len(params, 0..level + 1)
}

/// Exact byte size of a full (two-polynomial) ciphertext record at `level`.
pub fn ciphertext_size(params: &Parameters, level: usize) -> u64 {
    super::record::FRAME_OVERHEAD as u64 + 12 + 2 * limbs_len(params, 0..level + 1)
}

/// Any object a server may receive (never a secret key).
#[derive(Clone, Debug, PartialEq)]
pub enum WireObject {
    /// A public key.
    PublicKey(PublicKey),
    /// A relinearisation, Galois or decapsulation key.
    SwitchingKey(SwitchingKey),
    /// The encapsulation key to the sparse secret (bootstrapping).
    EncapsulationKey(EncapsulationKey),
    /// A ciphertext, full or seeded.
    Ciphertext(AnyCiphertext),
    /// A plaintext.
    Plaintext(Plaintext),
    /// An encrypted tensor's header.
    TensorHeader(TensorHeader),
}

/// Reads the next record of any server-side kind, dispatching on its header.
pub fn read_object<S: Source>(src: &mut S, ctx: &Context, limits: &Limits) -> Result<WireObject, Error> {
    use ObjectKind::*;
    let (r, h) = RecordReader::begin(
        src,
        &[PublicKey, RelinKey, GaloisKey, EncapsulationKey, Ciphertext, SeededCiphertext, Plaintext, TensorHeader],
        Some(ctx.fingerprint()),
        limits,
    )?;
    Ok(match h.kind {
        PublicKey => WireObject::PublicKey(public_key_body(r, &h, ctx)?),
        EncapsulationKey if h.ext.len() == 12 && ext_element(&h) == ENCAPSULATION_TO_SPARSE => {
            WireObject::EncapsulationKey(encapsulation_key_body(r, &h, ctx)?)
        }
        RelinKey | GaloisKey | EncapsulationKey => WireObject::SwitchingKey(switching_key_body(r, &h, ctx)?),
        Ciphertext | SeededCiphertext => WireObject::Ciphertext(ciphertext_body(r, &h, ctx)?),
        Plaintext => WireObject::Plaintext(plaintext_body(r, &h, ctx)?),
        TensorHeader => WireObject::TensorHeader(tensor_header_body(r, &h)?),
        // begin() admits only the kinds above.
        Parameters | SecretKey => return Err(Error::WrongKind { expected: Ciphertext as u16, found: h.kind as u16 }),
    })
}
