//! CKKS/RLWE parameter sets: ring degree, RNS chain, special primes for hybrid key switching,
//! scale, secret and error distributions, named presets and the 128-bit security gate.

use heapless::{String, Vec as HVec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ring::primes::{ntt_primes, PrimePlacement};
use crate::ring::Modulus;
use crate::Error;

/// Most ciphertext-modulus limbs a parameter set may have.
pub const MAX_Q_LIMBS: usize = 48;
/// Most special (key-switching) limbs a parameter set may have.
pub const MAX_P_LIMBS: usize = 16;
/// Smallest and largest supported log2 N.
pub const LOG_N_RANGE: (u32, u32) = (10, 17);
/// Bits by which q_0 must exceed the scale: room for a message of magnitude up to 2^9 plus its
/// noise at the last level (a set below it decrypts to garbage, silently).
pub const Q0_HEADROOM_BITS: u32 = 10;
/// Standard deviation of the discrete Gaussian error: the value the 128-bit bounds were estimated
/// for (HomomorphicEncryption.org standard, 2018; ePrint 2024/463 uses 3.19 = 8 / sqrt(2 pi)).
pub const DEFAULT_SIGMA: f64 = 3.2;
/// How far from [`DEFAULT_SIGMA`] the error width of a set that passes the 128-bit gate may be:
/// wide enough for both 3.2 and 3.19, narrow enough that no weaker error passes.
pub const SIGMA_TOLERANCE: f64 = 0.01;

/// Distribution of secret-key coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretDistribution {
    /// Each coefficient uniform in {-1, 0, 1}.
    Ternary,
    /// Exactly `hamming_weight` non-zero coefficients, each +-1 (for bootstrapping).
    SparseTernary {
        /// Number of non-zero coefficients.
        hamming_weight: u32,
    },
}

/// Whether a caller accepts parameters below 128-bit security. The opt-in is by name so that it
/// stands out wherever it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Reject any set above the HomomorphicEncryption.org 128-bit bound (the default).
    Require128Bits,
    /// Accept an insecure set: for tests and benchmarks only, never for real data.
    InsecureForTestingOnly,
}

/// Largest log2(QP) for 128-bit classical security with a uniform ternary secret and a
/// Gaussian error of width 3.19-3.2, by log2 N: Table 5.2 of "Security Guidelines for
/// Implementing Homomorphic Encryption" (Bossuat et al., ePrint 2024/463), which revises the 2018
/// HomomorphicEncryption.org table downwards for N <= 2^15 (868 instead of 881 at 2^15) and adds
/// 2^16 and 2^17. The table covers uniform ternary (and Gaussian) secrets only: a sparse main
/// secret has no cited bound here, so the gate refuses it (see [`Parameters::is_secure`]).
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    match log_n {
        10 => Some(26),
        11 => Some(53),
        12 => Some(106),
        13 => Some(214),
        14 => Some(430),
        15 => Some(868),
        16 => Some(1747),
        17 => Some(3523),
        _ => None,
    }
}

/// A parameter set described by bit sizes; [`Parameters::new`] turns it into primes.
#[derive(Clone, Copy, Debug)]
pub struct ParametersLiteral<'a> {
    /// Name printed with the set.
    pub name: &'a str,
    /// log2 of the ring degree N.
    pub log_n: u32,
    /// Bit sizes of the ciphertext primes, q_0 first. q_0 is the largest prime below 2^bits;
    /// the others are the primes closest to 2^bits (so rescaling keeps the scale steady).
    pub log_q: &'a [u32],
    /// Bit size of each special prime.
    pub log_p: u32,
    /// Number of digits of hybrid key switching; the special-prime count is ceil(|Q| / dnum).
    pub dnum: usize,
    /// log2 of the default scale.
    pub log_scale: u32,
    /// How many of the top primes are reserved for bootstrapping (0 if the set does not bootstrap).
    pub boot_limbs: usize,
    /// Secret distribution.
    pub secret: SecretDistribution,
    /// Error standard deviation.
    pub sigma: f64,
}

