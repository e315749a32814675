//! Strictly encrypted training of the softmax-regression head (HETAL's protocol): the server
//! holds the weights `W` and their Nesterov companion `V` as compact ciphertexts, and one step on
//! an encrypted batch `(X, Y)` computes, with no decryption and no help from the owner,
//!
//! 1. expansion: `V` (compact, [`CompactLayout`]) to the vertically tiled blocks DiagABT takes,
//!    by the plans of [`CompactLayout::expand_steps`] (one mask per block that also undoes the
//!    weights' storage factor, then rotate-and-adds: no key per block);
//! 2. logits `X V^T` by DiagABT;
//! 3. `P` by the normalize-and-square softmax circuit ([`lean_softmax`]; [`nas_softmax`] precise);
//! 4. `E = P - Y` (Y brought to `P`'s level and scale with one of its spare levels), the
//!    gradient `E^T X` by DiagATB with PRotUp and merged row sums ([`RowSums::Merged`]),
//!    gathered back to the compact form by one mask per block (no rotation) that also multiplies
//!    by `-lr / B` and the storage factor;
//! 5. Nesterov on the compact pair: `W' = V - lr G`, `V' = W' + gamma (W - W')` (`gamma` a
//!    plaintext scalar of [`Nesterov`]'s sequence), then `W'` and `V'` refreshed together by
//!    one complex bootstrap of `W' + i V'` when `V'` has fewer levels than the next step's
//!    expansion, DiagABT and `exp` need.
//!
//! The compact weights are stored divided by `2^weight_bits` so that bootstrapping sees values
//! within `[-1, 1]` as long as `|W| < 2^weight_bits`; the factor is folded into the expansion
//! and gather masks (no level). The softmax's input range (`|logit| <= 32` for the default
//! normalize-and-square) is the owner's responsibility: its plaintext twin on the same schedule
//! checks it before anything is encrypted ([`crate::learning::twin::TwinRun::out_of_range_epoch`]).
//!
//! A batch may come in parts of one block row each ([`ServerTrainer::part`]): steps 1-4 run
//! per part, the gather's mask carrying `-lr / B` for the whole step's `B`, so the parts end at one
//! level and scale and their sum (exact modular additions, in any order, on any machine) is the
//! whole batch's update, which step 5 ([`ServerTrainer::apply`]) applies once.
//!
//! Every part is written once against [`HeBackend`]: the server runs it on ciphertexts, the
//! planner on the level-and-scale [`Simulator`] (bootstraps fall where a ciphertext would run
//! out of levels, [`HeBackend::ensure`]; the simulator's log is the plan), and the tests on
//! exact slots.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use hetune_core::ckks::Ciphertext;
use hetune_core::Parameters;

use super::compact::{CompactLayout, SlotStep};
use super::counters::OpCounts;
use super::dataset::Dataset;
use super::diag_abt::{diag_abt, diag_abt_folded};
use super::diag_atb::{diag_atb_prot_up_with, RowSums};
use super::matrix::{EncMatrix, MatrixLayout};
use super::nesterov::Nesterov;
use super::ops::{doubling, BootEvent, CkksBackend, CountingBackend, HeBackend};
use super::packing::{Packing, Tiling};
use super::sim::{Chain, Simulator};
use super::softmax::circuit::{hetal_softmax, lean_softmax_in, nas_softmax};
use super::softmax::fold::{foldable, FoldedOps, Layout};
use super::softmax::{HetalSoftmax, LeanNas, NasConfig, NasSoftmax};
use super::twin::Model;
use crate::circuits::bootstrap::{BootstrapConfig, Bootstrapper};
use crate::circuits::chebyshev::Chebyshev;
use crate::circuits::polynomial;
use crate::evaluator::{zero_ciphertext, Evaluator, KeyRequest};
use crate::{Error, Result};

/// Which softmax approximation the encrypted step evaluates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SoftmaxKind {
    /// Normalize-and-square, lean (the default, [`LeanNas::default_for`]): 5 bootstraps a
    /// step at the SNIPS and MNIST shapes.
    #[default]
    Nas,
    /// Normalize-and-square, precise ([`NasConfig::default_for_training`]): 1e-6 like the lean
    /// one, 7 bootstraps a step.
    #[serde(rename = "nas-precise")]
    NasPrecise,
    /// HETAL's (max by comparisons, domain extension, `p(x/8)^8`, Goldschmidt), with its
    /// published constants ([`HetalSoftmax::published`]): logits within 128, more bootstraps.
    Hetal,
}

/// What an encrypted training run is: shapes, schedule, softmax.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Classes `c`.
    pub classes: usize,
    /// Columns of `X` with the bias column (`d + 1`).
    pub cols: usize,
    /// Rows per batch (the packing's `s0` is this rounded up to a power of two).
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// The softmax approximation.
    pub softmax: SoftmaxKind,
    /// The compact weights are stored divided by `2^weight_bits`: bootstrapping needs
    /// `|W| < 2^weight_bits`.
    pub weight_bits: u32,
    /// The lean softmax on the folded logits ([`crate::learning::softmax::fold`]: its
    /// bootstraps refresh `slots / (s1 / pad_c)` slots) when a block row holds two class periods
    /// or more. On by default; a configuration serialised without it (older jobs, whose keys
    /// lack the fold's rotations) keeps the tiled layout.
    #[serde(default)]
    pub fold_softmax: bool,
}

impl TrainConfig {
    /// A configuration with the default softmax and `weight_bits = 4` (`|W| < 16`).
    pub fn new(classes: usize, cols: usize, batch: usize, lr: f64) -> Self {
        TrainConfig { classes, cols, batch, lr, softmax: SoftmaxKind::Nas, weight_bits: 4, fold_softmax: true }
    }

    /// HETAL's packing of this configuration on `slots` slots.
    pub fn packing(&self, slots: usize) -> Result<Packing> {
        Packing::hetal(self.classes, self.batch, slots)
    }

    fn check(&self) -> Result<()> {
        if self.classes < 2 || self.cols < 2 || self.batch == 0 || !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidConfig {
                what: "encrypted training",
                need: "2 or more classes, 2 or more columns (features and the bias), a batch and a positive lr",
            });
        }
        if self.weight_bits > 20 {
            return Err(Error::InvalidConfig { what: "encrypted training", need: "weight_bits at most 20" });
        }
        Ok(())
    }
}

/// Where a step's time goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct TimeSplit {
    /// DiagABT and DiagATB (with `P - Y`).
    pub matmul: f64,
    /// The softmax circuit.
    pub softmax: f64,
    /// Bootstrapping (taken out of the other parts).
    pub bootstrap: f64,
    /// Expanding the compact weights to the tiled layout.
    pub expansion: f64,
    /// Gathering the gradient and the Nesterov update.
    pub update: f64,
}

