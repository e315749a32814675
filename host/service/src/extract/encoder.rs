//! The text encoders of sentence-transformers as candle networks: BERT (all-MiniLM-L6-v2) and
//! MPNet (all-mpnet-base-v2).
//!
//! Both are post-layernorm transformers with the same layer; they differ only in the
//! embeddings and in the attention scores:
//! - BERT adds token-type embeddings and counts positions from 0;
//! - MPNet has no token types, counts positions from `padding_idx + 1 = 2` as RoBERTa does, and
//!   adds a relative position bias to every layer's attention scores: one learnt scalar per
//!   head and (bidirectional, log-spaced) distance bucket, computed once and shared by all
//!   layers (T5's bucketing with 32 buckets and a maximum distance of 128).
//!
//! One implementation for both keeps the two models' numerics identical where they agree and
//! spares the build candle-transformers' hundred other models.

use candle_core::{DType, Device, Module, Storage, Tensor, D};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};

use super::sgemm::{gelu_in_place, softmax_rows_in_place, PackedLinear};

/// A dense layer on [`PackedLinear`] (weights packed once at load for the f32 GEMM of
/// [`super::sgemm`]); the q, k and v projections are one of these with their rows stacked.
struct Dense(PackedLinear);

impl Dense {
    /// `Linear`s whose `weight` (`[out, in]`) and `bias` live under the `vbs`, stacked into one
    /// product of `out * vbs.len()` columns (in their order).
    fn load(vbs: &[VarBuilder], in_dim: usize, out_dim: usize) -> candle_core::Result<Self> {
        let mut w = Vec::with_capacity(vbs.len() * out_dim * in_dim);
        let mut b = Vec::with_capacity(vbs.len() * out_dim);
        for vb in vbs {
            w.extend(vb.get((out_dim, in_dim), "weight")?.flatten_all()?.to_vec1::<f32>()?);
            b.extend(vb.get(out_dim, "bias")?.to_vec1::<f32>()?);
        }
        Ok(Self(PackedLinear::new(&w, Some(&b), vbs.len() * out_dim, in_dim)))
    }

    /// `x W^T + b` on an f32 row-major slice of `m` rows.
    fn forward_slice(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.0.forward(x, m)
    }

    /// `x W^T + b` for `x` `[m, in]`: `[m, out]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let m = x.dim(0)?;
        let y = with_f32_slice(x, |s| self.forward_slice(s, m))?;
        Tensor::from_vec(y, (m, self.0.n()), x.device())
    }

    /// `x W^T + b + residual` (`residual` `[m, out]`).
    fn forward_add(&self, x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        let m = x.dim(0)?;
        let mut y = residual.flatten_all()?.to_vec1::<f32>()?;
        if y.len() != m * self.0.n() {
            candle_core::bail!("residual has {} values, expected {} x {}", y.len(), m, self.0.n());
        }
        with_f32_slice(x, |s| self.0.forward_add(s, m, &mut y))?;
        Tensor::from_vec(y, (m, self.0.n()), x.device())
    }
}

/// Runs `f` on the values of a 2-D f32 CPU tensor, row-major (copied only if not contiguous).
fn with_f32_slice<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { candle_core::bail!("the dense layers run on the CPU") };
    let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("not contiguous") };
    Ok(f(&cpu.as_slice::<f32>()?[start..end]))
}

/// Which of the two architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// BERT (`model_type: "bert"`).
    Bert,
    /// MPNet (`model_type: "mpnet"`).
    MpNet,
}

/// The fields of the model's `config.json` the network needs.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Config {
    /// "bert" or "mpnet".
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Rows of the absolute position table.
    pub max_position_embeddings: usize,
    /// Layernorm epsilon (1e-12 for BERT, 1e-5 for MPNet).
    pub layer_norm_eps: f64,
    /// BERT's token-type table size.
    #[serde(default)]
    pub type_vocab_size: usize,
    /// The padding token's id (MPNet's positions start after it).
    #[serde(default)]
    pub pad_token_id: u32,
    /// MPNet's relative-position buckets.
    #[serde(default)]
    pub relative_attention_num_buckets: usize,
    /// The feed-forward activation; only the exact GELU is supported.
    #[serde(default)]
    pub hidden_act: Option<String>,
}

/// MPNet's largest distance told apart by the log-spaced buckets (fixed in the architecture).
const MPNET_MAX_DISTANCE: i64 = 128;

