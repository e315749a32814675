//! Lean normalize-and-square: the same scheme as [`super::nas`] (`exp` of `(x - B) / 2^k`, `k`
//! rounds of `y <- y^2 q(sum y^2)`, Newton steps on the sum), with normalisers built for level
//! count instead of precision.
//!
//! What a round's normaliser must do: a round's error `q(S) S - 1` is common to the whole row, so
//! the next round removes it (ratios are kept exactly by `y -> y^2`); it only has to keep the
//! next round's sum of squares inside the next normaliser's interval, and the two Newton steps at
//! the end (`y <- y (2 - sum y)`, error `e -> e^2`) fix the last one. So each `q` is the
//! polynomial of least relative error for `1/S` on its interval,
//! `q(S) = (1 - T_n(tau(S)) / T_n(tau(0))) / S` (`n = degree + 1`, `tau` the interval onto
//! `[-1, 1]`), whose relative error is `1 / |T_n(tau(0))|`, and it is evaluated in product form
//! from its roots: one real root `r0` and `(degree - 1)/2` complex pairs `a +- ib`, with the
//! leading coefficient spread as `zeta^degree`:
//! `q = zeta (S - r0) * prod ((zeta (S - a))^2 + zeta^2 b^2)`. On ciphertexts `zeta (S - r0)`
//! is the row-sum mask itself (the factor and the constant folded into it), every quadratic one
//! square, and the factors and `y^2` are multiplied as a tree: a round of degree `2m + 1` takes
//! `3 + ceil(log2(m + 1))` levels (degree 3: 4, 7: 5, 15: 6, 31: 7) against 8 for the precise
//! variant's degree-15 Chebyshev normaliser.
//!
//! Intervals: round 1 sees the absolute scale of `exp` (`S` in `[e^-4h, 1]`, `h = B / 2^k`); round
//! `j > 1` sees `S = sigma^2 g` with `sigma` the previous round's sum (in the range its `q`
//! leaves) and `g = sum p^2` for `p` proportional to `exp(x / 2^(k-j+1))`: at least `1/c`, and at
//! most what one class ahead of all others by the largest logit gap gives. Each interval is the
//! previous round's reachable range with a margin, so low degrees suffice while the logit gaps
//! are still small (round 2 after a precise round 1). The constructor derives every interval and
//! fails if a round's sums would leave `(0, 1.1]` (values bootstrapped stay below 1.25).

use super::Stage;
use crate::circuits::chebyshev::Chebyshev;
use crate::circuits::polynomial;
use crate::{Error, Result};

/// `1/S` on `[lo, hi]` in product form (see the module documentation).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProductInverse {
    /// Interval start.
    pub lo: f64,
    /// Interval end.
    pub hi: f64,
    /// Degree (odd).
    pub degree: usize,
    /// `zeta`: `zeta^degree` is the leading coefficient.
    pub zeta: f64,
    /// The real root.
    pub r0: f64,
    /// The complex roots `a +- i b` as `(a, b^2)`.
    pub pairs: Vec<(f64, f64)>,
}

/// `T_n(z)` for real `z`.
fn cheb_t(n: usize, z: f64) -> f64 {
    if z.abs() <= 1.0 {
        (n as f64 * z.acos()).cos()
    } else {
        let s = if z < 0.0 && n % 2 == 1 { -1.0 } else { 1.0 };
        s * (n as f64 * z.abs().acosh()).cosh()
    }
}

impl ProductInverse {
    /// The least-relative-error polynomial of odd `degree` for `1/S` on `[lo, hi]`, `0 < lo < hi`.
    pub fn new(lo: f64, hi: f64, degree: usize) -> Result<Self> {
        if !(lo > 0.0 && hi > lo && degree % 2 == 1 && degree <= 63) {
            return Err(Error::InvalidConfig {
                what: "lean normalize-and-square's normaliser",
                need: "an interval 0 < lo < hi and an odd degree up to 63",
            });
        }
        let n = degree + 1;
        let w = (hi - lo) / 2.0;
        let t0 = (lo + hi) / (hi - lo); // |tau(0)|
        let r0 = lo + hi; // tau = |tau(0)|
        let sh = (t0 * t0 - 1.0).sqrt();
        // Roots of T_n(tau) = T_n(tau(0)): tau = cosh(acosh(t0) + 2 pi i m / n), s = w tau + mid.
        let mid = (lo + hi) / 2.0;
        let pairs: Vec<(f64, f64)> = (1..n / 2)
            .map(|m| {
                let th = 2.0 * std::f64::consts::PI * m as f64 / n as f64;
                (w * t0 * th.cos() + mid, (w * sh * th.sin()).powi(2))
            })
            .collect();
        let c = cheb_t(n, -t0);
        let q_mid = (1.0 - cheb_t(n, 0.0) / c) / mid;
        let monic = (mid - r0) * pairs.iter().map(|&(a, b2)| (mid - a).powi(2) + b2).product::<f64>();
        let gamma = q_mid / monic;
        let zeta = gamma.signum() * gamma.abs().powf(1.0 / degree as f64);
        Ok(ProductInverse { lo, hi, degree, zeta, r0, pairs })
    }

