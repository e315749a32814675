//! Sampling from a caller-supplied CSPRNG: uniform residues (also expanded from a public 32-byte
//! seed with ChaCha20), uniform ternary, fixed-weight ternary and the discrete Gaussian.
//! Every sampler of secret values is constant time: no branch and no memory index depends on
//! a sampled value.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::ring::Modulus;
use crate::Error;

/// Stream number of the uniform polynomial for `(digit, limb)`: digit 0 for ciphertexts and
/// public keys, the key-switching digit for switching keys. `limb` indexes Q then P.
pub fn stream_id(digit: usize, limb: usize) -> u64 {
    ((digit as u64) << 32) | limb as u64
}

/// Uniform residues modulo `q` expanded from a public seed: ChaCha20 keyed by the seed, with the
/// stream number selecting the polynomial limb, and rejection sampling on masked 64-bit words.
/// The values are public, so the rejection loop need not be constant time.
pub struct UniformExpander {
    rng: ChaCha20Rng,
    q: u64,
    mask: u64,
}

impl UniformExpander {
    /// Expander for the limb `stream` of modulus `q`.
    pub fn new(seed: &[u8; 32], stream: u64, q: &Modulus) -> Self {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        rng.set_stream(stream);
        let bits = q.bits();
        UniformExpander { rng, q: q.value(), mask: if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 } }
    }

    /// The next uniform residue.
    #[inline]
    pub fn next_residue(&mut self) -> u64 {
        loop {
            let v = self.rng.next_u64() & self.mask;
            if v < self.q {
                return v;
            }
        }
    }

    /// Fills `out` with uniform residues.
    pub fn fill(&mut self, out: &mut [u64]) {
        for o in out {
            *o = self.next_residue();
        }
    }
}

/// Fills `out` with uniform residues from the caller's CSPRNG (for non-seeded uses).
pub fn uniform<R: RngCore + CryptoRng>(rng: &mut R, q: &Modulus, out: &mut [u64]) {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    UniformExpander::new(&seed, 0, q).fill(out);
}

/// A fresh 32-byte seed.
pub fn fresh_seed<R: RngCore + CryptoRng>(rng: &mut R) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    seed
}

/// Uniform ternary coefficients in {-1, 0, 1}, constant time (bias below 2^-32 per coefficient).
pub fn ternary<R: RngCore + CryptoRng>(rng: &mut R, out: &mut [i8]) {
    for o in out {
        let r = rng.next_u32() as u64;
        *o = ((r * 3) >> 32) as i8 - 1;
    }
}

/// `1` if `a < b`, else `0`, without branching (a, b < 2^63).
#[inline(always)]
fn ct_lt(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) >> 63
}

/// Ternary coefficients with exactly `h` non-zero entries, each +-1, uniformly placed:
/// selection sampling (Knuth, TAOCP vol. 2, Algorithm 3.4.2 S) made branch-free, so the running
/// time and memory accesses do not depend on where the non-zeros fall.
pub fn sparse_ternary<R: RngCore + CryptoRng>(rng: &mut R, h: usize, out: &mut [i8]) {
    let n = out.len() as u64;
    let mut need = h.min(out.len()) as u64;
    for (i, o) in out.iter_mut().enumerate() {
        let remaining = n - i as u64;
        let r = ((rng.next_u64() as u128 * remaining as u128) >> 64) as u64;
        let select = ct_lt(r, need);
        need -= select;
        let sign = (rng.next_u32() & 1) as i64;
        *o = (select as i64 * (1 - 2 * sign)) as i8;
    }
}

/// Tail cut of the Gaussian table, in units of one: 41 > 12.8 sigma for sigma = 3.2.
const GAUSS_BOUND: i32 = 41;
const GAUSS_ENTRIES: usize = 2 * GAUSS_BOUND as usize;
/// Widest error the table serves: its cut-off must be at least 12 standard deviations
/// (the mass beyond 12 sigma, below 2^-100, is what the cut leaves out).
pub const MAX_SIGMA: f64 = GAUSS_BOUND as f64 / 12.0;

/// Constant-time discrete Gaussian sampler by cumulative distribution table: every sample reads
/// the whole table. Probabilities have 53-bit precision (the table is computed in f64).
pub struct GaussianSampler {
    cdf: [u64; GAUSS_ENTRIES],
}

