//! Encryption with the secret key (seeded) or the public key, and decryption.

use alloc::vec;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::plaintext::{Ciphertext, Plaintext, SeededCiphertext};
use crate::ring::{elementwise, Modulus, RnsPoly};
use crate::rlwe::keys::rlwe_limb;
use crate::rlwe::sampling::{fresh_seed, stream_id, ternary, UniformExpander};
use crate::rlwe::{Context, PublicKey, SecretKey};
use crate::Error;

fn check_plaintext(ctx: &Context, pt: &Plaintext) -> Result<(), Error> {
    if !pt.ntt || pt.level > ctx.params().max_level() || pt.poly.limbs() != pt.level + 1 || pt.poly.n() != ctx.n() {
        return Err(Error::InvalidArgument("plaintext must be in evaluation form and match the context"));
    }
    Ok(())
}

/// Secret-key encryption: `(c_0, c_1) = (-a s + m + e, a)` with `a` from a fresh public seed.
pub fn encrypt_sk<R: RngCore + CryptoRng>(
    ctx: &Context,
    sk: &SecretKey,
    pt: &Plaintext,
    rng: &mut R,
) -> Result<SeededCiphertext, Error> {
    check_plaintext(ctx, pt)?;
    let n = ctx.n();
    let seed = fresh_seed(rng);
    let mut e = vec![0i8; n];
    ctx.gaussian().fill(rng, &mut e);
    let mut s = vec![0u64; n];
    let mut c0 = RnsPoly::zero(n, pt.level + 1);
    for i in 0..=pt.level {
        let (q, t) = (&ctx.q()[i], &ctx.ntt()[i]);
        sk.ntt_limb(t, &mut s);
        rlwe_limb(q, t, &seed, stream_id(0, i), &s, &e, Some(pt.poly.limb(i)), c0.limb_mut(i));
    }
    s.zeroize();
    e.zeroize();
    Ok(SeededCiphertext { seed, c0, c0_ntt: true, level: pt.level, scale: pt.scale, log_slots: pt.log_slots })
}

/// The secret randomness of one public-key encryption: the ternary `v` and the errors `e_0`,
/// `e_1`, drawn in this order. Wiped on drop.
pub struct PkNoise {
    v: alloc::vec::Vec<i8>,
    e0: alloc::vec::Vec<i8>,
    e1: alloc::vec::Vec<i8>,
}

impl PkNoise {
    /// Draws `v`, `e_0` and `e_1` from `rng` (the order [`encrypt_pk`] uses).
    pub fn sample<R: RngCore + CryptoRng>(ctx: &Context, rng: &mut R) -> Self {
        let n = ctx.n();
        let mut v = vec![0i8; n];
        ternary(rng, &mut v);
        let mut e0 = vec![0i8; n];
        let mut e1 = vec![0i8; n];
        ctx.gaussian().fill(rng, &mut e0);
        ctx.gaussian().fill(rng, &mut e1);
        PkNoise { v, e0, e1 }
    }
}

impl Drop for PkNoise {
    fn drop(&mut self) {
        self.v.zeroize();
        self.e0.zeroize();
        self.e1.zeroize();
    }
}

/// The global limbs a public-key encryption at `level` works on, in order: `q_0 .. q_level` and
/// the first special prime `p_0` (the division by `p_0` alone already shrinks the encryption
/// noise below the rounding term; the other special primes would add work, not precision).
pub fn pk_limbs(ctx: &Context, level: usize) -> impl Iterator<Item = usize> + Clone {
    (0..=level).chain(core::iter::once(ctx.q_len()))
}

