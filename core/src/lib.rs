//! `hetune-core`: everything a data owner's device needs for CKKS, in `no_std` with `alloc`.
//!
//! Layers (each uses only those above it): [`ring`] (moduli, NTT, RNS polynomials, automorphisms,
//! basis conversion), [`rlwe`] (parameters, sampling, keys, encryption, decryption), [`ckks`]
//! (encoder, plaintexts and ciphertexts) and [`wire`] (the one wire format of the system).
//!
//! Randomness always comes from a caller-supplied `rand_core::CryptoRng`; secret material is
//! wiped on drop.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod ckks;
pub mod entropy;
mod error;
pub mod ring;
pub mod rlwe;
pub mod wire;

pub use error::{Error, ObjectKind};
pub use rlwe::params::{Parameters, ParametersLiteral, SecretDistribution, Security};
