//! The arithmetic a polynomial evaluator with exact scale management needs, as a trait: the
//! [`Evaluator`] implements it on ciphertexts, and the learning backends (the level-and-scale
//! simulator, exact slots) implement it on stand-ins, so one polynomial evaluator
//! ([`super::polynomial::evaluate`]) serves them all and every backend checks what the evaluator
//! checks (levels left, scales that fit the modulus, scales that add).

use hetune_core::ckks::Ciphertext;

use crate::evaluator::{zero_ciphertext, Evaluator};
use crate::Error;

/// Level and scale arithmetic on ciphertexts or stand-ins of type [`Arith::Ct`].
pub trait Arith {
    /// A ciphertext (or a stand-in).
    type Ct: Clone + Send + Sync;
    /// Level of a ciphertext.
    fn level(&self, ct: &Self::Ct) -> usize;
    /// Scale of a ciphertext.
    fn scale(&self, ct: &Self::Ct) -> f64;
    /// The prime `q_level`: what one rescale at `level` divides the scale by.
    fn rescale_scale(&self, level: usize) -> f64;
    /// `a + b` (at the lower level; scales equal or an integer multiple of each other).
    fn add(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct, Error>;
    /// `a - b`.
    fn sub(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct, Error>;
    /// `a` at a lower level (free, scale kept).
    fn drop_level(&self, a: &Self::Ct, level: usize) -> Result<Self::Ct, Error>;
    /// `a * b` relinearised, not rescaled: scale `a.scale * b.scale`.
    fn mul_relin(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct, Error>;
    /// Divides by `q_level`: one level, scale divided by the prime.
    fn rescale(&self, a: Self::Ct) -> Result<Self::Ct, Error>;
    /// `a * k` for an integer `k` (exact, free).
    fn mul_integer(&self, a: &Self::Ct, k: i64) -> Result<Self::Ct, Error>;
    /// `a + c` for a real constant (free).
    fn add_const(&self, a: &Self::Ct, c: f64) -> Result<Self::Ct, Error>;
    /// `a * c` with `c` encoded at `scale`, not rescaled: scale `a.scale * scale`.
    fn mul_const(&self, a: &Self::Ct, c: f64, scale: f64) -> Result<Self::Ct, Error>;
    /// Records `scale` where it equals the recorded one up to floating-point bookkeeping.
    fn snap_scale(&self, a: Self::Ct, scale: f64) -> Result<Self::Ct, Error>;
    /// A zero with `like`'s slots at `level` and `scale` (degree 1).
    fn zero_like(&self, like: &Self::Ct, level: usize, scale: f64) -> Result<Self::Ct, Error>;
}

impl Arith for Evaluator {
    type Ct = Ciphertext;

    fn level(&self, ct: &Ciphertext) -> usize {
        ct.level
    }
    fn scale(&self, ct: &Ciphertext) -> f64 {
        ct.scale
    }
    fn rescale_scale(&self, level: usize) -> f64 {
        Evaluator::rescale_scale(self, level)
    }
    fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        Evaluator::add(self, a, b)
    }
    fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        Evaluator::sub(self, a, b)
    }
    fn drop_level(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext, Error> {
        Evaluator::drop_level(self, a, level)
    }
    fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        Evaluator::mul_relin(self, a, b)
    }
    fn rescale(&self, mut a: Ciphertext) -> Result<Ciphertext, Error> {
        Evaluator::rescale_assign(self, &mut a)?;
        Ok(a)
    }
    fn mul_integer(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext, Error> {
        Evaluator::mul_integer(self, a, k)
    }
    fn add_const(&self, a: &Ciphertext, c: f64) -> Result<Ciphertext, Error> {
        Evaluator::add_const_real(self, a, c)
    }
    fn mul_const(&self, a: &Ciphertext, c: f64, scale: f64) -> Result<Ciphertext, Error> {
        Evaluator::mul_const_real(self, a, c, scale)
    }
    fn snap_scale(&self, mut a: Ciphertext, scale: f64) -> Result<Ciphertext, Error> {
        Evaluator::snap_scale(self, &mut a, scale)?;
        Ok(a)
    }
    fn zero_like(&self, like: &Ciphertext, level: usize, scale: f64) -> Result<Ciphertext, Error> {
        Ok(zero_ciphertext(self.context().n(), 2, level, scale, like.log_slots))
    }
}
