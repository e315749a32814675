//! The feature rows the firmware encrypts: rows 0-7 of the SNIPS test split embedded with
//! all-MiniLM-L6-v2 (384 features, unit norm), as little-endian f32 (see data/README.md).

/// Rows embedded.
pub const ROWS: usize = 8;
/// Features per row.
pub const FEATURES: usize = 384;

static ROWS_F32_LE: &[u8; ROWS * FEATURES * 4] = include_bytes!("../data/snips_minilm_test_rows0-7.f32");

/// Feature `feature` of row `row`.
pub fn value(row: usize, feature: usize) -> f32 {
    let at = 4 * (row * FEATURES + feature);
    let b = &ROWS_F32_LE[at..at + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
