//! Reading and writing `.npy` arrays (f32 or f64, one or two dimensions, C order), with sizes
//! checked against the file before anything is allocated.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{Error, NpyProblem, Result};

/// Element type of an array file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `<f8`.
    F64,
    /// `<f4`.
    F32,
}

/// A dense row-major matrix of f64 (a vector is one row... or `rows x 1`, as its file says).
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row-major values.
    pub data: Vec<f64>,
    /// Element type of the file it came from (or will go to).
    pub dtype: Dtype,
    /// Whether the file held a one-dimensional array.
    pub is_vector: bool,
}

fn bad(path: &Path, problem: NpyProblem) -> Error {
    Error::Npy { path: path.to_path_buf(), problem }
}

/// Longest npy header read (numpy writes plain arrays' headers in 128 bytes or less).
const MAX_HEADER: u64 = 4096;

/// Opens an npy file whose header fits in it: the header's declared length (16 bits in format
/// 1.0, 32 bits in 2.0 and 3.0) is checked against the file before the npy reader allocates a
/// buffer of that length (the host fuzz target found a 105-byte file whose header claimed 662 MB).
/// Returns the file, rewound, and its length.
pub(crate) fn open_npy(path: &Path) -> Result<(File, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut pre = [0u8; 12];
    let got = file.read(&mut pre).map_err(|e| Error::io(path, e))?;
    let header_end = match (got, &pre[..6], pre[6]) {
        (10.., b"\x93NUMPY", 1) => 10 + u64::from(u16::from_le_bytes([pre[8], pre[9]])),
        (12.., b"\x93NUMPY", 2 | 3) => 12 + u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
        _ => {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "not an npy file (magic or version)");
            return Err(bad(path, NpyProblem::Read(e)));
        }
    };
    if header_end > file_len {
        return Err(bad(path, NpyProblem::HeaderLargerThanFile));
    }
    // The header is a Python literal; the npy reader's parser takes time exponential in its
    // nesting (the fuzz target found a 251-byte header of nested brackets that ran for half an
    // hour). The arrays read here have a plain dtype and a shape: one dict, one tuple, no list.
    let start = if pre[6] == 1 { 10 } else { 12 };
    let header_len = header_end - start;
    if header_len > MAX_HEADER {
        return Err(bad(path, NpyProblem::HeaderTooLong { bytes: header_len }));
    }
    let mut header = vec![0u8; header_len as usize];
    file.seek(SeekFrom::Start(start)).map_err(|e| Error::io(path, e))?;
    file.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if count(b'[') > 0 || count(b'{') > 1 || count(b'(') > 1 {
        return Err(bad(path, NpyProblem::StructuredDtype));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    Ok((file, file_len))
}

/// Reads a 1-D or 2-D f32/f64 array. A 1-D array of length n becomes a 1 x n matrix.
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    let (file, file_len) = open_npy(path)?;
    let npy = npyz::NpyFile::new(BufReader::new(file)).map_err(|e| bad(path, NpyProblem::Read(e)))?;
    if npy.order() != npyz::Order::C {
        return Err(bad(path, NpyProblem::FortranOrder));
    }
    let descr = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        _ => return Err(bad(path, NpyProblem::StructuredDtype)),
    };
    let (dtype, size) = match descr.as_str() {
        "<f8" => (Dtype::F64, 8u64),
        "<f4" => (Dtype::F32, 4u64),
        other => return Err(bad(path, NpyProblem::Dtype { found: other.to_string(), expected: "<f4 or <f8" })),
    };
    let shape = npy.shape().to_vec();
    let (rows, cols, is_vector) = match shape.as_slice() {
        [n] => (1u64, *n, true),
        [r, c] => (*r, *c, false),
        _ => return Err(bad(path, NpyProblem::Dimensions(shape.len()))),
    };
    let count = rows.checked_mul(cols).ok_or_else(|| bad(path, NpyProblem::ShapeOverflow))?;
    // Never allocate more than the file can hold.
    if count.checked_mul(size).is_none_or(|b| b > file_len) {
        return Err(bad(path, NpyProblem::ShapeLargerThanFile));
    }
    let data: Vec<f64> = match dtype {
        Dtype::F64 => npy.into_vec::<f64>().map_err(|e| bad(path, NpyProblem::Read(e)))?,
        Dtype::F32 => {
            npy.into_vec::<f32>().map_err(|e| bad(path, NpyProblem::Read(e)))?.into_iter().map(f64::from).collect()
        }
    };
    if data.len() as u64 != count {
        return Err(bad(path, NpyProblem::Truncated));
    }
    Ok(Matrix { rows: rows as usize, cols: cols as usize, data, dtype, is_vector })
}

/// Writes a matrix (or vector) in its dtype.
pub fn write_matrix(path: &Path, m: &Matrix) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let shape: Vec<u64> = if m.is_vector { vec![m.data.len() as u64] } else { vec![m.rows as u64, m.cols as u64] };
    let w = BufWriter::new(file);
    let res = match m.dtype {
        Dtype::F64 => {
            let mut wr = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&shape)
                .writer(w)
                .begin_nd()
                .map_err(|e| Error::io(path, e))?;
            wr.extend(m.data.iter().copied()).map_err(|e| Error::io(path, e))?;
            wr.finish()
        }
        Dtype::F32 => {
            let mut wr = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&shape)
                .writer(w)
                .begin_nd()
                .map_err(|e| Error::io(path, e))?;
            wr.extend(m.data.iter().map(|&v| v as f32)).map_err(|e| Error::io(path, e))?;
            wr.finish()
        }
    };
    res.map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let dir = std::env::temp_dir().join(format!("hetune-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (dtype, is_vector) in [(Dtype::F64, false), (Dtype::F32, true)] {
            let m = Matrix {
                rows: if is_vector { 1 } else { 3 },
                cols: if is_vector { 6 } else { 2 },
                data: vec![0.5, -1.25, 3.0, 4.0, 1e-3, 7.0],
                dtype,
                is_vector,
            };
            let p = dir.join("m.npy");
            write_matrix(&p, &m).unwrap();
            let back = read_matrix(&p).unwrap();
            assert_eq!(back.rows, m.rows);
            assert_eq!(back.cols, m.cols);
            assert_eq!(back.is_vector, is_vector);
            for (a, b) in back.data.iter().zip(&m.data) {
                assert!((a - b).abs() < 1e-6);
            }
            // Truncated file: a typed error, no panic, no huge allocation.
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
            assert!(matches!(read_matrix(&p), Err(Error::Npy { .. })));
            std::fs::write(&p, b"not an npy file at all").unwrap();
            assert!(matches!(read_matrix(&p), Err(Error::Npy { .. })));
        }
        assert!(matches!(read_matrix(&dir.join("missing.npy")), Err(Error::NotFound(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
