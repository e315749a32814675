//! `hetune bench matmul`: HETAL's matrix-product benchmark. For each shape `(a, b, c)` and each
//! algorithm: the operation counts (next to HETAL's corrected table), wall-clock seconds, the
//! largest error against f64 and the levels consumed; and the speed-ups of DiagABT over
//! ColMajor and of DiagATB over RowMajor, measured in the same run.
//!
//! Inputs: `A` is `a` rows of real sentence features (the first `b - 1` columns, plus a bias
//! column of ones) when a feature file is given, else uniform in `[-1, 1]`; `W` is `c x b`,
//! uniform in `[-0.5, 0.5]`; the residual is `softmax(A W^T) - Y` with pseudo-random labels.
//! Inputs start at the preset's computation level (PRotUp: `A` one level lower). Rotation keys
//! are exactly the steps each algorithm uses (found by a counting run), so every counted
//! rotation is one key switch. PrivGD needs `b c` ciphertexts for `W`, so it is timed on the
//! first `min(b, 8)` columns and its time scaled by `b / 8` (marked `extrapolated`).

use std::sync::Arc;

use hetune_core::ckks::{encrypt_sk, Ciphertext, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::{EvaluationKeys, Evaluator, KeyRequest};
use hetune_engine::learning::baselines::{
    col_major_abt, privgd_abt, privgd_atb, row_major_atb, ColumnPacked, EntryPacked,
};
use hetune_engine::learning::reference::{abt, atb};
use hetune_engine::learning::{
    diag_abt, diag_atb, diag_atb_prot_up, diag_atb_prot_up_with, diag_atb_with, CkksBackend, CountingBackend,
    EncMatrix, HeBackend, LevelOnly, MatrixLayout, OpCounts, Packing, RowSums, Tiling,
};
use hetune_engine::owner::decrypt_decode;
use hetune_engine::precision::PrecisionStats;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use super::{on_threads, time_runs, RunPolicy};
use crate::io::npy::Matrix;
use crate::{Error, Result};

/// HETAL's benchmark shapes `(a, b, c)`.
pub const SHAPES: &[(usize, usize, usize)] =
    &[(128, 128, 4), (256, 256, 8), (512, 769, 4), (1024, 769, 8), (2048, 769, 16)];

/// A matrix-product algorithm of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// HETAL's DiagABT: `A B^T`.
    DiagAbt,
    /// Crockett's ColMajor: `A B^T`.
    ColMajorAbt,
    /// Jin et al.'s PrivGD: `A B^T`.
    PrivgdAbt,
    /// HETAL's DiagATB (A >= B): `A^T B`.
    DiagAtb,
    /// HETAL's DiagATB with PRotUp (A < B): `A^T B`.
    DiagAtbProtUp,
    /// DiagATB (A >= B) with merged row sums (`RowSums::Merged`).
    DiagAtbMerged,
    /// DiagATB with PRotUp and merged row sums: the trainer's.
    DiagAtbProtUpMerged,
    /// Crockett's RowMajor: `A^T B`.
    RowMajorAtb,
    /// Jin et al.'s PrivGD: `A^T B`.
    PrivgdAtb,
}

impl Algorithm {
    /// Every algorithm, in report order.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::DiagAbt,
        Algorithm::ColMajorAbt,
        Algorithm::PrivgdAbt,
        Algorithm::DiagAtb,
        Algorithm::DiagAtbProtUp,
        Algorithm::DiagAtbMerged,
        Algorithm::DiagAtbProtUpMerged,
        Algorithm::RowMajorAtb,
        Algorithm::PrivgdAtb,
    ];

    /// The algorithm's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::DiagAbt => "diag_abt",
            Algorithm::ColMajorAbt => "col_major_abt",
            Algorithm::PrivgdAbt => "privgd_abt",
            Algorithm::DiagAtb => "diag_atb",
            Algorithm::DiagAtbProtUp => "diag_atb_prot_up",
            Algorithm::DiagAtbMerged => "diag_atb_merged",
            Algorithm::DiagAtbProtUpMerged => "diag_atb_prot_up_merged",
            Algorithm::RowMajorAtb => "row_major_atb",
            Algorithm::PrivgdAtb => "privgd_atb",
        }
    }

    /// Parses a comma-separated list of names, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Algorithm>> {
        if s == "all" {
            return Ok(Self::ALL.to_vec());
        }
        s.split(',').map(|n| n.trim().parse()).collect()
    }

    fn is_privgd(self) -> bool {
        matches!(self, Algorithm::PrivgdAbt | Algorithm::PrivgdAtb)
    }
}

