//! The processes a training run spreads over, as the shared loop ([`super::drive`]) and the
//! server's step ([`super::server::Server::step`]) see them: one process ([`Solo`]), or the ranks
//! of an MPI job (`hetune train --distributed`, [`super::mpi`]).
//!
//! A step's batch comes in parts of at most one block row of the packing; part `j` of a step
//! goes to rank `j mod R`. Every rank computes its parts' contributions to the update
//! ([`hetune_engine::learning::trainer::ServerTrainer::part`]) and adds them; the ranks' sums meet
//! on rank 0 by homomorphic addition (exact modular arithmetic, so the order of the additions
//! does not change a bit); rank 0 alone updates the weights, checkpoints, and sends the new
//! weights to the others. The sum and the weights cross between ranks as raw limbs in
//! [`frame`]s: the parameter fingerprint is compared once per job ([`Team::agree`]), and every
//! frame is checked against the parameter set (lengths, levels, coefficients below their modulus)
//! before any use.

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::Context;
use hetune_engine::evaluator::Evaluator;

use crate::error::{Error, Result};

/// Bytes and seconds a rank spent exchanging with the others, since the job started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
    /// Seconds inside exchanges (waiting for the other ranks included).
    pub seconds: f64,
}

impl Traffic {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            sent: self.sent - earlier.sent,
            received: self.received - earlier.received,
            seconds: self.seconds - earlier.seconds,
        }
    }
}

/// The ranks of a run and their meeting points. Rank 0 is the root: it holds the owner's side,
/// updates the weights and writes the checkpoints.
pub trait Team {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// Ranks in all.
    fn size(&self) -> usize;
    /// Whether this is rank 0.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
    /// Every rank's parameter fingerprint equals the root's (once per job, before any
    /// ciphertext crosses).
    fn agree(&mut self, fingerprint: &[u8; 32]) -> Result<()>;
    /// The root's bytes (`Some` on the root) on every rank: the job's description.
    fn share_bytes(&mut self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>>;
    /// The root's words (`words` on the root; ignored elsewhere) on every rank: the start of
    /// the schedule, the owner's decision on an epoch.
    fn share_words(&mut self, words: &[u64]) -> Result<Vec<u64>>;
    /// The sum of every rank's contribution to a step (`own`: `None` for a rank without a part
    /// in it), on the root; `None` elsewhere.
    fn sum(&mut self, ev: &Evaluator, own: Option<Ciphertext>) -> Result<Option<Ciphertext>>;
    /// The root's updated `(W, V)` (given on the root) on every other rank; `None` on the root.
    fn share_weights(
        &mut self,
        ctx: &Context,
        weights: Option<(&Ciphertext, &Ciphertext)>,
    ) -> Result<Option<(Ciphertext, Ciphertext)>>;
    /// Traffic so far.
    fn traffic(&self) -> Traffic;
}

/// One process: nothing crosses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Team for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn agree(&mut self, _: &[u8; 32]) -> Result<()> {
        Ok(())
    }
    fn share_bytes(&mut self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>> {
        bytes.ok_or(Error::InvalidArgument("the root shares its bytes"))
    }
    fn share_words(&mut self, words: &[u64]) -> Result<Vec<u64>> {
        Ok(words.to_vec())
    }
    fn sum(&mut self, _: &Evaluator, own: Option<Ciphertext>) -> Result<Option<Ciphertext>> {
        Ok(own)
    }
    fn share_weights(
        &mut self,
        _: &Context,
        _: Option<(&Ciphertext, &Ciphertext)>,
    ) -> Result<Option<(Ciphertext, Ciphertext)>> {
        Ok(None)
    }
    fn traffic(&self) -> Traffic {
        Traffic::default()
    }
}

/// The parts of a step of `parts` parts that rank `rank` of `size` computes.
pub fn my_parts(parts: usize, rank: usize, size: usize) -> impl Iterator<Item = usize> {
    (0..parts).filter(move |j| j % size.max(1) == rank)
}

/// Bytes of a frame's header: level, polynomials, log2 slots (u32 each), 4 bytes reserved
/// (zero), the scale (f64), little-endian.
pub const FRAME_HEADER: usize = 24;