/// Divides a polynomial over `q_0 .. q_level, p_0` (evaluation form, `p_0`'s limb last) by `p_0`
/// with rounding, leaving the `level + 1` limbs of `Q_level`: `(x - [x]_{p_0}) / p_0` with the
/// centered residue of `x` modulo `p_0`, computed without branches on the values (they carry
/// the encryption's noise).
pub fn divide_by_p0(ctx: &Context, poly: &mut RnsPoly, level: usize) -> Result<(), Error> {
    let n = ctx.n();
    let pi = ctx.q_len();
    if poly.limbs() != level + 2 || poly.n() != n {
        return Err(Error::InvalidArgument("polynomial does not have the limbs of Q_level and p_0"));
    }
    let p0 = ctx.qp()[pi].value();
    let half = p0 >> 1;
    let mut last = poly.limb(level + 1).to_vec();
    ctx.ntt()[pi].inverse(&mut last);
    let mut lifted = vec![0u64; n];
    for i in 0..=level {
        let q = &ctx.qp()[i];
        let p_mod_q = q.reduce(p0);
        let p_inv = q.inv(p_mod_q).ok_or(Error::InvalidArgument("p_0 is not invertible modulo a ciphertext prime"))?;
        let p_inv_shoup = q.shoup(p_inv);
        for (o, &x) in lifted.iter_mut().zip(&last) {
            // All ones when x > p_0 / 2, i.e. when x stands for x - p_0.
            let negative = (half.wrapping_sub(x) >> 63).wrapping_neg();
            let r = q.reduce_u128_ct(x as u128);
            *o = q.sub(r, p_mod_q & negative);
        }
        ctx.ntt()[i].forward(&mut lifted);
        for (x, &c) in poly.limb_mut(i).iter_mut().zip(&lifted) {
            *x = q.mul_shoup(q.sub(*x, c), p_inv, p_inv_shoup);
        }
    }
    last.zeroize();
    lifted.zeroize();
    poly.truncate(level + 1);
    Ok(())
}

/// Limb `i` (global, of `Q ∪ P`) of the public key's uniform half `a`, expanded from its seed.
pub fn public_a_limb(ctx: &Context, pk: &PublicKey, i: usize, out: &mut [u64]) {
    let mut a = UniformExpander::new(&pk.seed, stream_id(0, i), &ctx.qp()[i]);
    out.iter_mut().for_each(|o| *o = a.next_residue());
}

/// Limb `i` (global, of `Q ∪ P`) of `(v b + e_0, v a + e_1)` in evaluation form, before the
/// division by `p_0`: `a` is that limb of the public key's uniform half ([`public_a_limb`]),
/// `vq` scratch of `n` words (wiped here: it holds `v`).
#[allow(clippy::too_many_arguments)]
pub fn encrypt_pk_limb(
    ctx: &Context,
    pk: &PublicKey,
    noise: &PkNoise,
    i: usize,
    a: &[u64],
    vq: &mut [u64],
    out0: &mut [u64],
    out1: &mut [u64],
) {
    let (q, t) = (&ctx.qp()[i], &ctx.ntt()[i]);
    t.forward_small(&noise.v, vq);
    t.forward_small(&noise.e0, out0);
    elementwise::mul_acc_ct(q, out0, vq, pk.b.limb(i));
    t.forward_small(&noise.e1, out1);
    elementwise::mul_acc_ct(q, out1, vq, a);
    vq.zeroize();
}

/// The end of a public-key encryption: `(c_0, c_1)`, already divided by `p_0`
/// ([`divide_by_p0`]), plus `m`.
pub fn encrypt_pk_finish(ctx: &Context, mut c0: RnsPoly, c1: RnsPoly, pt: &Plaintext) -> Ciphertext {
    c0.add_assign(&pt.poly, ctx.q());
    Ciphertext { c: vec![c0, c1], level: pt.level, scale: pt.scale, log_slots: pt.log_slots }
}

/// Checks that a public key matches the context (every limb of `Q ∪ P`).
pub fn check_public_key(ctx: &Context, pk: &PublicKey) -> Result<(), Error> {
    if pk.b.limbs() != ctx.qp().len() || pk.b.n() != ctx.n() {
        return Err(Error::InvalidArgument("public key does not match the context"));
    }
    Ok(())
}

