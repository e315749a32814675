//! Framed records, written and read as streams: fixed header, kind-specific header extension,
//! header CRC, payload (residues bit-packed per limb), payload CRC. Byte layout in
//! `docs/wire-format.md`.

use crate::ring::Modulus;
use crate::{Error, ObjectKind};

/// First four bytes of every record.
pub const MAGIC: [u8; 4] = *b"HETN";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the fixed header before the extension.
pub const FIXED_HEADER_LEN: usize = 50;
/// Largest header extension.
pub const MAX_EXT_LEN: usize = 64;
/// Bytes a record adds around its extension and payload: fixed header and two CRCs.
pub const FRAME_OVERHEAD: usize = FIXED_HEADER_LEN + 4 + 4;

/// Where records are written: a file, a socket, a UART, a `Vec<u8>`.
pub trait Sink {
    /// Writes all of `bytes` or fails with [`Error::Io`].
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error>;
}

impl Sink for alloc::vec::Vec<u8> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Where records are read from.
pub trait Source {
    /// Fills all of `buf`, or fails with [`Error::Truncated`] at end of stream ([`Error::Io`] for
    /// other failures).
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Error>;
}

impl Source for &[u8] {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        if self.len() < buf.len() {
            *self = &self[self.len()..];
            return Err(Error::Truncated);
        }
        let (head, tail) = self.split_at(buf.len());
        buf.copy_from_slice(head);
        *self = tail;
        Ok(())
    }
}

/// Caller-chosen bounds for decoding untrusted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload, in bytes, a record may declare (and so the most the reader allocates
    /// for it).
    pub max_payload: u64,
}

impl Default for Limits {
    /// 4 GiB: more than any single key of the largest preset.
    fn default() -> Self {
        Limits { max_payload: 4 << 30 }
    }
}

/// Bytes of one limb of `n` residues packed at `bits` bits each.
pub fn packed_limb_len(n: usize, bits: u32) -> u64 {
    (n as u64 * bits as u64).div_ceil(8)
}

/// The decoded fixed header of a record.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Object kind.
    pub kind: ObjectKind,
    /// Fingerprint of the parameter set.
    pub fingerprint: [u8; 32],
    /// Payload bytes.
    pub payload_len: u64,
    /// Kind-specific header extension.
    pub ext: heapless::Vec<u8, MAX_EXT_LEN>,
}

/// Writes one record as a stream: [`RecordWriter::begin`], payload pieces, [`RecordWriter::finish`].
pub struct RecordWriter<'a, S: Sink> {
    sink: &'a mut S,
    crc: crc32fast::Hasher,
    remaining: u64,
}

impl<'a, S: Sink> RecordWriter<'a, S> {
    /// Writes the header (with its CRC) of a record whose payload will be `payload_len` bytes.
    pub fn begin(
        sink: &'a mut S,
        kind: ObjectKind,
        fingerprint: &[u8; 32],
        payload_len: u64,
        ext: &[u8],
    ) -> Result<Self, Error> {
        if ext.len() > MAX_EXT_LEN {
            return Err(Error::InvalidArgument("header extension too long"));
        }
        let mut head = [0u8; FIXED_HEADER_LEN + MAX_EXT_LEN];
        head[0..4].copy_from_slice(&MAGIC);
        head[4..6].copy_from_slice(&VERSION.to_le_bytes());
        head[6..8].copy_from_slice(&(kind as u16).to_le_bytes());
        head[8..40].copy_from_slice(fingerprint);
        head[40..48].copy_from_slice(&payload_len.to_le_bytes());
        head[48..50].copy_from_slice(&(ext.len() as u16).to_le_bytes());
        head[50..50 + ext.len()].copy_from_slice(ext);
        let head = &head[..50 + ext.len()];
        sink.write_all(head)?;
        sink.write_all(&crc32fast::hash(head).to_le_bytes())?;
        Ok(RecordWriter { sink, crc: crc32fast::Hasher::new(), remaining: payload_len })
    }