/// The bytes of a ciphertext between ranks: [`FRAME_HEADER`] bytes, then every limb of every
/// polynomial as little-endian u64 (the evaluator's own form: no conversion, no parameter
/// record; the fingerprint was compared once per job).
pub fn frame(ct: &Ciphertext) -> Vec<u8> {
    let words: usize = ct.c.iter().map(|p| p.as_slice().len()).sum();
    let mut out = Vec::with_capacity(FRAME_HEADER + 8 * words);
    for v in [ct.level as u32, ct.c.len() as u32, ct.log_slots, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&ct.scale.to_bits().to_le_bytes());
    for p in &ct.c {
        for w in p.as_slice() {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    out
}

/// The largest frame of `ctx`'s parameter set: two polynomials at the top level.
pub fn max_frame(ctx: &Context) -> usize {
    FRAME_HEADER + 2 * (ctx.params().max_level() + 1) * ctx.n() * 8
}

fn bad_frame(what: &'static str) -> Error {
    Error::Peer(what)
}

/// The ciphertext of a [`frame`] from another rank, checked against `ctx`'s parameter set:
/// two polynomials, a level the set has, the slots a ring of its degree holds, a positive
/// finite scale, the exact length, every coefficient below its limb's modulus.
pub fn unframe(ctx: &Context, bytes: &[u8]) -> Result<Ciphertext> {
    if bytes.len() < FRAME_HEADER {
        return Err(bad_frame("a ciphertext frame shorter than its header"));
    }
    let word = |i: usize| u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    let (level, polys, log_slots, reserved) = (word(0) as usize, word(1), word(2), word(3));
    let mut scale_bytes = [0u8; 8];
    scale_bytes.copy_from_slice(&bytes[16..24]);
    let scale = f64::from_bits(u64::from_le_bytes(scale_bytes));
    let params = ctx.params();
    if polys != 2 || reserved != 0 {
        return Err(bad_frame("a ciphertext frame that is not two polynomials"));
    }
    if level > params.max_level() || log_slots > params.log_n() - 1 {
        return Err(bad_frame("a ciphertext frame beyond the parameter set (level or slots)"));
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(bad_frame("a ciphertext frame with a scale that is not a positive number"));
    }
    let n = ctx.n();
    let per_poly = (level + 1) * n;
    if bytes.len() != FRAME_HEADER + 2 * per_poly * 8 {
        return Err(bad_frame("a ciphertext frame whose length does not match its level"));
    }
    let moduli = &ctx.q()[..=level];
    let mut c = Vec::with_capacity(2);
    for k in 0..2 {
        let body = &bytes[FRAME_HEADER + k * per_poly * 8..FRAME_HEADER + (k + 1) * per_poly * 8];
        let mut data = Vec::with_capacity(per_poly);
        for (i, chunk) in body.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let v = u64::from_le_bytes(b);
            if v >= moduli[i / n].value() {
                return Err(bad_frame("a ciphertext frame with a coefficient above its modulus"));
            }
            data.push(v);
        }
        c.push(RnsPoly::from_vec(n, data));
    }
    Ok(Ciphertext { c, level, scale, log_slots })
}

/// `other` is a contribution of the same step as `own`: same level, scale (to the bit) and slots.
pub fn same_shape(own: &Ciphertext, other: &Ciphertext) -> Result<()> {
    if own.level != other.level || own.scale.to_bits() != other.scale.to_bits() || own.log_slots != other.log_slots {
        return Err(bad_frame("a rank's contribution at another level, scale or slot count than the root's"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetune_core::ckks::{encrypt_sk, Encoder};
    use hetune_core::rlwe::SecretKey;
    use hetune_core::{Parameters, Security};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn frames_round_trip_and_hostile_ones_are_errors() {
        let params = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let ctx = Context::new(params).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let pt = Encoder::new(&ctx).encode_real(&[0.25; 8], 11, 3, ctx.params().scale()).unwrap();
        let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
        let bytes = frame(&ct);
        assert_eq!(bytes.len(), FRAME_HEADER + 2 * 4 * ctx.n() * 8);
        assert!(bytes.len() <= max_frame(&ctx));
        assert_eq!(unframe(&ctx, &bytes).unwrap(), ct);
        same_shape(&ct, &unframe(&ctx, &bytes).unwrap()).unwrap();
        // Truncated, extended, another level, another polynomial count, a bad scale, a
        // coefficient at its modulus: each a typed error, none a panic.
        let mut cases: Vec<Vec<u8>> = vec![
            bytes[..bytes.len() - 8].to_vec(),
            [bytes.as_slice(), &[0u8; 8]].concat(),
            bytes[..10].to_vec(),
            Vec::new(),
        ];
        let mut c = bytes.clone();
        c[0] = 2;
        cases.push(c);
        let mut c = bytes.clone();
        c[0..4].copy_from_slice(&1000u32.to_le_bytes());
        cases.push(c);
        let mut c = bytes.clone();
        c[4] = 3;
        cases.push(c);
        let mut c = bytes.clone();
        c[16..24].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        cases.push(c);
        let mut c = bytes.clone();
        let q = ctx.q()[0].value();
        c[FRAME_HEADER..FRAME_HEADER + 8].copy_from_slice(&q.to_le_bytes());
        cases.push(c);
        for bad in cases {
            assert!(matches!(unframe(&ctx, &bad), Err(Error::Peer(_))), "{} bytes", bad.len());
        }
        let mut other = ct.clone();
        other.scale *= 2.0;
        assert!(same_shape(&ct, &other).is_err());
        assert_eq!(my_parts(5, 1, 2).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(my_parts(1, 1, 2).count(), 0);
    }
}
