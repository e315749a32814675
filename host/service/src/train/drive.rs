//! The server's training loop, shared by `hetune train` (owner in the same process) and the
//! daemon (`hetune serve`, owner across HTTP), in one process or across the ranks of an MPI job
//! ([`super::team`]): steps in the schedule's batch order, a checkpoint after each step, and at
//! the end of every epoch the encrypted validation loss and weights handed to a [`Judge`], whose
//! continue-or-stop answer is all the server learns.

use std::path::Path;
use std::time::Instant;

use hetune_engine::learning::early_stopping::Decision;
use hetune_engine::learning::twin::{epoch_batches, Order};

use super::owner::EncryptedSplit;
use super::server::{Position, Server, StepTimes};
use super::team::Team;
use super::Event;
use crate::error::{Error, Result};

/// The schedule as the server sees it (public: rows, batch, epochs, data order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Course {
    /// Training rows.
    pub train_rows: usize,
    /// Rows per batch (a step).
    pub batch: usize,
    /// Rows per part of a batch (the encrypted files' rows: the batch, or one block row of the
    /// packing when the batch spans several; then the batch is a multiple of it).
    pub part: usize,
    /// Epochs at most.
    pub epochs: usize,
    /// Steps at most in all (`--max-steps`).
    pub max_steps: Option<usize>,
    /// Batch order.
    pub order: Order,
}

impl Course {
    /// Steps per epoch.
    pub fn per_epoch(&self) -> usize {
        self.train_rows.div_ceil(self.batch)
    }

    /// Parts of the training split.
    pub fn parts(&self) -> usize {
        self.train_rows.div_ceil(self.part)
    }

    /// Parts a full step's batch has.
    pub fn parts_per_step(&self) -> usize {
        self.batch.div_ceil(self.part.max(1))
    }

    /// Steps the run makes at most.
    pub fn total_steps(&self) -> usize {
        let all = self.per_epoch() * self.epochs;
        self.max_steps.map_or(all, |m| m.min(all))
    }
}

