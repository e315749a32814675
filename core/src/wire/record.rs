//! Framed records, written and read as streams: fixed header, kind-specific header extension,
//! header CRC, payload (residues bit-packed per limb), payload CRC. Byte layout in
//! `docs/wire-format.md`.

use alloc::vec::Vec;
use zeroize::Zeroize;

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
    /// Most bytes one record may cost its reader: the payload it declares, and the peak of what
    /// its decoder holds allocated for it at once. Decoders count every allocation against this
    /// as the payload arrives (a buffer grows only after bytes for it were read), so a header
    /// that over-promises costs at most about twice the bytes actually sent.
    pub max_bytes: u64,
    /// Most bytes of precomputed state (NTT plans, conversion tables) that a parameter record read
    /// under these limits may make `Context::new` build
    /// ([`crate::Parameters::context_bytes`]).
    pub max_context_bytes: u64,
}

impl Limits {
    /// The same bound for a record and for a parameter set's context.
    pub const fn new(max_bytes: u64, max_context_bytes: u64) -> Self {
        Limits { max_bytes, max_context_bytes }
    }
}

impl Default for Limits {
    /// 128 MiB for a record and for a context: every record and the context of the largest
    /// preset (`n16-boot`: a switching key needs 86 MB, the context 70 MB). Prefer
    /// [`Limits::for_params`] or [`Limits::for_ciphertexts`] once the set is known.
    fn default() -> Self {
        Limits { max_bytes: 128 << 20, max_context_bytes: 128 << 20 }
    }
}

/// The bytes a decoder holds for one record, counted against the caller's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    held: u64,
    peak: u64,
    limit: u64,
}

impl Budget {
    /// An empty budget of `limit` bytes.
    pub const fn new(limit: u64) -> Self {
        Budget { held: 0, peak: 0, limit }
    }

    /// Counts `bytes` about to be allocated; [`Error::LimitExceeded`] if they do not fit.
    pub fn charge(&mut self, bytes: u64) -> Result<(), Error> {
        let next = self.held.saturating_add(bytes);
        if next > self.limit {
            return Err(Error::LimitExceeded { declared: next, limit: self.limit });
        }
        self.held = next;
        self.peak = self.peak.max(next);
        Ok(())
    }

    /// Returns `bytes` that were freed.
    pub fn release(&mut self, bytes: u64) {
        self.held = self.held.saturating_sub(bytes);
    }

    /// The most bytes held at once so far.
    pub fn peak(&self) -> u64 {
        self.peak
    }
}

/// Capacity after the next growth of a buffer whose final length is `total`: double, at least
/// `step`, at most `total`.
pub fn next_capacity(cap: usize, step: usize, total: usize) -> usize {
    cap.saturating_mul(2).max(step).min(total)
}

/// Peak bytes of growing a buffer of `total` elements of `size` bytes by [`next_capacity`] from
/// empty: each growth holds the old and the new buffer at once.
pub fn growth_peak(total: usize, step: usize, size: usize) -> u64 {
    let (mut cap, mut peak) = (0usize, 0usize);
    while cap < total {
        let next = next_capacity(cap, step, total);
        peak = peak.max(cap + next);
        cap = next;
    }
    peak as u64 * size as u64
}

/// Grows `v` to capacity `cap`: the new buffer is charged to `budget` before it is allocated
/// (a failed allocation is [`Error::AllocationFailed`], not an abort), the contents are copied,
/// and the old buffer is wiped before it is freed (secret coefficients never stay behind).
pub fn grow_wiping<T: Copy + Zeroize>(v: &mut Vec<T>, cap: usize, budget: &mut Budget) -> Result<(), Error> {
    let size = core::mem::size_of::<T>() as u64;
    budget.charge(cap as u64 * size)?;
    let mut fresh: Vec<T> = Vec::new();
    fresh.try_reserve_exact(cap).map_err(|_| Error::AllocationFailed { bytes: cap as u64 * size })?;
    fresh.extend_from_slice(v);
    let old = v.capacity() as u64 * size;
    v.zeroize();
    *v = fresh;
    budget.release(old);
    Ok(())
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
    budget: Budget,
}

impl<'a, S: Source> RecordReader<'a, S> {
    /// Reads and checks the header: magic, version, header CRC, kind (one of `expected`),
    /// fingerprint (if given) and the payload length against `limits`; what the decoder then
    /// allocates is counted against the same limit ([`RecordReader::charge`]).
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
        if payload_len > limits.max_bytes {
            return Err(Error::LimitExceeded { declared: payload_len, limit: limits.max_bytes });
        }
        let mut ext = heapless::Vec::new();
        // Capacity checked above.
        let _ = ext.extend_from_slice(&head[FIXED_HEADER_LEN..]);
        Ok((
            RecordReader {
                src,
                crc: crc32fast::Hasher::new(),
                remaining: payload_len,
                budget: Budget::new(limits.max_bytes),
            },
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

    /// Counts `bytes` the decoder is about to allocate against the record's limit.
    pub fn charge(&mut self, bytes: u64) -> Result<(), Error> {
        self.budget.charge(bytes)
    }

    /// The record's budget, for buffers grown with [`grow_wiping`].
    pub fn budget(&mut self) -> &mut Budget {
        &mut self.budget
    }

    /// Reads `n` bit-packed residues of one limb and appends them to `out`, checking each against
    /// `q`. When `out` is full it grows (by [`next_capacity`] towards `total` elements, charged
    /// to the budget) only after the first bytes of the limb have arrived.
    pub fn limb_into(
        &mut self,
        out: &mut Vec<u64>,
        n: usize,
        total: usize,
        q: &Modulus,
        limb_index: usize,
    ) -> Result<(), Error> {
        let bits = q.bits();
        let mask = (1u128 << bits) - 1;
        let mut stage = [0u8; 256];
        let mut left = packed_limb_len(n, bits);
        let take = (stage.len() as u64).min(left) as usize;
        self.bytes(&mut stage[..take])?;
        left -= take as u64;
        let (mut avail, mut pos) = (take, 0usize);
        if out.capacity() - out.len() < n {
            let cap = next_capacity(out.capacity(), n, total).max(out.len() + n);
            grow_wiping(out, cap, &mut self.budget)?;
        }
        let mut acc: u128 = 0;
        let mut acc_bits = 0u32;
        let mut bad = false;
        for _ in 0..n {
            while acc_bits < bits {
                if pos == avail {
                    let take = (stage.len() as u64).min(left) as usize;
                    self.bytes(&mut stage[..take])?;
                    left -= take as u64;
                    avail = take;
                    pos = 0;
                }
                acc |= (stage[pos] as u128) << acc_bits;
                pos += 1;
                acc_bits += 8;
            }
            let v = (acc & mask) as u64;
            acc >>= bits;
            acc_bits -= bits;
            bad |= v >= q.value();
            out.push(v);
        }
        if left > 0 || pos != avail {
            return Err(Error::Malformed("limb length"));
        }
        if bad {
            return Err(Error::ResidueOutOfRange { limb: limb_index as u32 });
        }
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
