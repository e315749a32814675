//! Encrypted matrix products: operation counts against HETAL's corrected table for all five
//! benchmark shapes (from the algorithms' own code path, on level-only stand-ins, and checked
//! against the counts of real encrypted runs), and products at `test-n12` against f64.

use hetune_engine::learning::{
    col_major_abt, diag_abt, diag_atb, diag_atb_prot_up, diag_atb_prot_up_with, diag_atb_with, row_major_atb,
    CountingBackend, EncMatrix, HeBackend, LevelOnly, OpCounts, Packing, RowSums, Tiling,
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

fn count(slots: usize, f: impl FnOnce(&CountingBackend) -> EncMatrix<LevelOnly>) -> (OpCounts, usize) {
    let ops = CountingBackend::new(slots);
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
        let (abt, l_abt) =
            count(slots, |o| diag_abt(o, &lv(a, b, Tiling::None, top), &lv(c, b, Tiling::Vertical, top)).unwrap());
        let (col, _) =
            count(slots, |o| col_major_abt(o, &lv(a, b, Tiling::None, top), &lv(c, b, Tiling::None, top)).unwrap());
        let (atb, l_atb) =
            count(slots, |o| diag_atb(o, &lv(a, c, Tiling::Horizontal, top), &lv(a, b, Tiling::None, top)).unwrap());
        let (up, l_up) = count(slots, |o| {
            diag_atb_prot_up(o, &lv(a, c, Tiling::Horizontal, top - 1), &lv(a, b, Tiling::None, top)).unwrap()
        });
        let (row, _) =
            count(slots, |o| row_major_atb(o, &lv(a, c, Tiling::None, top), &lv(a, b, Tiling::None, top)).unwrap());
        let got = [abt.triple(), col.triple(), atb.triple(), up.triple(), row.triple()];
        assert_eq!(got, want, "shape ({a}, {b}, {c})");
        // One conjugation per output block makes the paired results real; the baselines need none.
        assert_eq!(
            (abt.conj, atb.conj, up.conj, col.conj, row.conj),
            (1, b.div_ceil(pk.s1) as u64, b.div_ceil(pk.s1) as u64, 0, 0)
        );
        // Levels: DiagABT 3, DiagATB 4 from equal levels, PRotUp 3 from A (one below B).
        assert_eq!((top - l_abt, top - l_atb, top - 1 - l_up), (3, 4, 3), "levels at ({a}, {b}, {c})");
    }
}

#[test]
fn merged_row_sums_save_rotations_and_keep_everything_else() {
    let slots = 1 << 15;
    for &((a, b, c), want) in TABLE {
        let pk = Packing::hetal(c, a, slots).unwrap();
        let lv = |r, cl, t, l| Lvl::level_only(r, cl, pk, t, l).unwrap();
        let top = 12;
        let (atb, l_atb) = count(slots, |o| {
            diag_atb_with(o, &lv(a, c, Tiling::Horizontal, top), &lv(a, b, Tiling::None, top), RowSums::Merged).unwrap()
        });
        let (up, l_up) = count(slots, |o| {
            let (ta, tb) = (lv(a, c, Tiling::Horizontal, top - 1), lv(a, b, Tiling::None, top));
            diag_atb_prot_up_with(o, &ta, &tb, RowSums::Merged).unwrap()
        });
        // Per output block: pad_c - 1 + log2(s0 / pad_c) rotations instead of (c/2) log2 s0, and
        // (c/2) pad_c plaintext products instead of c/2; the products and levels do not change.
        let b1 = b.div_ceil(pk.s1) as u64;
        let (h, g) = (pk.half() as u64, pk.pad_c as u64);
        let hetal_rows = h * pk.s0.trailing_zeros() as u64;
        let merged_rows = g - 1 + (pk.s0 as u64 / g).trailing_zeros() as u64;
        let saved = b1 * (hetal_rows - merged_rows);
        let extra_masks = b1 * h * (g - 1);
        let (h_atb, h_up) = (want[2], want[3]);
        assert_eq!(atb.triple(), (h_atb.0 + extra_masks, h_atb.1, h_atb.2 - saved), "shape ({a}, {b}, {c})");
        // PRotUp's row fix-up rotates each block of B once for all pairs: (c/2 - 2) A0 B1 fewer.
        let a0 = a.div_ceil(pk.s0) as u64;
        let fixups = h.saturating_sub(2) * a0 * b1;
        assert_eq!(up.triple(), (h_up.0 + extra_masks, h_up.1, h_up.2 - saved - fixups), "shape ({a}, {b}, {c})");
        assert_eq!((atb.conj, up.conj), (b1, b1));
        assert_eq!((top - l_atb, top - 1 - l_up), (4, 3), "levels at ({a}, {b}, {c})");
    }
    // The SNIPS training shape: 1,008 -> 358 and 1,080 -> 380 rotations.
    let pk = Packing::hetal(8, 1024, slots).unwrap();
    let lv = |r, cl, t, l| Lvl::level_only(r, cl, pk, t, l).unwrap();
    let (atb, _) = count(slots, |o| {
        diag_atb_with(o, &lv(1024, 8, Tiling::Horizontal, 12), &lv(1024, 769, Tiling::None, 12), RowSums::Merged)
            .unwrap()
    });
    assert_eq!(atb.triple().2, 358);
    let (up, _) = count(slots, |o| {
        let (ta, tb) = (lv(1024, 8, Tiling::Horizontal, 11), lv(1024, 769, Tiling::None, 12));
        diag_atb_prot_up_with(o, &ta, &tb, RowSums::Merged).unwrap()
    });
    assert_eq!(up.triple().2, 380);
}

