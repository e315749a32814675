//! Linear transformations of the slot vector given by generalised diagonals, evaluated with the
//! baby-step giant-step diagonal method and hoisted baby rotations (Halevi-Shoup 2014;
//! Bossuat et al., Eurocrypt 2021, sec. 3.3). A planner reports the rotation keys it needs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use hetune_core::ckks::encoder::{coeffs_to_limb, encode_coeffs};
use hetune_core::ckks::{Ciphertext, Complex};
use hetune_core::ring::dot::{key_inner_product, KeyDigits};
use hetune_core::ring::elementwise;
use hetune_core::ring::montgomery::Montgomery;
use rayon::prelude::*;

use crate::evaluator::{Evaluator, GiantTerms};
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

/// The baby-step size (a power of two up to `slots`) that minimises the rotations of a matrix
/// with diagonals at `offsets`: distinct baby steps plus distinct giant steps.
pub fn baby_step_for(offsets: impl Iterator<Item = usize> + Clone, slots: usize) -> usize {
    let mut best = (usize::MAX, 1usize);
    let mut n1 = 1;
    while n1 <= slots {
        let babies: BTreeSet<usize> = offsets.clone().map(|k| k % n1).collect();
        let giants: BTreeSet<usize> = offsets.clone().map(|k| k / n1).collect();
        let cost = babies.len() + giants.len();
        if cost < best.0 {
            best = (cost, n1);
        }
        n1 *= 2;
    }
    best.1
}

/// A matrix prepared for homomorphic evaluation: its diagonals split as `k = g n1 + j`.
#[derive(Clone, Debug)]
pub struct LinearTransform {
    diags: Diagonals,
    log_slots: u32,
    n1: usize,
    /// The diagonals as the products use them, for the last (level, plaintext scale) evaluated:
    /// pre-rotated, encoded over `Q_l` or `Q_l ∪ P` (the `level + 1` Q limbs, then the P limbs
    /// when the products are double-hoisted), in evaluation form and in Montgomery form (times 2^64), by
    /// index `k`. Encoding is most of a transform's cost outside the rotations, and a
    /// bootstrapping circuit evaluates each transform at the same level and scale every time.
    /// One entry at a time bounds the memory to one encoding of the matrix.
    encoded: Arc<Mutex<Option<EncodedDiagonals>>>,
}

/// One encoding of a matrix's diagonals (see [`LinearTransform`]).
#[derive(Debug)]
struct EncodedDiagonals {
    level: usize,
    scale_bits: u64,
    /// Whether the P limbs (for double hoisting) follow the Q limbs.
    with_p: bool,
    diags: Arc<HashMap<usize, Vec<u64>>>,
}

impl LinearTransform {
    /// Prepares `diags` for ciphertexts of `2^log_slots` slots, choosing the baby-step size that
    /// minimises the number of rotations.
    pub fn new(diags: Diagonals, log_slots: u32) -> Result<Self, Error> {
        if diags.slots != 1 << log_slots {
            return Err(Error::InvalidArgument("matrix size differs from the slot count"));
        }
        let n1 = baby_step_for(diags.diags.keys().copied(), diags.slots);
        Ok(LinearTransform { diags, log_slots, n1, encoded: Arc::new(Mutex::new(None)) })
    }

