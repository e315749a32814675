//! The precomputed state of a parameter set: moduli with their constants and NTT tables.

use alloc::vec::Vec;

use super::params::Parameters;
use super::sampling::GaussianSampler;
use crate::ring::{Modulus, NttTable};
use crate::Error;

/// Moduli and NTT tables of Q ∪ P (Q first) for one parameter set. Building it at N = 2^16 costs
/// one NTT plan per prime (2 MiB each); a device that cannot hold them uses the streaming
/// encryptor, which keeps one plan at a time.
pub struct Context {
    params: Parameters,
    qp: Vec<Modulus>,
    ntt: Vec<NttTable>,
    fingerprint: [u8; 32],
    gaussian: GaussianSampler,
    /// P mod q_i for every ciphertext prime.
    p_mod_q: Vec<u64>,
}

impl core::fmt::Debug for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context").field("params", &self.params).finish()
    }
}

impl Context {
    /// Builds every modulus and NTT table.
    pub fn new(params: Parameters) -> Result<Self, Error> {
        let qp: Vec<Modulus> = params.q_moduli().chain(params.p_moduli()).collect();
        let n = params.n();
        let ntt = qp.iter().map(|q| NttTable::new(n, *q)).collect::<Result<Vec<_>, _>>()?;
        let p_mod_q = params
            .q_moduli()
            .map(|qi| params.p().iter().fold(1u64, |acc, &p| qi.mul(acc, qi.reduce(p))))
            .collect();
        Ok(Context {
            fingerprint: params.fingerprint(),
            gaussian: GaussianSampler::new(params.sigma()),
            params,
            qp,
            ntt,
            p_mod_q,
        })
    }

    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
    /// Ring degree.
    pub fn n(&self) -> usize {
        self.params.n()
    }
    /// Number of ciphertext primes (L + 1).
    pub fn q_len(&self) -> usize {
        self.params.q().len()
    }
    /// Ciphertext moduli q_0..q_L.
    pub fn q(&self) -> &[Modulus] {
        &self.qp[..self.q_len()]
    }
    /// Special moduli.
    pub fn p(&self) -> &[Modulus] {
        &self.qp[self.q_len()..]
    }
    /// All moduli, Q first.
    pub fn qp(&self) -> &[Modulus] {
        &self.qp
    }
    /// NTT tables of Q ∪ P, Q first.
    pub fn ntt(&self) -> &[NttTable] {
        &self.ntt
    }
    /// NTT tables of Q.
    pub fn ntt_q(&self) -> &[NttTable] {
        &self.ntt[..self.q_len()]
    }
    /// NTT tables of P.
    pub fn ntt_p(&self) -> &[NttTable] {
        &self.ntt[self.q_len()..]
    }
    /// Fingerprint of the parameter set.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }
    /// The error sampler.
    pub fn gaussian(&self) -> &GaussianSampler {
        &self.gaussian
    }
    /// `P mod q_i`.
    pub fn p_mod_q(&self, i: usize) -> u64 {
        self.p_mod_q[i]
    }
    /// Q-limb index range of key-switching digit `j`.
    pub fn digit_range(&self, j: usize) -> core::ops::Range<usize> {
        let alpha = self.params.alpha();
        (j * alpha).min(self.q_len())..((j + 1) * alpha).min(self.q_len())
    }
}
