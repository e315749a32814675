//! Linear transformations of the slot vector given by generalised diagonals, evaluated with the
//! baby-step giant-step diagonal method and hoisted baby rotations (Halevi-Shoup 2014;
//! Bossuat et al., Eurocrypt 2021, sec. 3.3). A planner reports the rotation keys it needs.

use std::collections::{BTreeMap, BTreeSet};

use hetune_core::ckks::{Ciphertext, Complex, Encoder};
use rayon::prelude::*;

use crate::evaluator::Evaluator;
use crate::Error;

fn cmul(a: Complex, b: Complex) -> Complex {
    Complex::new(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re)
}

fn cadd(a: Complex, b: Complex) -> Complex {
    Complex::new(a.re + b.re, a.im + b.im)
}

/// A square `slots x slots` matrix by its non-zero generalised diagonals:
/// `diag[k][i] = M[i][(i + k) mod slots]`, so `(M v)[i] = sum_k diag[k][i] v[i + k]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagonals {
    /// Dimension.
    pub slots: usize,
    /// Diagonals by offset.
    pub diags: BTreeMap<usize, Vec<Complex>>,
}

impl Diagonals {
    /// The diagonals of a dense row-major matrix (zero diagonals dropped).
    pub fn from_dense(m: &[Vec<Complex>]) -> Self {
        let n = m.len();
        let mut diags = BTreeMap::new();
        for k in 0..n {
            let d: Vec<Complex> = (0..n).map(|i| m[i][(i + k) % n]).collect();
            if d.iter().any(|c| c.re != 0.0 || c.im != 0.0) {
                diags.insert(k, d);
            }
        }
        Diagonals { slots: n, diags }
    }

    /// `M v` in the clear (the reference for tests).
    pub fn apply(&self, v: &[Complex]) -> Vec<Complex> {
        let n = self.slots;
        let mut out = vec![Complex::default(); n];
        for (&k, d) in &self.diags {
            for i in 0..n {
                out[i] = cadd(out[i], cmul(d[i], v[(i + k) % n]));
            }
        }
        out
    }

    /// `self * other` (apply `other` first).
    pub fn compose(&self, other: &Diagonals) -> Diagonals {
        let n = self.slots;
        let mut diags: BTreeMap<usize, Vec<Complex>> = BTreeMap::new();
        for (&k1, a) in &self.diags {
            for (&k2, b) in &other.diags {
                let k = (k1 + k2) % n;
                let d = diags.entry(k).or_insert_with(|| vec![Complex::default(); n]);
                for i in 0..n {
                    d[i] = cadd(d[i], cmul(a[i], b[(i + k1) % n]));
                }
            }
        }
        diags.retain(|_, d| d.iter().any(|c| c.re.abs() + c.im.abs() > 1e-300));
        Diagonals { slots: n, diags }
    }

    /// Multiplies every entry by `c`.
    pub fn scale(&mut self, c: f64) {
        for d in self.diags.values_mut() {
            for x in d.iter_mut() {
                x.re *= c;
                x.im *= c;
            }
        }
    }
}

/// A matrix prepared for homomorphic evaluation: its diagonals split as `k = g n1 + j`.
#[derive(Clone, Debug)]
pub struct LinearTransform {
    diags: Diagonals,
    log_slots: u32,
    n1: usize,
}

impl LinearTransform {
    /// Prepares `diags` for ciphertexts of `2^log_slots` slots, choosing the baby-step size that
    /// minimises the number of rotations.
    pub fn new(diags: Diagonals, log_slots: u32) -> Result<Self, Error> {
        if diags.slots != 1 << log_slots {
            return Err(Error::InvalidArgument("matrix size differs from the slot count"));
        }
        let n = diags.slots;
        let mut best = (usize::MAX, 1usize);
        let mut n1 = 1;
        while n1 <= n {
            let babies: BTreeSet<usize> = diags.diags.keys().map(|k| k % n1).collect();
            let giants: BTreeSet<usize> = diags.diags.keys().map(|k| k / n1).collect();
            let cost = babies.len() + giants.len();
            if cost < best.0 {
                best = (cost, n1);
            }
            n1 *= 2;
        }
        Ok(LinearTransform { diags, log_slots, n1: best.1 })
    }

    /// The matrix.
    pub fn diagonals(&self) -> &Diagonals {
        &self.diags
    }

    fn split(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut by_giant: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in self.diags.diags.keys() {
            by_giant.entry(k / self.n1 * self.n1).or_default().push(k % self.n1);
        }
        by_giant
    }

    /// The rotation steps the evaluation uses (keys to generate).
    pub fn rotations(&self) -> Vec<i64> {
        let mut steps: BTreeSet<i64> = BTreeSet::new();
        for (g, babies) in self.split() {
            if g != 0 {
                steps.insert(g as i64);
            }
            for b in babies {
                if b != 0 {
                    steps.insert(b as i64);
                }
            }
        }
        steps.into_iter().collect()
    }

