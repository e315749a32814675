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
//! 5. SlotToCoeff (3 levels at 2^42) with the factor `q_0 / (2 pi Delta)` folded into its
//!    matrices: the output holds the input's slots at level `default_level - 3`.
//!
//! Failure probability: with `h = 32`, the coefficients of `I = round((c_0 + c_1 s') / q_0)` are a
//! sum of 33 values uniform in `[-1/2, 1/2]` (variance 33/12, standard deviation 1.66). EvalMod
//! is accurate for `|I| <= K = 16`, 9.6 standard deviations: by the Gaussian tail bound a
//! coefficient exceeds it with probability below 2^-70, so below 2^-54 for all 2^16
//! coefficients of one bootstrap (union bound).

use std::f64::consts::PI;

use std::sync::Arc;

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::ENCAPSULATION_WEIGHT;

use super::chebyshev::Chebyshev;
use super::dft::{coeff_to_slot, slot_to_coeff};
use super::linear::LinearTransform;
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
    /// the slots (fewer slots, larger coefficients). 0 picks `19 - log2(slots)` within 3..=9,
    /// the best measured for slot values in [-1, 1] (4 at N = 2^16, 8 at N = 2^12); for values
    /// up to `2^b` in magnitude add `b`.
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

    fn transforms(&self, log_slots: u32, log_n: u32, k_scale: f64) -> (Vec<LinearTransform>, Vec<LinearTransform>) {
        let n = 1usize << log_slots;
        let gap = (1usize << (log_n - 1)) / n;
        // CoeffToSlot: 1/(2 (K + 1) gap); the 1/2 pairs with the conjugation that splits
        // halves, the 1/gap undoes the trace of sparse packings.
        let cts = coeff_to_slot(n, self.cts_levels, 1.0 / (2.0 * (self.k as f64 + 1.0) * gap as f64));
        let stc = slot_to_coeff(n, self.stc_levels, k_scale);
        // `LinearTransform::new` only fails when the matrix size differs from 2^log_slots, and
        // both transforms were built for n = 2^log_slots just above.
        let mk = |v: Vec<_>| -> Vec<LinearTransform> {
            v.into_iter().map(|d| LinearTransform::new(d, log_slots).expect("matrix built for these slots")).collect()
        };
        (mk(cts), mk(stc))
    }
}

/// Rotation steps bootstrapping needs at ring degree `2^log_n` (the matrices' and, for sparse
/// packings, the trace's).
pub fn rotation_steps(cfg: &BootstrapConfig, log_n: u32) -> Vec<i64> {
    let log_slots = cfg.slots(log_n);
    let (cts, stc) = cfg.transforms(log_slots, log_n, 1.0);
    let mut steps: Vec<i64> = cts.iter().chain(&stc).flat_map(|t| t.rotations()).collect();
    steps.extend((log_slots..log_n - 1).map(|i| 1i64 << i));
    steps.sort_unstable();
    steps.dedup();
    steps
}

/// Host side: bootstraps ciphertexts with its evaluator.
pub struct Bootstrapper {
    ev: Arc<Evaluator>,
    cfg: BootstrapConfig,
    cts: Vec<LinearTransform>,
    stc: Vec<LinearTransform>,
    sine: Chebyshev,
    log_slots: u32,
    output_factor: f64,
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
        let boost = Self::boost_bits(q0, params.scale(), &cfg, log_slots);
        let (cts, stc) = cfg.transforms(
            log_slots,
            params.log_n(),
            factor * q0 / (2.0 * PI * params.scale() * 2f64.powi(boost as i32)),
        );
        let k1 = cfg.k as f64 + 1.0;
        let r = cfg.double_angle as i32;
        let sine = Chebyshev::interpolate(|y| (2.0 * PI * (k1 * y - 0.25) / 2f64.powi(r)).cos(), -1.0, 1.0, cfg.degree);
        Ok(Bootstrapper { ev, cfg, cts, stc, sine, log_slots, output_factor: factor })
    }

    fn boost_bits(q0: f64, scale: f64, cfg: &BootstrapConfig, log_slots: u32) -> u32 {
        let ratio = if cfg.message_ratio_bits == 0 {
            (19 - log_slots as i64).clamp(3, 9)
        } else {
            cfg.message_ratio_bits as i64
        };
        let room = (q0 / scale).log2().floor() as i64 - ratio;
        room.clamp(0, 62) as u32
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
    /// for precision diagnostics.
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
        let boost = Self::boost_bits(ctx.q()[0].value() as f64, params.scale(), &self.cfg, self.log_slots);
        ev.mul_integer_assign(&mut low, 1i64 << boost)?;
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
        for t in &self.cts {
            x = t.evaluate(ev, &x, evalmod_scale)?;
        }
        trace("coeff_to_slot", &x);
        let conj = ev.conjugate(&x)?;
        let re = ev.add(&x, &conj)?;
        let im = ev.mul_by_i(&ev.sub(&conj, &x)?)?;

        // 4. EvalMod on both halves; the output scale is chosen so SlotToCoeff's first matrix is
        //    encoded at about 2^42 x its entries.
        let out_level = re.level - self.cfg.evalmod_levels();
        let target = evalmod_scale;
        let (re, im) =
            rayon::join(|| self.eval_mod(ev, &re, target, out_level), || self.eval_mod(ev, &im, target, out_level));
        let (re, im) = (re?, im?);
        trace("eval_mod_re", &re);
        trace("eval_mod_im", &im);
        let mut w = ev.add(&re, &ev.mul_by_i(&im)?)?;

        // 5. SlotToCoeff, landing on the default scale.
        for t in &self.stc {
            w = t.evaluate(ev, &w, delta_out)?;
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
