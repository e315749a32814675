//! `hetune`: the host side of privacy-preserving transfer learning on CKKS-encrypted features.
//!
//! Layers (see `DESIGN.md` in the shared notes): the core's ring, RLWE and CKKS layers are
//! re-exported as [`core`]; this crate adds the evaluator, encrypted learning and the service
//! layer (files, CLI).

pub use hetune_core as core;

pub mod circuits;
pub mod cli;
pub mod error;
pub mod evaluator;
pub mod io;
pub mod learning;

pub use error::{Error, Result};
