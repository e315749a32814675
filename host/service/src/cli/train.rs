//! `hetune train`: progress bars, the printed summary or one JSON object, the figure.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::train::engine::EngineTrainers;
use crate::train::settings::TrainOptions;
use crate::train::{self, plot, Event};

/// The arguments of `hetune train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Directory of {train,valid,test}_{x,y}.npy (valid optional: 12.5% of train is held out).
    #[arg(long)]
    data: PathBuf,
    /// Parameter preset (bootstrappable).
    #[arg(long, default_value = "n16-boot")]
    preset: String,
    /// Epochs at most (default: HETAL's for the data set).
    #[arg(long)]
    epochs: Option<usize>,
    /// Rows per batch (default: HETAL's, at most one block row of the packing).
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (default: HETAL's; 0.1 on standardised features).
    #[arg(long)]
    lr: Option<f64>,
    /// Softmax approximation: nas (normalize-and-square, lean), nas-precise or hetal.
    #[arg(long, default_value = "nas")]
    softmax: String,
    /// Stop the encrypted run after this many steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Draw loss and accuracy per epoch into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Early-stopping patience, epochs.
    #[arg(long, default_value_t = 3)]
    patience: usize,
    /// Shuffle with this seed (default: file order, as HETAL's reference schedule).
    #[arg(long)]
    seed: Option<u64>,
    /// Standardise features with the train mean and std: auto (when rows are not unit-norm), on, off.
    #[arg(long, default_value = "auto")]
    standardize: String,
    /// Test rows classified by encrypted inference (default: one batch; 0: none).
    #[arg(long)]
    infer_rows: Option<usize>,
    /// Working directory for keys, the encrypted data set and weight snapshots (kept); default a
    /// private temporary directory, removed at the end.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Continue the run in --work-dir from its last checkpoint (written after every step).
    #[arg(long)]
    resume: bool,
    /// Run only the plaintext twins (checks the schedule; no keys, nothing encrypted).
    #[arg(long)]
    twin_only: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Accept a preset below 128-bit security. For tests only, never for real data.
    #[arg(long)]
    insecure_testing_only: bool,
    /// Data-parallel run over MPI: start with `mpirun -np R hetune train --distributed
    /// --work-dir DIR ...` (DIR visible to every rank). Rank 0 is the owner and the root; each
    /// rank computes its share of every step's block rows (a batch of several block rows:
    /// `--batch` a multiple of one). Needs a build with the `mpi` feature.
    #[arg(long)]
    distributed: bool,
    /// Evaluation keys the server holds in memory at most, in GB (the least recently used are
    /// dropped and read again from the bundle when needed; default: every key it has used).
    #[arg(long)]
    key_memory_gb: Option<f64>,
    /// Raw data extracted into --data first (feature `extract`).
    #[cfg(feature = "extract")]
    #[command(flatten)]
    raw: super::extract::RawArgs,
}

impl TrainArgs {
    /// Whether only the twins are asked for.
    pub(super) fn twin_only(&self) -> bool {
        self.twin_only
    }

    /// Runs the `--raw` extraction into `--data` (feature `extract`; nothing otherwise).
    pub(super) fn extract_raw(&self) -> Result<()> {
        #[cfg(feature = "extract")]
        super::extract::extract_raw(&self.raw, &self.data, self.threads)?;
        Ok(())
    }

    pub(super) fn options(&self) -> Result<TrainOptions> {
        Ok(TrainOptions {
            data: self.data.clone(),
            preset: self.preset.clone(),
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            softmax: self.softmax.parse()?,
            max_steps: self.max_steps,
            threads: self.threads,
            plot: self.plot.clone(),
            patience: self.patience,
            seed: self.seed,
            standardize: self.standardize.parse()?,
            infer_rows: self.infer_rows,
            work_dir: self.work_dir.clone(),
            resume: self.resume,
            insecure_testing_only: self.insecure_testing_only,
            key_memory: gigabytes("--key-memory-gb", self.key_memory_gb)?,
        })
    }
}

