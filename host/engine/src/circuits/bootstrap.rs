//! CKKS bootstrapping of full-slot (N/2 complex slots) and sparse-slot ciphertexts: sparse-secret
//! encapsulation,
//! ModRaise, CoeffToSlot, EvalMod, SlotToCoeff (Cheon-Han-Kim-Kim-Song, Eurocrypt 2018/2019;
//! Bossuat-Mouchet-Troncoso-Pastoriza-Hubaux, Eurocrypt 2021; sparse-secret encapsulation from
//! Bossuat-Troncoso-Pastoriza-Hubaux, ACNS 2022).
//!
//! Pipeline on the `n16-boot` chain (and its `test-n12-boot` twin):
//! 1. drop to level 0 and switch the secret `s -> s'`, where `s'` has Hamming weight 32, so the
//!    ModRaise overflow `I` is small;
//! 2. ModRaise to the top level and switch back `s' -> s`; the plaintext is now `m + q_0 I`;
//! 3. CoeffToSlot (3 levels, 56-bit primes): slots hold the coefficients divided by
//!    `q_0 (K + 1)`, in bit-reversed order; a conjugation splits real and imaginary halves;
//! 4. EvalMod on each half (10 levels, 58-bit primes): `sin(2 pi x)` from a degree-30 Chebyshev
//!    approximation of `cos(2 pi (x - 1/4) / 16)` and four double-angle steps (as precise as
//!    degree 60 with three steps, measured, and a third fewer multiplications);
//! 5. one conjugation keeps the real parts of EvalMod's outputs (their imaginary parts are pure
//!    noise, as large as EvalMod's error), then SlotToCoeff (3 levels at 2^42) with the factor
//!    `q_0 / (2 pi Delta)` folded into its matrices and its intermediate scales stepping down
//!    from EvalMod's 2^58 to 2^42 in equal ratios: the output holds the input's slots at level
//!    `default_level - 3`.
//!
//! Precision at `n16-boot` (`examples/boot_trace.rs` splits it by stage, mean bits over the
//! slots of values in [-1, 1]): the sine's curvature (`sin(2 pi x) / 2 pi` against `x`) 25.0,
//! EvalMod's noise 24.8 (mostly the polynomial's rescaling noise times the double angles'
//! gain of ~2^7), SlotToCoeff's own 28.9; 24.4 bits mean and 22.0 minimum in all. Before the
//! last two changes of step 5, SlotToCoeff's own error was 21.9 bits (its first matrix landed
//! on 2^42 while the partial DFT's values were still ~2^-7) and the total 21.7 / 19.3.
//!
//! Sparse packings of `n <= N/4` slots repack the halves so EvalMod runs once (as Lattigo's
//! "RepackImag2Real" does): CoeffToSlot's last matrix is applied in the `2n`-slot view of the
//! ciphertext (whose slots repeat with period `n`), writing `z` to slots `[0, n)` and `-i z` to
//! `[n, 2n)`, so one conjugation gives `[2 Re z, 2 Im z]` in one ciphertext, same rotations and
//! level. After EvalMod, SlotToCoeff's first matrix `S` reads them back as `S (a + i b)`: in the
//! `2n`-slot view it is `T1 y + T2 rot(y, n)` with `T1`, `T2` on `S`'s diagonal offsets (one
//! rotation by `n`, whose key the trace already needs, and twice the baby rotations at a low
//! level), and its output repeats with period `n` again.
//!
//! Failure probability: with `h = 32`, the coefficients of `I = round((c_0 + c_1 s') / q_0)` are a
//! sum of 33 values uniform in `[-1/2, 1/2]` (variance 33/12, standard deviation 1.66). EvalMod
//! is accurate for `|I| <= K = 16`, 9.6 standard deviations: by the Gaussian tail bound a
//! coefficient exceeds it with probability below 2^-70, so below 2^-54 for all 2^16
//! coefficients of one bootstrap (union bound).

use std::f64::consts::PI;

use std::sync::Arc;

use hetune_core::ckks::{Ciphertext, Complex};
use hetune_core::rlwe::ENCAPSULATION_WEIGHT;

use super::chebyshev::Chebyshev;
use super::dft::{coeff_to_slot, slot_to_coeff, slot_to_coeff_small_first};
use super::linear::{baby_step_for, Diagonals, LinearTransform};
use super::polynomial::{self, Parity};
use crate::evaluator::{EncapsulationRequest, Evaluator, KeyRequest};
use crate::Error;