impl TimeSplit {
    /// Adds `other`'s seconds part by part.
    pub fn add(&mut self, other: &TimeSplit) {
        self.matmul += other.matmul;
        self.softmax += other.softmax;
        self.bootstrap += other.bootstrap;
        self.expansion += other.expansion;
        self.update += other.update;
    }

    /// All parts.
    pub fn total(&self) -> f64 {
        self.matmul + self.softmax + self.bootstrap + self.expansion + self.update
    }
}

/// Splits wall time into a step's phases, bootstraps taken out (from the backend's log).
struct Clock {
    split: TimeSplit,
    last: Instant,
    last_boot: f64,
}

impl Clock {
    fn new(ops: &CkksBackend<'_>) -> Self {
        Clock { split: TimeSplit::default(), last: Instant::now(), last_boot: ops.boot_log().seconds }
    }

    /// The time since the last mark goes to `phase`, less the bootstraps' (which go to theirs).
    fn mark(&mut self, ops: &CkksBackend<'_>, phase: Phase) {
        let now = Instant::now();
        let boot = ops.boot_log().seconds;
        let spent = (now - self.last).as_secs_f64() - (boot - self.last_boot);
        self.split.bootstrap += boot - self.last_boot;
        match phase {
            Phase::Expansion => self.split.expansion += spent,
            Phase::Matmul => self.split.matmul += spent,
            Phase::Softmax => self.split.softmax += spent,
            Phase::Update => self.split.update += spent,
        }
        (self.last, self.last_boot) = (now, boot);
    }
}

/// What one encrypted step did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepReport {
    /// The global step number (0-based) this report is for.
    pub step: u64,
    /// Bootstraps made.
    pub bootstraps: usize,
    /// Seconds per part.
    pub seconds: TimeSplit,
}

/// The plan of a step, from the level-and-scale simulator running the step's circuits.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepPlan {
    /// Bootstraps per step (steady state: the second step of a run).
    pub bootstraps: usize,
    /// Of which in the softmax.
    pub softmax_bootstraps: usize,
    /// Of which on the weights (one complex bootstrap refreshes `W` and `V`).
    pub weight_bootstraps: usize,
    /// Every bootstrap of the step.
    pub sites: Vec<BootEvent>,
    /// Slots of the weights' bootstrap (a sparse packing when the compact form fits one).
    pub weight_bootstrap_slots: usize,
    /// Whether anything (a step, the validation loss, inference) bootstraps on all the slots:
    /// without it the server needs none of full-slot bootstrapping's keys.
    pub full_slot_bootstraps: bool,
    /// Level of the logits after DiagABT.
    pub logits_level: usize,
    /// Level of the weights at the start of a step (after their refresh).
    pub weights_level: usize,
    /// Operation counts of one step.
    pub counts: OpCounts,
    /// Every rotation step the server uses (training, validation loss, inference).
    pub rotations: Vec<i64>,
    /// Slots of a ciphertext.
    pub slots: usize,
    /// Level after a bootstrap.
    pub bootstrap_level: usize,
    /// Level of a part's contribution to the update ([`ServerTrainer::part`]): the level at
    /// which a data-parallel run sums the parts (its messages carry `part_level + 1` limbs per
    /// polynomial).
    pub part_level: usize,
}

/// The parts of a step, generic over the backend.
#[derive(Clone, Debug)]
struct Core {
    cfg: TrainConfig,
    pk: Packing,
    layout: CompactLayout,
    softmax: Circuit,
    /// Levels `V` needs at the start of a step to reach `exp` without a bootstrap.
    weight_need: usize,
    /// Levels `P - Y` needs for DiagATB, the gather and the update.
    residual_need: usize,
    /// Levels the weights need for the expansion and DiagABT (inference).
    logits_need: usize,
    /// The softmax runs on folded logits.
    fold: bool,
}

/// The softmax circuit a step runs.
#[derive(Clone, Debug)]
enum Circuit {
    Nas(NasSoftmax),
    Lean(LeanNas),
    Hetal(HetalSoftmax),
}

impl Circuit {
    fn run<O: HeBackend>(&self, ops: &O, logits: &O::Ct, pk: Packing, layout: Layout) -> Result<O::Ct> {
        match self {
            Circuit::Nas(n) => nas_softmax(ops, n, logits, pk),
            Circuit::Lean(n) => lean_softmax_in(ops, n, logits, pk, layout),
            Circuit::Hetal(h) => hetal_softmax(ops, h, logits, pk),
        }
    }

