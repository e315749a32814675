//! Ciphertext multiplication: the tensor product `(a_0 b_0, a_0 b_1 + a_1 b_0, a_1 b_1)` and
//! relinearisation of its last polynomial by hybrid key switching, fused so that the third
//! polynomial never leaves the workspace.

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::{elementwise, Modulus};
use rayon::prelude::*;

use super::{zero_ciphertext, Evaluator};
use crate::Error;

/// One limb of the tensor product (evaluation form).
#[allow(clippy::too_many_arguments)]
#[inline]
fn tensor_limb(
    q: &Modulus,
    a0: &[u64],
    a1: &[u64],
    b0: &[u64],
    b1: &[u64],
    d0: &mut [u64],
    d1: &mut [u64],
    d2: &mut [u64],
) {
    elementwise::mul_into(q, d0, a0, b0);
    elementwise::mul_into(q, d1, a0, b1);
    elementwise::mul_acc(q, d1, a1, b0);
    elementwise::mul_into(q, d2, a1, b1);
}

impl Evaluator {
    /// Checks two factors and returns the level and scale of their product.
    fn product_shape(&self, a: &Ciphertext, b: &Ciphertext) -> Result<(usize, f64), Error> {
        self.check(a)?;
        self.check(b)?;
        if a.log_slots != b.log_slots {
            return Err(Error::SlotCountMismatch { left: a.log_slots, right: b.log_slots });
        }
        if a.c.len() != 2 || b.c.len() != 2 {
            return Err(Error::InvalidArgument("multiply ciphertexts of degree 1 (relinearise first)"));
        }
        let level = a.level.min(b.level);
        let scale = a.scale * b.scale;
        self.check_scale_fits(scale, level)?;
        Ok((level, scale))
    }

    /// Writes the tensor product limbs `0..=level` into `d0`, `d1` and `d2`.
    fn tensor(&self, a: &Ciphertext, b: &Ciphertext, level: usize, d0: &mut [u64], d1: &mut [u64], d2: &mut [u64]) {
        let n = self.n();
        let q = self.q();
        let len = (level + 1) * n;
        d0[..len]
            .par_chunks_exact_mut(n)
            .zip(d1[..len].par_chunks_exact_mut(n))
            .zip(d2[..len].par_chunks_exact_mut(n))
            .enumerate()
            .for_each(|(i, ((o0, o1), o2))| {
                tensor_limb(&q[i], a.c[0].limb(i), a.c[1].limb(i), b.c[0].limb(i), b.c[1].limb(i), o0, o1, o2);
            });
    }

    /// `a * b` without relinearisation: a degree-2 ciphertext at scale `a.scale * b.scale`.
    pub fn mul(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        let (level, scale) = self.product_shape(a, b)?;
        let mut out = zero_ciphertext(self.n(), 3, level, scale, a.log_slots);
        let (d0, rest) = out.c.split_at_mut(1);
        let (d1, d2) = rest.split_at_mut(1);
        self.tensor(a, b, level, d0[0].as_mut_slice(), d1[0].as_mut_slice(), d2[0].as_mut_slice());
        Ok(out)
    }

    /// `a * b`, relinearised: a degree-1 ciphertext at scale `a.scale * b.scale` (rescale next).
    pub fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        let (level, scale) = self.product_shape(a, b)?;
        let key = self.relin.as_ref().ok_or(Error::MissingRelinearizationKey)?;
        let mut out = zero_ciphertext(self.n(), 2, level, scale, a.log_slots);
        let mut ws = self.pool.get();
        let mut d2 = std::mem::take(&mut ws.tmp);
        {
            let (d0, d1) = out.c.split_at_mut(1);
            self.tensor(a, b, level, d0[0].as_mut_slice(), d1[0].as_mut_slice(), &mut d2);
            let len = (level + 1) * self.n();
            self.key_switch_add(&d2[..len], level, key, &mut ws, d0[0].as_mut_slice(), d1[0].as_mut_slice());
        }
        ws.tmp = d2;
        Ok(out)
    }

    /// `a * a`, relinearised.
    pub fn square_relin(&self, a: &Ciphertext) -> Result<Ciphertext, Error> {
        self.mul_relin(a, a)
    }

    /// `a * b`, relinearised and rescaled.
    pub fn mul_relin_rescale(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        let mut out = self.mul_relin(a, b)?;
        self.rescale_assign(&mut out)?;
        Ok(out)
    }
}
