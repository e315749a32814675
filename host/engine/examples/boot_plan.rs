//! Diagonals, baby steps and giant steps of each bootstrapping matrix (diagnostics).
use hetune_engine::circuits::dft::{coeff_to_slot, slot_to_coeff};
use hetune_engine::circuits::linear::LinearTransform;

fn main() {
    for log_slots in [11u32, 15] {
        let n = 1usize << log_slots;
        for (name, ms) in [("CtS", coeff_to_slot(n, 3, 1.0)), ("StC", slot_to_coeff(n, 3, 1.0))] {
            for (i, m) in ms.into_iter().enumerate() {
                let d = m.diags.len();
                let t = LinearTransform::new(m, log_slots).unwrap();
                println!(
                    "2^{log_slots} {name} level {i}: {d} diagonals, {} rotations {:?}",
                    t.rotations().len(),
                    t.rotations()
                );
            }
        }
    }
}
