//! Single-threaded f32 GEMM for the encoders' dense layers, and a vectorised exact GELU.
//!
//! `C[m x n] = A[m x k] * W^T + bias (+ C)`, with `W` stored `[n x k]` (PyTorch's `Linear`
//! layout). The weights are packed once, at model load ([`PackedLinear::new`]), into panels of
//! [`NR`] = 32 columns stored k-major (`panel[p][0..32]` = `W[j0..j0 + 32][p]`, zero columns past
//! `n`), 64-byte aligned. A product packs `A` by blocks of [`MC`] rows x [`KC`] columns into
//! k-major strips of [`MR`] = 14 rows (zero rows past `m`) and runs an `MR x NR` register tile
//! per (strip, panel): 14 broadcasts of `A` and two 16-wide loads of `W` feed 28 FMAs into 28
//! zmm accumulators per step of `k`. Loop order (BLIS): `k` blocks of `KC` = 384 (the width of
//! MiniLM's and half MPNet's: one pass over `C` for most products), then `m` blocks of `MC` =
//! 224 rows (the packed `A` block, 336 KiB, stays in L2), then panels (a `KC x 32` panel, 48
//! KiB, stays in L1/L2 while every strip of the `A` block streams past it), then strips. `KC`
//! and `MC` were chosen by timing the encoders' shapes (`tests::speed`); 192 to 768 and 112 to
//! 448 were all within the noise of a shared machine, about 1.8 times candle's `gemm` crate
//! per CPU second. Rows and columns past `m` and `n` are never stored (masked stores for the
//! columns).
//!
//! Three microkernels, chosen at run time: AVX-512F, AVX2 + FMA, and portable Rust (no FMA;
//! what any other target runs). All of them add in the same order (the products over one `k`
//! block, then the bias, then the earlier blocks), so they differ only by FMA rounding.
//!
//! This is the only module of the crate with `unsafe` code: the AVX-512 intrinsics (raw
//! pointers into slices whose lengths are asserted first) and the calls of functions compiled
//! for CPU features that were detected at run time. Each use carries a `SAFETY` comment.
#![allow(unsafe_code)]

use std::cell::RefCell;

/// Rows of the register tile.
pub const MR: usize = 14;
/// Columns of the register tile and width of a packed weight panel.
pub const NR: usize = 32;
/// Depth of a `k` block.
pub const KC: usize = 384;
/// Rows of an `m` block (a multiple of [`MR`]).
pub const MC: usize = MR * 16;

/// 16 f32 on one 64-byte cache line: the packed panels' storage unit (it fixes the alignment).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Which microkernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// AVX-512F (x86-64).
    Avx512,
    /// AVX2 + FMA (x86-64).
    Avx2,
    /// Plain Rust, no FMA.
    Portable,
}

