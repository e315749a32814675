//! Owner-side helpers that need the secret key: decryption straight to the real slot values.

use hetune_core::ckks::encryptor::decrypt_limb;
use hetune_core::ckks::{Ciphertext, Encoder, Plaintext};
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::{Context, SecretKey};
use rayon::prelude::*;

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
