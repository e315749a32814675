//! Criterion benchmarks of the evaluator's key operations at `test-n12` (quick) and at
//! `n16-boot` (N = 2^16, 25 limbs, dnum 4) at its top level. `cargo bench -p hetune-engine --bench
//! evaluator`; `hetune bench ops` gives the same operations as JSON with a chosen thread count.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hetune_core::ckks::{encrypt_sk, Ciphertext, Complex, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::{EvaluationKeys, Evaluator, KeyRequest};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Setup {
    ev: Evaluator,
    ct: Ciphertext,
    ct2: Ciphertext,
}

fn setup(preset: &str) -> Setup {
    let ctx = Arc::new(Context::new(Parameters::preset(preset, Security::InsecureForTestingOnly).unwrap()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let spec =
        KeyRequest { relinearization: true, rotations: (1..=8).collect(), conjugation: true, encapsulation: None };
    let keys = EvaluationKeys::generate(&ctx, &sk, &spec, &mut rng).unwrap();
    let ev = Evaluator::new(ctx.clone(), keys).unwrap();
    ev.expand_keys().unwrap();
    let ls = ctx.params().log_n() - 1;
    let vals: Vec<Complex> = (0..1usize << ls).map(|j| Complex::new((j as f64 * 0.01).sin(), 0.0)).collect();
    let level = ctx.params().max_level();
    let pt = Encoder::new(&ctx).encode_complex(&vals, ls, level, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    let ct2 = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    Setup { ev, ct, ct2 }
}

fn bench_preset(c: &mut Criterion, preset: &str, samples: usize) {
    let s = setup(preset);
    let steps: Vec<i64> = (1..=8).collect();
    let prod = s.ev.mul_relin(&s.ct, &s.ct2).unwrap();
    let mut g = c.benchmark_group(format!("evaluator/{preset}/top"));
    g.sample_size(samples);
    g.bench_function("add", |b| b.iter(|| s.ev.add(&s.ct, &s.ct2).unwrap()));
    g.bench_function("mul_relin", |b| b.iter(|| s.ev.mul_relin(&s.ct, &s.ct2).unwrap()));
    g.bench_function("rescale", |b| b.iter(|| s.ev.rescale(&prod).unwrap()));
    g.bench_function("rotate", |b| b.iter(|| s.ev.rotate(&s.ct, 1).unwrap()));
    g.bench_function("hoisted_rotate_8", |b| b.iter(|| s.ev.rotate_hoisted(&s.ct, &steps).unwrap()));
    g.bench_function("conjugate", |b| b.iter(|| s.ev.conjugate(&s.ct).unwrap()));
    g.finish();
}

fn small(c: &mut Criterion) {
    bench_preset(c, "test-n12", 50);
}

fn large(c: &mut Criterion) {
    bench_preset(c, "n16-boot", 10);
}

criterion_group!(benches, small, large);
criterion_main!(benches);
