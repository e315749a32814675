//! Sentence embeddings as sentence-transformers makes them: tokenizer.json, the transformer
//! (BERT or MPNet, see [`super::encoder`]), mean pooling over the real tokens, L2
//! normalisation.
//!
//! sentence-transformers truncates to `max_seq_length` of `sentence_bert_config.json` (256 for
//! all-MiniLM-L6-v2, 384 for all-mpnet-base-v2), not to the 128 that tokenizer.json carries, and
//! pads each batch to its longest row; padding does not change a row's embedding (it is masked
//! out of the attention and the pooling), so batches here group rows of similar length instead,
//! which wastes less work on padding.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};

use super::encoder::{mean_pool_normalize, Config, Encoder};
use crate::error::{Error, Result};

/// Largest tokenizer.json, config or safetensors file read (the biggest model here is 438 MB):
/// a bound so that a wrong path cannot make the loader read a disk image into memory.
const MAX_MODEL_BYTES: u64 = 2 << 30;

/// A sentence-transformers model folder, loaded.
pub struct TextModel {
    tokenizer: Tokenizer,
    encoder: Encoder,
    /// Longest token sequence (special tokens included); longer rows are truncated.
    pub max_len: usize,
    /// Width of an embedding.
    pub dim: usize,
    /// `config.json`'s `model_type`: "bert" or "mpnet".
    pub model_type: String,
}

fn model_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Model { path: path.to_path_buf(), message: message.to_string() }
}

fn read_capped(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > MAX_MODEL_BYTES {
        return Err(model_err(path, format!("{len} bytes is larger than any model read here")));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_capped(path)?;
    serde_json::from_slice(&bytes).map_err(|e| model_err(path, e))
}

#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(serde::Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
}

impl TextModel {
    /// Loads a sentence-transformers folder: `config.json`, `model.safetensors`,
    /// `tokenizer.json`, `sentence_bert_config.json` and (if present) `1_Pooling/config.json`,
    /// which must ask for mean pooling.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::NotFound(dir.to_path_buf()));
        }
        let cfg_path = dir.join("config.json");
        let cfg: Config = read_json(&cfg_path)?;
        let pool_path = dir.join("1_Pooling/config.json");
        if pool_path.exists() {
            let p: PoolingConfig = read_json(&pool_path)?;
            if !p.pooling_mode_mean_tokens || p.pooling_mode_cls_token || p.pooling_mode_max_tokens {
                return Err(model_err(&pool_path, "only mean pooling is supported"));
            }
        }
        let st_path = dir.join("sentence_bert_config.json");
        let st: SentenceBertConfig =
            if st_path.exists() { read_json(&st_path)? } else { SentenceBertConfig { max_seq_length: None } };
        let weights_path = dir.join("model.safetensors");
        let bytes = read_capped(&weights_path)?;
        let dev = Device::Cpu;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &dev).map_err(|e| model_err(&weights_path, e))?;
        drop(bytes);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let encoder = Encoder::load(&cfg, vb).map_err(|e| model_err(&weights_path, e))?;
        // sentence-transformers' limit, never beyond the position table.
        let max_len = st.max_seq_length.unwrap_or(encoder.max_positions).min(encoder.max_positions);
        if max_len < 2 {
            return Err(model_err(&st_path, format!("max_seq_length {max_len} leaves no room for text")));
        }
        let tok_path = dir.join("tokenizer.json");
        let tok_bytes = read_capped(&tok_path)?;
        let mut tokenizer = Tokenizer::from_bytes(&tok_bytes).map_err(|e| model_err(&tok_path, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| model_err(&tok_path, e))?;
        tokenizer.with_padding(None);
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > cfg.vocab_size {
            return Err(model_err(&tok_path, format!("{vocab} tokens, the model's vocabulary has {}", cfg.vocab_size)));
        }
        Ok(Self { tokenizer, encoder, max_len, dim: cfg.hidden_size, model_type: cfg.model_type })
    }

    /// Token ids of one text, special tokens included, truncated to `max_len`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| Error::Inference(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Embeds texts, `batch` rows at a time, batches in parallel on rayon; `progress` is
    /// called with the number of rows of every finished batch. Returns row-major `[n, dim]`.
    pub fn embed(&self, texts: &[String], batch: usize, progress: &(dyn Fn(usize) + Sync)) -> Result<Vec<f32>> {
        let batch = batch.max(1);
        let ids: Vec<Vec<u32>> = texts.par_iter().map(|t| self.tokenize(t)).collect::<Result<_>>()?;
        // Longest first, so that the costly batches start early and the tail is short.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let groups: Vec<&[usize]> = order.chunks(batch).collect();
        let outs: Vec<Vec<f32>> = groups
            .par_iter()
            .map(|g| {
                let rows: Vec<&[u32]> = g.iter().map(|&i| ids[i].as_slice()).collect();
                let e = self.embed_ids(&rows)?;
                progress(g.len());
                Ok(e)
            })
            .collect::<Result<_>>()?;
        let mut out = vec![0f32; texts.len() * self.dim];
        for (g, e) in groups.iter().zip(outs) {
            for (j, &i) in g.iter().enumerate() {
                out[i * self.dim..(i + 1) * self.dim].copy_from_slice(&e[j * self.dim..(j + 1) * self.dim]);
            }
        }
        Ok(out)
    }

    /// One batch of token-id rows, right-padded to the longest.
    fn embed_ids(&self, rows: &[&[u32]]) -> Result<Vec<f32>> {
        let inf = |e: candle_core::Error| Error::Inference(e.to_string());
        let b = rows.len();
        let t = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let pad = self.encoder_pad_id();
        let mut ids = vec![pad; b * t];
        let mut mask = vec![0u32; b * t];
        for (i, r) in rows.iter().enumerate() {
            ids[i * t..i * t + r.len()].copy_from_slice(r);
            mask[i * t..i * t + r.len()].iter_mut().for_each(|m| *m = 1);
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (b, t), &dev).map_err(inf)?;
        let mask = Tensor::from_vec(mask, (b, t), &dev).map_err(inf)?;
        let h = self.encoder.forward(&ids, &mask).map_err(inf)?;
        let e = mean_pool_normalize(&h, &mask).map_err(inf)?;
        e.flatten_all().and_then(|e| e.to_vec1::<f32>()).map_err(inf)
    }

    /// Padding id: config.json's `pad_token_id` (masked out anyway; MPNet's positions skip it).
    fn encoder_pad_id(&self) -> u32 {
        self.encoder.pad_id
    }
}

