//! `hetune train --distributed` under `mpirun -np 2 --oversubscribe` on loopback at the insecure
//! test-n12-boot preset (feature `mpi`; `.ci/run` installs Open MPI and runs these). A slice of
//! the SNIPS subset (7 features and the bias, 7 classes) with a batch of 512 rows: two parts of
//! one block row (256 rows at 2^11 slots) per step, one on each rank.
//!
//! Without `mpirun` these tests fail, naming the packages to install: they never skip.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hetune::io::npy::{read_matrix, write_matrix, Matrix};
use hetune::train::engine::EngineTrainers;
use hetune::train::server::{Checkpoint, CHECKPOINT_FILE};
use hetune::train::settings::TrainOptions;
use hetune_core::rlwe::Context;
use npyz::WriterBuilder;

const PACKAGES: &str = "Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev (and libclang-dev, clang to build)";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hetune-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The SNIPS subset's first `cols` features and the given rows of each split, in `dir`.
fn snips_rows(dir: &Path, cols: usize, rows: &[(&str, usize)]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/snips_mpnet");
    for &(split, want) in rows {
        let m = read_matrix(&src.join(format!("{split}_x.npy"))).unwrap();
        let n = m.rows.min(want);
        assert_eq!(n, want, "{split}: the subset has {} rows", m.rows);
        let data: Vec<f64> = (0..n).flat_map(|i| m.data[i * m.cols..i * m.cols + cols].to_vec()).collect();
        let cut = Matrix { rows: n, cols, data, dtype: m.dtype, is_vector: false };
        write_matrix(&dir.join(format!("{split}_x.npy")), &cut).unwrap();
        let y = hetune::io::dataset::read_labels(&src.join(format!("{split}_y.npy"))).unwrap();
        let file = std::fs::File::create(dir.join(format!("{split}_y.npy"))).unwrap();
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[n as u64])
            .writer(std::io::BufWriter::new(file))
            .begin_nd()
            .unwrap();
        w.extend(y[..n].iter().copied()).unwrap();
        w.finish().unwrap();
    }
}

/// `mpirun` itself, checked to be there (a missing one fails the test with the packages to install).
fn mpirun() -> Command {
    match Command::new("mpirun").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("mpirun --version failed ({}): {PACKAGES}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("mpirun not found ({e}): the MPI tests need Open MPI; {PACKAGES}"),
    }
    let mut c = Command::new("mpirun");
    // CI runs as root; two ranks on a machine of two cores (or fewer).
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.args(["-np", "2", "--oversubscribe", "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]);
    c
}

/// The common arguments of a run on `data` in `work`.
fn train_args<'a>(data: &'a Path, work: &'a Path, steps: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        s(data),
        "--preset",
        "test-n12-boot",
        "--insecure-testing-only",
        "--batch",
        "512",
        "--epochs",
        epochs,
        "--max-steps",
        steps,
        "--infer-rows",
        "0",
        "--threads",
        "1",
        "--work-dir",
        s(work),
        "--json",
    ]
}

fn checked(out: Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{what}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{what}: not one JSON object ({e}): {text}"))
}

fn context() -> Context {
    Context::new(hetune::train::training_preset("test-n12-boot", true).unwrap()).unwrap()
}

