//! The server of `hetune train`: it holds the evaluation keys (read from `public.bundle` as
//! needed) and the encrypted trainer, reads the owner's encrypted batches from disk one at a
//! time (memory stays bounded by one batch), runs the steps, and answers in wire bytes: the
//! encrypted validation loss and weights once per epoch, encrypted logits for inference.
//!
//! The encrypted step itself (softmax circuit, compact weights, Nesterov on ciphertexts,
//! bootstrap placement) is the engine's (`hetune_engine::learning`); the server drives it through
//! [`StepEngine`], which is exactly what it needs of it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::Context;
use hetune_core::wire::Limits;
use hetune_core::Parameters;
use hetune_core::Security;
use hetune_engine::evaluator::{Evaluator, KeyRequest};
use hetune_engine::learning::compact::CompactLayout;
use hetune_engine::learning::EncMatrix;
use serde::Serialize;

use super::owner::{BatchFiles, EncryptedSplit};
use super::settings::SoftmaxChoice;
use super::team::{self, Team, Traffic};
use super::wire;
use crate::error::{Error, Result};
use crate::io::keys::BundleStore;
use crate::io::matrix::read_encrypted;

/// The shape and schedule of the encrypted step, as the server configures its trainer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct StepSpec {
    /// Classes.
    pub classes: usize,
    /// Columns of a batch, with the bias.
    pub cols: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Softmax approximation.
    pub softmax: SoftmaxChoice,
}

/// Where the seconds of one step went, and its bootstraps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct StepTimes {
    /// Bootstraps run.
    pub bootstraps: usize,
    /// Matrix products (DiagABT, DiagATB).
    pub matmul_s: f64,
    /// Softmax (without its bootstraps).
    pub softmax_s: f64,
    /// Bootstraps.
    pub bootstrap_s: f64,
    /// Expanding the compact weights to the tiled layout.
    pub weight_expansion_s: f64,
    /// The whole step, including what the parts above leave out (Nesterov, reading the batch).
    pub total_s: f64,
    /// A distributed run's exchanges in the step, on this rank (the root's: the other ranks'
    /// sums in, the new weights out), waiting for the other ranks included; 0 in one process.
    #[serde(default)]
    pub comm_s: f64,
    /// Bytes this rank sent and received in the step (0 in one process).
    #[serde(default)]
    pub comm_bytes: u64,
}

impl StepTimes {
    /// Adds the seconds and bootstraps of `other` (a part of the same step).
    pub fn add(&mut self, other: &StepTimes) {
        self.bootstraps += other.bootstraps;
        self.matmul_s += other.matmul_s;
        self.softmax_s += other.softmax_s;
        self.bootstrap_s += other.bootstrap_s;
        self.weight_expansion_s += other.weight_expansion_s;
        self.total_s += other.total_s;
    }
}

/// What the server needs of the engine's encrypted trainer.
pub trait StepEngine {
    /// Bootstraps the plan places in one step of one part.
    fn planned_bootstraps(&self) -> usize;
    /// Of which on the weights (once a step, however many parts it has).
    fn planned_weight_bootstraps(&self) -> usize;
    /// One part of the next step's batch (at most one block row; `rows` the whole step's): its
    /// contribution to the update, which adds exactly to the other parts'.
    fn part(
        &self,
        x: &EncMatrix<Ciphertext>,
        y: &EncMatrix<Ciphertext>,
        rows: usize,
    ) -> Result<(Ciphertext, StepTimes)>;
    /// Ends the step with the sum of its parts' contributions: Nesterov's update.
    fn apply(&mut self, sum: &Ciphertext) -> Result<StepTimes>;
    /// Ends the step with the weights the root of a distributed run computed.
    fn adopt(&mut self, w: Ciphertext, v: Ciphertext) -> Result<()>;
    /// The encrypted sum over the batch's rows of `sum_j (p_j - y_j)^2`, in slot 0.
    fn validation_loss(&self, x: &EncMatrix<Ciphertext>, y: &EncMatrix<Ciphertext>) -> Result<Ciphertext>;
    /// Encrypted logits `X W^T` of a batch.
    fn logits(&self, x: &EncMatrix<Ciphertext>) -> Result<EncMatrix<Ciphertext>>;
    /// The compact encrypted weights.
    fn weights(&self) -> &Ciphertext;
    /// Where each weight lives in them.
    fn layout(&self) -> CompactLayout;
    /// The compact `W`, its Nesterov companion `V` and the global steps taken, for checkpoints.
    fn state(&self) -> (Ciphertext, Ciphertext, u64);
}