mod encrypted {
    use std::sync::Arc;

    use hetune_core::rlwe::{Context, SecretKey};
    use hetune_engine::evaluator::{Evaluator, KeyRequest};
    use hetune_engine::learning::baselines::{privgd_abt, privgd_atb, ColumnPacked, EntryPacked};
    use hetune_engine::learning::*;
    use hetune_testkit::{abt, assert_close, atb, owner, uniform as random, Owner};
    use rand_chacha::ChaCha20Rng;

    pub struct Fx {
        pub owner: &'static Owner,
        pub ctx: Arc<Context>,
        pub sk: &'static SecretKey,
        pub rng: ChaCha20Rng,
    }

    /// test-n12 with the rotation keys `steps` (plus relinearisation and conjugation).
    pub fn fixture(steps: Vec<i64>, seed: u64) -> (Fx, Evaluator) {
        let owner = owner("test-n12");
        let spec = KeyRequest { relinearization: true, rotations: steps, conjugation: true, encapsulation: None };
        let fx = Fx { owner, ctx: owner.ctx.clone(), sk: &owner.sk, rng: owner.rng(seed) };
        (fx, owner.evaluator(&spec))
    }

    impl Fx {
        pub fn top(&self) -> usize {
            self.owner.top()
        }
        pub fn enc(
            &mut self,
            m: &[f64],
            rows: usize,
            cols: usize,
            pk: Packing,
            t: Tiling,
            level: usize,
        ) -> EncMatrix<hetune_core::ckks::Ciphertext> {
            let layout = MatrixLayout { rows, cols, packing: pk, tiling: t, level };
            EncMatrix::encrypt(&self.ctx, self.sk, m, &layout, &mut self.rng).unwrap()
        }
        pub fn dec(&self, m: &EncMatrix<hetune_core::ckks::Ciphertext>) -> Vec<f64> {
            m.decrypt(&self.ctx, self.sk).unwrap()
        }
    }

    /// The rotation steps every algorithm uses on these shapes, from the counting backend.
    pub fn steps_for(shapes: &[(usize, usize, usize, Packing)]) -> Vec<i64> {
        let slots = shapes[0].3.slots();
        let ops = CountingBackend::new(slots);
        for &(a, b, c, pk) in shapes {
            let l = |r, cl, t| EncMatrix::level_only(r, cl, pk, t, 6).unwrap();
            diag_abt(&ops, &l(a, b, Tiling::None), &l(c, b, Tiling::Vertical)).unwrap();
            diag_atb(&ops, &l(a, c, Tiling::Horizontal), &l(a, b, Tiling::None)).unwrap();
            diag_atb_prot_up(&ops, &l(a, c, Tiling::Horizontal), &l(a, b, Tiling::None)).unwrap();
            diag_atb_with(&ops, &l(a, c, Tiling::Horizontal), &l(a, b, Tiling::None), RowSums::Merged).unwrap();
            if c <= pk.s0.min(pk.s1) {
                col_major_abt(&ops, &l(a, b, Tiling::None), &l(c, b, Tiling::None)).unwrap();
                row_major_atb(&ops, &l(a, c, Tiling::None), &l(a, b, Tiling::None)).unwrap();
            }
        }
        let mut s = ops.rotation_steps();
        // PrivGD's slot sums.
        s.extend((0..slots.trailing_zeros()).map(|k| 1i64 << k));
        s.sort_unstable();
        s.dedup();
        s
    }

