//! Diagnostics: CoeffToSlot's first matrix at `n16-boot`'s top level, double-hoisted against
//! babies rotated one by one, alternately in one process:
//! `cargo run --release -p hetune-engine --example dh_profile -- n16-boot 2 3`.

use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::{encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::circuits::dft::coeff_to_slot;
use hetune_engine::circuits::linear::LinearTransform;
use hetune_engine::evaluator::{EvaluationKeys, Evaluator, KeyRequest};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let preset = a.get(1).cloned().unwrap_or_else(|| "test-n12".into());
    let threads: usize = a.get(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    let runs: usize = a.get(3).and_then(|t| t.parse().ok()).unwrap_or(3);
    let which: usize = a.get(4).and_then(|t| t.parse().ok()).unwrap_or(1);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let ctx = Arc::new(Context::new(Parameters::preset(&preset, Security::InsecureForTestingOnly).unwrap()).unwrap());
    let ls = ctx.params().log_n() - 1;
    let t = LinearTransform::new(coeff_to_slot(1 << ls, 3, 0.01).swap_remove(which), ls).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let spec = KeyRequest { relinearization: false, rotations: t.rotations(), conjugation: false, encapsulation: None };
    let keys = EvaluationKeys::generate(&ctx, &sk, &spec, &mut rng).unwrap();
    let ev = Evaluator::new(ctx.clone(), keys).unwrap();
    ev.expand_keys().unwrap();
    let vals: Vec<Complex> = (0..1usize << ls).map(|j| Complex::new((j as f64 * 0.01).sin(), 0.0)).collect();
    let level = ctx.params().max_level();
    let pt = Encoder::new(&ctx).encode_complex(&vals, ls, level, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    let scale = ctx.params().scale();
    // Warm the cache (the double-hoisted encoding also serves the other path).
    drop(t.evaluate_with(&ev, &ct, scale, true).unwrap());
    println!("rotations {}, cached diagonals {:.2} GB", t.rotations().len(), t.cached_bytes() as f64 / 1e9);
    for _ in 0..runs {
        for double in [true, false] {
            let s = Instant::now();
            drop(t.evaluate_with(&ev, &ct, scale, double).unwrap());
            println!("double_hoisting {double:<5} {:>9.1} ms", s.elapsed().as_secs_f64() * 1e3);
        }
    }
}
