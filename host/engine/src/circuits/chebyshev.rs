//! Chebyshev interpolants in f64: the plaintext side of polynomial evaluation. A polynomial is
//! kept in the Chebyshev basis on an interval `[a, b]`, where interpolation at Chebyshev nodes is
//! numerically stable at the degrees bootstrapping needs (up to a few hundred).

use std::f64::consts::PI;

/// `p(x) = sum_k c_k T_k(y)` with `y = (2x - a - b) / (b - a)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Chebyshev {
    /// Coefficients `c_0 .. c_d`.
    pub coeffs: Vec<f64>,
    /// Interval start.
    pub a: f64,
    /// Interval end.
    pub b: f64,
}

impl Chebyshev {
    /// Interpolates `f` at the `degree + 1` Chebyshev nodes of the first kind on `[a, b]`.
    pub fn interpolate(f: impl Fn(f64) -> f64, a: f64, b: f64, degree: usize) -> Self {
        let m = degree + 1;
        let nodes: Vec<f64> = (0..m).map(|j| (PI * (j as f64 + 0.5) / m as f64).cos()).collect();
        let vals: Vec<f64> = nodes.iter().map(|&y| f(0.5 * (b - a) * y + 0.5 * (a + b))).collect();
        let coeffs = (0..m)
            .map(|k| {
                let s: f64 = (0..m).map(|j| vals[j] * (PI * k as f64 * (j as f64 + 0.5) / m as f64).cos()).sum();
                s * if k == 0 { 1.0 } else { 2.0 } / m as f64
            })
            .collect();
        Chebyshev { coeffs, a, b }
    }

    /// The polynomial `sum_k c_k x^k` (power basis), rewritten in the Chebyshev basis of
    /// `[a, b]`: interpolation at `d + 1` nodes is exact for degree `d`, up to rounding.
    pub fn from_power(c: &[f64], a: f64, b: f64) -> Self {
        let horner = |x: f64| c.iter().rev().fold(0.0, |acc, &ck| acc * x + ck);
        Self::interpolate(horner, a, b, c.len().saturating_sub(1))
    }

    /// A polynomial given by its Chebyshev coefficients on `[-1, 1]`.
    pub fn from_coeffs(coeffs: Vec<f64>) -> Self {
        Chebyshev { coeffs, a: -1.0, b: 1.0 }
    }

    /// Degree.
    pub fn degree(&self) -> usize {
        self.coeffs.len().saturating_sub(1)
    }

    /// Maps `x` to the Chebyshev variable `y` in `[-1, 1]`.
    pub fn to_unit(&self, x: f64) -> f64 {
        (2.0 * x - self.a - self.b) / (self.b - self.a)
    }

    /// Evaluates at `x` (Clenshaw's recurrence).
    pub fn eval(&self, x: f64) -> f64 {
        eval_unit(&self.coeffs, self.to_unit(x))
    }

    /// Largest absolute difference from `f` on a fine grid of the interval.
    pub fn max_error(&self, f: impl Fn(f64) -> f64, points: usize) -> f64 {
        (0..=points)
            .map(|i| {
                let x = self.a + (self.b - self.a) * i as f64 / points as f64;
                (self.eval(x) - f(x)).abs()
            })
            .fold(0.0, f64::max)
    }
}

/// Clenshaw evaluation of `sum c_k T_k(y)`.
pub fn eval_unit(c: &[f64], y: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c.iter().skip(1).rev() {
        let b0 = 2.0 * y * b1 - b2 + ck;
        b2 = b1;
        b1 = b0;
    }
    y * b1 - b2 + c.first().copied().unwrap_or(0.0)
}

/// Splits `p` (Chebyshev coefficients, degree < 2K) as `p = r + q T_K` with `deg r < K`:
/// from `T_{K+j} = 2 T_K T_j - T_{K-j}`.
pub fn split(c: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut r: Vec<f64> = c[..k.min(c.len())].to_vec();
    r.resize(k, 0.0);
    let mut q = vec![0.0; c.len().saturating_sub(k).max(1)];
    for (j, &cj) in c.iter().enumerate().skip(k) {
        let j = j - k;
        if j == 0 {
            q[0] += cj;
        } else {
            q[j] += 2.0 * cj;
            r[k - j] -= cj;
        }
    }
    (r, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_of_cosine_is_accurate() {
        let f = |x: f64| (2.0 * PI * x).cos();
        let p = Chebyshev::interpolate(f, -3.0, 3.0, 60);
        assert!(p.max_error(f, 4000) < 1e-12, "{}", p.max_error(f, 4000));
    }

    #[test]
    fn power_basis_conversion_is_exact() {
        // HETAL's degree-8 approximation of exp on [-1, 1] (power basis, constant term first).
        let c = crate::learning::softmax::hetal::EXP_P;
        let p = Chebyshev::from_power(&c, -1.0, 1.0);
        assert_eq!(p.degree(), 8);
        for i in 0..=100 {
            let x = -1.0 + i as f64 / 50.0;
            let want = c.iter().rev().fold(0.0, |acc, &ck| acc * x + ck);
            assert!((p.eval(x) - want).abs() < 1e-14, "{x}");
            assert!((p.eval(x) - x.exp()).abs() < 1e-7, "{x}");
        }
    }

    #[test]
    fn split_reconstructs() {
        let all: Vec<f64> = (0..27).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
        // Degree below 2K, as the evaluator guarantees.
        for (len, k) in [(16usize, 8usize), (27, 16), (17, 16)] {
            let c = &all[..len];
            let (r, q) = split(c, k);
            for i in 0..50 {
                let y = -1.0 + 2.0 * i as f64 / 49.0;
                let tk = (k as f64 * y.acos()).cos();
                let want = eval_unit(c, y);
                let got = eval_unit(&r, y) + eval_unit(&q, y) * tk;
                assert!((want - got).abs() < 1e-9, "k={k} y={y}: {want} vs {got}");
            }
        }
    }
}
