//! Times the primitives bootstrapping's linear transforms use, at a given level (diagnostics):
//! `cargo run --release -p hetune-engine --example prim_time -- n16-boot 25 1`.
use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::{encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::{EvaluationKeys, Evaluator, KeyRequest};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn time<T>(name: &str, reps: usize, mut f: impl FnMut() -> T) {
    let _ = f();
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    println!("{name:<28} {:>9.2} ms", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let preset = a.get(1).cloned().unwrap_or_else(|| "n16-boot".into());
    let level: usize = a.get(2).and_then(|v| v.parse().ok()).unwrap_or(25);
    let threads: usize = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(1);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let ctx = Arc::new(Context::new(Parameters::preset(&preset, Security::InsecureForTestingOnly).unwrap()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let steps: Vec<i64> = (1..=8).collect();
    let keys = EvaluationKeys::generate(
        &ctx,
        &sk,
        &KeyRequest { relinearization: true, rotations: steps.clone(), conjugation: true, encapsulation: None },
        &mut rng,
    )
    .unwrap();
    let ev = Evaluator::new(ctx.clone(), keys).unwrap();
    ev.expand_keys().unwrap();
    let enc = Encoder::new(&ctx);
    let ls = ctx.params().log_n() - 1;
    let v: Vec<Complex> = (0..1usize << ls).map(|j| Complex::new((j as f64).sin(), 0.0)).collect();
    let pt = enc.encode_complex(&v, ls, level, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    println!("{preset} level {level}, {threads} thread(s)");
    time("encode_complex", 5, || enc.encode_complex(&v, ls, level, 2f64.powi(50)).unwrap());
    time("mul_plain", 5, || ev.mul_plain(&ct, &pt).unwrap());
    time("add", 5, || ev.add(&ct, &ct).unwrap());
    time("rotate(1)", 3, || ev.rotate(&ct, 1).unwrap());
    time("rotate_hoisted(1..8)", 2, || ev.rotate_hoisted(&ct, &steps).unwrap());
    time("mul_relin", 3, || ev.mul_relin(&ct, &ct).unwrap());
    time("rescale", 3, || ev.rescale(&ct).unwrap());
}
