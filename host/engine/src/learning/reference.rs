//! Plaintext f64 references of the encrypted products, for benchmarks and tests.

/// `x y^T` for row-major `x` (`n x k`) and `y` (`m x k`): `n x m`.
pub fn abt(x: &[f64], y: &[f64], n: usize, m: usize, k: usize) -> Vec<f64> {
    (0..n * m).map(|e| (0..k).map(|t| x[(e / m) * k + t] * y[(e % m) * k + t]).sum()).collect()
}

/// `x^T y` for row-major `x` (`n x k`) and `y` (`n x m`): `k x m`.
pub fn atb(x: &[f64], y: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; k * m];
    for r in 0..n {
        for i in 0..k {
            let xi = x[r * k + i];
            for j in 0..m {
                out[i * m + j] += xi * y[r * m + j];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_products_by_hand() {
        // x = [[1, 2], [3, 4]], y = [[5, 6]]: x y^T = [[17], [39]]; x^T x = [[10, 14], [14, 20]].
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(abt(&x, &[5.0, 6.0], 2, 1, 2), vec![17.0, 39.0]);
        assert_eq!(atb(&x, &x, 2, 2, 2), vec![10.0, 14.0, 14.0, 20.0]);
    }
}