    /// `zeta (S - r0)`: the linear factor (the row-sum mask's output on ciphertexts).
    pub fn linear(&self, s: f64) -> f64 {
        self.zeta * (s - self.r0)
    }

    /// The quadratic factor `(lin + zeta (r0 - a))^2 + zeta^2 b^2` from the linear factor.
    pub fn quadratic(&self, lin: f64, (a, b2): (f64, f64)) -> f64 {
        let u = lin + self.zeta * (self.r0 - a);
        u * u + self.zeta * self.zeta * b2
    }

    /// `q(S)` by the factors, as the circuit computes it.
    pub fn eval(&self, s: f64) -> f64 {
        let lin = self.linear(s);
        lin * self.pairs.iter().map(|&p| self.quadratic(lin, p)).product::<f64>()
    }

    /// The same polynomial by its defining formula (for tests).
    pub fn eval_formula(&self, s: f64) -> f64 {
        let n = self.degree + 1;
        let tau = |v: f64| (2.0 * v - self.lo - self.hi) / (self.hi - self.lo);
        (1.0 - cheb_t(n, tau(s)) / cheb_t(n, tau(0.0))) / s
    }

    /// The largest relative error `|S q(S) - 1|` on the interval.
    pub fn relative_error(&self) -> f64 {
        1.0 / cheb_t(self.degree + 1, (self.lo + self.hi) / (self.lo - self.hi)).abs()
    }

    /// Levels of a round with this normaliser: square, mask, quadratics, the product tree.
    pub fn round_levels(&self) -> usize {
        let leaves = self.pairs.len() + 1;
        3 + (usize::BITS - (leaves - 1).leading_zeros()) as usize
    }
}

/// Degrees of the rounds and Newton steps for `classes` classes (bound 32, 5 rounds, `exp` of
/// degree 7): up to 10 classes `[31, 3, 7, 7, 7]` (the precise first round lets the second be
/// cubic while the logit gaps are still within 4, and the rounds fall on n16-boot's refreshes
/// so that the softmax and `P - Y` take 4 bootstraps), above `[15, 7, 7, 7, 7]` (a cubic second
/// round would leave its interval; the circuit then refreshes round 2's square and linear factor
/// as one complex bootstrap to stay at 4); two Newton steps.
pub fn default_degrees(classes: usize) -> Vec<usize> {
    if classes <= 10 {
        vec![31, 3, 7, 7, 7]
    } else {
        vec![15, 7, 7, 7, 7]
    }
}

/// Margin of every interval beyond the range the previous stage can reach (room for the error
/// of `exp` and for CKKS noise).
const MARGIN: f64 = 0.01;
/// Largest sum a round may leave: `y^2 <= 1.21` stays bootstrappable.
const MAX_SUM: f64 = 1.1;

/// A lean normalize-and-square softmax for `c` classes.
#[derive(Clone, Debug, PartialEq)]
pub struct LeanNas {
    /// Class count `c`.
    pub classes: usize,
    /// Input bound `B`.
    pub bound: f64,
    /// `t -> exp(B (t - 1) / 2^k) / sqrt(c)` on `t = x / B`.
    pub exp: Chebyshev,
    /// One normaliser per round (`k` rounds).
    pub rounds: Vec<ProductInverse>,
    /// Newton steps.
    pub newton: u32,
}

/// `max sum p^2` over `c` probabilities whose ratios are at most `r`.
fn max_concentration(c: usize, r: f64) -> f64 {
    (1..c)
        .map(|m| {
            let (m, c) = (m as f64, c as f64);
            (m * r * r + c - m) / (m * r + c - m).powi(2)
        })
        .fold(1.0 / c as f64, f64::max)
        .min(1.0)
}

