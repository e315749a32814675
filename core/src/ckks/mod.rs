//! Layer 3, CKKS: the encoder, plaintexts and ciphertexts with scale and level, encryption and
//! decryption, and the streaming encryptor for devices.

pub mod encoder;
pub mod encryptor;
pub mod plaintext;
pub mod stream;

pub use encoder::{Complex, Encoder};
pub use encryptor::{decrypt, encrypt_pk, encrypt_sk};
pub use plaintext::{Ciphertext, Plaintext, SeededCiphertext};
