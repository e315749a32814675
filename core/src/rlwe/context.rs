//! The precomputed state of a parameter set: moduli with their constants and NTT tables.

use alloc::vec::Vec;

use super::params::Parameters;
use super::sampling::GaussianSampler;
use crate::ring::{BasisConverter, Modulus, NttTable};
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
    /// P^-1 mod q_i for every ciphertext prime.
    p_inv_mod_q: Vec<u64>,
    /// Fast basis conversion from P to Q (rows j <= l serve level l).
    p_to_q: BasisConverter,
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
        let p_mod_q: Vec<u64> =
            params.q_moduli().map(|qi| params.p().iter().fold(1u64, |acc, &p| qi.mul(acc, qi.reduce(p)))).collect();
        // Distinct primes: P is invertible modulo every q_i.
        let p_inv_mod_q = params.q_moduli().zip(&p_mod_q).map(|(qi, &pm)| qi.inv(pm).unwrap_or(0)).collect();
        let q_len = params.q().len();
        let p_to_q = BasisConverter::new(&qp[q_len..], &qp[..q_len]);
        Ok(Context {
            p_inv_mod_q,
            p_to_q,
            fingerprint: params.fingerprint(),
            gaussian: GaussianSampler::new(params.sigma())?,
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
    /// `P^-1 mod q_i`.
    pub fn p_inv_mod_q(&self, i: usize) -> u64 {
        self.p_inv_mod_q[i]
    }
    /// Basis conversion from P to Q; output row j is limb q_j.
    pub fn p_to_q(&self) -> &BasisConverter {
        &self.p_to_q
    }
    /// Divides a polynomial over `q_0..q_l` and P (limbs back to back, evaluation form, Q part
    /// first) by P with exact rounding, leaving `l + 1` limbs: the ModDown step of hybrid key
    /// switching and of public-key encryption. The P part is converted exactly (centered), so
    /// the only error added is the rounding of the division, below 1/2 per coefficient.
    pub fn mod_down(&self, poly: &mut crate::ring::RnsPoly, level: usize) {
        let n = self.n();
        let k = self.p().len();
        let q_len = self.q_len();
        let mut ys = alloc::vec![0u64; k * n];
        let mut coeff = alloc::vec![0u64; n];
        for (j, y) in ys.chunks_exact_mut(n).enumerate() {
            coeff.copy_from_slice(poly.limb(level + 1 + j));
            self.ntt[q_len + j].inverse(&mut coeff);
            self.p_to_q.scale_input_limb(j, &coeff, y);
        }
        let mut u = alloc::vec![0u64; n];
        self.p_to_q.rounding_quotients(&ys, &mut u);
        for i in 0..=level {
            self.p_to_q.accumulate_output_limb_centered(i, &ys, &u, &mut coeff);
            self.ntt[i].forward(&mut coeff);
            let q = &self.qp[i];
            let pinv = self.p_inv_mod_q[i];
            let pinv_s = q.shoup(pinv);
            for (x, &c) in poly.limb_mut(i).iter_mut().zip(&coeff) {
                *x = q.mul_shoup(q.sub(*x, c), pinv, pinv_s);
            }
        }
        poly.truncate(level + 1);
    }
    /// Q-limb index range of key-switching digit `j`.
    pub fn digit_range(&self, j: usize) -> core::ops::Range<usize> {
        let alpha = self.params.alpha();
        (j * alpha).min(self.q_len())..((j + 1) * alpha).min(self.q_len())
    }
}
