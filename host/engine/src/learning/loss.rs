//! Validation losses the server can compute under encryption, as f64 twins sharing their
//! polynomials with the encrypted circuits.
//!
//! Cross-entropy needs `log p_y`, which has no polynomial approximation down to 0. Shifting by
//! a small `eps` instead of clipping (clipping would need a comparison) gives
//! `-log(p_y + eps)`, smooth on `[eps, 1 + eps]`, where a Chebyshev interpolant of moderate
//! degree is accurate to a few digits: enough to rank epochs. It saturates at `-log(eps)` for
//! confidently wrong rows, as a clipped cross-entropy does.

use crate::circuits::chebyshev::Chebyshev;

/// `-log(p + eps)` by a Chebyshev interpolant on `p` in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShiftedLog {
    /// The shift.
    pub eps: f64,
    /// The interpolant of `-log(p + eps)` on `[0, 1]`.
    pub poly: Chebyshev,
}

impl Default for ShiftedLog {
    /// `eps = 1e-2`, degree 63 (largest error 2e-3 on `[0, 1]`; the per-row loss ranges up to
    /// 4.6).
    fn default() -> Self {
        Self::new(1e-2, 63)
    }
}

impl ShiftedLog {
    /// The interpolant for `eps` and `degree`.
    pub fn new(eps: f64, degree: usize) -> Self {
        ShiftedLog { eps, poly: Chebyshev::interpolate(|p| -(p + eps).ln(), 0.0, 1.0, degree) }
    }

    /// `-log(p + eps)` through the polynomial, `p` clamped to `[0, 1]` (CKKS values stray
    /// slightly outside).
    pub fn eval(&self, p: f64) -> f64 {
        self.poly.eval(p.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_log_is_accurate_on_the_unit_interval() {
        let l = ShiftedLog::default();
        let err = l.poly.max_error(|p| -(p + 1e-2).ln(), 10_000);
        assert!(err < 2e-3, "{err}");
        assert!((l.eval(1.0) - -(1.01f64).ln()).abs() < 1e-6);
    }
}
