//! The streaming encryptor of a device: writes a ciphertext (or the owner's public key) into a
//! caller's sink one RNS limb at a time, in a working memory that does not grow with the number
//! of limbs and holds no NTT tables ([`CompactNtt`] computes its twiddles as it goes).
//!
//! Two modes:
//! - secret-key ([`stream_encrypt_sk`]), for the owner's own devices: a seeded ciphertext
//!   `(c_0 = m + e - a s, seed of a)`, half the bytes of a full one. Working memory: one limb of
//!   residues and the error, `9 N` bytes (plus the caller's secret key, `N`).
//! - public-key ([`stream_encrypt_pk`]), for sensors that must not be able to decrypt: the
//!   device holds only the public key `(b, a) = (-a s + e, a)`, reads `b` one limb at a time
//!   ([`PublicKeyLimbs`]) and writes `(v b + e_0, v a + e_1)` over `Q_l` and the first special
//!   prime `p`, divided by `p` (which shrinks `v e + e_0 + e_1 s` to a rounding term), plus `m`.
//!   The division needs the `p` limb of each polynomial while its `Q_l` limbs are written, so the
//!   working memory is two limbs and the mask, `17 N` bytes (the errors are drawn 256 at a time
//!   where they are added, and kept only folded into the `p` limb). A full ciphertext.
//!
//! Either way the caller also holds the message in the compact form of
//! [`super::encoder::encode_coeffs`], `16 * 2^log_slots` bytes. At N = 2^16 and 2^11 slots that
//! is 0.66 MiB (secret key) or 1.10 MiB (public key) in all, whatever the level.
//!
//! Every polynomial is written in coefficient form (the receiver moves it to evaluation form).
//! `a` is expanded from its seed in evaluation form exactly as for in-memory seeded ciphertexts
//! and public keys, so the bytes are those of the wire format's seeded ciphertext, full
//! ciphertext and public key, v1. Products go through one lazy forward transform, one Montgomery
//! multiplication per slot and one lazy inverse transform, with the ternary operand pre-scaled
//! by `2^64 / N` so that no normalisation pass remains. Every step that touches the secret, the
//! mask, the errors or their products runs in constant time.

use alloc::vec;
use alloc::vec::Vec;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::ring::{CompactNtt, Modulus};
use crate::rlwe::sampling::{fresh_seed, stream_id, ternary, GaussianSampler, UniformExpander};
use crate::rlwe::{PublicKey, SecretKey};
use crate::wire::{begin_ciphertext, begin_public_key, begin_seeded, Sink};
use crate::{Error, Parameters};

/// Which key a device encrypts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StreamMode {
    /// The owner's device, holding the secret key: seeded ciphertexts.
    SecretKey,
    /// A sensor, holding only the public key: full ciphertexts.
    PublicKey,
}

/// What to encrypt: a message in the compact form of [`super::encoder::encode_coeffs`] and the
/// ciphertext's level, scale and slot count.
#[derive(Clone, Copy, Debug)]
pub struct StreamPlaintext<'a> {
    /// The `2 * 2^log_slots` integer coefficients (exactly rounded f64).
    pub coeffs: &'a [f64],
    /// log2 of the slot count.
    pub log_slots: u32,
    /// Level of the ciphertext (limbs q_0..q_level).
    pub level: usize,
    /// Scale the message was encoded at.
    pub scale: f64,
}

/// The public key as a device holds it: the seed of `a`, and `b` in evaluation form read one
/// limb at a time (from flash, a file, or a stream).
pub trait PublicKeyLimbs {
    /// The seed `a` is expanded from.
    fn seed(&self) -> [u8; 32];

    /// Calls `visit(t, b_t)` for every residue of limb `index` of `b` (indexed over Q then P),
    /// in order, in evaluation form.
    fn for_each_b(&mut self, index: usize, visit: impl FnMut(usize, u64)) -> Result<(), Error>;
}

impl PublicKeyLimbs for PublicKey {
    fn seed(&self) -> [u8; 32] {
        self.seed
    }

    fn for_each_b(&mut self, index: usize, mut visit: impl FnMut(usize, u64)) -> Result<(), Error> {
        if index >= self.b.limbs() {
            return Err(Error::InvalidArgument("public key limb index"));
        }
        for (t, &v) in self.b.limb(index).iter().enumerate() {
            visit(t, v);
        }
        Ok(())
    }
}

/// Working memory of the streaming encryptor, allocated once for a mode; wiped on drop.
pub struct StreamWork {
    mode: StreamMode,
    /// The limb being written.
    limb: Vec<u64>,
    /// Public-key mode: the `p` limb of the polynomial being written.
    carry: Vec<u64>,
    /// The error (secret-key mode) or the ternary mask `v` (public-key mode).
    small: Vec<i8>,
}

