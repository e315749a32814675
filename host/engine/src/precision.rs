//! Precision statistics of a decrypted result against its plaintext reference: the one measure
//! used by the CLI, the benchmark reports and the tests. The error of a slot is the absolute
//! difference of real values, or for complex slots the larger of the real and imaginary
//! differences; precision in bits is `-log2` of an error.

use hetune_core::ckks::Complex;

use crate::{Error, Result};

/// Error statistics over the slots (or entries) of one result.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PrecisionStats {
    /// Number of values compared.
    pub count: usize,
    /// Largest absolute error.
    pub max_abs_error: f64,
    /// Mean absolute error.
    pub mean_abs_error: f64,
    /// Smallest absolute error.
    pub min_abs_error: f64,
    /// Largest magnitude of the reference (for the relative error).
    pub max_reference: f64,
}

impl PrecisionStats {
    /// Statistics of `got` against `want` (equal lengths, at least one value).
    pub fn real(got: &[f64], want: &[f64]) -> Result<Self> {
        Self::of(got.len(), want.len(), got.iter().zip(want).map(|(g, w)| ((g - w).abs(), w.abs())))
    }

    /// Statistics of complex `got` against `want`: a slot's error is the larger of its real and
    /// imaginary errors, its magnitude the larger of its parts'.
    pub fn complex(got: &[Complex], want: &[Complex]) -> Result<Self> {
        Self::of(
            got.len(),
            want.len(),
            got.iter()
                .zip(want)
                .map(|(g, w)| ((g.re - w.re).abs().max((g.im - w.im).abs()), w.re.abs().max(w.im.abs()))),
        )
    }

    fn of(got: usize, want: usize, pairs: impl Iterator<Item = (f64, f64)>) -> Result<Self> {
        if got != want || got == 0 {
            return Err(Error::CountMismatch { what: "values", found: got, expected: want, shape: (1, want) });
        }
        let mut s = PrecisionStats {
            count: got,
            max_abs_error: 0.0,
            mean_abs_error: 0.0,
            min_abs_error: f64::INFINITY,
            max_reference: 0.0,
        };
        let mut sum = 0.0;
        for (e, r) in pairs {
            // A NaN error (a garbage decryption) must not vanish in `max`.
            let e = if e.is_nan() { f64::INFINITY } else { e };
            s.max_abs_error = s.max_abs_error.max(e);
            s.min_abs_error = s.min_abs_error.min(e);
            s.max_reference = s.max_reference.max(r);
            sum += e;
        }
        s.mean_abs_error = sum / got as f64;
        Ok(s)
    }

    /// Precision of the worst value, bits: `-log2(max_abs_error)`.
    pub fn min_bits(&self) -> f64 {
        -self.max_abs_error.log2()
    }

    /// Precision of the mean error, bits: `-log2(mean_abs_error)`.
    pub fn mean_bits(&self) -> f64 {
        -self.mean_abs_error.log2()
    }

    /// Precision of the best value, bits: `-log2(min_abs_error)` (infinite when exact).
    pub fn max_bits(&self) -> f64 {
        -self.min_abs_error.log2()
    }

    /// The largest error divided by the reference's largest magnitude (the error itself when the
    /// reference is zero).
    pub fn relative_error(&self) -> f64 {
        if self.max_reference > 0.0 {
            self.max_abs_error / self.max_reference
        } else {
            self.max_abs_error
        }
    }
}

impl std::fmt::Display for PrecisionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max abs error {:.3e}, mean abs error {:.3e}; precision min {:.1} bits, mean {:.1} bits",
            self.max_abs_error,
            self.mean_abs_error,
            self.min_bits(),
            self.mean_bits()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_known_errors() {
        let s = PrecisionStats::real(&[1.0, 2.5, -1.0, 0.0], &[1.0, 2.0, -1.25, 4.0]).unwrap();
        assert_eq!((s.count, s.max_abs_error, s.min_abs_error, s.max_reference), (4, 4.0, 0.0, 4.0));
        assert_eq!(s.mean_abs_error, 4.75 / 4.0);
        assert_eq!((s.min_bits(), s.max_bits(), s.relative_error()), (-2.0, f64::INFINITY, 1.0));
        let c = PrecisionStats::complex(
            &[Complex::new(0.5, 0.25), Complex::new(0.0, 1.0)],
            &[Complex::new(0.5, 0.5), Complex::new(0.125, 1.0)],
        )
        .unwrap();
        assert_eq!((c.max_abs_error, c.min_abs_error, c.mean_abs_error, c.max_reference), (0.25, 0.125, 0.1875, 1.0));
        assert_eq!(c.min_bits(), 2.0);
        assert!(PrecisionStats::real(&[f64::NAN], &[1.0]).unwrap().min_bits() == f64::NEG_INFINITY);
        assert!(PrecisionStats::real(&[1.0], &[1.0, 2.0]).is_err());
        assert!(PrecisionStats::real(&[], &[]).is_err());
    }
}