/// T5's bidirectional bucket of a relative position (`key - query`), as MPNet computes it:
/// half the buckets for each direction, the first half of those exact distances, the rest
/// log-spaced up to `max_distance`. The logarithm is taken in f32, as PyTorch does, so that
/// distances on a bucket boundary land in the same bucket.
pub fn relative_bucket(relative: i64, num_buckets: usize, max_distance: i64) -> usize {
    let half = (num_buckets / 2) as i64;
    let n = -relative;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    ret += if n < max_exact {
        n
    } else {
        let large = max_exact as f32
            + ((n as f32 / max_exact as f32).ln() / ((max_distance as f64 / max_exact as f64).ln() as f32)
                * (half - max_exact) as f32);
        (large as i64).min(half - 1)
    };
    ret as usize
}

struct Layer {
    /// q, k and v stacked: `[3 hidden, hidden]`.
    qkv: Dense,
    o: Dense,
    ln_attn: LayerNorm,
    inter: Dense,
    out: Dense,
    ln_out: LayerNorm,
}

/// A loaded encoder: embeddings, layers and (MPNet) the relative-position table.
pub struct Encoder {
    arch: Arch,
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    ln_emb: LayerNorm,
    layers: Vec<Layer>,
    rel_bias: Option<Tensor>,
    heads: usize,
    head_dim: usize,
    /// config.json's `pad_token_id`: the id padding gets.
    pub pad_id: u32,
    buckets: usize,
    /// Longest sequence the position table holds (MPNet's is offset by `pad_id + 1`).
    pub max_positions: usize,
}

