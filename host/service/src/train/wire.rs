//! What the owner and the server send each other: every ciphertext and encrypted matrix crosses
//! as bytes of the wire format (`docs/wire-format.md`), written by one side and parsed, with the
//! parameter set's limits, by the other. Nothing else of either object is shared.

use hetune_core::ckks::Ciphertext;
use hetune_core::rlwe::Context;
use hetune_core::wire::{self, Limits};
use hetune_engine::learning::EncMatrix;

use crate::error::Result;

/// A ciphertext as one full wire record.
pub fn ciphertext_bytes(ctx: &Context, ct: &Ciphertext) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    wire::write_ciphertext(&mut out, ctx.params(), ct)?;
    Ok(out)
}

/// The ciphertext of one wire record; trailing bytes are an error.
pub fn read_ciphertext(ctx: &Context, bytes: &[u8]) -> Result<Ciphertext> {
    let mut src: &[u8] = bytes;
    let ct = wire::read_ciphertext(&mut src, ctx, &Limits::for_ciphertexts(ctx.params()))?.into_full(ctx);
    if !src.is_empty() {
        return Err(hetune_core::Error::Malformed("trailing bytes after a ciphertext").into());
    }
    Ok(ct)
}

/// An encrypted matrix in its self-describing wire form.
pub fn matrix_bytes(ctx: &Context, m: &EncMatrix<Ciphertext>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    m.write_wire(ctx, &mut out)?;
    Ok(out)
}

/// The encrypted matrix of a wire form; trailing bytes are an error.
pub fn read_matrix(ctx: &Context, bytes: &[u8]) -> Result<EncMatrix<Ciphertext>> {
    let mut src: &[u8] = bytes;
    let m = EncMatrix::read_wire(ctx, &mut src)?;
    if !src.is_empty() {
        return Err(hetune_core::Error::Malformed("trailing bytes after an encrypted matrix").into());
    }
    Ok(m)
}
