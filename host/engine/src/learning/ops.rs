//! The operations the matrix algorithms are written against, with two backends: [`CkksBackend`] runs
//! them on ciphertexts with an [`Evaluator`]; [`CountingBackend`] runs them on level-only stand-ins, so
//! that the operation counts, the levels consumed and the rotation keys needed by any shape
//! come from the same code path as the encrypted run, in microseconds.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use hetune_core::ckks::{Ciphertext, Complex, Encoder, Plaintext};

use super::counters::Counter;
use super::packing::Packing;
use crate::circuits::arith::Arith;
use crate::circuits::bootstrap::Bootstrapper;
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
    /// [`MaskKind::PairDiagAtb`]`(p)` read `k` rows up: `1/2` where `r - k = t + p`, `-i/2` where
    /// `r - k = t + p + pad_c/2` (mod `pad_c`). With `M` the pair mask and `M'` this one,
    /// `M * rot(x, k s1) = rot(M' * x, k s1)`: the mask moves before a row shift.
    PairDiagAtbUp(usize, usize),
    /// [`MaskKind::PairDiagAbt`] kept only where the row's band equals the column's period
    /// (`r / (s0 / k) == t / pad_c`, `k = s1 / pad_c`): DiagABT's output folded for the softmax
    /// ([`crate::learning::softmax::fold`]).
    PairDiagAbtFolded(usize),
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
                    MaskKind::PairDiagAbt(p)
                    | MaskKind::PairDiagAtb(p)
                    | MaskKind::PairDiagAtbUp(p, _)
                    | MaskKind::PairDiagAbtFolded(p) => {
                        let d = match self.kind {
                            MaskKind::PairDiagAtb(_) => (r + pad_c - t % pad_c) % pad_c,
                            MaskKind::PairDiagAtbUp(_, k) => (r % pad_c + 2 * pad_c - k % pad_c - t % pad_c) % pad_c,
                            _ => (t + pad_c - r % pad_c) % pad_c,
                        };
                        let kept = match self.kind {
                            MaskKind::PairDiagAbtFolded(_) => r / self.packing.band() == t / pad_c,
                            _ => true,
                        };
                        if !kept {
                            zero
                        } else if d == p {
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

/// A homomorphic-encryption backend: the operations the matrix algorithms and the training
/// circuits use, on ciphertexts or stand-ins of type [`Arith::Ct`]. The level and scale
/// arithmetic comes from [`Arith`] (what the polynomial evaluator needs); masks rescale right
/// after the product, so a mask uses exactly one level.
pub trait HeBackend: Arith + Sync {
    /// Slots per ciphertext.
    fn slots(&self) -> usize;
    /// The operation counters.
    fn counter(&self) -> &Counter;
    /// `i * a`, exact and free (a monomial).
    fn mul_by_i(&self, a: &Self::Ct) -> Result<Self::Ct>;
    /// Rotations of `a` by every step, sharing one decomposition; a step of 0 returns `a` and is
    /// not counted.
    fn rotate_hoisted(&self, a: &Self::Ct, steps: &[i64]) -> Result<Vec<Self::Ct>>;
    /// Complex conjugation of every slot.
    fn conjugate(&self, a: &Self::Ct) -> Result<Self::Ct>;
    /// `mask * a`, rescaled (one level; the scale is kept).
    fn mul_mask(&self, a: &Self::Ct, mask: &Mask) -> Result<Self::Ct>;
    /// `sum_k mask_k * a_k`, rescaled (one level; the scale is kept); one CMult per term. The
    /// default rescales each product; the CKKS backend sums them first and rescales once.
    fn mul_masks_sum(&self, terms: &[(&Self::Ct, Mask)]) -> Result<Self::Ct> {
        let mut acc: Option<Self::Ct> = None;
        for (a, mask) in terms {
            let x = self.mul_mask(a, mask)?;
            acc = Some(match acc {
                None => x,
                Some(y) => self.add(&y, &x)?,
            });
        }
        acc.ok_or(Error::InvalidArgument("mul_masks_sum of no terms"))
    }
    /// `sum_k x_k * y_k`, relinearised once and rescaled (one level).
    fn mul_sum(&self, pairs: &[(&Self::Ct, &Self::Ct)]) -> Result<Self::Ct>;
    /// `values * a` slot by slot for arbitrary real `values` (one per slot), encoded so that
    /// after the rescale (one level) the result has exactly `target_scale`.
    fn mul_values(&self, a: &Self::Ct, values: &[f64], target_scale: f64) -> Result<Self::Ct>;
    /// Level of a bootstrapped ciphertext, `None` without a bootstrapper.
    fn bootstrap_level(&self) -> Option<usize>;
    /// Refreshes a real-valued `a` to [`HeBackend::bootstrap_level`] (its scale kept; the
    /// imaginary noise removed); `site` names the place in the circuit, for the planner.
    fn bootstrap(&self, a: &Self::Ct, site: &'static str) -> Result<Self::Ct>;
    /// Refreshes two real-valued ciphertexts (same level and scale) by one bootstrap of
    /// `a + i b`, split back with a conjugation.
    fn bootstrap_pair(&self, a: &Self::Ct, b: &Self::Ct, site: &'static str) -> Result<(Self::Ct, Self::Ct)>;
    /// [`HeBackend::bootstrap_pair`] for `a` and `b` whose slots repeat with period `slots` (a
    /// power of two below the slot count): one bootstrap of the sparse packing of `slots`
    /// slots; the results repeat with the same period.
    fn bootstrap_pair_sparse(
        &self,
        a: &Self::Ct,
        b: &Self::Ct,
        slots: usize,
        site: &'static str,
    ) -> Result<(Self::Ct, Self::Ct)>;

    /// `a * b`, relinearised and rescaled (one level; scale `a.scale * b.scale / q_l`).
    fn mul(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct> {
        let p = self.mul_relin(a, b)?;
        self.rescale(p)
    }

    /// `a * a`.
    fn square(&self, a: &Self::Ct) -> Result<Self::Ct> {
        self.mul(a, a)
    }

    /// `c * a` for a real constant, rescaled (one level), landing exactly on `target_scale`.
    fn mul_const_to(&self, a: &Self::Ct, c: f64, target_scale: f64) -> Result<Self::Ct> {
        let q = self.rescale_scale(self.level(a));
        let x = self.mul_const(a, c, target_scale * q / self.scale(a))?;
        let x = self.rescale(x)?;
        self.snap_scale(x, target_scale)
    }

    /// `a` brought to `target_scale` (one level).
    fn set_scale(&self, a: &Self::Ct, target_scale: f64) -> Result<Self::Ct> {
        self.mul_const_to(a, 1.0, target_scale)
    }

    /// `a` bootstrapped when it has fewer than `need` levels left (the planner's rule: refresh
    /// only where a ciphertext would run out of levels).
    fn ensure(&self, a: &Self::Ct, need: usize, site: &'static str) -> Result<Self::Ct> {
        if self.level(a) >= need {
            return Ok(a.clone());
        }
        let out = self.bootstrap(a, site)?;
        if self.level(&out) < need {
            return Err(Error::LevelExhausted { op: site, level: self.level(&out) });
        }
        Ok(out)
    }

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

pub(crate) fn nonzero_steps(steps: &[i64], slots: usize) -> u64 {
    steps.iter().filter(|&&s| s.rem_euclid(slots as i64) != 0).count() as u64
}

/// The CKKS backend: an evaluator, an encoder for masks (cached by mask and level), the
/// counters, and optionally a bootstrapper (built with an output factor of 1/2, see
/// [`Bootstrapper::with_output_factor`]: the real part is then `z + conj(z)` with no level
/// spent). Time spent bootstrapping is accumulated for the step's time split.
pub struct CkksBackend<'a> {
    ev: &'a Evaluator,
    encoder: Encoder<'a>,
    counter: Counter,
    masks: Mutex<HashMap<(Mask, usize), Arc<Plaintext>>>,
    boot: Option<&'a Bootstrapper>,
    sparse: Vec<&'a Bootstrapper>,
    boot_log: Mutex<BootLog>,
}

/// One bootstrap: where in the circuit, from which level, how many real ciphertexts it
/// refreshed (2 for `a + i b`), on how many slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BootEvent {
    /// The circuit's name for the place.
    pub site: &'static str,
    /// Level of the input.
    pub level: usize,
    /// Real ciphertexts refreshed.
    pub count: usize,
    /// Slots of the bootstrapped packing.
    pub slots: usize,
}

/// Bootstraps made by a backend: where, from which level, and (on ciphertexts) how long.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct BootLog {
    /// Every bootstrap, in order.
    pub events: Vec<BootEvent>,
    /// Seconds spent bootstrapping (0 on stand-ins).
    pub seconds: f64,
}

impl BootLog {
    /// Bootstraps made.
    pub fn count(&self) -> usize {
        self.events.len()
    }
}

impl<'a> CkksBackend<'a> {
    /// A backend over `ev`.
    pub fn new(ev: &'a Evaluator) -> Self {
        CkksBackend {
            ev,
            encoder: Encoder::new(ev.context()),
            counter: Counter::new(),
            masks: Mutex::new(HashMap::new()),
            boot: None,
            sparse: Vec::new(),
            boot_log: Mutex::new(BootLog::default()),
        }
    }

    /// The backend with a sparse-slot bootstrapper too (output factor 1/2), for
    /// [`HeBackend::bootstrap_pair_sparse`] on its slot count (one per slot count: a later one
    /// for the same count replaces it).
    pub fn with_sparse_bootstrapper(mut self, boot: &'a Bootstrapper) -> Result<Self> {
        if boot.output_factor() != 0.5 {
            return Err(Error::InvalidArgument("the backend's bootstrapper must have output factor 1/2"));
        }
        let log_n = self.ev.context().params().log_n();
        self.sparse.retain(|b| b.config().slots(log_n) != boot.config().slots(log_n));
        self.sparse.push(boot);
        Ok(self)
    }

    /// The backend with a bootstrapper; it must have been built over the same evaluator with
    /// output factor 1/2 ([`Bootstrapper::with_output_factor`]).
    pub fn with_bootstrapper(mut self, boot: &'a Bootstrapper) -> Result<Self> {
        if boot.output_factor() != 0.5 {
            return Err(Error::InvalidArgument("the backend's bootstrapper must have output factor 1/2"));
        }
        self.boot = Some(boot);
        Ok(self)
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Evaluator {
        self.ev
    }

    /// The bootstraps made so far.
    pub fn boot_log(&self) -> BootLog {
        self.boot_log.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

    /// The plaintext of `mask` at `level` for multiplying `a` (same slot count, checked).
    fn mask_for(&self, a: &Ciphertext, mask: &Mask, level: usize) -> Result<Arc<Plaintext>> {
        if mask.packing.slots() != 1 << a.log_slots {
            return Err(Error::InvalidArgument("mask and ciphertext have different slot counts"));
        }
        self.mask_plaintext(mask, level, a.log_slots)
    }

    /// `z / 2` refreshed, timed and logged.
    fn boot_half(&self, z: &Ciphertext, site: &'static str, count: usize) -> Result<Ciphertext> {
        let boot = self.boot.ok_or(Error::InvalidArgument("bootstrapping needs a backend with a bootstrapper"))?;
        let t = std::time::Instant::now();
        let out = boot.bootstrap(z)?;
        let mut log = self.boot_log.lock().unwrap_or_else(|e| e.into_inner());
        log.events.push(BootEvent { site, level: z.level, count, slots: 1 << z.log_slots });
        log.seconds += t.elapsed().as_secs_f64();
        Ok(out)
    }
}

impl Arith for CkksBackend<'_> {
    type Ct = Ciphertext;

    fn level(&self, ct: &Ciphertext) -> usize {
        ct.level
    }
    fn scale(&self, ct: &Ciphertext) -> f64 {
        ct.scale
    }
    fn rescale_scale(&self, level: usize) -> f64 {
        self.ev.rescale_scale(level)
    }
    fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.ev.add(a, b)
    }
    fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.ev.sub(a, b)
    }
    fn drop_level(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext> {
        self.ev.drop_level(a, level)
    }
    fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.counter.add_mult(1);
        self.ev.mul_relin(a, b)
    }
    fn rescale(&self, a: Ciphertext) -> Result<Ciphertext> {
        Arith::rescale(self.ev, a)
    }
    fn mul_integer(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.ev.mul_integer(a, k)
    }
    fn add_const(&self, a: &Ciphertext, c: f64) -> Result<Ciphertext> {
        self.ev.add_const_real(a, c)
    }
    fn mul_const(&self, a: &Ciphertext, c: f64, scale: f64) -> Result<Ciphertext> {
        self.ev.mul_const_real(a, c, scale)
    }
    fn snap_scale(&self, a: Ciphertext, scale: f64) -> Result<Ciphertext> {
        Arith::snap_scale(self.ev, a, scale)
    }
    fn zero_like(&self, like: &Ciphertext, level: usize, scale: f64) -> Result<Ciphertext> {
        Arith::zero_like(self.ev, like, level, scale)
    }
}

impl HeBackend for CkksBackend<'_> {
    fn slots(&self) -> usize {
        self.ev.context().params().max_slots()
    }
    fn counter(&self) -> &Counter {
        &self.counter
    }
    fn mul_by_i(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.ev.mul_by_i(a)
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
        let pt = self.mask_for(a, mask, a.level)?;
        self.counter.add_cmult(1);
        let mut out = self.ev.mul_plain(a, &pt)?;
        self.ev.rescale_assign(&mut out)?;
        Ok(out)
    }
    fn mul_masks_sum(&self, terms: &[(&Ciphertext, Mask)]) -> Result<Ciphertext> {
        let level =
            terms.iter().map(|(a, _)| a.level).min().ok_or(Error::InvalidArgument("mul_masks_sum of no terms"))?;
        let plains = terms.iter().map(|(a, mask)| self.mask_for(a, mask, level)).collect::<Result<Vec<_>>>()?;
        self.counter.add_cmult(terms.len() as u64);
        let pairs: Vec<(&Ciphertext, &Plaintext)> = terms.iter().zip(&plains).map(|((a, _), p)| (*a, &**p)).collect();
        let mut out = self.ev.mul_plain_sum(&pairs)?;
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
    fn mul_values(&self, a: &Ciphertext, values: &[f64], target_scale: f64) -> Result<Ciphertext> {
        if values.len() != 1 << a.log_slots {
            return Err(Error::InvalidArgument("mask values and ciphertext have different slot counts"));
        }
        if a.level == 0 {
            return Err(Error::LevelExhausted { op: "mul_values", level: 0 });
        }
        self.counter.add_cmult(1);
        let pt_scale = target_scale * self.ev.rescale_scale(a.level) / a.scale;
        let pt = self.encoder.encode_real(values, a.log_slots, a.level, pt_scale)?;
        let out = self.ev.mul_plain(a, &pt)?;
        let out = Arith::rescale(self.ev, out)?;
        Arith::snap_scale(self.ev, out, target_scale)
    }
    fn bootstrap_level(&self) -> Option<usize> {
        self.boot.map(Bootstrapper::output_level)
    }
    fn bootstrap(&self, a: &Ciphertext, site: &'static str) -> Result<Ciphertext> {
        let half = self.boot_half(a, site, 1)?;
        let conj = self.conjugate(&half)?;
        self.ev.add(&half, &conj)
    }
    fn bootstrap_pair(&self, a: &Ciphertext, b: &Ciphertext, site: &'static str) -> Result<(Ciphertext, Ciphertext)> {
        let z = self.ev.add(a, &self.ev.mul_by_i(b)?)?;
        let half = self.boot_half(&z, site, 2)?;
        let conj = self.conjugate(&half)?;
        let re = self.ev.add(&half, &conj)?;
        let im = self.ev.mul_by_i(&self.ev.sub(&conj, &half)?)?;
        Ok((re, im))
    }
    fn bootstrap_pair_sparse(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        slots: usize,
        site: &'static str,
    ) -> Result<(Ciphertext, Ciphertext)> {
        let full = a.log_slots;
        let log_n = self.ev.context().params().log_n();
        let boot = self
            .sparse
            .iter()
            .find(|b| 1usize << b.config().slots(log_n) == slots)
            .ok_or(Error::InvalidArgument("no sparse bootstrapper packs this slot count"))?;
        if slots >= 1 << full {
            return Err(Error::InvalidArgument("a sparse bootstrap packs fewer slots than the ciphertext"));
        }
        let mut z = self.ev.add(a, &self.ev.mul_by_i(b)?)?;
        self.ev.reinterpret_slots(&mut z, slots.trailing_zeros())?;
        let t = std::time::Instant::now();
        let mut half = boot.bootstrap(&z)?;
        {
            let mut log = self.boot_log.lock().unwrap_or_else(|e| e.into_inner());
            log.events.push(BootEvent { site, level: z.level, count: 2, slots });
            log.seconds += t.elapsed().as_secs_f64();
        }
        self.ev.reinterpret_slots(&mut half, full)?;
        let conj = self.conjugate(&half)?;
        let re = self.ev.add(&half, &conj)?;
        let im = self.ev.mul_by_i(&self.ev.sub(&conj, &half)?)?;
        Ok((re, im))
    }
}

/// A stand-in ciphertext of the counting backend: its level only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelOnly {
    /// The level.
    pub level: usize,
}

/// The scale the counting backend reports for every stand-in (it tracks levels only; the
/// level-and-scale simulator is [`super::sim::Simulator`]).
const NOMINAL_SCALE: f64 = (1u64 << 42) as f64;

/// The counting backend: runs an algorithm on [`LevelOnly`] stand-ins, counting operations,
/// tracking levels and recording the rotation steps used (for key generation).
#[derive(Debug)]
pub struct CountingBackend {
    slots: usize,
    counter: Counter,
    steps: Mutex<BTreeSet<i64>>,
    boot_level: Option<usize>,
    boot_log: Mutex<BootLog>,
}

impl CountingBackend {
    /// A counting backend for `slots` slots.
    pub fn new(slots: usize) -> Self {
        CountingBackend {
            slots,
            counter: Counter::new(),
            steps: Mutex::new(BTreeSet::new()),
            boot_level: None,
            boot_log: Mutex::new(BootLog::default()),
        }
    }

    /// The backend with bootstrapping to `level`.
    pub fn with_bootstrap_level(mut self, level: usize) -> Self {
        self.boot_level = Some(level);
        self
    }

    /// Every rotation step used so far, as a left rotation in `1..slots`, ascending.
    pub fn rotation_steps(&self) -> Vec<i64> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    /// The bootstraps made so far.
    pub fn boot_log(&self) -> BootLog {
        self.boot_log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lower(op: &'static str, x: &LevelOnly) -> Result<LevelOnly> {
        if x.level == 0 {
            return Err(Error::LevelExhausted { op, level: 0 });
        }
        Ok(LevelOnly { level: x.level - 1 })
    }

    fn boot(&self, a: &LevelOnly, site: &'static str, count: usize, slots: usize) -> Result<LevelOnly> {
        let level =
            self.boot_level.ok_or(Error::InvalidArgument("bootstrapping needs a backend with a bootstrapper"))?;
        self.counter.add_conj(1);
        self.boot_log.lock().unwrap_or_else(|e| e.into_inner()).events.push(BootEvent {
            site,
            level: a.level,
            count,
            slots,
        });
        Ok(LevelOnly { level })
    }
}

impl Arith for CountingBackend {
    type Ct = LevelOnly;

    fn level(&self, ct: &LevelOnly) -> usize {
        ct.level
    }
    fn scale(&self, _: &LevelOnly) -> f64 {
        NOMINAL_SCALE
    }
    fn rescale_scale(&self, _: usize) -> f64 {
        NOMINAL_SCALE
    }
    fn add(&self, a: &LevelOnly, b: &LevelOnly) -> Result<LevelOnly> {
        Ok(LevelOnly { level: a.level.min(b.level) })
    }
    fn sub(&self, a: &LevelOnly, b: &LevelOnly) -> Result<LevelOnly> {
        Arith::add(self, a, b)
    }
    fn drop_level(&self, a: &LevelOnly, level: usize) -> Result<LevelOnly> {
        if level > a.level {
            return Err(Error::InvalidArgument("cannot raise a ciphertext's level (that needs bootstrapping)"));
        }
        Ok(LevelOnly { level })
    }
    fn mul_relin(&self, a: &LevelOnly, b: &LevelOnly) -> Result<LevelOnly> {
        self.counter.add_mult(1);
        Arith::add(self, a, b)
    }
    fn rescale(&self, a: LevelOnly) -> Result<LevelOnly> {
        Self::lower("rescale", &a)
    }
    fn mul_integer(&self, a: &LevelOnly, _: i64) -> Result<LevelOnly> {
        Ok(*a)
    }
    fn add_const(&self, a: &LevelOnly, _: f64) -> Result<LevelOnly> {
        Ok(*a)
    }
    fn mul_const(&self, a: &LevelOnly, _: f64, _: f64) -> Result<LevelOnly> {
        Ok(*a)
    }
    fn snap_scale(&self, a: LevelOnly, _: f64) -> Result<LevelOnly> {
        Ok(a)
    }
    fn zero_like(&self, _: &LevelOnly, level: usize, _: f64) -> Result<LevelOnly> {
        Ok(LevelOnly { level })
    }
}

impl HeBackend for CountingBackend {
    fn slots(&self) -> usize {
        self.slots
    }
    fn counter(&self) -> &Counter {
        &self.counter
    }
    fn mul_by_i(&self, a: &LevelOnly) -> Result<LevelOnly> {
        Ok(*a)
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
    fn mul_values(&self, a: &LevelOnly, values: &[f64], _: f64) -> Result<LevelOnly> {
        if values.len() != self.slots {
            return Err(Error::InvalidArgument("mask values and ciphertext have different slot counts"));
        }
        self.counter.add_cmult(1);
        Self::lower("mul_values", a)
    }
    fn bootstrap_level(&self) -> Option<usize> {
        self.boot_level
    }
    fn bootstrap(&self, a: &LevelOnly, site: &'static str) -> Result<LevelOnly> {
        self.boot(a, site, 1, self.slots)
    }
    fn bootstrap_pair(&self, a: &LevelOnly, b: &LevelOnly, site: &'static str) -> Result<(LevelOnly, LevelOnly)> {
        let z = Arith::add(self, a, b)?;
        let out = self.boot(&z, site, 2, self.slots)?;
        Ok((out, out))
    }
    fn bootstrap_pair_sparse(
        &self,
        a: &LevelOnly,
        b: &LevelOnly,
        slots: usize,
        site: &'static str,
    ) -> Result<(LevelOnly, LevelOnly)> {
        let z = Arith::add(self, a, b)?;
        let out = self.boot(&z, site, 2, slots)?;
        Ok((out, out))
    }
}