    #[test]
    fn random_products_with_padding_match_f64_and_the_counting_backend() {
        // a = 300 is not a multiple of s0 = 256, b = 20 not of s1 = 8, c = 5 not a power of two.
        let (a, b, c) = (300, 20, 5);
        let pk = Packing::hetal(c, a, 2048).unwrap();
        assert_eq!((pk.s0, pk.s1, pk.pad_c), (256, 8, 8));
        let (mut fx, ev) = fixture(steps_for(&[(a, b, c, pk)]), 1);
        let top = fx.top();
        let x = random(a, b, 10);
        let w: Vec<f64> = random(c, b, 11).iter().map(|v| v * 0.5).collect();
        let r = random(a, c, 12);
        let ex = fx.enc(&x, a, b, pk, Tiling::None, top);
        let ew = fx.enc(&w, c, b, pk, Tiling::Vertical, top);
        let er = fx.enc(&r, a, c, pk, Tiling::Horizontal, top);
        let ops = CkksBackend::new(&ev);

        let out = diag_abt(&ops, &ex, &ew).unwrap();
        assert_eq!((out.rows, out.cols, out.tiling, out.level()), (a, c, Tiling::Horizontal, top - 3));
        assert_close(&fx.dec(&out), &abt(&x, &w, a, c, b), "diag_abt");
        let he = ops.counter().snapshot();
        let cnt = CountingBackend::new(2048);
        let lv = |r, cl, t| EncMatrix::level_only(r, cl, pk, t, top).unwrap();
        diag_abt(&cnt, &lv(a, b, Tiling::None), &lv(c, b, Tiling::Vertical)).unwrap();
        assert_eq!(he, cnt.counter().snapshot(), "encrypted and counting runs of diag_abt");

        ops.counter().reset();
        let out = diag_atb(&ops, &er, &ex).unwrap();
        assert_eq!((out.rows, out.cols, out.tiling, out.level()), (c, b, Tiling::Vertical, top - 4));
        let want = atb(&r, &x, a, c, b);
        assert_close(&fx.dec(&out), &want, "diag_atb");
        let cnt = CountingBackend::new(2048);
        diag_atb(&cnt, &lv(a, c, Tiling::Horizontal), &lv(a, b, Tiling::None)).unwrap();
        assert_eq!(ops.counter().snapshot(), cnt.counter().snapshot(), "encrypted and counting runs of diag_atb");

        let er_low = fx.enc(&r, a, c, pk, Tiling::Horizontal, top - 1);
        let out = diag_atb_prot_up(&ops, &er_low, &ex).unwrap();
        assert_eq!(out.level(), top - 1 - 3, "PRotUp uses three levels of A");
        assert_close(&fx.dec(&out), &want, "diag_atb_prot_up");

        // Merged row sums: the same product, fewer rotations, the counting backend's counts.
        for (name, prot_up) in [("diag_atb merged", false), ("diag_atb_prot_up merged", true)] {
            ops.counter().reset();
            let cnt = CountingBackend::new(2048);
            let out = if prot_up {
                diag_atb_prot_up_with(&cnt, &lv(a, c, Tiling::Horizontal), &lv(a, b, Tiling::None), RowSums::Merged)
                    .unwrap();
                diag_atb_prot_up_with(&ops, &er_low, &ex, RowSums::Merged).unwrap()
            } else {
                diag_atb_with(&cnt, &lv(a, c, Tiling::Horizontal), &lv(a, b, Tiling::None), RowSums::Merged).unwrap();
                diag_atb_with(&ops, &er, &ex, RowSums::Merged).unwrap()
            };
            assert_eq!(out.level(), top - 4, "{name}: levels (PRotUp: three from A, one below B)");
            assert_close(&fx.dec(&out), &want, name);
            assert_eq!(ops.counter().snapshot(), cnt.counter().snapshot(), "{name}: encrypted and counting runs");
        }

        let ew_flat = fx.enc(&w, c, b, pk, Tiling::None, top);
        let er_flat = fx.enc(&r, a, c, pk, Tiling::None, top);
        let out = col_major_abt(&ops, &ex, &ew_flat).unwrap();
        assert_close(&fx.dec(&out), &abt(&x, &w, a, c, b), "col_major_abt");
        let out = row_major_atb(&ops, &er_flat, &ex).unwrap();
        assert_close(&fx.dec(&out), &want, "row_major_atb");
    }

