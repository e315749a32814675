//! `bench_ops` (behind `hetune bench ops`) reports every operation at both levels.

use hetune::bench::ops::{bench_ops, bench_ops_with_budget, Op, OPS};
use hetune::Error;

#[test]
fn bench_ops_reports_every_operation_at_the_top_and_at_level_3() {
    let r = bench_ops_with_budget("test-n12", 1, 5.0).unwrap();
    assert!(r.insecure);
    assert_eq!((r.log_n, r.q_limbs, r.dnum, r.threads), (12, 7, 2, 1));
    assert_eq!(r.results.len(), 2 * OPS.len());
    for op in OPS {
        for level in [6, 3] {
            let t = r.results.iter().find(|t| t.op == *op && t.level == level).unwrap();
            assert!(t.median_ms > 0.0 && t.median_ms.is_finite() && t.min_ms <= t.median_ms, "{op} {level}");
            assert!((3..=15).contains(&t.runs));
        }
    }
    // Eight hoisted rotations cost more than one rotation, less than eight plain ones plus slack.
    let one = r.median_ms(Op::Rotate, 6).unwrap();
    let eight = r.median_ms(Op::HoistedRotate8, 6).unwrap();
    assert!(eight > one, "{eight} vs {one}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["results"].as_array().unwrap().len(), 22);
    assert_eq!(json["preset"], "test-n12");
}

#[test]
fn bench_ops_rejects_unknown_presets_and_zero_threads() {
    assert!(matches!(bench_ops("no-such-preset", 1), Err(Error::Core(hetune_core::Error::UnknownPreset))));
    assert!(matches!(bench_ops("test-n12", 0), Err(Error::InvalidArgument(_))));
}
