//! Layer 2, RLWE: parameters, sampling, keys, encryption and decryption.

pub mod context;
pub mod encapsulation;
pub mod keys;
pub mod params;
pub mod sampling;
pub mod secret_rng;

pub use context::Context;
pub use encapsulation::{EncapsulationKey, ENCAPSULATION_WEIGHT};
pub use keys::{PublicKey, SecretKey, SecretPoly, SwitchingKey, SwitchingKind};
pub use secret_rng::SecretRng;
