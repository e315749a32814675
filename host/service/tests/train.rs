//! `hetune train` on the small real subsets in `tests/data`: the plaintext twins and the report,
//! the figure, and bad input refused before any heavy work (no key, no ciphertext made).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hetune::io::npy::{read_matrix, write_matrix, Matrix};
use hetune::train::engine::EngineTrainers;
use hetune::train::settings::TrainOptions;
use npyz::WriterBuilder;

fn hetune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hetune")).args(args).output().expect("run hetune")
}

fn ok(args: &[&str]) -> String {
    let out = hetune(args);
    assert!(out.status.success(), "hetune {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hetune-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn subset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn write_labels(path: &Path, y: &[i64]) {
    let mut w = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&[y.len() as u64])
        .writer(std::io::BufWriter::new(std::fs::File::create(path).unwrap()))
        .begin_nd()
        .unwrap();
    w.extend(y.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn read_labels(path: &Path) -> Vec<i64> {
    hetune::io::dataset::read_labels(path).unwrap()
}

/// A copy of the SNIPS subset in `dir`, each split cut to its first `cols` features and to the
/// rows given.
fn snips_rows(dir: &Path, cols: usize, rows: &[(&str, usize)]) {
    for &(split, want) in rows {
        let src = subset("snips_mpnet");
        let m = read_matrix(&src.join(format!("{split}_x.npy"))).unwrap();
        let n = m.rows.min(want);
        let data: Vec<f64> = (0..n).flat_map(|i| m.data[i * m.cols..i * m.cols + cols].to_vec()).collect();
        let cut = Matrix { rows: n, cols, data, dtype: m.dtype, is_vector: false };
        write_matrix(&dir.join(format!("{split}_x.npy")), &cut).unwrap();
        let y = read_labels(&src.join(format!("{split}_y.npy")));
        write_labels(&dir.join(format!("{split}_y.npy")), &y[..n]);
    }
}

fn snips_copy(dir: &Path, cols: usize, rows: usize) {
    snips_rows(dir, cols, &[("train", rows), ("valid", rows), ("test", rows)]);
}

/// The twins alone on the SNIPS subset: the schedule of `tests/twin.rs` (batch 128, lr 1, 10
/// epochs, file order), whose exact run the reference script puts at 93.75% test; the JSON
/// carries every field, and the figure renders with its text.
#[test]
fn twin_only_reports_the_reference_accuracy_and_draws_the_figure() {
    let dir = tmp("twins");
    let png = dir.join("curves.png");
    let out = ok(&[
        "train",
        "--data",
        s(&subset("snips_mpnet")),
        "--preset",
        "test-n12-boot",
        "--insecure-testing-only",
        "--twin-only",
        "--epochs",
        "10",
        "--batch",
        "128",
        "--plot",
        s(&png),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plaintext_test_acc"].as_f64(), Some(0.9375), "{v}");
    // Normalize-and-square's twin errs by ~1e-6: the same predictions.
    assert_eq!(v["approx_test_acc"].as_f64(), Some(0.9375));
    assert!(v["encrypted_test_acc"].is_null());
    assert_eq!((v["steps"].as_u64(), v["epochs_run"].as_u64()), (Some(50), Some(10)));
    assert_eq!(v["stopped_early"], serde_json::Value::Bool(false));
    assert_eq!(
        (v["classes"].as_u64(), v["features"].as_u64(), v["standardised"].as_bool()),
        (Some(7), Some(768), Some(false))
    );
    assert_eq!(v["schedule"]["defaults"]["set"], "SNIPS");
    for key in ["seconds_per_step", "bootstraps_per_step", "time_split", "peak_rss_bytes", "total_s"] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    let epochs = v["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 10);
    let first = epochs[0]["approx_twin"]["train"]["cross_entropy"].as_f64().unwrap();
    // The reference script's first-epoch training loss on this subset (tests/twin.rs).
    assert!((first - 1.7387808327485055).abs() < 1e-3, "{first}");

    // The figure: a PNG of the stated size whose caption strip holds dark (text) pixels,
    // drawn with the embedded font whatever fonts the machine has.
    let img = std::fs::read(&png).unwrap();
    assert_eq!(&img[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) =
        (u32::from_be_bytes(img[16..20].try_into().unwrap()), u32::from_be_bytes(img[20..24].try_into().unwrap()));
    assert_eq!((w, h), hetune::train::plot::SIZE);
    let mut opts = TrainOptions::new(subset("snips_mpnet"));
    (opts.preset, opts.insecure_testing_only, opts.epochs, opts.batch) =
        ("test-n12-boot".into(), true, Some(3), Some(128));
    let report = hetune::train::run(&opts, true, &EngineTrainers, &|_| {}).unwrap();
    let dark = caption_dark_pixels(&hetune::train::plot::render_rgb(&report).unwrap());
    assert!(dark > 50, "only {dark} dark pixels in the caption strip");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Dark pixels in the top 30 rows of the left half (the caption) of the figure drawn in memory.
fn caption_dark_pixels(rgb: &[u8]) -> usize {
    let w = hetune::train::plot::SIZE.0 as usize;
    (0..30)
        .flat_map(|y| (0..w / 2).map(move |x| (y * w + x) * 3))
        .filter(|&i| rgb[i] < 100 && rgb[i + 1] < 100 && rgb[i + 2] < 100)
        .count()
}

/// MNIST-DINOv2 standardised at lr 2 (HETAL's MNIST rate, for unit-norm ViT features) drives the
/// logits beyond normalize-and-square's range: refused by the twin, before any key.
#[test]
fn logits_beyond_the_softmax_range_are_refused_before_encryption() {
    let work = tmp("range").join("work");
    let out = hetune(&[
        "train",
        "--data",
        s(&subset("mnist_dinov2")),
        "--preset",
        "test-n12-boot",
        "--insecure-testing-only",
        "--lr",
        "2",
        "--epochs",
        "6",
        "--batch",
        "64",
        "--work-dir",
        s(&work),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("beyond the softmax approximation's range of 32") && err.contains("lower --lr"), "{err}");
    assert!(!work.exists(), "nothing may be generated before the schedule is checked");
}

fn refused(data: &Path, extra: &[&str], want: &str) {
    let work = data.join("work");
    let mut args = vec!["train", "--data", s(data), "--insecure-testing-only"];
    if !extra.contains(&"--preset") {
        args.extend_from_slice(&["--preset", "test-n12-boot"]);
    }
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--work-dir", s(&work)]);
    let out = hetune(&args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.trim().lines().last().unwrap().starts_with("error: "), "{err}");
    assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    assert!(!work.exists(), "{args:?}: keys or data were made before the error");
}

/// Each a one-line error before any key or ciphertext exists.
#[test]
fn bad_input_is_a_clear_error_before_any_heavy_work() {
    let dir = tmp("bad");
    snips_copy(&dir, 32, 64);

    // A preset without bootstrapping (6 levels cannot run a step).
    refused(&dir, &["--preset", "test-n12"], "reserves no limbs for bootstrapping");
    refused(&dir, &["--preset", "n15"], "reserves no limbs for bootstrapping");
    // The secure default needs no opt-in, an insecure preset does.
    let out = hetune(&["train", "--data", s(&dir), "--preset", "test-n12-boot"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("INSECURE"));

    // Feature widths that differ between splits.
    let m = read_matrix(&dir.join("test_x.npy")).unwrap();
    let narrow: Vec<f64> = (0..m.rows).flat_map(|i| m.data[i * m.cols..i * m.cols + 31].to_vec()).collect();
    write_matrix(
        &dir.join("test_x.npy"),
        &Matrix { rows: m.rows, cols: 31, data: narrow, dtype: m.dtype, is_vector: false },
    )
    .unwrap();
    refused(&dir, &[], "test rows have 31 features but train rows have 32");
    snips_copy(&dir, 32, 64);

    // Labels out of range: negative, and more classes than the trainer takes (16).
    let y = read_labels(&dir.join("valid_y.npy"));
    let mut bad = y.clone();
    bad[5] = -2;
    write_labels(&dir.join("valid_y.npy"), &bad);
    refused(&dir, &[], "negative label -2");
    bad[5] = 16;
    write_labels(&dir.join("valid_y.npy"), &bad);
    refused(&dir, &[], "more than the packing allows (16)");
    // Labels that do not match the rows.
    write_labels(&dir.join("valid_y.npy"), &y[..10]);
    refused(&dir, &[], "10 labels for 64 feature rows");
    write_labels(&dir.join("valid_y.npy"), &y);

    // Arguments out of range.
    refused(&dir, &["--lr=-1"], "bad --lr");
    refused(&dir, &["--epochs", "0"], "bad --epochs");
    // Weights the twin grows beyond the encrypted weights' bootstrap range (raw features at
    // lr 40: weights reach 13.5 while the logits stay within 18).
    refused(
        &dir,
        &["--lr", "40", "--standardize", "off", "--epochs", "3"],
        "the encrypted weights' bootstrapping holds",
    );
    // A batch larger than one block row of the packing (2^11 slots / 8 classes padded) and not
    // a multiple of one (a multiple comes in parts of one block row each).
    refused(&dir, &["--batch", "300"], "at most 256 rows");
    refused(&dir, &["--softmax", "exact"], "bad --softmax");
    refused(&dir, &["--standardize", "maybe"], "bad --standardize");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Encrypted training end to end at test-n12-boot on a slice of the SNIPS subset that fits
/// 2^11 slots (the first 63 features and the bias: 64 columns, 7 classes, batch 64; 128 train,
/// 64 valid, 128 test rows): one epoch of two steps, owner and server exchanging only wire bytes,
/// run as a first `hetune train` command cut after one step by `--max-steps` and a second run
/// (through the library, for the weights) that resumes from the
/// server's checkpoint (Nesterov's state, the step count and the position in the epoch).
///
/// Stated tolerances against the plaintext twin with the approximation's f64 twin (same schedule,
/// order and initialisation): decrypted weights within 1e-3 of the largest weight, the decrypted
/// validation loss within 1e-3, test accuracy within 2 of 128 rows; encrypted inference predicts
/// every row as the decrypted weights do in the clear.
#[test]
fn encrypted_training_resumes_and_matches_the_approximate_twin() {
    let dir = tmp("e2e");
    snips_rows(&dir, 63, &[("train", 128), ("valid", 64), ("test", 128)]);
    let mut opts = TrainOptions::new(&dir);
    opts.preset = "test-n12-boot".into();
    opts.insecure_testing_only = true;
    (opts.epochs, opts.batch, opts.work_dir) = (Some(1), Some(64), Some(dir.join("work")));
    let start = std::time::Instant::now();

    // The first half through the binary: one step, then --max-steps ends the run.
    let out = ok(&[
        "train",
        "--data",
        s(&dir),
        "--preset",
        "test-n12-boot",
        "--insecure-testing-only",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--max-steps",
        "1",
        "--infer-rows",
        "0",
        "--work-dir",
        s(&dir.join("work")),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["steps"].as_u64(), v["epochs_run"].as_u64()), (Some(1), Some(0)), "{v}");
    assert_eq!(v["encrypted"]["cut_by_max_steps"], serde_json::Value::Bool(true));
    // The twins stop at --max-steps too, so the runs compare step for step.
    assert_eq!(v["same_schedule_as_twin"], serde_json::Value::Bool(true));
    assert_eq!(
        (v["approx_twin"]["steps"].as_u64(), v["approx_twin"]["cut_by_max_steps"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!((v["exact_twin"]["steps"].as_u64(), v["exact_twin"]["epochs_run"].as_u64()), (Some(1), Some(0)));
    assert!(v["encrypted_test_acc"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)));
    assert!(v["seconds_per_step"].as_f64().unwrap() > 0.0 && v["bootstraps_per_step"].as_f64().unwrap() > 0.0);
    assert!(v["time_split"]["bootstrap_s"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 1 << 20 && v["total_s"].as_f64().unwrap() > 0.0);
    assert!(dir.join("work/server/checkpoint.bin").is_file());
    // Resuming with another schedule is refused.
    let other = TrainOptions { resume: true, lr: Some(0.5), ..opts.clone() };
    let e = hetune::train::run(&other, false, &EngineTrainers, &|_| {}).err().unwrap().to_string();
    assert!(e.contains("resume it with the same arguments"), "{e}");

    let report =
        // The resumed half holds at most about 24 MB of keys (a few at this preset): the least
        // recently used are dropped and read again from the bundle, with no change to the result.
        hetune::train::run(
            &TrainOptions { resume: true, key_memory: Some(24 << 20), ..opts.clone() },
            false,
            &EngineTrainers,
            &|_| {},
        )
        .unwrap();
    eprintln!("{}", report.summary());
    eprintln!("end to end in {:.1} s", start.elapsed().as_secs_f64());
    let enc = report.encrypted.as_ref().unwrap();
    assert_eq!((enc.steps, enc.epochs_run, enc.stopped_early, enc.cut_by_max_steps), (2, 1, false, false));
    assert_eq!(report.same_schedule_as_twin, Some(true));
    assert!(report.standardised);
    assert_eq!(enc.bootstraps_per_step, enc.planned_bootstraps_per_step as f64);

    let twin = &report.approx_twin.weights;
    let scale = twin.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = enc.weights.iter().zip(twin).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("weights: largest error {err:.2e}, largest weight {scale:.3}");
    assert!(scale > 0.0 && err <= 1e-3 * scale, "weights off by {err:e} (largest weight {scale})");
    for e in &report.epochs {
        let (c, t) = (e.encrypted.as_ref().unwrap(), e.approx_twin.unwrap());
        let twin_mse = t.valid.unwrap().mse;
        eprintln!("epoch {}: validation MSE encrypted {} twin {twin_mse}", e.epoch, c.encrypted_valid_mse);
        assert!(
            (c.encrypted_valid_mse - twin_mse).abs() < 1e-3,
            "epoch {}: {} vs {twin_mse}",
            e.epoch,
            c.encrypted_valid_mse
        );
    }
    let gap = (report.encrypted_test_acc.unwrap() - report.approx_test_acc).abs();
    assert!(gap <= 2.0 / 128.0 + 1e-12, "encrypted {:?} vs twin {}", report.encrypted_test_acc, report.approx_test_acc);
    let inf = enc.inference.unwrap();
    assert_eq!((inf.rows, inf.agreement), (64, 1.0));
    assert!(inf.max_abs_logit_error < 1e-2, "{}", inf.max_abs_logit_error);

    let v = serde_json::to_value(&report).unwrap();
    for key in [
        "plaintext_test_acc",
        "approx_test_acc",
        "encrypted_test_acc",
        "steps",
        "epochs_run",
        "stopped_early",
        "seconds_per_step",
        "bootstraps_per_step",
        "time_split",
        "peak_rss_bytes",
        "total_s",
        "epochs",
    ] {
        assert!(!v[key].is_null(), "{key} missing");
    }
    assert!(v["seconds_per_step"].as_f64().unwrap() > 0.0 && v["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A server whose key bundle lacks the step's rotations is refused when it opens, before any
/// step, and the error names a missing rotation.
#[test]
fn a_bundle_without_the_rotations_the_step_needs_is_refused_by_name() {
    use hetune::train::owner::DataOwner;
    use hetune::train::server::{Server, StepSpec, TrainerFactory};
    use hetune::train::settings::SoftmaxChoice;

    let dir = tmp("rotations");
    let params = hetune::train::training_preset("test-n12-boot", true).unwrap();
    let spec = StepSpec { classes: 7, cols: 64, batch: 64, lr: 0.1, softmax: SoftmaxChoice::Nas };
    let mut request = EngineTrainers.key_request(&params, &spec).unwrap();
    assert!(!request.rotations.is_empty());
    request.rotations.clear();
    let security = hetune::ckks_core::Security::InsecureForTestingOnly;
    let server_dir = dir.join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let json = serde_json::to_vec(&request).unwrap();
    DataOwner::generate(&params, &json, &dir.join("owner"), &server_dir.join("public.bundle"), security, &|_, _| {})
        .unwrap();
    let e = Server::open(&server_dir, &EngineTrainers, &spec, security, false, None).err().unwrap().to_string();
    assert!(e.contains("no rotation key for step"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
