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
    let pk = cfg.packing(slots).expect("packing");
    let sparse_slots = hetune_engine::learning::compact::CompactLayout::new(pk, classes, cols)
        .map(|l| l.sparse_slots())
        .unwrap_or(slots);
    let sparse: BTreeSet<i64> = if sparse_slots < slots {
        let c = BootstrapConfig { log_slots: Some(sparse_slots.trailing_zeros()), ..BootstrapConfig::default() };
        rotation_steps(&c, log_n).into_iter().collect()
    } else {
        BTreeSet::new()
    };
    let limbs = params.q().len() + params.p().len();
    let key = 2 * params.dnum() * limbs * params.n() * 8;
    let train: BTreeSet<i64> = all.iter().copied().filter(|s| !full.contains(s) && !sparse.contains(s)).collect();
    let shared = full.intersection(&sparse).count();
    println!("{classes} classes, {cols} columns, batch {batch}, {slots} slots, sparse bootstrap {sparse_slots} slots");
    println!("one switching key expanded: {:.1} MB ({} digits x {} limbs)", key as f64 / 1e6, params.dnum(), limbs);
    println!("rotation keys: {} in all", all.len());
    println!("  full-slot bootstrap: {} ({:.2} GB)", full.len(), full.len() as f64 * key as f64 / 1e9);
    println!("  sparse bootstrap: {} ({} shared with full)", sparse.len(), shared);
    println!("  training only: {} ({:.2} GB): {:?}", train.len(), train.len() as f64 * key as f64 / 1e9, train);
    let plan = ServerTrainer::step_plan(&params, &cfg).expect("plan");
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
    println!("  all with relinearisation and conjugation: {:.2} GB", (all.len() + 2) as f64 * key as f64 / 1e9);
}
