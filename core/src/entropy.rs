//! Where a device's encryption randomness comes from. Two ciphertexts made with the same masks
//! and errors under the same key give away the difference of their plaintexts, so a device must
//! never repeat its randomness, across boots included: a fixed seed in flash is not enough.
//!
//! [`EntropySource`] hands out 32-byte seeds for the caller's CSPRNG (`ChaCha20Rng::from_seed`).
//! A board with a true random number generator uses it ([`HardwareRng`]); a board without one
//! uses [`BootCounterDrbg`]: ChaCha20 keyed by a provisioned secret seed, on the stream numbered
//! by a monotonic boot counter that the device increments in non-volatile storage before it
//! draws anything, so no two boots share a stream (Bernstein, "ChaCha, a variant of Salsa20",
//! 2008: distinct (key, stream) pairs give independent keystreams).

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng, TryCryptoRng, TryRngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::Error;

/// A source of seeds that are never handed out twice on a device.
pub trait EntropySource {
    /// 32 fresh bytes.
    fn fresh_seed(&mut self) -> Result<[u8; 32], Error>;
}

/// A board's true random number generator, behind its HAL's `rand_core` interface (a failing
/// generator is [`Error::Io`]).
pub struct HardwareRng<T: TryRngCore + TryCryptoRng>(pub T);

impl<T: TryRngCore + TryCryptoRng> EntropySource for HardwareRng<T> {
    fn fresh_seed(&mut self) -> Result<[u8; 32], Error> {
        let mut seed = [0u8; 32];
        self.0.try_fill_bytes(&mut seed).map_err(|_| Error::Io)?;
        Ok(seed)
    }
}

/// Label that separates this use of the provisioned seed from any other.
const DRBG_LABEL: &[u8] = b"hetune device randomness, ChaCha20 keyed by the provisioned seed, v1";

/// Seeds for a board without a TRNG: the ChaCha20 keystream of `SHA-256(label || device seed)`
/// on stream `boot`, 32 bytes per seed. Secure as long as the device seed stays secret and `boot`
/// is never used twice: the caller reads its non-volatile boot counter, writes back the
/// incremented value, checks that the write held, and only then passes that value here.
pub struct BootCounterDrbg {
    stream: ChaCha20Rng,
    boot: u64,
}

impl BootCounterDrbg {
    /// The generator of boot number `boot` of the device provisioned with `device_seed`.
    pub fn new(device_seed: &[u8; 32], boot: u64) -> Self {
        let mut h = Sha256::new();
        h.update(DRBG_LABEL);
        h.update(device_seed);
        let mut key: [u8; 32] = h.finalize().into();
        let mut stream = ChaCha20Rng::from_seed(key);
        key.zeroize();
        stream.set_stream(boot);
        BootCounterDrbg { stream, boot }
    }

    /// The boot number this generator serves.
    pub fn boot(&self) -> u64 {
        self.boot
    }
}

impl EntropySource for BootCounterDrbg {
    fn fresh_seed(&mut self) -> Result<[u8; 32], Error> {
        let mut seed = [0u8; 32];
        self.stream.fill_bytes(&mut seed);
        Ok(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boots_and_draws_never_repeat_and_replay_exactly() {
        let device = [3u8; 32];
        let mut seen = alloc::vec::Vec::new();
        for boot in 1..=3 {
            let mut d = BootCounterDrbg::new(&device, boot);
            for _ in 0..4 {
                let s = d.fresh_seed().unwrap();
                assert!(!seen.contains(&s), "boot {boot}: a seed repeated");
                seen.push(s);
            }
        }
        // The same device and boot number give the same seeds (the host checks a device this way).
        let mut again = BootCounterDrbg::new(&device, 2);
        assert_eq!(again.fresh_seed().unwrap(), seen[4]);
        // Another device seed gives other seeds on the same boot number.
        assert_ne!(BootCounterDrbg::new(&[4u8; 32], 1).fresh_seed().unwrap(), seen[0]);
    }

    #[test]
    fn hardware_rng_seeds_come_from_the_generator() {
        // A seeded ChaCha20 stands in for the board's TRNG here.
        let mut trng = HardwareRng(ChaCha20Rng::from_seed([9; 32]));
        let (a, b) = (trng.fresh_seed().unwrap(), trng.fresh_seed().unwrap());
        assert_ne!(a, b);
        let mut reference = ChaCha20Rng::from_seed([9; 32]);
        let mut want = [0u8; 32];
        reference.fill_bytes(&mut want);
        assert_eq!(a, want);
    }
}
