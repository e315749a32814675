//! Strictly encrypted training at `test-n12-boot` (N = 2^12, 2^11 slots, n16-boot's chain): a
//! few Nesterov steps on real SNIPS-MPNet rows (the first 127 features of the small subset in
//! `host/service/tests/data`, with the bias: 128 columns, batches of 32, 7 classes) against the
//! plaintext twin with the same softmax approximation, the planner's bootstrap count against
//! the real one, the encrypted softmax against its twin, encrypted inference against plaintext
//! predictions, and the checks that refuse bad input before any heavy work.

use std::sync::Arc;

use hetune_core::{Parameters, Security};
use hetune_engine::circuits::bootstrap::{BootstrapConfig, Bootstrapper};
use hetune_engine::evaluator::{Evaluator, KeyRequest};
use hetune_engine::learning::dataset::Dataset;
use hetune_engine::learning::softmax::circuit::{hetal_softmax, lean_softmax, nas_softmax};
use hetune_engine::learning::softmax::{HetalSoftmax, LeanNas, NasConfig, NasSoftmax, Softmax};
use hetune_engine::learning::trainer::{model_from_compact, pack_batch, ServerTrainer, TrainConfig};
use hetune_engine::learning::twin::{self, Order, TwinConfig, ValidLoss};
use hetune_engine::learning::{Chain, CkksBackend, EncMatrix, HeBackend, Packing, Simulator, Tiling};
use hetune_engine::Error;
use hetune_testkit::owner;

const PRESET: &str = "test-n12-boot";
const FEATURES: usize = 127;
const CLASSES: usize = 7;
const BATCH: usize = 32;

/// A little-endian `.npy` array (`<f4` or `<i8`) as f64 with its shape.
fn read_npy(path: &str) -> (Vec<f64>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{path}");
    let (len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&bytes[start..start + len]).unwrap();
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let data = &bytes[start + len..];
    let values = if header.contains("'<f4'") {
        data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
    } else if header.contains("'<i8'") {
        data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    } else {
        panic!("{path}: unexpected dtype in {header}")
    };
    (values, shape)
}

/// Rows `0..rows` of a SNIPS-MPNet split, first `FEATURES` features.
fn snips(split: &str, rows: usize) -> Dataset {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../service/tests/data/snips_mpnet");
    let (x, shape) = read_npy(&format!("{dir}/{split}_x.npy"));
    let (y, _) = read_npy(&format!("{dir}/{split}_y.npy"));
    let cols = shape[1];
    let x: Vec<f64> = (0..rows).flat_map(|r| x[r * cols..r * cols + FEATURES].to_vec()).collect();
    let labels: Vec<i64> = y[..rows].iter().map(|&v| v as i64).collect();
    Dataset::new(split, x, rows, FEATURES, &labels, CLASSES).unwrap()
}

fn params() -> Parameters {
    Parameters::preset(PRESET, Security::InsecureForTestingOnly).unwrap()
}

fn config() -> TrainConfig {
    TrainConfig::new(CLASSES, FEATURES + 1, BATCH, 1.0)
}

fn evaluator(request: &KeyRequest) -> Arc<Evaluator> {
    Arc::new(owner(PRESET).evaluator(request))
}

fn encrypt_batch(
    data: &Dataset,
    range: std::ops::Range<usize>,
    pk: Packing,
    seed: u64,
) -> (EncMatrix<hetune_core::ckks::Ciphertext>, EncMatrix<hetune_core::ckks::Ciphertext>) {
    let o = owner(PRESET);
    let b = pack_batch(data, range, pk, o.ctx.params().default_level()).unwrap();
    let mut rng = o.rng(seed);
    let x = EncMatrix::encrypt(&o.ctx, &o.sk, &b.x, &b.x_layout, &mut rng).unwrap();
    let y = EncMatrix::encrypt(&o.ctx, &o.sk, &b.y, &b.y_layout, &mut rng).unwrap();
    (x, y)
}

