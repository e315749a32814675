//! `hetune train`: strictly encrypted training of a softmax-regression head, with its plaintext
//! twins, in one process.
//!
//! Order of work, cheapest checks first: the preset (secure unless opted out, bootstrappable),
//! the data directory ([`crate::io::dataset::read_splits`]: widths, labels, class count against
//! [`MAX_CLASSES`]), the schedule (HETAL's defaults, [`settings`]), the packing and the server's
//! key request (which fails when the preset lacks levels for the step), then the plaintext twins
//! (the exact softmax and the approximation's f64 twin, same schedule, data order and
//! initialisation), which also check that the logits stay inside the approximation's input range.
//! Only then the heavy part: keys, the encrypted data set on disk, the encrypted steps.
//!
//! Owner ([`owner::DataOwner`]) and server ([`server::Server`]) are two objects that exchange
//! only wire-format bytes: the key request (JSON), the public bundle, the encrypted batches (as
//! files), the encrypted validation loss and weights each epoch, the one-bit answer, encrypted
//! features and logits for inference.

pub mod distributed;
pub mod drive;
pub mod engine;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod owner;
pub mod plot;
pub mod report;
pub mod server;
pub mod settings;
pub mod team;
pub mod wire;

use std::path::{Path, PathBuf};
use std::time::Instant;

use hetune_core::{Parameters, Security};
use hetune_engine::learning::dataset::{permutation, Dataset, Standardizer};
use hetune_engine::learning::early_stopping::Decision;
use hetune_engine::learning::softmax::{HetalSoftmax, Softmax};
use hetune_engine::learning::twin::{self, Model, Order, TwinConfig, TwinRun, ValidLoss};
use hetune_engine::learning::Packing;

use self::owner::DataOwner;
use self::report::{EncryptedEpoch, EncryptedRun, EpochEntry, InferenceReport, TrainReport, TwinSummary};
use self::server::{Server, StepSpec, StepTimes, TrainerFactory};
use self::settings::{schedule, Schedule, SoftmaxChoice, Standardize, TrainOptions};
pub use crate::bench::bootstrap::peak_rss_bytes;
use crate::cli::params::build_preset;
use crate::error::{Error, Result};
use crate::io::dataset::{read_splits, Splits};
use crate::io::keys::PUBLIC_FILE;

/// Most classes `hetune train` takes: the softmax approximations are built and checked for up
/// to 16 classes (`docs/training.md`), and the compact weights of 16 classes (pad 16) times 769
/// columns fill 12,800 of n16-boot's 32,768 slots.
pub const MAX_CLASSES: usize = 16;

/// What the run reports as it goes (the CLI draws progress bars from these).
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// Twin trainers running.
    Twins,
    /// Evaluation keys generated so far.
    Keygen {
        /// Keys done.
        done: usize,
        /// Keys in all.
        total: usize,
    },
    /// Batches of a split encrypted so far.
    Encrypt {
        /// Split.
        split: &'a str,
        /// Batches done.
        done: usize,
        /// Batches in all.
        total: usize,
    },
    /// Bytes uploaded to the daemon so far (`hetune client`).
    Upload {
        /// Bytes acknowledged.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// Encrypted training starts.
    Start {
        /// Steps planned (epochs times batches, or `--max-steps`).
        steps: usize,
        /// Bootstraps the plan places per step.
        planned_bootstraps: usize,
    },
    /// A step finished.
    Step {
        /// Global step, from 1.
        step: usize,
        /// Epoch, from 1.
        epoch: usize,
        /// Its times and bootstraps.
        times: &'a StepTimes,
    },
    /// The owner judged an epoch.
    Epoch {
        /// Epoch.
        epoch: usize,
        /// Decrypted validation loss.
        valid_mse: f64,
        /// Continue or stop.
        decision: Decision,
    },
    /// Training ended.
    Done,
}

/// The features after the owner's standardisation, and whether it standardised.
fn standardise(splits: &mut Splits, how: Standardize) -> Result<bool> {
    let on = match how {
        Standardize::On => true,
        Standardize::Off => false,
        Standardize::Auto => splits.train.needs_standardising(),
    };
    if on {
        let s = Standardizer::fit(&splits.train);
        s.apply(&mut splits.train)?;
        s.apply(&mut splits.valid)?;
        s.apply(&mut splits.test)?;
    }
    Ok(on)
}

