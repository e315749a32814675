//! The one error type of the `hetune` host crate.

use std::path::PathBuf;

/// Everything that can go wrong on the host. Evaluator, CLI and I/O failures are all values of
/// this type; none of them panics on input from outside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure of the core: parameters, encoding, wire decoding.
    #[error(transparent)]
    Core(#[from] hetune_core::Error),
    /// A file that should exist does not.
    #[error("file not found: {}", .0.display())]
    NotFound(PathBuf),
    /// Any other I/O failure, with the path it concerns.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A malformed or unsupported .npy file.
    #[error("{}: not a supported .npy file: {reason}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key directory or bundle lacks what the command needs.
    #[error("{0}")]
    Keys(String),
    /// Arguments that do not fit together.
    #[error("{0}")]
    InvalidInput(String),
}

impl Error {
    /// Wraps an I/O error, mapping "not found" to [`Error::NotFound`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(path)
        } else {
            Error::Io { path, source }
        }
    }
}

/// Result with the host error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
