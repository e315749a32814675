//! The level-and-scale simulator: a backend of [`HeBackend`] whose stand-ins carry a level and
//! an exact scale, on the real prime chain of a parameter set. Every operation checks what the
//! evaluator checks (a level left to rescale, a result scale that fits the modulus, scales that
//! add: equal or an integer multiple), counts operations, records rotation steps (the keys a
//! circuit needs) and records every bootstrap with its site and input level. Running a training
//! step on it is the planner: the circuits bootstrap where a ciphertext would run out of levels
//! ([`HeBackend::ensure`]), and the simulator's log says where and how often, in microseconds.

use std::collections::BTreeSet;
use std::sync::Mutex;

use hetune_core::Parameters;

use super::counters::Counter;
use super::ops::{nonzero_steps, BootEvent, BootLog, HeBackend, Mask};
use crate::circuits::arith::Arith;
use crate::circuits::bootstrap::BootstrapConfig;
use crate::evaluator::rescale::match_scales;
use crate::evaluator::SCALE_TOLERANCE;
use crate::{Error, Result};

/// Largest rounded constant the evaluator encodes (2^120).
const MAX_CONSTANT: f64 = 1.329_227_995_784_916e36;

/// The prime chain and level budget of a parameter set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Chain {
    /// The primes `q_0 .. q_L` as `f64`.
    pub q: Vec<f64>,
    /// The default scale.
    pub scale: f64,
    /// Level of a fresh ciphertext.
    pub fresh: usize,
    /// Level after a bootstrap (`None`: the set cannot bootstrap).
    pub boot_level: Option<usize>,
}

impl Chain {
    /// The chain of `params`, bootstrapping with `boot` when the set reserves limbs for it.
    pub fn of(params: &Parameters, boot: &BootstrapConfig) -> Self {
        let depth = boot.depth();
        let boot_level = (params.boot_limbs() > 0 && params.boot_limbs() + boot.stc_levels >= depth)
            .then(|| params.max_level().checked_sub(depth))
            .flatten();
        Chain {
            q: params.q().iter().map(|&q| q as f64).collect(),
            scale: params.scale(),
            fresh: params.default_level(),
            boot_level,
        }
    }

    /// An idealised chain: `q_0 = 2^60` and `levels` primes of exactly `2^42`, scale `2^42`,
    /// fresh at the top, no bootstrapping.
    pub fn nominal(levels: usize) -> Self {
        let mut q = vec![2f64.powi(60)];
        q.extend(std::iter::repeat_n(2f64.powi(42), levels));
        Chain { q, scale: 2f64.powi(42), fresh: levels, boot_level: None }
    }

    /// log2 of `q_0 ... q_level`.
    pub fn log2_modulus(&self, level: usize) -> f64 {
        self.q[..=level.min(self.q.len() - 1)].iter().map(|q| q.log2()).sum()
    }
}

/// A stand-in ciphertext: level and scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimCt {
    /// Level.
    pub level: usize,
    /// Scale.
    pub scale: f64,
}

/// The simulator backend.
#[derive(Debug)]
pub struct Simulator {
    slots: usize,
    chain: Chain,
    counter: Counter,
    steps: Mutex<BTreeSet<i64>>,
    boot_log: Mutex<BootLog>,
}

impl Simulator {
    /// A simulator of `slots` slots on `chain`.
    pub fn new(slots: usize, chain: Chain) -> Self {
        Simulator {
            slots,
            chain,
            counter: Counter::new(),
            steps: Mutex::new(BTreeSet::new()),
            boot_log: Mutex::new(BootLog::default()),
        }
    }

    /// The chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// A fresh ciphertext (fresh level, default scale).
    pub fn fresh(&self) -> SimCt {
        SimCt { level: self.chain.fresh, scale: self.chain.scale }
    }

    /// A ciphertext at `level` and the default scale.
    pub fn at(&self, level: usize) -> SimCt {
        SimCt { level, scale: self.chain.scale }
    }

