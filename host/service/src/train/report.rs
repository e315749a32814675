//! What `hetune train` reports: one JSON object (`--json`) or a printed summary.

use serde::Serialize;

use hetune_engine::learning::twin::{EpochLog, Evaluation, TwinRun};

use super::server::StepTimes;
use super::settings::{Schedule, SoftmaxChoice, TrainOptions};
use super::Prepared;

/// The outcome of a twin trainer.
#[derive(Clone, Debug, Serialize)]
pub struct TwinSummary {
    /// Test accuracy of the returned model (the best epoch's, or the last weights when
    /// `--max-steps` cut the run).
    pub test_acc: f64,
    /// Steps.
    pub steps: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// The epoch of the returned model.
    pub model_epoch: usize,
    /// Whether `--max-steps` ended it (its model is then the last weights, as the encrypted
    /// run's).
    pub cut_by_max_steps: bool,
    /// Largest `|logit|` a training step fed the softmax.
    pub max_abs_step_logit: f64,
    /// Largest `|weight|` of the returned model.
    pub max_abs_weight: f64,
    /// The returned model's weights (`classes x (features + 1)`, bias last), not serialised.
    #[serde(skip)]
    pub weights: Vec<f64>,
}

impl TwinSummary {
    /// How the run ended, for the text summary.
    fn ending(&self) -> String {
        if self.cut_by_max_steps {
            format!("; --max-steps ended it after {} steps: the last weights", self.steps)
        } else if self.stopped_early {
            ", stopped early".to_string()
        } else {
            String::new()
        }
    }

    /// The summary of a run.
    pub fn of(r: &TwinRun) -> Self {
        TwinSummary {
            test_acc: r.model_test.map_or(f64::NAN, |t| t.accuracy),
            cut_by_max_steps: r.cut_by_max_steps,
            steps: r.steps,
            epochs_run: r.log.len(),
            stopped_early: r.stopped_early,
            model_epoch: r.model_epoch,
            max_abs_step_logit: r.log.iter().map(|l| l.max_abs_step_logit).fold(0.0, f64::max),
            max_abs_weight: r.model.w.iter().fold(0.0, |m, v| m.max(v.abs())),
            weights: r.model.w.clone(),
        }
    }
}

/// One epoch of the encrypted run: the decrypted validation loss the owner judged, and the
/// epoch's decrypted weights evaluated in the clear after training.
#[derive(Clone, Debug, Serialize)]
pub struct EncryptedEpoch {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Seconds of the epoch's steps and its validation loss.
    pub seconds: f64,
    /// The server's encrypted validation loss as the owner decrypted it (mean over rows of
    /// `sum_j (p_j - y_j)^2`).
    pub encrypted_valid_mse: f64,
    /// The training set (in the owner's order) under the epoch's weights.
    pub train: Evaluation,
    /// The validation set.
    pub valid: Evaluation,
    /// The test set.
    pub test: Evaluation,
}

/// Encrypted inference on part of the test set.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct InferenceReport {
    /// Rows classified.
    pub rows: usize,
    /// Share of rows whose decrypted encrypted prediction equals the plaintext prediction of the
    /// same (decrypted) weights.
    pub agreement: f64,
    /// Accuracy of the encrypted predictions.
    pub accuracy: f64,
    /// Largest difference between a decrypted logit and the plaintext logit.
    pub max_abs_logit_error: f64,
    /// Seconds (encryption, logits, decryption).
    pub seconds: f64,
}

/// The encrypted part of a run.
#[derive(Clone, Debug, Serialize)]
pub struct EncryptedRun {
    /// Test accuracy of the decrypted model the owner kept.
    pub test_acc: f64,
    /// Steps run.
    pub steps: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Whether the owner stopped the run.
    pub stopped_early: bool,
    /// Whether `--max-steps` ended the run before its epochs (the model is then the last
    /// weights).
    pub cut_by_max_steps: bool,
    /// The epoch whose weights the owner kept.
    pub model_epoch: usize,
    /// Median seconds of a step.
    pub seconds_per_step: f64,
    /// Bootstraps per step (mean over the steps run).
    pub bootstraps_per_step: f64,
    /// Bootstraps per step the plan places (on rank 0 of a distributed run: its parts' and the
    /// weights').
    pub planned_bootstraps_per_step: usize,
    /// Processes the steps ran on (MPI ranks of `--distributed`; 1 otherwise).
    pub ranks: usize,
    /// Median seconds of each part of a step (`bootstraps`: the most any step ran).
    pub time_split: StepTimes,
    /// Key generation, seconds.
    pub keygen_s: f64,
    /// Encryption of the training and validation sets, seconds.
    pub encrypt_s: f64,
    /// Training (steps and per-epoch validation losses), seconds.
    pub train_s: f64,
    /// Bytes of the encrypted data set on disk.
    pub dataset_bytes: u64,
    /// Encrypted inference.
    pub inference: Option<InferenceReport>,
    /// Per epoch.
    pub curve: Vec<EncryptedEpoch>,
    /// The kept model's weights (`classes x (features + 1)`, bias last), not serialised.
    #[serde(skip)]
    pub weights: Vec<f64>,
}