    /// Levels the logits need before the circuit's first refresh.
    fn first_stage(&self) -> usize {
        match self {
            Circuit::Nas(n) => polynomial::depth(&Chebyshev { coeffs: n.exp.coeffs.clone(), a: -n.bound, b: n.bound }),
            Circuit::Lean(n) => polynomial::depth(&Chebyshev { coeffs: n.exp.coeffs.clone(), a: -n.bound, b: n.bound }),
            Circuit::Hetal(_) => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Expansion,
    Matmul,
    Softmax,
    Update,
}

impl Core {
    fn new(cfg: &TrainConfig, slots: usize) -> Result<Self> {
        cfg.check()?;
        let pk = cfg.packing(slots)?;
        let layout = CompactLayout::new(pk, cfg.classes, cfg.cols)?;
        let softmax = match cfg.softmax {
            SoftmaxKind::Nas => Circuit::Lean(LeanNas::default_for(cfg.classes)?),
            SoftmaxKind::NasPrecise => {
                Circuit::Nas(NasSoftmax::new(cfg.classes, NasConfig::default_for_training(cfg.classes))?)
            }
            SoftmaxKind::Hetal => Circuit::Hetal(HetalSoftmax::published(cfg.classes)),
        };
        // Levels of DiagABT and of DiagATB (PRotUp) from their own code on the counting backend.
        let probe = 40;
        let ops = CountingBackend::new(slots);
        let lv = |r, c, t, l| EncMatrix::level_only(r, c, pk, t, l);
        let z = diag_abt(
            &ops,
            &lv(cfg.batch, cfg.cols, Tiling::None, probe + 1)?,
            &lv(cfg.classes, cfg.cols, Tiling::Vertical, probe)?,
        )?;
        let abt = probe - z.blocks.iter().map(|b| b.level).min().unwrap_or(0);
        let g = diag_atb_prot_up_with(
            &ops,
            &lv(cfg.batch, cfg.classes, Tiling::Horizontal, probe)?,
            &lv(cfg.batch, cfg.cols, Tiling::None, probe + 1)?,
            RowSums::Merged,
        )?;
        let atb = probe - g.blocks.iter().map(|b| b.level).min().unwrap_or(0);
        // Expansion mask, DiagABT, the softmax's first stage (exp on the logits' range).
        let weight_need = 1 + abt + softmax.first_stage();
        // DiagATB, the gather mask, the Nesterov product.
        let residual_need = atb + 2;
        let fold = cfg.fold_softmax && matches!(softmax, Circuit::Lean(_)) && foldable(pk);
        Ok(Core { cfg: cfg.clone(), pk, layout, softmax, weight_need, residual_need, logits_need: 1 + abt, fold })
    }

    /// The sparse bootstraps' configurations with their slot counts: the weights' (when the
    /// compact form fits a sparse packing) and the folded softmax's, once per slot count.
    fn sparse_configs(&self) -> Vec<(usize, BootstrapConfig)> {
        let mut slots = vec![self.sparse_slots()];
        if self.fold {
            slots.push(self.pk.folded_slots());
        }
        slots.sort_unstable();
        slots.dedup();
        slots
            .into_iter()
            .filter(|&n| n < self.pk.slots())
            .map(|n| (n, BootstrapConfig { log_slots: Some(n.trailing_zeros()), ..BootstrapConfig::default() }))
            .collect()
    }

    fn storage(&self) -> f64 {
        2f64.powi(-(self.cfg.weight_bits as i32))
    }

    /// Applies a slot plan of [`CompactLayout`], its masks carrying `factor`.
    fn apply<O: HeBackend>(&self, ops: &O, x: O::Ct, plan: &[SlotStep], factor: f64, target: f64) -> Result<O::Ct> {
        let n = self.pk.slots();
        let mut x = x;
        for s in plan {
            x = match *s {
                SlotStep::Rotate(k) => ops.rotate(&x, k)?,
                SlotStep::Keep(a, b, period) => {
                    let m: Vec<f64> =
                        (0..n).map(|i| if (a..b).contains(&(i % period)) { factor } else { 0.0 }).collect();
                    let x = ops.ensure(&x, 1, "weights: mask")?;
                    ops.mul_values(&x, &m, target)?
                }
                SlotStep::RotateAdd(k) => {
                    let r = ops.rotate(&x, k)?;
                    ops.add(&x, &r)?
                }
            };
        }
        Ok(x)
    }

    /// The compact weights `w` (stored scaled) as the vertically tiled `W` DiagABT takes.
    fn expand<O: HeBackend>(&self, ops: &O, w: &O::Ct) -> Result<EncMatrix<O::Ct>> {
        let target = ops.scale(w);
        let tiled = (0..self.layout.blocks())
            .map(|j| self.apply(ops, w.clone(), &self.layout.expand_steps(j), 1.0 / self.storage(), target))
            .collect::<Result<Vec<_>>>()?;
        EncMatrix::new(self.cfg.classes, self.cfg.cols, self.pk, Tiling::Vertical, tiled)
    }

    /// The tiled gradient `g` gathered into compact form, times `factor`, at `target` scale.
    fn gather<O: HeBackend>(&self, ops: &O, g: &EncMatrix<O::Ct>, factor: f64, target: f64) -> Result<O::Ct> {
        let mut acc: Option<O::Ct> = None;
        for (j, b) in g.blocks.iter().enumerate() {
            let part = self.apply(ops, b.clone(), &self.layout.gather_steps(j), factor, target)?;
            acc = Some(match acc {
                None => part,
                Some(a) => ops.add(&a, &part)?,
            });
        }
        // The masks keep every repetition of the sparse period, so W and V stay periodic for
        // a sparse bootstrap.
        acc.ok_or(Error::InvalidArgument("a gradient without blocks"))
    }

    /// The compact `w` with `need` levels, bootstrapped on the weights' sparse period when it
    /// has fewer (the compact form repeats with that period).
    fn refresh_weights<O: HeBackend>(&self, ops: &O, w: &O::Ct, need: usize, site: &'static str) -> Result<O::Ct> {
        let n = self.sparse_slots();
        if ops.level(w) >= need || n >= self.pk.slots() {
            return ops.ensure(w, need, site);
        }
        FoldedOps::new(ops, n)?.ensure(w, need, site)
    }

    /// Slots of the weights' bootstrap: the compact form's used slots rounded up to a power of
    /// two (the full slots when that is all of them).
    fn sparse_slots(&self) -> usize {
        self.layout.weight_period()
    }

    fn check_batch<C>(&self, x: &EncMatrix<C>, y: Option<&EncMatrix<C>>) -> Result<()> {
        if x.packing != self.pk || x.tiling != Tiling::None || x.cols != self.cfg.cols {
            return Err(Error::LayoutMismatch {
                op: "encrypted training",
                expected: "X untiled with the configuration's columns, in the configuration's packing",
            });
        }
        if let Some(y) = y {
            if y.packing != self.pk || y.tiling != Tiling::Horizontal || y.cols != self.cfg.classes {
                return Err(Error::LayoutMismatch {
                    op: "encrypted training",
                    expected: "Y one-hot, tiled horizontally, one column per class, in X's packing",
                });
            }
            if y.rows != x.rows {
                return Err(Error::ShapeMismatch {
                    op: "encrypted training (X and Y)",
                    left: (x.rows, x.cols),
                    right: (y.rows, y.cols),
                });
            }
        }
        Ok(())
    }

    fn probabilities<O: HeBackend>(
        &self,
        ops: &O,
        x: &EncMatrix<O::Ct>,
        w: &O::Ct,
        mark: &mut dyn FnMut(Phase),
    ) -> Result<Vec<O::Ct>> {
        let tiled = self.expand(ops, w)?;
        mark(Phase::Expansion);
        let p = if self.fold {
            let z = diag_abt_folded(ops, x, &tiled)?;
            mark(Phase::Matmul);
            let folded = FoldedOps::new(ops, self.pk.folded_slots())?;
            z.iter().map(|b| self.softmax.run(&folded, b, self.pk, Layout::Folded)).collect::<Result<Vec<_>>>()?
        } else {
            let z = diag_abt(ops, x, &tiled)?;
            mark(Phase::Matmul);
            z.blocks.iter().map(|b| self.softmax.run(ops, b, self.pk, Layout::Tiled)).collect::<Result<Vec<_>>>()?
        };
        mark(Phase::Softmax);
        Ok(p)
    }

    /// `P - Y` block by block; `Y` (fresh, spare levels) is brought to `P`'s level and scale.
    fn residual<O: HeBackend>(
        &self,
        ops: &O,
        p: Vec<O::Ct>,
        y: &EncMatrix<O::Ct>,
        need: usize,
    ) -> Result<EncMatrix<O::Ct>> {
        let blocks = p
            .into_iter()
            .zip(&y.blocks)
            .map(|(pb, yb)| {
                let (lp, ly) = (ops.level(&pb), ops.level(yb));
                let e = if lp < ly {
                    let y2 = ops.set_scale(&ops.drop_level(yb, lp + 1)?, ops.scale(&pb))?;
                    ops.sub(&pb, &y2)?
                } else {
                    let pb = ops.ensure(&pb, 1, "residual: scale")?;
                    let p2 = ops.set_scale(&pb, ops.scale(yb))?;
                    ops.sub(&p2, yb)?
                };
                ops.ensure(&e, need, "residual: before DiagATB")
            })
            .collect::<Result<Vec<_>>>()?;
        EncMatrix::new(y.rows, y.cols, self.pk, Tiling::Horizontal, blocks)
    }

    /// `v` at the level a step needs (weights from a step always are; weights from elsewhere,
    /// a checkpoint of another plan, are refreshed first).
    fn ready<O: HeBackend>(&self, ops: &O, v: &O::Ct) -> Result<O::Ct> {
        self.refresh_weights(ops, v, self.weight_need, "weights: resume")
    }

    /// What one part of a step's batch (`x`, `y`: one block row) contributes to the update:
    /// its gradient gathered to the compact form times `-lr / rows * storage`, where `rows` is
    /// the whole step's row count, at `v`'s scale. Parts of one step come out at one level and
    /// scale, so their sum (exact modular additions, in any order and on any machine) is the
    /// update of the whole batch: the same bits however the parts are shared out.
    fn part<O: HeBackend>(
        &self,
        ops: &O,
        (x, y): (&EncMatrix<O::Ct>, &EncMatrix<O::Ct>),
        v: &O::Ct,
        rows: usize,
        mark: &mut dyn FnMut(Phase),
    ) -> Result<O::Ct> {
        self.check_batch(x, Some(y))?;
        let p = self.probabilities(ops, x, v, mark)?;
        let e = self.residual(ops, p, y, self.residual_need)?;
        let g = diag_atb_prot_up_with(ops, &e, x, RowSums::Merged)?;
        mark(Phase::Matmul);
        let factor = -self.cfg.lr / rows as f64 * self.storage();
        self.gather(ops, &g, factor, ops.scale(v))
    }

    /// Nesterov's update of `(w, v)` (`v` [`Core::ready`]) by the summed parts `step`, and the
    /// weights' refresh when the next step needs it: the new `(w, v)`.
    fn update<O: HeBackend>(
        &self,
        ops: &O,
        (w, v): (&O::Ct, &O::Ct),
        step: &O::Ct,
        gamma: f64,
        mark: &mut dyn FnMut(Phase),
    ) -> Result<(O::Ct, O::Ct)> {
        let w_new = ops.add(v, step)?;
        let diff = ops.sub(w, &w_new)?;
        let diff = ops.ensure(&diff, 1, "update: gamma")?;
        let pushed = ops.mul_const_to(&diff, gamma, ops.scale(&w_new))?;
        let v_new = ops.add(&w_new, &pushed)?;
        let level = ops.level(&w_new).min(ops.level(&v_new));
        let out = if level < self.weight_need {
            let (w2, v2) = (ops.drop_level(&w_new, level)?, ops.drop_level(&v_new, level)?);
            let n = self.sparse_slots();
            if n < self.pk.slots() {
                ops.bootstrap_pair_sparse(&w2, &v2, n, "weights: W + iV")?
            } else {
                ops.bootstrap_pair(&w2, &v2, "weights: W + iV")?
            }
        } else {
            (w_new, v_new)
        };
        mark(Phase::Update);
        Ok(out)
    }

    /// One step from the weights `(w, v)` on a batch of one part: the new `(w, v)`.
    fn step<O: HeBackend>(
        &self,
        ops: &O,
        (x, y): (&EncMatrix<O::Ct>, &EncMatrix<O::Ct>),
        (w, v): (&O::Ct, &O::Ct),
        gamma: f64,
        mark: &mut dyn FnMut(Phase),
    ) -> Result<(O::Ct, O::Ct)> {
        self.check_batch(x, Some(y))?;
        let v = &self.ready(ops, v)?;
        let step = self.part(ops, (x, y), v, x.rows, mark)?;
        self.update(ops, (w, v), &step, gamma, mark)
    }

    /// The level of the summed parts of a step (what a data-parallel run exchanges), on the
    /// level-and-scale simulator from the weights at `level`.
    fn part_level(&self, sim: &Simulator, level: usize) -> Result<usize> {
        let fresh = |r, c, t| -> Result<EncMatrix<_>> {
            let (br, bc) = self.pk.grid(r, c, t)?;
            EncMatrix::new(r, c, self.pk, t, vec![sim.fresh(); br * bc])
        };
        let x = fresh(self.cfg.batch.min(self.pk.s0), self.cfg.cols, Tiling::None)?;
        let y = fresh(self.cfg.batch.min(self.pk.s0), self.cfg.classes, Tiling::Horizontal)?;
        let v = sim.at(level);
        Ok(self.part(sim, (&x, &y), &v, x.rows, &mut |_| {})?.level)
    }

    /// Sum over the real rows of `sum_j (P - Y)_j^2`, in every slot.
    fn sse<O: HeBackend>(&self, ops: &O, x: &EncMatrix<O::Ct>, y: &EncMatrix<O::Ct>, w: &O::Ct) -> Result<O::Ct> {
        self.check_batch(x, Some(y))?;
        let p = self.probabilities(ops, x, w, &mut |_| {})?;
        let e = self.residual(ops, p, y, 2)?;
        let (s0, s1, pad_c) = (self.pk.s0, self.pk.s1, self.pk.pad_c);
        let mut acc: Option<O::Ct> = None;
        for (i, b) in e.blocks.iter().enumerate() {
            let sq = ops.square(b)?;
            let real = x.rows.saturating_sub(i * s0).min(s0);
            let m: Vec<f64> =
                (0..self.pk.slots()).map(|k| if k / s1 < real && k % s1 < pad_c { 1.0 } else { 0.0 }).collect();
            let kept = ops.mul_values(&sq, &m, ops.scale(&sq))?;
            acc = Some(match acc {
                None => kept,
                Some(a) => ops.add(&a, &kept)?,
            });
        }
        let acc = acc.ok_or(Error::InvalidArgument("a batch without blocks"))?;
        ops.rotate_add(acc, doubling(1, self.pk.slots()))
    }

    /// The plan: two steps, a validation loss and an inference on the simulator.
    fn plan(&self, chain: &Chain) -> Result<StepPlan> {
        let slots = self.pk.slots();
        let boot_level = chain.boot_level.ok_or(Error::InvalidConfig {
            what: "encrypted training",
            need: "a parameter set with bootstrapping (e.g. n16-boot)",
        })?;
        if boot_level < self.weight_need.max(self.residual_need) {
            return Err(Error::InvalidConfig {
                what: "encrypted training",
                need: "more levels after a bootstrap than the weights' expansion, DiagABT and exp need",
            });
        }
        let sim = Simulator::new(slots, chain.clone());
        let fresh = |r, c, t| -> Result<EncMatrix<_>> {
            let (br, bc) = self.pk.grid(r, c, t)?;
            EncMatrix::new(r, c, self.pk, t, vec![sim.fresh(); br * bc])
        };
        let x = fresh(self.cfg.batch, self.cfg.cols, Tiling::None)?;
        let y = fresh(self.cfg.batch, self.cfg.classes, Tiling::Horizontal)?;
        let (mut w, mut v) = (sim.at(boot_level), sim.at(boot_level));
        let mut logits_level = 0;
        let mut weights_level = 0;
        let mut counts = OpCounts::default();
        let mut before = 0;
        for k in 0..2 {
            before = sim.boot_log().count();
            let z = diag_abt(&sim, &x, &self.expand(&sim, &v)?)?;
            logits_level = z.blocks.iter().map(|b| b.level).min().unwrap_or(0);
            // The same step again through `step` (the expansion and product above are only
            // probed for the logits' level; `step` redoes them).
            let counted = sim.counter().snapshot();
            let (w2, v2) = self.step(&sim, (&x, &y), (&w, &v), if k == 0 { 0.0 } else { -0.3 }, &mut |_| {})?;
            let c1 = sim.counter().snapshot();
            counts = c1 - counted;
            weights_level = w2.level.min(v2.level);
            (w, v) = (w2, v2);
        }
        let log = sim.boot_log();
        let sites: Vec<_> = log.events[before..].to_vec();
        let weight_bootstraps = sites.iter().filter(|s| s.site.starts_with("weights")).count();
        let softmax_bootstraps = sites.iter().filter(|s| s.site.starts_with("softmax")).count();
        self.sse(&sim, &x, &y, &w)?;
        let w = self.refresh_weights(&sim, &sim.at(0), self.logits_need, "inference: weights")?;
        diag_abt(&sim, &x, &self.expand(&sim, &w)?)?;
        let full_slot_bootstraps = sim.boot_log().events.iter().any(|e| e.slots == slots);
        let part_level = self.part_level(&Simulator::new(slots, chain.clone()), weights_level)?;
        Ok(StepPlan {
            full_slot_bootstraps,
            part_level,
            bootstraps: sites.len(),
            softmax_bootstraps,
            weight_bootstraps,
            sites,
            weight_bootstrap_slots: self.sparse_slots(),
            logits_level,
            weights_level,
            counts,
            rotations: sim.rotation_steps(),
            slots,
            bootstrap_level: boot_level,
        })
    }
}

/// The compact model and optimiser state, for checkpoints.
#[derive(Clone, Debug)]
pub struct TrainerState {
    /// `W` compact (stored divided by `2^weight_bits`).
    pub w: Ciphertext,
    /// Nesterov's `V`, likewise.
    pub v: Ciphertext,
    /// Global steps taken.
    pub step: u64,
}

/// The backend of a step: the evaluator with the trainer's bootstrappers (borrowed field by
/// field, so that the weights can be replaced while it lives).
fn backend<'a>(ev: &'a Evaluator, boot: &'a Bootstrapper, sparse: &'a [Bootstrapper]) -> Result<CkksBackend<'a>> {
    let mut ops = CkksBackend::new(ev).with_bootstrapper(boot)?;
    for s in sparse {
        ops = ops.with_sparse_bootstrapper(s)?;
    }
    Ok(ops)
}

