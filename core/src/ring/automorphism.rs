//! Automorphisms `X -> X^g` of `Z_q[X]/(X^N + 1)` for odd `g`, in both representations.

use alloc::vec::Vec;

use super::modulus::Modulus;
use super::ntt::{bit_reverse, eval_exponent};

/// Galois element of a left rotation by `step` slots: `5^step mod 2N` (negative steps rotate right).
pub fn galois_element_for_step(step: i64, n: usize) -> u64 {
    let m = 2 * n as u64;
    let slots = (n / 2) as i64;
    let k = step.rem_euclid(slots) as u64;
    let mut r = 1u64;
    let mut b = 5u64;
    let mut e = k;
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % m;
        }
        b = b * b % m;
        e >>= 1;
    }
    r
}

/// Galois element of complex conjugation of the slots: `2N - 1`.
pub fn galois_element_conjugate(n: usize) -> u64 {
    2 * n as u64 - 1
}

/// Applies `X -> X^g` to one limb in coefficient form: `out[i*g mod 2N] = +-a[i]`.
pub fn automorphism_coeff(a: &[u64], g: u64, q: &Modulus, out: &mut [u64]) {
    let n = a.len();
    let mask = 2 * n - 1;
    let g = g as usize;
    for (i, &c) in a.iter().enumerate() {
        let t = (i * g) & mask;
        if t < n {
            out[t] = c;
        } else {
            out[t - n] = q.neg(c);
        }
    }
}

/// Applies `X -> X^g` to small signed coefficients (a secret key, say).
pub fn automorphism_small(a: &[i8], g: u64, out: &mut [i8]) {
    let n = a.len();
    let mask = 2 * n - 1;
    let g = g as usize;
    for (i, &c) in a.iter().enumerate() {
        let t = (i * g) & mask;
        if t < n {
            out[t] = c;
        } else {
            out[t - n] = -c;
        }
    }
}

/// Index permutation for `X -> X^g` in the evaluation domain: `out[j] = a[perm[j]]`.
pub fn automorphism_eval_permutation(g: u64, n: usize) -> Vec<u32> {
    let log_n = n.trailing_zeros();
    let mask = 2 * n - 1;
    (0..n)
        .map(|j| {
            // (phi_g a)(psi^e) = a(psi^(e g)); find the slot holding exponent e*g.
            let e = (eval_exponent(j, log_n) * g as usize) & mask;
            bit_reverse((e - 1) / 2, log_n) as u32
        })
        .collect()
}

/// Applies an evaluation-domain permutation from [`automorphism_eval_permutation`].
#[inline]
pub fn automorphism_eval(a: &[u64], perm: &[u32], out: &mut [u64]) {
    for (o, &p) in out.iter_mut().zip(perm) {
        *o = a[p as usize];
    }
}
