//! Encryption with the secret key (seeded) or the public key, and decryption.

use alloc::vec;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::plaintext::{Ciphertext, Plaintext, SeededCiphertext};
use crate::ring::{Modulus, RnsPoly};
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

/// Public-key encryption: `(v b + e_0, v a + e_1)` over `Q_l ∪ P` with ternary `v`, divided by
/// P (which shrinks the noise `v e + e_0 + e_1 s` to a rounding term), plus `m`.
pub fn encrypt_pk<R: RngCore + CryptoRng>(
    ctx: &Context,
    pk: &PublicKey,
    pt: &Plaintext,
    rng: &mut R,
) -> Result<Ciphertext, Error> {
    check_plaintext(ctx, pt)?;
    if pk.b.limbs() != ctx.qp().len() {
        return Err(Error::InvalidArgument("public key does not match the context"));
    }
    let n = ctx.n();
    let level = pt.level;
    let limbs: alloc::vec::Vec<usize> = (0..=level).chain(ctx.q_len()..ctx.qp().len()).collect();
    let mut v = vec![0i8; n];
    ternary(rng, &mut v);
    let mut e0 = vec![0i8; n];
    let mut e1 = vec![0i8; n];
    ctx.gaussian().fill(rng, &mut e0);
    ctx.gaussian().fill(rng, &mut e1);
    let mut c0 = RnsPoly::zero(n, limbs.len());
    let mut c1 = RnsPoly::zero(n, limbs.len());
    let mut vq = vec![0u64; n];
    for (pos, &i) in limbs.iter().enumerate() {
        let (q, t) = (&ctx.qp()[i], &ctx.ntt()[i]);
        t.forward_small(&v, &mut vq);
        let out0 = c0.limb_mut(pos);
        t.forward_small(&e0, out0);
        for ((o, &b), &vv) in out0.iter_mut().zip(pk.b.limb(i)).zip(vq.iter()) {
            *o = q.add_ct(*o, q.mul_ct(vv, b));
        }
        let out1 = c1.limb_mut(pos);
        t.forward_small(&e1, out1);
        let mut a = UniformExpander::new(&pk.seed, stream_id(0, i), q);
        for (o, &vv) in out1.iter_mut().zip(&vq) {
            *o = q.add_ct(*o, q.mul_ct(vv, a.next_residue()));
        }
    }
    v.zeroize();
    vq.zeroize();
    e0.zeroize();
    e1.zeroize();
    ctx.mod_down(&mut c0, level);
    ctx.mod_down(&mut c1, level);
    c0.add_assign(&pt.poly, ctx.q());
    Ok(Ciphertext { c: vec![c0, c1], level, scale: pt.scale, log_slots: pt.log_slots })
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
