//! Sampling from a caller-supplied CSPRNG: uniform residues (also expanded from a public 32-byte
//! seed with ChaCha20), uniform ternary, fixed-weight ternary and the discrete Gaussian.
//! Every sampler of secret values is constant time: no branch and no memory index depends on
//! a sampled value.

#[cfg(not(hetune_armv7em))]
use rand_chacha::ChaCha20Rng;
use rand_core::block::{BlockRng, BlockRngCore, CryptoBlockRng};
#[cfg(not(hetune_armv7em))]
use rand_core::SeedableRng;
use rand_core::{CryptoRng, RngCore};

use crate::ring::Modulus;
use crate::Error;

/// Stream number of the uniform polynomial for `(digit, limb)`: digit 0 for ciphertexts and
/// public keys, the key-switching digit for switching keys. `limb` indexes Q then P.
pub fn stream_id(digit: usize, limb: usize) -> u64 {
    ((digit as u64) << 32) | limb as u64
}

/// ChaCha20 (Bernstein, "ChaCha, a variant of Salsa20", 2008) keyed by a 32-byte seed, with a
/// 64-bit block counter in state words 12-13 and a 64-bit stream number in words 14-15, refilled
/// four blocks (64 words) at a time: word for word the generator of `rand_chacha::ChaCha20Rng`
/// (`from_seed`, then `set_stream`), which the tests check, including the buffering of
/// [`BlockRng`] between `next_u32`, `next_u64` and `fill_bytes`. It computes one block at a time
/// in 32-bit scalar code, which on a 32-bit core without vector units runs in fewer
/// instructions than `rand_chacha`'s portable four-block code (the firmware's generator and, on
/// Armv7E-M, the expansion of `a`); hosts keep `rand_chacha` and its SIMD.
#[derive(Clone, Debug)]
pub struct ChaCha20Core {
    key: [u32; 8],
    counter: u64,
    stream: u64,
}

/// Four ChaCha20 blocks, the buffer [`BlockRng`] hands out.
#[derive(Clone, Debug)]
pub struct ChaChaBlocks([u32; 64]);

impl Default for ChaChaBlocks {
    fn default() -> Self {
        ChaChaBlocks([0; 64])
    }
}

impl AsRef<[u32]> for ChaChaBlocks {
    fn as_ref(&self) -> &[u32] {
        &self.0
    }
}

impl AsMut<[u32]> for ChaChaBlocks {
    fn as_mut(&mut self) -> &mut [u32] {
        &mut self.0
    }
}

/// A [`ChaCha20Core`] with its buffer: an `RngCore + CryptoRng` giving the words of
/// `rand_chacha::ChaCha20Rng` for the same seed and stream.
pub type ChaCha20 = BlockRng<ChaCha20Core>;

impl ChaCha20Core {
    /// The generator keyed by `seed` on stream `stream`, at block 0.
    pub fn new(seed: &[u8; 32], stream: u64) -> Self {
        let mut key = [0u32; 8];
        for (k, c) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        ChaCha20Core { key, counter: 0, stream }
    }

    /// The buffered generator keyed by `seed` on stream `stream`.
    pub fn rng(seed: &[u8; 32], stream: u64) -> ChaCha20 {
        BlockRng::new(Self::new(seed, stream))
    }

    /// One block: 20 rounds over the state, plus the state (the assembly rounds of
    /// `chacha_armv7em.rs`).
    #[cfg(hetune_armv7em)]
    #[inline(always)]
    fn block(&self, counter: u64, out: &mut [u32]) {
        let mut work = [0u32; 48];
        work[16..20].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        work[20..28].copy_from_slice(&self.key);
        work[28..32].copy_from_slice(&[
            counter as u32,
            (counter >> 32) as u32,
            self.stream as u32,
            (self.stream >> 32) as u32,
        ]);
        chacha20_rounds(&mut work);
        out.copy_from_slice(&work[32..48]);
    }