/// A named preset.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The literal.
    pub literal: ParametersLiteral<'static>,
    /// Whether the preset needs [`Security::InsecureForTestingOnly`].
    pub insecure: bool,
    /// One line for help texts.
    pub summary: &'static str,
}

/// The ciphertext chain of `n16-boot` (and of its small test twin): q_0 (60 bits), 12 levels at
/// 2^42 for computation (SlotToCoeff uses the top 3 of them), 10 primes of 58 bits for EvalMod
/// and 3 of 56 bits for CoeffToSlot.
pub const N16_BOOT_CHAIN: &[u32] =
    &[60, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 56, 56, 56];

/// Every named preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        literal: ParametersLiteral {
            name: "test-n12",
            log_n: 12,
            log_q: &[60, 40, 40, 40, 40, 40, 40],
            log_p: 61,
            dnum: 2,
            log_scale: 40,
            boot_limbs: 0,
            secret: SecretDistribution::Ternary,
            sigma: DEFAULT_SIGMA,
        },
        insecure: true,
        summary: "INSECURE, tests only: N=2^12, 6 levels at 2^40",
    },
    Preset {
        literal: ParametersLiteral {
            name: "test-n12-deep",
            log_n: 12,
            log_q: &[60, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40],
            log_p: 61,
            dnum: 3,
            log_scale: 40,
            boot_limbs: 0,
            secret: SecretDistribution::Ternary,
            sigma: DEFAULT_SIGMA,
        },
        insecure: true,
        summary: "INSECURE, tests only: N=2^12, 12 levels at 2^40 (deep multiplication chains)",
    },
    Preset {
        literal: ParametersLiteral {
            name: "n15",
            log_n: 15,
            log_q: &[60, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40],
            log_p: 61,
            dnum: 5,
            log_scale: 40,
            boot_limbs: 0,
            secret: SecretDistribution::Ternary,
            sigma: DEFAULT_SIGMA,
        },
        insecure: false,
        summary: "128-bit, N=2^15, 14 levels at 2^40, no bootstrapping",
    },
    Preset {
        literal: ParametersLiteral {
            name: "test-n12-boot",
            log_n: 12,
            log_q: N16_BOOT_CHAIN,
            log_p: 61,
            dnum: 4,
            log_scale: 42,
            boot_limbs: 13,
            secret: SecretDistribution::Ternary,
            sigma: DEFAULT_SIGMA,
        },
        insecure: true,
        summary: "INSECURE, tests only: n16-boot's chain at N=2^12, for bootstrapping tests",
    },
    Preset {
        literal: ParametersLiteral {
            name: "n16-boot",
            log_n: 16,
            log_q: N16_BOOT_CHAIN,
            log_p: 61,
            dnum: 4,
            log_scale: 42,
            boot_limbs: 13,
            secret: SecretDistribution::Ternary,
            sigma: DEFAULT_SIGMA,
        },
        insecure: false,
        summary: "128-bit, N=2^16, bootstrappable, 12 levels at 2^42 on a fresh ciphertext",
    },
];

/// Looks a preset up by name.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.literal.name == name)
}

/// The checks every parameter set passes, whether built from bit sizes or read back as primes.
fn check_shape(
    log_n: u32,
    q_len: usize,
    dnum: usize,
    boot_limbs: usize,
    log_scale: u32,
    secret: SecretDistribution,
    sigma: f64,
) -> Result<(), Error> {
    if !(LOG_N_RANGE.0..=LOG_N_RANGE.1).contains(&log_n) {
        return Err(Error::InvalidParameters("log_n must be within 10..=17"));
    }
    if q_len == 0 || q_len > MAX_Q_LIMBS {
        return Err(Error::InvalidParameters("between 1 and 48 ciphertext primes are supported"));
    }
    if dnum == 0 || dnum > q_len {
        return Err(Error::InvalidParameters("dnum must be within 1..=|Q|"));
    }
    if q_len.div_ceil(dnum) > MAX_P_LIMBS {
        return Err(Error::InvalidParameters("too many special primes (raise dnum)"));
    }
    if boot_limbs >= q_len {
        return Err(Error::InvalidParameters("boot_limbs must leave q_0 and a level"));
    }
    // The error sampler must be able to serve sigma (finite table, cut-off at least 12 sigma).
    super::sampling::GaussianSampler::new(sigma)?;
    if !(10..=60).contains(&log_scale) {
        return Err(Error::InvalidParameters("log_scale must be within 10..=60"));
    }
    if let SecretDistribution::SparseTernary { hamming_weight } = secret {
        if hamming_weight == 0 || hamming_weight as u64 > 1u64 << log_n {
            return Err(Error::InvalidParameters("hamming weight must be within 1..=N"));
        }
    }
    Ok(())
}