impl StreamWork {
    /// Allocates the buffers of `mode` for ring degree `n`: [`Self::bytes_for`] bytes.
    pub fn new(n: usize, mode: StreamMode) -> Self {
        let pk = mode == StreamMode::PublicKey;
        StreamWork { mode, limb: vec![0; n], carry: if pk { vec![0; n] } else { Vec::new() }, small: vec![0; n] }
    }

    /// Bytes the buffers of `mode` take at ring degree `n`: `9 n` (secret key) or `17 n`.
    pub fn bytes_for(n: usize, mode: StreamMode) -> usize {
        match mode {
            StreamMode::SecretKey => 9 * n,
            StreamMode::PublicKey => 17 * n,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        (self.limb.len() + self.carry.len()) * 8 + self.small.len()
    }

    fn check(&self, n: usize, mode: StreamMode) -> Result<(), Error> {
        if self.limb.len() != n || (mode == StreamMode::PublicKey && self.mode != mode) {
            return Err(Error::InvalidArgument("working memory does not match the ring degree or mode"));
        }
        Ok(())
    }
}

impl Drop for StreamWork {
    fn drop(&mut self) {
        self.limb.zeroize();
        self.carry.zeroize();
        self.small.zeroize();
    }
}

/// Bytes a device needs besides its [`StreamWork`] to encrypt `2^log_slots` slots at ring
/// degree `n`: the compact message, and in secret-key mode the secret key.
pub fn caller_bytes(n: usize, mode: StreamMode, log_slots: u32) -> usize {
    let message = 16usize << log_slots;
    match mode {
        StreamMode::SecretKey => message + n,
        StreamMode::PublicKey => message,
    }
}

/// `a - b mod q` for canonical residues, constant time.
#[inline(always)]
fn sub_ct(ntt: &CompactNtt, a: u64, b: u64) -> u64 {
    ntt.reduce_lazy(a + ntt.modulus() - b)
}

/// `out = v * y` in coefficient form, lazy (`[0, 2q)`), for ternary `v`: `v` scaled and moved to
/// evaluation form, multiplied slot by slot by `y` (given in evaluation form through `mul`,
/// which receives the buffer and multiplies it in place with [`CompactNtt::mul_lazy`]), and
/// moved back.
fn ternary_product(
    ntt: &CompactNtt,
    v: &[i8],
    out: &mut [u64],
    mul: impl FnOnce(&mut [u64]) -> Result<(), Error>,
) -> Result<(), Error> {
    ntt.forward_ternary_lazy(v, ntt.product_scale(), out);
    mul(out)?;
    ntt.inverse_lazy_unnormalized(out);
    Ok(())
}

/// `out *= a` slot by slot, `a` expanded from `(seed, stream)` in evaluation form.
fn times_uniform(ntt: &CompactNtt, q: &Modulus, seed: &[u8; 32], stream: u64, out: &mut [u64]) {
    let mut a = UniformExpander::new(seed, stream, q);
    let mut chunk = [0u64; PRODUCT_CHUNK];
    for block in out.chunks_mut(PRODUCT_CHUNK) {
        let y = &mut chunk[..block.len()];
        a.fill(y);
        ntt.mul_lazy_slice(block, y);
    }
}

/// Slot products are taken this many at a time, the other operand staged on the stack.
const PRODUCT_CHUNK: usize = 64;

/// `out *= b` slot by slot, `b` limb `index` of the public key (public values).
fn times_key<K: PublicKeyLimbs>(ntt: &CompactNtt, pk: &mut K, index: usize, out: &mut [u64]) -> Result<(), Error> {
    let mut chunk = [0u64; PRODUCT_CHUNK];
    pk.for_each_b(index, |t, b| {
        let k = t % PRODUCT_CHUNK;
        chunk[k] = b;
        if k == PRODUCT_CHUNK - 1 && t < out.len() {
            ntt.mul_lazy_slice(&mut out[t + 1 - PRODUCT_CHUNK..=t], &chunk);
        }
    })?;
    // The last, partial chunk (none when N is a multiple of the chunk).
    let done = out.len() - out.len() % PRODUCT_CHUNK;
    let rest = out.len() - done;
    ntt.mul_lazy_slice(&mut out[done..], &chunk[..rest]);
    Ok(())
}

/// Adds the compact message (coefficient k at degree `k * gap`) to the canonical limb `out`.
fn add_message(ntt: &CompactNtt, q: &Modulus, coeffs: &[f64], out: &mut [u64]) {
    let gap = out.len() / coeffs.len();
    for (k, &m) in coeffs.iter().enumerate() {
        let r = message_residue(ntt, q, m);
        let o = &mut out[k * gap];
        *o = ntt.reduce_lazy(*o + r);
    }
}

/// Residue of an integer-valued f64, constant time below 2^63 (every message at a sensible
/// scale; larger ones take the exact general path).
#[inline]
fn message_residue(ntt: &CompactNtt, q: &Modulus, m: f64) -> u64 {
    let a = libm::fabs(m);
    if a >= 9.223_372_036_854_776e18 {
        return q.reduce_f64(m);
    }
    let r = ntt.reduce(a as u64);
    let neg = (m.to_bits() >> 63).wrapping_neg();
    let negated = ntt.reduce_lazy(ntt.modulus() - r);
    (r & !neg) | (negated & neg)
}

fn check_plaintext(params: &Parameters, pt: &StreamPlaintext<'_>) -> Result<(), Error> {
    if pt.level > params.max_level() {
        return Err(Error::InvalidArgument("level above the top of the chain"));
    }
    if pt.log_slots >= params.log_n() || pt.coeffs.len() != 2usize << pt.log_slots {
        return Err(Error::InvalidArgument("the message must be 2 * 2^log_slots compact coefficients"));
    }
    if !(pt.scale.is_finite() && pt.scale >= 1.0) {
        return Err(Error::InvalidArgument("scale must be finite and at least 1"));
    }
    Ok(())
}

/// `out = e - a s (+ m)` in coefficient form on one limb, `a` from `(seed, stream)`; canonical.
#[allow(clippy::too_many_arguments)]
fn rlwe_sk_limb(
    qv: u64,
    n: usize,
    s: &[i8],
    e: &[i8],
    seed: &[u8; 32],
    stream: u64,
    message: Option<&[f64]>,
    out: &mut [u64],
) -> Result<(), Error> {
    let q = Modulus::new(qv);
    let ntt = CompactNtt::new(n, &q)?;
    ternary_product(&ntt, s, out, |buf| {
        times_uniform(&ntt, &q, seed, stream, buf);
        Ok(())
    })?;
    for (o, &et) in out.iter_mut().zip(e) {
        *o = sub_ct(&ntt, q.from_small_ct(et as i64), ntt.reduce_lazy(*o));
    }
    if let Some(m) = message {
        add_message(&ntt, &q, m, out);
    }
    Ok(())
}

/// Encrypts the message under the secret key, streaming a seeded-ciphertext record (`c_0` in
/// coefficient form) into `sink`.
pub fn stream_encrypt_sk<R: RngCore + CryptoRng, S: Sink>(
    params: &Parameters,
    sk: &SecretKey,
    pt: &StreamPlaintext<'_>,
    rng: &mut R,
    work: &mut StreamWork,
    sink: &mut S,
) -> Result<(), Error> {
    check_plaintext(params, pt)?;
    stream_secret_key_rlwe(params, sk, Some(pt), rng, work, sink)
}

/// Generates the public key of `sk` and streams its record into `sink`, limb by limb over Q and
/// P, with `b` in coefficient form.
pub fn stream_public_key<R: RngCore + CryptoRng, S: Sink>(
    params: &Parameters,
    sk: &SecretKey,
    rng: &mut R,
    work: &mut StreamWork,
    sink: &mut S,
) -> Result<(), Error> {
    stream_secret_key_rlwe(params, sk, None, rng, work, sink)
}

/// `e - a s (+ m)` limb by limb: a seeded ciphertext of `pt` over its level's primes, or with no
/// message the public key over every prime of Q and P.
fn stream_secret_key_rlwe<R: RngCore + CryptoRng, S: Sink>(
    params: &Parameters,
    sk: &SecretKey,
    pt: Option<&StreamPlaintext<'_>>,
    rng: &mut R,
    work: &mut StreamWork,
    sink: &mut S,
) -> Result<(), Error> {
    let n = params.n();
    work.check(n, StreamMode::SecretKey)?;
    if sk.coeffs().len() != n {
        return Err(Error::InvalidArgument("secret key does not match the parameters"));
    }
    let seed = fresh_seed(rng);
    GaussianSampler::new(params.sigma())?.fill(rng, &mut work.small);
    let (mut w, limbs) = match pt {
        Some(pt) => (begin_seeded(sink, params, pt.level, pt.log_slots, pt.scale, false, &seed)?, pt.level + 1),
        None => (begin_public_key(sink, params, &seed, false)?, params.q().len() + params.p().len()),
    };
    let message = pt.map(|pt| pt.coeffs);
    for (i, &qv) in params.q().iter().chain(params.p()).take(limbs).enumerate() {
        rlwe_sk_limb(qv, n, sk.coeffs(), &work.small, &seed, stream_id(0, i), message, &mut work.limb)?;
        w.limb(&work.limb, params.limb_bits(i))?;
    }
    w.finish()
}

/// Encrypts the message under the public key, streaming a full-ciphertext record (both
/// polynomials in coefficient form) into `sink`. The device reads `b` limb by limb from `pk` and
/// never holds the secret.
pub fn stream_encrypt_pk<K: PublicKeyLimbs, R: RngCore + CryptoRng, S: Sink>(
    params: &Parameters,
    pk: &mut K,
    pt: &StreamPlaintext<'_>,
    rng: &mut R,
    work: &mut StreamWork,
    sink: &mut S,
) -> Result<(), Error> {
    let n = params.n();
    work.check(n, StreamMode::PublicKey)?;
    check_plaintext(params, pt)?;
    let Some(&pv) = params.p().first() else {
        return Err(Error::InvalidArgument("public-key encryption needs a special prime"));
    };
    let p_index = params.q().len();
    let p = Modulus::new(pv);
    let p_ntt = CompactNtt::new(n, &p)?;
    let a_seed = pk.seed();
    let gaussian = GaussianSampler::new(params.sigma())?;
    ternary(rng, &mut work.small);
    let StreamWork { limb, carry, small: v, .. } = work;
    let mut w = begin_ciphertext(sink, params, pt.level, 2, pt.log_slots, pt.scale, 0)?;
    let half_p = pv / 2;
    let mut errors = Zeroizing::new([0i8; ERROR_CHUNK]);
    for component in 0..2 {
        // The `p` limb of v * (b or a), then the error, drawn here a chunk at a time (it is
        // needed nowhere else): the part the division by p removes is the canonical
        // `r = v y + e mod p`, kept as `e - [r]_p` (its centered lift, two's complement).
        uniform_or_key_product(&p_ntt, &p, v, pk, &a_seed, component, p_index, carry)?;
        for block in carry.chunks_mut(ERROR_CHUNK) {
            let e = &mut errors[..block.len()];
            gaussian.fill(rng, e);
            for (c, &et) in block.iter_mut().zip(e.iter()) {
                let x = p_ntt.reduce_lazy(*c);
                let r = p_ntt.reduce_lazy(x + p.from_small_ct(et as i64));
                // All ones when r > p/2 (both below 2^63, so the difference's sign decides).
                let above = (half_p.wrapping_sub(r) >> 63).wrapping_neg();
                *c = (et as i64 as u64).wrapping_sub(r).wrapping_add(pv & above);
            }
        }
        for i in 0..=pt.level {
            let q = Modulus::new(params.q()[i]);
            let ntt = CompactNtt::new(n, &q)?;
            uniform_or_key_product(&ntt, &q, v, pk, &a_seed, component, i, limb)?;
            divide_by_p(&ntt, &q, pv, carry, limb)?;
            if component == 0 {
                add_message(&ntt, &q, pt.coeffs, limb);
            }
            w.limb(limb, params.limb_bits(i))?;
        }
    }
    w.finish()
}

/// Errors drawn at a time in public-key mode (on the stack).
const ERROR_CHUNK: usize = 256;

/// `out = (x + s) / p mod q` in place, for the lazy limb `x` (below `2q`) and `s = e - [carry]_p`
/// (two's complement, `|s| <= p/2 + 128`): one Shoup product by `p^-1` per coefficient, of
/// `t = x + K + s` with `K` the least multiple of q not below `p/2 + 128`, which is never
/// negative, is congruent to `x + s` modulo q, and stays below `3q + p + 256` (checked to be
/// below 2^64: any two primes below 2^61.9). Canonical output.
fn divide_by_p(ntt: &CompactNtt, q: &Modulus, pv: u64, shifted: &[u64], limb: &mut [u64]) -> Result<(), Error> {
    let qv = q.value();
    if 3 * qv as u128 + pv as u128 + 256 > u64::MAX as u128 {
        return Err(Error::InvalidParameters("primes too large for the division by the special prime"));
    }
    let p_inv = q.inv(q.reduce(pv)).ok_or(Error::InvalidParameters("p divides q"))?;
    let p_inv_shoup = q.shoup(p_inv);
    let k = (pv / 2 + 128).div_ceil(qv) * qv;
    ntt.mul_shoup_sum_slice(limb, shifted, k, p_inv, p_inv_shoup);
    Ok(())
}

/// `out = v * b` (component 0) or `v * a` (component 1) on limb `index`, lazy.
#[allow(clippy::too_many_arguments)]
fn uniform_or_key_product<K: PublicKeyLimbs>(
    ntt: &CompactNtt,
    q: &Modulus,
    v: &[i8],
    pk: &mut K,
    a_seed: &[u8; 32],
    component: usize,
    index: usize,
    out: &mut [u64],
) -> Result<(), Error> {
    ternary_product(ntt, v, out, |buf| {
        if component == 0 {
            times_key(ntt, pk, index, buf)
        } else {
            times_uniform(ntt, q, a_seed, stream_id(0, index), buf);
            Ok(())
        }
    })
}
