//! `hetune demo` end to end at the insecure test preset (its loudly named flag): the daemon as a
//! child process on a free loopback port, the owner's client, and the closing lines with both
//! accuracies and the time.

use std::process::Command;

#[test]
fn the_demo_runs_daemon_and_client_and_prints_both_accuracies() {
    let dir = std::env::temp_dir().join(format!("hetune-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_hetune"))
        .args(["demo", "--insecure-tiny-preset-for-tests-only", "--dir", dir.to_str().unwrap()])
        .output()
        .expect("run hetune demo");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "demo failed: {stderr}");
    eprintln!("{stdout}");
    assert!(stderr.contains("WARNING") && stdout.contains("INSECURE"), "the insecure preset is announced");
    let line = stdout.lines().find(|l| l.starts_with("encrypted model test accuracy:")).expect("the accuracy line");
    let pcts: Vec<f64> =
        line.split_whitespace().filter_map(|w| w.strip_suffix('%')).map(|v| v.parse().unwrap()).collect();
    assert_eq!(pcts.len(), 3, "{line}");
    assert!(pcts.iter().all(|p| (0.0..=100.0).contains(p)), "{line}");
    // Encrypted and the approximation's twin: within two of 128 test rows.
    assert!((pcts[0] - pcts[2]).abs() <= 200.0 / 128.0 + 1e-9, "{line}");
    assert!(stdout.lines().any(|l| l.starts_with("time: ")), "{stdout}");
    for f in ["out/model.npy", "out/report.json", "out/curves.png"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // The daemon child is gone: its store is not locked by a live process.
    std::fs::remove_dir_all(dir).unwrap();
}

/// The default demo's shape at n16-boot (768 features and the bias, 7 classes, one batch of all
/// 640 training rows, lr 8) passes the trainer's own check (levels, slots, the key request)
/// without any key or ciphertext.
#[test]
fn the_default_demo_shape_is_a_valid_n16_boot_job() {
    use hetune::train::server::{StepSpec, TrainerFactory};
    let params = hetune::train::training_preset("n16-boot", false).unwrap();
    let spec =
        StepSpec { classes: 7, cols: 769, batch: 640, lr: 8.0, softmax: hetune::train::settings::SoftmaxChoice::Nas };
    let request = hetune::train::engine::EngineTrainers.key_request(&params, &spec).unwrap();
    assert!(!request.rotations.is_empty());
}