    /// `M ct`, consuming one level; the result has exactly `out_scale`. The diagonals are encoded
    /// at the scale `out_scale * q_l / ct.scale`, so large matrix entries lose no precision.
    pub fn evaluate(&self, ev: &Evaluator, ct: &Ciphertext, out_scale: f64) -> Result<Ciphertext, Error> {
        if ct.log_slots != self.log_slots {
            return Err(Error::SlotCountMismatch { left: ct.log_slots, right: self.log_slots });
        }
        if ct.level == 0 {
            return Err(Error::LevelExhausted { op: "linear transform", level: 0 });
        }
        let n = self.diags.slots;
        let level = ct.level;
        let pt_scale = out_scale * ev.rescale_scale(level) / ct.scale;
        let split = self.split();
        let babies: Vec<i64> = {
            let set: BTreeSet<usize> = split.values().flatten().copied().collect();
            set.into_iter().map(|b| b as i64).collect()
        };
        let rotated = ev.rotate_hoisted(ct, &babies)?;
        let baby_index: BTreeMap<i64, usize> = babies.iter().enumerate().map(|(i, &b)| (b, i)).collect();
        let ctx = ev.context().clone();
        let encoder = Encoder::new(&ctx);
        let giants: Vec<(usize, Vec<usize>)> = split.into_iter().collect();
        let moduli = &ctx.q()[..=level];
        let partial: Vec<Result<Ciphertext, Error>> = giants
            .par_iter()
            .map(|(g, bs)| {
                // Sum of rotated ciphertexts times diagonals, with 128-bit lazy accumulation:
                // one reduction per coefficient instead of one per product.
                let mut acc = LazyAcc::new(ctx.n(), level + 1);
                for &b in bs {
                    let d = &self.diags.diags[&(g + b)];
                    // Pre-rotate the diagonal right by g so the giant rotation can come last.
                    let shifted: Vec<Complex> = (0..n).map(|i| d[(i + n - g % n) % n]).collect();
                    let pt = encoder.encode_complex(&shifted, self.log_slots, level, pt_scale)?;
                    acc.mul_add(&rotated[baby_index[&(b as i64)]], &pt.poly, moduli);
                }
                let mut acc = acc.finish(moduli, ct.scale * pt_scale, ct.log_slots);
                if *g != 0 {
                    acc = ev.rotate(&acc, *g as i64)?;
                }
                Ok(acc)
            })
            .collect();
        let mut out: Option<Ciphertext> = None;
        for p in partial {
            let p = p?;
            match out.as_mut() {
                None => out = Some(p),
                Some(o) => ev.add_assign(o, &p)?,
            }
        }
        let mut out = out.ok_or(Error::InvalidArgument("empty matrix"))?;
        ev.rescale_assign(&mut out)?;
        ev.snap_scale(&mut out, out_scale)?;
        Ok(out)
    }
}

/// `sum_k ct_k * pt_k` over one level's limbs, products accumulated in 128 bits and reduced
/// every 15 terms (products are below 2^124).
struct LazyAcc {
    n: usize,
    acc: [Vec<u128>; 2],
    terms: usize,
}

impl LazyAcc {
    fn new(n: usize, limbs: usize) -> Self {
        LazyAcc { n, acc: [vec![0u128; n * limbs], vec![0u128; n * limbs]], terms: 0 }
    }

    fn mul_add(&mut self, ct: &Ciphertext, pt: &hetune_core::ring::RnsPoly, moduli: &[hetune_core::ring::Modulus]) {
        let n = self.n;
        let fold = self.terms % 15 == 14;
        for (acc, c) in self.acc.iter_mut().zip(&ct.c) {
            for (i, q) in moduli.iter().enumerate() {
                let a = &mut acc[i * n..(i + 1) * n];
                let x = &c.limb(i)[..n];
                let y = &pt.limb(i)[..n];
                for ((s, &u), &v) in a.iter_mut().zip(x).zip(y) {
                    *s += u as u128 * v as u128;
                }
                if fold {
                    for s in a.iter_mut() {
                        *s = q.reduce_u128(*s) as u128;
                    }
                }
            }
        }
        self.terms += 1;
    }

    fn finish(self, moduli: &[hetune_core::ring::Modulus], scale: f64, log_slots: u32) -> Ciphertext {
        let n = self.n;
        let limbs = moduli.len();
        let c = self
            .acc
            .iter()
            .map(|acc| {
                let mut p = hetune_core::ring::RnsPoly::zero(n, limbs);
                for (i, q) in moduli.iter().enumerate() {
                    for (o, &s) in p.limb_mut(i).iter_mut().zip(&acc[i * n..(i + 1) * n]) {
                        *o = q.reduce_u128(s);
                    }
                }
                p
            })
            .collect();
        Ciphertext { c, level: limbs - 1, scale, log_slots }
    }
}
