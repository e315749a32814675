//! The daemon (`hetune serve`, a separate process on 127.0.0.1 with a free port) and the owner's
//! client, at test-n12-boot on a slice of the SNIPS subset: every bad input gets an HTTP status
//! and a JSON error and harms no other job; `kill -9` loses no acknowledged byte; a job through
//! the daemon, killed mid-training and resumed, ends with the same model bytes as an
//! uninterrupted job on the same files, and decrypts to the in-process `hetune train` model.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hetune::ckks_core::{Parameters, Security};
use hetune::client::{ClientOptions, Http, JobHandle};
use hetune::io::keys::{generate_key_dir, key_paths, RotationSet};
use hetune::io::npy::{read_matrix, write_matrix, Matrix};
use hetune::serve::protocol::{BlobStatus, CompleteBlob, CreateJob, Created, JobOptions, JobStatus};
use hetune::train::engine::EngineTrainers;
use hetune::train::server::StepSpec;
use hetune::train::settings::{SoftmaxChoice, TrainOptions};
use hetune::Error;
use npyz::WriterBuilder;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hetune-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A daemon process; killed with SIGKILL when dropped.
struct Daemon {
    child: Child,
    url: String,
    store: PathBuf,
    extra: Vec<String>,
}

impl Daemon {
    fn spawn(store: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hetune"))
            .args(["serve", "--listen", listen, "--store", store.to_str().unwrap(), "--insecure-testing-only"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hetune serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("the bound address").to_string();
        Daemon { child, url, store: store.to_path_buf(), extra: extra.iter().map(|s| s.to_string()).collect() }
    }

    /// SIGKILL, then a new daemon on the same address and store.
    fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let addr = self.url.strip_prefix("http://").unwrap().to_string();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let next = Daemon::spawn(&self.store, &addr, &extra);
        drop(std::mem::replace(self, next));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn subset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/snips_mpnet")
}

/// The SNIPS subset cut to its first 63 features (64 columns with the bias fit 2^11 slots):
/// 128 train, 64 valid, 128 test rows.
fn snips(dir: &Path) {
    for (split, want) in [("train", 128), ("valid", 64), ("test", 128)] {
        let m = read_matrix(&subset().join(format!("{split}_x.npy"))).unwrap();
        let n = m.rows.min(want);
        let data: Vec<f64> = (0..n).flat_map(|i| m.data[i * m.cols..i * m.cols + 63].to_vec()).collect();
        write_matrix(
            &dir.join(format!("{split}_x.npy")),
            &Matrix { rows: n, cols: 63, data, dtype: m.dtype, is_vector: false },
        )
        .unwrap();
        let y = hetune::io::dataset::read_labels(&subset().join(format!("{split}_y.npy"))).unwrap();
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[n as u64])
            .writer(std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{split}_y.npy"))).unwrap()))
            .begin_nd()
            .unwrap();
        w.extend(y[..n].iter().copied()).unwrap();
        w.finish().unwrap();
    }
}

fn train_options(data: &Path) -> TrainOptions {
    let mut o = TrainOptions::new(data);
    o.preset = "test-n12-boot".into();
    o.insecure_testing_only = true;
    (o.epochs, o.batch, o.infer_rows) = (Some(1), Some(64), Some(0));
    o
}

fn job_options() -> JobOptions {
    job_options_lr(0.1)
}

fn job_options_lr(lr: f64) -> JobOptions {
    JobOptions {
        preset: "test-n12-boot".into(),
        spec: StepSpec { classes: 7, cols: 64, batch: 64, lr, softmax: SoftmaxChoice::Nas },
        epochs: 1,
        max_steps: None,
        seed: None,
        train_rows: 128,
        valid_rows: 64,
    }
}

fn fingerprint(preset: &str) -> String {
    hex::encode(Parameters::preset(preset, Security::InsecureForTestingOnly).unwrap().fingerprint())
}

fn create(url: &str) -> (Http, Created) {
    create_with(url, job_options())
}

fn create_with(url: &str, options: JobOptions) -> (Http, Created) {
    let mut h = Http::new(url);
    let c: Created = h.post_json("", &CreateJob { fingerprint: fingerprint("test-n12-boot"), options }).unwrap();
    h.token = Some(c.token.clone());
    (h, c)
}

/// The daemon's refusal: status and code.
fn refused<T: std::fmt::Debug>(r: Result<T, Error>) -> (u16, String) {
    match r {
        Err(Error::Daemon { status, code, .. }) => (status, code),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

/// A raw request (no client-side checks), for bodies and headers the client never sends.
fn raw(method: &str, url: &str, token: Option<&str>, body: &[u8]) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut r = agent.run(req.body(body.to_vec()).unwrap()).unwrap();
    let status = r.status().as_u16();
    let v = r.body_mut().read_json().unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[test]
fn bad_input_gets_a_status_and_a_json_error_and_harms_no_other_job() {
    let dir = tmp("bad");
    let chunk = 64 << 10;
    let mut d = Daemon::spawn(
        &dir.join("store"),
        "127.0.0.1:0",
        &["--max-store-bytes", &(1u64 << 20).to_string(), "--max-chunk-bytes", &chunk.to_string()],
    );
    let (a, ca) = create(&d.url);
    let (b, cb) = create(&d.url);
    assert_eq!(ca.token.len(), 64, "a 256-bit token");
    assert_ne!(ca.token, cb.token);
    // Job A gets one acknowledged chunk: it must survive everything below.
    let first = vec![7u8; 1000];
    assert_eq!(a.put_chunk(&ca.id, "train_0_x", 0, &first).unwrap().received, 1000);

    // Unknown job, missing token, wrong token (each owner's token reads only its own job).
    assert_eq!(refused(a.get_bytes("0123456789abcdef0123456789abcdef")), (404, "unknown_job".into()));
    let (status, v) = raw("GET", &format!("{}/v1/jobs/{}", d.url, ca.id), None, b"");
    assert_eq!((status, v["error"].as_str()), (401, Some("missing_token")), "{v}");
    let mut b_on_a = Http::new(&d.url);
    b_on_a.token = Some(cb.token.clone());
    for path in [ca.id.clone(), format!("{}/model", ca.id), format!("{}/epochs/1/loss", ca.id)] {
        assert_eq!(refused(b_on_a.get_bytes(&path)), (403, "wrong_token".into()), "{path}");
    }
    assert_eq!(refused(b_on_a.delete(&ca.id)), (403, "wrong_token".into()));

    // Parameter fingerprint: at creation, and keys of another set.
    let wrong = CreateJob { fingerprint: fingerprint("test-n12"), options: job_options() };
    assert_eq!(refused(Http::new(&d.url).post_json::<Created>("", &wrong)), (400, "fingerprint_mismatch".into()));
    let params = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
    let keys = dir.join("other-keys");
    let request = RotationSet::None.key_request(params.log_n() - 1);
    generate_key_dir(&keys, &params, &request, &mut ChaCha20Rng::seed_from_u64(1), &|_, _| {}).unwrap();
    let bundle = key_paths(&keys).1;
    let size = std::fs::metadata(&bundle).unwrap().len();
    assert!(size < (1 << 20) - 1000, "the other set's bundle fits the quota: {size}");
    let e = b.upload(&cb.id, "keys", &bundle, chunk, &mut |_| {});
    assert_eq!(refused(e), (422, "fingerprint_mismatch".into()));
    let st: BlobStatus = b.get_json(&format!("{}/blobs/keys", cb.id)).unwrap();
    assert_eq!((st.received, st.complete), (0, false), "a refused blob is discarded");

    // A corrupted chunk (checksum), a truncated blob, an oversized body.
    let e = b.put_raw(&cb.id, "train_0_x", 0, &[1u8; 100], &"00".repeat(32));
    assert_eq!(refused(e), (422, "checksum_mismatch".into()));
    b.put_chunk(&cb.id, "train_0_x", 0, &[1u8; 100]).unwrap();
    let e = b.post_json::<BlobStatus>(
        &format!("{}/blobs/train_0_x/complete", cb.id),
        &CompleteBlob { size: 200, sha256: "00".repeat(32) },
    );
    assert_eq!(refused(e), (409, "incomplete_blob".into()));
    let e = b.put_chunk(&cb.id, "train_0_x", 50, &[1u8; 100]);
    assert_eq!(refused(e), (409, "wrong_offset".into()));
    let e = b.put_chunk(&cb.id, "train_0_x", 100, &vec![0u8; chunk as usize + 1]);
    assert_eq!(refused(e), (413, "body_too_large".into()));
    let (status, v) = raw("POST", &format!("{}/v1/jobs", d.url), None, &vec![b' '; 100 << 10]);
    assert_eq!((status, v["error"].as_str()), (413, Some("body_too_large")), "{v}");
    let (status, v) = raw("POST", &format!("{}/v1/jobs", d.url), None, b"{not json");
    assert_eq!((status, v["error"].as_str()), (400, Some("bad_json")), "{v}");

    // The store's quota (a full disk): chunks until the store refuses.
    let mut offset = 100;
    let e = loop {
        match b.put_chunk(&cb.id, "train_0_x", offset, &vec![3u8; chunk as usize]) {
            Ok(s) => offset = s.received,
            Err(e) => break e,
        }
        assert!(offset < 2 << 20, "the quota never refused");
    };
    assert_eq!(refused::<()>(Err(e)), (507, "quota_exceeded".into()));

    // Start before the uploads are complete.
    assert_eq!(
        refused(b.post_json::<serde_json::Value>(&format!("{}/start", cb.id), &())),
        (409, "upload_incomplete".into())
    );

    // kill -9 and a restart: every acknowledged byte is there, and uploads go on from it.
    d.kill_and_restart();
    let st: BlobStatus = b.get_json(&format!("{}/blobs/train_0_x", cb.id)).unwrap();
    assert_eq!(st.received, offset);
    let st: BlobStatus = a.get_json(&format!("{}/blobs/train_0_x", ca.id)).unwrap();
    assert_eq!((st.received, st.complete), (1000, false));
    assert_eq!(a.put_chunk(&ca.id, "train_0_x", 1000, &first).unwrap().received, 2000);

    // Job A is intact: its status, its bytes; deleting B frees its bytes and its id.
    let sa: JobStatus = a.get_json(&ca.id).unwrap();
    assert_eq!((sa.state.as_str(), sa.step), ("uploading", 0));
    b.delete(&cb.id).unwrap();
    assert_eq!(refused(b.get_bytes(&cb.id)), (404, "unknown_job".into()));
    assert!(!d.store.join("jobs").join(&cb.id).exists());
    assert_eq!(a.put_chunk(&ca.id, "train_0_x", 2000, &vec![1u8; chunk as usize]).unwrap().received, 2000 + chunk);
    drop(d);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The job a client writes to `work/job.json` once it has created it, and a client of it, once
/// its status meets `until` (training not done yet).
fn follow(work: &Path, url: &str, until: impl Fn(&JobStatus) -> bool) -> (JobHandle, Http) {
    let start = Instant::now();
    let handle: JobHandle = loop {
        if let Some(h) = std::fs::read(work.join("job.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            break h;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "no job created");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut watch = Http::new(url);
    watch.token = Some(handle.token.clone());
    loop {
        let st: JobStatus = watch.get_json(&handle.id).unwrap();
        assert!(st.state != "failed", "{:?}", st.error);
        if until(&st) {
            assert!(st.state != "done", "caught before the end");
            return (handle, watch);
        }
        assert!(start.elapsed() < Duration::from_secs(1200), "the job never got there");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's final model bytes of job `h`.
fn model_bytes(url: &str, h: &JobHandle) -> Vec<u8> {
    let mut c = Http::new(url);
    c.token = Some(h.token.clone());
    c.get_bytes(&format!("{}/model", h.id)).unwrap()
}

/// A job through the daemon, with the daemon killed (SIGKILL) after its first step and
/// restarted: the client carries on, the daemon resumes from the checkpoint, and the final
/// encrypted model is byte for byte that of an uninterrupted job on the same uploaded files. The
/// decrypted model matches the in-process `hetune train` run on the same data and schedule (other
/// keys, so within CKKS noise) with the same test accuracy; a second start is refused.
#[test]
fn a_job_killed_mid_training_resumes_to_the_same_model_as_the_in_process_run() {
    let dir = tmp("e2e");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    snips(&data);
    let mut d = Daemon::spawn(&dir.join("store"), "127.0.0.1:0", &[]);
    let work = dir.join("owner");
    let opts = ClientOptions {
        server: d.url.clone(),
        train: TrainOptions { work_dir: Some(work.clone()), ..train_options(&data) },
        keys: None,
        poll: Duration::from_millis(200),
    };
    let client = std::thread::spawn(move || hetune::client::run(&opts, &|_| {}));

    // Wait for the first step, then kill -9.
    let (handle, watch) = follow(&work, &d.url, |st| st.step >= 1);
    d.kill_and_restart();

    // While the resumed job trains: a second job on the same uploaded files waits in the queue
    // (one training at a time), and 1,000 requests from 50 clients (status polls of the running
    // job, bad tokens, unknown jobs) are each answered about their own job.
    let lr = hetune::train::prepare(&train_options(&data)).unwrap().schedule.lr;
    let (h2, c2) = create_with(&d.url, job_options_lr(lr));
    for name in &c2.blobs {
        let f =
            if name == "keys" { work.join("keys/server/public.bundle") } else { work.join(format!("data/{name}.hct")) };
        h2.upload(&c2.id, name, &f, c2.max_chunk_bytes, &mut |_| {}).unwrap();
    }
    h2.post_json::<serde_json::Value>(&format!("{}/start", c2.id), &()).unwrap();
    let st2: JobStatus = h2.get_json(&c2.id).unwrap();
    let st1: JobStatus = watch.get_json(&handle.id).unwrap();
    eprintln!("job 1 {}, job 2 {} (queue position {:?})", st1.state, st2.state, st2.queue_position);
    if st1.state != "done" {
        assert_eq!((st2.state.as_str(), st2.queue_position), ("queued", Some(0)), "FIFO behind the running job");
    }
    let t = Instant::now();
    let load: Vec<_> = (0..50usize)
        .map(|c| {
            let (url, id, token) = (d.url.clone(), handle.id.clone(), handle.token.clone());
            std::thread::spawn(move || {
                let mut good = Http::new(&url);
                good.token = Some(token);
                let mut bad = Http::new(&url);
                bad.token = Some("cd".repeat(32));
                for i in 0..20usize {
                    match (c + i) % 3 {
                        0 => assert_eq!(good.get_json::<JobStatus>(&id).unwrap().id, id),
                        1 => assert_eq!(refused(bad.get_bytes(&id)), (403, "wrong_token".into())),
                        _ => assert_eq!(
                            refused(good.get_bytes(&format!("{:032x}", c * 20 + i))),
                            (404, "unknown_job".into())
                        ),
                    }
                }
            })
        })
        .collect();
    for th in load {
        th.join().unwrap();
    }
    let (rss, peak) = rss_kb(d.child.id());
    eprintln!(
        "load during training: 1000 requests in {:.2} s; daemon RSS {rss} kB, peak {peak} kB",
        t.elapsed().as_secs_f64()
    );

    let (report, job) = client.join().unwrap().unwrap();
    assert_eq!(job.id, handle.id);
    let enc = report.encrypted.as_ref().unwrap();
    assert_eq!((enc.steps, enc.epochs_run), (2, 1));
    assert_eq!(
        refused(watch.post_json::<serde_json::Value>(&format!("{}/start", job.id), &())),
        (409, "already_started".into())
    );
    let killed = model_bytes(&d.url, &job);

    // The uninterrupted job, answered as the owner answered.
    loop {
        let st: JobStatus = h2.get_json(&c2.id).unwrap();
        assert!(st.state != "failed", "{:?}", st.error);
        if st.state == "done" {
            break;
        }
        if st.awaiting_epoch == Some(1) {
            let r = h2.post_json::<serde_json::Value>(
                &format!("{}/epochs/1/answer", c2.id),
                &serde_json::json!({ "stop": false }),
            );
            // A second answer may meet the epoch just closed.
            assert!(r.is_ok() || refused(r) == (409, "not_awaiting".into()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let uninterrupted = model_bytes(
        &d.url,
        &JobHandle { server: d.url.clone(), id: c2.id.clone(), token: c2.token.clone(), ..JobHandle::default() },
    );
    assert!(killed == uninterrupted, "the resumed job's model differs from the uninterrupted one's");

    // The in-process path on the same data and schedule.
    let local = hetune::train::run(&train_options(&data), false, &EngineTrainers, &|_| {}).unwrap();
    let lw = &local.encrypted.as_ref().unwrap().weights;
    let scale = lw.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = enc.weights.iter().zip(lw).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("daemon vs in-process: largest weight error {err:.2e}, largest weight {scale:.3}");
    // Other keys, other noise: the tolerance of `hetune train`'s own test against the twin.
    assert!(scale > 0.0 && err <= 1e-3 * scale, "weights off by {err:e} (largest {scale})");
    let gap = (report.encrypted_test_acc.unwrap() - local.encrypted_test_acc.unwrap()).abs();
    assert!(gap <= 1.0 / 128.0 + 1e-12, "{:?} vs {:?}", report.encrypted_test_acc, local.encrypted_test_acc);
    assert_eq!(report.approx_test_acc, local.approx_test_acc);
    drop(d);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Resident and peak resident memory of process `pid`, kB (`/proc`).
fn rss_kb(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 1,000 requests from 50 concurrent clients against one daemon on loopback: status polls, chunk
/// uploads (each client its own blob) and bad tokens, spread over 5 jobs. Every request gets its
/// expected answer, about its own job; every acknowledged chunk is counted; memory stays bounded.
#[test]
fn a_thousand_requests_from_fifty_clients_are_each_answered_for_their_own_job() {
    let dir = tmp("load");
    let d = Daemon::spawn(&dir.join("store"), "127.0.0.1:0", &[]);
    let options = JobOptions { train_rows: 640, ..job_options() };
    let jobs: Vec<(String, String, Vec<String>)> = (0..5)
        .map(|_| {
            let (_, c) = create_with(&d.url, options.clone());
            (c.id, c.token, c.blobs)
        })
        .collect();
    let before = rss_kb(d.child.id());
    let start = Instant::now();
    let chunk = 4096usize;
    let threads: Vec<_> = (0..50usize)
        .map(|t| {
            let (url, jobs) = (d.url.clone(), jobs.clone());
            std::thread::spawn(move || {
                let (id, token, blobs) = &jobs[t % 5];
                let blob = &blobs[1 + t / 5];
                let mut h = Http::new(&url);
                h.token = Some(token.clone());
                let mut bad = Http::new(&url);
                bad.token = Some("ab".repeat(32));
                let (mut offset, mut answered) = (0u64, 0usize);
                for i in 0..20usize {
                    match (t + i) % 3 {
                        0 => {
                            let st: JobStatus = h.get_json(id).unwrap();
                            assert_eq!((&st.id, st.state.as_str()), (id, "uploading"));
                        }
                        1 => {
                            let data = vec![(t * 20 + i) as u8; chunk];
                            let st = h.put_chunk(id, blob, offset, &data).unwrap();
                            assert_eq!((&st.name, st.received), (blob, offset + chunk as u64));
                            offset = st.received;
                        }
                        _ => assert_eq!(refused(bad.get_bytes(id)), (403, "wrong_token".into())),
                    }
                    answered += 1;
                }
                (t, offset, answered)
            })
        })
        .collect();
    let mut total = 0;
    for th in threads {
        let (t, offset, answered) = th.join().unwrap();
        total += answered;
        let (id, token, blobs) = &jobs[t % 5];
        let mut h = Http::new(&d.url);
        h.token = Some(token.clone());
        let st: BlobStatus = h.get_json(&format!("{id}/blobs/{}", blobs[1 + t / 5])).unwrap();
        assert_eq!(st.received, offset, "client {t}: acknowledged bytes");
    }
    let secs = start.elapsed().as_secs_f64();
    let after = rss_kb(d.child.id());
    eprintln!(
        "load: {total} requests from 50 clients in {secs:.2} s ({:.0}/s); daemon RSS {} kB before, {} kB after, peak {} kB",
        total as f64 / secs,
        before.0,
        after.0,
        after.1
    );
    assert_eq!(total, 1000);
    assert!(after.1 < 512 * 1024, "daemon peak RSS {} kB", after.1);
    drop(d);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The owner's client as a process, killed (SIGKILL) once the daemon trains, then run again with
/// `--resume --work-dir`: it reuses its job, keys, encrypted files and judged epochs, answers the
/// epoch and writes the model, the report and the figure.
#[test]
fn a_killed_client_resumes_its_job() {
    let dir = tmp("client");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    snips(&data);
    let d = Daemon::spawn(&dir.join("store"), "127.0.0.1:0", &[]);
    let work = dir.join("owner");
    let args = |resume: bool| {
        let mut a: Vec<String> = [
            "client",
            "--server",
            &d.url,
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.join("out").to_str().unwrap(),
            "--preset",
            "test-n12-boot",
            "--insecure-testing-only",
            "--epochs",
            "1",
            "--batch",
            "64",
            "--infer-rows",
            "0",
            "--work-dir",
            work.to_str().unwrap(),
            "--poll",
            "0.2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let mut first = Command::new(env!("CARGO_BIN_EXE_hetune"))
        .args(args(false))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (handle, _) = follow(&work, &d.url, |st| st.state == "running" || st.state == "awaiting");
    first.kill().unwrap();
    first.wait().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hetune")).args(args(true)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("job {}", handle.id)), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("out/report.json")).unwrap()).unwrap();
    assert_eq!((v["steps"].as_u64(), v["epochs_run"].as_u64()), (Some(2), Some(1)), "{v}");
    assert!(v["encrypted_test_acc"].as_f64().is_some_and(|a| a > 0.5), "{v}");
    for f in ["model.npy", "curves.png"] {
        assert!(dir.join("out").join(f).is_file(), "{f}");
    }
    drop(d);
    std::fs::remove_dir_all(dir).unwrap();
}