impl GaussianSampler {
    /// Table for standard deviation `sigma`. Refuses a `sigma` whose cut-off (+-41) is narrower
    /// than 12 sigma ([`MAX_SIGMA`]) or whose table is not finite (a `sigma` so small that its
    /// square underflows); a set with a `sigma` other than 3.2 fails the 128-bit gate anyway.
    pub fn new(sigma: f64) -> Result<Self, Error> {
        if !(sigma > 0.0 && sigma <= MAX_SIGMA) {
            return Err(Error::InvalidParameters("sigma must be positive and at most 41/12 (cut-off at 12 sigma)"));
        }
        let w = |x: i32| libm::exp(-((x * x) as f64) / (2.0 * sigma * sigma));
        let total: f64 = (-GAUSS_BOUND..=GAUSS_BOUND).map(w).sum();
        if !(total.is_finite() && total >= 1.0) {
            return Err(Error::InvalidParameters("sigma gives a non-finite Gaussian table"));
        }
        let mut cdf = [0u64; GAUSS_ENTRIES];
        let mut acc = 0.0;
        for (k, c) in cdf.iter_mut().enumerate() {
            acc += w(k as i32 - GAUSS_BOUND) / total;
            if !acc.is_finite() {
                return Err(Error::InvalidParameters("sigma gives a non-finite Gaussian table"));
            }
            // P(X <= k - B) scaled to 2^64.
            let v = acc * 18_446_744_073_709_551_616.0;
            *c = if v >= 18_446_744_073_709_551_615.0 { u64::MAX } else { v as u64 };
        }
        Ok(GaussianSampler { cdf })
    }

    /// One sample in [-41, 41].
    #[inline]
    pub fn sample<R: RngCore + CryptoRng>(&self, rng: &mut R) -> i8 {
        let u = rng.next_u64() as u128;
        let mut count = 0i32;
        for &c in &self.cdf {
            // 1 when u >= c.
            count += 1 - ((u.wrapping_sub(c as u128) >> 127) as i32);
        }
        (count - GAUSS_BOUND) as i8
    }

    /// Fills `out` with samples.
    pub fn fill<R: RngCore + CryptoRng>(&self, rng: &mut R, out: &mut [i8]) {
        for o in out {
            *o = self.sample(rng);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn ternary_is_balanced() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut v = [0i8; 30000];
        ternary(&mut rng, &mut v);
        for t in -1..=1 {
            let c = v.iter().filter(|&&x| x == t).count();
            assert!((9400..10600).contains(&c), "{t}: {c}");
        }
    }

    #[test]
    fn sparse_ternary_has_exact_weight() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for h in [1usize, 32, 192, 4096] {
            let mut v = [0i8; 4096];
            sparse_ternary(&mut rng, h, &mut v);
            assert_eq!(v.iter().filter(|&&x| x != 0).count(), h);
            assert!(v.iter().all(|&x| (-1..=1).contains(&x)));
        }
    }

    #[test]
    fn gaussian_moments() {
        let g = GaussianSampler::new(3.2).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let n = 200_000;
        let (mut s1, mut s2) = (0f64, 0f64);
        for _ in 0..n {
            let x = g.sample(&mut rng) as f64;
            s1 += x;
            s2 += x * x;
        }
        let mean = s1 / n as f64;
        let sd = (s2 / n as f64 - mean * mean).sqrt();
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((sd - 3.2).abs() < 0.05, "sd {sd}");
    }

    #[test]
    fn gaussian_refuses_widths_its_table_cannot_hold() {
        // 1e-300 squared underflows: the table would fill with NaN (and every sample be +41).
        for bad in [1e-300, 0.0, -3.2, f64::NAN, f64::INFINITY, 3.5, MAX_SIGMA * 1.0001] {
            assert!(GaussianSampler::new(bad).is_err(), "{bad}");
        }
        // A tiny but representable width is a finite (degenerate) table: the sampler takes it,
        // the 128-bit gate refuses the set.
        let g = GaussianSampler::new(1e-10).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        assert!((0..1000).all(|_| g.sample(&mut rng) == 0));
        assert!(GaussianSampler::new(MAX_SIGMA).is_ok());
    }

    #[test]
    fn expander_is_deterministic_and_in_range() {
        let q = Modulus::new(1152921504606584833);
        let mut a = [0u64; 1000];
        let mut b = [0u64; 1000];
        UniformExpander::new(&[7; 32], 3, &q).fill(&mut a);
        UniformExpander::new(&[7; 32], 3, &q).fill(&mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|&x| x < q.value()));
        UniformExpander::new(&[7; 32], 4, &q).fill(&mut b);
        assert_ne!(a, b);
    }
}