impl std::str::FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|a| a.name()).collect();
            Error::BadArgument {
                name: "algorithm",
                value: s.to_string(),
                expected: format!("one of {}", known.join(", ")),
            }
        })
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// HETAL's corrected counts (CMult, Mult, Rot) at N = 2^16 for `algorithm` on `shape`.
pub fn hetal_counts(algorithm: Algorithm, shape: (usize, usize, usize)) -> Option<(u64, u64, u64)> {
    let i = SHAPES.iter().position(|&s| s == shape)?;
    let t: [[(u64, u64, u64); 5]; 5] = [
        [(4, 2, 34), (8, 4, 63), (4, 2, 18), (4, 2, 18), (8, 4, 63)],
        [(8, 8, 64), (24, 16, 191), (12, 8, 72), (15, 8, 75), (24, 16, 191)],
        [(4, 26, 50), (56, 52, 495), (28, 26, 238), (40, 26, 250), (56, 52, 495)],
        [(8, 100, 140), (208, 200, 2047), (104, 100, 1008), (176, 100, 1080), (208, 200, 2047)],
        [(16, 392, 456), (800, 784, 8703), (400, 392, 4328), (736, 392, 4664), (800, 784, 8703)],
    ];
    let k = match algorithm {
        Algorithm::DiagAbt => 0,
        Algorithm::ColMajorAbt => 1,
        Algorithm::DiagAtb => 2,
        Algorithm::DiagAtbProtUp => 3,
        Algorithm::RowMajorAtb => 4,
        Algorithm::PrivgdAbt | Algorithm::PrivgdAtb | Algorithm::DiagAtbMerged | Algorithm::DiagAtbProtUpMerged => {
            return None
        }
    };
    Some(t[i][k])
}

/// One algorithm on one shape.
#[derive(Clone, Debug, Serialize)]
pub struct MatmulResult {
    /// `(a, b, c)`.
    pub shape: (usize, usize, usize),
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Block shape `(s0, s1)`.
    pub blocks: (usize, usize),
    /// Counted operations of one full run.
    pub counts: OpCounts,
    /// HETAL's corrected counts for the same shape (at N = 2^16), when published.
    pub hetal: Option<(u64, u64, u64)>,
    /// Median wall-clock seconds (PrivGD: scaled from the sampled columns).
    pub seconds: f64,
    /// Timed runs.
    pub runs: usize,
    /// Whether `seconds` is scaled from a part of the work.
    pub extrapolated: bool,
    /// Largest absolute error against f64.
    pub max_abs_error: f64,
    /// That error divided by the largest entry of the exact result.
    pub relative_error: f64,
    /// Levels consumed (lowest input level minus output level).
    pub levels: usize,
    /// Rotation keys generated for the run.
    pub rotation_keys: usize,
}

/// Speed-ups on one shape (`None` when an algorithm was not run).
#[derive(Clone, Debug, Serialize)]
pub struct Speedup {
    /// `(a, b, c)`.
    pub shape: (usize, usize, usize),
    /// ColMajor seconds over DiagABT seconds.
    pub diag_abt_over_col_major: Option<f64>,
    /// RowMajor seconds over DiagATB (A >= B) seconds.
    pub diag_atb_over_row_major: Option<f64>,
}

/// The report of `hetune bench matmul`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchMatmulReport {
    /// Preset name.
    pub preset: String,
    /// Whether the preset is below 128-bit security.
    pub insecure: bool,
    /// log2 N.
    pub log_n: u32,
    /// Level the inputs start at.
    pub level: usize,
    /// Rayon threads.
    pub threads: usize,
    /// Where `A` came from.
    pub data: String,
    /// Results by shape, then algorithm.
    pub results: Vec<MatmulResult>,
    /// Speed-ups by shape.
    pub speedups: Vec<Speedup>,
}

