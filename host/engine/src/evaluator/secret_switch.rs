//! Switching a ciphertext from one secret to another (sparse-secret encapsulation for
//! bootstrapping) and raising its modulus (ModRaise), on the evaluator's key-switching machinery.

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::{Context, SwitchingKey};
use rayon::prelude::*;

use super::keys::KeyEntry;
use super::Evaluator;
use crate::Error;

/// A key that switches ciphertexts from one secret to another (made by the owner with
/// [`SwitchingKey::generate`]), with its uniform halves expanded on first use.
pub struct SecretSwitchKey(KeyEntry);

impl SecretSwitchKey {
    /// Wraps an encapsulation key (a switching key from one secret to another).
    pub fn new(ctx: &Context, key: SwitchingKey) -> Result<Self, Error> {
        if !matches!(key.kind, hetune_core::rlwe::SwitchingKind::Encapsulation { .. }) {
            return Err(Error::InvalidArgument("a secret-switching key must be an encapsulation key"));
        }
        Ok(SecretSwitchKey(KeyEntry::new(ctx, key)?))
    }
}

impl Evaluator {
    /// `ct` re-encrypted under the target secret of `key`, at the same level and scale.
    pub fn switch_secret(&self, ct: &Ciphertext, key: &SecretSwitchKey) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if ct.c.len() != 2 {
            return Err(Error::InvalidArgument("secret switching needs a degree-1 ciphertext"));
        }
        let mut out = Ciphertext {
            c: vec![ct.c[0].clone(), RnsPoly::zero(self.n(), ct.level + 1)],
            level: ct.level,
            scale: ct.scale,
            log_slots: ct.log_slots,
        };
        let mut ws = self.pool.get();
        let (o0, o1) = out.c.split_at_mut(1);
        self.key_switch_add(ct.c[1].as_slice(), ct.level, &key.0, &mut ws, o0[0].as_mut_slice(), o1[0].as_mut_slice());
        Ok(out)
    }

    /// ModRaise: reads a level-0 ciphertext's centered residues modulo q_0 as integers and
    /// reduces them modulo every prime up to `level`. The result decrypts to `m + q_0 I` for a
    /// small integer polynomial `I`.
    pub fn mod_raise(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if ct.level != 0 {
            return Err(Error::InvalidArgument("ModRaise takes a level-0 ciphertext"));
        }
        let ctx = self.context();
        let n = self.n();
        let q0 = ctx.q()[0];
        let c =
            ct.c.iter()
                .map(|p| {
                    let mut coeff = p.limb(0).to_vec();
                    ctx.ntt()[0].inverse(&mut coeff);
                    let centered: Vec<i64> = coeff.iter().map(|&v| q0.center(v)).collect();
                    let mut out = RnsPoly::zero(n, level + 1);
                    out.as_mut_slice().par_chunks_exact_mut(n).enumerate().for_each(|(i, limb)| {
                        let q = &ctx.q()[i];
                        for (o, &v) in limb.iter_mut().zip(&centered) {
                            *o = q.reduce_i64(v);
                        }
                        ctx.ntt()[i].forward(limb);
                    });
                    out
                })
                .collect();
        Ok(Ciphertext { c, level, scale: ct.scale, log_slots: ct.log_slots })
    }
}
