//! Normalize-and-square softmax (Cho, Hanrot, Kim, Park, Stehle, "Fast and Accurate
//! Homomorphic Softmax Evaluation", ACM CCS 2024, section 4), as an f64 twin sharing its
//! polynomials with the encrypted circuit.
//!
//! `softmax(x) = exp(x)/sum exp(x)`, and `exp(x) = exp(x / 2^k)^(2^k)`: start from
//! `y_0 = exp((x - B) / 2^k) / sqrt(c)` (every entry in `(0, 1/sqrt(c)]`, so the sum of squares
//! lies in `[exp(-4B/2^k), 1]`), then `k` rounds of `y <- y^2 / sum(y^2)`. After round `j`,
//! `y` is proportional to `exp(x / 2^(k-j))` and sums to one, so the values never overflow and
//! each round's divisor lies in a fixed interval: `[1/c, 1]` from the second round on. A round's
//! divisor error is the same for the whole row, so it only rescales `y`, which the next round
//! removes; only the last round's error survives, as a common factor that the final Newton
//! steps `y <- y (2 - sum y)` square away. The errors that do not cancel are those of `exp`,
//! whose relative error the `k` squarings multiply by `2^k`.
//!
//! Two normalisers: Cho et al.'s inverse square root (`y <- (y r)^2`, `r ~ 1/sqrt(s)`), or the
//! inverse itself (`y <- y^2 q`, `q ~ 1/s`), which gives the same `y` one level sooner: `y^2` is
//! needed for the sum anyway, and `q` multiplies it directly.

use super::Stage;
use crate::circuits::chebyshev::Chebyshev;
use crate::circuits::polynomial;
use crate::{Error, Result};

/// How a round divides by the sum of squares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Normalizer {
    /// `r ~ 1 / sqrt(s)`, then `y <- (y r)^2` (Cho et al.).
    InvSqrt,
    /// `q ~ 1 / s`, then `y <- y^2 q` (one level fewer per round).
    Inverse,
}

/// The choices that define a normalize-and-square softmax.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct NasConfig {
    /// Input bound `B`: logits in `[-B, B]`.
    pub bound: f64,
    /// Rounds `k`.
    pub rounds: u32,
    /// Degree of the Chebyshev interpolant of `exp` on the input range.
    pub exp_degree: usize,
    /// Degree of the first round's normaliser (its interval spans `exp(-4B/2^k)` to 1).
    pub first_degree: usize,
    /// Degree of the later rounds' normaliser (interval about `[1/c, 1]`).
    pub rest_degree: usize,
    /// Inverse square root or inverse.
    pub normalizer: Normalizer,
    /// Newton corrections of the sum at the end.
    pub newton: u32,
}

impl NasConfig {
    /// The configuration chosen from the error table for `classes` classes: logits in
    /// `[-32, 32]`, 5 rounds, `exp` of degree 7, normalisers of degree 15, the inverse, and one
    /// Newton step up to 10 classes, two above (one leaves 1.4e-5 at 16 classes, two 1.1e-6).
    pub fn default_for_training(classes: usize) -> Self {
        NasConfig {
            bound: 32.0,
            rounds: 5,
            exp_degree: 7,
            first_degree: 15,
            rest_degree: 15,
            normalizer: Normalizer::Inverse,
            newton: if classes > 10 { 2 } else { 1 },
        }
    }
}

/// A normalize-and-square softmax for `c` classes, with its interpolants.
#[derive(Clone, Debug, PartialEq)]
pub struct NasSoftmax {
    /// Class count `c`.
    pub classes: usize,
    /// Input bound `B`.
    pub bound: f64,
    /// Rounds `k`.
    pub rounds: u32,
    /// `t -> exp(B (t - 1) / 2^k) / sqrt(c)` on `t = x / B` in `[-1, 1]`.
    pub exp: Chebyshev,
    /// The first round's normaliser, on `[exp(-4B/2^k), 1]` with a margin.
    pub first: Chebyshev,
    /// The later rounds' normaliser, on `[(1 - m)/c, 1 + m]`.
    pub rest: Chebyshev,
    /// Inverse square root or inverse.
    pub normalizer: Normalizer,
    /// Newton steps.
    pub newton: u32,
}

/// Margin around the later rounds' interval `[1/c, 1]`: room for the previous round's error.
const REST_MARGIN: f64 = 0.25;
/// Margin around the first round's interval: room for the error of `exp`.
const FIRST_MARGIN: f64 = 0.05;

