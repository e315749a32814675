//! `hetune train --distributed`: the ranks of an MPI job besides the root. The root (rank 0) is
//! `hetune train` as in one process ([`super::run_on`]): the owner's side (twins, keys, the
//! encrypted data set in the working directory), the server's checkpoints, the owner's judgement
//! of every epoch. Every other rank is a server only: it never reads the plaintext data; it learns
//! the job from the root ([`Job`]), loads the evaluation keys through the key store of the
//! working directory's `server/` (a directory every rank sees: one machine, or a shared file
//! system), reads its share of each step's parts from `data/`, and follows the shared loop
//! ([`super::drive::drive`]) with the root's start and answers.

use std::path::Path;

use hetune_core::Security;
use hetune_engine::learning::early_stopping::Decision;
use hetune_engine::learning::twin::Order;

use super::drive::{self, Course, Judge, Outcome};
use super::server::{Server, StepSpec, TrainerFactory};
use super::settings::TrainOptions;
use super::team::Team;
use super::{split_files, Event};
use crate::error::{Error, Result};

/// What the root tells the other ranks of the run (JSON): the step's shape and the schedule as
/// the server sees it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// The step's shape (its `batch` is the step's rows).
    pub spec: StepSpec,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows.
    pub valid_rows: usize,
    /// Rows per part (per encrypted file).
    pub part: usize,
    /// Epochs at most.
    pub epochs: usize,
    /// Steps at most.
    pub max_steps: Option<usize>,
    /// Shuffle seed (none: file order).
    pub seed: Option<u64>,
}

/// Largest job description accepted from the root (it is a few hundred bytes).
pub const MAX_JOB_BYTES: usize = 64 << 10;

impl Job {
    /// The schedule of the shared loop.
    pub fn course(&self) -> Course {
        Course {
            train_rows: self.train_rows,
            batch: self.spec.batch,
            part: self.part,
            epochs: self.epochs,
            max_steps: self.max_steps,
            order: match self.seed {
                Some(seed) => Order::Shuffled { seed },
                None => Order::File,
            },
        }
    }

    /// The job of the root's bytes, checked: the rows and parts must make a schedule.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_JOB_BYTES {
            return Err(Error::Peer("a job description beyond its size limit"));
        }
        let job: Job = serde_json::from_slice(bytes).map_err(|_| Error::Peer("a job description that is not one"))?;
        let b = job.spec.batch;
        let fits = job.part > 0 && b >= job.part && b.is_multiple_of(job.part) && job.train_rows > 0 && job.epochs > 0;
        if !fits {
            return Err(Error::Peer("a job whose batch, parts and rows do not make a schedule"));
        }
        Ok(job)
    }
}

/// The other ranks' stand-in for the owner: the loop asks the root's judge, never this one.
struct Follower;

impl Judge for Follower {
    fn judged(&self) -> usize {
        0
    }
    fn stopped(&self) -> bool {
        false
    }
    fn judge(&mut self, _: usize, _: Vec<u8>, _: Vec<u8>) -> Result<Decision> {
        Err(Error::InvalidArgument("only the root judges an epoch"))
    }
}

/// A rank other than the root: the job from the root, the server from `opts.work_dir`, the
/// shared loop. Returns the loop's outcome (the root reports the run).
pub fn follow(
    opts: &TrainOptions,
    factory: &dyn TrainerFactory,
    team: &mut dyn Team,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Outcome> {
    let dir = opts.work_dir.as_deref().ok_or(Error::MissingArgument { name: "--work-dir", with: "--distributed" })?;
    let security = if opts.insecure_testing_only { Security::InsecureForTestingOnly } else { Security::Require128Bits };
    let job = Job::parse(&team.share_bytes(None)?)?;
    let (server_dir, data_dir) = (dir.join("server"), dir.join("data"));
    // The root has written the keys and data, and removed an earlier run's checkpoint unless
    // resuming; the checkpoint (when resuming) is the root's last.
    let (mut server, at) = Server::open(&server_dir, factory, &job.spec, security, opts.resume, opts.key_memory)?;
    team.agree(&server.fingerprint())?;
    let course = job.course();
    let train = split_files(&data_dir, "train", job.train_rows, job.part)?;
    let valid = split_files(&data_dir, "valid", job.valid_rows, job.part)?;
    drive::drive(&mut server, Path::new(&server_dir), at, &course, &train, &valid, &mut Follower, events, team)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::settings::SoftmaxChoice;

    #[test]
    fn jobs_round_trip_and_bad_ones_are_refused() {
        let spec = StepSpec { classes: 7, cols: 8, batch: 512, lr: 1.0, softmax: SoftmaxChoice::Nas };
        let job = Job { spec, train_rows: 512, valid_rows: 64, part: 256, epochs: 2, max_steps: Some(2), seed: None };
        let bytes = serde_json::to_vec(&job).unwrap();
        assert_eq!(Job::parse(&bytes).unwrap(), job);
        assert_eq!(job.course().parts(), 2);
        for bad in [
            Job { part: 0, ..job },
            Job { part: 300, ..job },
            Job { part: 1024, ..job },
            Job { train_rows: 0, ..job },
            Job { epochs: 0, ..job },
        ] {
            assert!(Job::parse(&serde_json::to_vec(&bad).unwrap()).is_err(), "{bad:?}");
        }
        assert!(Job::parse(b"{").is_err());
        assert!(Job::parse(&vec![b' '; MAX_JOB_BYTES + 1]).is_err());
    }
}
