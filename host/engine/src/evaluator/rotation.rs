//! Rotations and conjugation: automorphisms `X -> X^g` and a key switch from `phi_g(s)` back to
//! `s`. Every automorphism goes through one hoisted routine: `c_1` is decomposed once and
//! switched with each Galois element's key, held as `phi_g^-1` of itself (a key from `s` to
//! `phi_g^-1(s)`), and `phi_g` is applied to the two results afterwards, a permutation in the
//! evaluation domain (Halevi-Shoup, "Faster Homomorphic Linear Transformations in HElib", CRYPTO
//! 2018, section 5, with the automorphism moved past the key switch as in Bossuat et al.,
//! Eurocrypt 2021): the key inner product reads the digits contiguously. A plain rotation is a
//! hoisted rotation with one step.
//!
//! A step without a key of its own is composed from the keys given: the shortest sequence of
//! keyed steps summing to it modulo the slot count (breadth-first search over the cyclic group
//! of slots, cached per slot count).

use std::collections::VecDeque;
use std::sync::Arc;

use hetune_core::ckks::Ciphertext;
use hetune_core::ring::automorphism::galois_element_conjugate;

use super::{pooled_zero_poly, Evaluator};
use crate::Error;

/// `(step mod N/2, g)` for every Galois element among `gs` that is a power of 5 mod 2N
/// (a rotation), ascending by step.
pub(crate) fn steps_of_keys(gs: impl Iterator<Item = u64>, n: usize) -> Vec<(usize, u64)> {
    let gs: Vec<u64> = gs.collect();
    let m = 2 * n as u64;
    let mut out = Vec::new();
    let mut pow = 1u64;
    for k in 0..n / 2 {
        if gs.contains(&pow) {
            out.push((k, pow));
        }
        pow = pow * 5 % m;
    }
    out
}

/// Shortest compositions of keyed steps for one slot count: `pred[x] = (previous node, index
/// into the evaluator's rotation keys)` on a shortest path from 0 to `x`.
pub(crate) struct RotationPlan {
    slots: usize,
    pred: Vec<(u32, u32)>,
}

const UNREACHED: u32 = u32::MAX;

impl RotationPlan {
    fn new(slots: usize, keys: &[(usize, u64)]) -> Self {
        let mut pred = vec![(UNREACHED, UNREACHED); slots];
        pred[0] = (0, UNREACHED);
        let mut queue = VecDeque::from([0usize]);
        // Keyed steps modulo the slot count, without duplicates (keep the first key per residue).
        let mut edges: Vec<(usize, u32)> = Vec::new();
        for (idx, &(s, _)) in keys.iter().enumerate() {
            let r = s % slots;
            if r != 0 && !edges.iter().any(|&(e, _)| e == r) {
                edges.push((r, idx as u32));
            }
        }
        while let Some(x) = queue.pop_front() {
            for &(r, idx) in &edges {
                let y = (x + r) % slots;
                if y != 0 && pred[y].0 == UNREACHED {
                    pred[y] = (x as u32, idx);
                    queue.push_back(y);
                }
            }
        }
        RotationPlan { slots, pred }
    }

    /// Key indices of a shortest composition reaching `target` (`None` if none does).
    fn path(&self, target: usize) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        let mut x = target % self.slots;
        while x != 0 {
            let (p, idx) = self.pred[x];
            if p == UNREACHED {
                return None;
            }
            out.push(idx);
            x = p as usize;
        }
        out.reverse();
        Some(out)
    }
}

impl Evaluator {
    /// Galois elements of the keyed rotations that compose to `step` for `2^log_slots` slots.
    pub(crate) fn rotation_path(&self, step: i64, log_slots: u32) -> Result<Vec<u64>, Error> {
        let slots = 1usize << log_slots;
        let target = step.rem_euclid(slots as i64) as usize;
        if target == 0 {
            return Ok(Vec::new());
        }
        // A key of its own, the common case, without touching the plan cache.
        if let Some(&(_, g)) = self.rotation_keys.iter().find(|&&(s, _)| s % slots == target) {
            return Ok(vec![g]);
        }
        let plan = {
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            plans.entry(log_slots).or_insert_with(|| Arc::new(RotationPlan::new(slots, &self.rotation_keys))).clone()
        };
        let path = plan.path(target).ok_or(Error::MissingRotationKey { step, slots })?;
        Ok(path.into_iter().map(|idx| self.rotation_keys[idx as usize].1).collect())
    }