/// Tunables of the bootstrapping circuit.
#[derive(Clone, Copy, Debug)]
pub struct BootstrapConfig {
    /// Bound K on the ModRaise overflow `|I|`.
    pub k: usize,
    /// Double-angle steps after the cosine approximation.
    pub double_angle: u32,
    /// Degree of the Chebyshev approximation.
    pub degree: usize,
    /// Levels of CoeffToSlot.
    pub cts_levels: usize,
    /// Levels of SlotToCoeff.
    pub stc_levels: usize,
    /// Hamming weight of the encapsulation secret: only [`ENCAPSULATION_WEIGHT`] (32) is accepted,
    /// the weight whose security at the key's modulus `q_0 p_0` is stated in
    /// `hetune_core::rlwe::encapsulation` (weight 0 would publish `p_0 s` almost in the clear,
    /// weights up to 4 are brute-forced); the failure-probability bound below assumes it too.
    pub sparse_weight: usize,
    /// log2 of `q_0 / (2^t Delta)`: before ModRaise the message is multiplied by the integer
    /// `2^t` so that it fills `q_0` up to this ratio. A small ratio keeps more of the message
    /// above EvalMod's noise; the sine's curvature bounds it from below, the more so the fewer
    /// the slots (fewer slots, larger coefficients). 0 picks `20 - log2(slots)` within 3..=10,
    /// the best measured for slot values in [-1, 1] (5 at N = 2^16: 24.4 bits mean against
    /// 23.0 at 4 and 23.8 at 6; at N = 2^12, 9 and 8 within 0.1 bit); for values up to `2^b`
    /// in magnitude add `b`.
    pub message_ratio_bits: u32,
    /// log2 of the slot count of the ciphertexts to bootstrap; `None` for full slots (N/2).
    /// Sparse packings first project onto their subring with a trace (log2(N / 2n) rotations).
    pub log_slots: Option<u32>,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            k: 16,
            double_angle: 4,
            degree: 30,
            cts_levels: 3,
            stc_levels: 3,
            sparse_weight: ENCAPSULATION_WEIGHT,
            message_ratio_bits: 0,
            log_slots: None,
        }
    }
}

impl BootstrapConfig {
    /// The rotations this circuit performs that no key in `held` (steps, either sign) serves by
    /// itself, each with the slot count it rotates on: the evaluator composes those from other
    /// keys, at extra key switches. Empty for the keys of [`Self::key_request`].
    pub fn unserved_rotations(&self, log_n: u32, held: &[i64]) -> Vec<(usize, i64)> {
        let log_slots = self.slots(log_n);
        let t = self.transforms(log_slots, log_n, 1.0, Some(held));
        let mut used: Vec<(usize, i64)> =
            t.all().flat_map(|t| t.rotations().into_iter().map(move |r| (t.diagonals().slots, r))).collect();
        used.extend(trace_steps(log_slots, log_n).map(|s| (1usize << (log_n - 1), s)));
        if t.stc_pair.is_some() {
            used.push((2usize << log_slots, 1i64 << log_slots));
        }
        used.retain(|&(slots, r)| !has_key(held, r, slots));
        used.sort_unstable();
        used.dedup();
        used
    }

    /// The message ratio in use for `2^log_slots` slots: [`Self::message_ratio_bits`], or the
    /// measured default it stands for when 0.
    pub fn message_ratio(&self, log_slots: u32) -> u32 {
        if self.message_ratio_bits == 0 {
            (20 - i64::from(log_slots)).clamp(3, 10) as u32
        } else {
            self.message_ratio_bits
        }
    }

    /// Levels EvalMod consumes.
    pub fn evalmod_levels(&self) -> usize {
        polynomial::depth(&Chebyshev::from_coeffs(vec![0.0; self.degree + 1])) + self.double_angle as usize
    }

    /// Levels the whole circuit consumes from the top of the chain.
    pub fn depth(&self) -> usize {
        self.cts_levels + self.evalmod_levels() + self.stc_levels
    }

    /// Refuses an encapsulation weight other than the analysed one.
    pub fn check(&self) -> Result<(), Error> {
        if self.sparse_weight != ENCAPSULATION_WEIGHT {
            return Err(Error::InvalidArgument(
                "bootstrapping's encapsulation secret must have Hamming weight 32 (the analysed weight)",
            ));
        }
        Ok(())
    }