    /// The baby-step size `n1` (diagonal `k` is rotated by `k mod n1`, then by `k - k mod n1`).
    pub fn baby_step(&self) -> usize {
        self.n1
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

    /// Bytes of the encoded diagonals held in the cache (0 before the first evaluation).
    pub fn cached_bytes(&self) -> usize {
        let cache = self.encoded.lock().unwrap_or_else(|e| e.into_inner());
        cache.as_ref().map_or(0, |e| e.diags.values().map(|d| d.len() * 8).sum())
    }

    /// The diagonals at `level` and `pt_scale` in the form [`Self::evaluate`] multiplies by,
    /// from the cache when they were encoded there last.
    fn encoded_diagonals(
        &self,
        ev: &Evaluator,
        level: usize,
        pt_scale: f64,
        with_p: bool,
    ) -> Result<Arc<HashMap<usize, Vec<u64>>>, Error> {
        let mut cache = self.encoded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = cache.as_ref() {
            if e.level == level && e.scale_bits == pt_scale.to_bits() && (e.with_p || !with_p) {
                return Ok(e.diags.clone());
            }
        }
        // Drop the old encoding before making the new one.
        *cache = None;
        let ctx = ev.context().clone();
        let n = self.diags.slots;
        let n_ring = ctx.n();
        let q_len = ctx.q_len();
        let p_limbs = if with_p { q_len..ctx.qp().len() } else { 0..0 };
        let moduli: Vec<usize> = (0..=level).chain(p_limbs).collect();
        let split = self.split();
        let jobs: Vec<(usize, usize)> = split.iter().flat_map(|(&g, bs)| bs.iter().map(move |&b| (g, b))).collect();
        let encoded: Result<HashMap<usize, Vec<u64>>, Error> = jobs
            .par_iter()
            .map(|&(g, b)| {
                let d = &self.diags.diags[&(g + b)];
                // Pre-rotated right by g so the giant rotation can come last.
                let value = |i: usize| d[(i + n - g % n) % n];
                let mut coeffs = vec![0f64; n_ring];
                encode_coeffs(self.log_slots, pt_scale, n, value, &mut coeffs)?;
                let mut out = vec![0u64; moduli.len() * n_ring];
                for (limb, &gi) in out.chunks_exact_mut(n_ring).zip(&moduli) {
                    let q = &ctx.qp()[gi];
                    coeffs_to_limb(&coeffs, q, limb);
                    ctx.ntt()[gi].forward(limb);
                    let r = q.reduce_u128(1u128 << 64);
                    elementwise::mul_shoup_assign(q, limb, r, q.shoup(r));
                }
                Ok((g + b, out))
            })
            .collect();
        let encoded = Arc::new(encoded?);
        *cache = Some(EncodedDiagonals { level, scale_bits: pt_scale.to_bits(), with_p, diags: encoded.clone() });
        Ok(encoded)
    }

    /// `M ct`, consuming one level; the result has exactly `out_scale`. The diagonals are encoded
    /// at the scale `out_scale * q_l / ct.scale`, so large matrix entries lose no precision.
    ///
    /// The baby rotations share one decomposition and are rotated one by one. Double hoisting
    /// ([`Self::evaluate_with`]) measured no faster at `n16-boot` (CoeffToSlot's 63-diagonal
    /// matrix at the top level, 2 threads: 2.31 s against 2.24 s, medians of 3, alternated in one
    /// process, `examples/dh_profile.rs`) while its diagonals take `alpha` more limbs each, so it
    /// is not the default.
    pub fn evaluate(&self, ev: &Evaluator, ct: &Ciphertext, out_scale: f64) -> Result<Ciphertext, Error> {
        self.evaluate_with(ev, ct, out_scale, false)
    }

    /// [`Self::evaluate`], choosing whether to double-hoist the baby rotations (when a baby step
    /// has no key of its own, they are rotated one by one anyway).
    pub fn evaluate_with(
        &self,
        ev: &Evaluator,
        ct: &Ciphertext,
        out_scale: f64,
        double_hoisting: bool,
    ) -> Result<Ciphertext, Error> {
        if ct.log_slots != self.log_slots {
            return Err(Error::SlotCountMismatch { left: ct.log_slots, right: self.log_slots });
        }
        if ct.level == 0 {
            return Err(Error::LevelExhausted { op: "linear transform", level: 0 });
        }
        if !double_hoisting {
            return Self::evaluate_sum(ev, &[(self, ct)], out_scale);
        }
        let level = ct.level;
        let pt_scale = out_scale * ev.rescale_scale(level) / ct.scale;
        let split = self.split();
        let babies: Vec<i64> = {
            let set: BTreeSet<usize> = split.values().flatten().copied().collect();
            set.into_iter().map(|b| b as i64).collect()
        };
        let giants: Vec<(usize, Vec<usize>)> = split.into_iter().collect();
        let diags = self.encoded_diagonals(ev, level, pt_scale, true)?;
        let baby_index: BTreeMap<i64, usize> = babies.iter().enumerate().map(|(i, &b)| (b, i)).collect();
        let terms: Vec<GiantTerms<'_>> = giants
            .iter()
            .map(|(g, bs)| bs.iter().map(|&b| (baby_index[&(b as i64)], diags[&(g + b)].as_slice())).collect())
            .collect();
        let partial: Vec<Result<Ciphertext, Error>> = match ev.baby_sums_double_hoisted(ct, &babies, &terms)? {
            // Double hoisting: the giant sums come back from the extended basis; each is
            // rotated by its giant step.
            Some(sums) => sums
                .into_par_iter()
                .zip(giants.par_iter())
                .map(|(mut acc, (g, _))| {
                    acc.scale = ct.scale * pt_scale;
                    if *g != 0 {
                        acc = ev.rotate(&acc, *g as i64)?;
                    }
                    Ok(acc)
                })
                .collect(),
            // A baby step without a key of its own: single hoisting.
            None => return Self::evaluate_sum(ev, &[(self, ct)], out_scale),
        };
        sum_rescaled(ev, partial, out_scale)
    }

    /// `sum_i M_i ct_i`, consuming one level, with single-hoisted baby rotations: the
    /// ciphertexts (same level, scale and slot count) each rotate by their own baby steps, and
    /// every giant step sums the products of all of them before its one rotation, so a sum of
    /// `t` matrices costs the giant rotations of one. The matrices must share their baby-step
    /// size (true of matrices with the same diagonal offsets). The result has exactly
    /// `out_scale`.
    pub fn evaluate_sum(
        ev: &Evaluator,
        parts: &[(&LinearTransform, &Ciphertext)],
        out_scale: f64,
    ) -> Result<Ciphertext, Error> {
        let (first_t, first_ct) = *parts.first().ok_or(Error::InvalidArgument("empty sum of matrices"))?;
        for &(t, ct) in parts {
            if ct.log_slots != t.log_slots {
                return Err(Error::SlotCountMismatch { left: ct.log_slots, right: t.log_slots });
            }
            if ct.level != first_ct.level || ct.scale.to_bits() != first_ct.scale.to_bits() {
                return Err(Error::InvalidArgument("a sum of matrix products needs inputs of one level and scale"));
            }
            if t.n1 != first_t.n1 {
                return Err(Error::InvalidArgument("a sum of matrix products needs one baby-step size"));
            }
        }
        let ct0 = first_ct;
        if ct0.level == 0 {
            return Err(Error::LevelExhausted { op: "linear transform", level: 0 });
        }
        let level = ct0.level;
        let pt_scale = out_scale * ev.rescale_scale(level) / ct0.scale;
        let ctx = ev.context().clone();
        let n_ring = ctx.n();
        struct Part {
            rotated: Vec<Ciphertext>,
            baby_index: BTreeMap<usize, usize>,
            diags: Arc<HashMap<usize, Vec<u64>>>,
            split: BTreeMap<usize, Vec<usize>>,
        }
        let mut prepared = Vec::with_capacity(parts.len());
        let mut giants: BTreeSet<usize> = BTreeSet::new();
        for &(t, ct) in parts {
            let split = t.split();
            giants.extend(split.keys().copied());
            let babies: BTreeSet<usize> = split.values().flatten().copied().collect();
            let babies: Vec<usize> = babies.into_iter().collect();
            let diags = t.encoded_diagonals(ev, level, pt_scale, false)?;
            let steps: Vec<i64> = babies.iter().map(|&b| b as i64).collect();
            let rotated = ev.rotate_hoisted(ct, &steps)?;
            let baby_index = babies.iter().enumerate().map(|(i, &b)| (b, i)).collect();
            prepared.push(Part { rotated, baby_index, diags, split });
        }
        let giants: Vec<usize> = giants.into_iter().collect();
        let partial: Vec<Result<Ciphertext, Error>> = giants
            .par_iter()
            .map(|&g| {
                // sum over parts and babies of rot_b(ct) * diag_{g+b} per limb: the diagonals are
                // in Montgomery form, so the key inner product's kernel (two dot products sharing
                // a left operand, reduced once per coefficient) gives the plain products' sum.
                let terms: Vec<(&Part, usize)> =
                    prepared.iter().flat_map(|p| p.split.get(&g).into_iter().flatten().map(move |&b| (p, b))).collect();
                let mut acc = crate::evaluator::zero_ciphertext(n_ring, 2, level, ct0.scale * pt_scale, ct0.log_slots);
                let (a0, a1) = acc.c.split_at_mut(1);
                a0[0].as_mut_slice()[..(level + 1) * n_ring]
                    .par_chunks_exact_mut(n_ring)
                    .zip(a1[0].as_mut_slice()[..(level + 1) * n_ring].par_chunks_exact_mut(n_ring))
                    .enumerate()
                    .for_each(|(i, (o0, o1))| {
                        let limb = i * n_ring..(i + 1) * n_ring;
                        let x: Vec<&[u64]> = terms.iter().map(|(p, b)| &p.diags[&(g + b)][limb.clone()]).collect();
                        let rot = |c: usize| -> Vec<&[u64]> {
                            terms.iter().map(|(p, b)| p.rotated[p.baby_index[b]].c[c].limb(i)).collect()
                        };
                        let (kb, ka) = (rot(0), rot(1));
                        let q = &ctx.q()[i];
                        let d = KeyDigits { x: &x, perm: None, kb: &kb, ka: &ka };
                        key_inner_product(q, &Montgomery::new(q), &d, 0, o0, o1);
                    });
                if g != 0 {
                    acc = ev.rotate(&acc, g as i64)?;
                }
                Ok(acc)
            })
            .collect();
        sum_rescaled(ev, partial, out_scale)
    }
}

/// The sum of a transform's giant-step terms, rescaled once and set to exactly `out_scale`.
fn sum_rescaled(ev: &Evaluator, partial: Vec<Result<Ciphertext, Error>>, out_scale: f64) -> Result<Ciphertext, Error> {
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