/// Options of [`bench_matmul`].
#[derive(Clone, Debug)]
pub struct BenchMatmulOptions {
    /// Preset name.
    pub preset: String,
    /// Rayon threads.
    pub threads: usize,
    /// Shapes to run.
    pub shapes: Vec<(usize, usize, usize)>,
    /// Algorithms to run.
    pub algorithms: Vec<Algorithm>,
    /// A feature matrix (`.npy`, at least `a` rows) for `A`; synthetic data when `None`.
    pub features: Option<std::path::PathBuf>,
    /// Repeat a run while the total stays under this many seconds (at most 3 runs).
    pub budget_seconds: f64,
}

struct Inputs {
    x: Vec<f64>,
    w: Vec<f64>,
    r: Vec<f64>,
}

fn uniform(rng: &mut ChaCha20Rng, n: usize, half_width: f64) -> Vec<f64> {
    (0..n).map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * half_width).collect()
}

fn inputs(shape: (usize, usize, usize), features: Option<&Matrix>, seed: u64) -> Result<Inputs> {
    let (a, b, c) = shape;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let x = match features {
        Some(f) => {
            if f.rows < a || f.cols + 1 < b {
                return Err(Error::ShapeMismatch {
                    what: "features (at least)",
                    found: (f.rows, f.cols),
                    expected: (a, b - 1),
                });
            }
            (0..a * b).map(|k| if k % b == b - 1 { 1.0 } else { f.data[(k / b) * f.cols + k % b] }).collect()
        }
        None => uniform(&mut rng, a * b, 1.0),
    };
    let w = uniform(&mut rng, c * b, 0.5);
    let logits = abt(&x, &w, a, c, b);
    let mut r = vec![0.0; a * c];
    for i in 0..a {
        let row = &logits[i * c..(i + 1) * c];
        let m = row.iter().fold(f64::MIN, |m, v| m.max(*v));
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        let label = (rng.next_u64() % c as u64) as usize;
        for k in 0..c {
            r[i * c + k] = (row[k] - m).exp() / z - if k == label { 1.0 } else { 0.0 };
        }
    }
    Ok(Inputs { x, w, r })
}

/// The PrivGD column sample: the first `min(b, 8)` columns.
const PRIVGD_SAMPLE: usize = 8;

/// Runs `algorithm` on level-only stand-ins: its counts, levels consumed and rotation steps.
fn dry_run(
    algorithm: Algorithm,
    shape: (usize, usize, usize),
    pk: Packing,
    level: usize,
    b_cols: usize,
) -> Result<(OpCounts, usize, Vec<i64>)> {
    let (a, b, c) = shape;
    let ops = CountingBackend::new(pk.slots());
    let lv = |r, cl, t, l| EncMatrix::<LevelOnly>::level_only(r, cl, pk, t, l);
    let top = LevelOnly { level };
    let out_level = match algorithm {
        Algorithm::DiagAbt => {
            min_level(&diag_abt(&ops, &lv(a, b, Tiling::None, level)?, &lv(c, b, Tiling::Vertical, level)?)?.blocks)
        }
        Algorithm::ColMajorAbt => {
            min_level(&col_major_abt(&ops, &lv(a, b, Tiling::None, level)?, &lv(c, b, Tiling::None, level)?)?.blocks)
        }
        Algorithm::DiagAtb | Algorithm::DiagAtbMerged => {
            let rows = if algorithm == Algorithm::DiagAtb { RowSums::Hetal } else { RowSums::Merged };
            let (ta, tb) = (lv(a, c, Tiling::Horizontal, level)?, lv(a, b, Tiling::None, level)?);
            min_level(&diag_atb_with(&ops, &ta, &tb, rows)?.blocks)
        }
        Algorithm::DiagAtbProtUp | Algorithm::DiagAtbProtUpMerged => {
            let rows = if algorithm == Algorithm::DiagAtbProtUp { RowSums::Hetal } else { RowSums::Merged };
            let (ta, tb) = (lv(a, c, Tiling::Horizontal, level - 1)?, lv(a, b, Tiling::None, level)?);
            min_level(&diag_atb_prot_up_with(&ops, &ta, &tb, rows)?.blocks) + 1
        }
        Algorithm::RowMajorAtb => {
            min_level(&row_major_atb(&ops, &lv(a, c, Tiling::None, level)?, &lv(a, b, Tiling::None, level)?)?.blocks)
        }
        Algorithm::PrivgdAbt => {
            let chunks = a.div_ceil(pk.slots());
            let xa = ColumnPacked { rows: a, cols: vec![vec![top; chunks]; b_cols] };
            let we = EntryPacked { entries: vec![vec![top; b_cols]; c] };
            min_level(&privgd_abt(&ops, &xa, &we)?.cols.concat())
        }
        Algorithm::PrivgdAtb => {
            let chunks = a.div_ceil(pk.slots());
            let ra = ColumnPacked { rows: a, cols: vec![vec![top; chunks]; c] };
            let xa = ColumnPacked { rows: a, cols: vec![vec![top; chunks]; b_cols] };
            min_level(&privgd_atb(&ops, &ra, &xa)?.entries.concat())
        }
    };
    Ok((ops.counter().snapshot(), level - out_level, ops.rotation_steps()))
}

