//! The ranks of an MPI job as a [`Team`] (feature `mpi`: rsmpi over the system's Open MPI), and
//! `hetune train --distributed`'s entry: rank 0 runs `hetune train` ([`super::run_on`]), the
//! others follow it ([`super::distributed::follow`]).
//!
//! Everything crosses point to point, rank 0 at the centre: the job's description and the
//! schedule's words out, each rank's fingerprint and per-step sum in, the updated weights out.
//! A step's sum is therefore a gather-and-add on the root followed by the weights' broadcast:
//! an allreduce split by the update, which runs once (on the root) instead of on every rank. No
//! user-defined MPI reduction: rsmpi's need libffi, and a tree would save nothing at the 2 to 8
//! ranks a step's parts keep busy.
//!
//! A waiting rank polls (a probe, then a short sleep) rather than blocking in MPI, which spins:
//! the ranks of a job may share cores, and a spinning waiter would take a core from the ranks
//! still computing. A rank that fails prints its error and aborts the job (`MPI_Abort`), so the
//! others never wait for it; a rank that dies outright makes `mpirun` end the job.

use std::time::{Duration, Instant};

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::Context;
use hetune_engine::evaluator::Evaluator;
use mpi::datatype::Equivalence;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{Destination, Source};

use super::distributed::{follow, MAX_JOB_BYTES};
use super::engine::EngineTrainers;
use super::report::TrainReport;
use super::settings::TrainOptions;
use super::team::{frame, max_frame, same_shape, unframe, Team, Traffic};
use super::{run_on, Event};
use crate::error::{Error, Result};

const TAG_JOB: i32 = 11;
const TAG_FINGERPRINT: i32 = 12;
const TAG_WORDS: i32 = 13;
const TAG_PART: i32 = 14;
const TAG_WEIGHTS: i32 = 15;

/// Words of the schedule the root sends at most at once.
const MAX_WORDS: usize = 16;

/// Between two probes of a waiting rank.
const POLL: Duration = Duration::from_micros(200);

/// Test hook: a rank other than the root that finds this variable set to `k` exits (status 3)
/// in step `k` (from 1, counted from the job's start) instead of sending its sum: a rank dying
/// mid-step, for the tests of a failed job.
pub const EXIT_HOOK: &str = "HETUNE_TEST_RANK_EXIT_AT_STEP";

/// The ranks of `MPI_COMM_WORLD`.
pub struct MpiTeam {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    traffic: Traffic,
    steps: u64,
    exit_at: Option<u64>,
}

impl MpiTeam {
    /// The world communicator of an initialised MPI.
    pub fn new(world: SimpleCommunicator) -> Self {
        let (rank, size) = (world.rank().max(0) as usize, world.size().max(1) as usize);
        let exit_at = std::env::var(EXIT_HOOK).ok().and_then(|v| v.parse().ok());
        MpiTeam { world, rank, size, traffic: Traffic::default(), steps: 0, exit_at }
    }

    fn send(&mut self, to: usize, tag: i32, bytes: &[u8]) {
        let t = Instant::now();
        self.world.process_at_rank(to as i32).send_with_tag(bytes, tag);
        self.traffic.sent += bytes.len() as u64;
        self.traffic.seconds += t.elapsed().as_secs_f64();
    }

    /// The next message `tag` from `from`, at most `max` bytes (checked before the buffer is
    /// allocated).
    fn receive(&mut self, from: usize, tag: i32, max: usize) -> Result<Vec<u8>> {
        let t = Instant::now();
        let process = self.world.process_at_rank(from as i32);
        let (msg, status) = loop {
            if let Some(m) = process.immediate_matched_probe_with_tag(tag) {
                break m;
            }
            std::thread::sleep(POLL);
        };
        let count = usize::try_from(status.count(u8::equivalent_datatype())).unwrap_or(usize::MAX);
        if count > max {
            return Err(Error::Peer("a message beyond its size limit"));
        }
        let mut buf = vec![0u8; count];
        msg.matched_receive_into(&mut buf[..]);
        self.traffic.received += count as u64;
        self.traffic.seconds += t.elapsed().as_secs_f64();
        Ok(buf)
    }

