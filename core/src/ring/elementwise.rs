//! Coefficient-wise arithmetic on one limb (residues modulo one prime): the loops that every
//! polynomial and ciphertext operation shares. With the `simd` feature they run on AVX-512 when
//! the processor has it (products through IFMA, see [`super::simd`]), with the same results.

use super::modulus::Modulus;

/// Runs `f` with the vector features enabled when they are available (plain loops compiled
/// for AVX-512), else as it is; the results are the same either way.
#[inline(always)]
fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(all(feature = "simd", target_arch = "x86_64"))]
    if let Some(s) = super::simd::ifma() {
        return super::simd::with_features(s, f);
    }
    f()
}

/// `a[t] = a[t] + b[t] mod q`.
pub fn add_assign(q: &Modulus, a: &mut [u64], b: &[u64]) {
    vectorized(
        #[inline(always)]
        || a.iter_mut().zip(b).for_each(|(x, &y)| *x = q.add(*x, y)),
    )
}

/// `a[t] = a[t] - b[t] mod q`.
pub fn sub_assign(q: &Modulus, a: &mut [u64], b: &[u64]) {
    vectorized(
        #[inline(always)]
        || a.iter_mut().zip(b).for_each(|(x, &y)| *x = q.sub(*x, y)),
    )
}

/// `out[t] = a[t] + b[t] mod q`: [`add_assign`] into a third buffer (one pass, no copy first).
pub fn add_into(q: &Modulus, out: &mut [u64], a: &[u64], b: &[u64]) {
    vectorized(
        #[inline(always)]
        || out.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = q.add(x, y)),
    )
}

/// `out[t] = a[t] - b[t] mod q`.
pub fn sub_into(q: &Modulus, out: &mut [u64], a: &[u64], b: &[u64]) {
    vectorized(
        #[inline(always)]
        || out.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = q.sub(x, y)),
    )
}

/// `a[t] = a[t] - c mod q` for a residue `c`.
pub fn sub_scalar_assign(q: &Modulus, a: &mut [u64], c: u64) {
    vectorized(
        #[inline(always)]
        || a.iter_mut().for_each(|x| *x = q.sub(*x, c)),
    )
}

/// `a[t] = -a[t] mod q`.
pub fn neg_assign(q: &Modulus, a: &mut [u64]) {
    vectorized(
        #[inline(always)]
        || a.iter_mut().for_each(|x| *x = q.neg(*x)),
    )
}

/// `a[t] = a[t] w mod q` for a fixed `w < q` with `w_shoup = q.shoup(w)`.
pub fn mul_shoup_assign(q: &Modulus, a: &mut [u64], w: u64, w_shoup: u64) {
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(all(feature = "simd", target_arch = "x86_64"))]
    if let Some(s) = super::simd::ifma() {
        done = super::simd::mul_shoup_in_place(s, q.value(), w, w_shoup, a);
    }
    a[done..].iter_mut().for_each(|x| *x = q.mul_shoup(*x, w, w_shoup));
}

/// `a[t] = a[t] b[t] mod q` (residues).
pub fn mul_assign(q: &Modulus, a: &mut [u64], b: &[u64]) {
    products(q, a, None, b, false);
}

/// `out[t] = a[t] b[t] mod q` (residues).
pub fn mul_into(q: &Modulus, out: &mut [u64], a: &[u64], b: &[u64]) {
    products(q, out, Some(a), b, false);
}

/// `acc[t] = acc[t] + a[t] b[t] mod q` (residues).
pub fn mul_acc(q: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    products(q, acc, Some(a), b, true);
}

/// [`mul_acc`] for secret operands: the vector kernel (no branch on the data) where the processor
/// has it, else constant-time scalar arithmetic ([`Modulus::mul_ct`], [`Modulus::add_ct`]).
pub fn mul_acc_ct(q: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(all(feature = "simd", target_arch = "x86_64"))]
    if let Some(s) = super::simd::ifma() {
        done = super::simd::mul_mod_slice(s, &super::simd::MulConsts::new(q), acc, Some(a), b, true);
    }
    for ((o, &x), &y) in acc.iter_mut().zip(a).zip(b).skip(done) {
        *o = q.add_ct(*o, q.mul_ct(x, y));
    }
}

/// `out[t] = x[t] y[t]` (`out[t]` itself for `x` when `x` is `None`), added to `out[t]` when
/// `acc`: the one loop of the three products above.
#[inline(always)]
fn products(q: &Modulus, out: &mut [u64], x: Option<&[u64]>, y: &[u64], acc: bool) {
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(all(feature = "simd", target_arch = "x86_64"))]
    if let Some(s) = super::simd::ifma() {
        done = super::simd::mul_mod_slice(s, &super::simd::MulConsts::new(q), out, x, y, acc);
    }
    for (t, o) in out.iter_mut().enumerate().take(y.len()).skip(done) {
        let p = q.mul(x.map_or(*o, |x| x[t]), y[t]);
        *o = if acc { q.add(*o, p) } else { p };
    }
}
