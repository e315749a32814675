//! The engine's encrypted trainer ([`ServerTrainer`]) behind the server's [`TrainerFactory`],
//! and the owner's decoding of the compact weights it returns.

use std::sync::Arc;

use hetune_core::ckks::Ciphertext;
use hetune_core::Parameters;
use hetune_engine::evaluator::{Evaluator, KeyRequest};
use hetune_engine::learning::compact::CompactLayout;
use hetune_engine::learning::trainer::{
    model_from_compact, ServerTrainer, SoftmaxKind, StepReport, TrainConfig, TrainerState,
};
use hetune_engine::learning::twin::Model;
use hetune_engine::learning::EncMatrix;

use super::server::{Checkpoint, StepEngine, StepSpec, StepTimes, TrainerFactory};
use super::settings::SoftmaxChoice;
use crate::error::Result;

/// The engine's configuration of a step on `slots` slots: its batch is one part of the step's
/// batch, at most one block row of the packing (`slots / pad_c` rows).
pub fn config(spec: &StepSpec, slots: usize) -> TrainConfig {
    let softmax = match spec.softmax {
        SoftmaxChoice::Nas => SoftmaxKind::Nas,
        SoftmaxChoice::NasPrecise => SoftmaxKind::NasPrecise,
        SoftmaxChoice::Hetal => SoftmaxKind::Hetal,
    };
    let pad_c = spec.classes.next_power_of_two().max(2);
    let part = spec.batch.min((slots / pad_c).max(1));
    TrainConfig { softmax, ..TrainConfig::new(spec.classes, spec.cols, part, spec.lr) }
}

/// Where each weight sits in the compact weights of `spec` on `slots` slots (public: it follows
/// from the shape, so the owner computes it itself).
pub fn layout(spec: &StepSpec, slots: usize) -> Result<CompactLayout> {
    let cfg = config(spec, slots);
    Ok(CompactLayout::new(cfg.packing(slots)?, cfg.classes, cfg.cols)?)
}

/// The owner's side: the decrypted slots of the compact weights as a model (the engine stores
/// them scaled down for bootstrapping; this undoes it).
pub fn model_from_slots(spec: &StepSpec, layout: &CompactLayout, slots: &[f64]) -> Result<Model> {
    Ok(model_from_compact(&config(spec, layout.packing.slots()), layout, slots)?)
}

/// The server's account of an engine step (or part of one).
fn times(r: &StepReport) -> StepTimes {
    StepTimes {
        bootstraps: r.bootstraps,
        matmul_s: r.seconds.matmul,
        softmax_s: r.seconds.softmax,
        bootstrap_s: r.seconds.bootstrap,
        weight_expansion_s: r.seconds.expansion,
        total_s: r.seconds.total(),
        ..StepTimes::default()
    }
}

/// The engine's encrypted trainers.
pub struct EngineTrainers;

struct Engine(ServerTrainer);

impl TrainerFactory for EngineTrainers {
    fn key_request(&self, params: &Parameters, spec: &StepSpec) -> Result<KeyRequest> {
        Ok(ServerTrainer::key_request(params, &config(spec, params.max_slots()))?)
    }

    fn build(&self, ev: Arc<Evaluator>, spec: &StepSpec) -> Result<Box<dyn StepEngine>> {
        let slots = ev.context().params().max_slots();
        Ok(Box::new(Engine(ServerTrainer::new(ev, config(spec, slots))?)))
    }

    fn resume(&self, ev: Arc<Evaluator>, spec: &StepSpec, c: Checkpoint) -> Result<Box<dyn StepEngine>> {
        let state = TrainerState { w: c.w, v: c.v, step: c.step };
        let slots = ev.context().params().max_slots();
        Ok(Box::new(Engine(ServerTrainer::from_state(ev, config(spec, slots), state)?)))
    }
}

impl StepEngine for Engine {
    fn planned_bootstraps(&self) -> usize {
        self.0.plan().bootstraps
    }

    fn planned_weight_bootstraps(&self) -> usize {
        self.0.plan().weight_bootstraps
    }

    fn part(
        &self,
        x: &EncMatrix<Ciphertext>,
        y: &EncMatrix<Ciphertext>,
        rows: usize,
    ) -> Result<(Ciphertext, StepTimes)> {
        let (c, r) = self.0.part(x, y, rows)?;
        Ok((c, times(&r)))
    }

    fn apply(&mut self, sum: &Ciphertext) -> Result<StepTimes> {
        Ok(times(&self.0.apply(sum)?))
    }

    fn adopt(&mut self, w: Ciphertext, v: Ciphertext) -> Result<()> {
        Ok(self.0.adopt(w, v)?)
    }

    fn validation_loss(&self, x: &EncMatrix<Ciphertext>, y: &EncMatrix<Ciphertext>) -> Result<Ciphertext> {
        Ok(self.0.validation_loss(x, y)?)
    }

    fn logits(&self, x: &EncMatrix<Ciphertext>) -> Result<EncMatrix<Ciphertext>> {
        Ok(self.0.logits(x)?)
    }

    fn weights(&self) -> &Ciphertext {
        self.0.weights()
    }

    fn layout(&self) -> CompactLayout {
        *self.0.layout()
    }

    fn state(&self) -> (Ciphertext, Ciphertext, u64) {
        let s = self.0.state();
        (s.w, s.v, s.step)
    }
}