fn min_level(blocks: &[LevelOnly]) -> usize {
    blocks.iter().map(|b| b.level).min().unwrap_or(0)
}

struct Run<'a> {
    ctx: &'a Arc<Context>,
    sk: &'a SecretKey,
    rng: ChaCha20Rng,
    level: usize,
}

impl Run<'_> {
    fn matrix(
        &mut self,
        m: &[f64],
        rows: usize,
        cols: usize,
        pk: Packing,
        t: Tiling,
        level: usize,
    ) -> Result<EncMatrix<Ciphertext>> {
        let layout = MatrixLayout { rows, cols, packing: pk, tiling: t, level };
        Ok(EncMatrix::encrypt(self.ctx, self.sk, m, &layout, &mut self.rng)?)
    }

    fn filled(&mut self, v: &[f64]) -> Result<Ciphertext> {
        let p = self.ctx.params();
        let pt = Encoder::new(self.ctx).encode_real(v, p.log_n() - 1, self.level, p.scale())?;
        Ok(encrypt_sk(self.ctx, self.sk, &pt, &mut self.rng)?.expand(self.ctx))
    }

    /// A column-packed encryption of columns `cols` of the row-major `rows x width` matrix `m`.
    fn columns(
        &mut self,
        m: &[f64],
        rows: usize,
        width: usize,
        cols: std::ops::Range<usize>,
    ) -> Result<ColumnPacked<Ciphertext>> {
        let slots = self.ctx.params().max_slots();
        let chunks = rows.div_ceil(slots);
        let mut out = Vec::new();
        for j in cols {
            let col: Vec<f64> = (0..rows).map(|i| m[i * width + j]).collect();
            out.push(col.chunks(slots).map(|ch| self.filled(ch)).collect::<Result<Vec<_>>>()?);
            debug_assert_eq!(out.last().map(Vec::len), Some(chunks));
        }
        Ok(ColumnPacked { rows, cols: out })
    }

    /// Runs one algorithm; returns (seconds, runs, extrapolated, max error, relative error).
    fn algorithm(
        &mut self,
        ev: &Evaluator,
        algorithm: Algorithm,
        shape: (usize, usize, usize),
        pk: Packing,
        inp: &Inputs,
        budget: f64,
    ) -> Result<(f64, usize, bool, f64, f64)> {
        use Algorithm::*;
        let (a, b, c) = shape;
        let l = self.level;
        let ops = CkksBackend::new(ev);
        let (ctx, sk) = (self.ctx.clone(), self.sk);
        let dec = |m: &EncMatrix<Ciphertext>| m.decrypt(&ctx, sk);
        // Up to three runs, while the total stays under the budget.
        let policy = RunPolicy { warm_up: false, min_runs: 1, max_runs: 3, budget_seconds: budget };
        let (got, want, secs, runs, extrapolated) = match algorithm {
            DiagAbt | ColMajorAbt => {
                let x = self.matrix(&inp.x, a, b, pk, Tiling::None, l)?;
                let tiling = if algorithm == DiagAbt { Tiling::Vertical } else { Tiling::None };
                let w = self.matrix(&inp.w, c, b, pk, tiling, l)?;
                let f = if algorithm == DiagAbt { diag_abt::<CkksBackend> } else { col_major_abt::<CkksBackend> };
                let (out, t) = time_runs(policy, |_| Ok(f(&ops, &x, &w)?))?;
                (dec(&out)?, abt(&inp.x, &inp.w, a, c, b), t.median(), t.runs(), false)
            }
            DiagAtb | DiagAtbProtUp | DiagAtbMerged | DiagAtbProtUpMerged | RowMajorAtb => {
                let (tiling, la) = match algorithm {
                    DiagAtb | DiagAtbMerged => (Tiling::Horizontal, l),
                    DiagAtbProtUp | DiagAtbProtUpMerged => (Tiling::Horizontal, l - 1),
                    _ => (Tiling::None, l),
                };
                let r = self.matrix(&inp.r, a, c, pk, tiling, la)?;
                let x = self.matrix(&inp.x, a, b, pk, Tiling::None, l)?;
                let f = |ops: &CkksBackend, r: &EncMatrix<Ciphertext>, x: &EncMatrix<Ciphertext>| match algorithm {
                    DiagAtb => diag_atb(ops, r, x),
                    DiagAtbProtUp => diag_atb_prot_up(ops, r, x),
                    DiagAtbMerged => diag_atb_with(ops, r, x, RowSums::Merged),
                    DiagAtbProtUpMerged => diag_atb_prot_up_with(ops, r, x, RowSums::Merged),
                    _ => row_major_atb(ops, r, x),
                };
                let (out, t) = time_runs(policy, |_| Ok(f(&ops, &r, &x)?))?;
                (dec(&out)?, atb(&inp.r, &inp.x, a, c, b), t.median(), t.runs(), false)
            }
            PrivgdAbt => {
                let bs = b.min(PRIVGD_SAMPLE);
                let xs: Vec<f64> = (0..a * bs).map(|k| inp.x[(k / bs) * b + k % bs]).collect();
                let ws: Vec<f64> = (0..c * bs).map(|k| inp.w[(k / bs) * b + k % bs]).collect();
                let xa = self.columns(&xs, a, bs, 0..bs)?;
                let slots = ctx.params().max_slots();
                let we = EntryPacked {
                    entries: (0..c)
                        .map(|k| (0..bs).map(|j| self.filled(&vec![ws[k * bs + j]; slots])).collect())
                        .collect::<Result<_>>()?,
                };
                let (out, t) = time_runs(policy, |_| Ok(privgd_abt(&ops, &xa, &we)?))?;
                let mut got = vec![0.0; a * c];
                for (k, col) in out.cols.iter().enumerate() {
                    let vals: Vec<f64> =
                        col.iter().map(|ct| decrypt_decode(&ctx, sk, ct)).collect::<Result<Vec<_>, _>>()?.concat();
                    for i in 0..a {
                        got[i * c + k] = vals[i];
                    }
                }
                (got, abt(&xs, &ws, a, c, bs), t.median() * b as f64 / bs as f64, t.runs(), bs < b)
            }
            PrivgdAtb => {
                let bs = b.min(PRIVGD_SAMPLE);
                let xs: Vec<f64> = (0..a * bs).map(|k| inp.x[(k / bs) * b + k % bs]).collect();
                let ra = self.columns(&inp.r, a, c, 0..c)?;
                let xa = self.columns(&xs, a, bs, 0..bs)?;
                let (out, t) = time_runs(policy, |_| Ok(privgd_atb(&ops, &ra, &xa)?))?;
                let got = out
                    .entries
                    .iter()
                    .flatten()
                    .map(|ct| Ok(decrypt_decode(&ctx, sk, ct)?[0]))
                    .collect::<Result<Vec<_>>>()?;
                (got, atb(&inp.r, &xs, a, c, bs), t.median() * b as f64 / bs as f64, t.runs(), bs < b)
            }
        };
        let p = PrecisionStats::real(&got, &want)?;
        Ok((secs, runs, extrapolated, p.max_abs_error, p.relative_error()))
    }
}

