//! Plaintext feature sets on the owner's side: rows of features with class labels, checked on
//! construction, and the owner's standardisation (train mean and standard deviation, computed
//! in the clear before encryption).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{Error, Result};

/// Share of the training rows held out for validation when a set has no validation split
/// (MNIST-DINOv2), by [`Dataset::split_holdout`] with [`HOLDOUT_SEED`].
pub const HOLDOUT_FRACTION: f64 = 0.125;
/// The fixed seed of that holdout.
pub const HOLDOUT_SEED: u64 = 0x4d4e_4953_5400;

/// `rows x cols` features (row-major f64) and one label in `0..classes` per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Number of rows.
    pub rows: usize,
    /// Features per row (without the bias column).
    pub cols: usize,
    /// Row-major features.
    pub x: Vec<f64>,
    /// Labels.
    pub y: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Checks the shapes and that every label lies in `0..classes`; `name` goes into errors.
    pub fn new(name: &str, x: Vec<f64>, rows: usize, cols: usize, labels: &[i64], classes: usize) -> Result<Self> {
        if rows == 0 || cols == 0 || rows.checked_mul(cols) != Some(x.len()) {
            return Err(Error::InvalidInput(format!(
                "{name}: {} feature values do not form {rows} non-empty rows of {cols} columns",
                x.len()
            )));
        }
        if labels.len() != rows {
            return Err(Error::InvalidInput(format!("{name}: {} labels for {rows} feature rows", labels.len())));
        }
        if classes < 2 {
            return Err(Error::InvalidInput(format!("{name}: {classes} classes (at least 2 needed)")));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l as u64 >= classes as u64) {
            return Err(Error::InvalidInput(format!("{name}: label {l} of row {i} is outside 0..{classes}")));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!("{name}: feature {} of row {} is not finite", i % cols, i / cols)));
        }
        Ok(Dataset { rows, cols, x, y: labels.iter().map(|&l| l as usize).collect(), classes })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(idx.len() * self.cols);
        idx.iter().for_each(|&i| x.extend_from_slice(self.row(i)));
        Dataset {
            rows: idx.len(),
            cols: self.cols,
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            classes: self.classes,
        }
    }

    /// Splits off `holdout` of the rows (chosen by a permutation seeded with `seed`) as a
    /// validation set: `(train, valid)`, each keeping the original row order.
    pub fn split_holdout(&self, holdout: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        let n_valid = (self.rows as f64 * holdout).round() as usize;
        if !(0.0..1.0).contains(&holdout) || n_valid == 0 || n_valid >= self.rows {
            return Err(Error::InvalidInput(format!("cannot hold out {holdout} of {} rows", self.rows)));
        }
        let perm = permutation(self.rows, seed);
        let mut valid: Vec<usize> = perm[..n_valid].to_vec();
        let mut train: Vec<usize> = perm[n_valid..].to_vec();
        valid.sort_unstable();
        train.sort_unstable();
        Ok((self.select(&train), self.select(&valid)))
    }

    /// Mean Euclidean norm of the rows.
    pub fn mean_row_norm(&self) -> f64 {
        (0..self.rows).map(|i| self.row(i).iter().map(|v| v * v).sum::<f64>().sqrt()).sum::<f64>() / self.rows as f64
    }

    /// Whether the owner should standardise by default: rows that are not unit-norm (sentence
    /// embeddings are; raw image features, with norms near 55, are not).
    pub fn needs_standardising(&self) -> bool {
        (self.mean_row_norm() - 1.0).abs() > 1e-3
    }
}

/// Per-feature mean and standard deviation of a training set.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f64>,
    /// Feature standard deviations plus `1e-8` (a constant feature maps to 0, not to NaN).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Mean and (population) standard deviation of every feature of `train`.
    pub fn fit(train: &Dataset) -> Self {
        let (n, d) = (train.rows as f64, train.cols);
        let mut mean = vec![0.0; d];
        (0..train.rows).for_each(|i| mean.iter_mut().zip(train.row(i)).for_each(|(m, v)| *m += v));
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; d];
        (0..train.rows)
            .for_each(|i| var.iter_mut().zip(train.row(i)).zip(&mean).for_each(|((s, v), m)| *s += (v - m) * (v - m)));
        let std = var.iter().map(|s| (s / n).sqrt() + 1e-8).collect();
        Standardizer { mean, std }
    }

    /// `(x - mean) / std` in place; `data` must have the training set's width.
    pub fn apply(&self, data: &mut Dataset) -> Result<()> {
        if data.cols != self.mean.len() {
            return Err(Error::InvalidInput(format!(
                "standardiser fitted on {} features applied to {}",
                self.mean.len(),
                data.cols
            )));
        }
        for row in data.x.chunks_exact_mut(data.cols) {
            row.iter_mut().zip(&self.mean).zip(&self.std).for_each(|((v, m), s)| *v = (*v - m) / s);
        }
        Ok(())
    }
}

/// A uniformly random permutation of `0..n` (Fisher-Yates over ChaCha8 seeded by `seed`).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // Rejection-free enough for a shuffle: the bias of a 64-bit modulo is below 2^-40 here.
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        let x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        Dataset::new("toy", x, 4, 2, &[0, 1, 2, 1], 3).unwrap()
    }

    #[test]
    fn bad_shapes_and_labels_are_errors() {
        assert!(Dataset::new("t", vec![0.0; 7], 4, 2, &[0; 4], 2).is_err());
        assert!(Dataset::new("t", vec![0.0; 8], 4, 2, &[0; 3], 2).is_err());
        let e = Dataset::new("t", vec![0.0; 8], 4, 2, &[0, 1, 2, 0], 2).unwrap_err().to_string();
        assert!(e.contains("label 2 of row 2"), "{e}");
        assert!(Dataset::new("t", vec![0.0; 8], 4, 2, &[0, -1, 0, 0], 2).is_err());
        assert!(Dataset::new("t", vec![f64::NAN; 8], 4, 2, &[0; 4], 2).is_err());
    }

    #[test]
    fn standardised_features_have_zero_mean_and_unit_deviation() {
        let mut d = toy();
        let s = Standardizer::fit(&d);
        s.apply(&mut d).unwrap();
        for j in 0..2 {
            let col: Vec<f64> = (0..4).map(|i| d.row(i)[j]).collect();
            let mean = col.iter().sum::<f64>() / 4.0;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-7, "{mean} {var}");
        }
        assert!(toy().needs_standardising());
    }

    #[test]
    fn holdout_is_a_seeded_partition() {
        let d = toy();
        let (t, v) = d.split_holdout(0.25, 7).unwrap();
        assert_eq!((t.rows, v.rows), (3, 1));
        let (t2, v2) = d.split_holdout(0.25, 7).unwrap();
        assert_eq!((&t, &v), (&t2, &v2));
        let mut all: Vec<f64> = t.x.iter().chain(&v.x).copied().collect();
        all.sort_by(f64::total_cmp);
        assert_eq!(all, d.x);
        assert!(d.split_holdout(0.0, 1).is_err());
    }
}
