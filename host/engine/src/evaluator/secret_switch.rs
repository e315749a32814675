//! Switching a ciphertext from one secret to another (sparse-secret encapsulation for
//! bootstrapping) and raising its modulus (ModRaise), on the evaluator's key-switching machinery.

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::encapsulation::encapsulation_moduli;
use hetune_core::rlwe::{Context, EncapsulationKey, SwitchingKey};
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

/// The encapsulation key to the sparse secret with its uniform half expanded: limbs modulo `q_0`
/// and `p_0` of `b` and `a` (see [`EncapsulationKey`]).
pub struct EncapsulationSwitch {
    b: RnsPoly,
    a: RnsPoly,
}

impl EncapsulationSwitch {
    /// Expands `key`'s uniform half.
    pub fn new(ctx: &Context, key: EncapsulationKey) -> Result<Self, Error> {
        if key.b.limbs() != 2 || key.b.n() != ctx.n() || ctx.p().is_empty() {
            return Err(Error::ParameterMismatch("encapsulation key of another parameter set"));
        }
        let mut a = RnsPoly::zero(ctx.n(), 2);
        for k in 0..2 {
            key.a_limb(ctx, k, a.limb_mut(k));
        }
        Ok(EncapsulationSwitch { b: key.b, a })
    }
}

impl Evaluator {
    /// Sparse-secret encapsulation of a level-0 ciphertext: the same message under the sparse
    /// secret, by a key switch over `q_0 p_0` with `p_0` as the only special prime.
    pub fn encapsulate(&self, ct: &Ciphertext, key: &EncapsulationSwitch) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if ct.c.len() != 2 {
            return Err(Error::InvalidArgument("encapsulation needs a degree-1 ciphertext"));
        }
        if ct.level != 0 {
            return Err(Error::InvalidArgument("encapsulation takes a level-0 ciphertext"));
        }
        let ctx = self.context();
        let [iq, ip] = encapsulation_moduli(ctx);
        let (q, p) = (ctx.qp()[iq], ctx.qp()[ip]);
        let (tq, tp) = (&ctx.ntt()[iq], &ctx.ntt()[ip]);
        // ModUp: c_1 modulo q_0 as centered integers, reduced modulo p_0.
        let c1_q = ct.c[1].limb(0);
        let mut c1_p = c1_q.to_vec();
        tq.inverse(&mut c1_p);
        for v in c1_p.iter_mut() {
            *v = p.reduce_i64(q.center(*v));
        }
        tp.forward(&mut c1_p);
        // (c_1 b, c_1 a) modulo q_0 and p_0, then ModDown by p_0: (x_q - [x_p]_q) / p_0.
        let p_inv = q.inv(q.reduce(p.value())).ok_or(Error::InvalidArgument("p_0 not invertible modulo q_0"))?;
        let switch = |key: &RnsPoly| -> Vec<u64> {
            let mut xq: Vec<u64> = c1_q.iter().zip(key.limb(0)).map(|(&c, &k)| q.mul(c, k)).collect();
            let mut xp: Vec<u64> = c1_p.iter().zip(key.limb(1)).map(|(&c, &k)| p.mul(c, k)).collect();
            tp.inverse(&mut xp);
            for v in xp.iter_mut() {
                *v = q.reduce_i64(p.center(*v));
            }
            tq.forward(&mut xp);
            for (o, &d) in xq.iter_mut().zip(&xp) {
                *o = q.mul(q.sub(*o, d), p_inv);
            }
            xq
        };
        let (d0, d1) = rayon::join(|| switch(&key.b), || switch(&key.a));
        let mut c0 = ct.c[0].clone();
        for (o, &d) in c0.limb_mut(0).iter_mut().zip(&d0) {
            *o = q.add(*o, d);
        }
        Ok(Ciphertext {
            c: vec![c0, RnsPoly::from_vec(self.n(), d1)],
            level: 0,
            scale: ct.scale,
            log_slots: ct.log_slots,
        })
    }

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
