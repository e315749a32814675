//! Files: `.npy` arrays, key directories and encrypted tensors, over the core's wire format.

pub mod dataset;
pub mod keys;
pub mod matrix;
pub mod npy;
pub mod tensor;