/// The f64 twin of the encrypted softmax.
pub fn approx_softmax(choice: SoftmaxChoice, classes: usize) -> Result<Softmax> {
    Ok(match choice {
        SoftmaxChoice::Nas => Softmax::default_for(classes)?,
        SoftmaxChoice::NasPrecise => Softmax::precise_nas(classes)?,
        SoftmaxChoice::Hetal => Softmax::Hetal(HetalSoftmax::published(classes)),
    })
}

/// The preset, checked for training: 128-bit unless opted out, with bootstrapping limbs.
pub fn training_preset(name: &str, insecure: bool) -> Result<Parameters> {
    let params = build_preset(name, insecure)?;
    if params.boot_limbs() == 0 {
        return Err(Error::NotBootstrappable(name.to_string()));
    }
    Ok(params)
}

/// Everything checked and decided before any heavy work.
pub struct Prepared {
    /// Parameters.
    pub params: Parameters,
    /// Splits, standardised when `standardised`.
    pub splits: Splits,
    /// Whether the owner standardised.
    pub standardised: bool,
    /// Schedule.
    pub schedule: Schedule,
    /// Block packing of a batch.
    pub packing: Packing,
    /// Rows of a part of a batch (the encrypted files' rows): the batch when one block row holds
    /// it, else one block row (`packing.s0`; the batch is then a multiple of it).
    pub part: usize,
    /// The step's shape.
    pub spec: StepSpec,
    /// Data order.
    pub order: Order,
}

/// Reads and checks everything (preset, data, schedule, packing); nothing heavy.
pub fn prepare(opts: &TrainOptions) -> Result<Prepared> {
    let params = training_preset(&opts.preset, opts.insecure_testing_only)?;
    let mut splits = read_splits(&opts.data, MAX_CLASSES)?;
    let classes = splits.train.classes;
    let unit_norm = !splits.train.needs_standardising();
    let standardised = standardise(&mut splits, opts.standardize)?;
    let slots = params.max_slots();
    let pad_c = classes.next_power_of_two().max(2);
    let max_batch = (slots / pad_c).max(1);
    let schedule = schedule(opts, classes, unit_norm, standardised, max_batch, splits.train.rows)?;
    let packing = Packing::hetal(classes, schedule.batch, slots)?;
    // A batch beyond one block row comes in parts of one block row each, summed exactly (and
    // shared out among the ranks of a distributed run).
    if schedule.batch > packing.s0 && !schedule.batch.is_multiple_of(packing.s0) {
        return Err(Error::BadArgument {
            name: "--batch",
            value: schedule.batch.to_string(),
            expected: format!(
                "at most {} rows (one block row of {classes} classes at {}) or a multiple of it",
                packing.s0, opts.preset
            ),
        });
    }
    let part = schedule.batch.min(packing.s0);
    let spec = StepSpec {
        classes,
        cols: splits.train.cols + 1,
        batch: schedule.batch,
        lr: schedule.lr,
        softmax: opts.softmax,
    };
    let order = match opts.seed {
        Some(seed) => Order::Shuffled { seed },
        None => Order::File,
    };
    Ok(Prepared { params, splits, standardised, schedule, packing, part, spec, order })
}

/// Runs both twins; refuses a schedule whose logits leave the approximation's input range.
fn run_twins(p: &Prepared, softmax: &Softmax, max_steps: Option<usize>) -> Result<(TwinRun, TwinRun)> {
    let s = &p.splits;
    let cfg = |sm: Softmax| TwinConfig {
        lr: p.schedule.lr,
        batch: p.schedule.batch,
        epochs: p.schedule.epochs,
        order: p.order,
        softmax: sm,
        patience: Some(p.schedule.patience),
        valid_loss: ValidLoss::Mse,
        max_steps,
    };
    let exact = twin::train(&s.train, Some(&s.valid), Some(&s.test), &cfg(Softmax::Exact))?;
    let approx = twin::train(&s.train, Some(&s.valid), Some(&s.test), &cfg(softmax.clone()))?;
    if let Some(epoch) = approx.out_of_range_epoch {
        let max_logit = approx.log[epoch - 1].max_abs_step_logit;
        return Err(Error::LogitsOutOfRange { epoch, max_logit, bound: softmax.input_bound(), lr: p.schedule.lr });
    }
    Ok((exact, approx))
}