    /// Ends the whole job at once (every rank), after a failure on this one.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Team for MpiTeam {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn agree(&mut self, fingerprint: &[u8; 32]) -> Result<()> {
        if self.rank != 0 {
            self.send(0, TAG_FINGERPRINT, fingerprint);
            return Ok(());
        }
        for r in 1..self.size {
            let theirs = self.receive(r, TAG_FINGERPRINT, 32)?;
            if theirs != fingerprint {
                return Err(Error::Distributed(format!(
                    "rank {r} opened keys of another parameter set than rank 0's (fingerprint {} against {})",
                    hex::encode(&theirs),
                    hex::encode(fingerprint)
                )));
            }
        }
        Ok(())
    }

    fn share_bytes(&mut self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>> {
        if self.rank != 0 {
            return self.receive(0, TAG_JOB, MAX_JOB_BYTES);
        }
        let bytes = bytes.ok_or(Error::InvalidArgument("the root shares its bytes"))?;
        for r in 1..self.size {
            self.send(r, TAG_JOB, &bytes);
        }
        Ok(bytes)
    }

    fn share_words(&mut self, words: &[u64]) -> Result<Vec<u64>> {
        if self.rank != 0 {
            let bytes = self.receive(0, TAG_WORDS, 8 * MAX_WORDS)?;
            if bytes.len() % 8 != 0 {
                return Err(Error::Peer("words that are not whole"));
            }
            let word = |c: &[u8]| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            };
            return Ok(bytes.chunks_exact(8).map(word).collect());
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for r in 1..self.size {
            self.send(r, TAG_WORDS, &bytes);
        }
        Ok(words.to_vec())
    }

    fn sum(&mut self, ev: &Evaluator, own: Option<Ciphertext>) -> Result<Option<Ciphertext>> {
        self.steps += 1;
        if self.rank != 0 {
            if self.exit_at == Some(self.steps) {
                eprintln!("rank {}: {EXIT_HOOK} set: exiting in step {} before sending its sum", self.rank, self.steps);
                std::process::exit(3);
            }
            // An empty message: this rank had no part in the step (a short last batch).
            let bytes = own.as_ref().map(frame).unwrap_or_default();
            self.send(0, TAG_PART, &bytes);
            return Ok(None);
        }
        let own = own.ok_or(Error::InvalidArgument("rank 0 computes the first part of every step"))?;
        let max = max_frame(ev.context());
        let mut acc = own.clone();
        for r in 1..self.size {
            let bytes = self.receive(r, TAG_PART, max)?;
            if bytes.is_empty() {
                continue;
            }
            let theirs = unframe(ev.context(), &bytes)?;
            same_shape(&own, &theirs)?;
            acc = ev.add(&acc, &theirs)?;
        }
        Ok(Some(acc))
    }

    fn share_weights(
        &mut self,
        ctx: &Context,
        weights: Option<(&Ciphertext, &Ciphertext)>,
    ) -> Result<Option<(Ciphertext, Ciphertext)>> {
        if self.rank != 0 {
            let max = max_frame(ctx);
            let w = unframe(ctx, &self.receive(0, TAG_WEIGHTS, max)?)?;
            let v = unframe(ctx, &self.receive(0, TAG_WEIGHTS, max)?)?;
            return Ok(Some((w, v)));
        }
        let (w, v) = weights.ok_or(Error::InvalidArgument("the root shares its weights"))?;
        let (fw, fv) = (frame(w), frame(v));
        for r in 1..self.size {
            self.send(r, TAG_WEIGHTS, &fw);
            self.send(r, TAG_WEIGHTS, &fv);
        }
        Ok(None)
    }

    fn traffic(&self) -> Traffic {
        self.traffic
    }
}

/// `hetune train --distributed` on this rank: the root's report (`None` on the other ranks).
/// An error on any rank is printed with the rank and aborts the whole job.
pub fn run(opts: &TrainOptions, events: &(dyn Fn(Event<'_>) + Sync)) -> Result<Option<TrainReport>> {
    let universe =
        mpi::initialize().ok_or_else(|| Error::Distributed("MPI was initialised already in this process".into()))?;
    let mut team = MpiTeam::new(universe.world());
    let result = if team.is_root() {
        run_on(opts, false, &EngineTrainers, events, &mut team).map(Some)
    } else {
        follow(opts, &EngineTrainers, &mut team, &|_| {}).map(|_| None)
    };
    match result {
        Ok(r) => Ok(r),
        Err(e) => {
            eprintln!("error: rank {} of {}: {e}; aborting the job", team.rank(), team.size());
            team.abort(2)
        }
    }
}
