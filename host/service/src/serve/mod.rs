//! `hetune serve`: the training daemon. Owners create jobs (parameter fingerprint and schedule),
//! upload the public bundle and their encrypted batches in checksummed, resumable chunks, start
//! training, answer each epoch's continue-or-stop round from the encrypted validation loss, and
//! download the encrypted model. Jobs live in SQLite ([`crate::store`]); a bounded number train at
//! once, the rest wait in a FIFO queue; every step is checkpointed and a restarted daemon resumes
//! every unfinished job. The training is [`crate::train::drive`], the loop `hetune train` runs.
//!
//! The request logic ([`Daemon::handle`]) is synchronous and knows nothing of HTTP framing;
//! [`http`] is the tokio/axum adapter.

pub mod http;
pub mod protocol;
mod runner;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use hetune_core::rlwe::Context;
use hetune_core::Security;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use subtle::ConstantTimeEq;

use self::protocol::{Answer, BlobStatus, CompleteBlob, CreateJob, Created, JobOptions, JobStatus, KEYS_BLOB};
use crate::error::Error;
use crate::io::keys::{BundleStore, PUBLIC_FILE};
use crate::store::{sha256, JobRow, JobState, Store};
use crate::train::engine::EngineTrainers;
use crate::train::server::TrainerFactory;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Store directory.
    pub store: PathBuf,
    /// Bytes of uploads the store takes at most, all jobs together.
    pub max_store_bytes: u64,
    /// Trainings at once.
    pub max_concurrent: usize,
    /// Largest chunk body.
    pub max_chunk_bytes: u64,
    /// Accept jobs on presets below 128-bit security (tests only).
    pub insecure_testing_only: bool,
    /// Bytes of evaluation keys each training holds in memory at most (`None`: every key it
    /// has used).
    pub key_memory: Option<u64>,
}

/// Largest JSON body.
pub const MAX_JSON_BYTES: u64 = 64 << 10;
/// Default largest chunk.
pub const DEFAULT_CHUNK_BYTES: u64 = 8 << 20;
/// Most blobs a job may name (batches x 2 + 1).
const MAX_BLOBS: usize = 20_001;

/// An HTTP method, as far as the daemon cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// Anything else.
    Other,
}

/// A request, framing removed.
#[derive(Debug)]
pub struct Request<'a> {
    /// Method.
    pub method: Method,
    /// Path segments after `/v1/jobs`.
    pub segments: Vec<&'a str>,
    /// `offset` query parameter.
    pub offset: Option<u64>,
    /// Bearer token (hex), from `Authorization`.
    pub token: Option<&'a str>,
    /// Chunk checksum header.
    pub chunk_sha256: Option<&'a str>,
    /// Body.
    pub body: &'a [u8],
}

/// A reply: a status and JSON, or bytes.
#[derive(Debug)]
pub enum Reply {
    /// JSON body.
    Json(u16, serde_json::Value),
    /// Binary body (wire-format bytes).
    Bytes(Vec<u8>),
}

/// A refused request: status, code, message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

fn err(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { status, code, message: message.into() }
}

fn internal(e: Error) -> ApiError {
    err(500, "internal", e.to_string())
}

fn json<T: Serialize>(status: u16, v: &T) -> Result<Reply, ApiError> {
    Ok(Reply::Json(status, serde_json::to_value(v).map_err(|e| err(500, "internal", e.to_string()))?))
}

fn parse_json<'de, T: serde::Deserialize<'de>>(body: &'de [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| err(400, "bad_json", e.to_string()))
}