/// The first 32 bytes of `name`, cut at a character boundary (names come from the wire too).
fn short_name(name: &str) -> String<32> {
    let mut end = name.len().min(32);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::new();
    // At most 32 bytes: always fits.
    let _ = out.push_str(&name[..end]);
    out
}

/// A validated parameter set with concrete primes. Deserialisation goes through
/// [`Parameters::from_primes`] with [`Security::Require128Bits`] (every check, and the gate: an
/// insecure set is read only through [`crate::wire::read_parameters`] with the named opt-in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ParametersFields")]
pub struct Parameters {
    name: String<32>,
    log_n: u32,
    q: HVec<u64, MAX_Q_LIMBS>,
    p: HVec<u64, MAX_P_LIMBS>,
    dnum: usize,
    log_scale: u32,
    boot_limbs: usize,
    secret: SecretDistribution,
    sigma: f64,
}

/// The fields of [`Parameters`] as serde reads them, before any check.
#[derive(Deserialize)]
struct ParametersFields {
    name: String<32>,
    log_n: u32,
    q: HVec<u64, MAX_Q_LIMBS>,
    p: HVec<u64, MAX_P_LIMBS>,
    dnum: usize,
    log_scale: u32,
    boot_limbs: usize,
    secret: SecretDistribution,
    sigma: f64,
}

impl TryFrom<ParametersFields> for Parameters {
    type Error = Error;

    fn try_from(f: ParametersFields) -> Result<Self, Error> {
        Parameters::from_primes(
            &f.name,
            f.log_n,
            &f.q,
            &f.p,
            f.dnum,
            f.log_scale,
            f.boot_limbs,
            f.secret,
            f.sigma,
            Security::Require128Bits,
        )
    }
}

impl Parameters {
    /// Generates the primes for `lit` and applies the security gate.
    pub fn new(lit: &ParametersLiteral<'_>, security: Security) -> Result<Self, Error> {
        check_shape(lit.log_n, lit.log_q.len(), lit.dnum, lit.boot_limbs, lit.log_scale, lit.secret, lit.sigma)?;
        let alpha = lit.log_q.len().div_ceil(lit.dnum);
        let n = 1usize << lit.log_n;
        let name = short_name(lit.name);

        let mut all: HVec<u64, { MAX_Q_LIMBS + MAX_P_LIMBS }> = HVec::new();
        let mut q: HVec<u64, MAX_Q_LIMBS> = HVec::new();
        for (i, &bits) in lit.log_q.iter().enumerate() {
            let placement = if i == 0 { PrimePlacement::Below } else { PrimePlacement::Closest };
            let mut one: HVec<u64, 1> = HVec::new();
            ntt_primes(bits, n, 1, placement, &all, &mut one)
                .ok_or(Error::InvalidParameters("no NTT-friendly prime of that size (bits must be within 20..=61)"))?;
            let _ = all.push(one[0]);
            let _ = q.push(one[0]);
        }
        let mut p: HVec<u64, MAX_P_LIMBS> = HVec::new();
        ntt_primes(lit.log_p, n, alpha, PrimePlacement::Below, &all, &mut p)
            .ok_or(Error::InvalidParameters("no NTT-friendly special primes of that size"))?;

        let params = Parameters {
            name,
            log_n: lit.log_n,
            q,
            p,
            dnum: lit.dnum,
            log_scale: lit.log_scale,
            boot_limbs: lit.boot_limbs,
            secret: lit.secret,
            sigma: lit.sigma,
        };
        params.check_scale()?;
        params.check_security(security)?;
        Ok(params)
    }