/// The server's side of encrypted training.
pub struct ServerTrainer {
    ev: Arc<Evaluator>,
    boot: Bootstrapper,
    sparse: Vec<Bootstrapper>,
    core: Core,
    plan: StepPlan,
    w: Ciphertext,
    v: Ciphertext,
    /// `v` made ready for the current step ([`Core::ready`]: a bootstrap when the weights came
    /// from a checkpoint of another plan), kept from the step's first part to its update.
    ready_v: Mutex<Option<Ciphertext>>,
    nesterov: Nesterov,
    step: u64,
}

fn chain_of(params: &Parameters) -> Chain {
    Chain::of(params, &BootstrapConfig::default())
}

/// The sparse bootstrap's key request without the rotations a key already in `have` serves: on
/// a ciphertext of `n` slots the evaluator rotates by `k` with any key whose step is congruent to
/// `k` modulo `n` (its linear transforms' steps near `n` are the full ring's short right
/// rotations, which full-slot bootstrapping and training hold already). Multiples of `n` rotate
/// full-slot ciphertexts (the trace before CoeffToSlot) and are kept as asked.
fn sparse_request(have: &KeyRequest, mut sparse: KeyRequest, n: usize) -> KeyRequest {
    let n = n as i64;
    sparse.rotations.retain(|&k| k.rem_euclid(n) == 0 || !have.rotations.iter().any(|&h| (h - k).rem_euclid(n) == 0));
    sparse
}