    /// Every key bootstrapping with this configuration needs at ring degree `2^log_n`:
    /// relinearisation, conjugation, the rotations of [`rotation_steps`] and the encapsulation
    /// pair.
    pub fn key_request(&self, log_n: u32) -> KeyRequest {
        KeyRequest {
            relinearization: true,
            rotations: rotation_steps(self, log_n),
            conjugation: true,
            encapsulation: Some(EncapsulationRequest { sparse_weight: self.sparse_weight }),
        }
    }

    /// Slot count exponent for ring degree `2^log_n`.
    pub fn slots(&self, log_n: u32) -> u32 {
        self.log_slots.unwrap_or(log_n - 1).min(log_n - 1)
    }

    /// The circuit's matrices. `held`: the rotation keys of the evaluator that will run them
    /// (`None` when planning the key request: the matrices then use their own offsets).
    fn transforms(&self, log_slots: u32, log_n: u32, k_scale: f64, held: Option<&[i64]>) -> Transforms {
        let n = 1usize << log_slots;
        let gap = (1usize << (log_n - 1)) / n;
        // CoeffToSlot: 1/(2 (K + 1) gap); the 1/2 pairs with the conjugation that splits
        // halves, the 1/gap undoes the trace of sparse packings.
        let mut cts = coeff_to_slot(n, self.cts_levels, 1.0 / (2.0 * (self.k as f64 + 1.0) * gap as f64));
        let repack = log_slots + 1 < log_n;
        // When repacking, SlotToCoeff's first matrix is applied to two ciphertexts: the smallest
        // merged matrix goes first.
        let mut stc = if repack {
            slot_to_coeff_small_first(n, self.stc_levels, k_scale)
        } else {
            slot_to_coeff(n, self.stc_levels, k_scale)
        };
        let mut stc_pair = None;
        if repack {
            // Both lists hold at least one matrix (`merge` makes one per level, at least one).
            let last = cts.pop().expect("CoeffToSlot has a matrix");
            let mut last = [repack_coeff_to_slot(&last)];
            let first = stc.remove(0);
            let (t1, t2) = repack_slot_to_coeff(&first);
            let mut pair = [t1, t2];
            if let Some(held) = held {
                place_giants(&mut last, held);
                place_giants(&mut pair, held);
            }
            let [last] = last;
            let [t1, t2] = pair;
            cts.push(last);
            stc.insert(0, t1);
            stc_pair = Some(t2);
        }
        // `LinearTransform::new` only fails when the matrix size differs from the slot count it
        // is given, and each matrix was built for its view just above.
        let mk = |d: Diagonals| {
            let log = d.slots.trailing_zeros();
            LinearTransform::new(d, log).expect("matrix built for these slots")
        };
        Transforms {
            cts: cts.into_iter().map(mk).collect(),
            stc: stc.into_iter().map(mk).collect(),
            stc_pair: stc_pair.map(mk),
        }
    }
}

/// The matrices of one bootstrapping circuit (see the module's documentation).
struct Transforms {
    /// CoeffToSlot, in order; when repacking, the last one acts on the `2n`-slot view.
    cts: Vec<LinearTransform>,
    /// SlotToCoeff, in order; when repacking, the first one is `T1` on the `2n`-slot view.
    stc: Vec<LinearTransform>,
    /// `T2`, on the `2n`-slot view, when repacking.
    stc_pair: Option<LinearTransform>,
}

impl Transforms {
    fn all(&self) -> impl Iterator<Item = &LinearTransform> {
        self.cts.iter().chain(&self.stc).chain(&self.stc_pair)
    }
}

/// The trace's rotations (full slots) onto the subring of `2^log_slots` slots.
fn trace_steps(log_slots: u32, log_n: u32) -> impl Iterator<Item = i64> {
    (log_slots..log_n - 1).map(|i| 1i64 << i)
}

/// Whether a key in `held` rotates `slots` slots by `step`.
fn has_key(held: &[i64], step: i64, slots: usize) -> bool {
    let slots = slots as i64;
    held.iter().any(|&h| (h - step).rem_euclid(slots) == 0)
}

