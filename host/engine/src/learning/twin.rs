//! The plaintext twin trainer: HETAL's training loop in f64, with the exact softmax or an
//! approximation's twin, the same schedule, data order and initialisation as the encrypted
//! loop. Comparing the twin with the exact softmax, the twin with an approximation and the
//! encrypted run splits any accuracy gap into approximation error and CKKS noise.
//!
//! Data order as the encrypted loop can realise it: [`Order::File`] takes batches of `batch`
//! rows in file order (the last one smaller), as the reference script does;
//! [`Order::Shuffled`] permutes the rows once (the owner does it before encrypting, seeded) and
//! visits the batches in a fresh seeded order every epoch (the server can reorder whole
//! encrypted batches, not rows inside them).

use super::dataset::{permutation, Dataset};
use super::early_stopping::{Decision, EarlyStopping};
use super::loss::ShiftedLog;
use super::nesterov::Nesterov;
use super::softmax::{exact, Softmax};
use crate::error::DatasetProblem;
use crate::{Error, Result};

/// Order of the training rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Order {
    /// Batches in file order, every epoch.
    File,
    /// Rows permuted once, batches visited in a new order each epoch, all from `seed`.
    Shuffled {
        /// Seed of both permutations.
        seed: u64,
    },
}

/// The validation loss that early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ValidLoss {
    /// Mean over rows of `sum_j (p_j - y_j)^2` with the training softmax: what the server computes
    /// under encryption (one square and row sums, no logarithm).
    Mse,
    /// Mean cross-entropy with the exact softmax: the plaintext reference.
    CrossEntropy,
    /// Mean `-log(p_y + eps)` with the training softmax and [`ShiftedLog`]'s polynomial: an
    /// encrypted-friendly cross-entropy.
    ShiftedCrossEntropy,
}

/// Hyperparameters of a run.
#[derive(Clone, Debug)]
pub struct TwinConfig {
    /// Learning rate.
    pub lr: f64,
    /// Rows per batch.
    pub batch: usize,
    /// Epochs at most.
    pub epochs: usize,
    /// Data order.
    pub order: Order,
    /// Softmax of the gradient (and of the MSE validation loss).
    pub softmax: Softmax,
    /// Patience of early stopping on the validation set (`None`: run every epoch).
    pub patience: Option<usize>,
    /// The loss early stopping watches.
    pub valid_loss: ValidLoss,
    /// End after this many steps in all (`None`: every epoch), as `hetune train --max-steps`
    /// does: a cut inside an epoch leaves that epoch unlogged, and the model is then the last
    /// weights.
    pub max_steps: Option<usize>,
}

/// Weights `W` (`classes x (cols + 1)`, the bias last), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Number of classes.
    pub classes: usize,
    /// Features per row, without the bias.
    pub cols: usize,
    /// `classes * (cols + 1)` weights.
    pub w: Vec<f64>,
}

impl Model {
    /// All-zero weights.
    pub fn zeros(classes: usize, cols: usize) -> Self {
        Model { classes, cols, w: vec![0.0; classes * (cols + 1)] }
    }

    /// The logits `W [x, 1]` of one row.
    pub fn logits(&self, x: &[f64], out: &mut [f64]) {
        logits(&self.w, self.cols, x, out);
    }

    /// The predicted class of every row.
    pub fn predict(&self, data: &Dataset) -> Vec<usize> {
        let mut z = vec![0.0; self.classes];
        (0..data.rows)
            .map(|i| {
                self.logits(data.row(i), &mut z);
                argmax(&z)
            })
            .collect()
    }

    /// Fraction of rows predicted right.
    pub fn accuracy(&self, data: &Dataset) -> f64 {
        let hits = self.predict(data).iter().zip(&data.y).filter(|(p, y)| p == y).count();
        hits as f64 / data.rows as f64
    }
}

/// Losses and accuracies of one set under one model.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Mean cross-entropy, exact softmax.
    pub cross_entropy: f64,
    /// Mean squared error of `P - Y` with the training softmax.
    pub mse: f64,
    /// Mean `-log(p_y + eps)` with the training softmax, through [`ShiftedLog`]'s polynomial.
    pub shifted_cross_entropy: f64,
    /// Accuracy.
    pub accuracy: f64,
    /// Largest `|logit|`.
    pub max_abs_logit: f64,
}

