//! `hetune serve` (the training daemon) and `hetune client` (the owner's side of a job).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::train::{Bars, TrainArgs};
use crate::client::{self, ClientOptions, JobHandle};
use crate::error::{Error, Result};
use crate::io::npy::{write_matrix, Dtype, Matrix};
use crate::serve::{self, ServeOptions, DEFAULT_CHUNK_BYTES};
use crate::train::plot;
use crate::train::report::TrainReport;

/// The arguments of `hetune serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port). Any other interface
    /// only when named here.
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: String,
    /// Store directory (jobs.sqlite and the jobs' files).
    #[arg(long)]
    store: PathBuf,
    /// Bytes of uploads the store takes at most, all jobs together.
    #[arg(long, default_value_t = 200 << 30)]
    max_store_bytes: u64,
    /// Trainings at once; later starts wait in a FIFO queue.
    #[arg(long, default_value_t = 1)]
    max_concurrent: usize,
    /// Largest upload chunk, bytes.
    #[arg(long, default_value_t = DEFAULT_CHUNK_BYTES)]
    max_chunk_bytes: u64,
    /// Worker threads of each training (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Accept jobs on presets below 128-bit security. For tests only, never for real data.
    #[arg(long)]
    insecure_testing_only: bool,
    /// Evaluation keys each training holds in memory at most, in GB (the least recently used
    /// are dropped and read again from the job's bundle; default: every key it has used).
    #[arg(long)]
    key_memory_gb: Option<f64>,
}

fn thread_pool(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global().map_err(|_| Error::BadArgument {
            name: "--threads",
            value: t.to_string(),
            expected: "a thread count the system can start".into(),
        })?;
    }
    Ok(())
}

pub(super) fn run_serve(a: &ServeArgs) -> Result<()> {
    thread_pool(a.threads)?;
    let opts = ServeOptions {
        store: a.store.clone(),
        max_store_bytes: a.max_store_bytes,
        max_concurrent: a.max_concurrent,
        max_chunk_bytes: a.max_chunk_bytes,
        insecure_testing_only: a.insecure_testing_only,
        key_memory: super::train::gigabytes("--key-memory-gb", a.key_memory_gb)?,
    };
    serve::run(&a.listen, opts, |addr| {
        // The first line of stdout is the address (tests and `hetune demo` read it).
        println!("listening on http://{addr}");
        let _ = std::io::stdout().flush();
        if a.insecure_testing_only {
            eprintln!("WARNING: insecure presets accepted (--insecure-testing-only): tests only");
        }
    })
}

/// The arguments of `hetune client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The daemon's URL.
    #[arg(long, default_value = "http://127.0.0.1:8470")]
    server: String,
    /// Key directory (created when absent, reused when it holds keys of the job's set).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Output directory: model.npy, report.json, curves.png.
    #[arg(long)]
    out: PathBuf,
    /// Seconds between status polls.
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    #[command(flatten)]
    train: TrainArgs,
}

/// What the client wrote.
pub struct Written {
    /// The report.
    pub report: TrainReport,
    /// The job.
    pub job: JobHandle,
}

/// The client's run, and its outputs in `out` (model.npy, report.json, curves.png).
pub fn client_run(opts: &ClientOptions, out: &Path, bars: &Bars) -> Result<Written> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let events = |e: crate::train::Event<'_>| bars.event(e);
    let (report, job) = client::run(opts, &events)?;
    let enc = report.encrypted.as_ref().ok_or(Error::InvalidArgument("no encrypted run"))?;
    let classes = report.classes;
    let cols = enc.weights.len() / classes.max(1);
    let m = Matrix { rows: classes, cols, data: enc.weights.clone(), dtype: Dtype::F64, is_vector: false };
    write_matrix(&out.join("model.npy"), &m)?;
    let path = out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?).map_err(|e| Error::io(&path, e))?;
    plot::draw(&report, &out.join("curves.png"))?;
    Ok(Written { report, job })
}

pub(super) fn run_client(a: &ClientArgs) -> Result<()> {
    let train = a.train.options()?;
    if a.train.twin_only() {
        return Err(Error::InvalidArgument("--twin-only is `hetune train`'s; the client follows a daemon job"));
    }
    if train.resume && train.work_dir.is_none() {
        return Err(Error::MissingArgument { name: "--work-dir", with: "--resume" });
    }
    thread_pool(train.threads)?;
    a.train.extract_raw()?;
    let opts = ClientOptions {
        server: a.server.clone(),
        train,
        keys: a.keys.clone(),
        poll: Duration::from_secs_f64(a.poll.clamp(0.05, 60.0)),
    };
    let bars = Bars::new();
    let w = client_run(&opts, &a.out, &bars)?;
    let mut text = w.report.summary();
    text.push_str(&format!(
        "job {} on {}\nwritten: {}/model.npy, report.json, curves.png\n",
        w.job.id,
        w.job.server,
        a.out.display()
    ));
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::io("standard output", e)),
    }
}