/// The daemon: the store, the queue, the running jobs' cancel flags.
pub struct Daemon {
    store: Store,
    opts: ServeOptions,
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
    cancel: Mutex<HashMap<String, Arc<AtomicBool>>>,
    upload_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    reserved: Mutex<u64>,
    contexts: Mutex<HashMap<String, Arc<Context>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let mut b = vec![0u8; bytes];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Daemon {
    /// Opens the store and re-queues every unfinished job (queued, running or awaiting an
    /// answer), in their start order.
    pub fn open(opts: ServeOptions) -> crate::Result<Arc<Self>> {
        let store = Store::open(&opts.store)?;
        let pending = store.jobs_in(&[JobState::Queued, JobState::Running, JobState::Awaiting])?;
        let d = Arc::new(Daemon {
            store,
            opts,
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            cancel: Mutex::new(HashMap::new()),
            upload_locks: Mutex::new(HashMap::new()),
            reserved: Mutex::new(0),
            contexts: Mutex::new(HashMap::new()),
        });
        for j in pending {
            d.enqueue(&j.id);
        }
        Ok(d)
    }

    /// Starts the training workers (`max_concurrent` threads taking jobs from the queue).
    pub fn start_workers(self: &Arc<Self>) {
        for _ in 0..self.opts.max_concurrent.max(1) {
            let d = self.clone();
            std::thread::spawn(move || d.worker());
        }
    }

    fn enqueue(&self, id: &str) {
        lock(&self.cancel).insert(id.to_string(), Arc::new(AtomicBool::new(false)));
        lock(&self.queue).push_back(id.to_string());
        self.wake.notify_one();
    }

    fn worker(self: Arc<Self>) {
        loop {
            let id = {
                let mut q = lock(&self.queue);
                loop {
                    if let Some(id) = q.pop_front() {
                        break id;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            let cancel = lock(&self.cancel).get(&id).cloned().unwrap_or_default();
            if !cancel.load(Ordering::SeqCst) {
                runner::run_job(&self, &id, &cancel);
            }
            lock(&self.cancel).remove(&id);
        }
    }

    fn key_memory(&self) -> Option<u64> {
        self.opts.key_memory
    }

    fn security(&self) -> Security {
        if self.opts.insecure_testing_only {
            Security::InsecureForTestingOnly
        } else {
            Security::Require128Bits
        }
    }

    fn context(&self, preset: &str) -> crate::Result<Arc<Context>> {
        if let Some(c) = lock(&self.contexts).get(preset) {
            return Ok(c.clone());
        }
        let params = crate::train::training_preset(preset, self.opts.insecure_testing_only)?;
        let c = Arc::new(Context::new(params)?);
        lock(&self.contexts).insert(preset.to_string(), c.clone());
        Ok(c)
    }

    /// Answers one request.
    pub fn handle(&self, r: &Request<'_>) -> Result<Reply, ApiError> {
        match (r.method, r.segments.as_slice()) {
            (Method::Post, []) => self.create(r.body),
            (_, []) => Err(err(405, "method_not_allowed", "POST /v1/jobs creates a job")),
            (m, [id, rest @ ..]) => {
                let job = self.authorise(id, r.token)?;
                match (m, rest) {
                    (Method::Get, []) => self.status(&job),
                    (Method::Delete, []) => self.delete(&job),
                    (Method::Get, ["blobs", name]) => self.blob_status(&job, name),
                    (Method::Put, ["blobs", name]) => self.chunk(&job, name, r),
                    (Method::Post, ["blobs", name, "complete"]) => self.complete(&job, name, r.body),
                    (Method::Post, ["start"]) => self.start(&job),
                    (Method::Get, ["epochs", e, what @ ("loss" | "weights")]) => self.epoch_file(&job, e, what),
                    (Method::Post, ["epochs", e, "answer"]) => self.answer(&job, e, r.body),
                    (Method::Get, ["model"]) => self.model(&job),
                    _ => Err(err(404, "no_route", "no such endpoint")),
                }
            }
        }
    }

    /// The job of `id` when `token` is its bearer token (compared in constant time).
    fn authorise(&self, id: &str, token: Option<&str>) -> Result<JobRow, ApiError> {
        let job =
            self.store.job(id).map_err(internal)?.ok_or_else(|| err(404, "unknown_job", format!("no job {id}")))?;
        let token = token.ok_or_else(|| err(401, "missing_token", "an Authorization: Bearer token is required"))?;
        let given = sha256(token.as_bytes());
        if !bool::from(given.ct_eq(job.token_hash.as_slice())) {
            return Err(err(403, "wrong_token", "the token is not this job's"));
        }
        Ok(job)
    }

    fn options(job: &JobRow) -> Result<JobOptions, ApiError> {
        serde_json::from_value(job.options.clone()).map_err(|e| err(500, "internal", e.to_string()))
    }

    fn create(&self, body: &[u8]) -> Result<Reply, ApiError> {
        let req: CreateJob = parse_json(body)?;
        let o = &req.options;
        let ctx = self.context(&o.preset).map_err(|e| err(400, "bad_preset", e.to_string()))?;
        if hex::encode(ctx.params().fingerprint()) != req.fingerprint.to_ascii_lowercase() {
            return Err(err(400, "fingerprint_mismatch", format!("the fingerprint is not preset {}'s", o.preset)));
        }
        let s = &o.spec;
        if s.batch == 0 || o.train_rows == 0 || o.valid_rows == 0 || o.epochs == 0 || o.max_steps == Some(0) {
            return Err(err(400, "bad_options", "rows, batch, epochs and max_steps must be positive"));
        }
        if !(s.lr.is_finite() && s.lr > 0.0) {
            return Err(err(400, "bad_options", "the learning rate must be positive and finite"));
        }
        if o.train_rows.div_ceil(s.batch) + o.valid_rows.div_ceil(s.batch) > (MAX_BLOBS - 1) / 2 {
            return Err(err(400, "bad_options", "too many batches"));
        }
        let request =
            EngineTrainers.key_request(ctx.params(), s).map_err(|e| err(400, "bad_options", e.to_string()))?;
        let blobs = o.blob_names();
        let (id, token) = (random_hex(16), random_hex(32));
        let options = serde_json::to_string(o).map_err(|e| err(500, "internal", e.to_string()))?;
        self.store
            .create(&id, &sha256(token.as_bytes()), &req.fingerprint.to_ascii_lowercase(), &options, &blobs)
            .map_err(internal)?;
        let key_request = serde_json::to_value(&request).map_err(|e| err(500, "internal", e.to_string()))?;
        json(201, &Created { id, token, key_request, blobs, max_chunk_bytes: self.opts.max_chunk_bytes })
    }

    fn status(&self, job: &JobRow) -> Result<Reply, ApiError> {
        let o = Self::options(job)?;
        let total = o.total_steps() as u64;
        let step = job.step as u64;
        let queue_position = if job.state == JobState::Queued {
            let q = lock(&self.queue);
            q.iter().position(|i| *i == job.id).map(|p| p as u64)
        } else {
            None
        };
        let blobs = self
            .store
            .blobs(&job.id)
            .map_err(internal)?
            .into_iter()
            .map(|b| BlobStatus { name: b.name, received: b.received, complete: b.complete })
            .collect();
        let state = serde_json::to_value(job.state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        json(
            200,
            &JobStatus {
                id: job.id.clone(),
                state,
                step,
                total_steps: total,
                epoch: job.epoch as u64,
                bootstraps: job.bootstraps as u64,
                seconds_per_step: job.seconds_per_step,
                eta_s: job.seconds_per_step * total.saturating_sub(step) as f64,
                queue_position,
                awaiting_epoch: job.awaiting_epoch.map(|e| e as u64),
                error: job.error.clone(),
                last_step: job.last_times.as_deref().and_then(|t| serde_json::from_str(t).ok()),
                planned_bootstraps: job.planned as u64,
                blobs,
            },
        )
    }

    fn delete(&self, job: &JobRow) -> Result<Reply, ApiError> {
        if let Some(c) = lock(&self.cancel).get(&job.id) {
            c.store(true, Ordering::SeqCst);
        }
        lock(&self.queue).retain(|i| *i != job.id);
        let guard = self.upload_lock(&job.id);
        let _g = lock(&guard);
        self.store.delete(&job.id).map_err(internal)?;
        lock(&self.upload_locks).remove(&job.id);
        json(200, &serde_json::json!({ "deleted": job.id }))
    }

    fn known_blob(&self, job: &JobRow, name: &str) -> Result<crate::store::BlobRow, ApiError> {
        self.store
            .blob(&job.id, name)
            .map_err(internal)?
            .ok_or_else(|| err(404, "unknown_blob", format!("job {} has no blob {name}", job.id)))
    }

    fn blob_status(&self, job: &JobRow, name: &str) -> Result<Reply, ApiError> {
        let b = self.known_blob(job, name)?;
        json(200, &BlobStatus { name: b.name, received: b.received, complete: b.complete })
    }

    fn upload_lock(&self, id: &str) -> Arc<Mutex<()>> {
        lock(&self.upload_locks).entry(id.to_string()).or_default().clone()
    }

    fn chunk(&self, job: &JobRow, name: &str, r: &Request<'_>) -> Result<Reply, ApiError> {
        if job.state != JobState::Uploading {
            return Err(err(409, "already_started", "uploads end when the job starts"));
        }
        let guard = self.upload_lock(&job.id);
        let _g = lock(&guard);
        let b = self.known_blob(job, name)?;
        if b.complete {
            return Err(err(409, "blob_complete", format!("{name} is complete")));
        }
        let offset = r.offset.ok_or_else(|| err(400, "missing_offset", "PUT needs ?offset="))?;
        if offset != b.received {
            return Err(err(
                409,
                "wrong_offset",
                format!("{name}: {} bytes acknowledged, the chunk starts at {offset}", b.received),
            ));
        }
        let want = r.chunk_sha256.ok_or_else(|| err(400, "missing_checksum", "a chunk needs its x-hetune-sha256"))?;
        if hex::encode(sha256(r.body)) != want.to_ascii_lowercase() {
            return Err(err(
                422,
                "checksum_mismatch",
                format!("{name}: the chunk at {offset} does not match its checksum"),
            ));
        }
        let len = r.body.len() as u64;
        {
            let mut reserved = lock(&self.reserved);
            let used = self.store.used_bytes().map_err(internal)? + *reserved;
            if used + len > self.opts.max_store_bytes {
                return Err(err(
                    507,
                    "quota_exceeded",
                    format!("the store holds {used} of {} bytes; this chunk needs {len}", self.opts.max_store_bytes),
                ));
            }
            *reserved += len;
        }
        let res = self.store.append(&job.id, name, offset, r.body);
        *lock(&self.reserved) -= len;
        let received = res.map_err(internal)?;
        json(200, &BlobStatus { name: name.to_string(), received, complete: false })
    }

    fn complete(&self, job: &JobRow, name: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let c: CompleteBlob = parse_json(body)?;
        let guard = self.upload_lock(&job.id);
        let _g = lock(&guard);
        let b = self.known_blob(job, name)?;
        if b.complete {
            return json(200, &BlobStatus { name: b.name, received: b.received, complete: true });
        }
        if c.size != b.received {
            return Err(err(
                409,
                "incomplete_blob",
                format!("{name}: {} bytes acknowledged, {} announced", b.received, c.size),
            ));
        }
        let digest = self.store.part_digest(&job.id, name, b.received).map_err(internal)?;
        if hex::encode(digest) != c.sha256.to_ascii_lowercase() {
            self.store.finish_blob(&job.id, name, false).map_err(internal)?;
            return Err(err(
                422,
                "checksum_mismatch",
                format!("{name}: the whole blob does not match its checksum; upload it again"),
            ));
        }
        let dir = self.store.job_dir(&job.id);
        let dest = if name == KEYS_BLOB {
            dir.join("server").join(PUBLIC_FILE)
        } else {
            dir.join("data").join(format!("{name}.hct"))
        };
        self.store.place(&job.id, name, b.received, &dest).map_err(internal)?;
        if let Err(e) = self.check_blob(job, name, &dest) {
            let _ = std::fs::remove_file(&dest);
            self.store.finish_blob(&job.id, name, false).map_err(internal)?;
            return Err(e);
        }
        self.store.finish_blob(&job.id, name, true).map_err(internal)?;
        json(200, &BlobStatus { name: name.to_string(), received: b.received, complete: true })
    }

    /// A placed blob's contents: the bundle's parameter set must be the job's; an encrypted batch
    /// must be of the job's set and shape.
    fn check_blob(&self, job: &JobRow, name: &str, path: &Path) -> Result<(), ApiError> {
        let mismatch = |what: String| err(422, "fingerprint_mismatch", what);
        if name == KEYS_BLOB {
            let dir = path.parent().unwrap_or(path);
            let store = BundleStore::open(dir, self.security()).map_err(|e| err(422, "bad_keys", e.to_string()))?;
            if hex::encode(store.context().params().fingerprint()) != job.fingerprint {
                return Err(mismatch("the bundle's parameter set is not the job's".into()));
            }
            return Ok(());
        }
        let o = Self::options(job)?;
        let ctx = self.context(&o.preset).map_err(internal)?;
        let f = std::fs::File::open(path).map_err(|e| internal(Error::io(path, e)))?;
        let mut src = hetune_engine::wire_io::IoSource(std::io::BufReader::new(f));
        let limits = hetune_core::wire::Limits::for_ciphertexts(ctx.params());
        let h = hetune_core::wire::read_tensor_header(&mut src, &ctx, &limits).map_err(|e| match e {
            hetune_core::Error::FingerprintMismatch => mismatch(format!("{name}: another parameter set's ciphertexts")),
            e => err(422, "bad_data", format!("{name}: {e}")),
        })?;
        let mut parts = name.split('_');
        let (split, k, xy) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let rows = if split == "train" { o.train_rows } else { o.valid_rows };
        let k: usize = k.parse().unwrap_or(usize::MAX);
        let b = o.spec.batch;
        let want_rows = (k.saturating_add(1).saturating_mul(b)).min(rows).saturating_sub(k.saturating_mul(b));
        let want_cols = if xy == "x" { o.spec.cols } else { o.spec.classes };
        if (h.rows, h.cols) != (want_rows as u64, want_cols as u64) {
            return Err(err(
                422,
                "bad_shape",
                format!("{name}: {}x{} where the job needs {want_rows}x{want_cols}", h.rows, h.cols),
            ));
        }
        Ok(())
    }

    fn start(&self, job: &JobRow) -> Result<Reply, ApiError> {
        if job.state != JobState::Uploading {
            return Err(err(409, "already_started", "the job was started already"));
        }
        let missing: Vec<String> =
            self.store.blobs(&job.id).map_err(internal)?.into_iter().filter(|b| !b.complete).map(|b| b.name).collect();
        if !missing.is_empty() {
            return Err(err(
                409,
                "upload_incomplete",
                format!("{} blobs are not complete (first: {})", missing.len(), missing[0]),
            ));
        }
        if !self.store.enqueue(&job.id).map_err(internal)? {
            return Err(err(409, "already_started", "the job was started already"));
        }
        self.enqueue(&job.id);
        json(202, &serde_json::json!({ "id": job.id, "state": "queued" }))
    }

    fn epoch_number(e: &str) -> Result<usize, ApiError> {
        e.parse().ok().filter(|&e| e > 0).ok_or_else(|| err(400, "bad_epoch", "epochs count from 1"))
    }

    fn epoch_file(&self, job: &JobRow, e: &str, what: &str) -> Result<Reply, ApiError> {
        let e = Self::epoch_number(e)?;
        let path = runner::epoch_path(&self.store.job_dir(&job.id), e, what);
        match std::fs::read(&path) {
            Ok(b) => Ok(Reply::Bytes(b)),
            Err(_) => Err(err(404, "not_ready", format!("epoch {e} has no {what} yet"))),
        }
    }

    fn answer(&self, job: &JobRow, e: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let e = Self::epoch_number(e)?;
        let a: Answer = parse_json(body)?;
        if job.awaiting_epoch != Some(e as i64) {
            return Err(err(409, "not_awaiting", format!("the job is not waiting for an answer on epoch {e}")));
        }
        self.store.answer(&job.id, e, a.stop).map_err(internal)?;
        json(200, &serde_json::json!({ "epoch": e, "stop": a.stop }))
    }

    fn model(&self, job: &JobRow) -> Result<Reply, ApiError> {
        if job.state != JobState::Done {
            return Err(err(409, "not_done", "the model is ready when the job is done"));
        }
        let path = self.store.job_dir(&job.id).join(runner::MODEL_FILE);
        std::fs::read(&path).map(Reply::Bytes).map_err(|e| internal(Error::io(&path, e)))
    }
}

/// Runs the daemon on `listen` until the process ends; `bound` gets the address it listens on.
pub fn run(listen: &str, opts: ServeOptions, bound: impl FnOnce(std::net::SocketAddr)) -> crate::Result<()> {
    let daemon = Daemon::open(opts)?;
    daemon.start_workers();
    http::serve(daemon, listen, bound)
}
