//! The data owner of `hetune train`: it alone holds the secret key. It generates the keys the
//! server asks for (the secret key stays in its own key directory, mode 0600; the server gets
//! only `public.bundle`), standardises its features in the clear, encrypts every batch in
//! HETAL's packing (bias column last, one-hot labels tiled horizontally) into files the server
//! reads batch by batch, and during training decrypts one scalar per epoch, the validation loss,
//! to answer continue or stop. The server's encrypted weights of every epoch are kept as bytes,
//! undecrypted, until training ends; then the owner decrypts the kept model (and, for the report's
//! per-epoch curves, the other snapshots: nothing decrypted goes back to the server).

use std::path::{Path, PathBuf};

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::Context;
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::KeyRequest;
use hetune_engine::learning::dataset::Dataset;
use hetune_engine::learning::early_stopping::{Decision, EarlyStopping};
use hetune_engine::learning::trainer::pack_batch;
use hetune_engine::learning::twin::Model;
use hetune_engine::learning::{EncMatrix, Packing};
use hetune_engine::owner::decrypt_decode;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::server::StepSpec;
use super::{engine, wire};
use crate::error::{Error, Result};
use crate::io::keys::{generate_key_dir, key_paths, load_owner, OwnerKeys};
use crate::io::matrix::write_encrypted;

/// One encrypted batch on disk: features (with the bias column) and one-hot labels.
#[derive(Clone, Debug)]
pub struct BatchFiles {
    /// Encrypted features, `rows x (d + 1)`, untiled.
    pub x: PathBuf,
    /// Encrypted one-hot labels, `rows x classes`, tiled horizontally.
    pub y: PathBuf,
    /// Rows of the batch.
    pub rows: usize,
}

/// An encrypted split: its batches in the owner's row order.
#[derive(Clone, Debug)]
pub struct EncryptedSplit {
    /// Batches.
    pub batches: Vec<BatchFiles>,
    /// Rows in all.
    pub rows: usize,
    /// Bytes on disk.
    pub bytes: u64,
}

/// How a split is cut and encrypted: rows per batch, block packing, level of the ciphertexts.
#[derive(Clone, Copy, Debug)]
pub struct BatchShape {
    /// Rows per batch.
    pub batch: usize,
    /// Block packing.
    pub packing: Packing,
    /// Level.
    pub level: usize,
}

/// The owner's verdict on one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// The decrypted validation loss: mean over rows of `sum_j (p_j - y_j)^2`.
    pub valid_mse: f64,
    /// Continue or stop (the only thing the server learns).
    pub decision: Decision,
    /// The epoch of the lowest loss so far (the model the owner keeps).
    pub best_epoch: usize,
}

/// The data owner. Its secret key is never handed out (no accessor returns it) and is wiped when
/// the owner is dropped.
pub struct DataOwner {
    keys: OwnerKeys,
    rng: ChaCha20Rng,
    stopping: EarlyStopping,
    snapshots: Vec<PathBuf>,
    losses: Vec<f64>,
    dir: PathBuf,
}

/// The owner's record of judged epochs, in its directory (for `--resume`).
pub const EPOCHS_FILE: &str = "epochs.json";

