//! The error type of the service crate: the engine's errors, plus files, `.npy` arrays, key
//! directories and command-line arguments. Every variant carries its cause, so that a caller (the
//! CLI, later the daemon mapping errors to HTTP statuses) can decide what to do without reading
//! a message.

use std::path::PathBuf;

/// Everything that can go wrong in the service: engine (evaluator, circuits, learning), CLI and
/// I/O failures are all values of this type; none of them panics on input from outside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure of the core: parameters, encoding, wire decoding (of data not read from a file;
    /// see [`Error::Corrupt`]).
    #[error(transparent)]
    Core(#[from] hetune_core::Error),
    /// A failure of the compute engine (other than a core failure, which is [`Error::Core`],
    /// and an argument out of range, which is [`Error::InvalidArgument`]).
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
    #[error("{}: not a supported .npy file: {problem}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: NpyProblem,
    },
    /// A file in the wire format that the core refuses (corrupt, truncated, another parameter
    /// set, an unexpected record).
    #[error("{}: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The core's wire error.
        source: hetune_core::Error,
    },
    /// A key file that must not be used as it is.
    #[error("{}: {problem}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: KeyFileProblem,
    },
    /// Keys of parameters below 128-bit security, without the named opt-in.
    #[error("{}: {source}; pass --insecure-testing-only to use these keys anyway (tests only)", path.display())]
    InsecureKeys {
        /// The key file.
        path: PathBuf,
        /// The core's refusal.
        source: hetune_core::Error,
    },
    /// A key file lacks a key the command needs.
    #[error("{}: no {key} in the bundle", path.display())]
    MissingKey {
        /// The key file.
        path: PathBuf,
        /// Which key.
        key: &'static str,
    },
    /// A preset name that does not exist.
    #[error("unknown preset {name:?} (known: {})", known.join(", "))]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The presets that exist.
        known: Vec<&'static str>,
    },
    /// An insecure preset without the named opt-in.
    #[error("preset {0} is INSECURE (tests only); pass --insecure-testing-only to use it anyway")]
    InsecurePreset(String),
    /// Bootstrapping keys for a preset that reserves no limbs for bootstrapping.
    #[error("preset {0} reserves no limbs for bootstrapping")]
    NotBootstrappable(String),
    /// A command-line value that cannot be parsed or is out of range.
    #[error("bad {name} {value:?} (expected {expected})")]
    BadArgument {
        /// The argument.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is expected.
        expected: String,
    },
    /// A command-line argument another one needs.
    #[error("{name} is needed with {with}")]
    MissingArgument {
        /// The argument missing.
        name: &'static str,
        /// The argument that needs it.
        with: &'static str,
    },
    /// Two matrices (or a matrix and what it is used for) whose shapes do not fit: what they
    /// belong to, the shape given (`found`) and the shape needed (`expected`), rows x columns.
    #[error("{what}: {} x {} given, {} x {} needed", found.0, found.1, expected.0, expected.1)]
    ShapeMismatch { what: &'static str, found: (usize, usize), expected: (usize, usize) },
    /// A report that cannot be serialised.
    #[error("cannot serialise the report: {0}")]
    Report(#[from] serde_json::Error),
    /// An argument is out of range for the operation.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A training schedule whose logits leave the softmax approximation's input range (found by
    /// the plaintext twin before anything is encrypted).
    #[error(
        "the schedule drives the logits to {max_logit:.1} in epoch {epoch}, beyond the softmax approximation's range of \
         {bound}: lower --lr (now {lr}) or standardise the features (--standardize on)"
    )]
    LogitsOutOfRange {
        /// First epoch out of range.
        epoch: usize,
        /// Largest |logit| of that epoch.
        max_logit: f64,
        /// The approximation's bound.
        bound: f64,
        /// The learning rate.
        lr: f64,
    },
    /// A schedule whose weights (in the plaintext twin) grow beyond what the encrypted weights'
    /// bootstrapping holds.
    #[error(
        "the schedule's weights reach {max_weight:.2} in the plaintext twin, beyond the {bound} the encrypted \
         weights' bootstrapping holds: lower --lr (now {lr}) or standardise the features (--standardize on)"
    )]
    WeightsOutOfRange {
        /// Largest |weight| of the twin's model.
        max_weight: f64,
        /// The bound.
        bound: f64,
        /// The learning rate.
        lr: f64,
    },
    /// The daemon's job database failed.
    #[error("job store: {0}")]
    Store(String),
    /// The daemon answered a request of the owner's client with an error.
    #[error("daemon: HTTP {status}: {code}: {message}")]
    Daemon {
        /// HTTP status.
        status: u16,
        /// The error's code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The owner's client could not reach the daemon.
    #[error("daemon unreachable: {0}")]
    Http(String),
    /// A job was deleted or cancelled while it trained.
    #[error("the job was cancelled")]
    Cancelled,
    /// Another rank of a distributed run sent bytes that do not fit (a frame of another length,
    /// level or parameter set, an out-of-range coefficient, a message too long).
    #[error("distributed run: another rank sent {0}")]
    Peer(&'static str),
    /// A distributed run's message passing failed, or the run was asked for where it cannot be.
    #[error("distributed run: {0}")]
    Distributed(String),
    /// A working directory whose run differs from the one asked to resume.
    #[error("{}: the run recorded there has other data, preset, shape or schedule; resume it with the same arguments", dir.display())]
    ResumeMismatch {
        /// The working directory.
        dir: PathBuf,
    },
    /// The encrypted trainer this build needs is not there.
    #[error("encrypted training is unavailable: {0}")]
    TrainerUnavailable(&'static str),
    /// A model file or folder of `hetune extract` that cannot be used: missing, corrupt
    /// (safetensors, ONNX, tokenizer.json, config.json) or of an unsupported architecture.
    #[error("{}: cannot load the model: {message}", path.display())]
    Model {
        /// The model file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An input image of `hetune extract image` that cannot be used.
    #[error("{}: {problem}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        problem: ImageProblem,
    },
    /// A malformed row of an extraction input (a TSV line without its label, a CSV row without
    /// 785 values in 0..=255).
    #[error("{}: line {line}: {message}", path.display())]
    InputRow {
        /// The input file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The network of `hetune extract` failed on a batch (a shape the model refuses, for
    /// instance); the model and input were loaded, so this names the step that failed.
    #[error("feature extraction failed: {0}")]
    Inference(String),
    /// A figure that cannot be drawn or written.
    #[error("{}: cannot draw the figure: {message}", path.display())]
    Plot {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What is wrong with a `.npy` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpyProblem {
    /// The header or the data cannot be read.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// Fortran (column-major) order.
    #[error("Fortran order is not supported")]
    FortranOrder,
    /// A structured dtype.
    #[error("structured dtypes are not supported")]
    StructuredDtype,
    /// Another dtype than the one expected.
    #[error("dtype {found} (must be {expected})")]
    Dtype {
        /// The file's dtype.
        found: String,
        /// What the reader takes.
        expected: &'static str,
    },
    /// A vector where a matrix `[rows, columns]` is needed.
    #[error("a matrix [rows, columns] is needed, not a vector")]
    NotAMatrix,
    /// Neither one nor two dimensions.
    #[error("{0}-dimensional arrays are not supported")]
    Dimensions(usize),
    /// A shape whose element count overflows.
    #[error("shape overflows")]
    ShapeOverflow,
    /// A header longer than any plain array's.
    #[error("header of {bytes} bytes (a plain array's header is far shorter)")]
    HeaderTooLong {
        /// The declared header length.
        bytes: u64,
    },
    /// A header longer than the file.
    #[error("header larger than the file")]
    HeaderLargerThanFile,
    /// A shape larger than the file.
    #[error("shape larger than the file")]
    ShapeLargerThanFile,
    /// Fewer values than the shape.
    #[error("truncated data")]
    Truncated,
}

/// What is wrong with an input image of `hetune extract image`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageProblem {
    /// Not a PNG or JPEG file the decoder can read (corrupt, truncated, another format).
    #[error("cannot decode the image: {0}")]
    Decode(String),
    /// Dimensions beyond the cap, refused before the pixels are allocated.
    #[error("{width} x {height} pixels is larger than the {max} x {max} accepted")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Largest side accepted.
        max: u32,
    },
}

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileProblem {
    /// A directory where the key file should be.
    #[error("is a directory, not a key file")]
    IsDirectory,
    /// A secret key file others may read or write.
    #[error("mode {mode:03o} lets others read or write the secret key; run chmod 600 on it")]
    Permissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// A secret key outside the owner's folder of a key directory (beside the public bundle).
    #[error("a secret key beside the public bundle: move it to owner/secret.key (hetune keygen keeps owner/ and server/ apart) so it is never sent with server/")]
    Misplaced,
    /// Something other than a directory where the owner's key folder should be.
    #[error("is not a directory")]
    NotADirectory,
    /// A file too large to be a secret key.
    #[error("{bytes} bytes is too large for a secret key file")]
    TooLarge {
        /// The file's size.
        bytes: u64,
    },
}

impl From<hetune_engine::Error> for Error {
    /// Keeps one variant per cause: the engine's core failures and out-of-range arguments become
    /// the service's own [`Error::Core`] and [`Error::InvalidArgument`].
    fn from(e: hetune_engine::Error) -> Self {
        match e {
            hetune_engine::Error::Core(c) => Error::Core(c),
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

    /// A wire-format error of the file at `path`.
    pub fn corrupt(path: impl Into<PathBuf>, source: hetune_core::Error) -> Self {
        Error::Corrupt { path: path.into(), source }
    }
}

/// Result with the service error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