    /// Writes raw payload bytes.
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        if b.len() as u64 > self.remaining {
            return Err(Error::InvalidArgument("payload longer than declared"));
        }
        self.remaining -= b.len() as u64;
        self.crc.update(b);
        self.sink.write_all(b)
    }

    /// Writes one limb of residues, each packed at `bits` bits (at most 62), least significant
    /// bit first.
    pub fn limb(&mut self, residues: &[u64], bits: u32) -> Result<(), Error> {
        // 32-bit words through a 64-bit accumulator that holds fewer than 32 pending bits between
        // residues (cheap on a 32-bit core, where 128-bit shifts are not).
        let mut stage = [0u8; 256];
        let mut fill = 0usize;
        let mut acc: u64 = 0;
        let mut acc_bits = 0u32;
        let (lo_bits, hi_bits) = (bits.min(32), bits.saturating_sub(32));
        for &r in residues {
            for (part, width) in [(r & 0xFFFF_FFFF, lo_bits), (r >> 32, hi_bits)] {
                acc |= part << acc_bits;
                acc_bits += width;
                if acc_bits >= 32 {
                    if fill == stage.len() {
                        self.bytes(&stage)?;
                        fill = 0;
                    }
                    stage[fill..fill + 4].copy_from_slice(&(acc as u32).to_le_bytes());
                    fill += 4;
                    acc >>= 32;
                    acc_bits -= 32;
                }
            }
        }
        self.bytes(&stage[..fill])?;
        let tail = acc.to_le_bytes();
        self.bytes(&tail[..acc_bits.div_ceil(8) as usize])
    }

    /// Writes the payload CRC; fails if fewer bytes than declared were written.
    pub fn finish(self) -> Result<(), Error> {
        if self.remaining != 0 {
            return Err(Error::InvalidArgument("payload shorter than declared"));
        }
        let crc = self.crc.finalize();
        self.sink.write_all(&crc.to_le_bytes())
    }
}

/// Reads one record as a stream, checking everything: [`RecordReader::begin`], payload pieces,
/// [`RecordReader::finish`].
pub struct RecordReader<'a, S: Source> {
    src: &'a mut S,
    crc: crc32fast::Hasher,
    remaining: u64,
}

