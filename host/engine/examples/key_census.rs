//! The evaluation keys a training configuration asks for, by user: full-slot bootstrapping, the
//! weights' sparse bootstrapping, and the training step itself, with their sizes in memory at
//! `n16-boot` (every switching key holds `dnum` digits of `b` and, once used, of `a`, over Q ∪ P).
//! `cargo run --release -p hetune-engine --example key_census [classes cols batch]`
use hetune_core::{Parameters, Security};
use hetune_engine::circuits::bootstrap::{rotation_steps, BootstrapConfig};
use hetune_engine::learning::trainer::{ServerTrainer, TrainConfig};
use std::collections::BTreeSet;

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("numbers")).collect();
    let (classes, cols, batch) = if a.len() == 3 { (a[0], a[1], a[2]) } else { (7, 769, 1024) };
    let params = Parameters::preset("n16-boot", Security::Require128Bits).expect("preset");
    let log_n = params.log_n();
    let slots = params.max_slots();
    let cfg = TrainConfig::new(classes, cols, batch, 1.0);
    let all: BTreeSet<i64> = ServerTrainer::key_request(&params, &cfg).expect("plan").rotations.into_iter().collect();
    let full: BTreeSet<i64> = rotation_steps(&BootstrapConfig::default(), log_n).into_iter().collect();
    let plan = ServerTrainer::step_plan(&params, &cfg).expect("plan");
    let limbs = params.q().len() + params.p().len();
    let key = 2 * params.dnum() * limbs * params.n() * 8;
    let gb = |k: usize| k as f64 * key as f64 / 1e9;
    let train: BTreeSet<i64> = plan.rotations.iter().copied().filter(|s| !full.contains(s)).collect();
    let sparse: Vec<i64> = all.iter().copied().filter(|s| !full.contains(s) && !train.contains(s)).collect();
    println!(
        "{classes} classes, {cols} columns, batch {batch}, {slots} slots, weights bootstrapped on {} slots",
        plan.weight_bootstrap_slots
    );
    println!("one switching key expanded: {:.1} MB ({} digits x {} limbs)", key as f64 / 1e6, params.dnum(), limbs);
    println!("rotation keys: {} in all", all.len());
    println!("  full-slot bootstrap: {} ({:.2} GB)", full.len(), gb(full.len()));
    println!("  training, beyond those: {} ({:.2} GB): {:?}", train.len(), gb(train.len()), train);
    println!("  sparse bootstrap, beyond those: {} ({:.2} GB): {:?}", sparse.len(), gb(sparse.len()), sparse);
    let c = plan.counts;
    println!(
        "step: {} bootstraps ({} softmax, {} weights at {} slots); CMult {} Mult {} Rot {} (+{} conj)",
        plan.bootstraps,
        plan.softmax_bootstraps,
        plan.weight_bootstraps,
        plan.weight_bootstrap_slots,
        c.cmult,
        c.mult,
        c.rot,
        c.conj
    );
    println!("  all with relinearisation and conjugation: {:.2} GB", gb(all.len() + 2));
}