impl ServerTrainer {
    /// Every key the server needs for `cfg` at `params`: the rotations of the expansion,
    /// DiagABT, the softmax's row sums, DiagATB, the gather and the validation loss's sum (from
    /// the simulator's run of them), and bootstrapping's keys.
    /// The plan of one step of `cfg` on `params` (the simulator's run: bootstraps, sites,
    /// counts, rotations), with no keys and no ciphertexts.
    pub fn step_plan(params: &Parameters, cfg: &TrainConfig) -> Result<StepPlan> {
        Core::new(cfg, params.max_slots())?.plan(&chain_of(params))
    }

    pub fn key_request(params: &Parameters, cfg: &TrainConfig) -> Result<KeyRequest> {
        let core = Core::new(cfg, params.max_slots())?;
        let plan = core.plan(&chain_of(params))?;
        // Full-slot bootstrapping's keys only when something bootstraps on all the slots (the
        // tiled softmax, weights that fill the slots).
        let mut req = if plan.full_slot_bootstraps {
            BootstrapConfig::default().key_request(params.log_n())
        } else {
            KeyRequest::default()
        };
        req.merge(&KeyRequest {
            relinearization: true,
            rotations: plan.rotations,
            conjugation: true,
            encapsulation: None,
        });
        for (n, sparse) in core.sparse_configs() {
            req.merge(&sparse_request(&req, sparse.key_request(params.log_n()), n));
        }
        Ok(req)
    }