    /// Every rotation step used so far, as a left rotation in `1..slots`, ascending.
    pub fn rotation_steps(&self) -> Vec<i64> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    /// The bootstraps made so far.
    pub fn boot_log(&self) -> BootLog {
        self.boot_log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fits(&self, scale: f64, level: usize) -> Result<()> {
        let log2_scale = scale.log2();
        let log2_modulus = self.chain.log2_modulus(level);
        if !log2_scale.is_finite() || log2_scale + 2.0 > log2_modulus {
            return Err(Error::ScaleOverflow { log2_scale, log2_modulus });
        }
        Ok(())
    }

    fn check_level(&self, a: &SimCt) -> Result<()> {
        if a.level >= self.chain.q.len() {
            return Err(Error::LevelAboveTop { level: a.level, top: self.chain.q.len() - 1 });
        }
        Ok(())
    }

    fn combine(&self, a: &SimCt, b: &SimCt) -> Result<SimCt> {
        self.check_level(a)?;
        self.check_level(b)?;
        match_scales(a.scale, b.scale)?;
        Ok(SimCt { level: a.level.min(b.level), scale: a.scale.max(b.scale) })
    }

    fn constant(c: f64, scale: f64) -> Result<()> {
        let v = (c * scale).round();
        if !v.is_finite() || v.abs() >= MAX_CONSTANT {
            return Err(Error::Core(hetune_core::Error::EncodingOverflow));
        }
        Ok(())
    }

    fn boot(&self, a: &SimCt, site: &'static str, count: usize, slots: usize) -> Result<SimCt> {
        if !(slots.is_power_of_two() && slots <= self.slots) {
            return Err(Error::InvalidArgument("a sparse bootstrap's slots must be a power of two within the slots"));
        }
        let level =
            self.chain.boot_level.ok_or(Error::InvalidArgument("bootstrapping needs a backend with a bootstrapper"))?;
        self.counter.add_conj(1);
        self.boot_log.lock().unwrap_or_else(|e| e.into_inner()).events.push(BootEvent {
            site,
            level: a.level,
            count,
            slots,
        });
        Ok(SimCt { level, scale: a.scale })
    }
}

impl Arith for Simulator {
    type Ct = SimCt;

    fn level(&self, ct: &SimCt) -> usize {
        ct.level
    }
    fn scale(&self, ct: &SimCt) -> f64 {
        ct.scale
    }
    fn rescale_scale(&self, level: usize) -> f64 {
        self.chain.q[level.min(self.chain.q.len() - 1)]
    }
    fn add(&self, a: &SimCt, b: &SimCt) -> Result<SimCt> {
        self.combine(a, b)
    }
    fn sub(&self, a: &SimCt, b: &SimCt) -> Result<SimCt> {
        self.combine(a, b)
    }
    fn drop_level(&self, a: &SimCt, level: usize) -> Result<SimCt> {
        if level > a.level {
            return Err(Error::InvalidArgument("cannot raise a ciphertext's level (that needs bootstrapping)"));
        }
        Ok(SimCt { level, scale: a.scale })
    }
    fn mul_relin(&self, a: &SimCt, b: &SimCt) -> Result<SimCt> {
        self.check_level(a)?;
        self.check_level(b)?;
        self.counter.add_mult(1);
        let out = SimCt { level: a.level.min(b.level), scale: a.scale * b.scale };
        self.fits(out.scale, out.level)?;
        Ok(out)
    }
    fn rescale(&self, a: SimCt) -> Result<SimCt> {
        if a.level == 0 {
            return Err(Error::LevelExhausted { op: "rescale", level: 0 });
        }
        Ok(SimCt { level: a.level - 1, scale: a.scale / self.chain.q[a.level] })
    }
    fn mul_integer(&self, a: &SimCt, _: i64) -> Result<SimCt> {
        Ok(*a)
    }
    fn add_const(&self, a: &SimCt, c: f64) -> Result<SimCt> {
        Self::constant(c, a.scale)?;
        Ok(*a)
    }
    fn mul_const(&self, a: &SimCt, c: f64, scale: f64) -> Result<SimCt> {
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(Error::InvalidArgument("constant scale must be positive and finite"));
        }
        let out = SimCt { level: a.level, scale: a.scale * scale };
        self.fits(out.scale, out.level)?;
        Self::constant(c, scale)?;
        Ok(out)
    }
    fn snap_scale(&self, a: SimCt, scale: f64) -> Result<SimCt> {
        if !(scale > 0.0 && scale.is_finite()) || ((a.scale / scale) - 1.0).abs() > SCALE_TOLERANCE {
            return Err(Error::ScaleMismatch { left: a.scale, right: scale });
        }
        Ok(SimCt { level: a.level, scale })
    }
    fn zero_like(&self, _: &SimCt, level: usize, scale: f64) -> Result<SimCt> {
        Ok(SimCt { level, scale })
    }
}

