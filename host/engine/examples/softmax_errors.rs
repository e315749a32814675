//! The error table of the softmax approximations against the exact softmax (diagnostics):
//! `cargo run --release -p hetune-engine --example softmax_errors`.

use hetune_engine::learning::softmax::error_table;

fn main() {
    println!("| softmax | c | range | sampling | max abs | mean abs | mean row max | levels |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in error_table(&[2, 7, 10, 16], 20_000).expect("the table's classes are supported") {
        println!(
            "| {} | {} | [-{}, {}] | {:?} | {:.1e} | {:.1e} | {:.1e} | {} |",
            r.name,
            r.classes,
            r.bound,
            r.bound,
            r.sampling,
            r.stats.max_abs,
            r.stats.mean_abs,
            r.stats.mean_row_max,
            r.levels
        );
    }
}