/// The repacked matrices (`[L]`, or `[T1, T2]`) act on `2n` slots with offsets below `n`. A
/// giant step `g` whose rotation has no key modulo `2n` while `g + n` has one (keys shared with
/// other circuits serve the `n`-slot steps modulo `n`: a training key request keeps only one
/// of `g`, `g - n`) moves its diagonals `n` further: for `L`, whose input repeats with period
/// `n`, the same diagonals read the same values; for the pair, `T1` at `k + n` reads
/// `rot(y, n)` where `T2` read it at `k`, so the two swap. Baby steps (below the baby-step size,
/// which divides `n`) and the number of rotations stay as they were.
fn place_giants(ds: &mut [Diagonals], held: &[i64]) {
    let slots = ds[0].slots;
    let n = slots / 2;
    let n1 = baby_step_for(ds[0].diags.keys().copied(), slots);
    if n1 > n {
        return;
    }
    let giants: std::collections::BTreeSet<usize> = ds[0].diags.keys().map(|k| k / n1 * n1).collect();
    for g in giants {
        if g == 0 || g >= n || has_key(held, g as i64, slots) || !has_key(held, (g + n) as i64, slots) {
            continue;
        }
        let ks: Vec<usize> = ds[0].diags.keys().copied().filter(|k| k / n1 * n1 == g).collect();
        for k in ks {
            let moved: Vec<Vec<Complex>> =
                ds.iter_mut().map(|d| d.diags.remove(&k).expect("the matrices share their offsets")).collect();
            let m = moved.len();
            for (i, d) in moved.into_iter().enumerate() {
                ds[m - 1 - i].diags.insert(k + n, d);
            }
        }
    }
}

/// CoeffToSlot's last matrix `L` (`n` slots) as a `2n`-slot matrix on the same offsets, for an
/// input that repeats with period `n`: slots `[0, n)` get `L v`, slots `[n, 2n)` get `-i L v`.
fn repack_coeff_to_slot(l: &Diagonals) -> Diagonals {
    let n = l.slots;
    let diags = l
        .diags
        .iter()
        .map(|(&k, d)| {
            let mut e = Vec::with_capacity(2 * n);
            e.extend_from_slice(d);
            e.extend(d.iter().map(|c| Complex::new(c.im, -c.re)));
            (k, e)
        })
        .collect();
    Diagonals { slots: 2 * n, diags }
}

/// SlotToCoeff's first matrix `S` (`n` slots) as the pair `(T1, T2)` of `2n`-slot matrices on
/// `S`'s offsets with `T1 y + T2 rot(y, n) = [S (a + i b), S (a + i b)]` for `y = [a, b]`:
/// where a row's read position `(j + k) mod 2n` falls in `[0, n)`, `y` holds `a` there and
/// `rot(y, n)` holds `b`; in `[n, 2n)` the other way round.
fn repack_slot_to_coeff(s: &Diagonals) -> (Diagonals, Diagonals) {
    let n = s.slots;
    let mut t1 = std::collections::BTreeMap::new();
    let mut t2 = std::collections::BTreeMap::new();
    for (&k, d) in &s.diags {
        let (mut d1, mut d2) = (Vec::with_capacity(2 * n), Vec::with_capacity(2 * n));
        for j in 0..2 * n {
            let c = d[j % n];
            let ic = Complex::new(-c.im, c.re);
            if (j + k) % (2 * n) < n {
                d1.push(c);
                d2.push(ic);
            } else {
                d1.push(ic);
                d2.push(c);
            }
        }
        t1.insert(k, d1);
        t2.insert(k, d2);
    }
    (Diagonals { slots: 2 * n, diags: t1 }, Diagonals { slots: 2 * n, diags: t2 })
}

/// Rotation steps bootstrapping needs at ring degree `2^log_n` (the matrices' and, for sparse
/// packings, the trace's).
pub fn rotation_steps(cfg: &BootstrapConfig, log_n: u32) -> Vec<i64> {
    let log_slots = cfg.slots(log_n);
    let t = cfg.transforms(log_slots, log_n, 1.0, None);
    let mut steps: Vec<i64> = t.all().flat_map(|t| t.rotations()).collect();
    steps.extend(trace_steps(log_slots, log_n));
    steps.sort_unstable();
    steps.dedup();
    steps
}

/// Host side: bootstraps ciphertexts with its evaluator.
pub struct Bootstrapper {
    ev: Arc<Evaluator>,
    cfg: BootstrapConfig,
    transforms: Transforms,
    sine: Chebyshev,
    log_slots: u32,
    output_factor: f64,
    /// log2 of the integer the message is multiplied by before ModRaise.
    boost: u32,
}

