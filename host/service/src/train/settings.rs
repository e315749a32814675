//! The settings of `hetune train`: what the user gave, and HETAL's defaults per data set for
//! what they did not (Lee et al., ICML 2023, table of hyperparameters; `../shared/notes/hetal.md`).

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};

/// Whether the owner standardises the features (train mean and standard deviation) before
/// encrypting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standardize {
    /// When the training rows are not unit-norm ([`hetune_engine::learning::dataset::Dataset::needs_standardising`]).
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl std::str::FromStr for Standardize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Standardize::Auto),
            "on" => Ok(Standardize::On),
            "off" => Ok(Standardize::Off),
            _ => Err(bad("--standardize", s, "auto, on or off")),
        }
    }
}

/// Which softmax approximation the encrypted step uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SoftmaxChoice {
    /// Normalize-and-square, lean (the default: fewest bootstraps; `docs/training.md`).
    Nas,
    /// Normalize-and-square, precise (more levels, the same error at this range).
    #[serde(rename = "nas-precise")]
    NasPrecise,
    /// HETAL's (maximum by comparison, domain extension, Goldschmidt inverse).
    Hetal,
}

impl std::str::FromStr for SoftmaxChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nas" => Ok(SoftmaxChoice::Nas),
            "nas-precise" => Ok(SoftmaxChoice::NasPrecise),
            "hetal" => Ok(SoftmaxChoice::Hetal),
            _ => Err(bad("--softmax", s, "nas, nas-precise or hetal")),
        }
    }
}

fn bad(name: &'static str, value: &str, expected: &str) -> Error {
    Error::BadArgument { name, value: value.to_string(), expected: expected.to_string() }
}

/// Everything `hetune train` is asked to do (the command line, parsed).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Directory of `{train,valid,test}_{x,y}.npy`.
    pub data: PathBuf,
    /// Parameter preset.
    pub preset: String,
    /// Epochs at most (default: HETAL's for the data set).
    pub epochs: Option<usize>,
    /// Rows per batch (default: HETAL's, at most the packing's block rows).
    pub batch: Option<usize>,
    /// Learning rate (default: HETAL's; 0.1 on standardised features).
    pub lr: Option<f64>,
    /// Softmax approximation.
    pub softmax: SoftmaxChoice,
    /// Stop the encrypted run after this many steps.
    pub max_steps: Option<usize>,
    /// Threads (default: rayon's, one per core).
    pub threads: Option<usize>,
    /// Draw the per-epoch curves into this PNG.
    pub plot: Option<PathBuf>,
    /// Early-stopping patience in epochs.
    pub patience: usize,
    /// Shuffle seed: rows permuted once by the owner, batches visited in a seeded order every
    /// epoch. Without it: file order, as HETAL's reference schedule.
    pub seed: Option<u64>,
    /// Standardisation.
    pub standardize: Standardize,
    /// Test rows classified by encrypted inference (0: none; default one batch).
    pub infer_rows: Option<usize>,
    /// Working directory (keys, encrypted data set, snapshots); default a private temporary
    /// directory removed at the end.
    pub work_dir: Option<PathBuf>,
    /// Continue the run in `work_dir` from its last checkpoint (keys, encrypted data and the
    /// owner's judged epochs reused).
    pub resume: bool,
    /// Accept a preset below 128-bit security.
    pub insecure_testing_only: bool,
    /// Bytes of evaluation keys the server holds in memory at most (`None`: every key it has
    /// used; see [`hetune_engine::evaluator::Evaluator::with_store_within`]).
    pub key_memory: Option<u64>,
}

impl TrainOptions {
    /// Options with every default, for `data`.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        TrainOptions {
            data: data.into(),
            preset: "n16-boot".into(),
            epochs: None,
            batch: None,
            lr: None,
            softmax: SoftmaxChoice::Nas,
            max_steps: None,
            threads: None,
            plot: None,
            patience: 3,
            seed: None,
            standardize: Standardize::Auto,
            infer_rows: None,
            work_dir: None,
            resume: false,
            insecure_testing_only: false,
            key_memory: None,
        }
    }
}

/// HETAL's hyperparameters for one of its data sets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HetalDefaults {
    /// The data set they come from (or "none").
    pub set: &'static str,
    /// Batch.
    pub batch: usize,
    /// Learning rate (for features as HETAL fed them: unit-norm or raw).
    pub lr: f64,
    /// Epochs.
    pub epochs: usize,
}