impl LeanNas {
    /// The default for `classes` classes: bound 32, 5 rounds of [`default_degrees`], `exp` of
    /// degree 7, two Newton steps.
    pub fn default_for(classes: usize) -> Result<Self> {
        Self::new(classes, 32.0, 7, &default_degrees(classes), 2)
    }

    /// Builds the exp interpolant and the normalisers, deriving each round's interval from the
    /// range the previous round leaves; fails if a round's sums would leave `(0, 1.1]`.
    pub fn new(classes: usize, bound: f64, exp_degree: usize, degrees: &[usize], newton: u32) -> Result<Self> {
        if !(2..=1 << 12).contains(&classes)
            || bound.is_nan()
            || bound <= 0.0
            || degrees.is_empty()
            || degrees.len() > 16
        {
            return Err(Error::InvalidConfig {
                what: "lean normalize-and-square",
                need: "2 or more classes, a positive bound and 1..=16 rounds",
            });
        }
        let k = degrees.len() as i32;
        let h = bound / 2f64.powi(k);
        let c = classes as f64;
        let exp = Chebyshev::interpolate(|t| (h * (t - 1.0)).exp() / c.sqrt(), -1.0, 1.0, exp_degree);
        let (mut lo, mut hi) = ((-4.0 * h).exp() * (1.0 - MARGIN), 1.0 + MARGIN);
        let mut rounds = Vec::with_capacity(degrees.len());
        for (j, &d) in degrees.iter().enumerate() {
            let q = ProductInverse::new(lo, hi, d)?;
            let e = q.relative_error();
            let (slo, shi) = (1.0 - e, 1.0 + e);
            // After round j + 1, y is proportional to exp(x 2^(j+1) / 2^k): logit gaps up to 2B
            // give ratios up to exp(2h 2^(j+1)) between the next round's squares' roots.
            let g = max_concentration(classes, (2.0 * h * 2f64.powi(j as i32 + 1)).exp());
            let (next_lo, next_hi) = (slo * slo / c * (1.0 - MARGIN), shi * shi * g * (1.0 + MARGIN));
            if !(slo > 0.0 && shi <= MAX_SUM) {
                return Err(Error::ApproximationRange {
                    what: "lean normalize-and-square's row sum",
                    round: j + 1,
                    range: (slo, shi),
                    interval: (0.0, MAX_SUM),
                });
            }
            rounds.push(q);
            (lo, hi) = (next_lo, next_hi);
        }
        Ok(LeanNas { classes, bound, exp, rounds, newton })
    }

    /// The approximate softmax of one row (`x.len() == classes`).
    pub fn eval_row(&self, x: &[f64], out: &mut [f64]) {
        self.eval_row_sums(x, out, &mut |_, _| {});
    }