/// How the server gets its trainer: the key request it sends the owner, and the trainer over an
/// evaluator with the owner's keys.
pub trait TrainerFactory {
    /// The keys a trainer of `spec` needs at `params` (an error names what the parameters lack:
    /// levels for the plan, bootstrapping limbs, slots for the packing).
    fn key_request(&self, params: &Parameters, spec: &StepSpec) -> Result<KeyRequest>;
    /// The trainer, from zero weights.
    fn build(&self, ev: Arc<Evaluator>, spec: &StepSpec) -> Result<Box<dyn StepEngine>>;
    /// The trainer, resumed from a checkpoint's `W`, `V` and step count.
    fn resume(&self, ev: Arc<Evaluator>, spec: &StepSpec, state: Checkpoint) -> Result<Box<dyn StepEngine>>;
}

/// Where training stands after a step: the encrypted optimiser state and the position in the
/// schedule.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Compact `W`.
    pub w: Ciphertext,
    /// Compact `V` (Nesterov's look-ahead).
    pub v: Ciphertext,
    /// Global steps taken.
    pub step: u64,
    /// The epoch of the last step (from 1).
    pub epoch: u64,
    /// Steps of that epoch done.
    pub done_in_epoch: u64,
}

/// Where a checkpoint stands in the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Global steps taken.
    pub step: u64,
    /// The epoch of the last step (from 1).
    pub epoch: u64,
    /// Steps of that epoch done.
    pub done_in_epoch: u64,
}

const CHECKPOINT_MAGIC: &[u8; 14] = b"hetune-ckpt-1\n";

