//! Pillow's bicubic resize of 8-bit channels, reproduced to the bit.
//!
//! The reference DINOv2 features were made with `Image.resize((224, 224), Image.BICUBIC)`, and
//! resizes differ between libraries (the `image` crate's Catmull-Rom uses a = -0.5 too, but works
//! in floating point and keeps no 8-bit intermediate). Pillow's algorithm (`Resample.c`):
//! - separable, horizontal pass first, then vertical;
//! - the cubic kernel with a = -0.5 and support 2, its support widened by the scale when
//!   downsampling (antialiasing), the taps of every output pixel normalised to sum 1;
//! - the taps in fixed point with 22 fractional bits, each pass rounding (add half, shift) and
//!   clamping to 0..=255, so the intermediate image is 8-bit as well.
//!
//! Following it to the bit makes the preprocessed tensor identical to Python's, which leaves
//! only the network's floating-point order as a source of difference.

/// Fractional bits of Pillow's fixed-point taps for 8-bit images (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// The taps of one axis: for every output index, the first input index and the fixed-point
/// weights (Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc`).
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    let mut start = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C casts truncate toward zero; the +0.5 makes them round for the positive values here.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(xmin as i64) as usize;
        let mut k: Vec<f64> = (xmin..xmax).map(|x| bicubic((x as f64 - center + 0.5) * ss)).collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            for w in &mut k {
                *w /= ww;
            }
        }
        let one = f64::from(1u32 << PRECISION_BITS);
        let fixed = k.iter().map(|&w| if w < 0.0 { (-0.5 + w * one) as i32 } else { (0.5 + w * one) as i32 }).collect();
        start.push(xmin);
        weights.push(fixed);
    }
    Taps { start, weights }
}

/// One fixed-point accumulation, rounded and clamped to a byte as Pillow's `clip8`.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes one 8-bit channel (`src` row-major, `w` x `h`) to `ow` x `oh` exactly as Pillow's
/// `Image.resize(..., BICUBIC)` does on each channel of an `L` or `RGB` image. A pass whose size
/// does not change is skipped, as Pillow skips it.
pub fn resize_bicubic_u8(src: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    debug_assert_eq!(src.len(), w * h);
    let half = 1i32 << (PRECISION_BITS - 1);
    // Horizontal pass: h rows of ow.
    let horiz: Vec<u8> = if ow != w {
        let t = taps(w, ow);
        let mut out = vec![0u8; ow * h];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            for (xx, o) in out[y * ow..(y + 1) * ow].iter_mut().enumerate() {
                let s = t.start[xx];
                let acc = t.weights[xx].iter().enumerate().fold(half, |a, (i, &k)| a + i32::from(row[s + i]) * k);
                *o = clip8(acc);
            }
        }
        out
    } else {
        src.to_vec()
    };
    if oh == h {
        return horiz;
    }
    // Vertical pass: oh rows of ow.
    let t = taps(h, oh);
    let mut out = vec![0u8; ow * oh];
    for yy in 0..oh {
        let s = t.start[yy];
        for x in 0..ow {
            let acc =
                t.weights[yy].iter().enumerate().fold(half, |a, (i, &k)| a + i32::from(horiz[(s + i) * ow + x]) * k);
            out[yy * ow + x] = clip8(acc);
        }
    }
    out
}