    /// [`LeanNas::eval_row`], reporting each round's sum of squares (`round`, `S`).
    pub fn eval_row_sums(&self, x: &[f64], out: &mut [f64], seen: &mut dyn FnMut(usize, f64)) {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = self.exp.eval(v / self.bound));
        for (j, q) in self.rounds.iter().enumerate() {
            let s: f64 = out.iter().map(|y| y * y).sum();
            seen(j, s);
            let f = q.eval(s);
            out.iter_mut().for_each(|y| *y = *y * *y * f);
        }
        for _ in 0..self.newton {
            let s: f64 = out.iter().sum();
            out.iter_mut().for_each(|y| *y *= 2.0 - s);
        }
    }

    /// The circuit's stages and their levels.
    pub fn stages(&self) -> Vec<Stage> {
        let exp = polynomial::depth(&Chebyshev::from_coeffs(self.exp.coeffs.clone()));
        let rounds: usize = self.rounds.iter().map(ProductInverse::round_levels).sum();
        vec![
            Stage { name: "x / B", levels: 1 },
            Stage { name: "exp(x / 2^k)", levels: exp },
            Stage { name: "zero the padded classes", levels: 1 },
            Stage {
                name: "rounds: square, sum mask (normaliser's linear factor), quadratics, products",
                levels: rounds,
            },
            Stage { name: "Newton: row sum, keep one period", levels: self.newton as usize },
            Stage { name: "Newton: y (2 - sum)", levels: self.newton as usize },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::softmax::{error_stats, exact, sample_row, Sampling, Softmax};
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    #[test]
    fn product_form_is_the_least_relative_error_inverse() {
        for (lo, hi, d) in [(0.018, 1.01, 31), (0.05, 0.7, 3), (0.09, 1.05, 7), (0.06, 1.2, 15), (0.2, 1.0, 1)] {
            let q = ProductInverse::new(lo, hi, d).unwrap();
            assert_eq!(q.pairs.len(), (d - 1) / 2);
            let mut worst = 0.0f64;
            for i in 0..=1000 {
                let s = lo + (hi - lo) * i as f64 / 1000.0;
                let (a, b) = (q.eval(s), q.eval_formula(s));
                assert!((a - b).abs() <= 1e-9 * b.abs(), "{lo} {hi} {d}: {s}: {a} vs {b}");
                worst = worst.max((s * a - 1.0).abs());
            }
            // Equioscillation: the bound is reached, and only at the nodes.
            let e = q.relative_error();
            assert!(worst <= e * (1.0 + 1e-9) && worst > 0.99 * e, "{worst} vs {e}");
        }
        assert!(ProductInverse::new(0.1, 1.0, 4).is_err());
        assert!(ProductInverse::new(0.0, 1.0, 3).is_err());
    }

    #[test]
    fn every_round_sum_stays_inside_its_interval() {
        // The constructor derives the intervals from worst cases; sampled rows (uniform, one
        // winner, most logits near 0, and all logits at one bound) must land inside them.
        for c in 2..=16 {
            let sm = LeanNas::default_for(c).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
            let (mut x, mut y) = (vec![0.0; c], vec![0.0; c]);
            let mut check = |x: &[f64]| {
                sm.eval_row_sums(x, &mut y, &mut |j, s| {
                    let q = &sm.rounds[j];
                    assert!(s >= q.lo && s <= q.hi, "c={c} round {}: {s} not in [{}, {}] for {x:?}", j + 1, q.lo, q.hi);
                });
            };
            for sampling in [Sampling::Uniform, Sampling::Peaked, Sampling::Centred] {
                for _ in 0..3000 {
                    sample_row(&mut rng, c, 32.0, sampling, &mut x);
                    check(&x);
                }
            }
            for v in [-32.0, 0.0, 32.0] {
                check(&vec![v; c]);
                let mut one = vec![-32.0; c];
                one[0] = v;
                check(&one);
            }
        }
    }

    #[test]
    fn lean_errs_like_the_precise_variant() {
        // exp's relative error (degree 7 on x / 32) doubled by 5 squarings limits both variants
        // near 1e-6; the lean one's round errors cancel and two Newton steps fix the sum.
        for c in 2..=16 {
            let sm = Softmax::Lean(LeanNas::default_for(c).unwrap());
            for (k, sampling) in [Sampling::Uniform, Sampling::Peaked, Sampling::Centred].into_iter().enumerate() {
                let e = error_stats(&sm, c, 32.0, sampling, 2000, k as u64);
                let bound = if c == 2 {
                    6e-6
                } else if c > 10 {
                    1.5e-5
                } else {
                    2e-6
                };
                assert!(e.max_abs < bound, "c={c} {sampling:?}: {e:?}");
            }
        }
        let n = LeanNas::default_for(7).unwrap();
        let (mut got, mut want) = ([0.0; 7], [0.0; 7]);
        let x = [32.0, 30.0, 0.0, 0.0, 0.0, 0.0, -32.0];
        n.eval_row(&x, &mut got);
        exact(&x, &mut want);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 2e-6), "{got:?}");
    }

    #[test]
    fn levels_and_checks() {
        let n = LeanNas::default_for(7).unwrap();
        let rounds: Vec<usize> = n.rounds.iter().map(ProductInverse::round_levels).collect();
        assert_eq!(rounds, [7, 4, 5, 5, 5]);
        assert_eq!(Softmax::Lean(n).levels(), 36);
        let n = LeanNas::default_for(16).unwrap();
        assert_eq!(n.rounds.iter().map(ProductInverse::round_levels).collect::<Vec<_>>(), [6, 5, 5, 5, 5]);
        // A cubic second round above 10 classes lets the sums escape.
        let e = LeanNas::new(16, 32.0, 7, &[31, 3, 7, 7, 7], 2).unwrap_err().to_string();
        assert!(e.contains("round"), "{e}");
        assert!(LeanNas::new(1, 32.0, 7, &[7], 2).is_err());
    }
}
