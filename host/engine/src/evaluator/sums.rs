//! Rotate-and-sum: sums of slots in strides and replication, by repeated doubling
//! (`log2(count)` rotations for a power-of-two count, at most twice that otherwise).

use hetune_core::ckks::Ciphertext;

use super::Evaluator;
use crate::Error;

impl Evaluator {
    /// Slot `i` of the result is `sum_{k < count} ct[i + k * stride]` (indices modulo the slot
    /// count; a negative stride walks right). With stride 1 and count = slots, every slot holds
    /// the sum of all slots.
    pub fn inner_sum(&self, ct: &Ciphertext, stride: i64, count: usize) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        if count == 0 {
            return Err(Error::InvalidArgument("inner_sum needs a count of at least 1"));
        }
        // Doubling: `block` holds the sum of `width` consecutive strided terms; the bits of
        // `count` pick which blocks enter the result, each shifted past the terms already in it.
        let mut block = ct.clone();
        let mut width = 1usize;
        let mut acc: Option<Ciphertext> = None;
        let mut done = 0usize;
        let mut rest = count;
        while rest > 0 {
            if rest & 1 == 1 {
                let shifted = if done == 0 { block.clone() } else { self.rotate(&block, stride * done as i64)? };
                acc = Some(match acc {
                    None => shifted,
                    Some(a) => self.add(&a, &shifted)?,
                });
                done += width;
            }
            rest >>= 1;
            if rest > 0 {
                let r = self.rotate(&block, stride * width as i64)?;
                self.add_assign(&mut block, &r)?;
                width *= 2;
            }
        }
        acc.ok_or(Error::InvalidArgument("inner_sum needs a count of at least 1"))
    }

    /// Slot `i` of the result is `sum_{k < count} ct[i - k * stride]`: the inverse direction of
    /// [`Evaluator::inner_sum`]. Replicates a value held in one slot (others zero) into `count`
    /// slots `stride` apart.
    pub fn replicate(&self, ct: &Ciphertext, stride: i64, count: usize) -> Result<Ciphertext, Error> {
        self.inner_sum(ct, -stride, count)
    }

    /// Every slot holds the sum of all slots.
    pub fn sum_slots(&self, ct: &Ciphertext) -> Result<Ciphertext, Error> {
        self.inner_sum(ct, 1, 1usize << ct.log_slots)
    }
}
