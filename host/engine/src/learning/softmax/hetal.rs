//! HETAL's softmax approximation (Lee et al., ICML 2023, section 4.3 and appendix), as an f64
//! twin sharing its constants with the encrypted circuit:
//!
//! 1. `z = x / (2 Rmax)`, so that differences of logits in `[-Rmax, Rmax]` lie in `[-1, 1]`;
//! 2. the row maximum over `log2(pad_c)` rounds of `max(a, b) = b + (a - b) s`, with
//!    `s = (comp(a - b) + 1) / 2` and `comp = f o g o g` (Cheon, Kim, Kim, Lee, Lee,
//!    "Efficient homomorphic comparison methods with optimal complexity", Asiacrypt 2020,
//!    `f_3` and `g_3`); padded classes hold a very negative value so they never win; one
//!    entry's maximum is spread over the row, so every class is shifted by the same value;
//! 3. domain extension (Cheon, Kim, Kim, "Efficient homomorphic evaluation on large intervals",
//!    IEEE TIFS 2022) of `d = x - max` from `[-2 Rmax, 0]` down to `[-r, r]`:
//!    `d <- d - (4/27) d^3 / (r^2 L^(2i))` for `i = n-1 .. 0`, optionally followed by the
//!    precise variant's correction of the cubic distortion near 0;
//! 4. `exp(d) ~ p(d / r)^(2^3)` with HETAL's degree-8 `p`;
//! 5. `1 / sum` by Goldschmidt's iteration after scaling the sum by `1 / R`;
//! 6. the probabilities `exp_i / sum`.

use super::Stage;
use crate::circuits::chebyshev::Chebyshev;
use crate::circuits::polynomial;

/// `f_3` of Cheon et al. 2020, odd, power basis (coefficient of `x^k` at index `k`).
pub const COMP_F: [f64; 8] = [0.0, 35.0 / 16.0, 0.0, -35.0 / 16.0, 0.0, 21.0 / 16.0, 0.0, -5.0 / 16.0];
/// `g_3` of Cheon et al. 2020, odd, power basis.
pub const COMP_G: [f64; 8] =
    [0.0, 4589.0 / 1024.0, 0.0, -16577.0 / 1024.0, 0.0, 25614.0 / 1024.0, 0.0, -12860.0 / 1024.0];
/// HETAL's degree-8 approximation of `exp` on `[-1, 1]`, power basis.
pub const EXP_P: [f64; 9] = [
    1.000000001945585,
    0.9999999388932228,
    0.499999859398392,
    0.16666798775227673,
    0.04166711228500117,
    0.008328336039797088,
    0.0013881473292497602,
    0.00020492629147503022,
    2.551385701569812e-05,
];

/// Domain extension parameters: `n` steps from `[-r L^n, r L^n]` down to `[-r, r]`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct DomainExtension {
    /// Base radius (HETAL: 8).
    pub r: f64,
    /// Ratio between consecutive radii (HETAL: 2).
    pub l: f64,
    /// Steps (HETAL: 5).
    pub n: u32,
    /// Whether to add the precise variant's correction `x + (C/r^2) x^3 - (C/r^4) x^5`.
    pub precise: bool,
}

impl DomainExtension {
    /// `C = (4/27) (L^(2n) - 1) / (L^(2n-2) (L^2 - 1))`: the total cubic coefficient of the steps.
    pub fn c(&self) -> f64 {
        let l2 = self.l * self.l;
        4.0 / 27.0 * (l2.powi(self.n as i32) - 1.0) / (l2.powi(self.n as i32 - 1) * (l2 - 1.0))
    }

    /// Applies the extension to `d`.
    pub fn apply(&self, mut d: f64) -> f64 {
        let r2 = self.r * self.r;
        for i in (0..self.n).rev() {
            d -= 4.0 / 27.0 * d * d * d / (r2 * self.l.powi(2 * i as i32));
        }
        if self.precise {
            let c = self.c();
            let d2 = d * d;
            d += c / r2 * d2 * d - c / (r2 * r2) * d2 * d2 * d;
        }
        d
    }
}

/// HETAL's softmax approximation and every constant its circuit uses.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HetalSoftmax {
    /// Class count `c`.
    pub classes: usize,
    /// Tiling period: `c` rounded up to a power of two (at least 2).
    pub pad_c: usize,
    /// Input bound: logits in `[-Rmax, Rmax]` (HETAL: 128).
    pub rmax: f64,
    /// Logit given to the padded classes (HETAL: "very negative"; here `-Rmax`, the most negative
    /// value the normalisation maps into `[-1/2, 1/2]`).
    pub pad_value: f64,
    /// Whether the padded classes' `exp` values are zeroed by a mask before the row sum (else
    /// each adds `exp(D(pad - max))`, about `1e-3`, to the sum).
    pub mask_padded: bool,
    /// Applications of `g` in the comparison (HETAL: 2).
    pub comp_g: u32,
    /// Applications of `f` after them (HETAL: 1).
    pub comp_f: u32,
    /// Domain extension from `[-2 Rmax, 2 Rmax]` to `[-r, r]`.
    pub extension: DomainExtension,
    /// Squarings after `p` (HETAL: 3, so `p(d / 8)^8`); `p`'s input is `d / 2^squarings`.
    pub exp_squarings: u32,
    /// Goldschmidt's scaling: the sum is divided by `R` first (HETAL: 100).
    pub inverse_scale: f64,
    /// Goldschmidt iterations (HETAL: 16).
    pub inverse_iterations: u32,
}

