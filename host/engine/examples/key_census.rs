//! The evaluation keys a training configuration asks for, by user: the training step itself and
//! bootstrapping (sparse, and full-slot when anything needs it), with their sizes in memory at
//! `n16-boot` (every switching key holds `dnum` digits of `b` and, once used, of `a`, over Q ∪ P).
//! `cargo run --release -p hetune-engine --example key_census [classes cols batch] [tiled]`
use hetune_core::{Parameters, Security};
use hetune_engine::circuits::bootstrap::{rotation_steps, BootstrapConfig};
use hetune_engine::learning::trainer::{ServerTrainer, TrainConfig};
use std::collections::BTreeSet;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tiled = args.iter().any(|a| a == "tiled");
    let a: Vec<usize> = args.iter().filter(|a| *a != "tiled").map(|s| s.parse().expect("numbers")).collect();
    let (classes, cols, batch) = if a.len() == 3 { (a[0], a[1], a[2]) } else { (7, 769, 1024) };
    let params = Parameters::preset("n16-boot", Security::Require128Bits).expect("preset");
    let log_n = params.log_n();
    let slots = params.max_slots();
    let cfg = TrainConfig { fold_softmax: !tiled, ..TrainConfig::new(classes, cols, batch, 1.0) };
    let all: BTreeSet<i64> = ServerTrainer::key_request(&params, &cfg).expect("plan").rotations.into_iter().collect();
    let full: BTreeSet<i64> = rotation_steps(&BootstrapConfig::default(), log_n).into_iter().collect();
    let plan = ServerTrainer::step_plan(&params, &cfg).expect("plan");
    let limbs = params.q().len() + params.p().len();
    let key = 2 * params.dnum() * limbs * params.n() * 8;
    let gb = |k: usize| k as f64 * key as f64 / 1e9;
    let train: BTreeSet<i64> = plan.rotations.iter().copied().collect();
    let boot: Vec<i64> = all.iter().copied().filter(|s| !train.contains(s)).collect();
    println!(
        "{classes} classes, {cols} columns, batch {batch}, {slots} slots, softmax {}, weights bootstrapped on {} slots",
        if tiled { "tiled" } else { "folded" },
        plan.weight_bootstrap_slots
    );
    println!("one switching key expanded: {:.1} MB ({} digits x {} limbs)", key as f64 / 1e6, params.dnum(), limbs);
    println!("rotation keys: {} in all", all.len());
    println!(
        "  the training step's own (expansion, products, softmax, loss): {} ({:.2} GB)",
        train.len(),
        gb(train.len())
    );
    println!(
        "  bootstrapping's, beyond those: {} ({:.2} GB); full-slot bootstrapping's {} ({} of its {} steps)",
        boot.len(),
        gb(boot.len()),
        if plan.full_slot_bootstraps { "requested" } else { "not requested" },
        full.iter().filter(|s| all.contains(s)).count(),
        full.len()
    );
    let c = plan.counts;
    let sites: BTreeSet<usize> = plan.sites.iter().map(|e| e.slots).collect();
    println!(
        "step: {} bootstraps ({} softmax, {} weights) on {:?} slots; CMult {} Mult {} Rot {} (+{} conj)",
        plan.bootstraps, plan.softmax_bootstraps, plan.weight_bootstraps, sites, c.cmult, c.mult, c.rot, c.conj
    );
    println!("  all with relinearisation and conjugation: {:.2} GB", gb(all.len() + 2));
}