/// One epoch in the report: the encrypted run's (when it reached the epoch) and the twins'.
#[derive(Clone, Debug, Serialize)]
pub struct EpochEntry {
    /// Epoch, from 1.
    pub epoch: usize,
    /// The encrypted run.
    pub encrypted: Option<EncryptedEpoch>,
    /// The twin with the approximation's f64 twin.
    pub approx_twin: Option<EpochLog>,
    /// The twin with the exact softmax.
    pub exact_twin: Option<EpochLog>,
}

impl EpochEntry {
    /// The entries of the twins' epochs.
    pub fn from_twins(exact: &TwinRun, approx: &TwinRun) -> Vec<Self> {
        let n = exact.log.len().max(approx.log.len());
        (1..=n)
            .map(|e| EpochEntry {
                epoch: e,
                encrypted: None,
                approx_twin: approx.log.get(e - 1).copied(),
                exact_twin: exact.log.get(e - 1).copied(),
            })
            .collect()
    }
}

/// The report of `hetune train`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Data directory.
    pub data: String,
    /// Preset.
    pub preset: String,
    /// Whether only the twins ran.
    pub twin_only: bool,
    /// Classes.
    pub classes: usize,
    /// Features per row (without the bias).
    pub features: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows.
    pub valid_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Whether validation rows were held out of train (12.5%, fixed seed).
    pub valid_held_out: bool,
    /// Whether the owner standardised the features.
    pub standardised: bool,
    /// Softmax approximation.
    pub softmax: SoftmaxChoice,
    /// Schedule after defaults.
    pub schedule: Schedule,
    /// Block packing `(s0, s1, pad_c)`.
    pub packing: (usize, usize, usize),
    /// Test accuracy of the twin with the exact softmax.
    pub plaintext_test_acc: f64,
    /// Test accuracy of the twin with the approximation's f64 twin.
    pub approx_test_acc: f64,
    /// Test accuracy of the decrypted encrypted model (null when only the twins ran).
    pub encrypted_test_acc: Option<f64>,
    /// Steps (of the encrypted run; of the approximate twin when only the twins ran).
    pub steps: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The epoch of the returned model.
    pub model_epoch: usize,
    /// Whether the encrypted run took the approximate twin's steps (the twins stop at
    /// `--max-steps` too; false when early stopping ended them at different epochs): only then do
    /// the two compare step for step.
    pub same_schedule_as_twin: Option<bool>,
    /// Median seconds per encrypted step.
    pub seconds_per_step: Option<f64>,
    /// Bootstraps per encrypted step.
    pub bootstraps_per_step: Option<f64>,
    /// Median seconds of each part of a step.
    pub time_split: Option<StepTimes>,
    /// Peak resident memory, bytes.
    pub peak_rss_bytes: u64,
    /// Wall time of the command, seconds.
    pub total_s: f64,
    /// The twin with the exact softmax.
    pub exact_twin: TwinSummary,
    /// The twin with the approximation.
    pub approx_twin: TwinSummary,
    /// The encrypted run in detail.
    pub encrypted: Option<EncryptedRun>,
    /// Per-epoch log.
    pub epochs: Vec<EpochEntry>,
}

impl TrainReport {
    /// A report with the twins' results.
    pub fn new(opts: &TrainOptions, p: &Prepared, exact: TwinSummary, approx: TwinSummary) -> Self {
        let s = &p.splits;
        TrainReport {
            data: opts.data.display().to_string(),
            preset: opts.preset.clone(),
            twin_only: true,
            classes: s.train.classes,
            features: s.train.cols,
            train_rows: s.train.rows,
            valid_rows: s.valid.rows,
            test_rows: s.test.rows,
            valid_held_out: s.valid_held_out,
            standardised: p.standardised,
            softmax: opts.softmax,
            schedule: p.schedule,
            packing: (p.packing.s0, p.packing.s1, p.packing.pad_c),
            plaintext_test_acc: exact.test_acc,
            approx_test_acc: approx.test_acc,
            encrypted_test_acc: None,
            steps: 0,
            epochs_run: 0,
            stopped_early: false,
            model_epoch: 0,
            same_schedule_as_twin: None,
            seconds_per_step: None,
            bootstraps_per_step: None,
            time_split: None,
            peak_rss_bytes: 0,
            total_s: 0.0,
            exact_twin: exact,
            approx_twin: approx,
            encrypted: None,
            epochs: Vec::new(),
        }
    }

