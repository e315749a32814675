//! `hetune bench ...`: performance measurements.

use clap::Subcommand;

use crate::error::Result;
use crate::evaluator::bench::{bench_ops_with_budget, BenchOpsReport};

/// What to benchmark.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Median milliseconds of encode, encrypt_sk, encrypt_pk, decrypt, add, mul_plain,
    /// mul_relin, rescale, rotate, hoisted_rotate_8 and conjugate, at the top level and at
    /// level 3 (keys are generated for the run; insecure test presets are allowed).
    Ops {
        /// Preset name.
        #[arg(long, default_value = "n16-boot")]
        preset: String,
        /// Rayon threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Time budget per operation and level, in milliseconds (3 to 15 timed runs).
        #[arg(long, default_value_t = 1500.0)]
        budget_ms: f64,
    },
}

/// Runs a benchmark command.
pub(crate) fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ops { preset, threads, json, budget_ms } => {
            let report = bench_ops_with_budget(&preset, threads, budget_ms)?;
            if json {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| crate::Error::InvalidInput(format!("cannot serialise the report: {e}")))?;
                println!("{text}");
            } else {
                print_table(&report);
            }
            Ok(())
        }
    }
}

fn print_table(r: &BenchOpsReport) {
    println!(
        "preset {}{}: N = 2^{}, {} q limbs, {} p limbs, dnum {}, {} thread(s); wall-clock milliseconds",
        r.preset,
        if r.insecure { " [INSECURE: benchmark only]" } else { "" },
        r.log_n,
        r.q_limbs,
        r.p_limbs,
        r.dnum,
        r.threads
    );
    println!("{:<18} {:>6} {:>11} {:>9} {:>5}", "operation", "level", "median", "min", "runs");
    for t in &r.results {
        println!("{:<18} {:>6} {:>11.2} {:>9.2} {:>5}", t.op, t.level, t.median_ms, t.min_ms, t.runs);
    }
}
