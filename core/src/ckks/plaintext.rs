//! Plaintexts and ciphertexts with their CKKS metadata: level, scale and slot count.

use alloc::vec::Vec;

use crate::ring::RnsPoly;
use crate::rlwe::sampling::{stream_id, UniformExpander};
use crate::rlwe::Context;

/// An encoded message: one polynomial over `q_0..q_level`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plaintext {
    /// The polynomial (`level + 1` limbs).
    pub poly: RnsPoly,
    /// Level: the polynomial lives modulo `q_0 ... q_level`.
    pub level: usize,
    /// Scale of the encoding.
    pub scale: f64,
    /// log2 of the number of slots.
    pub log_slots: u32,
    /// Whether `poly` is in evaluation (NTT) form.
    pub ntt: bool,
}

/// A ciphertext `(c_0, c_1[, c_2])` in evaluation form; decrypts to `c_0 + c_1 s (+ c_2 s^2)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ciphertext {
    /// The polynomials, each with `level + 1` limbs.
    pub c: Vec<RnsPoly>,
    /// Level.
    pub level: usize,
    /// Scale.
    pub scale: f64,
    /// log2 of the number of slots.
    pub log_slots: u32,
}

impl Ciphertext {
    /// Degree: number of polynomials less one.
    pub fn degree(&self) -> usize {
        self.c.len() - 1
    }
}

/// A fresh secret-key ciphertext whose uniform half `c_1 = a` is given by a seed: half the bytes
/// on the wire. `c_0` is in evaluation form if `c0_ntt`, else in coefficient form (as the
/// streaming encryptor produces it).
#[derive(Clone, Debug, PartialEq)]
pub struct SeededCiphertext {
    /// Seed of `a`, expanded on stream `(0, limb)` in evaluation form.
    pub seed: [u8; 32],
    /// `c_0 = -a s + m + e`.
    pub c0: RnsPoly,
    /// Whether `c0` is in evaluation form.
    pub c0_ntt: bool,
    /// Level.
    pub level: usize,
    /// Scale.
    pub scale: f64,
    /// log2 of the number of slots.
    pub log_slots: u32,
}

impl SeededCiphertext {
    /// Expands the seed into a full ciphertext in evaluation form.
    pub fn expand(&self, ctx: &Context) -> Ciphertext {
        let mut c0 = self.c0.clone();
        if !self.c0_ntt {
            c0.ntt(&ctx.ntt()[..=self.level]);
        }
        let mut c1 = RnsPoly::zero(ctx.n(), self.level + 1);
        for (i, limb) in c1.limbs_iter_mut().enumerate() {
            UniformExpander::new(&self.seed, stream_id(0, i), &ctx.q()[i]).fill(limb);
        }
        Ciphertext { c: alloc::vec![c0, c1], level: self.level, scale: self.scale, log_slots: self.log_slots }
    }
}
