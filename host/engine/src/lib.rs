//! `hetune-engine`: the compute layers of hetune's host side, on CKKS ciphertexts of the core.
//!
//! Layers (see `docs/architecture.md`): [`evaluator`] (layer 4: homomorphic arithmetic, key
//! switching, rotations), [`circuits`] (layer 5: polynomials, linear transforms,
//! bootstrapping) and [`learning`] (layer 6: HETAL's encrypted matrices and products). The
//! engine touches no files and prints nothing: progress leaves through callbacks, encrypted
//! objects go in and out through `std::io` readers and writers ([`wire_io`]). Files, the CLI
//! and benchmark reports live in the service crate (`hetune`).
//!
//! The core crate is re-exported as [`ckks_core`] (not `core`, which would shadow the
//! language's `core`).

pub use hetune_core as ckks_core;

pub mod circuits;
pub mod error;
pub mod evaluator;
pub mod learning;
pub mod owner;
pub mod precision;
pub mod wire_io;

pub use error::{Error, Result};