    /// One block: 20 rounds over the state, plus the state.
    #[cfg(not(hetune_armv7em))]
    #[inline(always)]
    fn block(&self, counter: u64, out: &mut [u32]) {
        // "expand 32-byte k"
        let init = [
            0x6170_7865,
            0x3320_646e,
            0x7962_2d32,
            0x6b20_6574,
            self.key[0],
            self.key[1],
            self.key[2],
            self.key[3],
            self.key[4],
            self.key[5],
            self.key[6],
            self.key[7],
            counter as u32,
            (counter >> 32) as u32,
            self.stream as u32,
            (self.stream >> 32) as u32,
        ];
        let mut x = init;
        macro_rules! qr {
            ($a:expr, $b:expr, $c:expr, $d:expr) => {
                x[$a] = x[$a].wrapping_add(x[$b]);
                x[$d] = (x[$d] ^ x[$a]).rotate_left(16);
                x[$c] = x[$c].wrapping_add(x[$d]);
                x[$b] = (x[$b] ^ x[$c]).rotate_left(12);
                x[$a] = x[$a].wrapping_add(x[$b]);
                x[$d] = (x[$d] ^ x[$a]).rotate_left(8);
                x[$c] = x[$c].wrapping_add(x[$d]);
                x[$b] = (x[$b] ^ x[$c]).rotate_left(7);
            };
        }
        for _ in 0..10 {
            qr!(0, 4, 8, 12);
            qr!(1, 5, 9, 13);
            qr!(2, 6, 10, 14);
            qr!(3, 7, 11, 15);
            qr!(0, 5, 10, 15);
            qr!(1, 6, 11, 12);
            qr!(2, 7, 8, 13);
            qr!(3, 4, 9, 14);
        }
        for ((o, &v), &i) in out.iter_mut().zip(&x).zip(&init) {
            *o = v.wrapping_add(i);
        }
    }
}

#[cfg(hetune_armv7em)]
include!("chacha_armv7em.rs");

impl BlockRngCore for ChaCha20Core {
    type Item = u32;
    type Results = ChaChaBlocks;

    fn generate(&mut self, results: &mut ChaChaBlocks) {
        for block in results.0.chunks_exact_mut(16) {
            self.block(self.counter, block);
            self.counter = self.counter.wrapping_add(1);
        }
    }
}

impl CryptoBlockRng for ChaCha20Core {}

/// The 64-bit words of [`ChaCha20`] as a generator that is only ever asked for 64-bit words
/// gives them: each block's 16 words in pairs, low word first, block after block, without the
/// general buffering of [`BlockRng`] (the uniform expander on Armv7E-M).
#[cfg(hetune_armv7em)]
struct ChaChaWords {
    core: ChaCha20Core,
    block: [u32; 16],
    pos: usize,
}

#[cfg(hetune_armv7em)]
impl ChaChaWords {
    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        if self.pos == 16 {
            self.core.block(self.core.counter, &mut self.block);
            self.core.counter = self.core.counter.wrapping_add(1);
            self.pos = 0;
        }
        let v = self.block[self.pos] as u64 | (self.block[self.pos + 1] as u64) << 32;
        self.pos += 2;
        v
    }
}

/// The generator of uniform residues: [`ChaCha20`]'s words on Armv7E-M, `rand_chacha`
/// elsewhere (the same words).
#[cfg(hetune_armv7em)]
fn expander_rng(seed: &[u8; 32], stream: u64) -> ChaChaWords {
    ChaChaWords { core: ChaCha20Core::new(seed, stream), block: [0; 16], pos: 16 }
}

#[cfg(not(hetune_armv7em))]
fn expander_rng(seed: &[u8; 32], stream: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    rng.set_stream(stream);
    rng
}

/// Uniform residues modulo `q` expanded from a public seed: ChaCha20 keyed by the seed, with the
/// stream number selecting the polynomial limb, and rejection sampling on masked 64-bit words.
/// The values are public, so the rejection loop need not be constant time.
pub struct UniformExpander {
    #[cfg(hetune_armv7em)]
    rng: ChaChaWords,
    #[cfg(not(hetune_armv7em))]
    rng: ChaCha20Rng,
    q: u64,
    mask: u64,
}