impl DataOwner {
    /// Generates a secret key for `params` and the evaluation keys of the server's `request`
    /// (JSON, as the server sends it) into `dir/keys`, and moves the public bundle to
    /// `server_bundle` (a path in the server's directory). `progress(done, total)` reports keys.
    pub fn generate(
        params: &Parameters,
        request_json: &[u8],
        dir: &Path,
        server_bundle: &Path,
        security: Security,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self> {
        let request: KeyRequest = serde_json::from_slice(request_json)?;
        let key_dir = dir.join("keys");
        let mut rng = ChaCha20Rng::from_os_rng();
        generate_key_dir(&key_dir, params, &request, &mut rng, progress)?;
        // keygen writes the secret to `keys/owner/` and the bundle to `keys/server/`: the bundle
        // moves to the server's directory, and the emptied `keys/server/` goes.
        let public = key_paths(&key_dir).1;
        std::fs::rename(&public, server_bundle).map_err(|e| Error::io(&public, e))?;
        if let Some(emptied) = public.parent() {
            std::fs::remove_dir(emptied).map_err(|e| Error::io(emptied, e))?;
        }
        let keys = load_owner(&key_dir, security)?;
        Ok(Self::with_keys(keys, dir))
    }

    /// An owner with existing keys, keeping its files in `dir`.
    pub fn with_keys(keys: OwnerKeys, dir: &Path) -> Self {
        DataOwner {
            keys,
            rng: ChaCha20Rng::from_os_rng(),
            stopping: EarlyStopping::new(3),
            snapshots: Vec::new(),
            losses: Vec::new(),
            dir: dir.to_path_buf(),
        }
    }

    /// The owner of an earlier run in `dir` (its keys in `dir/keys`), with the epochs it judged
    /// (`dir/epochs.json` and each epoch's stored weights) replayed into early stopping.
    pub fn reopen(dir: &Path, security: Security, patience: usize) -> Result<Self> {
        Self::reopen_with(load_owner(&dir.join("keys"), security)?, dir, patience)
    }

    /// The owner of an earlier run in `dir` with `keys`, its judged epochs replayed (see
    /// [`DataOwner::reopen`]).
    pub fn reopen_with(keys: OwnerKeys, dir: &Path, patience: usize) -> Result<Self> {
        let mut o = Self::with_keys(keys, dir);
        o.set_patience(patience);
        let path = dir.join(EPOCHS_FILE);
        let losses: Vec<f64> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        for (i, &mse) in losses.iter().enumerate() {
            let snap = dir.join(format!("weights_epoch{}.hct", i + 1));
            if !snap.is_file() {
                return Err(Error::NotFound(snap));
            }
            o.snapshots.push(snap);
            o.losses.push(mse);
            o.stopping.observe(mse);
        }
        Ok(o)
    }

    /// Records the judged epochs in `dir/epochs.json` (after each epoch, for `--resume`).
    pub fn save_epochs(&self) -> Result<()> {
        let path = self.dir.join(EPOCHS_FILE);
        std::fs::write(&path, serde_json::to_vec(&self.losses)?).map_err(|e| Error::io(&path, e))
    }

    /// The validation losses judged so far, one per epoch.
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// Sets the early-stopping patience (before the first epoch).
    pub fn set_patience(&mut self, patience: usize) {
        self.stopping = EarlyStopping::new(patience);
    }

    /// The owner's context (public: the parameter set).
    pub fn context(&self) -> &Context {
        &self.keys.ctx
    }

    /// Encrypts `data` in batches of `batch` rows into `dir` as `{name}_{k}_{x,y}.hct`, at
    /// `level`, calling `progress(done, total)` per batch.
    pub fn encrypt_split(
        &mut self,
        data: &Dataset,
        name: &str,
        shape: BatchShape,
        dir: &Path,
        progress: &dyn Fn(usize, usize),
    ) -> Result<EncryptedSplit> {
        let BatchShape { batch, packing, level } = shape;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let count = data.rows.div_ceil(batch);
        let (mut batches, mut bytes) = (Vec::with_capacity(count), 0);
        for k in 0..count {
            let range = k * batch..((k + 1) * batch).min(data.rows);
            let rows = range.len();
            let (xp, yp) = (dir.join(format!("{name}_{k}_x.hct")), dir.join(format!("{name}_{k}_y.hct")));
            let b = pack_batch(data, range, packing, level)?;
            let ex = EncMatrix::encrypt(&self.keys.ctx, &self.keys.sk, &b.x, &b.x_layout, &mut self.rng)?;
            bytes += write_encrypted(&xp, &self.keys.ctx, &ex)?;
            drop(ex);
            let ey = EncMatrix::encrypt(&self.keys.ctx, &self.keys.sk, &b.y, &b.y_layout, &mut self.rng)?;
            bytes += write_encrypted(&yp, &self.keys.ctx, &ey)?;
            batches.push(BatchFiles { x: xp, y: yp, rows });
            progress(k + 1, count);
        }
        Ok(EncryptedSplit { batches, rows: data.rows, bytes })
    }

    /// Encrypts rows `range` of `data` (features with the bias column) as one matrix for
    /// encrypted inference, in wire bytes.
    pub fn encrypt_features(
        &mut self,
        data: &Dataset,
        range: std::ops::Range<usize>,
        packing: Packing,
        level: usize,
    ) -> Result<Vec<u8>> {
        let b = pack_batch(data, range, packing, level)?;
        let m = EncMatrix::encrypt(&self.keys.ctx, &self.keys.sk, &b.x, &b.x_layout, &mut self.rng)?;
        wire::matrix_bytes(&self.keys.ctx, &m)
    }

    /// Decrypts slot 0 of a ciphertext.
    fn decrypt_scalar(&self, ct: &Ciphertext) -> Result<f64> {
        let slots = decrypt_decode(&self.keys.ctx, &self.keys.sk, ct)?;
        slots.first().copied().ok_or(Error::InvalidArgument("a ciphertext without slots"))
    }

    /// Judges epoch `epoch` (from 1): decrypts the server's encrypted validation loss (the sum
    /// over `valid_rows` rows of `sum_j (p_j - y_j)^2` in slot 0) and keeps the epoch's encrypted
    /// weights (`weights`, wire bytes) without decrypting them. Returns the verdict; only its
    /// decision goes back to the server.
    pub fn judge_epoch(&mut self, epoch: usize, loss: &[u8], weights: &[u8], valid_rows: usize) -> Result<Verdict> {
        if epoch != self.snapshots.len() + 1 || valid_rows == 0 {
            return Err(Error::InvalidArgument("epochs are judged in order, on a non-empty validation set"));
        }
        let ct = wire::read_ciphertext(&self.keys.ctx, loss)?;
        let valid_mse = self.decrypt_scalar(&ct)? / valid_rows as f64;
        // Checked as a weight file before it is stored.
        wire::read_ciphertext(&self.keys.ctx, weights)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(format!("weights_epoch{epoch}.hct"));
        std::fs::write(&path, weights).map_err(|e| Error::io(&path, e))?;
        self.snapshots.push(path);
        self.losses.push(valid_mse);
        let decision = self.stopping.observe(valid_mse);
        Ok(Verdict { valid_mse, decision, best_epoch: self.stopping.best_epoch() })
    }

    /// The epoch whose weights the owner keeps: the lowest validation loss (the last epoch when
    /// none was judged better).
    pub fn kept_epoch(&self) -> usize {
        match self.stopping.best_epoch() {
            0 => self.snapshots.len(),
            e => e,
        }
    }

    /// Whether the epochs judged so far already end the run (patience used up).
    pub fn has_stopped(&self) -> bool {
        !self.snapshots.is_empty() && self.snapshots.len() - self.stopping.best_epoch() >= self.stopping.patience
    }

    /// Epochs judged.
    pub fn epochs_judged(&self) -> usize {
        self.snapshots.len()
    }

    /// Decrypts compact weights (wire bytes) of a step shaped `spec` into a model; the owner
    /// computes their layout itself (it follows from the shape).
    pub fn decrypt_weights(&self, weights: &[u8], spec: &StepSpec) -> Result<Model> {
        let ct = wire::read_ciphertext(&self.keys.ctx, weights)?;
        let slots = decrypt_decode(&self.keys.ctx, &self.keys.sk, &ct)?;
        let layout = engine::layout(spec, self.keys.ctx.params().max_slots())?;
        engine::model_from_slots(spec, &layout, &slots)
    }

    /// Decrypts the stored weights of `epoch` (from 1).
    pub fn decrypt_snapshot(&self, epoch: usize, spec: &StepSpec) -> Result<Model> {
        let path = epoch
            .checked_sub(1)
            .and_then(|i| self.snapshots.get(i))
            .ok_or(Error::InvalidArgument("no weights stored for that epoch"))?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.decrypt_weights(&bytes, spec)
    }

    /// Decrypts encrypted logits (wire bytes of a `rows x classes` matrix) and returns them
    /// row-major.
    pub fn decrypt_logits(&self, logits: &[u8], rows: usize, classes: usize) -> Result<Vec<f64>> {
        let m = wire::read_matrix(&self.keys.ctx, logits)?;
        if (m.rows, m.cols) != (rows, classes) {
            return Err(Error::ShapeMismatch {
                what: "encrypted logits",
                found: (m.rows, m.cols),
                expected: (rows, classes),
            });
        }
        Ok(m.decrypt(&self.keys.ctx, &self.keys.sk)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetune_core::ckks::{encrypt_sk, Encoder};
    use hetune_core::rlwe::SecretKey;

    fn owner(dir: &Path) -> DataOwner {
        let params = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
        let ctx = Context::new(params).unwrap();
        let sk = SecretKey::generate(ctx.params(), &mut ChaCha20Rng::seed_from_u64(3));
        DataOwner::with_keys(OwnerKeys { ctx, sk }, dir)
    }

    fn encrypt_value(o: &DataOwner, v: f64, seed: u64) -> Vec<u8> {
        let ctx = &o.keys.ctx;
        let pt = Encoder::new(ctx).encode_real(&[v], 11, 3, ctx.params().scale()).unwrap();
        let ct = encrypt_sk(ctx, &o.keys.sk, &pt, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap().expand(ctx);
        wire::ciphertext_bytes(ctx, &ct).unwrap()
    }

    /// The owner's decision logic on a crafted validation curve, through encrypted losses: it
    /// improves to epoch 4, then three epochs are worse, so the owner stops at epoch 7 and keeps
    /// epoch 4's weights.
    #[test]
    fn the_owner_stops_after_patience_epochs_and_keeps_the_best_weights() {
        let dir = std::env::temp_dir().join(format!("hetune-owner-{}", std::process::id()));
        let mut o = owner(&dir);
        o.set_patience(3);
        let rows = 128;
        let curve = [0.9, 0.7, 0.6, 0.55, 0.56, 0.58, 0.57, 0.4];
        let mut stopped = None;
        for (e, &mse) in curve.iter().enumerate() {
            let epoch = e + 1;
            let loss = encrypt_value(&o, mse * rows as f64, epoch as u64);
            let weights = encrypt_value(&o, epoch as f64, 100 + epoch as u64);
            let v = o.judge_epoch(epoch, &loss, &weights, rows).unwrap();
            assert!((v.valid_mse - mse).abs() < 1e-6, "{} vs {mse}", v.valid_mse);
            if v.decision == Decision::Stop {
                stopped = Some(epoch);
                break;
            }
        }
        assert_eq!(stopped, Some(7));
        assert_eq!(o.kept_epoch(), 4);
        let kept = std::fs::read(dir.join("weights_epoch4.hct")).unwrap();
        let ct = wire::read_ciphertext(o.context(), &kept).unwrap();
        assert!((o.decrypt_scalar(&ct).unwrap() - 4.0).abs() < 1e-6);
        // Out of order, garbage and trailing bytes are errors, not panics.
        assert!(o.judge_epoch(9, &kept, &kept, rows).is_err());
        assert!(o.judge_epoch(8, &kept[..kept.len() - 1], &kept, rows).is_err());
        let mut long = kept.clone();
        long.push(0);
        assert!(o.judge_epoch(8, &long, &kept, rows).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