impl Bootstrapper {
    /// Prepares the circuit for the evaluator's parameters and `cfg.log_slots`. The evaluator must
    /// hold the keys of [`BootstrapConfig::key_request`].
    pub fn new(ev: Arc<Evaluator>, cfg: BootstrapConfig) -> Result<Self, Error> {
        Self::with_output_factor(ev, cfg, 1.0)
    }

    /// [`Bootstrapper::new`] whose output holds `factor` times the input's slots, the factor
    /// folded into SlotToCoeff's matrices (no level spent). With `1/2`, the real part of the
    /// output is `z + conj(z)` and the imaginary part `i (conj(z) - z)`: two real ciphertexts
    /// packed as `a + i b` come out of one bootstrap at their own values.
    pub fn with_output_factor(ev: Arc<Evaluator>, cfg: BootstrapConfig, factor: f64) -> Result<Self, Error> {
        if !(factor.is_finite() && factor > 0.0 && factor <= 1.0) {
            return Err(Error::InvalidArgument("a bootstrap's output factor must be in (0, 1]"));
        }
        cfg.check()?;
        if !ev.has_encapsulation_keys() {
            return Err(Error::MissingEncapsulationKeys);
        }
        let ctx = ev.context();
        let params = ctx.params();
        if params.boot_limbs() + cfg.stc_levels < cfg.depth() {
            return Err(Error::InvalidArgument(
                "the parameter set reserves too few limbs for this bootstrapping circuit",
            ));
        }
        let log_slots = cfg.slots(params.log_n());
        let q0 = ctx.q()[0].value() as f64;
        let boost = Self::compute_boost(q0, params.scale(), &cfg, log_slots);
        let held: Vec<i64> = ev.rotation_key_steps().into_iter().map(|s| s as i64).collect();
        let transforms = cfg.transforms(
            log_slots,
            params.log_n(),
            factor * q0 / (2.0 * PI * params.scale() * 2f64.powi(boost as i32)),
            Some(&held),
        );
        let k1 = cfg.k as f64 + 1.0;
        let r = cfg.double_angle as i32;
        let sine = Chebyshev::interpolate(|y| (2.0 * PI * (k1 * y - 0.25) / 2f64.powi(r)).cos(), -1.0, 1.0, cfg.degree);
        Ok(Bootstrapper { ev, cfg, transforms, sine, log_slots, output_factor: factor, boost })
    }

    fn compute_boost(q0: f64, scale: f64, cfg: &BootstrapConfig, log_slots: u32) -> u32 {
        let room = (q0 / scale).log2().floor() as i64 - i64::from(cfg.message_ratio(log_slots));
        room.clamp(0, 62) as u32
    }

    /// `t`: before ModRaise the message is multiplied by `2^t`, so that `q_0 / (2^t Delta)` is
    /// the configuration's message ratio ([`BootstrapConfig::message_ratio`]).
    pub fn boost_bits(&self) -> u32 {
        self.boost
    }

    /// The factor applied to the output's slots (1 for [`Bootstrapper::new`]).
    pub fn output_factor(&self) -> f64 {
        self.output_factor
    }

