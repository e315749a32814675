//! Benchmark reports (`hetune bench ...`): [`ops`] (the evaluator's basic operations),
//! [`bootstrap`] (one full-slot bootstrap), [`matmul`] (HETAL's matrix products against the
//! baselines). Every report times its work with [`time_runs`].

pub mod bootstrap;
pub mod matmul;
pub mod ops;

use std::time::Instant;

use crate::{Error, Result};

/// How often [`time_runs`] runs the work.
#[derive(Clone, Copy, Debug)]
pub struct RunPolicy {
    /// One untimed run first (caches, lazily expanded keys, thread pool start-up).
    pub warm_up: bool,
    /// Timed runs at least.
    pub min_runs: usize,
    /// Timed runs at most.
    pub max_runs: usize,
    /// Past `min_runs`, another run is made only while the projected total of the timed runs
    /// stays within this many seconds.
    pub budget_seconds: f64,
}

impl RunPolicy {
    /// Exactly `runs` timed runs (at least one), no warm-up.
    pub fn fixed(runs: usize) -> Self {
        let runs = runs.max(1);
        RunPolicy { warm_up: false, min_runs: runs, max_runs: runs, budget_seconds: 0.0 }
    }
}

/// Wall-clock seconds of the timed runs, in run order.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Seconds of each timed run.
    pub seconds: Vec<f64>,
}

impl Timing {
    /// Median seconds (mean of the two middle runs for an even count).
    pub fn median(&self) -> f64 {
        let mut v = self.seconds.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        }
    }

    /// Fastest run, seconds.
    pub fn min(&self) -> f64 {
        self.seconds.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Number of timed runs.
    pub fn runs(&self) -> usize {
        self.seconds.len()
    }
}

/// Runs `f(run index)` as `policy` says (the warm-up is index 0 too) and returns the last
/// result with the timing of every timed run.
pub fn time_runs<T>(policy: RunPolicy, mut f: impl FnMut(usize) -> Result<T>) -> Result<(T, Timing)> {
    if policy.max_runs == 0 || policy.min_runs > policy.max_runs {
        return Err(Error::InvalidArgument("a run policy needs 1 <= min_runs <= max_runs"));
    }
    if policy.warm_up {
        std::hint::black_box(f(0)?);
    }
    let mut seconds: Vec<f64> = Vec::with_capacity(policy.max_runs);
    loop {
        let t = Instant::now();
        let last = std::hint::black_box(f(seconds.len())?);
        seconds.push(t.elapsed().as_secs_f64());
        let n = seconds.len();
        let projected = seconds.iter().sum::<f64>() * (n + 1) as f64 / n as f64;
        if n >= policy.max_runs || (n >= policy.min_runs && projected > policy.budget_seconds) {
            return Ok((last, Timing { seconds }));
        }
    }
}

/// Runs `f` on a fresh rayon pool of `threads` threads (at least one).
pub(crate) fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if threads == 0 {
        return Err(Error::InvalidArgument("threads must be at least 1"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|_| Error::InvalidArgument("cannot start a thread pool of that size"))?
        .install(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_policy_runs_exactly_and_the_median_is_the_middle() {
        let mut calls = Vec::new();
        let (last, t) = time_runs(RunPolicy::fixed(3), |i| {
            calls.push(i);
            Ok(i * 10)
        })
        .unwrap();
        assert_eq!((last, t.runs(), calls), (20, 3, vec![0, 1, 2]));
        let t = Timing { seconds: vec![3.0, 1.0, 2.0] };
        assert_eq!((t.median(), t.min()), (2.0, 1.0));
        let t = Timing { seconds: vec![4.0, 1.0, 2.0, 3.0] };
        assert_eq!(t.median(), 2.5);
    }

    #[test]
    fn budget_policy_stops_between_min_and_max_and_warms_up_untimed() {
        let policy = RunPolicy { warm_up: true, min_runs: 2, max_runs: 5, budget_seconds: 0.0 };
        let mut calls = 0;
        let (_, t) = time_runs(policy, |_| {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((t.runs(), calls), (2, 3));
        let policy = RunPolicy { warm_up: false, min_runs: 1, max_runs: 4, budget_seconds: 1e9 };
        assert_eq!(time_runs(policy, |_| Ok(())).unwrap().1.runs(), 4);
        let bad = RunPolicy { warm_up: false, min_runs: 3, max_runs: 2, budget_seconds: 1.0 };
        assert!(time_runs(bad, |_| Ok(())).is_err());
    }
}
