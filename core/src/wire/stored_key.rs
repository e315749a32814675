//! A public-key record kept in a device's storage (flash, a file) and read one limb at a time:
//! checked in full once when opened (header, fingerprint, shape, payload CRC, in constant
//! memory), then each limb of `b` decoded on demand from its offset, with every residue checked
//! against its prime again. This is how a sensor encrypts under a 14 MB `n16-boot` public key in a
//! few hundred kilobytes of RAM ([`crate::ckks::stream::stream_encrypt_pk`]).

use alloc::vec::Vec;

use super::record::{packed_limb_len, unpack_limb, Limits, RecordReader, Source, FIXED_HEADER_LEN};
use crate::ckks::stream::PublicKeyLimbs;
use crate::ring::Modulus;
use crate::{Error, ObjectKind, Parameters};

/// Storage that can be read at any offset: memory-mapped flash (`&[u8]`), a file.
pub trait ReadAt {
    /// Fills `buf` with the bytes at `offset`, or fails with [`Error::Truncated`] past the end
    /// ([`Error::Io`] for other failures).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;
}

impl ReadAt for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let start = usize::try_from(offset).map_err(|_| Error::Truncated)?;
        let end = start.checked_add(buf.len()).ok_or(Error::Truncated)?;
        let bytes = self.get(start..end).ok_or(Error::Truncated)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// Sequential reading of a [`ReadAt`] from an offset.
struct Cursor<'a, R: ReadAt> {
    src: &'a mut R,
    pos: u64,
}

impl<R: ReadAt> Source for Cursor<'_, R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.src.read_at(self.pos, buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
}

/// A checked public-key record in storage, read limb by limb.
pub struct StoredPublicKey<R: ReadAt> {
    src: R,
    seed: [u8; 32],
    n: usize,
    /// Q then P.
    moduli: Vec<u64>,
    /// Offset of each limb of `b`, and one past the last.
    offsets: Vec<u64>,
}

impl<R: ReadAt> StoredPublicKey<R> {
    /// Checks the record at offset 0 of `src` against `params` and `limits` (every decoding rule
    /// of `docs/wire-format.md`; residue ranges are checked as limbs are read) and keeps its
    /// layout. `b` must be in evaluation form (as `write_public_key` writes it): a device has no
    /// room to transform a limb it reads.
    pub fn open(mut src: R, params: &Parameters, limits: &Limits) -> Result<Self, Error> {
        let limbs = params.q().len() + params.p().len();
        let moduli: Vec<u64> = params.q().iter().chain(params.p()).copied().collect();
        let mut cursor = Cursor { src: &mut src, pos: 0 };
        let (mut r, h) =
            RecordReader::begin(&mut cursor, &[ObjectKind::PublicKey], Some(&params.fingerprint()), limits)?;
        if h.ext.len() != 2 || h.ext[0] as usize != limbs || h.ext[1] > 1 {
            return Err(Error::Malformed("public key header"));
        }
        if h.ext[1] == 0 {
            return Err(Error::InvalidArgument("a stored public key must hold b in evaluation form"));
        }
        let payload_start = (FIXED_HEADER_LEN + h.ext.len() + 4) as u64;
        let mut offsets = Vec::with_capacity(limbs + 1);
        let mut at = payload_start + 32;
        for i in 0..limbs {
            offsets.push(at);
            at += packed_limb_len(params.n(), params.limb_bits(i));
        }
        offsets.push(at);
        if h.payload_len != at - payload_start {
            return Err(Error::Malformed("payload length does not match the header"));
        }
        let mut seed = [0u8; 32];
        r.bytes(&mut seed)?;
        // The payload CRC, without decoding: residue ranges are checked when a limb is read.
        let mut chunk = [0u8; 256];
        let mut left = at - payload_start - 32;
        while left > 0 {
            let take = left.min(chunk.len() as u64) as usize;
            r.bytes(&mut chunk[..take])?;
            left -= take as u64;
        }
        r.finish()?;
        Ok(StoredPublicKey { src, seed, n: params.n(), moduli, offsets })
    }

    /// Bytes of the whole record.
    pub fn record_len(&self) -> u64 {
        self.offsets[self.offsets.len() - 1] + 4
    }
}

impl<R: ReadAt> PublicKeyLimbs for StoredPublicKey<R> {
    fn seed(&self) -> [u8; 32] {
        self.seed
    }

    fn for_each_b(&mut self, index: usize, visit: impl FnMut(usize, u64)) -> Result<(), Error> {
        let &qv = self.moduli.get(index).ok_or(Error::InvalidArgument("public key limb index"))?;
        let mut pos = self.offsets[index];
        let src = &mut self.src;
        let read = |buf: &mut [u8]| {
            src.read_at(pos, buf)?;
            pos += buf.len() as u64;
            Ok(())
        };
        unpack_limb(read, self.n, &Modulus::new(qv), index, visit)
    }
}