impl<'a, S: Source> RecordReader<'a, S> {
    /// Reads and checks the header: magic, version, header CRC, kind (one of `expected`),
    /// fingerprint (if given) and the payload length against `limits`.
    pub fn begin(
        src: &'a mut S,
        expected: &[ObjectKind],
        fingerprint: Option<&[u8; 32]>,
        limits: &Limits,
    ) -> Result<(Self, Header), Error> {
        let mut head = [0u8; FIXED_HEADER_LEN + MAX_EXT_LEN];
        src.read_exact(&mut head[..4])?;
        if head[..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        src.read_exact(&mut head[4..FIXED_HEADER_LEN])?;
        let version = u16::from_le_bytes([head[4], head[5]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let ext_len = u16::from_le_bytes([head[48], head[49]]) as usize;
        if ext_len > MAX_EXT_LEN {
            return Err(Error::Malformed("header extension too long"));
        }
        src.read_exact(&mut head[FIXED_HEADER_LEN..FIXED_HEADER_LEN + ext_len])?;
        let head = &head[..FIXED_HEADER_LEN + ext_len];
        let mut crc = [0u8; 4];
        src.read_exact(&mut crc)?;
        if crc32fast::hash(head) != u32::from_le_bytes(crc) {
            return Err(Error::ChecksumMismatch);
        }
        let kind_raw = u16::from_le_bytes([head[6], head[7]]);
        let kind = ObjectKind::from_u16(kind_raw).ok_or(Error::Malformed("unknown object kind"))?;
        if !expected.is_empty() && !expected.contains(&kind) {
            return Err(Error::WrongKind { expected: expected[0] as u16, found: kind_raw });
        }
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&head[8..40]);
        if let Some(want) = fingerprint {
            if *want != fp {
                return Err(Error::FingerprintMismatch);
            }
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&head[40..48]);
        let payload_len = u64::from_le_bytes(len);
        if payload_len > limits.max_payload {
            return Err(Error::LimitExceeded { declared: payload_len, limit: limits.max_payload });
        }
        let mut ext = heapless::Vec::new();
        // Capacity checked above.
        let _ = ext.extend_from_slice(&head[FIXED_HEADER_LEN..]);
        Ok((
            RecordReader { src, crc: crc32fast::Hasher::new(), remaining: payload_len },
            Header { kind, fingerprint: fp, payload_len, ext },
        ))
    }

    /// Reads raw payload bytes.
    pub fn bytes(&mut self, out: &mut [u8]) -> Result<(), Error> {
        if out.len() as u64 > self.remaining {
            return Err(Error::Malformed("payload shorter than its contents"));
        }
        self.src.read_exact(out)?;
        self.remaining -= out.len() as u64;
        self.crc.update(out);
        Ok(())
    }

    /// Reads one bit-packed limb into `out`, checking every residue against `q`.
    pub fn limb(&mut self, out: &mut [u64], q: &Modulus, limb_index: usize) -> Result<(), Error> {
        let n = out.len();
        unpack_limb(|b| self.bytes(b), n, q, limb_index, |t, v| out[t] = v)
    }

    /// Checks that the payload was consumed exactly and that its CRC matches.
    pub fn finish(self) -> Result<(), Error> {
        if self.remaining != 0 {
            return Err(Error::Malformed("payload longer than its contents"));
        }
        let mut crc = [0u8; 4];
        self.src.read_exact(&mut crc)?;
        if self.crc.finalize() != u32::from_le_bytes(crc) {
            return Err(Error::ChecksumMismatch);
        }
        Ok(())
    }
}

/// Unpacks one limb of `n` residues packed at `q`'s width, reading its bytes through `read` and
/// handing each residue to `visit(t, residue)` in order. A residue at or above `q` is reported
/// (as `ResidueOutOfRange`) after the whole limb, so the time does not depend on where it is.
pub(crate) fn unpack_limb(
    mut read: impl FnMut(&mut [u8]) -> Result<(), Error>,
    n: usize,
    q: &Modulus,
    limb_index: usize,
    mut visit: impl FnMut(usize, u64),
) -> Result<(), Error> {
    let bits = q.bits();
    let (lo_bits, hi_bits) = (bits.min(32), bits.saturating_sub(32));
    let parts = [(0u32, lo_bits, (1u64 << lo_bits) - 1), (32, hi_bits, (1u64 << hi_bits) - 1)];
    let total = packed_limb_len(n, bits);
    let mut stage = [0u8; 256];
    let mut avail = 0usize;
    let mut pos = 0usize;
    let mut left = total;
    // 32-bit words into a 64-bit accumulator holding fewer than 32 bits before each take.
    let mut acc: u64 = 0;
    let mut acc_bits = 0u32;
    let mut bad = false;
    for t in 0..n {
        let mut v = 0u64;
        for &(shift, width, mask) in &parts {
            if acc_bits < width {
                if pos == avail {
                    let take = (stage.len() as u64).min(left) as usize;
                    if take == 0 {
                        return Err(Error::Malformed("limb length"));
                    }
                    read(&mut stage[..take])?;
                    left -= take as u64;
                    avail = take;
                    pos = 0;
                }
                // Whole words, but never past the limb's last byte (only its last word can be
                // short: refills are whole multiples of 4 bytes until then).
                let got = (avail - pos).min(4);
                let word = if got == 4 {
                    u32::from_le_bytes([stage[pos], stage[pos + 1], stage[pos + 2], stage[pos + 3]])
                } else {
                    let mut w = [0u8; 4];
                    w[..got].copy_from_slice(&stage[pos..avail]);
                    u32::from_le_bytes(w)
                };
                pos += got;
                acc |= (word as u64) << acc_bits;
                acc_bits += 8 * got as u32;
                if acc_bits < width {
                    return Err(Error::Malformed("limb length"));
                }
            }
            v |= (acc & mask) << shift;
            acc >>= width;
            acc_bits -= width;
        }
        bad |= v >= q.value();
        visit(t, v);
    }
    if left > 0 || pos != avail {
        return Err(Error::Malformed("limb length"));
    }
    if bad {
        return Err(Error::ResidueOutOfRange { limb: limb_index as u32 });
    }
    Ok(())
}
