//! What the daemon and the owner's client send each other besides wire-format bytes: JSON bodies
//! of the job endpoints (`docs/daemon.md` lists the routes).

use serde::{Deserialize, Serialize};

use crate::train::server::{StepSpec, StepTimes};

/// Route prefix of the version-1 API.
pub const PREFIX: &str = "/v1/jobs";
/// Header carrying a chunk's SHA-256 (hex).
pub const CHUNK_SHA256: &str = "x-hetune-sha256";
/// The public bundle's blob name.
pub const KEYS_BLOB: &str = "keys";

/// What a job trains: the step's shape and the public schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobOptions {
    /// Parameter preset (the fingerprint must be its).
    pub preset: String,
    /// Shape and learning rate of a step.
    pub spec: StepSpec,
    /// Epochs at most.
    pub epochs: usize,
    /// Steps at most in all.
    pub max_steps: Option<usize>,
    /// Batch-order seed (none: file order).
    pub seed: Option<u64>,
    /// Training rows (encrypted, in batches of `spec.batch`).
    pub train_rows: usize,
    /// Validation rows.
    pub valid_rows: usize,
}

impl JobOptions {
    /// The blobs a job needs: the public bundle, then each batch's features and labels.
    pub fn blob_names(&self) -> Vec<String> {
        let mut names = vec![KEYS_BLOB.to_string()];
        for (split, rows) in [("train", self.train_rows), ("valid", self.valid_rows)] {
            for k in 0..rows.div_ceil(self.spec.batch.max(1)) {
                names.push(format!("{split}_{k}_x"));
                names.push(format!("{split}_{k}_y"));
            }
        }
        names
    }

    /// Steps the job runs at most.
    pub fn total_steps(&self) -> usize {
        let all = self.train_rows.div_ceil(self.spec.batch.max(1)) * self.epochs;
        self.max_steps.map_or(all, |m| m.min(all))
    }
}

/// `POST /v1/jobs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateJob {
    /// The parameter set's fingerprint (hex SHA-256 of its canonical encoding).
    pub fingerprint: String,
    /// The job.
    pub options: JobOptions,
}

/// The answer to [`CreateJob`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Created {
    /// Job id.
    pub id: String,
    /// 256-bit bearer token (hex), shown once.
    pub token: String,
    /// The evaluation keys the server needs (the owner generates them).
    pub key_request: serde_json::Value,
    /// Blobs to upload.
    pub blobs: Vec<String>,
    /// Largest chunk body the daemon takes.
    pub max_chunk_bytes: u64,
}

/// An upload's progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobStatus {
    /// Blob name.
    pub name: String,
    /// Bytes acknowledged.
    pub received: u64,
    /// Checked and in place.
    pub complete: bool,
}

/// `POST .../blobs/{name}/complete`: the whole blob's length and SHA-256.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompleteBlob {
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// `GET /v1/jobs/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// uploading, queued, running, awaiting, done or failed.
    pub state: String,
    /// Steps done.
    pub step: u64,
    /// Steps at most.
    pub total_steps: u64,
    /// Epoch of the last step.
    pub epoch: u64,
    /// Bootstraps so far.
    pub bootstraps: u64,
    /// Seconds per step.
    pub seconds_per_step: f64,
    /// Estimated seconds left.
    pub eta_s: f64,
    /// Jobs ahead in the queue (queued only).
    pub queue_position: Option<u64>,
    /// The epoch whose continue-or-stop answer the server waits for.
    pub awaiting_epoch: Option<u64>,
    /// Why the job failed.
    pub error: Option<String>,
    /// The last step's times and bootstraps.
    pub last_step: Option<StepTimes>,
    /// Bootstraps the plan places per step (0 before training starts).
    pub planned_bootstraps: u64,
    /// Uploads.
    pub blobs: Vec<BlobStatus>,
}

/// `POST .../epochs/{e}/answer`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    /// Stop training (the owner keeps its best epoch) or continue.
    pub stop: bool,
}

/// Every error: an HTTP status and this body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code (`wrong_token`, `unknown_job`, ...).
    pub error: String,
    /// What happened.
    pub message: String,
}