impl NasSoftmax {
    /// Builds the interpolants for `classes` classes and checks that every round's divisor
    /// stays inside the next round's interval (an error says which round would leave it).
    pub fn new(classes: usize, cfg: NasConfig) -> Result<Self> {
        if !(2..=1 << 12).contains(&classes)
            || cfg.bound.is_nan()
            || cfg.bound <= 0.0
            || cfg.rounds == 0
            || cfg.rounds > 16
        {
            return Err(Error::InvalidInput(format!(
                "normalize-and-square needs 2 or more classes, a positive bound and 1..=16 rounds \
                 (got {classes} classes, bound {}, {} rounds)",
                cfg.bound, cfg.rounds
            )));
        }
        let shrink = cfg.bound / f64::from(1u32 << cfg.rounds);
        let c = classes as f64;
        let exp = Chebyshev::interpolate(|t| (shrink * (t - 1.0)).exp() / c.sqrt(), -1.0, 1.0, cfg.exp_degree);
        let f = move |s: f64| match cfg.normalizer {
            Normalizer::InvSqrt => 1.0 / s.sqrt(),
            Normalizer::Inverse => 1.0 / s,
        };
        let lo0 = (-4.0 * shrink).exp() * (1.0 - FIRST_MARGIN);
        let first = Chebyshev::interpolate(f, lo0, 1.0 + FIRST_MARGIN, cfg.first_degree);
        let rest = Chebyshev::interpolate(f, (1.0 - REST_MARGIN) / c, 1.0 + REST_MARGIN, cfg.rest_degree);
        let nas = NasSoftmax {
            classes,
            bound: cfg.bound,
            rounds: cfg.rounds,
            exp,
            first,
            rest,
            normalizer: cfg.normalizer,
            newton: cfg.newton,
        };
        for (round, poly) in [(1, &nas.first), (2, &nas.rest)] {
            let (lo, hi) = nas.sum_range(poly);
            let (next_lo, next_hi) = (lo * lo / c, hi * hi);
            if !(lo > 0.0 && next_lo >= nas.rest.a && next_hi <= nas.rest.b) {
                return Err(Error::InvalidInput(format!(
                    "normalize-and-square: after round {round} the sum of squares may reach \
                     [{next_lo:.3e}, {next_hi:.3e}], outside the next interval [{:.3e}, {:.3e}]: \
                     raise the normaliser's degree",
                    nas.rest.a, nas.rest.b
                )));
            }
        }
        Ok(nas)
    }

    /// The range of `sum y` after a round normalised by `poly` over its whole interval.
    fn sum_range(&self, poly: &Chebyshev) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let points = 4000;
        for i in 0..=points {
            let s = poly.a + (poly.b - poly.a) * i as f64 / points as f64;
            let q = poly.eval(s);
            let sum = match self.normalizer {
                Normalizer::InvSqrt => s * q * q,
                Normalizer::Inverse => s * q,
            };
            lo = lo.min(sum);
            hi = hi.max(sum);
        }
        (lo, hi)
    }

    /// The approximate softmax of one row (`x.len() == classes`).
    pub fn eval_row(&self, x: &[f64], out: &mut [f64]) {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = self.exp.eval(v / self.bound));
        for round in 0..self.rounds {
            let poly = if round == 0 { &self.first } else { &self.rest };
            let s: f64 = out.iter().map(|y| y * y).sum();
            let q = poly.eval(s);
            match self.normalizer {
                Normalizer::InvSqrt => out.iter_mut().for_each(|y| *y = (*y * q) * (*y * q)),
                Normalizer::Inverse => out.iter_mut().for_each(|y| *y = *y * *y * q),
            }
        }
        for _ in 0..self.newton {
            let s: f64 = out.iter().sum();
            out.iter_mut().for_each(|y| *y *= 2.0 - s);
        }
    }

    /// The circuit's stages and their levels.
    pub fn stages(&self) -> Vec<Stage> {
        // Affine maps onto [-1, 1] are folded into the masks before them: count the unit-interval
        // depth.
        let unit = |p: &Chebyshev| polynomial::depth(&Chebyshev::from_coeffs(p.coeffs.clone()));
        let k = self.rounds as usize;
        let (first, rest) = (unit(&self.first), unit(&self.rest));
        let product = match self.normalizer {
            Normalizer::InvSqrt => 2,
            Normalizer::Inverse => 1,
        };
        vec![
            Stage { name: "x / B (folded into DiagABT's mask)", levels: 0 },
            Stage { name: "exp(x / 2^k)", levels: unit(&self.exp) },
            Stage { name: "zero the padded classes", levels: 1 },
            Stage { name: "rounds: y^2", levels: k },
            Stage { name: "rounds: row sum, keep one period (affine folded)", levels: k },
            Stage { name: "rounds: normaliser polynomial", levels: first + (k - 1) * rest },
            Stage { name: "rounds: normalised square", levels: k * product },
            Stage { name: "Newton: row sum, keep one period", levels: self.newton as usize },
            Stage { name: "Newton: y (2 - sum)", levels: self.newton as usize },
        ]
    }
}