impl Path {
    /// The fastest microkernel this CPU runs.
    pub fn detect() -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Path::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Path::Avx2;
            }
        }
        Path::Portable
    }

    /// Whether this CPU runs the microkernel (the portable one always).
    pub fn available(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// A linear layer's weight `[n x k]` and bias `[n]`, packed for [`PackedLinear::forward`].
pub struct PackedLinear {
    n: usize,
    k: usize,
    /// `ceil(n / NR)` panels of `k` rows of `NR` values (two lines per row).
    panels: Vec<Line>,
    /// The bias, zero-padded to `ceil(n / NR) * NR`.
    bias: Vec<f32>,
    path: Path,
}

impl PackedLinear {
    /// Packs `weight` (`[n x k]`, row-major) and `bias` (`[n]`, zeros when `None`).
    ///
    /// # Panics
    /// If the lengths do not match `n` and `k`.
    pub fn new(weight: &[f32], bias: Option<&[f32]>, n: usize, k: usize) -> Self {
        Self::with_path(weight, bias, n, k, Path::detect())
    }

    /// As [`PackedLinear::new`] with a chosen microkernel (tests and benchmarks).
    ///
    /// # Panics
    /// If the lengths do not match, or if this CPU cannot run `path`.
    pub fn with_path(weight: &[f32], bias: Option<&[f32]>, n: usize, k: usize, path: Path) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not {n} x {k}");
        assert!(path.available(), "{path:?} is not supported by this CPU");
        let np = n.div_ceil(NR);
        let mut panels = vec![Line([0.0; 16]); np * k * (NR / 16)];
        for jp in 0..np {
            let panel = &mut panels[jp * k * 2..(jp + 1) * k * 2];
            let cols = NR.min(n - jp * NR);
            let rows: Vec<&[f32]> = (0..cols).map(|jj| &weight[(jp * NR + jj) * k..(jp * NR + jj + 1) * k]).collect();
            // Sequential writes, one read stream per column.
            for (p, lines) in panel.chunks_exact_mut(2).enumerate() {
                for (jj, row) in rows.iter().enumerate() {
                    lines[jj / 16].0[jj % 16] = row[p];
                }
            }
        }
        let mut b = vec![0.0; np * NR];
        if let Some(bias) = bias {
            assert_eq!(bias.len(), n, "bias is not {n} long");
            b[..n].copy_from_slice(bias);
        }
        Self { n, k, panels, bias: b, path }
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `a * W^T + bias` for `a` of `m` rows of `k` (row-major): `m` rows of `n`.
    pub fn forward(&self, a: &[f32], m: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * self.n];
        self.gemm(a, m, &mut c, false);
        c
    }

    /// `c = a * W^T + bias + c` (`c` holds `m` rows of `n`, e.g. a residual on entry).
    pub fn forward_add(&self, a: &[f32], m: usize, c: &mut [f32]) {
        self.gemm(a, m, c, true);
    }

    fn gemm(&self, a: &[f32], m: usize, c: &mut [f32], add: bool) {
        let (n, k) = (self.n, self.k);
        assert_eq!(a.len(), m * k, "input is not {m} x {k}");
        assert_eq!(c.len(), m * n, "output is not {m} x {n}");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            for row in c.chunks_exact_mut(n) {
                for (y, b) in row.iter_mut().zip(&self.bias) {
                    *y = if add { *y + b } else { *b };
                }
            }
            return;
        }
        let np = n.div_ceil(NR);
        APACK.with(|buf| {
            let mut apack = buf.borrow_mut();
            let need = MC.min(m.div_ceil(MR) * MR) * KC.min(k);
            if apack.len() < need {
                apack.resize(need, 0.0);
            }
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let first = pc == 0;
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    let strips = mc.div_ceil(MR);
                    pack_a(&a[ic * k..(ic + mc) * k], k, pc, kc, mc, &mut apack[..strips * MR * kc]);
                    for jp in 0..np {
                        let cols = NR.min(n - jp * NR);
                        let b = &self.panels[(jp * k + pc) * 2..(jp * k + pc + kc) * 2];
                        for s in 0..strips {
                            let rows = MR.min(mc - s * MR);
                            let origin = (ic + s * MR) * n + jp * NR;
                            let tile = Tile {
                                kc,
                                a: &apack[s * MR * kc..(s + 1) * MR * kc],
                                b,
                                c: &mut c[origin..origin + (rows - 1) * n + cols],
                                ldc: n,
                                rows,
                                cols,
                                bias: if first { Some(&self.bias[jp * NR..(jp + 1) * NR]) } else { None },
                                load_c: add || !first,
                            };
                            run_tile(self.path, tile);
                        }
                    }
                }
            }
        });
    }
}

thread_local! {
    /// The packed `A` block, kept per thread between products.
    static APACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Packs rows `0..mc` (of `k`) and columns `pc..pc + kc` of `a` into k-major strips of `MR`
/// rows: `dst[s][p][r] = a[s MR + r][pc + p]`, zero for rows past `mc`.
fn pack_a(a: &[f32], k: usize, pc: usize, kc: usize, mc: usize, dst: &mut [f32]) {
    for (s, strip) in dst.chunks_exact_mut(MR * kc).enumerate() {
        let rows = MR.min(mc - s * MR);
        if rows == MR {
            // A full strip: one sequential run of MR values per column (MR row streams read).
            let src: [&[f32]; MR] = std::array::from_fn(|r| &a[(s * MR + r) * k + pc..(s * MR + r) * k + pc + kc]);
            for (p, d) in strip.chunks_exact_mut(MR).enumerate().take(kc) {
                for (r, v) in d.iter_mut().enumerate() {
                    *v = src[r][p];
                }
            }
            continue;
        }
        for r in 0..rows {
            let src = &a[(s * MR + r) * k + pc..(s * MR + r) * k + pc + kc];
            for (p, &v) in src.iter().enumerate() {
                strip[p * MR + r] = v;
            }
        }
        for r in rows..MR {
            for p in 0..kc {
                strip[p * MR + r] = 0.0;
            }
        }
    }
}

/// One register tile: `c[r][j] (+)= sum_p a[p][r] b[p][j] (+ bias[j])` for `r < rows`,
/// `j < cols`.
struct Tile<'a> {
    kc: usize,
    /// `kc x MR`, k-major.
    a: &'a [f32],
    /// `kc x NR`, k-major (two lines per row).
    b: &'a [Line],
    /// From the tile's first element: `(rows - 1) * ldc + cols` values.
    c: &'a mut [f32],
    ldc: usize,
    rows: usize,
    cols: usize,
    /// Added to the products (the first `k` block).
    bias: Option<&'a [f32]>,
    /// Add the products to `c` (later `k` blocks, or a residual already in `c`).
    load_c: bool,
}

