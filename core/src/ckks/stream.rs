//! The streaming encryptor: writes a seeded ciphertext (or the public key) one RNS limb at a
//! time into a caller-supplied sink. Working memory is one limb of residues, the small secret
//! and error coefficients, and the NTT plan of the current limb (built in place of the previous
//! one), whatever the number of limbs: at N = 2^16 that is 512 KiB + 128 KiB + one 2 MiB plan,
//! plus the caller's N-coefficient message buffer.
//!
//! `c_0` is written in coefficient form (`c_0 = m + e - a * s`, the product taken through the
//! NTT of this limb only); the receiver moves it to evaluation form. `a` is expanded from the
//! seed in evaluation form, exactly as for in-memory seeded ciphertexts.

use alloc::vec;
use alloc::vec::Vec;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::ring::{Modulus, NttTable};
use crate::rlwe::sampling::{fresh_seed, stream_id, GaussianSampler, UniformExpander};
use crate::rlwe::SecretKey;
use crate::wire::{begin_public_key, begin_seeded, Sink};
use crate::{Error, Parameters};

/// Reusable working memory of the streaming encryptor.
pub struct StreamWork {
    limb: Vec<u64>,
    error: Vec<i8>,
}

impl StreamWork {
    /// Allocates the buffers for ring degree `n` (9 n bytes).
    pub fn new(n: usize) -> Self {
        StreamWork { limb: vec![0; n], error: vec![0; n] }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.limb.len() * 8 + self.error.len()
    }
}

impl Drop for StreamWork {
    fn drop(&mut self) {
        self.limb.zeroize();
        self.error.zeroize();
    }
}

/// `buf = add(t) - a * s` in coefficient form on one limb, `a` from `(seed, stream)`.
fn rlwe_coeff_limb(
    q: &Modulus,
    table: &NttTable,
    s: &[i8],
    seed: &[u8; 32],
    stream: u64,
    buf: &mut [u64],
    add: impl Fn(usize) -> u64,
) {
    table.forward_small(s, buf);
    let mut a = UniformExpander::new(seed, stream, q);
    for o in buf.iter_mut() {
        *o = q.mul_ct(*o, a.next_residue());
    }
    table.inverse(buf);
    for (t, o) in buf.iter_mut().enumerate() {
        *o = q.sub_ct(add(t), *o);
    }
}

/// Encrypts the integer message coefficients `message` (N values, as written by
/// [`crate::ckks::encoder::encode_coeffs`]) under the secret key at `level`, streaming a
/// seeded-ciphertext record into `sink`.
#[allow(clippy::too_many_arguments)]
pub fn stream_encrypt_sk<R: RngCore + CryptoRng, S: Sink>(
    params: &Parameters,
    sk: &SecretKey,
    message: &[f64],
    level: usize,
    scale: f64,
    log_slots: u32,
    rng: &mut R,
    work: &mut StreamWork,
    sink: &mut S,
) -> Result<(), Error> {
    let n = params.n();
    if message.len() != n || work.limb.len() != n || sk.coeffs().len() != n {
        return Err(Error::InvalidArgument("buffers must have N entries"));
    }
    if level > params.max_level() {
        return Err(Error::InvalidArgument("level above the top of the chain"));
    }
    let seed = fresh_seed(rng);
    GaussianSampler::new(params.sigma())?.fill(rng, &mut work.error);
    let mut w = begin_seeded(sink, params, level, log_slots, scale, false, &seed)?;
    for i in 0..=level {
        let q = Modulus::new(params.q()[i]);
        let table = NttTable::new(n, q)?;
        let e = &work.error;
        rlwe_coeff_limb(&q, &table, sk.coeffs(), &seed, stream_id(0, i), &mut work.limb, |t| {
            q.add_ct(q.reduce_f64(message[t]), q.from_small_ct(e[t] as i64))
        });
        drop(table);
        w.limb(&work.limb, q.bits())?;
    }
    w.finish()
}

/// Generates the public key of `sk` and streams its record into `sink`, limb by limb, with `b`
/// in coefficient form.
pub fn stream_public_key<R: RngCore + CryptoRng, S: Sink>(
    params: &Parameters,
    sk: &SecretKey,
    rng: &mut R,
    work: &mut StreamWork,
    sink: &mut S,
) -> Result<(), Error> {
    let n = params.n();
    if work.limb.len() != n || sk.coeffs().len() != n {
        return Err(Error::InvalidArgument("buffers must have N entries"));
    }
    let seed = fresh_seed(rng);
    GaussianSampler::new(params.sigma())?.fill(rng, &mut work.error);
    let mut w = begin_public_key(sink, params, &seed, false)?;
    let moduli: Vec<u64> = params.q().iter().chain(params.p()).copied().collect();
    for (i, &qv) in moduli.iter().enumerate() {
        let q = Modulus::new(qv);
        let table = NttTable::new(n, q)?;
        let e = &work.error;
        rlwe_coeff_limb(&q, &table, sk.coeffs(), &seed, stream_id(0, i), &mut work.limb, |t| {
            q.from_small_ct(e[t] as i64)
        });
        drop(table);
        w.limb(&work.limb, q.bits())?;
    }
    w.finish()
}
