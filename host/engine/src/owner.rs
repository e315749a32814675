//! Owner-side helpers: decryption straight to the real slot values (with the secret key), and
//! public-key encryption with the host's threads.

use hetune_core::ckks::encryptor::{self, decrypt_limb, PkNoise};
use hetune_core::ckks::{Ciphertext, Encoder, Plaintext};
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;

use crate::evaluator::par_new_poly;
use crate::Result;

/// Decrypts only the limbs decoding needs, in parallel over limbs, and decodes the real slots.
pub fn decrypt_decode(ctx: &Context, sk: &SecretKey, ct: &Ciphertext) -> Result<Vec<f64>> {
    let k = hetune_core::ckks::encoder::limbs_for_decoding(&ctx.q()[..=ct.level], ct.scale);
    let n = ctx.n();
    let limbs: Vec<Vec<u64>> = (0..k)
        .into_par_iter()
        .map(|i| {
            let mut s = vec![0u64; n];
            sk.ntt_limb(&ctx.ntt()[i], &mut s);
            let polys: Vec<&[u64]> = ct.c.iter().map(|c| c.limb(i)).collect();
            let mut out = vec![0u64; n];
            decrypt_limb(&ctx.q()[i], &s, &polys, &mut out);
            zeroize::Zeroize::zeroize(&mut s);
            out
        })
        .collect();
    let poly = RnsPoly::from_vec(n, limbs.concat());
    let pt = Plaintext { poly, level: k - 1, scale: ct.scale, log_slots: ct.log_slots, ntt: true };
    Ok(Encoder::new(ctx).decode_real(&pt)?)
}

/// Public-key encryption for hosts: the public key's uniform half `a` expanded from its seed
/// once (the limbs of `Q` and `p_0`, `8 n` bytes a limb) instead of at every encryption, the
/// limbs of each encryption in parallel and the two divisions by `p_0` side by side. Bit for bit
/// [`hetune_core::ckks::encrypt_pk`] for the same random stream: the randomness is drawn in the
/// same order before the parallel part.
pub struct PkEncryptor<'a> {
    ctx: &'a Context,
    pk: &'a PublicKey,
    a: RnsPoly,
}

impl<'a> PkEncryptor<'a> {
    /// Expands `pk`'s uniform half (in parallel over limbs).
    pub fn new(ctx: &'a Context, pk: &'a PublicKey) -> Result<Self> {
        encryptor::check_public_key(ctx, pk)?;
        // Encryption reads the limbs of Q and the first special prime p_0 (global index q_len).
        let a = par_new_poly(ctx.n(), ctx.q_len() + 1, |i, out| encryptor::public_a_limb(ctx, pk, i, out));
        Ok(PkEncryptor { ctx, pk, a })
    }

    /// Encrypts `pt` (in evaluation form) under the public key.
    pub fn encrypt<R: RngCore + CryptoRng>(&self, pt: &Plaintext, rng: &mut R) -> Result<Ciphertext> {
        let ctx = self.ctx;
        encryptor::check_pk_inputs(ctx, self.pk, pt)?;
        let n = ctx.n();
        let noise = PkNoise::sample(ctx, rng);
        let limbs: Vec<usize> = encryptor::pk_limbs(ctx, pt.level).collect();
        if limbs.iter().any(|&i| i >= self.a.limbs()) {
            return Err(hetune_core::Error::InvalidArgument("public-key encryption reads a limb not expanded").into());
        }
        let mut c0 = RnsPoly::zero(n, limbs.len());
        let mut c1 = RnsPoly::zero(n, limbs.len());
        c0.as_mut_slice()
            .par_chunks_exact_mut(n)
            .zip(c1.as_mut_slice().par_chunks_exact_mut(n))
            .zip(limbs.par_iter())
            .for_each_init(
                || vec![0u64; n],
                |vq, ((o0, o1), &i)| {
                    encryptor::encrypt_pk_limb(ctx, self.pk, &noise, i, self.a.limb(i), vq, o0, o1);
                },
            );
        let (mut c0, mut c1) = (c0, c1);
        let (r0, r1) = rayon::join(
            || encryptor::divide_by_p0(ctx, &mut c0, pt.level),
            || encryptor::divide_by_p0(ctx, &mut c1, pt.level),
        );
        r0?;
        r1?;
        Ok(encryptor::encrypt_pk_finish(ctx, c0, c1, pt))
    }
}
