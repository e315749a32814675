//! The error type of the compute engine.

/// Everything that can go wrong in the evaluator, the circuits and encrypted learning; none of
/// them panics on input from outside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure of the core: parameters, encoding, wire decoding.
    #[error(transparent)]
    Core(#[from] hetune_core::Error),
    /// Evaluator: an operand or key does not belong to the evaluator's parameter set.
    #[error("parameter mismatch: {0}")]
    ParameterMismatch(&'static str),
    /// Evaluator: no rotation key, nor any combination of the rotation keys given, rotates by
    /// this step.
    #[error(
        "no rotation key for step {step} (modulo {slots} slots), and the rotation keys given do not \
         compose to it: generate a key for step {step}"
    )]
    MissingRotationKey {
        /// The rotation step asked for (left rotation; negative rotates right).
        step: i64,
        /// Number of slots of the ciphertext (the step is taken modulo this).
        slots: usize,
    },
    /// Evaluator: conjugation was asked for but the evaluation keys hold no conjugation key.
    #[error("no conjugation key in the evaluation keys")]
    MissingConjugationKey,
    /// Evaluator: a key switch by a Galois element without a key.
    #[error("no Galois key for element {0} in the evaluation keys")]
    MissingGaloisKey(u64),
    /// Evaluator: bootstrapping without the encapsulation pair in the evaluation keys.
    #[error("no encapsulation keys in the evaluation keys (generate them for bootstrapping)")]
    MissingEncapsulationKeys,
    /// A key store that cannot deliver a key it lists (a file gone or corrupt).
    #[error("key store: {0}")]
    KeyStore(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Evaluator: relinearisation was asked for but the evaluation keys hold no relinearisation key.
    #[error("no relinearisation key in the evaluation keys")]
    MissingRelinearizationKey,
    /// Evaluator: the ciphertext has no level left for the operation.
    #[error("{op}: the ciphertext at level {level} has no level left (bootstrap, or use deeper parameters)")]
    LevelExhausted {
        /// The operation that needed a level.
        op: &'static str,
        /// The ciphertext's level.
        level: usize,
    },
    /// Evaluator: two operands' scales differ and neither is an integer multiple of the other.
    #[error(
        "scales 2^{:.6} and 2^{:.6} cannot be reconciled (neither equal nor an integer multiple of each other): \
         bring one to the other's scale first (Evaluator::set_scale)",
        left.log2(),
        right.log2()
    )]
    ScaleMismatch {
        /// Scale of the left operand.
        left: f64,
        /// Scale of the right operand.
        right: f64,
    },
    /// Evaluator: the result's scale would not fit below the modulus at the operands' level, so
    /// the result would be garbage.
    #[error(
        "result scale 2^{log2_scale:.1} does not fit the modulus 2^{log2_modulus:.1} at this level (rescale first)"
    )]
    ScaleOverflow {
        /// log2 of the scale the result would have.
        log2_scale: f64,
        /// log2 of the modulus at the operands' level.
        log2_modulus: f64,
    },
    /// Evaluator: operands pack different numbers of slots.
    #[error("operands pack 2^{left} and 2^{right} slots")]
    SlotCountMismatch {
        /// log2 of the left operand's slot count.
        left: u32,
        /// log2 of the right operand's slot count.
        right: u32,
    },
    /// Evaluator: an argument is out of range for the operation.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A level above the top of the parameter set's chain.
    #[error("level {level} above the top level {top}")]
    LevelAboveTop {
        /// The level asked for.
        level: usize,
        /// The parameter set's top level.
        top: usize,
    },
    /// Learning: a packing that cannot hold the matrix or the classes asked for.
    #[error("invalid packing: {0}")]
    InvalidPacking(PackingError),
    /// Learning: an operand's layout (packing or tiling) is not the one the operation takes.
    #[error("{op} takes {expected}")]
    LayoutMismatch {
        /// The operation.
        op: &'static str,
        /// The layout it takes.
        expected: &'static str,
    },
    /// Learning: the operands' shapes do not fit the operation (rows x columns of each).
    #[error("{op}: A is {} x {}, B is {} x {}", left.0, left.1, right.0, right.1)]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Shape of the left operand.
        left: (usize, usize),
        /// Shape of the right operand.
        right: (usize, usize),
    },
    /// Learning: a number of values or blocks that does not fit the matrix's shape.
    #[error("{found} {what} for a {} x {} matrix ({expected} expected)", shape.0, shape.1)]
    CountMismatch {
        /// What was counted (values, blocks).
        what: &'static str,
        /// How many were given.
        found: usize,
        /// How many the shape needs.
        expected: usize,
        /// The matrix's shape.
        shape: (usize, usize),
    },
    /// Learning: a configuration outside what the method supports.
    #[error("{what} needs {need}")]
    InvalidConfig {
        /// The method or setting.
        what: &'static str,
        /// What it needs.
        need: &'static str,
    },
    /// Learning: a polynomial approximation whose input may leave its interval.
    #[error(
        "{what}: after round {round} the input may reach [{:.3e}, {:.3e}], outside the interval \
         [{:.3e}, {:.3e}]: raise the approximation's degree",
        range.0, range.1, interval.0, interval.1
    )]
    ApproximationRange {
        /// The approximation.
        what: &'static str,
        /// The round after which the range escapes.
        round: usize,
        /// The range the input may reach.
        range: (f64, f64),
        /// The interval of the next approximation.
        interval: (f64, f64),
    },
    /// Learning: a plaintext dataset that cannot be used.
    #[error("{}", dataset_message(name, problem))]
    Dataset {
        /// The split (train, valid, test).
        name: String,
        /// What is wrong.
        problem: DatasetProblem,
    },
}

