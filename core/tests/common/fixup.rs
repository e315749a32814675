//! Repairs a mutated record so that it reaches the checks behind its checksums: the payload
//! length field, the fingerprint (recomputed from the body of a parameter record, or set to the
//! reader's), the header CRC and the payload CRC. What cannot be repaired (a header cut short, an
//! extension longer than the format allows) is left as it is.

use sha2::{Digest, Sha256};

/// Offset of the payload, if the header is long enough to say.
fn payload_start(rec: &[u8]) -> Option<usize> {
    let ext = u16::from_le_bytes([*rec.get(48)?, *rec.get(49)?]) as usize;
    (ext <= 64 && rec.len() >= 54 + ext).then_some(54 + ext)
}

/// Fixes what `rec` says of itself. `set_len`: make the payload length field match the bytes
/// (else keep what the mutation wrote); `fingerprint`: the reader's fingerprint, for records
/// other than parameters.
pub fn fix(rec: &mut [u8], set_len: bool, fingerprint: Option<&[u8; 32]>) {
    let Some(start) = payload_start(rec) else { return };
    if set_len && rec.len() >= start + 4 {
        let len = (rec.len() - start - 4) as u64;
        rec[40..48].copy_from_slice(&len.to_le_bytes());
    }
    let declared = u64::from_le_bytes(rec[40..48].try_into().unwrap_or([0xff; 8]));
    let payload_end = usize::try_from(declared).ok().and_then(|d| start.checked_add(d));
    let kind = u16::from_le_bytes([rec[6], rec[7]]);
    if kind == 1 {
        // Parameters: the fingerprint is SHA-256 of the canonical part of the body.
        if let Some(end) = payload_end.filter(|&e| e <= rec.len()) {
            let body = &rec[start..end];
            if body.len() >= 35 {
                let primes_end = 35 + 8 * (body[17] as usize + body[18] as usize);
                if primes_end <= body.len() {
                    let fp: [u8; 32] = Sha256::digest(&body[..primes_end]).into();
                    rec[8..40].copy_from_slice(&fp);
                }
            }
        }
    } else if let Some(fp) = fingerprint {
        rec[8..40].copy_from_slice(fp);
    }
    let crc = crc32fast::hash(&rec[..start - 4]);
    rec[start - 4..start].copy_from_slice(&crc.to_le_bytes());
    if let Some(end) = payload_end.filter(|&e| e + 4 <= rec.len()) {
        let crc = crc32fast::hash(&rec[start..end]);
        rec[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    }
}