    /// The configuration.
    pub fn config(&self) -> &BootstrapConfig {
        &self.cfg
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Arc<Evaluator> {
        &self.ev
    }

    /// Level of a bootstrapped ciphertext.
    pub fn output_level(&self) -> usize {
        self.ev.context().params().max_level() - self.cfg.depth()
    }

    /// Refreshes `ct` (any level, full slots, scale about the parameter set's default): the
    /// result holds the same slots at [`Bootstrapper::output_level`] and the default scale.
    pub fn bootstrap(&self, ct: &Ciphertext) -> Result<Ciphertext, Error> {
        self.bootstrap_traced(ct, &mut |_, _| {})
    }

    /// [`Bootstrapper::bootstrap`], handing every intermediate ciphertext to `trace` with the
    /// name of its stage ("raised", "coeff_to_slot", "eval_mod_re", "eval_mod_im", "output"),
    /// for precision diagnostics. Sparse packings of at most N/4 slots, whose halves share one
    /// EvalMod, trace "eval_mod" (the `2n`-slot ciphertext `[re, im]`) instead of the two halves.
    pub fn bootstrap_traced(
        &self,
        ct: &Ciphertext,
        trace: &mut dyn FnMut(&str, &Ciphertext),
    ) -> Result<Ciphertext, Error> {
        let ev = &*self.ev;
        if ct.log_slots != self.log_slots {
            return Err(Error::SlotCountMismatch { left: ct.log_slots, right: self.log_slots });
        }
        let ctx = ev.context().clone();
        let params = ctx.params();
        let top = params.max_level();
        let delta_in = ct.scale;
        let delta_out = params.scale();

        // 1-2. Encapsulate, raise, decapsulate.
        let mut low = ev.drop_level(&ev.relinearize(ct)?, 0)?;
        ev.mul_integer_assign(&mut low, 1i64 << self.boost)?;
        let keys = ev.encapsulation_keys()?;
        let low = ev.encapsulate(&low, &keys.to_sparse)?;
        let raised = ev.mod_raise(&low, top)?;
        let mut x = ev.switch_secret(&raised, &keys.to_dense)?;
        ev.reinterpret_scale(&mut x, ctx.q()[0].value() as f64)?;
        // Sparse packing: the trace onto the subring of X^(N/2n) (sum of the automorphisms
        // X -> X^(5^(n 2^i)) composed), which keeps gap * (m + q_0 I) on the subring's
        // coefficients and cancels the rest of I.
        let full = params.log_n() - 1;
        if self.log_slots < full {
            ev.reinterpret_slots(&mut x, full)?;
            for i in self.log_slots..full {
                let r = ev.rotate(&x, 1i64 << i)?;
                ev.add_assign(&mut x, &r)?;
            }
            ev.reinterpret_slots(&mut x, self.log_slots)?;
        }
        trace("raised", &x);

        // 3. CoeffToSlot at the EvalMod scale, then split real and imaginary halves.
        let evalmod_scale = ev.rescale_scale(top - self.cfg.cts_levels);
        let cts = &self.transforms.cts;
        for (i, t) in cts.iter().enumerate() {
            if self.transforms.stc_pair.is_some() && i + 1 == cts.len() {
                // The last matrix writes both halves into the 2n-slot view.
                ev.reinterpret_slots(&mut x, self.log_slots + 1)?;
            }
            x = t.evaluate(ev, &x, evalmod_scale)?;
        }
        trace("coeff_to_slot", &x);
        let conj = ev.conjugate(&x)?;
        let target = evalmod_scale;
        // SlotToCoeff's output scales, from EvalMod's (2^58) down to the default in equal
        // ratios, so the matrices are encoded at about the same scale (2^36.7 at n16-boot; the
        // first 2^35.7, as its input carries the real parts' factor 2). Landing on
        // the default scale after the first matrix instead (as this circuit once did) left the
        // partial DFT's values, still ~2^-7 there, only 2^35 above the rescaling noise: 2 bits of
        // output precision lost.
        let stc_levels = self.transforms.stc.len() as i32;
        let stc_scales: Vec<f64> = (1..=stc_levels)
            .map(|i| {
                if i == stc_levels {
                    delta_out
                } else {
                    target * (delta_out / target).powf(f64::from(i) / f64::from(stc_levels))
                }
            })
            .collect();

        // 4. EvalMod (on both halves at once, or on each), landing at the EvalMod scale.
        // 5. SlotToCoeff, landing on the default scale.
        let stc = &self.transforms.stc;
        let (mut w, rest) = match &self.transforms.stc_pair {
            Some(t2) => {
                // x = [z, -i z]: x + conj(x) = [2 Re z, 2 Im z].
                let y = ev.add(&x, &conj)?;
                let out_level = y.level - self.cfg.evalmod_levels();
                let y = self.eval_mod(ev, &y, target, out_level)?;
                trace("eval_mod", &y);
                // The real part only (see the full-slot case below): (y + conj(y)) / 2.
                let mut y = ev.add(&y, &ev.conjugate(&y)?)?;
                let doubled = 2.0 * y.scale;
                ev.reinterpret_scale(&mut y, doubled)?;
                let y_rot = ev.rotate(&y, 1i64 << self.log_slots)?;
                let mut w = LinearTransform::evaluate_sum(ev, &[(&stc[0], &y), (t2, &y_rot)], stc_scales[0])?;
                ev.reinterpret_slots(&mut w, self.log_slots)?;
                (w, &stc[1..])
            }
            None => {
                let re = ev.add(&x, &conj)?;
                let im = ev.mul_by_i(&ev.sub(&conj, &x)?)?;
                let out_level = re.level - self.cfg.evalmod_levels();
                let (re, im) = rayon::join(
                    || self.eval_mod(ev, &re, target, out_level),
                    || self.eval_mod(ev, &im, target, out_level),
                );
                let (re, im) = (re?, im?);
                trace("eval_mod_re", &re);
                trace("eval_mod_im", &im);
                // Both halves should be real, but EvalMod leaves noise as large as its real
                // error in their imaginary parts, which `re + i im` would pass on to the output.
                // With re = a + ib, im = c + id: (re + i im) + conj(re - i im) = 2a + 2ic, the
                // real parts alone, for one conjugation at this low level.
                let i_im = ev.mul_by_i(&im)?;
                let mut w = ev.add(&ev.add(&re, &i_im)?, &ev.conjugate(&ev.sub(&re, &i_im)?)?)?;
                let doubled = 2.0 * w.scale;
                ev.reinterpret_scale(&mut w, doubled)?;
                (w, &stc[..])
            }
        };
        let first = stc.len() - rest.len();
        for (i, t) in rest.iter().enumerate() {
            w = t.evaluate(ev, &w, stc_scales[first + i])?;
        }
        // The matrices assumed the default input scale; reinterpret for the actual one.
        ev.reinterpret_scale(&mut w, delta_out * delta_in / params.scale())?;
        trace("output", &w);
        Ok(w)
    }

    /// `sin(2 pi x)` for `x = (K + 1) y`, `y` the slots of `ct`, landing at `target` scale on
    /// `out_level`.
    fn eval_mod(&self, ev: &Evaluator, ct: &Ciphertext, target: f64, out_level: usize) -> Result<Ciphertext, Error> {
        let r = self.cfg.double_angle as usize;
        // Scales backwards through the double-angle squarings: S_i^2 / q = S_{i+1}.
        let mut scales = vec![target];
        for i in 0..r {
            let level_before_rescale = out_level + i + 1;
            let next = scales[i];
            scales.push((next * ev.rescale_scale(level_before_rescale)).sqrt());
        }
        let poly_scale = scales[r];
        let mut c = polynomial::evaluate(ev, ct, &self.sine, Parity::None, poly_scale)?;
        for i in (0..r).rev() {
            let mut sq = ev.mul_relin(&c, &c)?;
            ev.mul_integer_assign(&mut sq, 2)?;
            sq = ev.add_const_real(&sq, -1.0)?;
            ev.rescale_assign(&mut sq)?;
            ev.snap_scale(&mut sq, scales[i])?;
            c = sq;
        }
        if c.level != out_level {
            c = ev.drop_level(&c, out_level)?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(re: f64, im: f64) -> Complex {
        Complex::new(re, im)
    }

    fn close(a: &[Complex], b: &[Complex]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x.re - y.re).abs() < 1e-9 && (x.im - y.im).abs() < 1e-9, "{x:?} vs {y:?}");
        }
    }

