//! Deterministic randomness for secrets: a key-derivation function that binds a provisioned seed
//! to one parameter set and one purpose, and a ChaCha20 generator whose whole state is wiped on
//! drop (`rand_chacha`'s generator cannot be wiped, so it serves public seeds only).
//!
//! KDF: HMAC-SHA256 (RFC 2104) keyed with the 32-byte seed over
//! `"hetune-kdf-v1" || len(purpose) || purpose || fingerprint`, the HKDF-Expand step of RFC 5869
//! with the seed as its pseudorandom key (a uniform seed needs no extract step). Two parameter sets
//! or two purposes give independent secrets from one seed: the test-n12 secret of a device is no
//! longer a prefix of its n16-boot secret.
//!
//! Generator: ChaCha20 (20 rounds, 64-bit block counter and 64-bit stream number, stream 0),
//! output words consumed in order, a `u64` as two words (low first), bytes from whole words:
//! the same output as `rand_chacha` 0.9's `ChaCha20Rng` for the same key (a test checks this).

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Purpose label of the owner's main secret key.
pub const PURPOSE_SECRET_KEY: &[u8] = b"secret key";

/// HMAC-SHA256 of the concatenated `parts` under `key` (a key longer than a block is hashed
/// first, as RFC 2104 says). The padded key and the inner hash are wiped; the hash states live on
/// the stack and are not (sha2 offers no wiping).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut pad = Zeroizing::new([0u8; 64]);
    if key.len() > 64 {
        pad[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        pad[..key.len()].copy_from_slice(key);
    }
    pad.iter_mut().for_each(|b| *b ^= 0x36);
    let mut inner = Sha256::new();
    inner.update(&pad[..]);
    for p in parts {
        inner.update(p);
    }
    let mut inner_hash = Zeroizing::new([0u8; 32]);
    inner_hash.copy_from_slice(&inner.finalize());
    pad.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
    let mut outer = Sha256::new();
    outer.update(&pad[..]);
    outer.update(&inner_hash[..]);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&outer.finalize());
    out
}

/// The 32-byte key of the secret of `purpose` under `seed` for the parameter set of
/// `fingerprint` (see the module docs).
pub fn derive_key(seed: &[u8; 32], fingerprint: &[u8; 32], purpose: &[u8]) -> Zeroizing<[u8; 32]> {
    let len = [purpose.len().min(255) as u8];
    hmac_sha256(seed, &[b"hetune-kdf-v1", &len, &purpose[..purpose.len().min(255)], fingerprint])
}

/// ChaCha20 as a `rand_core` generator for secret values; every word of state is wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretRng {
    key: [u32; 8],
    counter: u64,
    block: [u32; 16],
    /// Next unread word of `block`; 16 when it is used up.
    index: usize,
}

impl core::fmt::Debug for SecretRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretRng { .. }")
    }
}

#[inline(always)]
fn quarter_round(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

impl SecretRng {
    /// The generator keyed with `key` (stream 0, counter 0).
    pub fn new(key: &[u8; 32]) -> Self {
        let mut k = [0u32; 8];
        for (w, c) in k.iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        SecretRng { key: k, counter: 0, block: [0; 16], index: 16 }
    }

    /// The generator of the secret of `purpose` under a provisioned `seed` for the parameter set
    /// of `fingerprint`, keyed through [`derive_key`].
    pub fn derive(seed: &[u8; 32], fingerprint: &[u8; 32], purpose: &[u8]) -> Self {
        Self::new(&derive_key(seed, fingerprint, purpose))
    }

    /// The next 64-byte block (RFC 8439 section 2.3, with a 64-bit counter and stream 0).
    fn refill(&mut self) {
        let mut x = [0u32; 16];
        x[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        x[4..12].copy_from_slice(&self.key);
        x[12] = self.counter as u32;
        x[13] = (self.counter >> 32) as u32;
        let input = x;
        for _ in 0..10 {
            quarter_round(&mut x, 0, 4, 8, 12);
            quarter_round(&mut x, 1, 5, 9, 13);
            quarter_round(&mut x, 2, 6, 10, 14);
            quarter_round(&mut x, 3, 7, 11, 15);
            quarter_round(&mut x, 0, 5, 10, 15);
            quarter_round(&mut x, 1, 6, 11, 12);
            quarter_round(&mut x, 2, 7, 8, 13);
            quarter_round(&mut x, 3, 4, 9, 14);
        }
        for ((o, &w), &i) in self.block.iter_mut().zip(&x).zip(&input) {
            *o = w.wrapping_add(i);
        }
        x.zeroize();
        let mut input = input;
        input.zeroize();
        self.counter = self.counter.wrapping_add(1);
        self.index = 0;
    }
}

impl RngCore for SecretRng {
    fn next_u32(&mut self) -> u32 {
        if self.index == 16 {
            self.refill();
        }
        let w = self.block[self.index];
        self.index += 1;
        w
    }

    fn next_u64(&mut self) -> u64 {
        let lo = self.next_u32() as u64;
        lo | (self.next_u32() as u64) << 32
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(4) {
            let w = self.next_u32().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

impl CryptoRng for SecretRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: alloc::string::String = mac.iter().map(|b| alloc::format!("{b:02x}")).collect();
        assert_eq!(hex, want);
    }

    #[test]
    fn chacha_matches_rand_chacha_word_for_word() {
        for s in 0..4u8 {
            let key = [s.wrapping_mul(37).wrapping_add(1); 32];
            let mut ours = SecretRng::new(&key);
            let mut theirs = ChaCha20Rng::from_seed(key);
            // Mixed widths, across block boundaries, with partial words in byte fills.
            for k in 0..300 {
                match k % 4 {
                    0 => assert_eq!(ours.next_u32(), theirs.next_u32()),
                    1 => assert_eq!(ours.next_u64(), theirs.next_u64()),
                    _ => {
                        let (mut a, mut b) = ([0u8; 23], [0u8; 23]);
                        let len = 1 + k % 23;
                        ours.fill_bytes(&mut a[..len]);
                        theirs.fill_bytes(&mut b[..len]);
                        assert_eq!(a, b);
                    }
                }
            }
        }
    }

    #[test]
    fn derived_keys_depend_on_seed_fingerprint_and_purpose() {
        let (s, f) = ([1u8; 32], [2u8; 32]);
        let base = *derive_key(&s, &f, PURPOSE_SECRET_KEY);
        assert_eq!(base, *derive_key(&s, &f, PURPOSE_SECRET_KEY));
        assert_ne!(base, *derive_key(&[3; 32], &f, PURPOSE_SECRET_KEY));
        assert_ne!(base, *derive_key(&s, &[3; 32], PURPOSE_SECRET_KEY));
        assert_ne!(base, *derive_key(&s, &f, b"encapsulation secret"));
        assert_ne!(base, s);
    }
}