    /// A trainer with zero weights. Checks before any heavy work: the configuration and the
    /// classes against the packing, the levels of the parameter set against the plan, and every
    /// key the plan needs (an error names a missing rotation).
    pub fn new(ev: Arc<Evaluator>, cfg: TrainConfig) -> Result<Self> {
        let params = ev.context().params().clone();
        let core = Core::new(&cfg, params.max_slots())?;
        let plan = core.plan(&chain_of(&params))?;
        if !ev.has_relinearization_key() {
            return Err(Error::MissingRelinearizationKey);
        }
        if !ev.has_conjugation_key() {
            return Err(Error::MissingConjugationKey);
        }
        // Every rotation by its own key (a composition of others would cost extra key
        // switches on every use).
        let slots = params.max_slots();
        let held = ev.rotation_key_steps();
        if let Some(&step) = plan.rotations.iter().find(|&&s| !held.contains(&(s.rem_euclid(slots as i64) as usize))) {
            return Err(Error::MissingRotationKey { step, slots });
        }
        let log_slots = slots.trailing_zeros();
        let boot = Bootstrapper::with_output_factor(ev.clone(), BootstrapConfig::default(), 0.5)?;
        let sparse = core
            .sparse_configs()
            .into_iter()
            .map(|(_, c)| Bootstrapper::with_output_factor(ev.clone(), c, 0.5))
            .collect::<Result<Vec<_>>>()?;
        let zero = zero_ciphertext(params.n(), 2, plan.bootstrap_level, params.scale(), log_slots);
        Ok(ServerTrainer {
            ev,
            boot,
            sparse,
            core,
            plan,
            w: zero.clone(),
            v: zero,
            ready_v: Mutex::new(None),
            nesterov: Nesterov::new(),
            step: 0,
        })
    }

    /// A trainer resumed from a checkpoint.
    pub fn from_state(ev: Arc<Evaluator>, cfg: TrainConfig, state: TrainerState) -> Result<Self> {
        let mut t = Self::new(ev, cfg)?;
        let slots = t.core.pk.slots();
        for ct in [&state.w, &state.v] {
            t.ev.check(ct)?;
            if 1usize << ct.log_slots != slots {
                return Err(Error::InvalidArgument("checkpoint weights with another slot count"));
            }
        }
        t.w = state.w;
        t.v = state.v;
        *t.ready_v.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        t.step = state.step;
        t.nesterov = Nesterov::new();
        for _ in 0..state.step {
            t.nesterov.next_gamma();
        }
        Ok(t)
    }

    /// The model and optimiser state.
    pub fn state(&self) -> TrainerState {
        TrainerState { w: self.w.clone(), v: self.v.clone(), step: self.step }
    }

    /// The plan (from the simulator).
    pub fn plan(&self) -> &StepPlan {
        &self.plan
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.core.cfg
    }

    /// The packing batches must come in.
    pub fn packing(&self) -> Packing {
        self.core.pk
    }

    /// One Nesterov step on the encrypted batch `x` (untiled, the bias column included) and
    /// `y` (one-hot, tiled horizontally), both fresh from the owner ([`pack_batch`]). The same
    /// as [`ServerTrainer::part`] on the whole batch followed by [`ServerTrainer::apply`].
    pub fn step(&mut self, x: &EncMatrix<Ciphertext>, y: &EncMatrix<Ciphertext>) -> Result<StepReport> {
        self.core.check_batch(x, Some(y))?;
        let (step, first) = self.part(x, y, x.rows)?;
        let mut report = self.apply(&step)?;
        report.bootstraps += first.bootstraps;
        report.seconds.add(&first.seconds);
        Ok(report)
    }

    /// One part of the next step's batch: `x` and `y` as [`ServerTrainer::step`] takes them (at
    /// most one block row), `rows` the row count of the whole step. Returns the part's
    /// contribution to the update (a compact ciphertext at the plan's
    /// [`StepPlan::part_level`]) and what computing it took. The contributions of a step's parts,
    /// added with [`Evaluator::add`] in any order and on any machine, give the same bits, and
    /// [`ServerTrainer::apply`] takes their sum.
    pub fn part(
        &self,
        x: &EncMatrix<Ciphertext>,
        y: &EncMatrix<Ciphertext>,
        rows: usize,
    ) -> Result<(Ciphertext, StepReport)> {
        if rows < x.rows || rows == 0 {
            return Err(Error::InvalidArgument("a step's row count below one of its parts'"));
        }
        let ops = backend(&self.ev, &self.boot, &self.sparse)?;
        let mut clock = Clock::new(&ops);
        let step = {
            let v = self.ready_v(&ops)?;
            clock.mark(&ops, Phase::Expansion);
            self.core.part(&ops, (x, y), &v, rows, &mut |phase| clock.mark(&ops, phase))?
        };
        Ok((step, StepReport { step: self.step, bootstraps: ops.boot_log().count(), seconds: clock.split }))
    }

    /// `v` ready for the current step, refreshed at most once a step (its first part or, with
    /// no part run here, its update).
    fn ready_v(&self, ops: &CkksBackend<'_>) -> Result<Ciphertext> {
        let mut cached = self.ready_v.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cached.as_ref() {
            return Ok(v.clone());
        }
        let v = self.core.ready(ops, &self.v)?;
        *cached = Some(v.clone());
        Ok(v)
    }

    /// Ends the step: Nesterov's update of the weights by `step`, the sum of the contributions
    /// of every part of its batch ([`ServerTrainer::part`]).
    pub fn apply(&mut self, step: &Ciphertext) -> Result<StepReport> {
        self.ev.check(step)?;
        let ops = backend(&self.ev, &self.boot, &self.sparse)?;
        let mut nesterov = self.nesterov;
        let gamma = nesterov.next_gamma();
        let mut clock = Clock::new(&ops);
        let (w, v) = {
            let v = self.ready_v(&ops)?;
            clock.mark(&ops, Phase::Update);
            self.core.update(&ops, (&self.w, &v), step, gamma, &mut |phase| clock.mark(&ops, phase))?
        };
        self.w = w;
        self.v = v;
        *self.ready_v.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        self.nesterov = nesterov;
        let report = StepReport { step: self.step, bootstraps: ops.boot_log().count(), seconds: clock.split };
        self.step += 1;
        Ok(report)
    }

    /// Ends the step with the weights another process computed by [`ServerTrainer::apply`]
    /// from the same state (a data-parallel run's update, made once and shared).
    pub fn adopt(&mut self, w: Ciphertext, v: Ciphertext) -> Result<()> {
        for ct in [&w, &v] {
            self.ev.check(ct)?;
            if 1usize << ct.log_slots != self.core.pk.slots() {
                return Err(Error::InvalidArgument("shared weights with another slot count"));
            }
        }
        self.w = w;
        self.v = v;
        *self.ready_v.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        self.nesterov.next_gamma();
        self.step += 1;
        Ok(())
    }

    /// The encrypted sum over the rows of `x` of `sum_j (P - Y)_j^2` (squared error of the
    /// training softmax's probabilities against the one-hot labels) in every slot; the owner
    /// divides by the row count. Rows past `x.rows` (the public row count) are padding: the
    /// owner encrypts them as zeros and the server masks them out, so they add nothing.
    pub fn validation_loss(&self, x: &EncMatrix<Ciphertext>, y: &EncMatrix<Ciphertext>) -> Result<Ciphertext> {
        self.core.sse(&backend(&self.ev, &self.boot, &self.sparse)?, x, y, &self.w)
    }