/// What happened in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct EpochLog {
    /// Epoch, from 1.
    pub epoch: usize,
    /// The training set under the epoch's final weights.
    pub train: Evaluation,
    /// The validation set, if any.
    pub valid: Option<Evaluation>,
    /// The test set, if any.
    pub test: Option<Evaluation>,
    /// Largest `|logit|` the training steps of this epoch fed to the softmax.
    pub max_abs_step_logit: f64,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct TwinRun {
    /// The returned model: the best epoch's when early stopping is on, else the last.
    pub model: Model,
    /// One entry per epoch run.
    pub log: Vec<EpochLog>,
    /// Steps taken.
    pub steps: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The epoch whose weights [`TwinRun::model`] holds.
    pub model_epoch: usize,
    /// The first epoch whose steps fed the softmax a logit beyond its input bound, if any:
    /// the encrypted run, which differs from this twin only by CKKS noise, would leave the
    /// approximation's range there too, so the schedule (learning rate, standardisation) or the
    /// bound must change before encrypting.
    pub out_of_range_epoch: Option<usize>,
    /// Whether [`TwinConfig::max_steps`] ended the run before its last epoch.
    pub cut_by_max_steps: bool,
    /// The returned model on the test set, if one was given (a model cut inside an epoch has no
    /// epoch entry of its own).
    pub model_test: Option<Evaluation>,
}