/// Progress bars drawn from the run's events on stderr; when stderr is not a terminal (a long
/// run logged to a file), one plain line per step, epoch and phase instead.
pub(super) struct Bars {
    bar: Mutex<Option<(&'static str, ProgressBar)>>,
    bootstraps: Mutex<usize>,
    lines: bool,
    /// Start of training, its total steps, and the first step counted (after a resume).
    clock: Mutex<Option<(std::time::Instant, usize, Option<usize>)>>,
}

impl Bars {
    pub(super) fn new() -> Self {
        use std::io::IsTerminal;
        Bars {
            bar: Mutex::new(None),
            bootstraps: Mutex::new(0),
            lines: !std::io::stderr().is_terminal(),
            clock: Mutex::new(None),
        }
    }

    fn line(&self, e: Event<'_>) {
        match e {
            Event::Twins => eprintln!("plaintext twins (exact softmax, approximation)"),
            Event::Keygen { done, total } if done == total => eprintln!("keygen: {total} keys"),
            Event::Encrypt { split, done, total } if done == total => eprintln!("encrypted {split}: {total} batches"),
            Event::Start { steps, planned_bootstraps } => {
                eprintln!("training: up to {steps} steps, {planned_bootstraps} bootstraps per step planned");
                *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), steps, None));
            }
            Event::Step { step, epoch, times } => {
                let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
                let eta = clock.as_mut().map_or(String::new(), |(t0, total, first)| {
                    let first = *first.get_or_insert(step);
                    let per = t0.elapsed().as_secs_f64() / (step + 1 - first) as f64;
                    format!(", ETA {:.0} s", per * total.saturating_sub(step) as f64)
                });
                let gb = |b: u64| b as f64 / 1e9;
                let comm = if times.comm_bytes > 0 {
                    format!(", exchanged {:.2} MB in {:.3} s", times.comm_bytes as f64 / 1e6, times.comm_s)
                } else {
                    String::new()
                };
                eprintln!(
                    "step {step} (epoch {epoch}): {:.1} s, {} bootstraps ({:.1} s), matrix products {:.1} s, softmax {:.1} s, expansion {:.1} s{comm}, RSS {:.2} GB (peak {:.2} GB){eta}",
                    times.total_s,
                    times.bootstraps,
                    times.bootstrap_s,
                    times.matmul_s,
                    times.softmax_s,
                    times.weight_expansion_s,
                    gb(crate::bench::bootstrap::rss_bytes()),
                    gb(crate::bench::bootstrap::peak_rss_bytes())
                );
            }
            Event::Epoch { epoch, valid_mse, decision } => {
                eprintln!("epoch {epoch}: validation MSE {valid_mse:.5} (decrypted by the owner): {decision:?}")
            }
            Event::Upload { done, total } if done == total => eprintln!("uploaded {total} bytes to the daemon"),
            _ => {}
        }
    }

    fn bar(&self, phase: &'static str, len: usize, template: &str) -> ProgressBar {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, b)) = slot.as_ref() {
            if *p == phase {
                return b.clone();
            }
            b.finish_and_clear();
        }
        let b = ProgressBar::new(len as u64);
        b.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        *slot = Some((phase, b.clone()));
        b
    }

    pub(super) fn event(&self, e: Event<'_>) {
        if self.lines {
            return self.line(e);
        }
        match e {
            Event::Twins => {
                self.bar("twins", 0, "{spinner} plaintext twins (exact softmax, approximation)").tick();
            }
            Event::Keygen { done, total } => {
                let b = self.bar("keygen", total, "keygen [{bar:30}] {pos}/{len} keys, {elapsed} ");
                b.set_length(total as u64);
                b.set_position(done as u64);
            }
            Event::Encrypt { split, done, total } => {
                let phase = if split == "train" { "encrypt train" } else { "encrypt other" };
                let b = self.bar(phase, total, "encrypt {msg} [{bar:30}] {pos}/{len} batches");
                b.set_message(split.to_string());
                b.set_position(done as u64);
            }
            Event::Upload { done, total } => {
                let b = self.bar("upload", 0, "upload [{bar:30}] {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta}");
                b.set_length(total);
                b.set_position(done);
            }
            Event::Start { steps, .. } => {
                self.bar("train", steps, "train [{bar:30}] step {pos}/{len}, {msg}, ETA {eta}");
            }
            Event::Step { step, epoch, times } => {
                let b = self.bar("train", 0, "");
                let mut boots = self.bootstraps.lock().unwrap_or_else(|e| e.into_inner());
                *boots += times.bootstraps;
                b.set_message(format!("epoch {epoch}, {} bootstraps, {:.1} s/step", *boots, times.total_s));
                b.set_position(step as u64);
            }
            Event::Epoch { epoch, valid_mse, decision } => {
                let b = self.bar("train", 0, "");
                b.println(format!(
                    "epoch {epoch}: validation MSE {valid_mse:.5} (decrypted by the owner): {decision:?}"
                ));
            }
            Event::Done => {
                if let Some((_, b)) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    b.finish_and_clear();
                }
            }
        }
    }
}