    #[test]
    fn structured_matrices_identity_and_one_hot_rows() {
        // c = 3 (pad 4), a = 40 rows in one block of s0 = 64, b = 40 (two blocks of s1 = 32).
        let (a, b, c) = (40, 40, 3);
        let pk = Packing::hetal(c, a, 2048).unwrap();
        assert_eq!((pk.s0, pk.s1), (64, 32));
        let (mut fx, ev) = fixture(steps_for(&[(a, b, c, pk)]), 2);
        let top = fx.top();
        let ident: Vec<f64> = (0..a * b).map(|k| if k / b == k % b { 1.0 } else { 0.0 }).collect();
        let w = random(c, b, 20);
        let ops = CkksBackend::new(&ev);
        let ei = fx.enc(&ident, a, b, pk, Tiling::None, top);
        let ew = fx.enc(&w, c, b, pk, Tiling::Vertical, top);
        // I W^T = W^T.
        let wt: Vec<f64> = (0..b * c).map(|k| w[(k % c) * b + k / c]).collect();
        assert_close(&fx.dec(&diag_abt(&ops, &ei, &ew).unwrap()), &wt, "diag_abt identity");

        // One-hot rows (labels): Y^T X sums the rows of X by class.
        let labels: Vec<usize> = (0..a).map(|r| (r * 7 + 1) % c).collect();
        let y: Vec<f64> = (0..a * c).map(|k| if labels[k / c] == k % c { 1.0 } else { 0.0 }).collect();
        let x = random(a, b, 21);
        let ey = fx.enc(&y, a, c, pk, Tiling::Horizontal, top);
        let ex = fx.enc(&x, a, b, pk, Tiling::None, top);
        let mut want = vec![0.0; c * b];
        for r in 0..a {
            for t in 0..b {
                want[labels[r] * b + t] += x[r * b + t];
            }
        }
        assert_close(&fx.dec(&diag_atb(&ops, &ey, &ex).unwrap()), &want, "diag_atb one-hot");
        let ey_low = fx.enc(&y, a, c, pk, Tiling::Horizontal, top - 2);
        assert_close(&fx.dec(&diag_atb_prot_up(&ops, &ey_low, &ex).unwrap()), &want, "diag_atb_prot_up one-hot");
        let merged = diag_atb_prot_up_with(&ops, &ey_low, &ex, RowSums::Merged).unwrap();
        assert_close(&fx.dec(&merged), &want, "diag_atb_prot_up merged one-hot");
        // X X^T's diagonal... and the identity on the other side: I^T X = X (c = b = a would need
        // c <= pad_c; instead one-hot rows on the ABT side: Y W^T picks W's rows by label).
        let yb: Vec<f64> = (0..a * b).map(|k| if (k % b) == labels[k / b] * 5 { 1.0 } else { 0.0 }).collect();
        let eyb = fx.enc(&yb, a, b, pk, Tiling::None, top);
        assert_close(&fx.dec(&diag_abt(&ops, &eyb, &ew).unwrap()), &abt(&yb, &w, a, c, b), "diag_abt one-hot rows");
    }

    #[test]
    fn privgd_products_match_f64() {
        let (a, b, c) = (100, 6, 3);
        let (mut fx, ev) = fixture(steps_for(&[(64, 8, 2, Packing::hetal(2, 64, 2048).unwrap())]), 3);
        let top = fx.top();
        let slots = 2048;
        let x = random(a, b, 30);
        let w = random(c, b, 31);
        let r = random(a, c, 32);
        let log_slots = 11;
        let ctx = fx.ctx.clone();
        let enc = hetune_core::ckks::Encoder::new(&ctx);
        let ct = |v: Vec<f64>, fx: &mut Fx| {
            let pt = enc.encode_real(&v, log_slots, top, fx.ctx.params().scale()).unwrap();
            hetune_core::ckks::encrypt_sk(&fx.ctx, fx.sk, &pt, &mut fx.rng).unwrap().expand(&fx.ctx)
        };
        let column = |m: &[f64], cols: usize, j: usize| (0..a).map(|i| m[i * cols + j]).collect::<Vec<f64>>();
        let xa = ColumnPacked { rows: a, cols: (0..b).map(|j| vec![ct(column(&x, b, j), &mut fx)]).collect() };
        let ra = ColumnPacked { rows: a, cols: (0..c).map(|j| vec![ct(column(&r, c, j), &mut fx)]).collect() };
        let we = EntryPacked {
            entries: (0..c).map(|k| (0..b).map(|j| ct(vec![w[k * b + j]; slots], &mut fx)).collect()).collect(),
        };
        let ops = CkksBackend::new(&ev);
        let out = privgd_abt(&ops, &xa, &we).unwrap();
        let want = abt(&x, &w, a, c, b);
        let got: Vec<f64> = (0..a * c)
            .map(|k| hetune_engine::owner::decrypt_decode(&fx.ctx, fx.sk, &out.cols[k % c][0]).unwrap()[k / c])
            .collect();
        assert_close(&got, &want, "privgd_abt");
        assert_eq!(ops.counter().snapshot().triple(), (0, (b * c) as u64, 0));
        ops.counter().reset();
        let out = privgd_atb(&ops, &ra, &xa).unwrap();
        let want = atb(&r, &x, a, c, b);
        let got: Vec<f64> = (0..c * b)
            .map(|k| hetune_engine::owner::decrypt_decode(&fx.ctx, fx.sk, &out.entries[k / b][k % b]).unwrap()[17])
            .collect();
        assert_close(&got, &want, "privgd_atb");
        assert_eq!(ops.counter().snapshot().triple(), (0, (b * c) as u64, (b * c * 11) as u64));
    }
}