    /// Adds the encrypted run.
    pub fn add_encrypted(&mut self, run: EncryptedRun) {
        self.twin_only = false;
        self.encrypted_test_acc = Some(run.test_acc);
        self.steps = run.steps;
        self.epochs_run = run.epochs_run;
        self.stopped_early = run.stopped_early;
        self.model_epoch = run.model_epoch;
        self.same_schedule_as_twin = Some(run.steps == self.approx_twin.steps);
        self.seconds_per_step = Some(run.seconds_per_step);
        self.bootstraps_per_step = Some(run.bootstraps_per_step);
        self.time_split = Some(run.time_split);
        for c in &run.curve {
            match self.epochs.get_mut(c.epoch - 1) {
                Some(e) => e.encrypted = Some(c.clone()),
                None => self.epochs.push(EpochEntry {
                    epoch: c.epoch,
                    encrypted: Some(c.clone()),
                    approx_twin: None,
                    exact_twin: None,
                }),
            }
        }
        self.encrypted = Some(run);
    }

    /// The printed summary.
    pub fn summary(&self) -> String {
        let pct = |a: f64| format!("{:.2}%", 100.0 * a);
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "data {}: {} classes, {} features, {} train / {} valid{} / {} test rows{}",
            self.data,
            self.classes,
            self.features,
            self.train_rows,
            self.valid_rows,
            if self.valid_held_out { " (held out of train)" } else { "" },
            self.test_rows,
            if self.standardised { ", standardised" } else { "" }
        ));
        let s = &self.schedule;
        line(format!(
            "schedule: batch {}, lr {}, up to {} epochs, patience {}, {} (HETAL defaults: {}), softmax {:?}, preset {}",
            s.batch,
            s.lr,
            s.epochs,
            s.patience,
            s.seed.map_or("file order".to_string(), |x| format!("shuffled, seed {x}")),
            s.defaults.set,
            self.softmax,
            self.preset
        ));
        line(format!(
            "plaintext twin, exact softmax:   test {} (epoch {} of {}{})",
            pct(self.plaintext_test_acc),
            self.exact_twin.model_epoch,
            self.exact_twin.epochs_run,
            self.exact_twin.ending()
        ));
        line(format!(
            "plaintext twin, approximation:   test {} (epoch {} of {}{}; largest logit {:.1})",
            pct(self.approx_test_acc),
            self.approx_twin.model_epoch,
            self.approx_twin.epochs_run,
            self.approx_twin.ending(),
            self.approx_twin.max_abs_step_logit
        ));
        if let Some(e) = &self.encrypted {
            line(format!(
                "encrypted:                       test {} ({}), {} steps",
                pct(e.test_acc),
                if e.cut_by_max_steps {
                    format!("the last weights: --max-steps ended the run after {} full epochs", e.epochs_run)
                } else {
                    format!(
                        "epoch {} of {}{}",
                        e.model_epoch,
                        e.epochs_run,
                        if e.stopped_early { ", stopped early" } else { "" }
                    )
                },
                e.steps
            ));
            let t = &e.time_split;
            line(format!(
                "per step (median): {:.2} s, {:.1} bootstraps (plan {}): matrix products {:.2} s, softmax {:.2} s, bootstraps {:.2} s, weight expansion {:.2} s",
                e.seconds_per_step,
                e.bootstraps_per_step,
                e.planned_bootstraps_per_step,
                t.matmul_s,
                t.softmax_s,
                t.bootstrap_s,
                t.weight_expansion_s
            ));
            line(format!(
                "keygen {:.1} s, encryption {:.1} s ({:.1} MB on disk), training {:.1} s",
                e.keygen_s,
                e.encrypt_s,
                e.dataset_bytes as f64 / 1e6,
                e.train_s
            ));
            if let Some(i) = &e.inference {
                line(format!(
                    "encrypted inference on {} test rows: {} agree with the decrypted model's plaintext predictions, accuracy {}, largest logit error {:.2e}",
                    i.rows,
                    pct(i.agreement),
                    pct(i.accuracy),
                    i.max_abs_logit_error
                ));
            }
        } else {
            line("encrypted: not run (--twin-only)".to_string());
        }
        line(format!("peak memory {:.2} GB, total {:.1} s", self.peak_rss_bytes as f64 / 1e9, self.total_s));
        out
    }
}
