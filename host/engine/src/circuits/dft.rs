//! The homomorphic DFT of CKKS bootstrapping: the special FFT of the encoder written as sparse
//! butterfly matrices (three diagonals each) and grouped into a few merged levels
//! (Cheon-Han-Kim-Kim-Song, "Improved Bootstrapping for Approximate HE", Eurocrypt 2019).
//! CoeffToSlot runs the inverse transform without its final bit reversal and SlotToCoeff the
//! forward transform without its initial one: the two reversals cancel across EvalMod, which
//! works slot-wise.

use std::collections::BTreeMap;

use hetune_core::ckks::Complex;

use super::linear::Diagonals;

fn twiddle(pow5: usize, len: usize) -> Complex {
    let angle = 2.0 * std::f64::consts::PI * pow5 as f64 / (4 * len) as f64;
    Complex::new(angle.cos(), angle.sin())
}

/// One butterfly stage for `len`: `coeffs(w)` gives, for the twiddle `w` of a butterfly
/// `(a, b = a + len/2)`, the entries `(new[a] <- v[a], new[a] <- v[b], new[b] <- v[b],
/// new[b] <- v[a])`.
fn stage(n: usize, len: usize, coeffs: impl Fn(Complex) -> [Complex; 4]) -> Diagonals {
    let h = len / 2;
    let mut d0 = vec![Complex::default(); n];
    let mut dp = vec![Complex::default(); n];
    let mut dm = vec![Complex::default(); n];
    let mut pow5 = 1usize;
    for j in 0..h {
        let [aa, ab, bb, ba] = coeffs(twiddle(pow5, len));
        let mut i = 0;
        while i < n {
            let (a, b) = (i + j, i + j + h);
            d0[a] = aa;
            dp[a] = ab;
            d0[b] = bb;
            dm[b] = ba;
            i += len;
        }
        pow5 = pow5 * 5 % (4 * len);
    }
    diagonals(n, h, d0, dp, dm)
}

/// One butterfly stage of the inverse special FFT (`special_ifft`): `new[a] = v[a] + v[b]`,
/// `new[b] = (v[a] - v[b]) conj(w)`.
fn ifft_stage(n: usize, len: usize) -> Diagonals {
    let one = Complex::new(1.0, 0.0);
    stage(n, len, |w| [one, one, Complex::new(-w.re, w.im), Complex::new(w.re, -w.im)])
}

/// One butterfly stage of the forward special FFT (`special_fft`): `new[a] = v[a] + w v[b]`,
/// `new[b] = v[a] - w v[b]`.
fn fft_stage(n: usize, len: usize) -> Diagonals {
    let one = Complex::new(1.0, 0.0);
    stage(n, len, |w| [one, w, Complex::new(-w.re, -w.im), one])
}

fn diagonals(n: usize, h: usize, d0: Vec<Complex>, dp: Vec<Complex>, dm: Vec<Complex>) -> Diagonals {
    let mut diags = BTreeMap::new();
    if h == n / 2 {
        // +h and -h are the same offset.
        let sum: Vec<Complex> = dp.iter().zip(&dm).map(|(a, b)| Complex::new(a.re + b.re, a.im + b.im)).collect();
        diags.insert(0, d0);
        diags.insert(h, sum);
    } else {
        diags.insert(0, d0);
        diags.insert(h, dp);
        diags.insert(n - h, dm);
    }
    Diagonals { slots: n, diags }
}

/// Splits `stages` consecutive stages into `levels` groups, larger groups first.
fn groups(stages: usize, levels: usize) -> Vec<usize> {
    let levels = levels.clamp(1, stages.max(1));
    (0..levels).map(|g| stages / levels + usize::from(g < stages % levels)).collect()
}

/// CoeffToSlot matrices for `n` slots in `levels` levels, applied in order; their product is
/// `factor` times the inverse special FFT without bit reversal (the encoder's `1/n` included).
pub fn coeff_to_slot(n: usize, levels: usize, factor: f64) -> Vec<Diagonals> {
    let stages: Vec<usize> = (1..=n.trailing_zeros()).rev().map(|k| 1usize << k).collect(); // len = n .. 2
    merge(n, &stages, levels, factor / n as f64, ifft_stage, false)
}