impl Checkpoint {
    /// Writes the checkpoint atomically (a temporary file, fsync, renamed over `path`).
    pub fn write(&self, ctx: &Context, path: &Path) -> Result<()> {
        let mut out = CHECKPOINT_MAGIC.to_vec();
        for v in [self.step, self.epoch, self.done_in_epoch] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&wire::ciphertext_bytes(ctx, &self.w)?);
        out.extend_from_slice(&wire::ciphertext_bytes(ctx, &self.v)?);
        crate::store::atomic_write(path, &out)
    }

    /// Reads a checkpoint written by [`Checkpoint::write`]; anything else is an error.
    pub fn read(ctx: &Context, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |what| Error::corrupt(path, hetune_core::Error::Malformed(what));
        let rest = bytes.strip_prefix(CHECKPOINT_MAGIC.as_slice()).ok_or_else(|| bad("not a hetune checkpoint"))?;
        if rest.len() < 24 {
            return Err(bad("truncated checkpoint"));
        }
        let word = |i: usize| u64::from_le_bytes(rest[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
        let (step, epoch, done_in_epoch) = (word(0), word(1), word(2));
        let mut src: &[u8] = &rest[24..];
        let limits = Limits::for_ciphertexts(ctx.params());
        let mut next = || -> Result<Ciphertext> {
            Ok(hetune_core::wire::read_ciphertext(&mut src, ctx, &limits)
                .map_err(|e| Error::corrupt(path, e))?
                .into_full(ctx))
        };
        let (w, v) = (next()?, next()?);
        if !src.is_empty() {
            return Err(bad("trailing bytes after a checkpoint"));
        }
        Ok(Checkpoint { w, v, step, epoch, done_in_epoch })
    }
}

/// The server's checkpoint file, in its directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

/// The server: evaluation keys and the trainer; never a secret key.
pub struct Server {
    ev: Arc<Evaluator>,
    trainer: Box<dyn StepEngine>,
}

impl Server {
    /// Opens `dir/public.bundle` (keys indexed, loaded on first use; with `key_memory`, at most
    /// about that many bytes of them held, the least recently used dropped first) and builds the
    /// trainer, from zero weights or from `dir`'s checkpoint when `resume`. Returns the
    /// checkpoint's position too.
    pub fn open(
        dir: &Path,
        factory: &dyn TrainerFactory,
        spec: &StepSpec,
        security: Security,
        resume: bool,
        key_memory: Option<u64>,
    ) -> Result<(Self, Option<Position>)> {
        let store = Arc::new(BundleStore::open(dir, security)?);
        let ctx = store.context().clone();
        let ev = Arc::new(match key_memory {
            Some(bytes) => {
                Evaluator::with_store_within(ctx.clone(), store, usize::try_from(bytes).unwrap_or(usize::MAX))?
            }
            None => Evaluator::with_store(ctx.clone(), store)?,
        });
        // A run stopped before its first checkpoint resumes from the start, with its keys and data.
        if resume && dir.join(CHECKPOINT_FILE).exists() {
            let c = Checkpoint::read(&ctx, &dir.join(CHECKPOINT_FILE))?;
            let at = Position { step: c.step, epoch: c.epoch, done_in_epoch: c.done_in_epoch };
            let trainer = factory.resume(ev.clone(), spec, c)?;
            return Ok((Server { ev, trainer }, Some(at)));
        }
        let trainer = factory.build(ev.clone(), spec)?;
        Ok((Server { ev, trainer }, None))
    }

    /// Writes `dir/checkpoint.bin` after a step of `epoch` (the `done_in_epoch`-th of it).
    pub fn checkpoint(&self, dir: &Path, epoch: usize, done_in_epoch: usize) -> Result<()> {
        let (w, v, step) = self.trainer.state();
        let c = Checkpoint { w, v, step, epoch: epoch as u64, done_in_epoch: done_in_epoch as u64 };
        c.write(self.ev.context(), &dir.join(CHECKPOINT_FILE))
    }

    /// Bootstraps the plan places in one step.
    pub fn planned_bootstraps(&self) -> usize {
        self.trainer.planned_bootstraps()
    }

    /// Bootstraps the plan places in a step of which this process computes `parts` parts (the
    /// weights' once, the rest per part).
    pub fn planned_bootstraps_for(&self, parts: usize) -> usize {
        let (all, weights) = (self.trainer.planned_bootstraps(), self.trainer.planned_weight_bootstraps());
        parts.max(1) * all.saturating_sub(weights) + weights
    }

    fn read(&self, b: &BatchFiles) -> Result<(EncMatrix<Ciphertext>, EncMatrix<Ciphertext>)> {
        let ctx = self.ev.context();
        Ok((read_encrypted(&b.x, ctx)?, read_encrypted(&b.y, ctx)?))
    }

    /// The parameter fingerprint of the server's keys.
    pub fn fingerprint(&self) -> [u8; 32] {
        *self.ev.context().fingerprint()
    }

    /// One step on the batch whose parts (at most one block row each) are in `parts`, read from
    /// disk: `team`'s rank computes its share of the parts ([`team::my_parts`]), the
    /// contributions meet on the root, the root updates the weights and shares them. `rows` is
    /// the step's row count. In one process ([`team::Solo`]) with one part this is exactly the
    /// engine's whole step.
    pub fn step(&mut self, parts: &[BatchFiles], rows: usize, team: &mut dyn Team) -> Result<StepTimes> {
        let start = Instant::now();
        let mut t = StepTimes::default();
        let mut own: Option<Ciphertext> = None;
        for j in team::my_parts(parts.len(), team.rank(), team.size()) {
            let (x, y) = self.read(&parts[j])?;
            let (c, pt) = self.trainer.part(&x, &y, rows)?;
            t.add(&pt);
            own = Some(match own {
                None => c,
                Some(s) => self.ev.add(&s, &c)?,
            });
        }
        let before = team.traffic();
        let sum = team.sum(&self.ev, own)?;
        let mut exchanged = team.traffic().since(&before);
        if let Some(sum) = sum {
            t.add(&self.trainer.apply(&sum)?);
        }
        let before = team.traffic();
        if team.size() > 1 {
            let mine = team.is_root().then(|| self.trainer.state());
            let shared = team.share_weights(self.ev.context(), mine.as_ref().map(|(w, v, _)| (w, v)))?;
            if let Some((w, v)) = shared {
                self.trainer.adopt(w, v)?;
            }
        }
        let after = team.traffic().since(&before);
        exchanged = Traffic {
            sent: exchanged.sent + after.sent,
            received: exchanged.received + after.received,
            seconds: exchanged.seconds + after.seconds,
        };
        t.comm_s = exchanged.seconds;
        t.comm_bytes = exchanged.sent + exchanged.received;
        t.total_s = start.elapsed().as_secs_f64();
        Ok(t)
    }

    /// The encrypted validation loss summed over every batch of `valid`, in wire bytes.
    pub fn validation_loss(&self, valid: &EncryptedSplit) -> Result<Vec<u8>> {
        let mut sum: Option<Ciphertext> = None;
        for b in &valid.batches {
            let (x, y) = self.read(b)?;
            let l = self.trainer.validation_loss(&x, &y)?;
            sum = Some(match sum {
                None => l,
                Some(s) => self.ev.add(&s, &l)?,
            });
        }
        let sum = sum.ok_or(Error::InvalidArgument("an empty validation set"))?;
        wire::ciphertext_bytes(self.ev.context(), &sum)
    }

    /// The current encrypted weights, in wire bytes.
    pub fn weights(&self) -> Result<Vec<u8>> {
        wire::ciphertext_bytes(self.ev.context(), self.trainer.weights())
    }

    /// The compact layout of the weights (public: it follows from the shape).
    pub fn layout(&self) -> CompactLayout {
        self.trainer.layout()
    }

    /// Encrypted inference: the logits of the encrypted features in `x` (wire bytes), in wire
    /// bytes.
    pub fn infer(&self, x: &[u8]) -> Result<Vec<u8>> {
        let ctx = self.ev.context();
        let x = wire::read_matrix(ctx, x)?;
        wire::matrix_bytes(ctx, &self.trainer.logits(&x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetune_core::ckks::{encrypt_sk, Encoder};
    use hetune_core::rlwe::SecretKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn checkpoints_round_trip_and_damaged_ones_are_errors() {
        let params = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let ctx = Context::new(params).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let ct = |v: f64, rng: &mut ChaCha20Rng| {
            let pt = Encoder::new(&ctx).encode_real(&[v; 8], 11, 4, ctx.params().scale()).unwrap();
            encrypt_sk(&ctx, &sk, &pt, rng).unwrap().expand(&ctx)
        };
        let c = Checkpoint { w: ct(1.5, &mut rng), v: ct(-2.0, &mut rng), step: 7, epoch: 3, done_in_epoch: 2 };
        let dir = std::env::temp_dir().join(format!("hetune-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CHECKPOINT_FILE);
        c.write(&ctx, &path).unwrap();
        let back = Checkpoint::read(&ctx, &path).unwrap();
        assert_eq!((back.step, back.epoch, back.done_in_epoch), (7, 3, 2));
        assert_eq!((&back.w, &back.v), (&c.w, &c.v));
        let bytes = std::fs::read(&path).unwrap();
        for bad in [&bytes[..bytes.len() - 1], &bytes[..30], &bytes[1..], &[bytes.as_slice(), &[0u8]].concat()[..]] {
            std::fs::write(&path, bad).unwrap();
            assert!(Checkpoint::read(&ctx, &path).is_err());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
