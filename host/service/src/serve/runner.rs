//! One job's training in the daemon: the shared loop ([`crate::train::drive`]) over the job's
//! uploaded files, with a judge that publishes each epoch's encrypted loss and weights and waits
//! for the owner's answer (recorded in SQLite, so a restarted daemon does not ask twice).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hetune_engine::learning::early_stopping::Decision;
use hetune_engine::learning::twin::Order;

use super::protocol::JobOptions;
use super::Daemon;
use crate::error::{Error, Result};
use crate::store::{atomic_write, JobState};
use crate::train::drive::{drive, Course, Judge};
use crate::train::engine::EngineTrainers;
use crate::train::owner::{BatchFiles, EncryptedSplit};
use crate::train::server::{Server, CHECKPOINT_FILE};
use crate::train::team::Solo;
use crate::train::Event;

/// The final encrypted weights, in the job's directory.
pub const MODEL_FILE: &str = "model.ct";

/// Where epoch `e`'s encrypted `loss` or `weights` is published.
pub fn epoch_path(job_dir: &Path, e: usize, what: &str) -> PathBuf {
    job_dir.join("epochs").join(format!("{what}_{e}.ct"))
}

fn split(dir: &Path, name: &str, rows: usize, batch: usize) -> EncryptedSplit {
    let batches = (0..rows.div_ceil(batch))
        .map(|k| BatchFiles {
            x: dir.join(format!("{name}_{k}_x.hct")),
            y: dir.join(format!("{name}_{k}_y.hct")),
            rows: ((k + 1) * batch).min(rows) - k * batch,
        })
        .collect();
    EncryptedSplit { batches, rows, bytes: 0 }
}

struct RemoteJudge<'a> {
    daemon: &'a Daemon,
    id: &'a str,
    dir: &'a Path,
    answers: Vec<(usize, bool)>,
    cancel: &'a AtomicBool,
}

impl RemoteJudge<'_> {
    fn check(&self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        Ok(())
    }
}

impl Judge for RemoteJudge<'_> {
    fn judged(&self) -> usize {
        self.answers.len()
    }
    fn stopped(&self) -> bool {
        self.answers.iter().any(|a| a.1)
    }
    fn judge(&mut self, epoch: usize, loss: Vec<u8>, weights: Vec<u8>) -> Result<Decision> {
        atomic_write(&epoch_path(self.dir, epoch, "weights"), &weights)?;
        atomic_write(&epoch_path(self.dir, epoch, "loss"), &loss)?;
        let store = &self.daemon.store;
        store.set_awaiting(self.id, Some(epoch))?;
        loop {
            self.check()?;
            if let Some(&(_, stop)) = store.answers(self.id)?.iter().find(|a| a.0 == epoch) {
                store.set_awaiting(self.id, None)?;
                self.answers.push((epoch, stop));
                return Ok(if stop { Decision::Stop } else { Decision::Continue });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn proceed(&mut self) -> Result<()> {
        self.check()
    }
}

fn train(daemon: &Daemon, id: &str, cancel: &AtomicBool) -> Result<()> {
    let store = &daemon.store;
    let job = store.job(id)?.ok_or(Error::Cancelled)?;
    let o: JobOptions = serde_json::from_value(job.options.clone())?;
    let dir = store.job_dir(id);
    let server_dir = dir.join("server");
    let resume = server_dir.join(CHECKPOINT_FILE).is_file();
    // Running, and no epoch awaited until the loop publishes one again (after a restart the
    // awaited epoch is recomputed from the checkpoint, or skipped when its answer came meanwhile).
    store.set_awaiting(id, None)?;
    let (mut server, at) =
        Server::open(&server_dir, &EngineTrainers, &o.spec, daemon.security(), resume, daemon.key_memory())?;
    store.set_planned(id, server.planned_bootstraps())?;
    let course = Course {
        train_rows: o.train_rows,
        batch: o.spec.batch,
        part: o.spec.batch,
        epochs: o.epochs,
        max_steps: o.max_steps,
        order: match o.seed {
            Some(seed) => Order::Shuffled { seed },
            None => Order::File,
        },
    };
    let data = dir.join("data");
    let (tr, va) =
        (split(&data, "train", o.train_rows, o.spec.batch), split(&data, "valid", o.valid_rows, o.spec.batch));
    // Answers recorded for epochs the checkpoint has passed; an answer on an epoch the server
    // had not finished (a restart in between) cannot exist, since answers wait for `awaiting`.
    let answers = store.answers(id)?;
    let mut judge = RemoteJudge { daemon, id, dir: &dir, answers, cancel };
    let (sum_s, count) = (std::sync::Mutex::new(0.0f64), std::sync::Mutex::new(0usize));
    let events = |e: Event<'_>| {
        if let Event::Step { step, epoch, times } = e {
            let mut s = sum_s.lock().unwrap_or_else(|e| e.into_inner());
            let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
            *s += times.total_s;
            *n += 1;
            let json = serde_json::to_string(times).unwrap_or_default();
            let _ = store.progress(id, (step, epoch), times.bootstraps, &json, *s / *n as f64);
        }
    };
    drive(&mut server, &server_dir, at, &course, &tr, &va, &mut judge, &events, &mut Solo)?;
    atomic_write(&dir.join(MODEL_FILE), &server.weights()?)?;
    store.set_state(id, JobState::Done, None)
}

/// Trains job `id` to its end (or its failure, recorded); a cancelled (deleted) job just stops.
pub fn run_job(daemon: &Daemon, id: &str, cancel: &AtomicBool) {
    match train(daemon, id, cancel) {
        Ok(()) => {}
        Err(Error::Cancelled) => {}
        Err(e) => {
            if !cancel.load(Ordering::SeqCst) {
                let _ = daemon.store.set_state(id, JobState::Failed, Some(&e.to_string()));
            }
        }
    }
}
