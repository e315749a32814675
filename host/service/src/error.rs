//! The error type of the service crate: the engine's errors, plus files, `.npy` arrays and key
//! directories.

use std::path::PathBuf;

/// Everything that can go wrong in the service: engine (evaluator, circuits, learning), CLI and
/// I/O failures are all values of this type; none of them panics on input from outside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure of the core: parameters, encoding, wire decoding.
    #[error(transparent)]
    Core(#[from] hetune_core::Error),
    /// A failure of the compute engine (other than a core failure, which is [`Error::Core`],
    /// and invalid input, which is [`Error::InvalidInput`]).
    #[error(transparent)]
    Engine(hetune_engine::Error),
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
    /// An argument is out of range for the operation.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl From<hetune_engine::Error> for Error {
    /// Keeps one variant per cause: the engine's core failures and invalid input become the
    /// service's own [`Error::Core`], [`Error::InvalidInput`] and [`Error::InvalidArgument`].
    fn from(e: hetune_engine::Error) -> Self {
        match e {
            hetune_engine::Error::Core(c) => Error::Core(c),
            hetune_engine::Error::InvalidInput(s) => Error::InvalidInput(s),
            hetune_engine::Error::InvalidArgument(s) => Error::InvalidArgument(s),
            e => Error::Engine(e),
        }
    }
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

/// Result with the service error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