impl HetalSoftmax {
    /// HETAL's published parameters for `classes` classes (the basic domain extension).
    pub fn published(classes: usize) -> Self {
        HetalSoftmax {
            classes,
            pad_c: classes.next_power_of_two().max(2),
            rmax: 128.0,
            pad_value: -128.0,
            mask_padded: true,
            comp_g: 2,
            comp_f: 1,
            extension: DomainExtension { r: 8.0, l: 2.0, n: 5, precise: false },
            exp_squarings: 3,
            inverse_scale: 100.0,
            inverse_iterations: 16,
        }
    }

    /// The same with the precise domain extension.
    pub fn published_precise(classes: usize) -> Self {
        let mut s = Self::published(classes);
        s.extension.precise = true;
        s
    }

    /// `comp(x) ~ sign(x)` on `[-1, 1]`.
    pub fn comp(&self, mut x: f64) -> f64 {
        for _ in 0..self.comp_g {
            x = horner(&COMP_G, x);
        }
        for _ in 0..self.comp_f {
            x = horner(&COMP_F, x);
        }
        x
    }

    /// `max(a, b) ~ b + (a - b) (comp(a - b) + 1) / 2` for `a - b` in `[-1, 1]`.
    pub fn max2(&self, a: f64, b: f64) -> f64 {
        let s = (self.comp(a - b) + 1.0) / 2.0;
        b + (a - b) * s
    }

    /// `exp(d)` for `d` in about `[-2 Rmax, 0]`: extension, then `p(d / 2^k)^(2^k)`.
    pub fn exp(&self, d: f64) -> f64 {
        let d = self.extension.apply(d);
        let mut e = horner(&EXP_P, d / f64::from(1u32 << self.exp_squarings));
        for _ in 0..self.exp_squarings {
            e *= e;
        }
        e
    }

    /// `1 / z` for `z` in `(0, 2R)` by Goldschmidt's iteration.
    pub fn inverse(&self, z: f64) -> f64 {
        let a = z / self.inverse_scale;
        let (mut y, mut t) = (2.0 - a, 1.0 - a);
        for _ in 0..self.inverse_iterations {
            t *= t;
            y *= 1.0 + t;
        }
        y / self.inverse_scale
    }

    /// The approximate softmax of one row (`x.len() == classes`).
    pub fn eval_row(&self, x: &[f64], out: &mut [f64]) {
        let norm = 2.0 * self.rmax;
        // The period as the circuit holds it: c logits, then the padded classes.
        let mut z: Vec<f64> =
            x.iter().chain(std::iter::repeat(&self.pad_value)).take(self.pad_c).map(|v| v / norm).collect();
        let logits = z.clone();
        // Cyclic rotate-and-max within the period: after log2(pad_c) rounds every entry holds the
        // maximum of all of them.
        let mut step = 1;
        while step < self.pad_c {
            let rotated: Vec<f64> = (0..self.pad_c).map(|i| z[(i + step) % self.pad_c]).collect();
            z.iter_mut().zip(&rotated).for_each(|(a, &b)| *a = self.max2(*a, b));
            step *= 2;
        }
        // The comparisons are not associative when they are imprecise (close logits), so every
        // entry ends with a different approximate maximum; the circuit keeps entry 0's and
        // spreads it over the row, so that all classes share one shift (softmax ignores it).
        let m = z[0];
        let mut e: Vec<f64> = logits.iter().map(|&v| self.exp(norm * (v - m))).collect();
        if self.mask_padded {
            e[self.classes..].iter_mut().for_each(|v| *v = 0.0);
        }
        let inv = self.inverse(e.iter().sum());
        out.iter_mut().zip(&e).for_each(|(o, &ei)| *o = ei * inv);
    }

    /// The circuit's stages and their levels.
    pub fn stages(&self) -> Vec<Stage> {
        let odd7 = polynomial::depth(&Chebyshev::from_power(&COMP_G, -1.0, 1.0));
        let rounds = self.pad_c.trailing_zeros() as usize;
        let comp = (self.comp_g + self.comp_f) as usize * odd7;
        // Each extension step `d - c d^3`: `d^2` and `c d` side by side, then their product.
        let ext = 2 * self.extension.n as usize + if self.extension.precise { 3 } else { 0 };
        vec![
            Stage { name: "x / (2 Rmax) (folded into DiagABT's mask)", levels: 0 },
            Stage { name: "row maximum: comparisons", levels: rounds * comp },
            Stage { name: "row maximum: (a - b) s", levels: rounds },
            Stage { name: "row maximum: keep one entry, spread it over the row", levels: 1 },
            Stage { name: "domain extension", levels: ext },
            Stage { name: "exp: p(x / 8)", levels: polynomial::depth(&Chebyshev::from_power(&EXP_P, -1.0, 1.0)) },
            Stage { name: "exp: squarings", levels: self.exp_squarings as usize },
            Stage { name: "zero the padded classes", levels: usize::from(self.mask_padded) },
            Stage { name: "row sum: keep one period, times 1/R", levels: 1 },
            Stage { name: "Goldschmidt inverse", levels: self.inverse_iterations as usize },
            Stage { name: "exp times inverse", levels: 1 },
        ]
    }
}

/// `sum c_k x^k` by Horner's rule.
pub(crate) fn horner(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ck| acc * x + ck)
}
