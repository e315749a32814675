//! A training directory: `{train,valid,test}_{x,y}.npy` (features `<f4`/`<f8` `[n, d]`, labels
//! `<i8` `[n]`; `valid` optional), read into the engine's plaintext [`Dataset`]s with every
//! check done before any heavy work: widths that differ between splits, labels out of range or
//! of the wrong count, files that are not what they claim.

use std::io::BufReader;
use std::path::Path;

use hetune_engine::error::DatasetProblem;
use hetune_engine::learning::dataset::{Dataset, HOLDOUT_FRACTION, HOLDOUT_SEED};

use super::npy::read_matrix;
use crate::error::NpyProblem;
use crate::{Error, Result};

fn split_problem(name: &str, problem: DatasetProblem) -> Error {
    hetune_engine::Error::Dataset { name: name.to_string(), problem }.into()
}

/// The splits of a training directory.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Training rows.
    pub train: Dataset,
    /// Validation rows: the directory's, or a seeded 12.5% held out of train.
    pub valid: Dataset,
    /// Test rows.
    pub test: Dataset,
    /// Whether `valid` was held out of the training file.
    pub valid_held_out: bool,
}

/// Reads a 1-D `<i8` label file, its length checked against the file before allocating.
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let bad = |problem: NpyProblem| Error::Npy { path: path.to_path_buf(), problem };
    let (file, len) = super::npy::open_npy(path)?;
    let npy = npyz::NpyFile::new(BufReader::new(file)).map_err(|e| bad(NpyProblem::Read(e)))?;
    let descr = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        _ => return Err(bad(NpyProblem::StructuredDtype)),
    };
    if descr != "<i8" {
        return Err(bad(NpyProblem::Dtype { found: descr, expected: "<i8 (int64 labels)" }));
    }
    let n = match npy.shape() {
        [n] => *n,
        s => return Err(bad(NpyProblem::Dimensions(s.len()))),
    };
    if n.checked_mul(8).is_none_or(|b| b > len) {
        return Err(bad(NpyProblem::ShapeLargerThanFile));
    }
    let y: Vec<i64> = npy.into_vec().map_err(|e| bad(NpyProblem::Read(e)))?;
    if y.len() as u64 != n {
        return Err(bad(NpyProblem::Truncated));
    }
    Ok(y)
}

/// One split as read: features (row-major), rows, columns, labels.
type RawSplit = (Vec<f64>, usize, usize, Vec<i64>);

fn read_split(dir: &Path, split: &str) -> Result<Option<RawSplit>> {
    let xp = dir.join(format!("{split}_x.npy"));
    if !xp.exists() {
        return Ok(None);
    }
    let x = read_matrix(&xp)?;
    if x.is_vector {
        return Err(Error::Npy { path: xp, problem: NpyProblem::NotAMatrix });
    }
    let y = read_labels(&dir.join(format!("{split}_y.npy")))?;
    Ok(Some((x.data, x.rows, x.cols, y)))
}

/// Reads and checks a training directory. The class count is one more than the largest label of
/// any split; `max_classes` bounds it (the packing's limit).
pub fn read_splits(dir: &Path, max_classes: usize) -> Result<Splits> {
    let need = |split: &str| read_split(dir, split)?.ok_or_else(|| Error::NotFound(dir.join(format!("{split}_x.npy"))));
    let train = need("train")?;
    let test = need("test")?;
    let valid = read_split(dir, "valid")?;
    let parts: Vec<(&str, &RawSplit)> = [("train", Some(&train)), ("valid", valid.as_ref()), ("test", Some(&test))]
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n, p)))
        .collect();
    for (name, p) in &parts {
        if p.2 != train.2 {
            return Err(split_problem(name, DatasetProblem::Width { features: p.2, train_features: train.2 }));
        }
        if let Some((row, &label)) = p.3.iter().enumerate().find(|(_, &l)| l < 0) {
            return Err(split_problem(name, DatasetProblem::NegativeLabel { row, label }));
        }
    }
    let classes = parts.iter().flat_map(|(_, p)| p.3.iter()).max().map_or(0, |&m| m as usize + 1);
    if classes > max_classes {
        return Err(split_problem("labels", DatasetProblem::TooManyClasses { classes, max: max_classes }));
    }
    let ds = |name: &str, p: RawSplit| Dataset::new(name, p.0, p.1, p.2, &p.3, classes);
    let train = ds("train", train)?;
    let test = ds("test", test)?;
    Ok(match valid {
        Some(v) => Splits { train, valid: ds("valid", v)?, test, valid_held_out: false },
        None => {
            let (train, valid) = train.split_holdout(HOLDOUT_FRACTION, HOLDOUT_SEED)?;
            Splits { train, valid, test, valid_held_out: true }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::npy::{write_matrix, Dtype, Matrix};
    use npyz::WriterBuilder;
    use std::fs::File;

    fn write_labels(path: &Path, y: &[i64]) {
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[y.len() as u64])
            .writer(std::io::BufWriter::new(File::create(path).unwrap()))
            .begin_nd()
            .unwrap();
        w.extend(y.iter().copied()).unwrap();
        w.finish().unwrap();
    }

    fn write_split(dir: &Path, split: &str, rows: usize, cols: usize, y: &[i64]) {
        let m = Matrix { rows, cols, data: vec![0.5; rows * cols], dtype: Dtype::F32, is_vector: false };
        write_matrix(&dir.join(format!("{split}_x.npy")), &m).unwrap();
        write_labels(&dir.join(format!("{split}_y.npy")), y);
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("hetune-splits-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_directory_without_valid_holds_out_train_rows() {
        let d = tmp("ok");
        write_split(&d, "train", 16, 3, &[0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
        write_split(&d, "test", 4, 3, &[0, 1, 2, 2]);
        let s = read_splits(&d, 16).unwrap();
        assert_eq!((s.train.rows, s.valid.rows, s.test.rows, s.train.classes), (14, 2, 4, 3));
        assert!(s.valid_held_out);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bad_directories_are_clear_errors() {
        let d = tmp("bad");
        write_split(&d, "train", 4, 3, &[0, 1, 0, 1]);
        write_split(&d, "test", 2, 4, &[0, 1]);
        let e = read_splits(&d, 16).unwrap_err().to_string();
        assert!(e.contains("test rows have 4 features but train rows have 3"), "{e}");
        write_split(&d, "test", 2, 3, &[0, 17]);
        let e = read_splits(&d, 16).unwrap_err().to_string();
        assert!(e.contains("more than the packing allows (16)"), "{e}");
        write_split(&d, "test", 2, 3, &[0, -1]);
        assert!(read_splits(&d, 16).unwrap_err().to_string().contains("negative label -1"));
        write_split(&d, "test", 2, 3, &[0, 1, 1]);
        assert!(read_splits(&d, 16).unwrap_err().to_string().contains("3 labels for 2 feature rows"));
        std::fs::remove_file(d.join("test_x.npy")).unwrap();
        assert!(matches!(read_splits(&d, 16), Err(Error::NotFound(_))));
        let m = Matrix { rows: 1, cols: 2, data: vec![1.0, 2.0], dtype: Dtype::F64, is_vector: true };
        write_matrix(&d.join("train_y.npy"), &m).unwrap();
        assert!(read_labels(&d.join("train_y.npy")).unwrap_err().to_string().contains("must be <i8"));
        std::fs::remove_dir_all(d).unwrap();
    }
}
