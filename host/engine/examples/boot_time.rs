//! Wall-clock time of each bootstrapping stage (diagnostics):
//! `cargo run --release -p hetune-engine --example boot_time -- n16-boot 2`.

use std::sync::Arc;
use std::time::Instant;

use hetune_core::ckks::{encrypt_sk, Complex, Encoder};
use hetune_engine::circuits::bootstrap::{BootstrapConfig, Bootstrapper};

fn main() {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "test-n12-boot".into());
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    // The owner and its keys from the test kit (insecure presets allowed: diagnostics only).
    let owner = hetune_testkit::owner(&preset);
    let (ctx, sk, mut rng) = (owner.ctx.clone(), &owner.sk, owner.rng(1));
    let a: Vec<String> = std::env::args().collect();
    let mut cfg = BootstrapConfig::default();
    if let (Some(r), Some(d)) = (a.get(3).and_then(|v| v.parse().ok()), a.get(4).and_then(|v| v.parse().ok())) {
        cfg.double_angle = r;
        cfg.degree = d;
    }
    let ev = Arc::new(owner.evaluator(&cfg.key_request(ctx.params().log_n())));
    ev.expand_keys().unwrap();
    let boot = Bootstrapper::new(ev.clone(), cfg).unwrap();
    let enc = Encoder::new(&ctx);
    let log_slots = ctx.params().log_n() - 1;
    let v: Vec<Complex> = (0..1usize << log_slots).map(|j| Complex::new((j as f64).sin(), 0.0)).collect();
    let pt = enc.encode_complex(&v, log_slots, 0, ctx.params().scale()).unwrap();
    let ct = encrypt_sk(&ctx, sk, &pt, &mut rng).unwrap().expand(&ctx);
    for _ in 0..2 {
        let start = Instant::now();
        let mut last = start;
        boot.bootstrap_traced(&ct, &mut |stage, _| {
            let now = Instant::now();
            println!("{stage:<14} {:>8.3} s", (now - last).as_secs_f64());
            last = now;
        })
        .unwrap();
        println!("total          {:>8.3} s", start.elapsed().as_secs_f64());
    }
}
