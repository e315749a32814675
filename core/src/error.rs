//! The one error type of `hetune-core`.

use core::fmt;

/// Kinds of wire object, as numbered in `docs/wire-format.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u16)]
pub enum ObjectKind {
    /// A parameter set.
    Parameters = 1,
    /// A public encryption key.
    PublicKey = 2,
    /// A relinearisation key.
    RelinKey = 3,
    /// A Galois (rotation or conjugation) key.
    GaloisKey = 4,
    /// A ciphertext with every polynomial in full.
    Ciphertext = 5,
    /// A ciphertext whose uniform half is replaced by a 32-byte seed.
    SeededCiphertext = 6,
    /// An encoded plaintext polynomial.
    Plaintext = 7,
    /// The owner's secret key (owner-local files only, never sent).
    SecretKey = 8,
    /// The header of an encrypted tensor, followed by its ciphertext records.
    TensorHeader = 9,
    /// A sparse-secret encapsulation key (bootstrapping).
    EncapsulationKey = 10,
}

impl ObjectKind {
    /// Decodes a kind number.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Parameters,
            2 => Self::PublicKey,
            3 => Self::RelinKey,
            4 => Self::GaloisKey,
            5 => Self::Ciphertext,
            6 => Self::SeededCiphertext,
            7 => Self::Plaintext,
            8 => Self::SecretKey,
            9 => Self::TensorHeader,
            10 => Self::EncapsulationKey,
            _ => return None,
        })
    }
}

/// Everything that can go wrong in the core, including each failure class of wire decoding.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// A parameter literal or set is inconsistent.
    InvalidParameters(&'static str),
    /// The parameter set exceeds the 128-bit bound and the caller did not opt into insecure sets.
    Insecure {
        /// log2 N.
        log_n: u32,
        /// log2(QP), rounded up.
        log_qp: u32,
        /// The HomomorphicEncryption.org bound for this N.
        max_log_qp: u32,
    },
    /// The secret or error distribution is outside what the 128-bit bounds were estimated for, and
    /// the caller did not opt into insecure sets.
    InsecureDistribution(&'static str),
    /// No preset has that name.
    UnknownPreset,
    /// An operation's arguments do not fit (lengths, levels, slots).
    InvalidArgument(&'static str),
    /// A value does not fit the encoding at this scale.
    EncodingOverflow,
    /// Wire: the record does not start with the magic bytes.
    BadMagic,
    /// Wire: the format version is not one this build reads.
    UnsupportedVersion(u16),
    /// Wire: a record of another kind than expected.
    WrongKind {
        /// The kind the caller asked for.
        expected: u16,
        /// The kind in the record.
        found: u16,
    },
    /// Wire: the record belongs to another parameter set.
    FingerprintMismatch,
    /// Wire: the stream ended inside a record.
    Truncated,
    /// Wire: a residue is not below its modulus.
    ResidueOutOfRange {
        /// Limb index within the polynomial.
        limb: u32,
    },
    /// Wire: a declared length, the memory its decoding needs, or the context a parameter record
    /// implies exceeds the caller's limit.
    LimitExceeded {
        /// Bytes the record declares or needs.
        declared: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// Wire: the allocator refused a buffer the limits allowed.
    AllocationFailed {
        /// Bytes requested.
        bytes: u64,
    },
    /// Wire: the checksum does not match the bytes.
    ChecksumMismatch,
    /// Wire: a header field is inconsistent (unknown flag, impossible level, wrong length).
    Malformed(&'static str),
    /// Wire: the sink or source failed.
    Io,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidParameters(why) => write!(f, "invalid parameters: {why}"),
            Error::Insecure { log_n, log_qp, max_log_qp } => write!(
                f,
                "insecure parameters: log2(QP) = {log_qp} exceeds the 128-bit bound {max_log_qp} for N = 2^{log_n} \
                 (opt in with Security::InsecureForTestingOnly for tests only)"
            ),
            Error::InsecureDistribution(why) => {
                write!(f, "insecure parameters: {why} (opt in with Security::InsecureForTestingOnly for tests only)")
            }
            Error::UnknownPreset => write!(f, "unknown parameter preset"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::EncodingOverflow => write!(f, "value too large to encode at this scale"),
            Error::BadMagic => write!(f, "not a hetune wire record (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported wire format version {v}"),
            Error::WrongKind { expected, found } => {
                write!(f, "wrong object kind: expected {expected}, found {found}")
            }
            Error::FingerprintMismatch => {
                write!(f, "object belongs to a different parameter set (fingerprint mismatch)")
            }
            Error::Truncated => write!(f, "truncated record"),
            Error::ResidueOutOfRange { limb } => write!(f, "corrupt record: residue out of range in limb {limb}"),
            Error::LimitExceeded { declared, limit } => {
                write!(f, "record needs {declared} bytes, above the limit of {limit}")
            }
            Error::AllocationFailed { bytes } => write!(f, "could not allocate {bytes} bytes while decoding a record"),
            Error::ChecksumMismatch => write!(f, "corrupt record: checksum mismatch"),
            Error::Malformed(why) => write!(f, "malformed record: {why}"),
            Error::Io => write!(f, "i/o error while streaming a record"),
        }
    }
}

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
impl std::error::Error for Error {}