/// The batches of one epoch as row-index lists: `rows` (already in the owner's order) cut into
/// batches of `batch`, visited in file order or in the epoch's seeded order.
pub fn epoch_batches(rows: usize, batch: usize, order: Order, epoch: usize) -> Vec<std::ops::Range<usize>> {
    let mut b: Vec<std::ops::Range<usize>> =
        (0..rows.div_ceil(batch)).map(|k| k * batch..((k + 1) * batch).min(rows)).collect();
    if let Order::Shuffled { seed } = order {
        let p = permutation(b.len(), seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        b = p.iter().map(|&i| b[i].clone()).collect();
    }
    b
}

/// Trains by Nesterov's method from zero weights. `valid` drives early stopping (when
/// `cfg.patience` is set); `test` is only evaluated.
pub fn train(train: &Dataset, valid: Option<&Dataset>, test: Option<&Dataset>, cfg: &TwinConfig) -> Result<TwinRun> {
    let (c, d) = (train.classes, train.cols);
    for (name, set) in [("valid", valid), ("test", test)] {
        if let Some(s) = set {
            if s.cols != d || s.classes != c {
                return Err(Error::Dataset {
                    name: name.to_string(),
                    problem: DatasetProblem::Mismatch {
                        features: s.cols,
                        classes: s.classes,
                        train_features: d,
                        train_classes: c,
                    },
                });
            }
        }
    }
    if cfg.batch == 0 || !cfg.lr.is_finite() || cfg.lr <= 0.0 {
        return Err(Error::InvalidConfig {
            what: "training",
            need: "a positive batch and a positive, finite learning rate",
        });
    }
    if cfg.patience.is_some() && valid.is_none() {
        return Err(Error::InvalidConfig { what: "early stopping", need: "a validation set" });
    }
    let data = match cfg.order {
        Order::File => train.clone(),
        Order::Shuffled { seed } => train.select(&permutation(train.rows, seed)),
    };
    let mut w = Model::zeros(c, d);
    let mut v = w.w.clone();
    let mut nag = Nesterov::new();
    let mut grad = vec![0.0; w.w.len()];
    let mut stop = cfg.patience.map(EarlyStopping::new);
    let mut best: Option<(usize, Model)> = None;
    let (mut log, mut steps, mut stopped_early, mut out_of_range_epoch) = (Vec::new(), 0, false, None);
    let mut cut = false;
    for epoch in 1..=cfg.epochs {
        let mut max_step_logit = 0.0f64;
        for range in epoch_batches(data.rows, cfg.batch, cfg.order, epoch) {
            if cfg.max_steps == Some(steps) {
                cut = true;
                break;
            }
            let m = gradient(&data, range, &v, &cfg.softmax, &mut grad);
            max_step_logit = max_step_logit.max(m);
            nag.update(&mut w.w, &mut v, &grad, cfg.lr);
            steps += 1;
        }
        if cut {
            break;
        }
        let eval = |s: &Dataset| evaluate(&w, s, &cfg.softmax);
        let entry = EpochLog {
            epoch,
            train: eval(&data),
            valid: valid.map(eval),
            test: test.map(eval),
            max_abs_step_logit: max_step_logit,
        };
        log.push(entry);
        if max_step_logit > cfg.softmax.input_bound() && out_of_range_epoch.is_none() {
            out_of_range_epoch = Some(epoch);
        }
        if let (Some(es), Some(ve)) = (stop.as_mut(), entry.valid) {
            let loss = match cfg.valid_loss {
                ValidLoss::Mse => ve.mse,
                ValidLoss::CrossEntropy => ve.cross_entropy,
                ValidLoss::ShiftedCrossEntropy => ve.shifted_cross_entropy,
            };
            let decision = es.observe(loss);
            if es.best_epoch() == epoch {
                best = Some((epoch, w.clone()));
            }
            if decision == Decision::Stop {
                stopped_early = true;
                break;
            }
        }
        if cfg.max_steps == Some(steps) && epoch < cfg.epochs {
            cut = true;
            break;
        }
    }
    let (model_epoch, model) = match best {
        Some(b) if !cut => b,
        _ => (log.len(), w),
    };
    let model_test = test.map(|t| evaluate(&model, t, &cfg.softmax));
    Ok(TwinRun { model, log, steps, stopped_early, model_epoch, out_of_range_epoch, cut_by_max_steps: cut, model_test })
}

/// `grad = (1/B) sum_i (softmax(W x_i) - y_i) [x_i, 1]^T` over the rows of `range`, at the
/// weights `w`; returns the largest `|logit|` seen.
fn gradient(data: &Dataset, range: std::ops::Range<usize>, w: &[f64], softmax: &Softmax, grad: &mut [f64]) -> f64 {
    let (c, d) = (data.classes, data.cols);
    let b = range.len() as f64;
    grad.iter_mut().for_each(|g| *g = 0.0);
    let (mut z, mut p) = (vec![0.0; c], vec![0.0; c]);
    let mut max_logit = 0.0f64;
    for i in range {
        let x = data.row(i);
        logits(w, d, x, &mut z);
        max_logit = z.iter().fold(max_logit, |m, v| m.max(v.abs()));
        softmax.eval_row(&z, &mut p);
        p[data.y[i]] -= 1.0;
        for (j, &r) in p.iter().enumerate() {
            let g = &mut grad[j * (d + 1)..(j + 1) * (d + 1)];
            g[..d].iter_mut().zip(x).for_each(|(gk, xk)| *gk += r * xk);
            g[d] += r;
        }
    }
    grad.iter_mut().for_each(|g| *g /= b);
    max_logit
}

/// Cross-entropy (exact softmax), MSE and shifted cross-entropy (training softmax) and
/// accuracy of `model` on `data`.
pub fn evaluate(model: &Model, data: &Dataset, softmax: &Softmax) -> Evaluation {
    let c = model.classes;
    let (mut z, mut p) = (vec![0.0; c], vec![0.0; c]);
    let log = ShiftedLog::default();
    let (mut ce, mut mse, mut sce, mut hits, mut max_logit) = (0.0, 0.0, 0.0, 0usize, 0.0f64);
    for i in 0..data.rows {
        model.logits(data.row(i), &mut z);
        let y = data.y[i];
        max_logit = z.iter().fold(max_logit, |m, v| m.max(v.abs()));
        hits += usize::from(argmax(&z) == y);
        exact(&z, &mut p);
        ce -= p[y].max(1e-300).ln();
        softmax.eval_row(&z, &mut p);
        mse += p.iter().enumerate().map(|(j, &pj)| (pj - f64::from(u8::from(j == y))).powi(2)).sum::<f64>();
        sce += log.eval(p[y]);
    }
    let n = data.rows as f64;
    Evaluation {
        cross_entropy: ce / n,
        mse: mse / n,
        shifted_cross_entropy: sce / n,
        accuracy: hits as f64 / n,
        max_abs_logit: max_logit,
    }
}

fn logits(w: &[f64], d: usize, x: &[f64], out: &mut [f64]) {
    for (j, o) in out.iter_mut().enumerate() {
        let wj = &w[j * (d + 1)..(j + 1) * (d + 1)];
        *o = wj[..d].iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + wj[d];
    }
}

/// Index of the largest value (the first on ties).
fn argmax(z: &[f64]) -> usize {
    z.iter().enumerate().fold(0, |best, (j, &v)| if v > z[best] { j } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffled_batches_cover_every_row_once_and_depend_on_the_seed() {
        let order = Order::Shuffled { seed: 5 };
        let e1 = epoch_batches(1000, 128, order, 1);
        let mut rows: Vec<usize> = e1.iter().flat_map(|r| r.clone()).collect();
        rows.sort_unstable();
        assert_eq!(rows, (0..1000).collect::<Vec<_>>());
        assert_eq!(e1, epoch_batches(1000, 128, order, 1));
        assert_ne!(e1, epoch_batches(1000, 128, order, 2));
        assert_ne!(e1, epoch_batches(1000, 128, Order::Shuffled { seed: 6 }, 1));
        let file = epoch_batches(1000, 128, Order::File, 3);
        assert_eq!((file[0].clone(), file[7].clone()), (0..128, 896..1000));
    }

    fn toy(rows: usize, cols: usize, classes: usize, seed: usize) -> Dataset {
        let x: Vec<f64> = (0..rows * cols).map(|i| (((i + seed) * 7919 % 113) as f64 - 56.0) / 56.0).collect();
        let y: Vec<i64> = (0..rows).map(|i| ((i * 31 + seed) % classes) as i64).collect();
        Dataset::new("toy", x, rows, cols, &y, classes).unwrap()
    }

    #[test]
    fn bad_configurations_are_errors_before_training() {
        let cfg = TwinConfig {
            lr: 1.0,
            batch: 8,
            epochs: 2,
            order: Order::Shuffled { seed: 1 },
            softmax: Softmax::Exact,
            patience: None,
            valid_loss: ValidLoss::Mse,
            max_steps: None,
        };
        let tr = toy(32, 5, 3, 0);
        let e = train(&tr, Some(&toy(8, 4, 3, 1)), None, &cfg).unwrap_err().to_string();
        assert!(e.contains("valid has 4 features"), "{e}");
        assert!(train(&tr, None, Some(&toy(8, 5, 4, 1)), &cfg).is_err());
        assert!(train(&tr, None, None, &TwinConfig { batch: 0, ..cfg.clone() }).is_err());
        assert!(train(&tr, None, None, &TwinConfig { lr: f64::NAN, ..cfg.clone() }).is_err());
        assert!(train(&tr, None, None, &TwinConfig { patience: Some(3), ..cfg.clone() }).is_err());
        let run = train(&tr, None, None, &cfg).unwrap();
        assert_eq!((run.steps, run.out_of_range_epoch), (8, None));
    }

    #[test]
    fn max_steps_cuts_the_run_and_keeps_the_last_weights() {
        let (tr, va) = (toy(32, 5, 3, 0), toy(16, 5, 3, 3));
        let cfg = TwinConfig {
            lr: 0.5,
            batch: 8,
            epochs: 3,
            order: Order::File,
            softmax: Softmax::Exact,
            patience: Some(3),
            valid_loss: ValidLoss::Mse,
            max_steps: None,
        };
        // 4 steps an epoch. Cut inside epoch 2: one logged epoch, the weights after 6 steps.
        let full = train(&tr, Some(&va), None, &cfg).unwrap();
        assert_eq!((full.steps, full.log.len(), full.cut_by_max_steps), (12, 3, false));
        let cut = train(&tr, Some(&va), None, &TwinConfig { max_steps: Some(6), ..cfg.clone() }).unwrap();
        assert_eq!((cut.steps, cut.log.len(), cut.cut_by_max_steps, cut.model_epoch), (6, 1, true, 1));
        assert_eq!(cut.log[0], full.log[0]);
        let six =
            train(&tr, Some(&va), None, &TwinConfig { max_steps: Some(6), epochs: 2, patience: None, ..cfg.clone() });
        let eight = train(&tr, Some(&va), None, &TwinConfig { epochs: 2, ..cfg.clone() }).unwrap();
        assert_ne!(six.unwrap().model, eight.model, "the cut model is not the end of epoch 2");
        // Cut at an epoch's end: that epoch is logged; the last epoch's end is no cut.
        let at_end = train(&tr, Some(&va), None, &TwinConfig { max_steps: Some(8), ..cfg.clone() }).unwrap();
        assert_eq!((at_end.steps, at_end.log.len(), at_end.cut_by_max_steps), (8, 2, true));
        assert_eq!(at_end.model, eight.model);
        let whole = train(&tr, Some(&va), None, &TwinConfig { max_steps: Some(12), ..cfg.clone() }).unwrap();
        assert_eq!((whole.steps, whole.cut_by_max_steps, whole.model), (12, false, full.model.clone()));
    }

    #[test]
    fn logits_beyond_the_softmax_bound_are_reported() {
        use crate::learning::softmax::{NasConfig, NasSoftmax};
        let nas =
            Softmax::Nas(NasSoftmax::new(3, NasConfig { bound: 0.5, ..NasConfig::default_for_training(3) }).unwrap());
        let cfg = TwinConfig {
            lr: 4.0,
            batch: 8,
            epochs: 3,
            order: Order::File,
            softmax: nas,
            patience: None,
            valid_loss: ValidLoss::Mse,
            max_steps: None,
        };
        let run = train(&toy(64, 5, 3, 2), None, None, &cfg).unwrap();
        let first = run.log.iter().position(|l| l.max_abs_step_logit > 0.5).map(|i| i + 1);
        assert!(first.is_some());
        assert_eq!(run.out_of_range_epoch, first);
    }
}