impl Encoder {
    /// Builds the network from `config.json`'s fields and the safetensors' tensors.
    pub fn load(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let arch = match cfg.model_type.as_str() {
            "bert" => Arch::Bert,
            "mpnet" => Arch::MpNet,
            other => candle_core::bail!("unsupported model_type {other:?} (bert or mpnet)"),
        };
        if let Some(act) = cfg.hidden_act.as_deref() {
            if act != "gelu" {
                candle_core::bail!("unsupported hidden_act {act:?} (gelu)");
            }
        }
        let h = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || h % cfg.num_attention_heads != 0 {
            candle_core::bail!("hidden_size {h} is not a multiple of num_attention_heads {}", cfg.num_attention_heads);
        }
        let eps = cfg.layer_norm_eps;
        let e = vb.pp("embeddings");
        let word = embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?;
        let position = embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?;
        let token_type = if arch == Arch::Bert {
            Some(embedding(cfg.type_vocab_size.max(1), h, e.pp("token_type_embeddings"))?)
        } else {
            None
        };
        let ln_emb = layer_norm(h, eps, e.pp("LayerNorm"))?;
        let enc = vb.pp("encoder");
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = enc.pp(format!("layer.{i}"));
            let (qkv, o, ln_attn) = match arch {
                Arch::Bert => {
                    let s = l.pp("attention.self");
                    let out = l.pp("attention.output");
                    (
                        Dense::load(&[s.pp("query"), s.pp("key"), s.pp("value")], h, h)?,
                        Dense::load(&[out.pp("dense")], h, h)?,
                        layer_norm(h, eps, out.pp("LayerNorm"))?,
                    )
                }
                Arch::MpNet => {
                    let s = l.pp("attention.attn");
                    (
                        Dense::load(&[s.pp("q"), s.pp("k"), s.pp("v")], h, h)?,
                        Dense::load(&[s.pp("o")], h, h)?,
                        layer_norm(h, eps, l.pp("attention.LayerNorm"))?,
                    )
                }
            };
            layers.push(Layer {
                qkv,
                o,
                ln_attn,
                inter: Dense::load(&[l.pp("intermediate.dense")], h, cfg.intermediate_size)?,
                out: Dense::load(&[l.pp("output.dense")], cfg.intermediate_size, h)?,
                ln_out: layer_norm(h, eps, l.pp("output.LayerNorm"))?,
            });
        }
        let (rel_bias, buckets) = match arch {
            Arch::Bert => (None, 0),
            Arch::MpNet => {
                let b = cfg.relative_attention_num_buckets;
                if b < 4 {
                    candle_core::bail!("relative_attention_num_buckets {b} is too small");
                }
                (Some(enc.pp("relative_attention_bias").get((b, cfg.num_attention_heads), "weight")?), b)
            }
        };
        let offset = if arch == Arch::MpNet { cfg.pad_token_id as usize + 1 } else { 0 };
        Ok(Self {
            arch,
            word,
            position,
            token_type,
            ln_emb,
            layers,
            rel_bias,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            pad_id: cfg.pad_token_id,
            buckets,
            max_positions: cfg.max_position_embeddings.saturating_sub(offset),
        })
    }

    /// MPNet's position bias `[1, heads, t, t]` for sequences of length `t`.
    fn position_bias(&self, t: usize, dev: &Device) -> candle_core::Result<Option<Tensor>> {
        let Some(table) = &self.rel_bias else { return Ok(None) };
        let idx: Vec<u32> = (0..t)
            .flat_map(|q| (0..t).map(move |k| (q, k)))
            .map(|(q, k)| relative_bucket(k as i64 - q as i64, self.buckets, MPNET_MAX_DISTANCE) as u32)
            .collect();
        let idx = Tensor::from_vec(idx, t * t, dev)?;
        // [t*t, heads] -> [heads, t, t]
        let b = table.index_select(&idx, 0)?.t()?.reshape((1, self.heads, t, t))?;
        Ok(Some(b.contiguous()?))
    }

    /// Hidden states `[b, t, hidden]` of a right-padded batch: `ids` and `mask` (1 for tokens,
    /// 0 for padding) are `[b, t]` u32.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = ids.device();
        let positions = match self.arch {
            // BERT: 0..t for every row.
            Arch::Bert => Tensor::arange(0u32, t as u32, dev)?.unsqueeze(0)?.broadcast_as((b, t))?.contiguous()?,
            // MPNet (RoBERTa's rule): the running count of real tokens plus padding_idx, and
            // padding_idx itself on padding.
            Arch::MpNet => {
                let rows = ids.to_vec2::<u32>()?;
                let mut pos = Vec::with_capacity(b * t);
                for r in &rows {
                    let mut count = 0u32;
                    for &id in r {
                        if id == self.pad_id {
                            pos.push(self.pad_id);
                        } else {
                            count += 1;
                            pos.push(count + self.pad_id);
                        }
                    }
                }
                Tensor::from_vec(pos, (b, t), dev)?
            }
        };
        let mut x = self.word.forward(ids)?.add(&self.position.forward(&positions)?)?;
        if let Some(tt) = &self.token_type {
            let zeros = Tensor::zeros((b, t), DType::U32, dev)?;
            x = x.add(&tt.forward(&zeros)?)?;
        }
        let mut x = self.ln_emb.forward(&x)?;
        // Additive mask [b, 1, 1, t]: 0 on tokens, the most negative f32 on padding.
        let neg = ((mask.to_dtype(DType::F32)? - 1.0)? * f64::from(f32::MAX))?;
        let neg = neg.reshape((b, 1, 1, t))?;
        let bias = match self.position_bias(t, dev)? {
            Some(p) => p.broadcast_add(&neg)?,
            None => neg,
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let h = x.dim(2)?;
        x = x.reshape((b * t, h))?;
        for l in &self.layers {
            x = self.layer(l, &x, (b, t), &bias, scale)?;
        }
        x.reshape((b, t, h))
    }

    /// One layer on the flattened batch: `x` is `[b t, hidden]`, so every dense product is one
    /// matrix product over all the batch's tokens (a `[b, t, hidden]` input would make candle run
    /// `b` small products of `t` rows each against the broadcast weight).
    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        (b, t): (usize, usize),
        bias: &Tensor,
        scale: f64,
    ) -> candle_core::Result<Tensor> {
        let h = x.dim(1)?;
        let m = b * t;
        // [b t, 3 h] -> [3, b, heads, t, head_dim]
        let qkv =
            l.qkv.forward(x)?.reshape((b, t, 3, self.heads, self.head_dim))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
        let dims = scores.dims4()?;
        let mut p = scores.flatten_all()?.to_vec1::<f32>()?;
        softmax_rows_in_place(&mut p, t);
        let p = Tensor::from_vec(p, dims, x.device())?;
        let ctx = p.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((m, h))?;
        let a = l.ln_attn.forward(&l.o.forward_add(&ctx, x)?)?;
        // The feed-forward block on plain slices: intermediate, GELU in place, output + residual.
        let mut f = with_f32_slice(&a, |s| l.inter.forward_slice(s, m))?;
        gelu_in_place(&mut f);
        let mut y = a.flatten_all()?.to_vec1::<f32>()?;
        l.out.0.forward_add(&f, m, &mut y);
        l.ln_out.forward(&Tensor::from_vec(y, (m, h), x.device())?)
    }
}

/// Mean of the hidden states over the real tokens, then L2 normalisation (sentence-transformers'
/// `Pooling(mean)` and `Normalize` modules): `[b, t, h]`, `[b, t]` -> `[b, h]`.
pub fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    let mean = sum.broadcast_div(&count)?;
    let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    mean.broadcast_div(&norm)
}
