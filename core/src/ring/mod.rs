//! Layer 1, ring: word-sized moduli, NTT, RNS polynomials, automorphisms, basis conversion.

pub mod automorphism;
pub mod basis;
pub mod compact_ntt;
pub mod dot;
pub mod elementwise;
pub mod modulus;
pub mod montgomery;
pub mod ntt;
pub mod poly;
pub mod primes;
#[cfg(feature = "simd")]
pub mod simd;

pub use basis::{BasisConverter, Rescaler};
pub use compact_ntt::CompactNtt;
pub use modulus::Modulus;
pub use ntt::NttTable;
pub use poly::RnsPoly;