/// The checks of a public-key encryption: the plaintext and the key match the context.
pub fn check_pk_inputs(ctx: &Context, pk: &PublicKey, pt: &Plaintext) -> Result<(), Error> {
    check_plaintext(ctx, pt)?;
    check_public_key(ctx, pk)
}

/// Public-key encryption: `(v b + e_0, v a + e_1)` over `Q_l` and the special prime `p_0` with
/// ternary `v`, divided by `p_0` (the noise `v e + e_0 + e_1 s`, a few thousand, shrinks far
/// below the division's rounding term; the "extended" public-key encryption, OpenFHE's EXTENDED
/// technique, with one special prime instead of all of `P`), plus `m`. The public key is an
/// RLWE sample modulo `Q P`; its reduction modulo `Q_l p_0` is one modulo a smaller modulus, no
/// easier to break. One limb at a time ([`encrypt_pk_limb`]); hosts run the limbs in parallel
/// with the same result.
pub fn encrypt_pk<R: RngCore + CryptoRng>(
    ctx: &Context,
    pk: &PublicKey,
    pt: &Plaintext,
    rng: &mut R,
) -> Result<Ciphertext, Error> {
    check_pk_inputs(ctx, pk, pt)?;
    let n = ctx.n();
    let noise = PkNoise::sample(ctx, rng);
    let count = pk_limbs(ctx, pt.level).count();
    let mut c0 = RnsPoly::zero(n, count);
    let mut c1 = RnsPoly::zero(n, count);
    let mut vq = vec![0u64; n];
    let mut a = vec![0u64; n];
    for (pos, i) in pk_limbs(ctx, pt.level).enumerate() {
        public_a_limb(ctx, pk, i, &mut a);
        encrypt_pk_limb(ctx, pk, &noise, i, &a, &mut vq, c0.limb_mut(pos), c1.limb_mut(pos));
    }
    divide_by_p0(ctx, &mut c0, pt.level)?;
    divide_by_p0(ctx, &mut c1, pt.level)?;
    Ok(encrypt_pk_finish(ctx, c0, c1, pt))
}

/// One limb of decryption: `out = c_0 + c_1 s + c_2 s^2 + ...` with `s` the secret limb in
/// evaluation form. Hosts run the limbs in parallel.
pub fn decrypt_limb(q: &Modulus, s: &[u64], polys: &[&[u64]], out: &mut [u64]) {
    out.copy_from_slice(polys[polys.len() - 1]);
    // Horner in s from the highest-degree polynomial down.
    for c in polys[..polys.len() - 1].iter().rev() {
        for ((o, &sv), &cv) in out.iter_mut().zip(s).zip(c.iter()) {
            // Constant time: s is secret and the partial sums reveal it.
            *o = q.add_ct(q.mul_ct(*o, sv), cv);
        }
    }
}

/// Decrypts to a plaintext in evaluation form.
pub fn decrypt(ctx: &Context, sk: &SecretKey, ct: &Ciphertext) -> Result<Plaintext, Error> {
    if ct.level > ctx.params().max_level() || ct.c.len() < 2 || ct.c.iter().any(|c| c.limbs() != ct.level + 1) {
        return Err(Error::InvalidArgument("ciphertext does not match the context"));
    }
    let n = ctx.n();
    let mut s = vec![0u64; n];
    let mut poly = RnsPoly::zero(n, ct.level + 1);
    for i in 0..=ct.level {
        let (q, t) = (&ctx.q()[i], &ctx.ntt()[i]);
        sk.ntt_limb(t, &mut s);
        let polys: alloc::vec::Vec<&[u64]> = ct.c.iter().map(|c| c.limb(i)).collect();
        decrypt_limb(q, &s, &polys, poly.limb_mut(i));
    }
    s.zeroize();
    Ok(Plaintext { poly, level: ct.level, scale: ct.scale, log_slots: ct.log_slots, ntt: true })
}