impl Tile<'_> {
    /// The bounds every microkernel relies on.
    fn check(&self) {
        assert!(self.rows >= 1 && self.rows <= MR && self.cols >= 1 && self.cols <= NR && self.kc >= 1);
        assert!(self.a.len() >= self.kc * MR && self.b.len() >= self.kc * 2);
        assert!(self.c.len() >= (self.rows - 1) * self.ldc + self.cols);
        assert!(self.bias.is_none_or(|b| b.len() >= NR));
    }
}

fn run_tile(path: Path, t: Tile) {
    t.check();
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `PackedLinear::with_path` asserted `path.available()`, i.e. that this CPU
        // has AVX-512F; the tile's bounds were just checked.
        Path::Avx512 => unsafe { x86::tile_avx512(t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, AVX2 and FMA were detected.
        Path::Avx2 => unsafe { x86::tile_avx2(t) },
        _ => tile_portable::<false>(t),
    }
}

/// The portable microkernel: columns in groups of 8 (a `MR x 8` accumulator the compiler
/// keeps in vector registers), `FMA` choosing fused multiply-adds.
#[inline(always)]
fn tile_portable<const FMA: bool>(t: Tile) {
    const G: usize = 8;
    let Tile { kc, a, b, c, ldc, rows, cols, bias, load_c } = t;
    for g in 0..NR / G {
        if g * G >= cols {
            break;
        }
        let mut acc = [[0.0f32; G]; MR];
        for p in 0..kc {
            let ap: &[f32; MR] = a[p * MR..p * MR + MR].try_into().unwrap_or(&[0.0; MR]);
            let line = &b[p * 2 + g * G / 16].0;
            let bp: &[f32; G] = line[(g * G) % 16..(g * G) % 16 + G].try_into().unwrap_or(&[0.0; G]);
            for r in 0..MR {
                for j in 0..G {
                    acc[r][j] = if FMA { ap[r].mul_add(bp[j], acc[r][j]) } else { acc[r][j] + ap[r] * bp[j] };
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate().take(rows) {
            for (j, &v) in acc_row.iter().enumerate() {
                let col = g * G + j;
                if col >= cols {
                    break;
                }
                let mut y = v;
                if let Some(bias) = bias {
                    y += bias[col];
                }
                let dst = &mut c[r * ldc + col];
                *dst = if load_c { *dst + y } else { y };
            }
        }
    }
}

/// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, in place.
pub fn gelu_in_place(x: &mut [f32]) {
    gelu_with(Path::detect(), x)
}

/// As [`gelu_in_place`] with a chosen code path (tests).
///
/// # Panics
/// If this CPU cannot run `path`.
pub fn gelu_with(path: Path, x: &mut [f32]) {
    assert!(path.available(), "{path:?} is not supported by this CPU");
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F was detected (asserted above); the function only indexes the slice.
        Path::Avx512 => unsafe { x86::gelu_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA were detected (asserted above).
        Path::Avx2 => unsafe { x86::gelu_avx2(x) },
        _ => gelu_slice::<false>(x),
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `exp(x)` for f32, branch-free (Cephes' `expf`): `x = n ln 2 + r` with `n` the nearest
/// integer to `x / ln 2` and `ln 2` split in two so that `r` is exact, a degree-6 polynomial in
/// `r`, then `2^n` by building the exponent bits; about 1 ulp. 0 below -87.3 (where `exp` leaves
/// the normal range), `exp(88.38)` above 88.38.
#[inline(always)]
pub fn exp_f32<const FMA: bool>(x: f32) -> f32 {
    const LO: f32 = -87.336_55;
    const HI: f32 = 88.376_26;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer (|v| < 2^22).
    const ROUND: f32 = 12_582_912.0;
    let under = x < LO;
    let xc = if x < LO { LO } else { x };
    let xc = if xc > HI { HI } else { xc };
    let v = madd::<FMA>(xc, std::f32::consts::LOG2_E, ROUND);
    let n = v - ROUND;
    let r = madd::<FMA>(n, -0.693_359_4, xc);
    let r = madd::<FMA>(n, 2.121_944_4e-4, r);
    let mut y = madd::<FMA>(r, 1.987_569_1e-4, 1.398_199_9e-3);
    y = madd::<FMA>(y, r, 8.333_452e-3);
    y = madd::<FMA>(y, r, 4.166_579_6e-2);
    y = madd::<FMA>(y, r, 1.666_666_5e-1);
    y = madd::<FMA>(y, r, 5.000_000_1e-1);
    y = madd::<FMA>(y, r * r, r) + 1.0;
    // n is an integer in [-126, 127] (HI / ln 2 < 127.5), held in the low mantissa bits of
    // `v` (whose exponent is that of ROUND): the integer is read from the bits rather than by
    // `as i32`, whose saturation would not vectorise. 2^n from its exponent bits.
    let ni = v.to_bits().wrapping_sub(ROUND.to_bits());
    let pow2 = f32::from_bits(ni.wrapping_add(127) << 23);
    if under {
        0.0
    } else {
        y * pow2
    }
}

/// `erfc(z)` for `z >= 0` (Numerical Recipes' `erfcc`, a Chebyshev fit of
/// `erfc(z) exp(z^2)` in `t = 1 / (1 + z / 2)`): relative error below 1.2e-7 in exact
/// arithmetic, a few f32 ulps more here.
#[inline(always)]
fn erfc_pos<const FMA: bool>(z: f32) -> f32 {
    let t = 1.0 / madd::<FMA>(0.5, z, 1.0);
    let mut p = madd::<FMA>(t, 0.170_872_77, -0.822_152_23);
    p = madd::<FMA>(t, p, 1.488_515_9);
    p = madd::<FMA>(t, p, -1.135_204);
    p = madd::<FMA>(t, p, 0.278_868_07);
    p = madd::<FMA>(t, p, -0.186_288_06);
    p = madd::<FMA>(t, p, 0.096_784_18);
    p = madd::<FMA>(t, p, 0.374_091_96);
    p = madd::<FMA>(t, p, 1.000_023_7);
    p = madd::<FMA>(t, p, -1.265_512_2);
    t * exp_f32::<FMA>(madd::<FMA>(-z, z, p))
}

/// `erf(x)` for f32: its Taylor series to `x^13` below 0.5 in magnitude (truncation below
/// 5e-10), `sign(x) (1 - erfc(|x|))` above; absolute error about 1e-7 (the tests check it below
/// 1e-6 against an f64 erf). Branch-free so that slices of it vectorise.
#[inline(always)]
pub fn erf_f32<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let e = 1.0 - erfc_pos::<FMA>(a);
    let e = if x < 0.0 { -e } else { e };
    let x2 = x * x;
    // 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320 + x^13/9360)
    let mut p = madd::<FMA>(x2, 1.205_533_1e-4, -8.548_327e-4);
    p = madd::<FMA>(x2, p, 5.223_977_6e-3);
    p = madd::<FMA>(x2, p, -2.686_617_1e-2);
    p = madd::<FMA>(x2, p, 1.128_379_2e-1);
    p = madd::<FMA>(x2, p, -3.761_263_9e-1);
    p = madd::<FMA>(x2, p, 1.128_379_2);
    let small = x * p;
    if a < 0.5 {
        small
    } else {
        e
    }
}

/// Exact GELU of one value, `0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2)`, from
/// `erfc` of `|x| / sqrt 2` so that neither tail cancels: `0.5 x erfc(|z|)` below 0,
/// `x - 0.5 x erfc(|z|)` above.
#[inline(always)]
pub fn gelu_f32<const FMA: bool>(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let h = 0.5 * x * erfc_pos::<FMA>(z);
    if x < 0.0 {
        h
    } else {
        x - h
    }
}

/// Softmax of every row of `width` values of `x` (row-major), in place: `exp(v - max) / sum`.
///
/// # Panics
/// If `width` is 0 or does not divide `x.len()`.
pub fn softmax_rows_in_place(x: &mut [f32], width: usize) {
    softmax_with(Path::detect(), x, width)
}

/// As [`softmax_rows_in_place`] with a chosen code path (tests).
///
/// # Panics
/// As [`softmax_rows_in_place`], or if this CPU cannot run `path`.
pub fn softmax_with(path: Path, x: &mut [f32], width: usize) {
    assert!(width > 0 && x.len() % width == 0, "{} values are not rows of {width}", x.len());
    assert!(path.available(), "{path:?} is not supported by this CPU");
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F was detected (asserted above); the function only indexes the slice.
        Path::Avx512 => unsafe { x86::softmax_avx512(x, width) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA were detected (asserted above).
        Path::Avx2 => unsafe { x86::softmax_avx2(x, width) },
        _ => softmax_slice::<false>(x, width),
    }
}

/// The softmax rows, with 16 partial maxima and sums (lanes the compiler vectorises).
#[inline(always)]
fn softmax_slice<const FMA: bool>(x: &mut [f32], width: usize) {
    const L: usize = 16;
    for row in x.chunks_exact_mut(width) {
        let mut lanes = [f32::NEG_INFINITY; L];
        let mut chunks = row.chunks_exact(L);
        for c in &mut chunks {
            for j in 0..L {
                lanes[j] = if c[j] > lanes[j] { c[j] } else { lanes[j] };
            }
        }
        let mut max = f32::NEG_INFINITY;
        for &v in chunks.remainder().iter().chain(lanes.iter()) {
            max = if v > max { v } else { max };
        }
        let mut sums = [0.0f32; L];
        let mut chunks = row.chunks_exact_mut(L);
        for c in &mut chunks {
            for j in 0..L {
                let e = exp_f32::<FMA>(c[j] - max);
                c[j] = e;
                sums[j] += e;
            }
        }
        let mut sum = 0.0f32;
        for v in chunks.into_remainder() {
            let e = exp_f32::<FMA>(*v - max);
            *v = e;
            sum += e;
        }
        sum += sums.iter().sum::<f32>();
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

#[inline(always)]
fn gelu_slice<const FMA: bool>(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_f32::<FMA>(*v);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{gelu_slice, softmax_slice, tile_portable, Tile, MR, NR};

    /// The AVX-512F `MR x NR` tile: 28 zmm accumulators.
    ///
    /// # Safety
    /// The CPU has AVX-512F, and `t.check()` holds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_avx512(t: Tile) {
        let Tile { kc, a, b, c, ldc, rows, cols, bias, load_c } = t;
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let cp = c.as_mut_ptr();
        let ap = a.as_ptr();
        let bp = b.as_ptr().cast::<f32>();
        for p in 0..kc {
            // SAFETY: `p < kc` and `b` holds `kc` rows of `NR` = 32 f32 (two `Line`s each), so
            // both 16-wide loads are inside `b` (unaligned loads: no alignment requirement,
            // though `Line` makes these 64-byte aligned); `a` holds `kc * MR` f32, so every
            // `p * MR + r` with `r < MR` is inside it. AVX-512F is enabled by the caller's check.
            unsafe {
                let b0 = _mm512_loadu_ps(bp.add(p * NR));
                let b1 = _mm512_loadu_ps(bp.add(p * NR + 16));
                let arow = ap.add(p * MR);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*arow.add(r));
                    acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
                    acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
                }
            }
        }
        let m0: __mmask16 = if cols >= 16 { 0xffff } else { (1u16 << cols) - 1 };
        let m1: __mmask16 = if cols >= NR {
            0xffff
        } else if cols > 16 {
            (1u16 << (cols - 16)) - 1
        } else {
            0
        };
        for (r, acc_r) in acc.iter().enumerate().take(rows) {
            // SAFETY: `r < rows`, and `c` holds `(rows - 1) * ldc + cols` f32 from the tile's
            // origin, so lanes `j < cols` of row `r` (offsets `r * ldc + j`) are inside it; the
            // masks `m0`/`m1` enable exactly the lanes `j < cols` (the second half's pointer
            // is formed with `wrapping_add`, and masked-off lanes are neither read nor
            // written, without faults). `bias` holds `NR` f32 (checked).
            unsafe {
                let row = cp.add(r * ldc);
                let row1 = row.wrapping_add(16);
                let mut y0 = acc_r[0];
                let mut y1 = acc_r[1];
                if let Some(bias) = bias {
                    y0 = _mm512_add_ps(y0, _mm512_loadu_ps(bias.as_ptr()));
                    y1 = _mm512_add_ps(y1, _mm512_loadu_ps(bias.as_ptr().add(16)));
                }
                if load_c {
                    y0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), y0);
                    y1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row1), y1);
                }
                _mm512_mask_storeu_ps(row, m0, y0);
                _mm512_mask_storeu_ps(row1, m1, y1);
            }
        }
    }

    /// The portable tile compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(t: Tile) {
        tile_portable::<true>(t)
    }

    /// GELU compiled for AVX-512F (16 lanes, FMA).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gelu_avx512(x: &mut [f32]) {
        gelu_slice::<true>(x)
    }

    /// Softmax compiled for AVX-512F.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn softmax_avx512(x: &mut [f32], width: usize) {
        softmax_slice::<true>(x, width)
    }

    /// Softmax compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_avx2(x: &mut [f32], width: usize) {
        softmax_slice::<true>(x, width)
    }

    /// GELU compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_avx2(x: &mut [f32]) {
        gelu_slice::<true>(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: reproducible inputs without a dependency.
    struct Rng(u64);
    impl Rng {
        fn f32(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let u = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
            (u as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.f32()).collect()
        }
    }

    fn paths() -> Vec<Path> {
        [Path::Avx512, Path::Avx2, Path::Portable].into_iter().filter(|p| p.available()).collect()
    }

    /// `a * w^T + bias (+ c0)` in f64, and the sum of absolute terms per entry (the scale of
    /// the rounding error).
    fn reference(
        a: &[f32],
        w: &[f32],
        bias: &[f32],
        c0: Option<&[f32]>,
        m: usize,
        n: usize,
        k: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut c = vec![0.0; m * n];
        let mut s = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = f64::from(bias[j]);
                let mut abs = f64::from(bias[j]).abs();
                if let Some(c0) = c0 {
                    acc += f64::from(c0[i * n + j]);
                    abs += f64::from(c0[i * n + j]).abs();
                }
                for p in 0..k {
                    let t = f64::from(a[i * k + p]) * f64::from(w[j * k + p]);
                    acc += t;
                    abs += t.abs();
                }
                c[i * n + j] = acc;
                s[i * n + j] = abs;
            }
        }
        (c, s)
    }

    fn check(m: usize, n: usize, k: usize, seed: u64) {
        let mut rng = Rng(seed | 1);
        let a = rng.vec(m * k);
        let w = rng.vec(n * k);
        let bias = rng.vec(n);
        let c0 = rng.vec(m * n);
        let (want, scale) = reference(&a, &w, &bias, None, m, n, k);
        let (want_add, scale_add) = reference(&a, &w, &bias, Some(&c0), m, n, k);
        let mut outs = Vec::new();
        for path in paths() {
            let lin = PackedLinear::with_path(&w, Some(&bias), n, k, path);
            let got = lin.forward(&a, m);
            let mut got_add = c0.clone();
            lin.forward_add(&a, m, &mut got_add);
            for (got, want, scale) in [(&got, &want, &scale), (&got_add, &want_add, &scale_add)] {
                for idx in 0..m * n {
                    let err = (f64::from(got[idx]) - want[idx]).abs();
                    // f32 accumulation of k + 2 terms: a few ulps of the absolute sum.
                    let tol = 1e-6 * scale[idx] * ((k + 2) as f64).sqrt().max(1.0) + 1e-30;
                    assert!(
                        err <= tol,
                        "{path:?} m={m} n={n} k={k}: [{}, {}] = {} vs {} (err {err:e}, tol {tol:e})",
                        idx / n,
                        idx % n,
                        got[idx],
                        want[idx]
                    );
                }
            }
            outs.push((path, got));
        }
        // The paths agree to float rounding (relative to the absolute sum).
        let (p0, first) = &outs[0];
        for (p, o) in &outs[1..] {
            for idx in 0..m * n {
                let d = (f64::from(o[idx]) - f64::from(first[idx])).abs();
                assert!(d <= 2e-6 * scale[idx] * ((k + 2) as f64).sqrt(), "{p0:?} vs {p:?} m={m} n={n} k={k}: {d:e}");
            }
        }
    }

    #[test]
    fn gemm_matches_f64_reference_on_edge_shapes() {
        let dims = [1usize, 7, 13, 31, 33, 64];
        let mut seed = 1;
        for &m in &dims {
            for &n in &dims {
                for &k in &dims {
                    seed += 1;
                    check(m, n, k, seed);
                }
            }
        }
    }

    #[test]
    fn gemm_matches_f64_reference_on_model_shapes() {
        // MiniLM (384, 1152 = fused q/k/v, 1536), MPNet (768, 3072), plus blocks past MC/KC.
        for (i, &(m, n, k)) in [
            (383, 384, 384),
            (230, 1152, 384),
            (97, 1536, 384),
            (229, 384, 1536),
            (15, 768, 3072),
            (MC + 1, 33, KC + 1),
            (2 * MC + 5, 65, 2 * KC + 7),
            (1, 1, 1536),
        ]
        .iter()
        .enumerate()
        {
            check(m, n, k, 1000 + i as u64);
        }
    }

    #[test]
    fn gemm_empty_and_k0() {
        for path in paths() {
            let lin = PackedLinear::with_path(&[], Some(&[1.0, 2.0, 3.0]), 3, 0, path);
            assert_eq!(lin.forward(&[], 2), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
            let lin = PackedLinear::with_path(&[0.5; 6], None, 3, 2, path);
            assert!(lin.forward(&[], 0).is_empty());
        }
    }

    /// f64 erf: `2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1 3 5 ... (2n+1))` (all terms
    /// positive: no cancellation) below 6, 1 beyond (1 - erf(6) < 3e-17).
    fn erf64(x: f64) -> f64 {
        let ax = x.abs();
        if ax >= 6.0 {
            return x.signum();
        }
        let mut term = ax;
        let mut sum = ax;
        let mut n = 0.0;
        while term > sum * 1e-18 {
            n += 1.0;
            term *= 2.0 * ax * ax / (2.0 * n + 1.0);
            sum += term;
        }
        x.signum() * 2.0 / std::f64::consts::PI.sqrt() * (-ax * ax).exp() * sum
    }

    #[test]
    fn erf64_reference_is_right() {
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
        ] {
            assert!((erf64(x) - want).abs() < 1e-14, "erf({x}) = {} vs {want}", erf64(x));
            assert!((erf64(-x) + want).abs() < 1e-14);
        }
    }

    #[test]
    fn erf_and_gelu_within_1e6_of_f64() {
        let xs: Vec<f32> =
            (-200_000..=200_000).map(|i| i as f32 * 1e-4).chain([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4]).collect();
        let mut max_erf = [0.0f64; 2];
        for &x in &xs {
            for (slot, e) in [erf_f32::<false>(x), erf_f32::<true>(x)].into_iter().enumerate() {
                let err = (f64::from(e) - erf64(f64::from(x))).abs();
                max_erf[slot] = max_erf[slot].max(err);
            }
        }
        eprintln!("erf max abs error (no FMA, FMA): {:e} {:e}", max_erf[0], max_erf[1]);
        assert!(max_erf[0] < 1e-6 && max_erf[1] < 1e-6, "{max_erf:?}");
        for path in paths() {
            let mut g = xs.clone();
            gelu_with(path, &mut g);
            let mut max_abs = 0.0f64;
            let mut max_rel = 0.0f64;
            for (&x, &y) in xs.iter().zip(&g) {
                let x = f64::from(x);
                let want = 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2));
                let err = (f64::from(y) - want).abs();
                // Absolute below 5 (the output is below 5 in magnitude), relative above (the
                // output's own f32 rounding grows with it).
                if x <= 5.0 {
                    max_abs = max_abs.max(err);
                } else {
                    max_rel = max_rel.max(err / want.abs());
                }
            }
            eprintln!("{path:?}: GELU max abs error (x <= 5) {max_abs:e}, max rel error (x > 5) {max_rel:e}");
            assert!(max_abs < 1e-6 && max_rel < 1e-6, "{path:?}: {max_abs:e} {max_rel:e}");
        }
    }

    #[test]
    fn exp_within_2_ulp() {
        let mut worst = [0.0f64; 2];
        for i in -87_000..=88_000 {
            let x = i as f32 * 1e-3 + 3.7e-4;
            let want = f64::from(x).exp();
            for (slot, y) in [exp_f32::<false>(x), exp_f32::<true>(x)].into_iter().enumerate() {
                worst[slot] = worst[slot].max((f64::from(y) - want).abs() / want);
            }
        }
        eprintln!("exp max relative error (no FMA, FMA): {:e} {:e}", worst[0], worst[1]);
        assert!(worst[0] < 2.4e-7 && worst[1] < 2.4e-7, "{worst:?}");
        assert_eq!(exp_f32::<true>(-90.0), 0.0);
        assert_eq!(exp_f32::<true>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32::<true>(0.0), 1.0);
    }

    #[test]
    fn softmax_matches_f64() {
        let mut rng = Rng(99);
        for width in [1usize, 5, 16, 17, 40, 384] {
            let rows = 7;
            let mut x: Vec<f32> = rng.vec(rows * width).iter().map(|v| v * 20.0).collect();
            // A masked entry, as the encoders' padding mask makes them.
            if width > 1 {
                x[width - 1] += -f32::MAX;
            }
            for path in paths() {
                let mut y = x.clone();
                softmax_with(path, &mut y, width);
                for r in 0..rows {
                    let row = &x[r * width..(r + 1) * width];
                    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
                    let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                    for j in 0..width {
                        let want = (f64::from(row[j]) - max).exp() / sum;
                        let got = f64::from(y[r * width + j]);
                        assert!((got - want).abs() <= 1e-6 * want + 1e-9, "{path:?} width {width}: {got} vs {want}");
                    }
                }
            }
        }
    }

    /// This thread's CPU time in seconds (`/proc/thread-self/schedstat`, nanoseconds on the CPU):
    /// steadier than wall time when the machine is shared.
    fn thread_cpu() -> f64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) * 1e-9
    }

    /// Speed against candle's matmul on the encoders' shapes, one thread, in thread CPU time
    /// (`cargo test --release -p hetune --features extract --lib sgemm::tests::speed --
    /// --ignored --nocapture`).
    #[test]
    #[ignore]
    fn speed() {
        use candle_core::{Device, Tensor};
        std::env::set_var("RAYON_NUM_THREADS", "1");
        let mut rng = Rng(7);
        for &(m, n, k) in &[
            (112usize, 64usize, 384usize),
            (960, 1152, 384),
            (960, 384, 384),
            (960, 1536, 384),
            (960, 384, 1536),
            (960, 2304, 768),
            (960, 768, 768),
            (960, 3072, 768),
            (960, 768, 3072),
        ] {
            let a = rng.vec(m * k);
            let w = rng.vec(n * k);
            let bias = rng.vec(n);
            let flops = 2.0 * (m * n * k) as f64;
            let lin = PackedLinear::new(&w, Some(&bias), n, k);
            let reps = (20 * 960 * 1152 * 384 / (m * n * k)).min(2000);
            std::hint::black_box(lin.forward(&a, m));
            let t = thread_cpu();
            for _ in 0..reps {
                std::hint::black_box(lin.forward(&a, m));
            }
            let ours = (thread_cpu() - t) / reps as f64;
            let at = Tensor::from_vec(a.clone(), (m, k), &Device::Cpu).unwrap();
            let wt = Tensor::from_vec(w.clone(), (n, k), &Device::Cpu).unwrap();
            let bt = Tensor::from_vec(bias.clone(), n, &Device::Cpu).unwrap();
            let lin_c = candle_nn::Linear::new(wt, Some(bt));
            std::hint::black_box(candle_core::Module::forward(&lin_c, &at).unwrap());
            let t = thread_cpu();
            for _ in 0..reps {
                std::hint::black_box(candle_core::Module::forward(&lin_c, &at).unwrap());
            }
            let theirs = (thread_cpu() - t) / reps as f64;
            eprintln!(
                "m={m} n={n} k={k}: ours {:.2} ms CPU ({:.1} GFLOP/s), candle {:.2} ms CPU ({:.1} GFLOP/s)",
                ours * 1e3,
                flops / ours / 1e9,
                theirs * 1e3,
                flops / theirs / 1e9
            );
        }
    }
}