    fn rot(v: &[Complex], k: usize) -> Vec<Complex> {
        (0..v.len()).map(|j| v[(j + k) % v.len()]).collect()
    }

    /// The repacked matrices in the clear: CoeffToSlot's last matrix in the 2n-slot view plus a
    /// conjugation gives `[2 Re z, 2 Im z]`, and `T1 y + T2 rot(y, n)` gives the periodic
    /// `S (a + i b)`, for every merged matrix of 3 levels at n = 64.
    #[test]
    fn repacked_matrices_equal_the_split_halves() {
        let n = 64;
        let v: Vec<Complex> = (0..n).map(|i| c((i as f64 * 0.37).sin(), (i as f64 * 0.91).cos())).collect();
        let periodic = |u: &[Complex]| -> Vec<Complex> { u.iter().chain(u).copied().collect() };
        for l in coeff_to_slot(n, 3, 0.7) {
            let z = l.apply(&v);
            let x = repack_coeff_to_slot(&l).apply(&periodic(&v));
            let y: Vec<Complex> = x.iter().map(|w| c(2.0 * w.re, 0.0)).collect();
            let want: Vec<Complex> =
                z.iter().map(|w| c(2.0 * w.re, 0.0)).chain(z.iter().map(|w| c(2.0 * w.im, 0.0))).collect();
            close(&y, &want);
        }
        let a: Vec<Complex> = (0..n).map(|i| c((i as f64 * 0.13).cos(), 0.0)).collect();
        let b: Vec<Complex> = (0..n).map(|i| c((i as f64 * 0.29).sin(), 0.0)).collect();
        let w: Vec<Complex> = a.iter().zip(&b).map(|(x, y)| c(x.re - y.im, x.im + y.re)).collect();
        let y: Vec<Complex> = a.iter().chain(&b).copied().collect();
        for s in slot_to_coeff(n, 3, 1.3) {
            let (t1, t2) = repack_slot_to_coeff(&s);
            assert_eq!(t1.diags.keys().collect::<Vec<_>>(), s.diags.keys().collect::<Vec<_>>());
            assert_eq!(t2.diags.keys().collect::<Vec<_>>(), s.diags.keys().collect::<Vec<_>>());
            let got: Vec<Complex> =
                t1.apply(&y).iter().zip(&t2.apply(&rot(&y, n))).map(|(p, q)| c(p.re + q.re, p.im + q.im)).collect();
            close(&got, &periodic(&s.apply(&w)));
            // Keys only for the giant steps shifted by n: every giant group moves, same result.
            let n1 = LinearTransform::new(t1.clone(), (2 * n).trailing_zeros()).unwrap().baby_step();
            let held: Vec<i64> = t1
                .diags
                .keys()
                .map(|k| (k / n1 * n1) as i64)
                .map(|g| if g == 0 { 0 } else { g + n as i64 })
                .chain(1..n1 as i64)
                .collect();
            let mut pair = [t1.clone(), t2.clone()];
            place_giants(&mut pair, &held);
            let [u1, u2] = pair;
            assert!(u1.diags.keys().all(|&k| k < n1 || k >= n), "{:?}", u1.diags.keys());
            let got: Vec<Complex> =
                u1.apply(&y).iter().zip(&u2.apply(&rot(&y, n))).map(|(p, q)| c(p.re + q.re, p.im + q.im)).collect();
            close(&got, &periodic(&s.apply(&w)));
            let lt = LinearTransform::new(u1, (2 * n).trailing_zeros()).unwrap();
            assert!(lt.rotations().iter().all(|&r| has_key(&held, r, 2 * n)), "{:?}", lt.rotations());
        }
        for l in coeff_to_slot(n, 3, 0.7) {
            let mut last = [repack_coeff_to_slot(&l)];
            let n1 = LinearTransform::new(last[0].clone(), (2 * n).trailing_zeros()).unwrap().baby_step();
            let held: Vec<i64> = last[0].diags.keys().map(|k| (k / n1 * n1 + n) as i64).collect();
            let want = last[0].apply(&periodic(&v));
            place_giants(&mut last, &held);
            close(&last[0].apply(&periodic(&v)), &want);
        }
    }

