//! Layer 6, learning: encrypted matrices in HETAL's block packing and the encrypted matrix
//! products of transfer learning.
//!
//! One file per concept: [`packing`] (block shapes and tiling), [`matrix`] (the encrypted matrix,
//! encryption, decryption, wire form), [`ops`] (the backend trait [`HeBackend`] the algorithms
//! are written against, with [`CkksBackend`] on ciphertexts and [`CountingBackend`] on
//! level-only stand-ins that count), [`diag_abt`] and [`diag_atb`] (HETAL's products),
//! [`baselines`] (Crockett's ColMajor and RowMajor, Jin et al.'s PrivGD), [`counters`] (CMult,
//! Mult, Rot), [`reference`] (plaintext products). The benchmark (`hetune bench matmul`) is in the service crate.

pub mod baselines;
pub mod compact;
pub mod counters;
pub mod dataset;
pub mod diag_abt;
pub mod diag_atb;
pub mod early_stopping;
pub mod loss;
pub mod matrix;
pub mod nesterov;
pub mod ops;
pub mod packing;
pub mod plan;
pub mod reference;
pub mod sim;
pub mod slots;
pub mod softmax;
pub mod trainer;
pub mod twin;

pub use crate::circuits::arith::Arith;
pub use baselines::{col_major_abt, privgd_abt, privgd_atb, row_major_atb, ColumnPacked, EntryPacked};
pub use counters::{Counter, OpCounts};
pub use diag_abt::diag_abt;
pub use diag_atb::{diag_atb, diag_atb_prot_up, diag_atb_prot_up_with, diag_atb_with, RowSums};
pub use matrix::{EncMatrix, MatrixLayout};
pub use ops::{BootEvent, BootLog, CkksBackend, CountingBackend, HeBackend, LevelOnly, Mask, MaskKind};
pub use packing::{Packing, Tiling};
pub use sim::{Chain, SimCt, Simulator};