/// Runs the benchmark (keys and data are generated for the run; insecure presets are allowed,
/// and the report says so).
pub fn bench_matmul(opts: &BenchMatmulOptions) -> Result<BenchMatmulReport> {
    let entry = hetune_core::rlwe::params::preset(&opts.preset).ok_or(hetune_core::Error::UnknownPreset)?;
    let features = opts.features.as_deref().map(crate::io::npy::read_matrix).transpose()?;
    on_threads(opts.threads, || {
        let ctx = Arc::new(Context::new(Parameters::preset(&opts.preset, Security::InsecureForTestingOnly)?)?);
        let mut rng = ChaCha20Rng::seed_from_u64(0x6d61_746d_756c);
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let level = ctx.params().default_level();
        if level < 5 {
            return Err(Error::BadArgument {
                name: "preset",
                value: opts.preset.clone(),
                expected: "a preset with at least 5 computation levels".into(),
            });
        }
        let slots = ctx.params().max_slots();
        let mut run = Run { ctx: &ctx, sk: &sk, rng: ChaCha20Rng::seed_from_u64(rng.next_u64()), level };
        let mut results = Vec::new();
        let mut speedups = Vec::new();
        for (si, &shape) in opts.shapes.iter().enumerate() {
            let (a, b, c) = shape;
            let pk = Packing::hetal(c, a, slots)?;
            let inp = inputs(shape, features.as_ref(), si as u64)?;
            for name in Algorithm::ALL.into_iter().filter(|n| opts.algorithms.contains(n)) {
                let (counts, levels, _) = dry_run(name, shape, pk, level, b)?;
                let sample_cols = if name.is_privgd() { b.min(PRIVGD_SAMPLE) } else { b };
                let (_, _, steps) = dry_run(name, shape, pk, level, sample_cols)?;
                let spec = KeyRequest {
                    relinearization: true,
                    rotations: steps.clone(),
                    conjugation: true,
                    encapsulation: None,
                };
                let ev = Evaluator::new(ctx.clone(), EvaluationKeys::generate(&ctx, &sk, &spec, &mut rng)?)?;
                ev.expand_keys()?;
                let (seconds, runs, extrapolated, max_abs_error, relative_error) =
                    run.algorithm(&ev, name, shape, pk, &inp, opts.budget_seconds)?;
                // Progress on stderr: a full run at N = 2^16 takes many minutes.
                eprintln!("{shape:?} {name}: {counts} in {seconds:.2} s, relative error {relative_error:.1e}");
                results.push(MatmulResult {
                    shape,
                    algorithm: name,
                    blocks: (pk.s0, pk.s1),
                    counts,
                    hetal: if slots == 1 << 15 { hetal_counts(name, shape) } else { None },
                    seconds,
                    runs,
                    extrapolated,
                    max_abs_error,
                    relative_error,
                    levels,
                    rotation_keys: steps.len(),
                });
            }
            let secs = |n: Algorithm| results.iter().find(|r| r.shape == shape && r.algorithm == n).map(|r| r.seconds);
            let ratio = |x: Option<f64>, y: Option<f64>| Some(x? / y?);
            speedups.push(Speedup {
                shape,
                diag_abt_over_col_major: ratio(secs(Algorithm::ColMajorAbt), secs(Algorithm::DiagAbt)),
                diag_atb_over_row_major: ratio(secs(Algorithm::RowMajorAtb), secs(Algorithm::DiagAtb)),
            });
        }
        Ok(BenchMatmulReport {
            preset: opts.preset.clone(),
            insecure: entry.insecure,
            log_n: ctx.params().log_n(),
            level,
            threads: opts.threads,
            data: match &opts.features {
                Some(p) => format!("A: rows of {} (+ bias column)", p.display()),
                None => "A: uniform [-1, 1] (synthetic)".into(),
            },
            results,
            speedups,
        })
    })
}

fn bad_shape(t: &str) -> Error {
    Error::BadArgument { name: "shape", value: t.to_string(), expected: "AxBxC".into() }
}

/// Parses `AxBxC` shapes separated by commas (`all` for [`SHAPES`]).
pub fn parse_shapes(s: &str) -> Result<Vec<(usize, usize, usize)>> {
    if s == "all" {
        return Ok(SHAPES.to_vec());
    }
    s.split(',')
        .map(|t| {
            let v: Vec<usize> =
                t.trim().split('x').map(|n| n.parse().map_err(|_| bad_shape(t))).collect::<Result<_>>()?;
            match v[..] {
                [a, b, c] if a > 0 && b > 1 && c > 0 => Ok((a, b, c)),
                _ => Err(bad_shape(t)),
            }
        })
        .collect()
}