    /// Builds a named preset. Insecure presets require [`Security::InsecureForTestingOnly`].
    pub fn preset(name: &str, security: Security) -> Result<Self, Error> {
        let p = preset(name).ok_or(Error::UnknownPreset)?;
        Parameters::new(&p.literal, security)
    }

    /// Rebuilds a set from explicit primes (as read from the wire), then validates it.
    #[allow(clippy::too_many_arguments)]
    pub fn from_primes(
        name: &str,
        log_n: u32,
        q: &[u64],
        p: &[u64],
        dnum: usize,
        log_scale: u32,
        boot_limbs: usize,
        secret: SecretDistribution,
        sigma: f64,
        security: Security,
    ) -> Result<Self, Error> {
        check_shape(log_n, q.len(), dnum, boot_limbs, log_scale, secret, sigma)?;
        let n = 1u64 << log_n;
        let mut hq: HVec<u64, MAX_Q_LIMBS> = HVec::new();
        let mut hp: HVec<u64, MAX_P_LIMBS> = HVec::new();
        for (i, &x) in q.iter().chain(p).enumerate() {
            if x >= 1 << crate::ring::modulus::MAX_MODULUS_BITS || x % (2 * n) != 1 || !crate::ring::primes::is_prime(x)
            {
                return Err(Error::InvalidParameters("a modulus is not an NTT-friendly prime below 2^62"));
            }
            if q.iter().chain(p).take(i).any(|&y| y == x) {
                return Err(Error::InvalidParameters("moduli must be distinct"));
            }
        }
        hq.extend_from_slice(q).map_err(|_| Error::InvalidParameters("too many ciphertext primes"))?;
        hp.extend_from_slice(p).map_err(|_| Error::InvalidParameters("too many special primes"))?;
        if q.len().div_ceil(dnum) != p.len() {
            return Err(Error::InvalidParameters("special-prime count must be ceil(|Q| / dnum)"));
        }
        let params =
            Parameters { name: short_name(name), log_n, q: hq, p: hp, dnum, log_scale, boot_limbs, secret, sigma };
        params.check_scale()?;
        params.check_security(security)?;
        Ok(params)
    }

    /// Whether the primes can hold the scale: q_0 at least `2^(log_scale + Q0_HEADROOM_BITS)`, and
    /// every other ciphertext prime at least half the scale, so that a rescale by it keeps the
    /// scale within a factor 2 (a smaller prime would make the scale outgrow the chain).
    fn check_scale(&self) -> Result<(), Error> {
        let log_scale = self.log_scale as f64;
        if libm::log2(self.q[0] as f64) < log_scale + Q0_HEADROOM_BITS as f64 {
            return Err(Error::InvalidParameters("q_0 must exceed the scale by at least 10 bits"));
        }
        if self.q[1..].iter().any(|&q| libm::log2(q as f64) < log_scale - 1.0) {
            return Err(Error::InvalidParameters("every scaling prime must be at least half the scale"));
        }
        Ok(())
    }

    fn check_security(&self, security: Security) -> Result<(), Error> {
        if security == Security::InsecureForTestingOnly {
            return Ok(());
        }
        if let Some(why) = self.distribution_flaw() {
            return Err(Error::InsecureDistribution(why));
        }
        if self.is_secure() {
            Ok(())
        } else {
            Err(Error::Insecure {
                log_n: self.log_n,
                log_qp: libm::ceil(self.log_qp()) as u32,
                max_log_qp: max_log_qp_128(self.log_n).unwrap_or(0),
            })
        }
    }

