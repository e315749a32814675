//! `hetune`: the service side of privacy-preserving transfer learning on CKKS-encrypted features.
//!
//! Layer 7 (see `docs/architecture.md`): files ([`io`]: `.npy` arrays, key directories, encrypted
//! tensors), the command line ([`cli`]), the training daemon ([`serve`], its storage [`store`]) and
//! the owner's client ([`client`]), and benchmark reports ([`bench`]), over the compute
//! engine (`hetune-engine`, re-exported as [`engine`]) and the core (`hetune-core`, re-exported
//! as [`ckks_core`]).
//!
//! With the cargo feature `extract`, also the owner's feature extraction (`extract`: raw text and
//! images to `.npy` features with the frozen encoders; see `docs/extract.md`).

pub use hetune_core as ckks_core;
pub use hetune_engine as engine;

pub mod bench;
pub mod cli;
pub mod client;
pub mod error;
#[cfg(feature = "extract")]
pub mod extract;
pub mod io;
pub mod serve;
pub mod store;
pub mod train;

pub use error::{Error, Result};