/// "train: 3 labels for 2 feature rows", but "test rows have 4 features ...", "valid has 4 features ...".
fn dataset_message(name: &str, problem: &DatasetProblem) -> String {
    match problem {
        DatasetProblem::Width { .. } | DatasetProblem::Mismatch { .. } => format!("{name} {problem}"),
        _ => format!("{name}: {problem}"),
    }
}

/// What is wrong with a dataset.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetProblem {
    /// The feature values do not form non-empty rows of the width given.
    #[error("{values} feature values do not form {rows} non-empty rows of {cols} columns")]
    Shape {
        /// Feature values given.
        values: usize,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// Another number of labels than of rows.
    #[error("{labels} labels for {rows} feature rows")]
    LabelCount {
        /// Labels given.
        labels: usize,
        /// Feature rows.
        rows: usize,
    },
    /// Fewer than two classes.
    #[error("{0} classes (at least 2 needed)")]
    TooFewClasses(usize),
    /// A label outside `0..classes`.
    #[error("label {label} of row {row} is outside 0..{classes}")]
    LabelOutOfRange {
        /// The row.
        row: usize,
        /// Its label.
        label: i64,
        /// The class count.
        classes: usize,
    },
    /// A feature that is NaN or infinite.
    #[error("feature {col} of row {row} is not finite")]
    NotFinite {
        /// The row.
        row: usize,
        /// The column.
        col: usize,
    },
    /// A hold-out fraction that leaves no training or no validation row.
    #[error("cannot hold out {fraction} of {rows} rows")]
    Holdout {
        /// The fraction asked for.
        fraction: f64,
        /// Rows of the set.
        rows: usize,
    },
    /// Rows of another width than the training rows (splits from different encoders).
    #[error(
        "rows have {features} features but train rows have {train_features}: the splits must come from one encoder"
    )]
    Width {
        /// Features of this split.
        features: usize,
        /// Features of the training split.
        train_features: usize,
    },
    /// A negative label.
    #[error("negative label {label} in row {row}")]
    NegativeLabel {
        /// The row.
        row: usize,
        /// Its label.
        label: i64,
    },
    /// More classes than the packing allows.
    #[error("labels run to {} ({classes} classes), more than the packing allows ({max})", classes - 1)]
    TooManyClasses {
        /// Classes found.
        classes: usize,
        /// Classes allowed.
        max: usize,
    },
    /// Another width or class count than the training set's (or the standardiser's).
    #[error("has {features} features and {classes} classes, train {train_features} and {train_classes}")]
    Mismatch {
        /// Features of this set.
        features: usize,
        /// Classes of this set.
        classes: usize,
        /// Features of the training set.
        train_features: usize,
        /// Classes of the training set.
        train_classes: usize,
    },
}

/// Why a packing is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackingError {
    /// No classes or no rows.
    #[error("a packing needs at least one class and one row")]
    Empty,
    /// The slot count is not a power of two.
    #[error("slot count {0} is not a power of two")]
    SlotsNotPowerOfTwo(usize),
    /// `pad_c` classes (twice, for the paired diagonals) do not fit the slots.
    #[error("{classes} classes do not fit {slots} slots")]
    TooManyClasses {
        /// Classes asked for.
        classes: usize,
        /// Slots.
        slots: usize,
    },
    /// Block shape and class period that do not form a packing.
    #[error("s0 = {s0}, s1 = {s1}, pad_c = {pad_c} is not a packing")]
    Shape {
        /// Block rows.
        s0: usize,
        /// Block columns.
        s1: usize,
        /// Class period.
        pad_c: usize,
    },
    /// The packing's slot count is not the parameter set's.
    #[error("a packing of {packing} slots for a parameter set of {params} slots")]
    Slots {
        /// Slots of the packing.
        packing: usize,
        /// Slots of the parameter set.
        params: usize,
    },
    /// A weight matrix with no compact layout (more rows than the class period, or more slots
    /// than the packing has).
    #[error("a {rows} x {cols} weight matrix has no compact layout in {slots} slots with period {pad_c}")]
    Compact {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Slots of the packing.
        slots: usize,
        /// The class period.
        pad_c: usize,
    },
    /// A matrix too large to be tiled with the class period.
    #[error("a {rows} x {cols} matrix cannot be tiled {tiling} with period {pad_c}")]
    Tiling {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// The tiling asked for.
        tiling: &'static str,
        /// The class period.
        pad_c: usize,
    },
}

impl From<PackingError> for Error {
    fn from(e: PackingError) -> Self {
        Error::InvalidPacking(e)
    }
}

/// Result with the engine error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
