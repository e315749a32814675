//! Wall-clock time of each bootstrapping stage (diagnostics):
//! `cargo run --release -p hetune-engine --example boot_time -- n16-boot 2`.

use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::{encrypt_sk, Complex, Encoder};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::circuits::bootstrap::{generate_keys, BootstrapConfig, Bootstrapper};
use hetune_engine::evaluator::Evaluator;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "test-n12-boot".into());
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let ctx = Arc::new(Context::new(Parameters::preset(&preset, Security::InsecureForTestingOnly).unwrap()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let a: Vec<String> = std::env::args().collect();
    let mut cfg = BootstrapConfig::default();
    if let (Some(r), Some(d)) = (a.get(3).and_then(|v| v.parse().ok()), a.get(4).and_then(|v| v.parse().ok())) {
        cfg.double_angle = r;
        cfg.degree = d;
    }
    let keys = generate_keys(&ctx, &sk, &cfg, &mut rng).unwrap();
    let ev = Evaluator::new(ctx.clone(), keys.eval).unwrap();
    ev.expand_keys();
    let boot = Bootstrapper::new(&ev, keys.boot, cfg).unwrap();
    let enc = Encoder::new(&ctx);
    let log_slots = ctx.params().log_n() - 1;
    let v: Vec<Complex> = (0..1usize << log_slots).map(|j| Complex::new((j as f64).sin(), 0.0)).collect();
    let pt = enc.encode_complex(&v, log_slots, 0, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, &sk, &pt, &mut rng).unwrap().expand(&ctx);
    for _ in 0..2 {
        let start = Instant::now();
        let mut last = start;
        boot.bootstrap_traced(&ev, &ct, &mut |stage, _| {
            let now = Instant::now();
            println!("{stage:<14} {:>8.3} s", (now - last).as_secs_f64());
            last = now;
        })
        .unwrap();
        println!("total          {:>8.3} s", start.elapsed().as_secs_f64());
    }
}