/// HETAL's defaults for a set of `classes` classes; `unit_norm` tells SNIPS (sentence
/// embeddings) from DermaMNIST at 7 classes. A class count HETAL never trained takes batch
/// 1024, lr 1 and 10 epochs (the reference script's schedule).
pub fn hetal_defaults(classes: usize, unit_norm: bool) -> HetalDefaults {
    let d = |set, batch, lr, epochs| HetalDefaults { set, batch, lr, epochs };
    match (classes, unit_norm) {
        (3, _) => d("Face Mask", 512, 0.5, 22),
        (7, true) => d("SNIPS", 1024, 1.0, 14),
        (7, false) => d("DermaMNIST", 1024, 0.3, 23),
        (10, _) => d("MNIST", 1024, 2.0, 7),
        _ => d("none", 1024, 1.0, 10),
    }
}

/// Learning rate on standardised features: z-scored rows have norm about `sqrt(d)` (28 at 768
/// features) where HETAL's inputs were unit-norm or raw, and at lr 1 or 0.3 the logits of
/// MNIST-DINOv2 reach 333 and 105, beyond normalize-and-square's range of 32; lr 0.1 keeps them
/// within 24 over 30 epochs and tests as well (`docs/training.md`).
pub const STANDARDISED_LR: f64 = 0.1;

/// The schedule a run uses, after defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Schedule {
    /// Rows per batch.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Epochs at most.
    pub epochs: usize,
    /// Patience of early stopping.
    pub patience: usize,
    /// Shuffle seed (none: file order).
    pub seed: Option<u64>,
    /// Where the defaults came from.
    pub defaults: HetalDefaults,
}

/// Fills in HETAL's defaults: `max_batch` is the largest batch one block row of the packing
/// holds (`slots / pad_c`), which a default batch never exceeds; `train_rows` caps it too.
pub fn schedule(
    opts: &TrainOptions,
    classes: usize,
    unit_norm: bool,
    standardised: bool,
    max_batch: usize,
    train_rows: usize,
) -> Result<Schedule> {
    let defaults = hetal_defaults(classes, unit_norm);
    let batch = opts.batch.unwrap_or_else(|| defaults.batch.min(max_batch).min(train_rows.next_power_of_two()));
    if batch == 0 {
        return Err(bad("--batch", "0", "a positive number of rows"));
    }
    let lr = opts.lr.unwrap_or(if standardised { STANDARDISED_LR } else { defaults.lr });
    if !lr.is_finite() || lr <= 0.0 {
        return Err(bad("--lr", &lr.to_string(), "a positive, finite learning rate"));
    }
    let epochs = opts.epochs.unwrap_or(defaults.epochs);
    if epochs == 0 {
        return Err(bad("--epochs", "0", "at least one epoch"));
    }
    if opts.patience == 0 {
        return Err(bad("--patience", "0", "at least one epoch"));
    }
    if opts.max_steps == Some(0) {
        return Err(bad("--max-steps", "0", "at least one step"));
    }
    Ok(Schedule { batch, lr, epochs, patience: opts.patience, seed: opts.seed, defaults })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_hetal_and_standardisation() {
        let o = TrainOptions::new("d");
        let s = schedule(&o, 7, true, false, 4096, 13084).unwrap();
        assert_eq!((s.batch, s.lr, s.epochs, s.defaults.set), (1024, 1.0, 14, "SNIPS"));
        let s = schedule(&o, 10, false, true, 2048, 5250).unwrap();
        assert_eq!((s.batch, s.lr, s.epochs), (1024, STANDARDISED_LR, 7));
        // A small packing or a small training set caps the default batch, never a given one.
        assert_eq!(schedule(&o, 7, true, false, 256, 13084).unwrap().batch, 256);
        assert_eq!(schedule(&o, 7, true, false, 4096, 100).unwrap().batch, 128);
        let given = TrainOptions { batch: Some(512), lr: Some(0.5), epochs: Some(2), ..o.clone() };
        let s = schedule(&given, 7, true, true, 256, 100).unwrap();
        assert_eq!((s.batch, s.lr, s.epochs), (512, 0.5, 2));
        for bad in [
            TrainOptions { lr: Some(-1.0), ..o.clone() },
            TrainOptions { lr: Some(f64::NAN), ..o.clone() },
            TrainOptions { epochs: Some(0), ..o.clone() },
            TrainOptions { batch: Some(0), ..o.clone() },
            TrainOptions { patience: 0, ..o.clone() },
            TrainOptions { max_steps: Some(0), ..o.clone() },
        ] {
            assert!(schedule(&bad, 7, true, false, 256, 100).is_err(), "{bad:?}");
        }
        assert_eq!("hetal".parse::<SoftmaxChoice>().unwrap(), SoftmaxChoice::Hetal);
        assert_eq!("nas-precise".parse::<SoftmaxChoice>().unwrap(), SoftmaxChoice::NasPrecise);
        assert!("exact".parse::<SoftmaxChoice>().is_err());
        assert!("maybe".parse::<Standardize>().is_err());
    }
}