    /// Encrypted logits `X W^T` (rows of `x`, one column per class, tiled horizontally): the
    /// owner decrypts them with [`EncMatrix::decrypt`] and takes the argmax per row.
    pub fn logits(&self, x: &EncMatrix<Ciphertext>) -> Result<EncMatrix<Ciphertext>> {
        self.core.check_batch(x, None)?;
        let ops = backend(&self.ev, &self.boot, &self.sparse)?;
        let w = self.core.refresh_weights(&ops, &self.w, self.core.logits_need, "inference: weights")?;
        diag_abt(&ops, x, &self.core.expand(&ops, &w)?)
    }

    /// The encrypted compact `W` (divided by `2^weight_bits`), returned to the owner.
    pub fn weights(&self) -> &Ciphertext {
        &self.w
    }

    /// Where each weight sits in [`ServerTrainer::weights`].
    pub fn layout(&self) -> &CompactLayout {
        &self.core.layout
    }
}

/// The owner's side: the decrypted compact vector (real parts of the slots of
/// [`ServerTrainer::weights`]) as a plaintext model (`cfg.cols - 1` features and the bias).
pub fn model_from_compact(cfg: &TrainConfig, layout: &CompactLayout, slots: &[f64]) -> Result<Model> {
    if slots.len() != layout.packing.slots() || layout.rows != cfg.classes || layout.cols != cfg.cols {
        return Err(Error::CountMismatch {
            what: "compact weight slots",
            found: slots.len(),
            expected: layout.packing.slots(),
            shape: (cfg.classes, cfg.cols),
        });
    }
    let up = 2f64.powi(cfg.weight_bits as i32);
    let w = layout.unpack(slots).into_iter().map(|v| v * up).collect();
    Ok(Model { classes: cfg.classes, cols: cfg.cols - 1, w })
}

/// One batch as the owner encrypts it: `X` with the bias column of ones appended (untiled) and
/// the one-hot `Y` (tiled horizontally), with their layouts for [`EncMatrix::encrypt`].
#[derive(Clone, Debug, PartialEq)]
pub struct OwnerBatch {
    /// Row-major `rows x (features + 1)`.
    pub x: Vec<f64>,
    /// Its layout.
    pub x_layout: MatrixLayout,
    /// Row-major `rows x classes`, one-hot.
    pub y: Vec<f64>,
    /// Its layout.
    pub y_layout: MatrixLayout,
}