pub(super) fn run(a: &TrainArgs) -> Result<()> {
    a.extract_raw()?;
    let opts = a.options()?;
    let bars = Bars::new();
    let events = |e: Event<'_>| bars.event(e);
    let report = if a.distributed {
        if a.twin_only {
            return Err(Error::BadArgument {
                name: "--twin-only",
                value: "with --distributed".into(),
                expected: "one of them (the twins need no ranks)".into(),
            });
        }
        if opts.work_dir.is_none() {
            return Err(Error::MissingArgument { name: "--work-dir", with: "--distributed" });
        }
        // MPI stays on this thread; the thread count goes to rayon's global pool.
        if let Some(t) = opts.threads {
            rayon::ThreadPoolBuilder::new().num_threads(t).build_global().map_err(|_| Error::BadArgument {
                name: "--threads",
                value: t.to_string(),
                expected: "a thread count the system can start".into(),
            })?;
        }
        match distributed(&opts, &events)? {
            Some(r) => r,
            // Ranks other than the root report nothing: the root's report covers the run.
            None => return Ok(()),
        }
    } else {
        let go = || train::run(&opts, a.twin_only, &EngineTrainers, &events);
        match opts.threads {
            Some(t) => rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .map_err(|_| Error::BadArgument {
                    name: "--threads",
                    value: t.to_string(),
                    expected: "a thread count the system can start".into(),
                })?
                .install(go)?,
            None => go()?,
        }
    };
    if let Some(path) = &opts.plot {
        plot::draw(&report, path)?;
    }
    let mut text = if a.json { serde_json::to_string(&report)? + "\n" } else { report.summary() };
    if let (false, Some(path)) = (a.json, &opts.plot) {
        text.push_str(&format!("figure: {}\n", path.display()));
    }
    // A closed pipe (`| head`) ends the output quietly; other write errors are errors.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.map_err(|e| Error::io("standard output", e))?,
    }
    Ok(())
}

/// The distributed run on this rank (the `mpi` feature's).
#[cfg(feature = "mpi")]
fn distributed(opts: &TrainOptions, events: &(dyn Fn(Event<'_>) + Sync)) -> Result<Option<train::report::TrainReport>> {
    train::mpi::run(opts, events)
}

/// Without the `mpi` feature: an error that says how to get it.
#[cfg(not(feature = "mpi"))]
fn distributed(_: &TrainOptions, _: &(dyn Fn(Event<'_>) + Sync)) -> Result<Option<train::report::TrainReport>> {
    Err(Error::Distributed(
        "this hetune was built without MPI; build it with `cargo build --features mpi` (Debian: libopenmpi-dev, openmpi-bin, libclang-dev)".into(),
    ))
}

/// `gb` gigabytes as bytes: positive and finite, or an error naming `flag`.
pub(super) fn gigabytes(flag: &'static str, gb: Option<f64>) -> Result<Option<u64>> {
    match gb {
        None => Ok(None),
        Some(g) if g.is_finite() && g > 0.0 && g < 1e9 => Ok(Some((g * 1e9) as u64)),
        Some(g) => Err(crate::Error::BadArgument {
            name: flag,
            value: g.to_string(),
            expected: "a positive number of gigabytes".into(),
        }),
    }
}
