//! The operations the matrix algorithms are written against, with two backends: [`CkksBackend`] runs
//! them on ciphertexts with an [`Evaluator`]; [`CountingBackend`] runs them on level-only stand-ins, so
//! that the operation counts, the levels consumed and the rotation keys needed by any shape
//! come from the same code path as the encrypted run, in microseconds.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use hetune_core::ckks::{Ciphertext, Complex, Encoder, Plaintext};

use super::counters::Counter;
use super::packing::Packing;
use crate::evaluator::Evaluator;
use crate::{Error, Result};

/// A slot mask of a packing (a public plaintext). Masks hold 0/1 values, or `1/2` and `-i/2` in
/// the paired-diagonal masks (see [`MaskKind::PairDiagAbt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mask {
    /// The packing whose slot grid the mask lives on.
    pub packing: Packing,
    /// Which mask.
    pub kind: MaskKind,
}

/// The masks the algorithms use; `(r, t)` is the row and column of a slot inside its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskKind {
    /// `t == k`.
    Col(usize),
    /// `r == k`.
    Row(usize),
    /// `t < k`.
    ColsBelow(usize),
    /// `t >= k`.
    ColsFrom(usize),
    /// DiagABT, pair `p`: `1/2` where `t = r + p`, `-i/2` where `t = r + p + pad_c/2` (mod
    /// `pad_c`). Applied to `x + iy`, its real part puts `x` on diagonal `p` and `y` on diagonal
    /// `p + pad_c/2`.
    PairDiagAbt(usize),
    /// DiagATB, pair `p`: `1/2` where `r = t + p`, `-i/2` where `r = t + p + pad_c/2` (mod `pad_c`).
    PairDiagAtb(usize),
}

impl Mask {
    /// A mask on `packing`.
    pub fn new(packing: Packing, kind: MaskKind) -> Self {
        Mask { packing, kind }
    }

    /// The mask's slot values.
    pub fn values(&self) -> Vec<Complex> {
        let Packing { s0, s1, pad_c } = self.packing;
        let h = pad_c / 2;
        let one = Complex::new(1.0, 0.0);
        let zero = Complex::new(0.0, 0.0);
        let half = Complex::new(0.5, 0.0);
        let neg_half_i = Complex::new(0.0, -0.5);
        let mut v = vec![zero; s0 * s1];
        for r in 0..s0 {
            for t in 0..s1 {
                v[r * s1 + t] = match self.kind {
                    MaskKind::Col(k) => {
                        if t == k {
                            one
                        } else {
                            zero
                        }
                    }
                    MaskKind::Row(k) => {
                        if r == k {
                            one
                        } else {
                            zero
                        }
                    }
                    MaskKind::ColsBelow(k) => {
                        if t < k {
                            one
                        } else {
                            zero
                        }
                    }
                    MaskKind::ColsFrom(k) => {
                        if t >= k {
                            one
                        } else {
                            zero
                        }
                    }
                    MaskKind::PairDiagAbt(p) | MaskKind::PairDiagAtb(p) => {
                        let d = match self.kind {
                            MaskKind::PairDiagAbt(_) => (t + pad_c - r % pad_c) % pad_c,
                            _ => (r + pad_c - t % pad_c) % pad_c,
                        };
                        if d == p {
                            half
                        } else if d == p + h {
                            neg_half_i
                        } else {
                            zero
                        }
                    }
                };
            }
        }
        v
    }
}