/// Two steps (the first ends epoch 1, which the owner judges on rank 0; the second is cut by
/// --max-steps), each of two parts: in one process, then on two ranks from the same keys and
/// encrypted data (the first run's work directory, its progress removed): the checkpoints, the
/// compact `W` and `V` after step 2, are the same bytes.
#[test]
fn two_distributed_steps_equal_the_single_process_steps_bit_for_bit() {
    let dir = tmp("same");
    snips_rows(&dir, 7, &[("train", 512), ("valid", 64), ("test", 64)]);
    let work = dir.join("work");
    let hetune = env!("CARGO_BIN_EXE_hetune");

    // One process, through the library (for the weights, which the JSON leaves out).
    let mut opts = TrainOptions::new(&dir);
    opts.preset = "test-n12-boot".into();
    opts.insecure_testing_only = true;
    (opts.epochs, opts.batch, opts.max_steps, opts.infer_rows) = (Some(2), Some(512), Some(2), Some(0));
    opts.work_dir = Some(work.clone());
    let report = hetune::train::run(&opts, false, &EngineTrainers, &|_| {}).unwrap();
    let enc = report.encrypted.as_ref().unwrap();
    assert_eq!((enc.steps, enc.ranks), (2, 1));
    // Two parts of 4 softmax bootstraps and the weights' one.
    assert_eq!((enc.bootstraps_per_step, enc.planned_bootstraps_per_step), (9.0, 9));
    assert_eq!(report.time_split.unwrap().comm_bytes, 0);
    // The parts' sum is the step on the whole batch: the weights follow the approximation's twin.
    let (w, t) = (&enc.weights, &report.approx_twin.weights);
    let top = t.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let err = w.iter().zip(t).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("one process: weights within {err:.2e} of the twin's (largest {top:.3})");
    assert!(top > 0.0 && err <= 1e-3 * top, "weights off the twin's by {err:e} (largest {top})");
    let single = std::fs::read(work.join("server").join(CHECKPOINT_FILE)).unwrap();

    // The same start again: no checkpoint, no judged epoch; keys and encrypted data kept.
    std::fs::remove_file(work.join("server").join(CHECKPOINT_FILE)).unwrap();
    std::fs::remove_file(work.join("owner/epochs.json")).unwrap();
    let mut args = train_args(&dir, &work, "2", "2");
    args.extend(["--resume", "--distributed"]);
    let two = mpirun().arg(hetune).args(&args).output().unwrap();
    let v = checked(two, "two ranks");
    assert_eq!(v["steps"].as_u64(), Some(2), "{v}");
    let e = &v["encrypted"];
    assert_eq!(e["ranks"].as_u64(), Some(2), "{v}");
    // Rank 0's own part and the weights' bootstrap, as planned.
    assert_eq!((e["bootstraps_per_step"].as_f64(), e["planned_bootstraps_per_step"].as_u64()), (Some(5.0), Some(5)));
    // Rank 0 received one sum and sent W and V each step.
    assert!(v["time_split"]["comm_bytes"].as_u64().unwrap() > 0, "{v}");
    let distributed = std::fs::read(work.join("server").join(CHECKPOINT_FILE)).unwrap();
    let ctx = context();
    let (a, b) = (
        Checkpoint::read(&ctx, &work.join("server").join(CHECKPOINT_FILE)).unwrap(),
        Checkpoint::read(&ctx, &{
            let p = dir.join("single.bin");
            std::fs::write(&p, &single).unwrap();
            p
        })
        .unwrap(),
    );
    assert_eq!((a.step, a.epoch, a.done_in_epoch), (2, 2, 1));
    assert!(a.w == b.w && a.v == b.v, "the distributed weights differ from the single process's");
    assert_eq!(distributed, single);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Rank 1 exits in step 2 (the test hook): the job fails with an error naming the dead rank,
/// the checkpoint of step 1 is intact, and a run resumed from it (one process) completes.
#[test]
fn a_rank_that_dies_fails_the_job_and_leaves_the_last_checkpoint() {
    let dir = tmp("dies");
    snips_rows(&dir, 7, &[("train", 512), ("valid", 64), ("test", 64)]);
    let work = dir.join("work");
    let hetune = env!("CARGO_BIN_EXE_hetune");
    let mut args = train_args(&dir, &work, "3", "3");
    args.push("--distributed");
    let out = mpirun().env("HETUNE_TEST_RANK_EXIT_AT_STEP", "2").arg(hetune).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert!(!out.status.success(), "the job succeeded without rank 1");
    assert!(err.contains("rank 1") && err.contains("exiting in step 2"), "{err}");
    // mpirun's own account names the rank's exit.
    assert!(err.to_lowercase().contains("exit"), "{err}");
    let path = work.join("server").join(CHECKPOINT_FILE);
    let c = Checkpoint::read(&context(), &path).unwrap();
    assert_eq!((c.step, c.epoch, c.done_in_epoch), (1, 1, 1));

    // The checkpoint resumes: two more steps in one process.
    let mut args = train_args(&dir, &work, "3", "3");
    args.push("--resume");
    let v = checked(Command::new(hetune).args(&args).output().unwrap(), "resumed");
    assert_eq!(v["steps"].as_u64(), Some(3), "{v}");
    std::fs::remove_dir_all(dir).unwrap();
}