    /// Number of key switches a rotation by `step` costs with the keys held (0 for the
    /// identity), or the error naming the step.
    pub fn rotation_cost(&self, step: i64, log_slots: u32) -> Result<usize, Error> {
        Ok(self.rotation_path(step, log_slots)?.len())
    }

    /// Applies the automorphisms `gs` (each with a key) to `ct`, sharing one decomposition of
    /// `c_1` among them.
    pub(crate) fn galois_hoisted(&self, ct: &Ciphertext, gs: &[u64]) -> Result<Vec<Ciphertext>, Error> {
        self.check(ct)?;
        if ct.c.len() != 2 {
            return Err(Error::InvalidArgument("rotate ciphertexts of degree 1 (relinearise first)"));
        }
        let keys = gs
            .iter()
            .map(|&g| {
                self.keys.galois(&self.ctx, g).unwrap_or(Err(if g == galois_element_conjugate(self.n()) {
                    Error::MissingConjugationKey
                } else {
                    Error::MissingGaloisKey(g)
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let level = ct.level;
        let n = self.n();
        let limbs = level + 1;
        let mut ws = self.pool.get();
        let d = ct.c[1].as_slice();
        self.decompose(d, level, &mut ws);
        let mut outs = Vec::with_capacity(gs.len());
        for key in keys {
            // Present for every Galois key (checked when the evaluator was built).
            let perm = key.perm.as_deref().ok_or(Error::InvalidArgument("switching key is not a Galois key"))?;
            // The output is (phi(c_0 + u_0), phi(u_1)), (u_0, u_1) the switch of c_1 with the key
            // held as phi^-1 of itself (see `KeyEntry`), finished limb by limb into it.
            let mut out = Ciphertext {
                c: (0..2).map(|_| pooled_zero_poly(n, limbs)).collect(),
                level,
                scale: ct.scale,
                log_slots: ct.log_slots,
            };
            let (o0, o1) = out.c.split_at_mut(1);
            self.switch_decomposed(
                d,
                level,
                &key,
                None,
                &mut ws,
                o0[0].as_mut_slice(),
                o1[0].as_mut_slice(),
                Some((ct.c[0].as_slice(), perm)),
            );
            outs.push(out);
        }
        Ok(outs)
    }

    /// Rotates the slots left by `step` (negative: right), modulo the ciphertext's slot count,
    /// with the step's own key or a composition of the keys held.
    pub fn rotate(&self, ct: &Ciphertext, step: i64) -> Result<Ciphertext, Error> {
        self.check(ct)?;
        let path = self.rotation_path(step, ct.log_slots)?;
        let mut cur: Option<Ciphertext> = None;
        for g in path {
            let from = cur.as_ref().unwrap_or(ct);
            cur = Some(self.galois_hoisted(from, &[g])?.pop().ok_or(Error::InvalidArgument("empty rotation"))?);
        }
        Ok(cur.unwrap_or_else(|| ct.clone()))
    }

    /// Rotations of one ciphertext by many steps, sharing one decomposition (hoisting). Steps
    /// that need a composition share the decomposition for their first hop.
    pub fn rotate_hoisted(&self, ct: &Ciphertext, steps: &[i64]) -> Result<Vec<Ciphertext>, Error> {
        self.check(ct)?;
        let paths = steps.iter().map(|&s| self.rotation_path(s, ct.log_slots)).collect::<Result<Vec<_>, _>>()?;
        let firsts: Vec<u64> = paths.iter().filter_map(|p| p.first().copied()).collect();
        let mut first_done = self.galois_hoisted(ct, &firsts)?.into_iter();
        let mut out = Vec::with_capacity(steps.len());
        for path in &paths {
            let mut cur = match path.first() {
                None => ct.clone(),
                Some(_) => first_done.next().ok_or(Error::InvalidArgument("hoisting lost a rotation"))?,
            };
            for &g in path.iter().skip(1) {
                cur = self.galois_hoisted(&cur, &[g])?.pop().ok_or(Error::InvalidArgument("empty rotation"))?;
            }
            out.push(cur);
        }
        Ok(out)
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&self, ct: &Ciphertext) -> Result<Ciphertext, Error> {
        let g = galois_element_conjugate(self.n());
        if !self.keys.has_galois(g) {
            return Err(Error::MissingConjugationKey);
        }
        self.galois_hoisted(ct, &[g])?.pop().ok_or(Error::InvalidArgument("empty conjugation"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hetune_core::ckks::{decrypt, encrypt_sk, Complex, Encoder};
    use hetune_core::ring::automorphism::{automorphism_eval, galois_element_for_step};
    use hetune_core::ring::RnsPoly;
    use hetune_core::rlwe::{Context, SecretKey};
    use hetune_core::{Parameters, Security};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::super::keys::KeyEntry;
    use super::super::{zero_ciphertext, EvaluationKeys, Evaluator, KeyRequest};

    /// The hoisted path (the automorphism applied to the decomposition of `c_1`) against the
    /// textbook one (the automorphism applied to `c_1`, then a key switch): the two differ only
    /// by key-switching noise.
    #[test]
    fn hoisted_path_agrees_with_textbook_key_switch() {
        let params = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let ctx = Arc::new(Context::new(params).unwrap());
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let spec = KeyRequest { relinearization: false, rotations: vec![5], conjugation: false, encapsulation: None };
        let keys = EvaluationKeys::generate(&ctx, &sk, &spec, &mut rng).unwrap();
        let g = galois_element_for_step(5, ctx.n());
        // The textbook key switch takes the key as generated (from phi(s) to s), not as the
        // evaluator holds it (phi^-1 of itself).
        let key = KeyEntry::prepare(&ctx, keys.galois[&g].clone(), false).unwrap();
        let ev = Evaluator::new(ctx.clone(), keys).unwrap();
        let n = ctx.n();
        let enc = Encoder::new(&ctx);
        let vals: Vec<Complex> = (0..n / 2).map(|j| Complex::new((j as f64).sin(), (j as f64 * 0.5).cos())).collect();
        let level = 5;
        let pt = enc.encode_complex(&vals, ctx.params().log_n() - 1, level, ctx.params().scale()).unwrap();
        let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);

        let perm = key.perm.as_deref().unwrap();
        let mut textbook = zero_ciphertext(n, 2, level, ct.scale, ct.log_slots);
        let mut phi_c1 = RnsPoly::zero(n, level + 1);
        for i in 0..=level {
            automorphism_eval(ct.c[0].limb(i), perm, textbook.c[0].limb_mut(i));
            automorphism_eval(ct.c[1].limb(i), perm, phi_c1.limb_mut(i));
        }
        let mut ws = ev.pool.get();
        let (o0, o1) = textbook.c.split_at_mut(1);
        ev.key_switch_add(phi_c1.as_slice(), level, &key, &mut ws, o0[0].as_mut_slice(), o1[0].as_mut_slice());
        drop(ws);

        let hoisted = ev.rotate(&ct, 5).unwrap();
        let a = enc.plaintext_coeffs(&decrypt(&ctx, &sk, &textbook).unwrap()).unwrap();
        let b = enc.plaintext_coeffs(&decrypt(&ctx, &sk, &hoisted).unwrap()).unwrap();
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) * ct.scale;
        // Key-switching noise is a few hundred per coefficient at N = 2^12; a wrong automorphism
        // would differ by about the scale.
        assert!(diff < 1024.0, "coefficients differ by {diff}");
        let rotated: Vec<Complex> = (0..n / 2).map(|j| vals[(j + 5) % (n / 2)]).collect();
        let got = enc.decode_complex(&decrypt(&ctx, &sk, &textbook).unwrap()).unwrap();
        let err =
            rotated.iter().zip(&got).map(|(x, y)| (x.re - y.re).abs().max((x.im - y.im).abs())).fold(0.0, f64::max);
        assert!(err < 2f64.powi(-24), "textbook rotation error {err:e}");
    }
}
