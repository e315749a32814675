//! The engine's encrypted trainer behind the server's [`TrainerFactory`].

use std::sync::Arc;

use hetune_core::Parameters;
use hetune_engine::evaluator::{Evaluator, KeyRequest};

use super::server::{StepEngine, StepSpec, TrainerFactory};
use crate::error::{Error, Result};

/// The engine's encrypted trainers.
pub struct EngineTrainers;

impl TrainerFactory for EngineTrainers {
    fn key_request(&self, _params: &Parameters, _spec: &StepSpec) -> Result<KeyRequest> {
        Err(Error::TrainerUnavailable(
            "the engine's encrypted training step (hetune_engine::learning::trainer) is not in this build; \
             --twin-only runs the plaintext twins",
        ))
    }

    fn build(&self, _ev: Arc<Evaluator>, _spec: &StepSpec) -> Result<Box<dyn StepEngine>> {
        Err(Error::TrainerUnavailable("the engine's encrypted training step is not in this build"))
    }
}