fn bits(err: f64, scale: f64) -> f64 {
    (scale / err).log2()
}

#[test]
fn encrypted_steps_match_the_twin_the_plan_and_plaintext_inference() {
    let steps = 3;
    let cfg = config();
    let request = ServerTrainer::key_request(&params(), &cfg).unwrap();
    let ev = evaluator(&request);
    let mut server = ServerTrainer::new(ev.clone(), cfg.clone()).unwrap();
    let train = snips("train", BATCH * steps);
    let pk = server.packing();
    let plan = server.plan().clone();
    for k in 0..steps {
        let (x, y) = encrypt_batch(&train, k * BATCH..(k + 1) * BATCH, pk, k as u64);
        let t = std::time::Instant::now();
        let report = server.step(&x, &y).unwrap();
        eprintln!("step {k}: {:.2} s, {report:?}", t.elapsed().as_secs_f64());
        // (b) The simulator's count is the real count.
        assert_eq!(report.bootstraps, plan.bootstraps, "step {k}: plan {:?}", plan.sites);
    }
    // (a) The weights against the twin with the same softmax, same batches and schedule.
    let o = owner(PRESET);
    let slots = o.decrypt_real(server.weights());
    let got = model_from_compact(&cfg, server.layout(), &slots).unwrap();
    let tcfg = TwinConfig {
        lr: cfg.lr,
        batch: BATCH,
        epochs: 1,
        order: Order::File,
        softmax: Softmax::default_for(CLASSES).unwrap(),
        patience: None,
        valid_loss: ValidLoss::Mse,
        max_steps: None,
    };
    let want = twin::train(&train, None, None, &tcfg).unwrap().model;
    let err = got.w.iter().zip(&want.w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let top = want.w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!("weights: max |w| {top:.4}, max error {err:.3e} ({:.1} bits below the largest weight)", bits(err, top));
    assert!(top > 0.05, "the steps moved the weights: {top}");
    assert!(bits(err, top) >= 12.0, "weights {err:e} off (largest {top})");

    // A checkpoint resumes at the same weights and step.
    let resumed = ServerTrainer::from_state(ev.clone(), cfg.clone(), server.state()).unwrap();
    assert_eq!(resumed.state().step, steps as u64);
    assert_eq!(o.decrypt_real(resumed.weights()), slots);
    // Weights from elsewhere below the level a step needs are refreshed once for the step, not
    // once by its part and again by its update.
    let mut low = server.state();
    low.v = ev.drop_level(&low.v, 1).unwrap();
    let mut resumed = ServerTrainer::from_state(ev.clone(), cfg.clone(), low).unwrap();
    let (x, y) = encrypt_batch(&train, 0..BATCH, pk, 7);
    assert_eq!(resumed.step(&x, &y).unwrap().bootstraps, plan.bootstraps + 1);

    // (d) Encrypted inference: predictions equal the plaintext model's (the twin's weights).
    let test = snips("test", BATCH);
    let (x, y) = encrypt_batch(&test, 0..BATCH, pk, 99);
    let logits = server.logits(&x).unwrap().decrypt(&o.ctx, &o.sk).unwrap();
    let mut z = vec![0.0; CLASSES];
    let mut worst = 0.0f64;
    let argmax = |v: &[f64]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
    for r in 0..BATCH {
        want.logits(test.row(r), &mut z);
        let row = &logits[r * CLASSES..(r + 1) * CLASSES];
        worst = row.iter().zip(&z).fold(worst, |m, (a, b)| m.max((a - b).abs()));
        let mut sorted = z.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 1e-3 {
            assert_eq!(argmax(row), argmax(&z), "row {r}");
        }
    }
    eprintln!("inference: logits within {worst:.3e} of the plaintext model's");
    assert!(worst < 1e-3, "{worst:e}");

    // The validation loss: the encrypted sum of squared errors against the twin's MSE.
    let loss = o.decrypt_real(&server.validation_loss(&x, &y).unwrap())[0];
    let want_loss = twin::evaluate(&want, &test, &Softmax::default_for(CLASSES).unwrap()).mse * BATCH as f64;
    eprintln!("validation SSE {loss:.6} (plaintext {want_loss:.6})");
    assert!((loss - want_loss).abs() < 1e-3 * want_loss.max(1.0), "{loss} vs {want_loss}");
}

#[test]
fn encrypted_softmax_within_its_bound_of_the_twin() {
    let o = owner(PRESET);
    let nas = NasSoftmax::new(CLASSES, NasConfig::default_for_training(CLASSES)).unwrap();
    let pk = Packing::hetal(CLASSES, 256, 2048).unwrap();
    let rows = pk.s0;
    // Logits across the range [-30, 30]: every row a spread of values.
    let z: Vec<f64> = (0..rows * CLASSES).map(|i| 30.0 * (((i * 7919) % 1000) as f64 / 500.0 - 1.0)).collect();
    let block = pk.pack(&z, rows, CLASSES, Tiling::Horizontal).unwrap();
    let mut request = BootstrapConfig::default().key_request(o.ctx.params().log_n());
    // The rotations from the simulator's run of the same circuit.
    let chain = Chain::of(o.ctx.params(), &BootstrapConfig::default());
    let sim = Simulator::new(2048, chain);
    let planned = nas_softmax(&sim, &nas, &sim.at(5), pk).unwrap();
    let steps = sim.rotation_steps();
    request.merge(&KeyRequest { relinearization: true, rotations: steps, conjugation: true, encapsulation: None });
    let ev = evaluator(&request);
    let boot = Bootstrapper::with_output_factor(ev.clone(), BootstrapConfig::default(), 0.5).unwrap();
    let ops = CkksBackend::new(&ev).with_bootstrapper(&boot).unwrap();
    let x = o.encrypt_real(&block[0], o.log_slots(), 5, &mut o.rng(5));
    let t = std::time::Instant::now();
    let p = nas_softmax(&ops, &nas, &x, pk).unwrap();
    let secs = t.elapsed().as_secs_f64();
    // The simulator's level and scale are the ciphertext's, exactly.
    assert_eq!((p.level, p.scale), (planned.level, planned.scale));
    let got = pk.unpack(&[o.decrypt_real(&p)], rows, CLASSES, Tiling::Horizontal).unwrap();
    let mut want = vec![0.0; CLASSES];
    let (mut worst, mut sum) = (0.0f64, 0.0);
    for r in 0..rows {
        nas.eval_row(&z[r * CLASSES..(r + 1) * CLASSES], &mut want);
        for (g, w) in got[r * CLASSES..(r + 1) * CLASSES].iter().zip(&want) {
            worst = worst.max((g - w).abs());
            sum += (g - w).abs();
        }
    }
    let mean = sum / (rows * CLASSES) as f64;
    assert_eq!(ops.boot_log().events, sim.boot_log().events);
    eprintln!(
        "encrypted softmax: {} bootstraps, {secs:.2} s; max error {worst:.3e} ({:.1} bits), mean {mean:.3e} ({:.1} bits)",
        ops.boot_log().count(),
        bits(worst, 1.0),
        bits(mean, 1.0)
    );
    assert!(bits(worst, 1.0) >= 18.0, "max error {worst:e}");

    // Two real ciphertexts through one full-slot complex bootstrap, split back by conjugation.
    let a: Vec<f64> = (0..2048).map(|i| ((i * 37 % 101) as f64 - 50.0) / 60.0).collect();
    let b: Vec<f64> = (0..2048).map(|i| ((i * 53 % 97) as f64 - 48.0) / 55.0).collect();
    let (ca, cb) =
        (o.encrypt_real(&a, o.log_slots(), 0, &mut o.rng(7)), o.encrypt_real(&b, o.log_slots(), 0, &mut o.rng(8)));
    let (ra, rb) = ops.bootstrap_pair(&ca, &cb, "test").unwrap();
    assert_eq!((ra.level, rb.level), (ops.bootstrap_level().unwrap(), ops.bootstrap_level().unwrap()));
    for (got, want) in [(o.decrypt_real(&ra), &a), (o.decrypt_real(&rb), &b)] {
        let err = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        eprintln!("bootstrap_pair: max error {err:.3e} ({:.1} bits)", bits(err, 1.0));
        assert!(bits(err, 1.0) >= 15.0, "{err:e}");
    }
}

#[test]
fn encrypted_lean_softmax_within_its_bound_of_the_twin() {
    // The default softmax (lean normalize-and-square) at 7 classes (s1 = pad_c = 8), 10 and 16
    // classes (s1 = pad_c = 16; at 16 round 2 refreshes sq and its linear factor as one complex
    // bootstrap), logits spread over [-30, 30], from level 5 as DiagABT leaves them on n16-boot's
    // chain.
    let o = owner(PRESET);
    let chain = Chain::of(o.ctx.params(), &BootstrapConfig::default());
    let cases: Vec<(usize, usize)> = vec![(7, 256), (10, 128), (16, 128)];
    let mut request = BootstrapConfig::default().key_request(o.ctx.params().log_n());
    let mut plans = Vec::new();
    for &(classes, batch) in &cases {
        let nas = LeanNas::default_for(classes).unwrap();
        let pk = Packing::hetal(classes, batch, 2048).unwrap();
        let sim = Simulator::new(2048, chain.clone());
        let planned = lean_softmax(&sim, &nas, &sim.at(5), pk).unwrap();
        request.merge(&KeyRequest {
            relinearization: true,
            rotations: sim.rotation_steps(),
            conjugation: true,
            encapsulation: None,
        });
        plans.push((nas, pk, sim, planned));
    }
    let ev = evaluator(&request);
    let boot = Bootstrapper::with_output_factor(ev.clone(), BootstrapConfig::default(), 0.5).unwrap();
    for (nas, pk, sim, planned) in plans {
        let ops = CkksBackend::new(&ev).with_bootstrapper(&boot).unwrap();
        let (classes, rows) = (nas.classes, pk.s0);
        let z: Vec<f64> = (0..rows * classes).map(|i| 30.0 * (((i * 7919) % 1000) as f64 / 500.0 - 1.0)).collect();
        let block = pk.pack(&z, rows, classes, Tiling::Horizontal).unwrap();
        let x = o.encrypt_real(&block[0], o.log_slots(), 5, &mut o.rng(5));
        let t = std::time::Instant::now();
        let p = lean_softmax(&ops, &nas, &x, pk).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!((p.level, p.scale), (planned.level, planned.scale));
        let got = pk.unpack(&[o.decrypt_real(&p)], rows, classes, Tiling::Horizontal).unwrap();
        let mut want = vec![0.0; classes];
        let (mut worst, mut sum) = (0.0f64, 0.0);
        for r in 0..rows {
            nas.eval_row(&z[r * classes..(r + 1) * classes], &mut want);
            for (g, w) in got[r * classes..(r + 1) * classes].iter().zip(&want) {
                worst = worst.max((g - w).abs());
                sum += (g - w).abs();
            }
        }
        let mean = sum / (rows * classes) as f64;
        assert_eq!(ops.boot_log().events, sim.boot_log().events);
        eprintln!(
            "encrypted lean softmax, {classes} classes: {} bootstraps, {secs:.2} s; max error {worst:.3e} ({:.1} bits), mean {mean:.3e} ({:.1} bits)",
            ops.boot_log().count(),
            bits(worst, 1.0),
            bits(mean, 1.0)
        );
        assert!(bits(worst, 1.0) >= 16.0, "{classes} classes: max error {worst:e}");
    }
}

#[test]
fn encrypted_hetal_softmax_within_its_bound_of_the_twin() {
    let o = owner(PRESET);
    let h = HetalSoftmax::published(CLASSES);
    let pk = Packing::hetal(CLASSES, 256, 2048).unwrap();
    let rows = pk.s0;
    let z: Vec<f64> = (0..rows * CLASSES).map(|i| 100.0 * (((i * 7919) % 1000) as f64 / 500.0 - 1.0)).collect();
    let block = pk.pack(&z, rows, CLASSES, Tiling::Horizontal).unwrap();
    let chain = Chain::of(o.ctx.params(), &BootstrapConfig::default());
    let sim = Simulator::new(2048, chain);
    hetal_softmax(&sim, &h, &sim.at(5), pk).unwrap();
    let mut request = BootstrapConfig::default().key_request(o.ctx.params().log_n());
    request.merge(&KeyRequest {
        relinearization: true,
        rotations: sim.rotation_steps(),
        conjugation: true,
        encapsulation: None,
    });
    let ev = evaluator(&request);
    let boot = Bootstrapper::with_output_factor(ev.clone(), BootstrapConfig::default(), 0.5).unwrap();
    let ops = CkksBackend::new(&ev).with_bootstrapper(&boot).unwrap();
    let x = o.encrypt_real(&block[0], o.log_slots(), 5, &mut o.rng(6));
    let t = std::time::Instant::now();
    let p = hetal_softmax(&ops, &h, &x, pk).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(ops.boot_log().events, sim.boot_log().events);
    let got = pk.unpack(&[o.decrypt_real(&p)], rows, CLASSES, Tiling::Horizontal).unwrap();
    let mut want = vec![0.0; CLASSES];
    let (mut worst, mut sum) = (0.0f64, 0.0);
    for r in 0..rows {
        h.eval_row(&z[r * CLASSES..(r + 1) * CLASSES], &mut want);
        for (g, w) in got[r * CLASSES..(r + 1) * CLASSES].iter().zip(&want) {
            worst = worst.max((g - w).abs());
            sum += (g - w).abs();
        }
    }
    let mean = sum / (rows * CLASSES) as f64;
    eprintln!(
        "encrypted HETAL softmax: {} bootstraps, {secs:.2} s; max error {worst:.3e} ({:.1} bits), mean {mean:.3e} ({:.1} bits)",
        ops.boot_log().count(),
        bits(worst, 1.0),
        bits(mean, 1.0)
    );
    assert!(bits(worst, 1.0) >= 10.0, "max error {worst:e}");
}

#[test]
fn bad_input_is_refused_before_any_heavy_work() {
    let cfg = config();
    // More classes than the compact layout holds at 2^11 slots.
    let wide = TrainConfig::new(16, 769, 32, 1.0);
    match ServerTrainer::key_request(&params(), &wide) {
        Err(Error::InvalidPacking(_)) => {}
        other => panic!("expected a packing error, got {other:?}"),
    }
    // A parameter set without bootstrapping.
    let small = Parameters::preset("test-n12", Security::InsecureForTestingOnly).unwrap();
    match ServerTrainer::key_request(&small, &cfg) {
        Err(Error::InvalidConfig { need, .. }) => assert!(need.contains("bootstrapping"), "{need}"),
        other => panic!("expected a level error, got {other:?}"),
    }
    // A learning rate that is not positive.
    let mut bad_lr = cfg.clone();
    bad_lr.lr = -1.0;
    assert!(matches!(ServerTrainer::key_request(&params(), &bad_lr), Err(Error::InvalidConfig { .. })));
    // A key set without the training rotations: the error names a step the plan needs.
    let full = ServerTrainer::key_request(&params(), &cfg).unwrap();
    let boot_only = BootstrapConfig::default().key_request(params().log_n());
    let t = std::time::Instant::now();
    match ServerTrainer::new(evaluator(&boot_only), cfg.clone()) {
        Err(Error::MissingRotationKey { step, .. }) => {
            assert!(full.rotations.contains(&step) && !boot_only.rotations.contains(&step), "{step}")
        }
        Err(e) => panic!("expected a missing rotation, got {e}"),
        Ok(_) => panic!("expected a missing rotation"),
    }
    assert!(t.elapsed().as_secs_f64() < 30.0);
}