    /// Why the secret or error distribution is outside what the 128-bit bounds were estimated
    /// for, if it is.
    fn distribution_flaw(&self) -> Option<&'static str> {
        let off = libm::fabs(self.sigma - DEFAULT_SIGMA);
        if off.is_nan() || off > SIGMA_TOLERANCE {
            return Some("the error width sigma must be 3.2 (within 0.01) for the 128-bit bounds to hold");
        }
        if let SecretDistribution::SparseTernary { .. } = self.secret {
            // Lattigo's 128-bit h = 192 sets stop near log2(QP) = 1550 at 2^16, well below the
            // dense bound; with no cited table for sparse secrets, none is certified.
            return Some("a sparse main secret has no cited 128-bit bound (ePrint 2024/463 tabulates dense ones)");
        }
        None
    }

    /// Whether the set meets 128-bit security: a uniform ternary secret, the error width the
    /// bound was estimated for, and log2(QP) within the bound for N ([`max_log_qp_128`]).
    pub fn is_secure(&self) -> bool {
        let bound = max_log_qp_128(self.log_n).unwrap_or(0) as f64;
        self.distribution_flaw().is_none() && self.log_qp() <= bound
    }

    /// Estimated classical security in bits: 128 when the gate passes (the table only certifies
    /// that level), 0 when the distributions are outside the estimate (nothing is certified),
    /// otherwise a linear estimate `128 * bound / log2(QP)` below 128.
    pub fn security_bits(&self) -> u32 {
        if self.is_secure() {
            128
        } else if self.distribution_flaw().is_some() {
            0
        } else {
            let bound = max_log_qp_128(self.log_n).unwrap_or(0) as f64;
            libm::floor(128.0 * bound / self.log_qp()).min(127.0) as u32
        }
    }

    /// Name of the set (with the preset's name if it came from one).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// log2 N.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }
    /// Ring degree N.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }
    /// Number of complex slots of a full packing, N/2.
    pub fn max_slots(&self) -> usize {
        self.n() / 2
    }
    /// Ciphertext primes q_0..q_L.
    pub fn q(&self) -> &[u64] {
        &self.q
    }
    /// Special primes.
    pub fn p(&self) -> &[u64] {
        &self.p
    }
    /// Highest level L (a ciphertext at level l has l + 1 limbs).
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }
    /// Level of a fresh ciphertext meant for computation: the top, less the bootstrapping limbs.
    pub fn default_level(&self) -> usize {
        self.max_level() - self.boot_limbs
    }
    /// Limbs reserved for bootstrapping.
    pub fn boot_limbs(&self) -> usize {
        self.boot_limbs
    }
    /// Number of hybrid key-switching digits.
    pub fn dnum(&self) -> usize {
        self.dnum
    }
    /// Limbs per digit (= number of special primes).
    pub fn alpha(&self) -> usize {
        self.p.len()
    }
    /// log2 of the default scale.
    pub fn log_scale(&self) -> u32 {
        self.log_scale
    }
    /// The default scale.
    pub fn scale(&self) -> f64 {
        libm::ldexp(1.0, self.log_scale as i32)
    }
    /// Secret distribution.
    pub fn secret(&self) -> SecretDistribution {
        self.secret
    }
    /// Error standard deviation.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
    /// log2 of the product of all ciphertext primes.
    pub fn log_q(&self) -> f64 {
        self.q.iter().map(|&x| libm::log2(x as f64)).sum()
    }
    /// log2 of the product of all primes, ciphertext and special.
    pub fn log_qp(&self) -> f64 {
        self.log_q() + self.p.iter().map(|&x| libm::log2(x as f64)).sum::<f64>()
    }
    /// An upper bound on the bytes `Context::new` allocates for this set: per prime, concrete-ntt's
    /// plan (four N-word tables) and a little bookkeeping; the P-to-Q conversion tables. What a
    /// reader lets a parameter record from the wire cost ([`crate::wire::Limits`]).
    pub fn context_bytes(&self) -> u64 {
        let (l, k) = (self.q.len() as u64, self.p.len() as u64);
        (l + k) * (32 * self.n() as u64 + 1024) + 64 * (l + 1) * (k + 1) + 4096
    }

    /// Ciphertext moduli with reduction constants.
    pub fn q_moduli(&self) -> impl Iterator<Item = Modulus> + '_ {
        self.q.iter().map(|&x| Modulus::new(x))
    }
    /// Special moduli with reduction constants.
    pub fn p_moduli(&self) -> impl Iterator<Item = Modulus> + '_ {
        self.p.iter().map(|&x| Modulus::new(x))
    }
    /// Bits of a residue of limb `i` of the Q ∪ P list (Q first) on the wire.
    pub fn limb_bits(&self, i: usize) -> u32 {
        let x = if i < self.q.len() { self.q[i] } else { self.p[i - self.q.len()] };
        64 - x.leading_zeros()
    }

    /// The canonical byte encoding of every field that affects the mathematics (the name is left
    /// out): the input of the fingerprint and the body of the wire record.
    pub fn canonical_bytes(&self, mut out: impl FnMut(&[u8])) {
        out(b"hetune-params-v1");
        out(&[self.log_n as u8, self.q.len() as u8, self.p.len() as u8, self.dnum as u8]);
        out(&[self.log_scale as u8, self.boot_limbs as u8]);
        let (kind, h) = match self.secret {
            SecretDistribution::Ternary => (0u8, 0u32),
            SecretDistribution::SparseTernary { hamming_weight } => (1u8, hamming_weight),
        };
        out(&[kind]);
        out(&h.to_le_bytes());
        out(&self.sigma.to_bits().to_le_bytes());
        for &x in self.q.iter().chain(self.p.iter()) {
            out(&x.to_le_bytes());
        }
    }

    /// SHA-256 of the canonical encoding: carried by every wire record so that objects of
    /// different parameter sets never meet.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        self.canonical_bytes(|b| h.update(b));
        h.finalize().into()
    }

    /// A label that says loudly when the set is insecure.
    pub fn label(&self) -> impl core::fmt::Display + '_ {
        struct Label<'a>(&'a Parameters);
        impl core::fmt::Display for Label<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                if self.0.is_secure() {
                    write!(f, "{}", self.0.name)
                } else {
                    write!(f, "{} [INSECURE: tests only, ~{} bits]", self.0.name, self.0.security_bits())
                }
            }
        }
        Label(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_build_and_secure_ones_pass_the_gate() {
        for p in PRESETS {
            let sec = if p.insecure { Security::InsecureForTestingOnly } else { Security::Require128Bits };
            let params = Parameters::new(&p.literal, sec).unwrap();
            assert_eq!(params.is_secure(), !p.insecure, "{}", p.literal.name);
            assert_eq!(params.alpha(), params.q().len().div_ceil(params.dnum()));
        }
    }

    #[test]
    fn n16_boot_meets_the_issue() {
        let p = Parameters::preset("n16-boot", Security::Require128Bits).unwrap();
        assert_eq!(p.n(), 1 << 16);
        assert!(p.log_qp() <= 1747.0, "{}", p.log_qp());
        assert!(p.default_level() >= 9);
        assert!(p.log_scale() >= 40);
        assert!(p.security_bits() >= 128);
    }

    #[test]
    fn gate_rejects_insecure_sets_and_names_both_numbers() {
        let err = Parameters::preset("test-n12", Security::Require128Bits).unwrap_err();
        match err {
            Error::Insecure { log_n, log_qp, max_log_qp } => {
                assert_eq!(log_n, 12);
                assert_eq!(max_log_qp, 106);
                assert!(log_qp > 106);
            }
            e => panic!("unexpected {e:?}"),
        }
        let msg = alloc::format!("{err}");
        assert!(msg.contains("106"), "{msg}");
        // A 2^15 set over its 868-bit bound.
        let lit = ParametersLiteral {
            name: "too-big",
            log_n: 15,
            log_q: &[60; 14],
            log_p: 61,
            dnum: 14,
            log_scale: 40,
            boot_limbs: 0,
            secret: SecretDistribution::Ternary,
            sigma: DEFAULT_SIGMA,
        };
        assert!(matches!(
            Parameters::new(&lit, Security::Require128Bits),
            Err(Error::Insecure { max_log_qp: 868, .. })
        ));
        assert!(Parameters::new(&lit, Security::InsecureForTestingOnly).is_ok());
    }

    /// n15's primes with another error width, read back as from the wire.
    fn n15_with_sigma(sigma: f64, security: Security) -> Result<Parameters, Error> {
        let a = Parameters::preset("n15", Security::Require128Bits).unwrap();
        Parameters::from_primes(
            a.name(),
            a.log_n(),
            a.q(),
            a.p(),
            a.dnum(),
            a.log_scale(),
            a.boot_limbs(),
            a.secret(),
            sigma,
            security,
        )
    }

    #[test]
    fn gate_holds_the_error_width_to_the_standard() {
        // With sigma = 1e-10 every error is 0 and s = -b / a falls out of the public key.
        for sigma in [1e-10, 1.0, 3.0, 3.15, 3.211, 3.4] {
            assert!(
                matches!(n15_with_sigma(sigma, Security::Require128Bits), Err(Error::InsecureDistribution(_))),
                "{sigma}"
            );
            let p = n15_with_sigma(sigma, Security::InsecureForTestingOnly).unwrap();
            assert!(!p.is_secure());
            assert_eq!(p.security_bits(), 0);
            assert!(alloc::format!("{}", p.label()).contains("INSECURE"));
        }
        for sigma in [3.2, 8.0 / libm::sqrt(2.0 * core::f64::consts::PI), 3.209] {
            assert!(n15_with_sigma(sigma, Security::Require128Bits).unwrap().is_secure(), "{sigma}");
        }
        // Widths the sampler's table cannot hold are refused whatever the opt-in.
        for sigma in [1e-300, 0.0, -1.0, f64::NAN, f64::INFINITY, 3.5, 63.0] {
            assert!(
                matches!(n15_with_sigma(sigma, Security::InsecureForTestingOnly), Err(Error::InvalidParameters(_))),
                "{sigma}"
            );
        }
    }

    #[test]
    fn bounds_follow_eprint_2024_463_and_sparse_main_secrets_are_refused() {
        // Table 5.2 of ePrint 2024/463 (classical, uniform ternary secret, 128 bits).
        let table = [(10, 26), (11, 53), (12, 106), (13, 214), (14, 430), (15, 868), (16, 1747), (17, 3523)];
        for (log_n, bound) in table {
            assert_eq!(max_log_qp_128(log_n), Some(bound));
        }
        // A 2^15 set between the 2018 bound (881) and the 2024 one (868) is refused.
        let lit = |log_q: &'static [u32], secret| ParametersLiteral {
            name: "x",
            log_n: 15,
            log_q,
            log_p: 61,
            dnum: log_q.len(),
            log_scale: 40,
            boot_limbs: 0,
            secret,
            sigma: DEFAULT_SIGMA,
        };
        let between: &[u32] = &[60, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 55];
        let p = Parameters::new(&lit(between, SecretDistribution::Ternary), Security::InsecureForTestingOnly).unwrap();
        assert!(p.log_qp() > 868.0 && p.log_qp() < 881.0, "{}", p.log_qp());
        assert!(matches!(
            Parameters::new(&lit(between, SecretDistribution::Ternary), Security::Require128Bits),
            Err(Error::Insecure { max_log_qp: 868, .. })
        ));
        // A sparse main secret is refused at any weight, even far below the dense bound.
        let small: &[u32] = &[60, 40, 40];
        for h in [1, 64, 192, 1 << 14] {
            let sparse = SecretDistribution::SparseTernary { hamming_weight: h };
            assert!(matches!(
                Parameters::new(&lit(small, sparse), Security::Require128Bits),
                Err(Error::InsecureDistribution(_))
            ));
            assert!(!Parameters::new(&lit(small, sparse), Security::InsecureForTestingOnly).unwrap().is_secure());
        }
        assert!(Parameters::new(&lit(small, SecretDistribution::Ternary), Security::Require128Bits).is_ok());
    }

    #[test]
    fn primes_must_hold_the_scale() {
        let a = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let with = |q: &[u64], log_scale: u32| {
            Parameters::from_primes(
                "x",
                12,
                q,
                a.p(),
                q.len().div_ceil(a.p().len()),
                log_scale,
                0,
                a.secret(),
                a.sigma(),
                Security::InsecureForTestingOnly,
            )
        };
        assert!(with(a.q(), 40).is_ok());
        // 16-bit primes (= 1 mod 2N, prime) at scale 2^40: encryption would decrypt to garbage.
        let mut small = alloc::vec::Vec::new();
        let mut x = (1u64 << 16) + 1;
        while small.len() < 2 {
            if crate::ring::primes::is_prime(x) {
                small.push(x);
            }
            x += 2 << 12;
        }
        assert!(matches!(with(&small, 40), Err(Error::InvalidParameters(_))));
        // q_0 with less than 10 bits of headroom over the scale.
        assert!(matches!(with(a.q(), 51), Err(Error::InvalidParameters(_))));
        // A scaling prime far below the scale (40-bit primes at scale 2^45: q_0 still holds it).
        assert!(matches!(with(a.q(), 45), Err(Error::InvalidParameters(_))));
        let lit = ParametersLiteral {
            name: "x",
            log_n: 12,
            log_q: &[60, 20, 20],
            log_p: 61,
            dnum: 3,
            log_scale: 40,
            boot_limbs: 0,
            secret: SecretDistribution::Ternary,
            sigma: DEFAULT_SIGMA,
        };
        assert!(matches!(Parameters::new(&lit, Security::InsecureForTestingOnly), Err(Error::InvalidParameters(_))));
    }

    #[test]
    fn deserialisation_goes_through_the_checked_constructor() {
        use alloc::string::ToString;
        let p = Parameters::preset("n15", Security::Require128Bits).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Parameters>(&json).unwrap(), p);
        // log_n 40 with no primes used to deserialise, then max_level() overflowed.
        let bad = r#"{"name":"x","log_n":40,"q":[],"p":[],"dnum":1,"log_scale":40,"boot_limbs":0,"secret":"ternary","sigma":3.2}"#;
        let err = serde_json::from_str::<Parameters>(bad).unwrap_err();
        assert!(err.to_string().contains("log_n"), "{err}");
        // Every check applies: a tiny sigma, a composite modulus, the gate itself.
        for (from, to) in [("3.2", "1e-10"), (&*alloc::format!("{}", p.q()[1]), "1099511627777")] {
            assert!(serde_json::from_str::<Parameters>(&json.replace(from, to)).is_err(), "{to}");
        }
        let insecure = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let err = serde_json::from_str::<Parameters>(&serde_json::to_string(&insecure).unwrap()).unwrap_err();
        assert!(err.to_string().contains("insecure"), "{err}");
    }

    #[test]
    fn long_multibyte_names_are_cut_at_a_character_boundary() {
        let a = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let name = alloc::string::String::from("é").repeat(20); // 40 bytes; byte 32 is inside no character, byte 33 is
        let b = Parameters::from_primes(
            &name,
            a.log_n(),
            a.q(),
            a.p(),
            a.dnum(),
            a.log_scale(),
            a.boot_limbs(),
            a.secret(),
            a.sigma(),
            Security::InsecureForTestingOnly,
        )
        .unwrap();
        assert_eq!(b.name(), "é".repeat(16).as_str());
        assert_eq!(b.fingerprint(), a.fingerprint());
        let odd = alloc::format!("x{}", "é".repeat(20)); // byte 32 falls inside a character
        let c = Parameters::from_primes(
            &odd,
            a.log_n(),
            a.q(),
            a.p(),
            a.dnum(),
            a.log_scale(),
            a.boot_limbs(),
            a.secret(),
            a.sigma(),
            Security::InsecureForTestingOnly,
        )
        .unwrap();
        assert_eq!(c.name().len(), 31);
    }

    #[test]
    fn fingerprints_differ_between_sets() {
        let a = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let b = Parameters::preset("n15", Security::Require128Bits).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }
}