/// A labelled text file: `label<TAB>text` per line (the layout of `shared/data/snips/*.tsv`), or
/// plain text lines without labels (every line then has no tab, and the labels are `None`).
pub struct TextRows {
    /// The texts, surrounding whitespace stripped as the reference tool does.
    pub texts: Vec<String>,
    /// The labels, when every line has one.
    pub labels: Option<Vec<i64>>,
}

/// Longest text file read (the SNIPS train split is 0.64 MB).
const MAX_TEXT_BYTES: u64 = 1 << 30;

/// Reads a TSV of `label<TAB>text` lines, or plain lines. A file mixing the two, or a label that
/// is not a non-negative integer, is an [`Error::InputRow`] naming the line.
pub fn read_tsv(path: &Path) -> Result<TextRows> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > MAX_TEXT_BYTES {
        return Err(Error::InputRow {
            path: path.to_path_buf(),
            line: 0,
            message: format!("{len} bytes is too large"),
        });
    }
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(raw).map_err(|e| Error::InputRow {
        path: path.to_path_buf(),
        line: 0,
        message: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let labelled = lines.first().is_some_and(|l| l.contains('\t'));
    let mut texts = Vec::with_capacity(lines.len());
    let mut labels = Vec::with_capacity(if labelled { lines.len() } else { 0 });
    for (i, line) in lines.iter().enumerate() {
        let bad = |m: String| Error::InputRow { path: PathBuf::from(path), line: i + 1, message: m };
        if labelled {
            let (l, t) = line.split_once('\t').ok_or_else(|| bad("no tab between label and text".into()))?;
            let y: i64 = l.trim().parse().map_err(|_| bad(format!("label {l:?} is not an integer")))?;
            if y < 0 {
                return Err(bad(format!("negative label {y}")));
            }
            labels.push(y);
            texts.push(t.trim().to_string());
        } else {
            texts.push(line.trim().to_string());
        }
    }
    Ok(TextRows { texts, labels: labelled.then_some(labels) })
}