/// A homomorphic-encryption backend: the operations the matrix algorithms use, on ciphertexts
/// or stand-ins of type [`HeBackend::Ct`]. Every multiplication is followed by its rescale, so a
/// mask or a product uses exactly one level.
pub trait HeBackend: Sync {
    /// A ciphertext (or a stand-in).
    type Ct: Clone + Send + Sync;
    /// Slots per ciphertext.
    fn slots(&self) -> usize;
    /// The operation counters.
    fn counter(&self) -> &Counter;
    /// Level of a ciphertext.
    fn level(&self, ct: &Self::Ct) -> usize;
    /// `a + b` (at the lower level).
    fn add(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    /// `a - b`.
    fn sub(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    /// `i * a`, exact and free (a monomial).
    fn mul_by_i(&self, a: &Self::Ct) -> Result<Self::Ct>;
    /// `a` at a lower level (free).
    fn drop_level(&self, a: &Self::Ct, level: usize) -> Result<Self::Ct>;
    /// Rotations of `a` by every step, sharing one decomposition; a step of 0 returns `a` and is
    /// not counted.
    fn rotate_hoisted(&self, a: &Self::Ct, steps: &[i64]) -> Result<Vec<Self::Ct>>;
    /// Complex conjugation of every slot.
    fn conjugate(&self, a: &Self::Ct) -> Result<Self::Ct>;
    /// `mask * a`, rescaled (one level; the scale is kept).
    fn mul_mask(&self, a: &Self::Ct, mask: &Mask) -> Result<Self::Ct>;
    /// `sum_k x_k * y_k`, relinearised once and rescaled (one level).
    fn mul_sum(&self, pairs: &[(&Self::Ct, &Self::Ct)]) -> Result<Self::Ct>;

    /// One rotation.
    fn rotate(&self, a: &Self::Ct, step: i64) -> Result<Self::Ct> {
        self.rotate_hoisted(a, &[step])?.pop().ok_or(Error::InvalidArgument("empty rotation"))
    }

    /// `x <- x + rot(x, step)` for each step in turn (a rotate-and-add tree).
    fn rotate_add(&self, mut x: Self::Ct, steps: impl Iterator<Item = i64>) -> Result<Self::Ct>
    where
        Self: Sized,
    {
        for s in steps {
            let r = self.rotate(&x, s)?;
            x = self.add(&x, &r)?;
        }
        Ok(x)
    }

    /// `x + conj(x)`: twice the real part.
    fn real_twice(&self, x: &Self::Ct) -> Result<Self::Ct> {
        let c = self.conjugate(x)?;
        self.add(x, &c)
    }
}

/// Steps `unit * 2^k` for `k < log2(count)`: a rotate-and-add over `count` terms `unit` apart.
pub fn doubling(unit: i64, count: usize) -> impl Iterator<Item = i64> {
    (0..count.trailing_zeros()).map(move |k| unit << k)
}

fn nonzero_steps(steps: &[i64], slots: usize) -> u64 {
    steps.iter().filter(|&&s| s.rem_euclid(slots as i64) != 0).count() as u64
}

/// The CKKS backend: an evaluator, an encoder for masks (cached by mask and level) and the
/// counters.
pub struct CkksBackend<'a> {
    ev: &'a Evaluator,
    encoder: Encoder<'a>,
    counter: Counter,
    masks: Mutex<HashMap<(Mask, usize), Arc<Plaintext>>>,
}

impl<'a> CkksBackend<'a> {
    /// A backend over `ev`.
    pub fn new(ev: &'a Evaluator) -> Self {
        CkksBackend {
            ev,
            encoder: Encoder::new(ev.context()),
            counter: Counter::new(),
            masks: Mutex::new(HashMap::new()),
        }
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Evaluator {
        self.ev
    }

    fn mask_plaintext(&self, mask: &Mask, level: usize, log_slots: u32) -> Result<Arc<Plaintext>> {
        let key = (*mask, level);
        if let Some(p) = self.masks.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        // Encoded at q_level: the rescale after the product restores the ciphertext's scale.
        let pt =
            Arc::new(self.encoder.encode_complex(&mask.values(), log_slots, level, self.ev.rescale_scale(level))?);
        self.masks.lock().unwrap_or_else(|e| e.into_inner()).insert(key, pt.clone());
        Ok(pt)
    }
}

impl HeBackend for CkksBackend<'_> {
    type Ct = Ciphertext;

    fn slots(&self) -> usize {
        self.ev.context().params().max_slots()
    }
    fn counter(&self) -> &Counter {
        &self.counter
    }
    fn level(&self, ct: &Ciphertext) -> usize {
        ct.level
    }
    fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.ev.add(a, b)
    }
    fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.ev.sub(a, b)
    }
    fn mul_by_i(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.ev.mul_by_i(a)
    }
    fn drop_level(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext> {
        self.ev.drop_level(a, level)
    }
    fn rotate_hoisted(&self, a: &Ciphertext, steps: &[i64]) -> Result<Vec<Ciphertext>> {
        self.counter.add_rot(nonzero_steps(steps, 1 << a.log_slots));
        self.ev.rotate_hoisted(a, steps)
    }
    fn conjugate(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.counter.add_conj(1);
        self.ev.conjugate(a)
    }
    fn mul_mask(&self, a: &Ciphertext, mask: &Mask) -> Result<Ciphertext> {
        if mask.packing.slots() != 1 << a.log_slots {
            return Err(Error::InvalidArgument("mask and ciphertext have different slot counts"));
        }
        self.counter.add_cmult(1);
        let pt = self.mask_plaintext(mask, a.level, a.log_slots)?;
        let mut out = self.ev.mul_plain(a, &pt)?;
        self.ev.rescale_assign(&mut out)?;
        Ok(out)
    }
    fn mul_sum(&self, pairs: &[(&Ciphertext, &Ciphertext)]) -> Result<Ciphertext> {
        let (first, rest) = pairs.split_first().ok_or(Error::InvalidArgument("mul_sum of no products"))?;
        self.counter.add_mult(pairs.len() as u64);
        let mut acc = self.ev.mul(first.0, first.1)?;
        for (x, y) in rest {
            let p = self.ev.mul(x, y)?;
            self.ev.add_assign(&mut acc, &p)?;
        }
        let mut out = self.ev.relinearize(&acc)?;
        self.ev.rescale_assign(&mut out)?;
        Ok(out)
    }
}