/// A fresh private working directory (0700) under the system's temporary directory.
fn work_dir(opts: &TrainOptions) -> Result<(PathBuf, bool)> {
    match &opts.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
            Ok((d.clone(), false))
        }
        None => Ok((crate::cli::private_temp_dir("hetune-train")?, true)),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `hetune train`: the checks, the twins and, unless `twin_only`, encrypted training with
/// the trainer of `factory`, owner and server in this process.
pub fn run(
    opts: &TrainOptions,
    twin_only: bool,
    factory: &dyn TrainerFactory,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<TrainReport> {
    run_on(opts, twin_only, factory, events, &mut team::Solo)
}

/// [`run`] as the root of `team`: the owner's side here, the steps shared with the other ranks
/// (which run [`distributed::follow`]).
pub fn run_on(
    opts: &TrainOptions,
    twin_only: bool,
    factory: &dyn TrainerFactory,
    events: &(dyn Fn(Event<'_>) + Sync),
    team: &mut dyn team::Team,
) -> Result<TrainReport> {
    let mut local = |p: &Prepared, softmax: &Softmax| -> Result<EncryptedRun> {
        // The server's key request: the trainer's own check of the preset (levels, slots).
        let request = factory.key_request(&p.params, &p.spec)?;
        encrypted(opts, p, softmax, &request, factory, events, &mut *team)
    };
    run_with(opts, if twin_only { None } else { Some(&mut local) }, events)
}

/// The encrypted part of a run, given everything checked: in this process ([`run`]) or through a
/// daemon (`hetune client`).
pub type EncryptedPart<'a> = &'a mut dyn FnMut(&Prepared, &Softmax) -> Result<EncryptedRun>;

/// The checks, the twins and, when `encrypted` is given, the encrypted run it performs.
pub fn run_with(
    opts: &TrainOptions,
    encrypted: Option<EncryptedPart<'_>>,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<TrainReport> {
    let start = Instant::now();
    let twin_only = encrypted.is_none();
    let p = prepare(opts)?;
    let softmax = approx_softmax(opts.softmax, p.spec.classes)?;
    events(Event::Twins);
    let (exact, approx) = run_twins(&p, &softmax, opts.max_steps)?;
    // The encrypted weights are bootstrapped scaled down by 2^weight_bits; W and Nesterov's V
    // (up to about twice |W| as gamma nears -1) must stay inside: checked on the twin's model.
    let bound = f64::from(1u32 << engine::config(&p.spec, p.params.max_slots()).weight_bits.min(30)) / 2.0;
    let max_weight = TwinSummary::of(&approx).max_abs_weight;
    if !twin_only && max_weight >= bound {
        return Err(Error::WeightsOutOfRange { max_weight, bound, lr: p.schedule.lr });
    }
    let mut report = TrainReport::new(opts, &p, TwinSummary::of(&exact), TwinSummary::of(&approx));
    report.epochs = EpochEntry::from_twins(&exact, &approx);
    if let Some(encrypted) = encrypted {
        let run = encrypted(&p, &softmax)?;
        report.add_encrypted(run);
    } else {
        report.steps = approx.steps;
        report.epochs_run = approx.log.len();
        report.stopped_early = approx.stopped_early;
        report.model_epoch = approx.model_epoch;
    }
    events(Event::Done);
    report.peak_rss_bytes = peak_rss_bytes();
    report.total_s = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The encrypted run: keys, encrypted data, steps, early stopping, the decrypted model,
/// encrypted inference.
fn encrypted(
    opts: &TrainOptions,
    p: &Prepared,
    softmax: &Softmax,
    request: &hetune_engine::evaluator::KeyRequest,
    factory: &dyn TrainerFactory,
    events: &(dyn Fn(Event<'_>) + Sync),
    team: &mut dyn team::Team,
) -> Result<EncryptedRun> {
    let security = if opts.insecure_testing_only { Security::InsecureForTestingOnly } else { Security::Require128Bits };
    if opts.resume && opts.work_dir.is_none() {
        return Err(Error::MissingArgument { name: "--work-dir", with: "--resume" });
    }
    let (dir, temporary) = work_dir(opts)?;
    let result = encrypted_in(&dir, opts, p, softmax, request, factory, events, security, team);
    if temporary {
        // Keys and ciphertexts of a temporary directory go with it, whether the run succeeded or not.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// What a working directory's run is: checked on `--resume` so that a run continues only with
/// the data, shape and schedule it started with.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunRecord {
    data: String,
    preset: String,
    spec: serde_json::Value,
    schedule: serde_json::Value,
    order: serde_json::Value,
    standardised: bool,
    rows: (usize, usize),
}

const RUN_FILE: &str = "run.json";

impl RunRecord {
    fn of(opts: &TrainOptions, p: &Prepared) -> Result<Self> {
        let data = std::fs::canonicalize(&opts.data).map_err(|e| Error::io(&opts.data, e))?;
        Ok(RunRecord {
            data: data.display().to_string(),
            preset: opts.preset.clone(),
            spec: serde_json::to_value(p.spec)?,
            schedule: serde_json::to_value(p.schedule)?,
            order: serde_json::to_value(p.order)?,
            standardised: p.standardised,
            rows: (p.splits.train.rows, p.splits.valid.rows),
        })
    }
}

/// The encrypted batches of a split of `rows` rows in `dir`, as [`DataOwner::encrypt_split`]
/// names them; each file must exist.
pub fn split_files(dir: &Path, name: &str, rows: usize, batch: usize) -> Result<owner::EncryptedSplit> {
    let mut batches = Vec::new();
    let mut bytes = 0;
    for k in 0..rows.div_ceil(batch) {
        let (x, y) = (dir.join(format!("{name}_{k}_x.hct")), dir.join(format!("{name}_{k}_y.hct")));
        for f in [&x, &y] {
            bytes += std::fs::metadata(f).map_err(|e| Error::io(f, e))?.len();
        }
        batches.push(owner::BatchFiles { x, y, rows: ((k + 1) * batch).min(rows) - k * batch });
    }
    Ok(owner::EncryptedSplit { batches, rows, bytes })
}

#[allow(clippy::too_many_arguments)]
fn encrypted_in(
    dir: &Path,
    opts: &TrainOptions,
    p: &Prepared,
    softmax: &Softmax,
    request: &hetune_engine::evaluator::KeyRequest,
    factory: &dyn TrainerFactory,
    events: &(dyn Fn(Event<'_>) + Sync),
    security: Security,
    team: &mut dyn team::Team,
) -> Result<EncryptedRun> {
    let (owner_dir, server_dir, data_dir) = (dir.join("owner"), dir.join("server"), dir.join("data"));
    let s = &p.splits;
    let train: Dataset = match p.order {
        Order::File => s.train.clone(),
        Order::Shuffled { seed } => s.train.select(&permutation(s.train.rows, seed)),
    };
    let level = p.params.default_level();
    let (b, pk, part) = (p.schedule.batch, p.packing, p.part);
    let record = RunRecord::of(opts, p)?;
    let run_file = dir.join(RUN_FILE);
    let (mut keygen_s, mut encrypt_s) = (0.0, 0.0);

    let (mut owner, train_enc, valid_enc) = if opts.resume {
        let bytes = std::fs::read(&run_file).map_err(|e| Error::io(&run_file, e))?;
        let earlier: RunRecord = serde_json::from_slice(&bytes)?;
        if earlier != record {
            return Err(Error::ResumeMismatch { dir: dir.to_path_buf() });
        }
        let owner = DataOwner::reopen(&owner_dir, security, p.schedule.patience)?;
        (
            owner,
            split_files(&data_dir, "train", train.rows, part)?,
            split_files(&data_dir, "valid", s.valid.rows, part)?,
        )
    } else {
        std::fs::create_dir_all(&server_dir).map_err(|e| Error::io(&server_dir, e))?;
        // A fresh run in a used directory: an earlier run's progress must not be resumed into it.
        for old in [server_dir.join(server::CHECKPOINT_FILE), owner_dir.join(owner::EPOCHS_FILE)] {
            match std::fs::remove_file(&old) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&old, e)),
                _ => {}
            }
        }
        std::fs::write(&run_file, serde_json::to_vec_pretty(&record)?).map_err(|e| Error::io(&run_file, e))?;
        // Keys: the server asks (JSON), the owner generates; the bundle goes to the server's directory.
        let t = Instant::now();
        let request_json = serde_json::to_vec(request)?;
        let keygen = |done, total| events(Event::Keygen { done, total });
        let bundle = server_dir.join(PUBLIC_FILE);
        let mut owner = DataOwner::generate(&p.params, &request_json, &owner_dir, &bundle, security, &keygen)?;
        owner.set_patience(p.schedule.patience);
        keygen_s = t.elapsed().as_secs_f64();
        // The owner's data: rows in its order (permuted once when shuffling), batch by batch.
        let t = Instant::now();
        let mut enc = |d: &Dataset, name: &str| {
            let shape = owner::BatchShape { batch: part, packing: pk, level };
            owner.encrypt_split(d, name, shape, &data_dir, &|done, total| {
                events(Event::Encrypt { split: name, done, total })
            })
        };
        let (tr, va) = (enc(&train, "train")?, enc(&s.valid, "valid")?);
        encrypt_s = t.elapsed().as_secs_f64();
        (owner, tr, va)
    };
    let dataset_bytes = train_enc.bytes + valid_enc.bytes;

    // The other ranks of a distributed run (none in one process) learn the job now that its
    // keys and data are on disk, open the same server directory, and show their fingerprints.
    let job = distributed::Job {
        spec: p.spec,
        train_rows: train.rows,
        valid_rows: valid_enc.rows,
        part,
        epochs: p.schedule.epochs,
        max_steps: opts.max_steps,
        seed: p.schedule.seed,
    };
    team.share_bytes(Some(serde_json::to_vec(&job)?))?;
    let (mut server, at) = Server::open(&server_dir, factory, &p.spec, security, opts.resume, opts.key_memory)?;
    team.agree(&server.fingerprint())?;
    if server.layout() != engine::layout(&p.spec, p.params.max_slots())? {
        return Err(Error::InvalidArgument("the server's compact weight layout is not the one the shape gives"));
    }
    let course = job.course();
    // Bootstraps of a full step on this process: its parts' and the weights'.
    let planned = server.planned_bootstraps_for(course.parts_per_step().div_ceil(team.size()));
    let t = Instant::now();
    let mut judge = OwnerJudge { owner: &mut owner, valid_rows: valid_enc.rows, events };
    let outcome =
        drive::drive(&mut server, &server_dir, at, &course, &train_enc, &valid_enc, &mut judge, events, team)?;
    let train_s = t.elapsed().as_secs_f64();

    // Encrypted inference with the server's current weights, against the plaintext predictions
    // of the same weights decrypted.
    let current_bytes = server.weights()?;
    let current = owner.decrypt_weights(&current_bytes, &p.spec)?;
    let infer_rows = opts.infer_rows.unwrap_or(b).min(s.test.rows);
    let inference =
        if infer_rows > 0 { Some(infer(&mut owner, &server, &current, &s.test, infer_rows, pk, level)?) } else { None };
    let costs = Costs { keygen_s, encrypt_s, train_s, dataset_bytes, planned_bootstraps: planned, ranks: team.size() };
    summarise(&owner, p, softmax, &train, &current_bytes, outcome, inference, costs)
}

/// What an encrypted run cost, besides its steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct Costs {
    /// Key generation, seconds.
    pub keygen_s: f64,
    /// Encryption of the data set, seconds.
    pub encrypt_s: f64,
    /// Training, seconds.
    pub train_s: f64,
    /// Bytes of the encrypted data set.
    pub dataset_bytes: u64,
    /// Bootstraps the plan places per step.
    pub planned_bootstraps: usize,
    /// Processes the steps ran on.
    pub ranks: usize,
}

/// The owner's account of an encrypted run: each judged epoch's decrypted model evaluated (the
/// curves), the kept model (the best epoch's; the current weights `current`, wire bytes, when
/// `max_steps` cut the run or no epoch was judged) and its test accuracy.
#[allow(clippy::too_many_arguments)]
pub fn summarise(
    owner: &DataOwner,
    p: &Prepared,
    softmax: &Softmax,
    train: &Dataset,
    current: &[u8],
    outcome: drive::Outcome,
    inference: Option<InferenceReport>,
    costs: Costs,
) -> Result<EncryptedRun> {
    let s = &p.splits;
    let drive::Outcome { step, times, stopped_early, cut, epoch_seconds } = outcome;
    let epochs_run = owner.epochs_judged();
    let mut curve = Vec::with_capacity(epochs_run);
    let mut models: Vec<Model> = Vec::with_capacity(epochs_run);
    for e in 1..=epochs_run {
        let m = owner.decrypt_snapshot(e, &p.spec)?;
        let ev = |d: &Dataset| twin::evaluate(&m, d, softmax);
        curve.push(EncryptedEpoch {
            epoch: e,
            seconds: epoch_seconds.get(e - 1).copied().unwrap_or(0.0),
            encrypted_valid_mse: owner.losses()[e - 1],
            train: ev(train),
            valid: ev(&s.valid),
            test: ev(&s.test),
        });
        models.push(m);
    }
    let current = owner.decrypt_weights(current, &p.spec)?;
    let (model_epoch, model) = if cut || epochs_run == 0 {
        (epochs_run, &current)
    } else {
        (owner.kept_epoch(), &models[owner.kept_epoch() - 1])
    };
    let sum = |f: fn(&StepTimes) -> f64| median(times.iter().map(f).collect());
    Ok(EncryptedRun {
        test_acc: model.accuracy(&s.test),
        steps: step,
        epochs_run,
        stopped_early,
        cut_by_max_steps: cut,
        model_epoch,
        seconds_per_step: sum(|t| t.total_s),
        bootstraps_per_step: if times.is_empty() {
            0.0
        } else {
            times.iter().map(|t| t.bootstraps as f64).sum::<f64>() / times.len() as f64
        },
        planned_bootstraps_per_step: costs.planned_bootstraps,
        ranks: costs.ranks,
        time_split: StepTimes {
            bootstraps: times.iter().map(|t| t.bootstraps).max().unwrap_or(0),
            matmul_s: sum(|t| t.matmul_s),
            softmax_s: sum(|t| t.softmax_s),
            bootstrap_s: sum(|t| t.bootstrap_s),
            weight_expansion_s: sum(|t| t.weight_expansion_s),
            total_s: sum(|t| t.total_s),
            comm_s: sum(|t| t.comm_s),
            comm_bytes: sum(|t| t.comm_bytes as f64) as u64,
        },
        keygen_s: costs.keygen_s,
        encrypt_s: costs.encrypt_s,
        train_s: costs.train_s,
        dataset_bytes: costs.dataset_bytes,
        inference,
        curve,
        weights: model.w.clone(),
    })
}

/// The owner in the same process as the judge of the server's loop: it decrypts the loss,
/// keeps the weights undecrypted, records the epoch (for `--resume`) and answers.
struct OwnerJudge<'a, 'e> {
    owner: &'a mut DataOwner,
    valid_rows: usize,
    events: &'e (dyn Fn(Event<'_>) + Sync),
}

impl drive::Judge for OwnerJudge<'_, '_> {
    fn judged(&self) -> usize {
        self.owner.epochs_judged()
    }
    fn stopped(&self) -> bool {
        self.owner.has_stopped()
    }
    fn judge(&mut self, epoch: usize, loss: Vec<u8>, weights: Vec<u8>) -> Result<Decision> {
        let v = self.owner.judge_epoch(epoch, &loss, &weights, self.valid_rows)?;
        self.owner.save_epochs()?;
        (self.events)(Event::Epoch { epoch, valid_mse: v.valid_mse, decision: v.decision });
        Ok(v.decision)
    }
}

/// Encrypted inference on the first `rows` test rows, batch by batch.
fn infer(
    owner: &mut DataOwner,
    server: &Server,
    model: &Model,
    test: &Dataset,
    rows: usize,
    packing: Packing,
    level: usize,
) -> Result<InferenceReport> {
    let t = Instant::now();
    let c = test.classes;
    let plain = model.predict(test);
    let (mut agree, mut correct, mut max_err) = (0usize, 0usize, 0.0f64);
    let mut z = vec![0.0; c];
    let chunk = packing.s0;
    for lo in (0..rows).step_by(chunk) {
        let hi = (lo + chunk).min(rows);
        let x = owner.encrypt_features(test, lo..hi, packing, level)?;
        let logits = owner.decrypt_logits(&server.infer(&x)?, hi - lo, c)?;
        for (r, i) in (lo..hi).enumerate() {
            let got = &logits[r * c..(r + 1) * c];
            model.logits(test.row(i), &mut z);
            max_err = got.iter().zip(&z).fold(max_err, |m, (a, b)| m.max((a - b).abs()));
            let pred = got.iter().enumerate().fold(0, |best, (j, &v)| if v > got[best] { j } else { best });
            agree += usize::from(pred == plain[i]);
            correct += usize::from(pred == test.y[i]);
        }
    }
    Ok(InferenceReport {
        rows,
        agreement: agree as f64 / rows as f64,
        accuracy: correct as f64 / rows as f64,
        max_abs_logit_error: max_err,
        seconds: t.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        assert!(peak_rss_bytes() > 0);
    }
}