    /// Repacking needs no rotation key beyond the same matrices' in the n-slot view (they keep
    /// their offsets; the rotation by n is one of the trace's).
    #[test]
    fn repacking_adds_no_rotation_key() {
        for (log_n, log_slots) in [(12u32, 7u32), (12, 10), (16, 13), (16, 14)] {
            let cfg = BootstrapConfig { log_slots: Some(log_slots), ..BootstrapConfig::default() };
            let n = 1usize << log_slots;
            let gap = (1usize << (log_n - 1)) / n;
            let plain: Vec<LinearTransform> = coeff_to_slot(n, 3, 1.0 / (2.0 * 17.0 * gap as f64))
                .into_iter()
                .chain(slot_to_coeff_small_first(n, 3, 1.0))
                .map(|d| LinearTransform::new(d, log_slots).unwrap())
                .collect();
            let mut want: Vec<i64> = plain.iter().flat_map(|t| t.rotations()).collect();
            want.extend((log_slots..log_n - 1).map(|i| 1i64 << i));
            want.sort_unstable();
            want.dedup();
            assert!(want.contains(&(1i64 << log_slots)));
            assert_eq!(rotation_steps(&cfg, log_n), want, "log_n {log_n}, log_slots {log_slots}");
            assert_eq!(cfg.unserved_rotations(log_n, &cfg.key_request(log_n).rotations), vec![]);
        }
    }
}
