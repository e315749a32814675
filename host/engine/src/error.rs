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