impl HeBackend for Simulator {
    fn slots(&self) -> usize {
        self.slots
    }
    fn counter(&self) -> &Counter {
        &self.counter
    }
    fn mul_by_i(&self, a: &SimCt) -> Result<SimCt> {
        Ok(*a)
    }
    fn rotate_hoisted(&self, a: &SimCt, steps: &[i64]) -> Result<Vec<SimCt>> {
        let n = self.slots as i64;
        self.counter.add_rot(nonzero_steps(steps, self.slots));
        let mut rec = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        rec.extend(steps.iter().map(|s| s.rem_euclid(n)).filter(|&s| s != 0));
        Ok(vec![*a; steps.len()])
    }
    fn conjugate(&self, a: &SimCt) -> Result<SimCt> {
        self.counter.add_conj(1);
        Ok(*a)
    }
    fn mul_mask(&self, a: &SimCt, mask: &Mask) -> Result<SimCt> {
        if mask.packing.slots() != self.slots {
            return Err(Error::InvalidArgument("mask and ciphertext have different slot counts"));
        }
        self.counter.add_cmult(1);
        let q = self.rescale_scale(a.level);
        self.fits(a.scale * q, a.level)?;
        let p = self.rescale(SimCt { level: a.level, scale: a.scale * q })?;
        Ok(SimCt { level: p.level, scale: a.scale })
    }
    fn mul_sum(&self, pairs: &[(&SimCt, &SimCt)]) -> Result<SimCt> {
        let (first, rest) = pairs.split_first().ok_or(Error::InvalidArgument("mul_sum of no products"))?;
        self.counter.add_mult(pairs.len() as u64);
        let prod = |x: &SimCt, y: &SimCt| -> Result<SimCt> {
            let out = SimCt { level: x.level.min(y.level), scale: x.scale * y.scale };
            self.fits(out.scale, out.level)?;
            Ok(out)
        };
        let mut acc = prod(first.0, first.1)?;
        for (x, y) in rest {
            acc = self.combine(&acc, &prod(x, y)?)?;
        }
        self.rescale(acc)
    }
    fn mul_values(&self, a: &SimCt, values: &[f64], target_scale: f64) -> Result<SimCt> {
        if values.len() != self.slots {
            return Err(Error::InvalidArgument("mask values and ciphertext have different slot counts"));
        }
        self.counter.add_cmult(1);
        let pt_scale = target_scale * self.rescale_scale(a.level) / a.scale;
        if !(pt_scale >= 1.0 && pt_scale.is_finite()) {
            return Err(Error::ScaleMismatch { left: a.scale, right: target_scale });
        }
        self.fits(a.scale * pt_scale, a.level)?;
        let p = self.rescale(SimCt { level: a.level, scale: a.scale * pt_scale })?;
        self.snap_scale(p, target_scale)
    }
    fn bootstrap_level(&self) -> Option<usize> {
        self.chain.boot_level
    }
    fn bootstrap(&self, a: &SimCt, site: &'static str) -> Result<SimCt> {
        self.boot(a, site, 1, self.slots)
    }
    fn bootstrap_pair(&self, a: &SimCt, b: &SimCt, site: &'static str) -> Result<(SimCt, SimCt)> {
        let z = self.combine(a, b)?;
        let out = self.boot(&z, site, 2, self.slots)?;
        Ok((out, out))
    }
    fn bootstrap_pair_sparse(&self, a: &SimCt, b: &SimCt, slots: usize, site: &'static str) -> Result<(SimCt, SimCt)> {
        let z = self.combine(a, b)?;
        let out = self.boot(&z, site, 2, slots)?;
        Ok((out, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetune_core::Security;

    fn sim() -> Simulator {
        let p = Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap();
        Simulator::new(p.max_slots(), Chain::of(&p, &BootstrapConfig::default()))
    }

    #[test]
    fn the_simulator_refuses_what_the_evaluator_refuses() {
        let s = sim();
        let a = s.fresh();
        // Scales that are neither equal nor an integer multiple do not add.
        let b = SimCt { level: a.level, scale: a.scale * 1.5 };
        assert!(matches!(s.add(&a, &b), Err(Error::ScaleMismatch { .. })));
        // Twice the scale adds (the evaluator multiplies the other operand by 2).
        let b2 = SimCt { level: a.level, scale: a.scale * 2.0 };
        assert_eq!(s.add(&a, &b2).unwrap().scale, a.scale * 2.0);
        // A product at level 0 does not fit the 60-bit modulus with a 2^84 scale.
        let low = SimCt { level: 0, scale: a.scale };
        assert!(matches!(s.mul_relin(&low, &low), Err(Error::ScaleOverflow { .. })));
        assert!(matches!(s.rescale(low), Err(Error::LevelExhausted { .. })));
        // A product rescales by the level's own prime, not by 2^42.
        let p = s.rescale(s.mul_relin(&a, &a).unwrap()).unwrap();
        assert_eq!(p.level, a.level - 1);
        assert_eq!(p.scale, a.scale * a.scale / s.chain().q[a.level]);
        // Bootstrapping lands at the chain's level after a bootstrap and records where.
        let r = s.bootstrap(&low, "here").unwrap();
        assert_eq!(Some(r.level), s.chain().boot_level);
        assert_eq!(s.boot_log().events[0].site, "here");
        let none = Simulator::new(16, Chain::nominal(4));
        assert!(none.bootstrap(&none.fresh(), "x").is_err());
    }
}
