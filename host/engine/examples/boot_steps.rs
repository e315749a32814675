fn main() {
    let cfg = hetune_engine::circuits::bootstrap::BootstrapConfig::default();
    for log_n in [12u32, 16] {
        let s = hetune_engine::circuits::bootstrap::rotation_steps(&cfg, log_n);
        println!("log_n {log_n}: {} steps: {:?}", s.len(), s);
    }
}