/// The owner's side of the loop, as the server sees it: epochs judged so far, whether they
/// already ended the run, and the answer on a new epoch.
pub trait Judge {
    /// Epochs judged so far (on a resumed run, those judged before).
    fn judged(&self) -> usize;
    /// Whether the epochs judged so far already stopped the run.
    fn stopped(&self) -> bool;
    /// The answer on epoch `epoch`: its encrypted validation loss and weights (wire bytes).
    fn judge(&mut self, epoch: usize, loss: Vec<u8>, weights: Vec<u8>) -> Result<Decision>;
    /// Called before every step: an error ends the run there (the daemon's deleted job).
    fn proceed(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How the loop ended.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Global steps taken (including those before a resume).
    pub step: usize,
    /// Times of the steps run now.
    pub times: Vec<StepTimes>,
    /// The owner stopped the run.
    pub stopped_early: bool,
    /// `max_steps` cut the run.
    pub cut: bool,
    /// Seconds of each judged epoch (0 for those judged before a resume).
    pub epoch_seconds: Vec<f64>,
}

/// Where a run continues: the checkpoint's step and epoch; an epoch whose steps all ran but that
/// the owner had not judged yet is judged first. Returns (step, first epoch, steps to skip in it).
fn start_point(at: Option<Position>, course: &Course, judged: usize) -> Result<(usize, usize, usize)> {
    let per_epoch = course.per_epoch();
    let start = match at {
        None => (0, 1, 0),
        Some(Position { step, epoch, done_in_epoch: done }) => {
            let (epoch, done) = (epoch as usize, done as usize);
            if epoch == 0 || step as usize != (epoch - 1) * per_epoch + done || done > per_epoch {
                return Err(Error::InvalidArgument("a checkpoint that does not fit this run's schedule"));
            }
            if judged >= epoch {
                (step as usize, epoch + 1, 0)
            } else {
                (step as usize, epoch, done)
            }
        }
    };
    if judged + 1 < start.1.min(course.epochs + 1) {
        return Err(Error::InvalidArgument("the owner's record of epochs is behind the server's checkpoint"));
    }
    Ok(start)
}

/// Runs the schedule from `at` (a checkpoint's position, or the start): every step reads its
/// batch's parts from `train`, runs (its share of the parts on each rank of `team`), and the root
/// checkpoints into `dir`; every finished epoch goes to `judge` (on the root, whose answer every
/// rank follows). Ranks other than the root get `at` and the owner's answers from the root.
#[allow(clippy::too_many_arguments)]
pub fn drive(
    server: &mut Server,
    dir: &Path,
    at: Option<Position>,
    course: &Course,
    train: &EncryptedSplit,
    valid: &EncryptedSplit,
    judge: &mut dyn Judge,
    events: &(dyn Fn(Event<'_>) + Sync),
    team: &mut dyn Team,
) -> Result<Outcome> {
    let b = course.batch;
    let part = course.part;
    let aligned = part > 0 && (part == b || (part < b && b.is_multiple_of(part)));
    if !aligned || train.rows != course.train_rows || train.batches.len() != course.parts() {
        return Err(Error::InvalidArgument("the encrypted training set does not match the schedule"));
    }
    let total_steps = course.total_steps();
    // The root decides where the run starts (the owner's record is there); the others follow.
    let words = if team.is_root() {
        let (step, epoch, skip) = start_point(at, course, judge.judged())?;
        vec![step as u64, epoch as u64, skip as u64, u64::from(judge.stopped()), judge.judged() as u64]
    } else {
        Vec::new()
    };
    let words = team.share_words(&words)?;
    let [step, first_epoch, skip, stopped, judged] = words[..] else {
        return Err(Error::Peer("a start of the schedule that is not five words"));
    };
    let (mut step, first_epoch, mut skip) = (to_usize(step)?, to_usize(first_epoch)?, to_usize(skip)?);
    let own_parts = course.parts_per_step().div_ceil(team.size());
    events(Event::Start { steps: total_steps, planned_bootstraps: server.planned_bootstraps_for(own_parts) });
    let mut out =
        Outcome { stopped_early: stopped != 0, epoch_seconds: vec![0.0; to_usize(judged)?], ..Outcome::default() };
    let last_epoch = if out.stopped_early { 0 } else { course.epochs };
    for epoch in first_epoch..=last_epoch {
        let te = Instant::now();
        let batches = epoch_batches(course.train_rows, b, course.order, epoch);
        let start = std::mem::take(&mut skip);
        for (i, range) in batches.iter().enumerate().skip(start) {
            if step == total_steps {
                out.cut = true;
                break;
            }
            judge.proceed()?;
            let parts = &train.batches[range.start / part..range.end.div_ceil(part)];
            let st = server.step(parts, range.len(), team)?;
            step += 1;
            if team.is_root() {
                server.checkpoint(dir, epoch, i + 1)?;
            }
            events(Event::Step { step, epoch, times: &st });
            out.times.push(st);
        }
        if out.cut {
            break;
        }
        let decision = if team.is_root() {
            let loss = server.validation_loss(valid)?;
            let weights = server.weights()?;
            let d = judge.judge(epoch, loss, weights)?;
            vec![u64::from(d == Decision::Stop)]
        } else {
            Vec::new()
        };
        let decision = if team.share_words(&decision)? == [1] { Decision::Stop } else { Decision::Continue };
        out.epoch_seconds.push(te.elapsed().as_secs_f64());
        if decision == Decision::Stop {
            out.stopped_early = true;
            break;
        }
        if step == total_steps && epoch < course.epochs {
            out.cut = true;
            break;
        }
    }
    out.step = step;
    Ok(out)
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::Peer("a step or epoch number beyond this machine's range"))
}
