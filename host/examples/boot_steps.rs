fn main() {
    let cfg = hetune::circuits::bootstrap::BootstrapConfig::default();
    for log_slots in [11u32, 15] {
        let s = hetune::circuits::bootstrap::rotation_steps(&cfg, log_slots);
        println!("log_slots {log_slots}: {} steps: {:?}", s.len(), s);
    }
}