/// SlotToCoeff matrices for `n` slots in `levels` levels, applied in order; their product is
/// `factor` times the special FFT without bit reversal.
pub fn slot_to_coeff(n: usize, levels: usize, factor: f64) -> Vec<Diagonals> {
    let stages: Vec<usize> = (1..=n.trailing_zeros()).map(|k| 1usize << k).collect(); // len = 2 .. n
    merge(n, &stages, levels, factor, fft_stage, false)
}

/// [`slot_to_coeff`] with the smaller merged matrices first (the first matrix has the fewest
/// diagonals): for a circuit whose first matrix costs double.
pub fn slot_to_coeff_small_first(n: usize, levels: usize, factor: f64) -> Vec<Diagonals> {
    let stages: Vec<usize> = (1..=n.trailing_zeros()).map(|k| 1usize << k).collect();
    merge(n, &stages, levels, factor, fft_stage, true)
}

fn merge(
    n: usize,
    stages: &[usize],
    levels: usize,
    factor: f64,
    stage: fn(usize, usize) -> Diagonals,
    small_first: bool,
) -> Vec<Diagonals> {
    let mut sizes = groups(stages.len(), levels);
    if small_first {
        sizes.reverse();
    }
    let per_level = factor.abs().powf(1.0 / sizes.len() as f64);
    let mut out = Vec::new();
    let mut it = stages.iter();
    for (g, &size) in sizes.iter().enumerate() {
        let mut m: Option<Diagonals> = None;
        for &len in it.by_ref().take(size) {
            let s = stage(n, len);
            m = Some(match m {
                None => s,
                Some(prev) => s.compose(&prev),
            });
        }
        let mut m = m.unwrap_or_else(|| identity(n));
        m.scale(if g == 0 { per_level * factor.signum() } else { per_level });
        out.push(m);
    }
    out
}

fn identity(n: usize) -> Diagonals {
    let mut diags = BTreeMap::new();
    diags.insert(0, vec![Complex::new(1.0, 0.0); n]);
    Diagonals { slots: n, diags }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetune_core::ckks::encoder::{special_fft, special_ifft};

    fn bitrev(v: &[Complex]) -> Vec<Complex> {
        let n = v.len();
        let bits = n.trailing_zeros();
        (0..n).map(|i| v[hetune_core::ring::ntt::bit_reverse(i, bits)]).collect()
    }

    #[test]
    fn merged_stages_equal_the_encoder_transforms() {
        let n = 64;
        let v: Vec<Complex> = (0..n).map(|i| Complex::new((i as f64 * 0.3).sin(), (i as f64 * 0.7).cos())).collect();
        for levels in [1, 2, 3, 6] {
            // CoeffToSlot = special_ifft without the final bit reversal.
            let mut re: Vec<f64> = v.iter().map(|c| c.re).collect();
            let mut im: Vec<f64> = v.iter().map(|c| c.im).collect();
            special_ifft(&mut re, &mut im);
            let want: Vec<Complex> = bitrev(&(0..n).map(|i| Complex::new(re[i], im[i])).collect::<Vec<_>>());
            let mut got = v.clone();
            for m in coeff_to_slot(n, levels, 1.0) {
                got = m.apply(&got);
            }
            for (a, b) in got.iter().zip(&want) {
                assert!((a.re - b.re).abs() < 1e-12 && (a.im - b.im).abs() < 1e-12, "cts levels {levels}");
            }
            // SlotToCoeff = special_fft without the initial bit reversal.
            let mut got = bitrev(&v);
            for m in slot_to_coeff(n, levels, 2.0) {
                got = m.apply(&got);
            }
            let mut small = bitrev(&v);
            for m in slot_to_coeff_small_first(n, levels, 2.0) {
                small = m.apply(&small);
            }
            for (a, b) in small.iter().zip(&got) {
                assert!((a.re - b.re).abs() < 1e-9 && (a.im - b.im).abs() < 1e-9, "small first, levels {levels}");
            }
            let mut re: Vec<f64> = v.iter().map(|c| c.re).collect();
            let mut im: Vec<f64> = v.iter().map(|c| c.im).collect();
            special_fft(&mut re, &mut im);
            for i in 0..n {
                assert!(
                    (got[i].re - 2.0 * re[i]).abs() < 1e-9 && (got[i].im - 2.0 * im[i]).abs() < 1e-9,
                    "stc levels {levels}"
                );
            }
        }
    }
}
