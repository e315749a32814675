//! Operation counters of the encrypted matrix products, in HETAL's units: `CMult` (a plaintext
//! mask times a ciphertext), `Mult` (a ciphertext-ciphertext product; relinearisation is shared
//! by products summed before it), `Rot` (a slot rotation, however it is hoisted) and `Conj`
//! (a conjugation; HETAL's table counts none, see [`crate::learning::diag_abt`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpCounts {
    /// Plaintext (mask) multiplications.
    pub cmult: u64,
    /// Ciphertext multiplications.
    pub mult: u64,
    /// Rotations.
    pub rot: u64,
    /// Conjugations.
    pub conj: u64,
}

impl OpCounts {
    /// `(CMult, Mult, Rot)`, the triple of HETAL's table.
    pub fn triple(&self) -> (u64, u64, u64) {
        (self.cmult, self.mult, self.rot)
    }
}

impl std::ops::Sub for OpCounts {
    type Output = OpCounts;
    fn sub(self, o: OpCounts) -> OpCounts {
        OpCounts {
            cmult: self.cmult - o.cmult,
            mult: self.mult - o.mult,
            rot: self.rot - o.rot,
            conj: self.conj - o.conj,
        }
    }
}

impl std::fmt::Display for OpCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {} / {}", self.cmult, self.mult, self.rot)?;
        if self.conj > 0 {
            write!(f, " (+{} conj)", self.conj)?;
        }
        Ok(())
    }
}

/// Thread-safe counters, incremented by the backends as operations run.
#[derive(Debug, Default)]
pub struct Counter {
    cmult: AtomicU64,
    mult: AtomicU64,
    rot: AtomicU64,
    conj: AtomicU64,
}

impl Counter {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> OpCounts {
        OpCounts {
            cmult: self.cmult.load(Ordering::Relaxed),
            mult: self.mult.load(Ordering::Relaxed),
            rot: self.rot.load(Ordering::Relaxed),
            conj: self.conj.load(Ordering::Relaxed),
        }
    }

    /// Sets every count to zero.
    pub fn reset(&self) {
        for c in [&self.cmult, &self.mult, &self.rot, &self.conj] {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_cmult(&self, n: u64) {
        self.cmult.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_mult(&self, n: u64) {
        self.mult.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_rot(&self, n: u64) {
        self.rot.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_conj(&self, n: u64) {
        self.conj.fetch_add(n, Ordering::Relaxed);
    }
}
