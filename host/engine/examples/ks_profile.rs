//! Diagnostics for profiling key switching: times a hoisted rotation by 8 steps, a rotation, a
//! multiplication with relinearisation and an addition at the top level, `runs` times each:
//! `cargo run --release -p hetune-engine --example ks_profile -- n16-boot 2 5`.

use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::{encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::{EvaluationKeys, Evaluator, KeyRequest};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let preset = a.get(1).cloned().unwrap_or_else(|| "test-n12".into());
    let threads: usize = a.get(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    let runs: usize = a.get(3).and_then(|t| t.parse().ok()).unwrap_or(5);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let ctx = Arc::new(Context::new(Parameters::preset(&preset, Security::InsecureForTestingOnly).unwrap()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let spec =
        KeyRequest { relinearization: true, rotations: (1..=8).collect(), conjugation: false, encapsulation: None };
    let keys = EvaluationKeys::generate(&ctx, &sk, &spec, &mut rng).unwrap();
    let ev = Evaluator::new(ctx.clone(), keys).unwrap();
    ev.expand_keys().unwrap();
    let ls = ctx.params().log_n() - 1;
    let vals: Vec<Complex> = (0..1usize << ls).map(|j| Complex::new((j as f64 * 0.01).sin(), 0.0)).collect();
    let level = ctx.params().max_level();
    let pt = Encoder::new(&ctx).encode_complex(&vals, ls, level, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    let steps: Vec<i64> = (1..=8).collect();
    let time = |name: &str, f: &mut dyn FnMut()| {
        let mut v: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        v.sort_by(f64::total_cmp);
        println!("{name:<18} median {:>9.2} ms  min {:>9.2} ms", v[v.len() / 2], v[0]);
    };
    time("hoisted_rotate_8", &mut || drop(ev.rotate_hoisted(&ct, &steps).unwrap()));
    time("rotate", &mut || drop(ev.rotate(&ct, 1).unwrap()));
    time("mul_relin", &mut || drop(ev.mul_relin(&ct, &ct).unwrap()));
    time("add", &mut || drop(ev.add(&ct, &ct).unwrap()));
}