/// Packs rows `range` of `data` (already standardised by the owner when wanted:
/// [`super::dataset::Standardizer`]) for encryption at `level` in `packing`
/// ([`TrainConfig::packing`]).
pub fn pack_batch(data: &Dataset, range: std::ops::Range<usize>, packing: Packing, level: usize) -> Result<OwnerBatch> {
    if range.start >= range.end || range.end > data.rows || range.len() > packing.s0 {
        return Err(Error::InvalidConfig {
            what: "a training batch",
            need: "a non-empty range of the data set's rows, at most the packing's s0 rows",
        });
    }
    if data.classes > packing.pad_c {
        return Err(crate::error::PackingError::TooManyClasses { classes: data.classes, slots: packing.slots() }.into());
    }
    let (d, c, rows) = (data.cols, data.classes, range.len());
    let mut x = Vec::with_capacity(rows * (d + 1));
    let mut y = vec![0.0; rows * c];
    for (k, i) in range.enumerate() {
        x.extend_from_slice(data.row(i));
        x.push(1.0);
        y[k * c + data.y[i]] = 1.0;
    }
    Ok(OwnerBatch {
        x,
        x_layout: MatrixLayout { rows, cols: d + 1, packing, tiling: Tiling::None, level },
        y,
        y_layout: MatrixLayout { rows, cols: c, packing, tiling: Tiling::Horizontal, level },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::arith::Arith;
    use crate::learning::slots::SlotBackend;
    use crate::learning::softmax::Softmax;
    use crate::learning::twin::{self, Order, TwinConfig, ValidLoss};
    use hetune_core::Security;

    fn params() -> Parameters {
        Parameters::preset("test-n12-boot", Security::InsecureForTestingOnly).unwrap()
    }

    /// Deterministic rows with a class signal, unit-norm-ish like sentence embeddings.
    fn data(rows: usize, features: usize, classes: usize) -> Dataset {
        let mut x = Vec::with_capacity(rows * features);
        let mut labels = Vec::with_capacity(rows);
        for r in 0..rows {
            let label = (r * 5 + r / 3) % classes;
            labels.push(label as i64);
            for f in 0..features {
                let noise = (((r * 7919 + f * 104_729) % 1009) as f64 / 1009.0 - 0.5) * 0.2;
                let signal = if f % classes == label { 0.25 } else { 0.0 };
                x.push(signal + noise);
            }
        }
        Dataset::new("synthetic", x, rows, features, &labels, classes).unwrap()
    }

    #[test]
    fn three_steps_on_exact_slots_equal_the_twin_with_the_same_softmax() {
        for kind in [SoftmaxKind::Nas, SoftmaxKind::NasPrecise, SoftmaxKind::Hetal] {
            three_steps(kind);
        }
    }

    fn three_steps(kind: SoftmaxKind) {
        let (classes, features, batch, steps) = (7usize, 127usize, 32usize, 3usize);
        let mut cfg = TrainConfig::new(classes, features + 1, batch, 1.0);
        cfg.softmax = kind;
        let p = params();
        let core = Core::new(&cfg, p.max_slots()).unwrap();
        let chain = chain_of(&p);
        let ops = SlotBackend::with_chain(p.max_slots(), chain.clone());
        let d = data(batch * steps, features, classes);
        let boot = chain.boot_level.unwrap();
        let zeros = vec![0.0; p.max_slots()];
        let (mut w, mut v) = (ops.at(&zeros, boot), ops.at(&zeros, boot));
        let mut nag = Nesterov::new();
        for k in 0..steps {
            let b = pack_batch(&d, k * batch..(k + 1) * batch, core.pk, chain.fresh).unwrap();
            let enc = |m: &[f64], l: &MatrixLayout| {
                let blocks =
                    l.packing.pack(m, l.rows, l.cols, l.tiling).unwrap().iter().map(|v| ops.fresh(v)).collect();
                EncMatrix::new(l.rows, l.cols, l.packing, l.tiling, blocks).unwrap()
            };
            let (x, y) = (enc(&b.x, &b.x_layout), enc(&b.y, &b.y_layout));
            (w, v) = core.step(&ops, (&x, &y), (&w, &v), nag.next_gamma(), &mut |_| {}).unwrap();
        }
        let got = model_from_compact(&cfg, &core.layout, &w.re()).unwrap();
        let tcfg = TwinConfig {
            lr: 1.0,
            batch,
            epochs: 1,
            order: Order::File,
            softmax: match kind {
                SoftmaxKind::Nas => Softmax::default_for(classes).unwrap(),
                SoftmaxKind::NasPrecise => Softmax::precise_nas(classes).unwrap(),
                SoftmaxKind::Hetal => Softmax::Hetal(HetalSoftmax::published(classes)),
            },
            patience: None,
            valid_loss: ValidLoss::Mse,
            max_steps: None,
        };
        let want = twin::train(&d, None, None, &tcfg).unwrap().model;
        let err = got.w.iter().zip(&want.w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let top = want.w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(top > 0.05, "the steps moved the weights: {top}");
        assert!(err < 1e-9, "{kind:?}: max weight error {err:e}");
        // The simulator's plan bootstraps as this run did, step for step.
        let plan = core.plan(&chain).unwrap();
        assert_eq!(ops.boot_log().count(), steps * plan.bootstraps, "{:?}", plan.sites);
    }

    /// A step whose batch comes in parts (each one block row, contributions summed, as a
    /// data-parallel run sums them across processes) is the twin's step on the whole batch.
    #[test]
    fn a_step_in_parts_is_the_step_of_the_whole_batch() {
        let (classes, features, part, parts, steps) = (7usize, 127usize, 32usize, 2usize, 2usize);
        let cfg = TrainConfig::new(classes, features + 1, part, 1.0);
        let p = params();
        let core = Core::new(&cfg, p.max_slots()).unwrap();
        let chain = chain_of(&p);
        let ops = SlotBackend::with_chain(p.max_slots(), chain.clone());
        let d = data(part * parts * steps, features, classes);
        let boot = chain.boot_level.unwrap();
        let zeros = vec![0.0; p.max_slots()];
        let (mut w, mut v) = (ops.at(&zeros, boot), ops.at(&zeros, boot));
        let mut nag = Nesterov::new();
        for k in 0..steps {
            let ready = core.ready(&ops, &v).unwrap();
            let mut sum = None;
            for j in 0..parts {
                let lo = (k * parts + j) * part;
                let b = pack_batch(&d, lo..lo + part, core.pk, chain.fresh).unwrap();
                let enc = |m: &[f64], l: &MatrixLayout| {
                    let blocks =
                        l.packing.pack(m, l.rows, l.cols, l.tiling).unwrap().iter().map(|v| ops.fresh(v)).collect();
                    EncMatrix::new(l.rows, l.cols, l.packing, l.tiling, blocks).unwrap()
                };
                let (x, y) = (enc(&b.x, &b.x_layout), enc(&b.y, &b.y_layout));
                let c = core.part(&ops, (&x, &y), &ready, part * parts, &mut |_| {}).unwrap();
                sum = Some(match sum {
                    None => c,
                    Some(s) => ops.add(&s, &c).unwrap(),
                });
            }
            (w, v) = core.update(&ops, (&w, &ready), &sum.unwrap(), nag.next_gamma(), &mut |_| {}).unwrap();
        }
        let got = model_from_compact(&cfg, &core.layout, &w.re()).unwrap();
        let tcfg = TwinConfig {
            lr: 1.0,
            batch: part * parts,
            epochs: 1,
            order: Order::File,
            softmax: Softmax::default_for(classes).unwrap(),
            patience: None,
            valid_loss: ValidLoss::Mse,
            max_steps: None,
        };
        let want = twin::train(&d, None, None, &tcfg).unwrap().model;
        let err = got.w.iter().zip(&want.w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(want.w.iter().any(|v| v.abs() > 0.05));
        assert!(err < 1e-9, "max weight error {err:e}");
    }

    #[test]
    fn plans_at_the_snips_and_mnist_shapes() {
        let p = Parameters::preset("n16-boot", Security::Require128Bits).unwrap();
        for (classes, kind) in [
            (7usize, SoftmaxKind::Nas),
            (10, SoftmaxKind::Nas),
            (16, SoftmaxKind::Nas),
            (7, SoftmaxKind::NasPrecise),
            (10, SoftmaxKind::NasPrecise),
            (7, SoftmaxKind::Hetal),
            (10, SoftmaxKind::Hetal),
        ] {
            let mut cfg = TrainConfig::new(classes, 769, 1024, 1.0);
            cfg.softmax = kind;
            let core = Core::new(&cfg, p.max_slots()).unwrap();
            let plan = core.plan(&chain_of(&p)).unwrap();
            assert_eq!(plan.weight_bootstraps, 1, "{plan:?}");
            assert!(plan.bootstraps > plan.softmax_bootstraps);
            eprintln!(
                "{kind:?} {classes} classes: {} bootstraps ({} softmax, {} weights); sites {:?}; counts {}; parts summed at level {}",
                plan.bootstraps, plan.softmax_bootstraps, plan.weight_bootstraps, plan.sites, plan.counts, plan.part_level
            );
        }
    }

    #[test]
    fn sparse_bootstrap_reuses_congruent_keys() {
        // n16-boot at the SNIPS shape (39 kept: no full-slot bootstrapping with the folded softmax), and the test preset the
        // encrypted training test runs with this request.
        let n16 = || Parameters::preset("n16-boot", Security::Require128Bits).unwrap();
        for (p, cfg, want) in [
            (n16(), TrainConfig::new(7, 769, 1024, 1.0), Some(39)),
            (n16(), TrainConfig::new(10, 769, 1024, 1.0), None),
            (n16(), TrainConfig::new(3, 769, 640, 1.0), None),
            (params(), TrainConfig::new(7, 128, 32, 1.0), None),
        ] {
            let core = Core::new(&cfg, p.max_slots()).unwrap();
            let req = ServerTrainer::key_request(&p, &cfg).unwrap();
            let mut naive = req.clone();
            for (_, c) in core.sparse_configs() {
                naive.merge(&c.key_request(p.log_n()));
            }
            assert!(
                req.rotations.len() < naive.rotations.len(),
                "{} of {}",
                req.rotations.len(),
                naive.rotations.len()
            );
            if let Some(w) = want {
                assert_eq!(req.rotations.len(), w);
            }
            // Every rotation of each sparse bootstrap (those on the 2n-slot view of its repacked
            // halves included) has a key of its own modulo the slots it rotates.
            for (_, c) in core.sparse_configs() {
                assert_eq!(c.unserved_rotations(p.log_n(), &req.rotations), vec![], "{:?}", c.log_slots);
            }
            // Every step of each sparse bootstrap is served: by its own key, or (below the
            // sparse period) by a key congruent to it modulo the sparse slots.
            for (n, c) in core.sparse_configs() {
                let n = n as i64;
                for k in c.key_request(p.log_n()).rotations {
                    let served = req.rotations.iter().any(|&h| {
                        if k.rem_euclid(n) == 0 {
                            h == k
                        } else {
                            (h - k).rem_euclid(n) == 0
                        }
                    });
                    assert!(served, "step {k}");
                }
            }
        }
    }
}
