//! `hetune bench ...`: performance measurements.

use clap::Subcommand;

use hetune_engine::circuits::bootstrap::BootstrapConfig;

use crate::bench::bootstrap::bench_bootstrap;
use crate::bench::matmul::{bench_matmul, parse_shapes, Algorithm, BenchMatmulOptions, BenchMatmulReport};
use crate::bench::ops::{bench_ops_with_budget, BenchOpsReport};
use crate::error::Result;

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
    /// One full-slot bootstrap: seconds, precision (mean and minimum over slots, inputs uniform
    /// in [-1, 1]), levels before and after, key bytes, peak resident memory.
    Bootstrap {
        /// Preset name (a bootstrappable one: n16-boot or test-n12-boot).
        #[arg(long, default_value = "n16-boot")]
        preset: String,
        /// Rayon threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Timed bootstraps (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// log2 of the slot count (default: full, N/2).
        #[arg(long)]
        log_slots: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// HETAL's matrix products (DiagABT, DiagATB, PRotUp) against ColMajor, RowMajor and PrivGD:
    /// operation counts next to HETAL's table, seconds, error against f64, levels, speed-ups.
    Matmul {
        /// Preset name.
        #[arg(long, default_value = "n16-boot")]
        preset: String,
        /// Rayon threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Shapes `AxBxC`, comma separated, or `all` (HETAL's five).
        #[arg(long, default_value = "all")]
        shapes: String,
        /// Algorithms, comma separated, or `all`.
        #[arg(long, default_value = "all")]
        algorithms: String,
        /// Feature matrix (.npy) whose rows (plus a bias column) form A; synthetic data if absent.
        #[arg(long)]
        features: Option<std::path::PathBuf>,
        /// Repeat a run (up to 3 times) while the total stays under this many seconds.
        #[arg(long, default_value_t = 20.0)]
        budget_s: f64,
    },
}

/// Runs a benchmark command.
pub(crate) fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ops { preset, threads, json, budget_ms } => {
            let report = bench_ops_with_budget(&preset, threads, budget_ms)?;
            if json {
                let text = serde_json::to_string_pretty(&report)?;
                println!("{text}");
            } else {
                print_table(&report);
            }
            Ok(())
        }
        BenchCommand::Bootstrap { preset, threads, runs, log_slots, json } => {
            let cfg = BootstrapConfig { log_slots, ..BootstrapConfig::default() };
            let bar = indicatif::ProgressBar::new(1);
            bar.set_style(
                indicatif::ProgressStyle::with_template("bootstrapping keys [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let r = bench_bootstrap(&preset, threads, runs, cfg, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            if json {
                let text = serde_json::to_string_pretty(&r)?;
                println!("{text}");
            } else {
                println!(
                    "bootstrap {}{}: N = 2^{}, {} slots, {} thread(s)",
                    r.preset,
                    if r.insecure { " [INSECURE: benchmark only]" } else { "" },
                    r.log_n,
                    r.slots,
                    r.threads
                );
                println!(
                    "time           median {:.2} s over {:?} (untimed first run, which caches the diagonals: {:.2} s)",
                    r.median_seconds, r.seconds, r.warm_up_seconds
                );
                println!("cpu            {:?} s", r.cpu_seconds);
                println!("stages         {:?} s", r.phase_seconds);
                println!("precision      mean {:.1} bits, min {:.1} bits", r.precision_mean_bits, r.precision_min_bits);
                println!("levels         {} -> {}", r.level_before, r.level_after);
                println!(
                    "keys           {} rotations, {:.2} GB, generated in {:.1} s",
                    r.rotation_keys,
                    r.key_bytes as f64 / 1e9,
                    r.keygen_seconds
                );
                println!("peak memory    {:.2} GB", r.peak_rss_bytes as f64 / 1e9);
            }
            Ok(())
        }
        BenchCommand::Matmul { preset, threads, json, shapes, algorithms, features, budget_s } => {
            let opts = BenchMatmulOptions {
                preset,
                threads,
                shapes: parse_shapes(&shapes)?,
                algorithms: Algorithm::parse_list(&algorithms)?,
                features,
                budget_seconds: budget_s,
            };
            let report = bench_matmul(&opts)?;
            if json {
                let text = serde_json::to_string_pretty(&report)?;
                println!("{text}");
            } else {
                print_matmul(&report);
            }
            Ok(())
        }
    }
}

fn print_matmul(r: &BenchMatmulReport) {
    println!(
        "preset {}{}: N = 2^{}, inputs at level {}, {} thread(s); {}",
        r.preset,
        if r.insecure { " [INSECURE: benchmark only]" } else { "" },
        r.log_n,
        r.level,
        r.threads,
        r.data
    );
    println!(
        "{:<16} {:<17} {:>9} {:>22} {:>20} {:>10} {:>9} {:>6}",
        "shape", "algorithm", "s0 x s1", "CMult/Mult/Rot (+conj)", "HETAL", "seconds", "rel.err", "levels"
    );
    for x in &r.results {
        let hetal = x.hetal.map_or("-".to_string(), |(a, b, c)| format!("{a} / {b} / {c}"));
        println!(
            "{:<16} {:<17} {:>9} {:>22} {:>20} {:>9.2}{} {:>9.1e} {:>6}",
            format!("{:?}", x.shape),
            x.algorithm,
            format!("{}x{}", x.blocks.0, x.blocks.1),
            x.counts.to_string(),
            hetal,
            x.seconds,
            if x.extrapolated { "*" } else { " " },
            x.relative_error,
            x.levels
        );
    }
    println!("* PrivGD timed on the first 8 columns of A and scaled to all of them");
    for s in &r.speedups {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}x"));
        println!(
            "{:?}: DiagABT over ColMajor {}, DiagATB over RowMajor {}",
            s.shape,
            f(s.diag_abt_over_col_major),
            f(s.diag_atb_over_row_major)
        );
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
