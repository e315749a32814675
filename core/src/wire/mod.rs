//! Wire format v1: the one format of the whole system (see `docs/wire-format.md`). Every object
//! is a framed record (magic, version, kind, parameter fingerprint, lengths, bit-packed payload,
//! checksums), written and read as a stream one limb at a time. Decoding never panics, allocates
//! only as payload bytes arrive, and never holds more than the caller's [`Limits`].

pub mod objects;
pub mod record;
pub mod stored_key;

pub use objects::*;
pub use record::{Budget, Header, Limits, RecordReader, RecordWriter, Sink, Source};
pub use stored_key::{ReadAt, StoredPublicKey};
