//! The error type of the compute engine.

/// Everything that can go wrong in the evaluator, the circuits and encrypted learning; none of
/// them panics on input from outside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure of the core: parameters, encoding, wire decoding.
    #[error(transparent)]
    Core(#[from] hetune_core::Error),
    /// Arguments that do not fit together.
    #[error("{0}")]
    InvalidInput(String),
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
}

/// Result with the engine error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