impl UniformExpander {
    /// Expander for the limb `stream` of modulus `q`.
    pub fn new(seed: &[u8; 32], stream: u64, q: &Modulus) -> Self {
        let rng = expander_rng(seed, stream);
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

/// Constant-time discrete Gaussian sampler by cumulative distribution table. A sample takes one
/// 64-bit word `u` from the generator and is `#{k : u >= cdf[k]} - 41`, where `cdf[k]` is
/// `P(X <= k - 41)` scaled to 2^64 (53-bit precision: the table is computed in f64). Every sample
/// compares `u` with every entry that can go either way, with no branch and no index depending on
/// `u`; entries equal to 0 (the lower tail, always counted) and to `u64::MAX` (the upper tail,
/// counted only for `u = u64::MAX`) are folded into two constants, so the scan is over about 55
/// of the 82 entries at sigma = 3.2, each a borrow out of a 64-bit subtraction (two 32-bit words
/// on a 32-bit core; on Armv7E-M two samples share each table load). The outputs are exactly
/// those of the full scan for every `u`.
pub struct GaussianSampler {
    /// The entries strictly between 0 and `u64::MAX`, in table order, then zeros up to a
    /// multiple of 4 (the first `mid_len`).
    mid: [u64; MID_CAPACITY],
    mid_len: usize,
    /// The sample for a `u` that no middle entry counts: the entries equal to 0, minus 41, minus
    /// the padding zeros (which every `u` counts).
    base: i32,
    /// Entries equal to `u64::MAX`.
    tops: i32,
}

/// Room for the middle entries padded to a multiple of 4.
const MID_CAPACITY: usize = GAUSS_ENTRIES.div_ceil(4) * 4;

impl GaussianSampler {
    /// Table for standard deviation `sigma`. Refuses a `sigma` whose cut-off (+-41) is narrower
    /// than 12 sigma ([`MAX_SIGMA`]) or whose table is not finite (a `sigma` so small that its
    /// square underflows); a set with a `sigma` other than 3.2 fails the 128-bit gate anyway.
    pub fn new(sigma: f64) -> Result<Self, Error> {
        let cdf = Self::cdf(sigma)?;
        let mut mid = [0u64; MID_CAPACITY];
        let mut mid_len = 0;
        let (mut zeros, mut tops) = (0i32, 0i32);
        for &c in &cdf {
            match c {
                0 => zeros += 1,
                u64::MAX => tops += 1,
                _ => {
                    mid[mid_len] = c;
                    mid_len += 1;
                }
            }
        }
        let padded = mid_len.div_ceil(4) * 4;
        let pad = (padded - mid_len) as i32;
        Ok(GaussianSampler { mid, mid_len: padded, base: zeros - GAUSS_BOUND - pad, tops })
    }

    /// The cumulative table the sampler for `sigma` draws by: `P(X <= k - 41)` scaled to 2^64
    /// for k = 0..82 (what [`Self::new`] checks `sigma` against, and refuses).
    pub fn cdf(sigma: f64) -> Result<[u64; GAUSS_ENTRIES], Error> {
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
        Ok(cdf)
    }

    /// The sample for the random word `u`: `#{k : u >= cdf[k]} - 41`, in constant time.
    #[inline(always)]
    pub fn sample_word(&self, u: u64) -> i8 {
        // Entries that u is below: the borrows of u - c.
        let mut below = 0i32;
        for &c in &self.mid[..self.mid_len] {
            below += u.overflowing_sub(c).1 as i32;
        }
        self.finish(u, self.mid_len as i32 - below)
    }

    /// The sample from the number of middle entries `u` reaches.
    #[inline(always)]
    fn finish(&self, u: u64, reached: i32) -> i8 {
        // u = u64::MAX exactly when !u is zero.
        let not_u = !u;
        let is_max = (((not_u | not_u.wrapping_neg()) >> 63) ^ 1) as i32;
        (self.base + reached + self.tops * is_max) as i8
    }

    /// One sample in [-41, 41].
    #[inline]
    pub fn sample<R: RngCore + CryptoRng>(&self, rng: &mut R) -> i8 {
        self.sample_word(rng.next_u64())
    }

    /// Fills `out` with samples, one word of `rng` each, in order.
    #[cfg(not(hetune_armv7em))]
    pub fn fill<R: RngCore + CryptoRng>(&self, rng: &mut R, out: &mut [i8]) {
        for o in out {
            *o = self.sample(rng);
        }
    }

    /// Fills `out` with samples, one word of `rng` each, in order: two samples per pass over
    /// the table, each entry loaded once and compared with both words (a 64-bit subtraction whose
    /// carry is added to the count: SUBS, SBCS, ADC), so no branch and no address depends on
    /// the words.
    #[cfg(hetune_armv7em)]
    #[allow(unsafe_code)]
    pub fn fill<R: RngCore + CryptoRng>(&self, rng: &mut R, out: &mut [i8]) {
        let mut pairs = out.chunks_exact_mut(2);
        for pair in &mut pairs {
            let (u, v) = (rng.next_u64(), rng.next_u64());
            let (mut cu, mut cv) = (0u32, 0u32);
            if self.mid_len == 0 {
                pair[0] = self.finish(u, 0);
                pair[1] = self.finish(v, 0);
                continue;
            }
            // SAFETY: reads `mid[0..mid_len]` (mid_len a non-zero multiple of 4, at most MID_CAPACITY)
            // through a post-incremented pointer, 8 bytes at a time from an aligned u64 array;
            // no other memory, no stack; declared clobbers only.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldrd {c0}, {c1}, [{p}], #8",
                    "subs {t}, {ul}, {c0}",
                    "sbcs {t}, {uh}, {c1}",
                    "adc {cu}, {cu}, #0",
                    "subs {t}, {vl}, {c0}",
                    "sbcs {t}, {vh}, {c1}",
                    "adc {cv}, {cv}, #0",
                    "ldrd {c0}, {c1}, [{p}], #8",
                    "subs {t}, {ul}, {c0}",
                    "sbcs {t}, {uh}, {c1}",
                    "adc {cu}, {cu}, #0",
                    "subs {t}, {vl}, {c0}",
                    "sbcs {t}, {vh}, {c1}",
                    "adc {cv}, {cv}, #0",
                    "ldrd {c0}, {c1}, [{p}], #8",
                    "subs {t}, {ul}, {c0}",
                    "sbcs {t}, {uh}, {c1}",
                    "adc {cu}, {cu}, #0",
                    "subs {t}, {vl}, {c0}",
                    "sbcs {t}, {vh}, {c1}",
                    "adc {cv}, {cv}, #0",
                    "ldrd {c0}, {c1}, [{p}], #8",
                    "subs {t}, {ul}, {c0}",
                    "sbcs {t}, {uh}, {c1}",
                    "adc {cu}, {cu}, #0",
                    "subs {t}, {vl}, {c0}",
                    "sbcs {t}, {vh}, {c1}",
                    "adc {cv}, {cv}, #0",
                    "subs {i}, {i}, #1",
                    "bne 2b",
                    p = inout(reg) self.mid.as_ptr() => _,
                    i = inout(reg) self.mid_len / 4 => _,
                    ul = in(reg) u as u32,
                    uh = in(reg) (u >> 32) as u32,
                    vl = in(reg) v as u32,
                    vh = in(reg) (v >> 32) as u32,
                    cu = inout(reg) cu,
                    cv = inout(reg) cv,
                    c0 = out(reg) _,
                    c1 = out(reg) _,
                    t = out(reg) _,
                    options(nostack, readonly),
                );
            }
            pair[0] = self.finish(u, cu as i32);
            pair[1] = self.finish(v, cv as i32);
        }
        for o in pairs.into_remainder() {
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

    /// The full-table scan the sampler replaces (every entry, 128-bit comparisons).
    fn full_scan(cdf: &[u64; GAUSS_ENTRIES], u: u64) -> i8 {
        let u = u as u128;
        let mut count = 0i32;
        for &c in cdf {
            count += 1 - ((u.wrapping_sub(c as u128) >> 127) as i32);
        }
        (count - GAUSS_BOUND) as i8
    }

    /// The folded scan gives the full scan's sample for every word it was tried on: each table
    /// entry and its neighbours, the extremes, and a million words from a generator; for the
    /// production width and the extreme widths the constructor accepts.
    #[test]
    fn gaussian_equals_the_full_table_scan() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for sigma in [3.2, 1.0, MAX_SIGMA, 1e-10] {
            let g = GaussianSampler::new(sigma).unwrap();
            let cdf = &GaussianSampler::cdf(sigma).unwrap();
            let mut words = alloc::vec![0u64, 1, 2, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1];
            for &c in cdf {
                words.extend([c, c.wrapping_sub(1), c.wrapping_add(1)]);
            }
            for u in words {
                assert_eq!(g.sample_word(u), full_scan(cdf, u), "sigma {sigma}, u = {u:#x}");
            }
            let trials = if sigma == 3.2 { 1_000_000 } else { 100_000 };
            for _ in 0..trials {
                let u = rng.next_u64();
                assert_eq!(g.sample_word(u), full_scan(cdf, u), "sigma {sigma}, u = {u:#x}");
            }
        }
        // At sigma = 3.2 the fold leaves out a third of the table.
        let g = GaussianSampler::new(3.2).unwrap();
        assert!(g.mid_len < 60 && g.mid_len > 40 && g.mid_len.is_multiple_of(4), "{} middle entries", g.mid_len);
        let cdf = GaussianSampler::cdf(3.2).unwrap();
        assert_eq!(cdf[0], 0);
        assert_eq!(cdf[GAUSS_ENTRIES - 1], u64::MAX);
    }

    /// The table itself: monotone, centred, and each step the probability of its value (within
    /// the f64 rounding of the accumulation).
    #[test]
    fn gaussian_table_is_the_discrete_gaussian() {
        let sigma = 3.2f64;
        let cdf = GaussianSampler::cdf(sigma).unwrap();
        assert!(cdf.windows(2).all(|w| w[0] <= w[1]));
        let w = |x: i32| (-((x * x) as f64) / (2.0 * sigma * sigma)).exp();
        let total: f64 = (-GAUSS_BOUND..=GAUSS_BOUND).map(w).sum();
        let two64 = 18_446_744_073_709_551_616.0f64;
        for k in 1..GAUSS_ENTRIES {
            let step = (cdf[k] - cdf[k - 1]) as f64 / two64;
            let want = w(k as i32 - GAUSS_BOUND) / total;
            assert!((step - want).abs() <= 1e-15, "P(X = {}) = {step}, want {want}", k as i32 - GAUSS_BOUND);
        }
        // P(X <= 0) is one half plus half the mass at 0.
        let at0 = cdf[GAUSS_BOUND as usize] as f64 / two64;
        assert!((at0 - (0.5 + w(0) / total / 2.0)).abs() < 1e-12, "{at0}");
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

    /// The scalar ChaCha20 gives rand_chacha's words for several seeds and streams, through
    /// every way of drawing from it (mixed word sizes and byte fills cross the buffer edges).
    #[test]
    fn chacha20_equals_rand_chacha() {
        use rand_core::SeedableRng;
        let mut seeds = ChaCha20Rng::seed_from_u64(6);
        for trial in 0..24u64 {
            let mut seed = [0u8; 32];
            seeds.fill_bytes(&mut seed);
            let stream = match trial % 4 {
                0 => 0,
                1 => trial,
                2 => (trial << 32) | 7,
                _ => u64::MAX - trial,
            };
            let mut want = ChaCha20Rng::from_seed(seed);
            want.set_stream(stream);
            let mut got = ChaCha20Core::rng(&seed, stream);
            for step in 0..3000u64 {
                match (step * 7 + trial) % 5 {
                    0 | 1 => assert_eq!(got.next_u64(), want.next_u64(), "trial {trial} step {step}"),
                    2 => assert_eq!(got.next_u32(), want.next_u32(), "trial {trial} step {step}"),
                    3 => {
                        let len = (step % 97) as usize;
                        let (mut a, mut b) = ([0u8; 97], [0u8; 97]);
                        got.fill_bytes(&mut a[..len]);
                        want.fill_bytes(&mut b[..len]);
                        assert_eq!(a, b, "trial {trial} step {step}");
                    }
                    _ => assert_eq!(got.next_u64(), want.next_u64(), "trial {trial} step {step}"),
                }
            }
        }
        // RFC 8439 section 2.3.2's block, with its 96-bit nonce expressed as this layout's
        // counter and stream: counter = 1 | 0x09000000 << 32, stream = 0x4a000000 | 0 << 32.
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let core = ChaCha20Core::new(&key, 0x4a00_0000);
        let mut out = [0u32; 16];
        core.block(1 | (0x0900_0000u64 << 32), &mut out);
        assert_eq!(out[0], 0xe4e7_f110);
        assert_eq!(out[15], 0x4e3c_50a2);
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
