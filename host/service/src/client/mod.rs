//! `hetune client`: the data owner's side of a daemon job. It checks and standardises its data set
//! and runs the plaintext twins ([`crate::train::run_with`], as `hetune train` does), creates a
//! job, generates the keys the daemon asks for (or reuses a key directory of the same parameter
//! set), encrypts its batches in HETAL's packing, uploads the bundle and the batches in
//! checksummed chunks (resuming where the daemon's acknowledged bytes end), starts training,
//! answers each epoch by decrypting only the validation-loss scalar, and at the end downloads and
//! decrypts the model it keeps. Only wire-format bytes and the one-bit answers leave the owner.

mod http;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hetune_core::Security;
use hetune_engine::learning::dataset::{permutation, Dataset};
use hetune_engine::learning::softmax::Softmax;
use hetune_engine::learning::twin::Order;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub use self::http::Http;
use crate::error::{Error, Result};
use crate::io::keys::{generate_key_dir, key_paths, load_owner};
use crate::serve::protocol::{Answer, CreateJob, Created, JobOptions, JobStatus, KEYS_BLOB};
use crate::train::drive::Outcome;
use crate::train::owner::{BatchShape, DataOwner, EncryptedSplit};
use crate::train::report::{EncryptedRun, TrainReport};
use crate::train::server::StepTimes;
use crate::train::settings::TrainOptions;
use crate::train::{run_with, split_files, summarise, Costs, Event, Prepared};

/// What the client does.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The daemon's base URL (`http://127.0.0.1:PORT`).
    pub server: String,
    /// Data, preset and schedule, as `hetune train` takes them (`work_dir`: the owner's folder
    /// for keys, encrypted batches and epoch snapshots; default a private temporary one).
    pub train: TrainOptions,
    /// Key directory to use (created when absent; reused when its parameter set is the job's).
    pub keys: Option<PathBuf>,
    /// Seconds between status polls.
    pub poll: Duration,
}

/// The job the client created: what it needs to reach it again (`OWNER_DIR/job.json`, mode 0600:
/// it holds the token).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct JobHandle {
    /// Base URL.
    pub server: String,
    /// Job id.
    pub id: String,
    /// Bearer token.
    pub token: String,
    /// The job's options.
    #[serde(default)]
    pub options: Option<JobOptions>,
    /// The daemon's key request.
    #[serde(default)]
    pub key_request: serde_json::Value,
    /// Blobs to upload.
    #[serde(default)]
    pub blobs: Vec<String>,
    /// Largest chunk.
    #[serde(default)]
    pub max_chunk_bytes: u64,
}

/// Writes `bytes` to `path`, readable by the user only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// Runs the owner's side of a job to its end and returns the report (`hetune train`'s, with the
/// encrypted run done by the daemon).
pub fn run(opts: &ClientOptions, events: &(dyn Fn(Event<'_>) + Sync)) -> Result<(TrainReport, JobHandle)> {
    let mut handle = None;
    let mut remote = |p: &Prepared, softmax: &Softmax| -> Result<EncryptedRun> {
        let (dir, temporary) = match &opts.train.work_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                (d.clone(), false)
            }
            None => (crate::cli::private_temp_dir("hetune-client")?, true),
        };
        let r = remote_run(opts, p, softmax, &dir, events, &mut handle);
        if temporary {
            let _ = std::fs::remove_dir_all(&dir);
        }
        r
    };
    let report = run_with(&opts.train, Some(&mut remote), events)?;
    let handle = handle.ok_or(Error::InvalidArgument("no job was created"))?;
    Ok((report, handle))
}

fn job_options(opts: &TrainOptions, p: &Prepared) -> JobOptions {
    JobOptions {
        preset: opts.preset.clone(),
        spec: p.spec,
        epochs: p.schedule.epochs,
        max_steps: opts.max_steps,
        seed: opts.seed,
        train_rows: p.splits.train.rows,
        valid_rows: p.splits.valid.rows,
    }
}