/// A stand-in ciphertext of the counting backend: its level only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelOnly {
    /// The level.
    pub level: usize,
}

/// The counting backend: runs an algorithm on [`LevelOnly`] stand-ins, counting operations,
/// tracking levels and recording the rotation steps used (for key generation).
#[derive(Debug)]
pub struct CountingBackend {
    slots: usize,
    counter: Counter,
    steps: Mutex<BTreeSet<i64>>,
}

impl CountingBackend {
    /// A counting backend for `slots` slots.
    pub fn new(slots: usize) -> Self {
        CountingBackend { slots, counter: Counter::new(), steps: Mutex::new(BTreeSet::new()) }
    }

    /// Every rotation step used so far, as a left rotation in `1..slots`, ascending.
    pub fn rotation_steps(&self) -> Vec<i64> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    fn lower(op: &'static str, x: &LevelOnly) -> Result<LevelOnly> {
        if x.level == 0 {
            return Err(Error::LevelExhausted { op, level: 0 });
        }
        Ok(LevelOnly { level: x.level - 1 })
    }
}

impl HeBackend for CountingBackend {
    type Ct = LevelOnly;

    fn slots(&self) -> usize {
        self.slots
    }
    fn counter(&self) -> &Counter {
        &self.counter
    }
    fn level(&self, ct: &LevelOnly) -> usize {
        ct.level
    }
    fn add(&self, a: &LevelOnly, b: &LevelOnly) -> Result<LevelOnly> {
        Ok(LevelOnly { level: a.level.min(b.level) })
    }
    fn sub(&self, a: &LevelOnly, b: &LevelOnly) -> Result<LevelOnly> {
        self.add(a, b)
    }
    fn mul_by_i(&self, a: &LevelOnly) -> Result<LevelOnly> {
        Ok(*a)
    }
    fn drop_level(&self, a: &LevelOnly, level: usize) -> Result<LevelOnly> {
        if level > a.level {
            return Err(Error::InvalidArgument("cannot raise a ciphertext's level (that needs bootstrapping)"));
        }
        Ok(LevelOnly { level })
    }
    fn rotate_hoisted(&self, a: &LevelOnly, steps: &[i64]) -> Result<Vec<LevelOnly>> {
        self.counter.add_rot(nonzero_steps(steps, self.slots));
        let mut rec = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        for &s in steps {
            let s = s.rem_euclid(self.slots as i64);
            if s != 0 {
                rec.insert(s);
            }
        }
        Ok(vec![*a; steps.len()])
    }
    fn conjugate(&self, a: &LevelOnly) -> Result<LevelOnly> {
        self.counter.add_conj(1);
        Ok(*a)
    }
    fn mul_mask(&self, a: &LevelOnly, mask: &Mask) -> Result<LevelOnly> {
        if mask.packing.slots() != self.slots {
            return Err(Error::InvalidArgument("mask and ciphertext have different slot counts"));
        }
        self.counter.add_cmult(1);
        Self::lower("mul_mask", a)
    }
    fn mul_sum(&self, pairs: &[(&LevelOnly, &LevelOnly)]) -> Result<LevelOnly> {
        let level = pairs
            .iter()
            .map(|(x, y)| x.level.min(y.level))
            .min()
            .ok_or(Error::InvalidArgument("mul_sum of no products"))?;
        self.counter.add_mult(pairs.len() as u64);
        Self::lower("mul_sum", &LevelOnly { level })
    }
}