/// The owner's keys in `key_dir` for the job's request: reused when the directory holds keys of
/// the same parameter set made for the same request, else generated.
fn owner_keys(
    key_dir: &Path,
    p: &Prepared,
    request: &serde_json::Value,
    security: Security,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(crate::io::keys::OwnerKeys, f64)> {
    let request_file = key_dir.join("request.json");
    let wanted = serde_json::to_vec(request)?;
    let (secret, bundle) = key_paths(key_dir);
    if secret.is_file() && bundle.is_file() && std::fs::read(&request_file).ok().as_deref() == Some(&wanted[..]) {
        let keys = load_owner(key_dir, security)?;
        if keys.ctx.params().fingerprint() == p.params.fingerprint() {
            return Ok((keys, 0.0));
        }
    }
    let t = Instant::now();
    let req = serde_json::from_value(request.clone())?;
    let mut rng = ChaCha20Rng::from_os_rng();
    generate_key_dir(key_dir, &p.params, &req, &mut rng, &|done, total| events(Event::Keygen { done, total }))?;
    std::fs::write(&request_file, &wanted).map_err(|e| Error::io(&request_file, e))?;
    Ok((load_owner(key_dir, security)?, t.elapsed().as_secs_f64()))
}

fn remote_run(
    opts: &ClientOptions,
    p: &Prepared,
    softmax: &Softmax,
    dir: &Path,
    events: &(dyn Fn(Event<'_>) + Sync),
    handle_out: &mut Option<JobHandle>,
) -> Result<EncryptedRun> {
    let t_opts = &opts.train;
    let security =
        if t_opts.insecure_testing_only { Security::InsecureForTestingOnly } else { Security::Require128Bits };
    let job = job_options(t_opts, p);
    let mut http = Http::new(&opts.server);
    let job_file = dir.join("job.json");
    // A resumed client continues the job of its folder: same options, keys, encrypted files.
    let handle = if t_opts.resume {
        let bytes = std::fs::read(&job_file).map_err(|e| Error::io(&job_file, e))?;
        let h: JobHandle = serde_json::from_slice(&bytes)?;
        if h.options.as_ref() != Some(&job) {
            return Err(Error::ResumeMismatch { dir: dir.to_path_buf() });
        }
        h
    } else {
        let created: Created =
            http.post_json("", &CreateJob { fingerprint: hex::encode(p.params.fingerprint()), options: job.clone() })?;
        let h = JobHandle {
            server: opts.server.clone(),
            id: created.id,
            token: created.token,
            options: Some(job.clone()),
            key_request: created.key_request,
            blobs: created.blobs,
            max_chunk_bytes: created.max_chunk_bytes,
        };
        write_private(&job_file, &serde_json::to_vec_pretty(&h)?)?;
        h
    };
    http.token = Some(handle.token.clone());
    *handle_out = Some(handle.clone());
    let base = handle.id.clone();

    // Keys, then the owner's data: rows in its order (permuted once when shuffling), batch by batch.
    let key_dir = opts.keys.clone().unwrap_or_else(|| dir.join("keys"));
    let (keys, keygen_s) = owner_keys(&key_dir, p, &handle.key_request, security, events)?;
    let owner_dir = dir.join("owner");
    let mut owner = if t_opts.resume {
        DataOwner::reopen_with(keys, &owner_dir, p.schedule.patience)?
    } else {
        let mut o = DataOwner::with_keys(keys, &owner_dir);
        o.set_patience(p.schedule.patience);
        o
    };
    let s = &p.splits;
    let train: Dataset = match p.order {
        Order::File => s.train.clone(),
        Order::Shuffled { seed } => s.train.select(&permutation(s.train.rows, seed)),
    };
    let t = Instant::now();
    let b = p.schedule.batch;
    if p.part != b {
        // The daemon's jobs step on one block row at a time (`hetune train` takes larger batches).
        return Err(Error::BadArgument {
            name: "--batch",
            value: b.to_string(),
            expected: format!("at most {} rows (one block row) for the daemon", p.packing.s0),
        });
    }
    let shape = BatchShape { batch: b, packing: p.packing, level: p.params.default_level() };
    let data_dir = dir.join("data");
    let (tr, va) = if t_opts.resume {
        (split_files(&data_dir, "train", train.rows, b)?, split_files(&data_dir, "valid", s.valid.rows, b)?)
    } else {
        let mut enc = |d: &Dataset, name: &str| -> Result<EncryptedSplit> {
            owner.encrypt_split(d, name, shape, &data_dir, &|done, total| {
                events(Event::Encrypt { split: name, done, total })
            })
        };
        (enc(&train, "train")?, enc(&s.valid, "valid")?)
    };
    let encrypt_s = t.elapsed().as_secs_f64();

    // Uploads: the bundle, then every batch; each resumes at the daemon's acknowledged length.
    let mut files: Vec<(String, PathBuf)> = vec![(KEYS_BLOB.to_string(), key_paths(&key_dir).1)];
    for (name, split) in [("train", &tr), ("valid", &va)] {
        for (k, b) in split.batches.iter().enumerate() {
            files.push((format!("{name}_{k}_x"), b.x.clone()));
            files.push((format!("{name}_{k}_y"), b.y.clone()));
        }
    }
    if files.iter().map(|f| f.0.as_str()).ne(handle.blobs.iter().map(String::as_str)) {
        return Err(Error::InvalidArgument("the daemon asks for other blobs than the owner made"));
    }
    let mut total = 0;
    for (_, f) in &files {
        total += std::fs::metadata(f).map_err(|e| Error::io(f, e))?.len();
    }
    let mut done = 0;
    for (name, f) in &files {
        http.upload(&base, name, f, handle.max_chunk_bytes, &mut |n| {
            done += n;
            events(Event::Upload { done, total });
        })?;
    }
    match http.post_json::<serde_json::Value>(&format!("{base}/start"), &serde_json::json!({})) {
        // A retried start whose first answer was lost.
        Err(Error::Daemon { code, .. }) if code == "already_started" => {}
        r => {
            r?;
        }
    }

    // Follow: progress from the status, one answer per epoch from the decrypted loss.
    let t = Instant::now();
    let total_steps = job.total_steps();
    let (mut started, mut planned) = (false, 0);
    let (mut last_step, mut last_boot, mut epoch_t) = (0u64, 0u64, Instant::now());
    let mut epoch_seconds = Vec::new();
    let mut times = Vec::new();
    let status = loop {
        let st: JobStatus = http.get_json(&base)?;
        if !started && st.state != "queued" && (st.planned_bootstraps > 0 || st.state == "done") {
            events(Event::Start { steps: total_steps, planned_bootstraps: st.planned_bootstraps as usize });
            planned = st.planned_bootstraps as usize;
            started = true;
        }
        if st.step > last_step {
            // The daemon reports the last step's times; steps between two polls share them.
            let per = (st.bootstraps.saturating_sub(last_boot) / (st.step - last_step)) as usize;
            for step in last_step + 1..=st.step {
                let times_now = st.last_step.filter(|_| step == st.step).unwrap_or(StepTimes {
                    bootstraps: per,
                    total_s: st.seconds_per_step,
                    ..StepTimes::default()
                });
                events(Event::Step { step: step as usize, epoch: st.epoch as usize, times: &times_now });
                times.push(times_now);
            }
            (last_step, last_boot) = (st.step, st.bootstraps);
        }
        match st.state.as_str() {
            "done" => break st,
            "failed" => {
                return Err(Error::Daemon {
                    status: 200,
                    code: "job_failed".into(),
                    message: st.error.unwrap_or_default(),
                })
            }
            "awaiting" => {
                if let Some(e) = st.awaiting_epoch {
                    let e = e as usize;
                    if e == owner.epochs_judged() && e > 0 {
                        // Judged before this client was stopped, answer not delivered: the same
                        // answer again (the owner's record of epochs decides it).
                        let stop = owner.has_stopped();
                        let _ =
                            http.post_json::<serde_json::Value>(&format!("{base}/epochs/{e}/answer"), &Answer { stop });
                    } else if e == owner.epochs_judged() + 1 {
                        let loss = http.get_bytes(&format!("{base}/epochs/{e}/loss"))?;
                        let weights = http.get_bytes(&format!("{base}/epochs/{e}/weights"))?;
                        let v = owner.judge_epoch(e, &loss, &weights, va.rows)?;
                        owner.save_epochs()?;
                        events(Event::Epoch { epoch: e, valid_mse: v.valid_mse, decision: v.decision });
                        epoch_seconds.push(epoch_t.elapsed().as_secs_f64());
                        epoch_t = Instant::now();
                        let stop = v.decision == hetune_engine::learning::early_stopping::Decision::Stop;
                        match http
                            .post_json::<serde_json::Value>(&format!("{base}/epochs/{e}/answer"), &Answer { stop })
                        {
                            // Recorded before a restart lost its answer.
                            Err(Error::Daemon { code, .. }) if code == "not_awaiting" => {}
                            r => {
                                r?;
                            }
                        }
                        continue;
                    }
                }
            }
            _ => {}
        }
        std::thread::sleep(opts.poll);
    };
    let train_s = t.elapsed().as_secs_f64();
    let model = http.get_bytes(&format!("{base}/model"))?;
    let full = tr.rows.div_ceil(p.schedule.batch) * p.schedule.epochs;
    let outcome = Outcome {
        step: status.step as usize,
        times,
        stopped_early: owner.has_stopped(),
        cut: t_opts.max_steps.is_some_and(|m| m < full) && !owner.has_stopped(),
        epoch_seconds,
    };
    let costs = Costs {
        keygen_s,
        encrypt_s,
        train_s,
        dataset_bytes: tr.bytes + va.bytes,
        planned_bootstraps: planned,
        ranks: 1,
    };
    summarise(&owner, p, softmax, &train, &model, outcome, None, costs)
}
