//! hetune on a data owner's microcontroller: one firmware image for a Cortex-M4F (QEMU
//! `mps2-an386`) and a Cortex-M7 (QEMU `mps2-an500`), and from the same source an RV32IMAC core
//! (QEMU `virt`), linked for a 2 MiB RAM budget.
//!
//! What the device is depends on what it was provisioned with (see `storage.rs`):
//! - a sensor (the default): it holds the owner's public key and encrypts feature rows into full
//!   ciphertexts that only the owner can decrypt; it cannot decrypt them itself;
//! - the owner's own device: it holds the secret-key seed, streams the public key, and encrypts
//!   into seeded ciphertexts (half the bytes).
//!
//! For each parameter set (the 128-bit `n16-boot`, and with the `insecure-test-presets` feature
//! the insecure `test-n12`, with published test seeds only) it streams its records into a host
//! file over semihosting (`hetune-<preset>.hetn`). The defmt log on stdout carries one
//! `key=value` line per step with instruction counts and memory figures; the QEMU test in
//! `tests/tests/qemu.rs` decodes it, decrypts the records and checks them.
//!
//! Randomness: never the same twice. Each boot advances a counter in the device's storage, and
//! the encryption generators are seeded from ChaCha20 keyed by the provisioned device seed on the
//! stream of that boot number ([`hetune_core::entropy::BootCounterDrbg`]); a board with a TRNG
//! would use it instead ([`hetune_core::entropy::HardwareRng`]).
#![no_std]
#![no_main]

extern crate alloc;

mod data;
mod platform;
mod storage;

use alloc::vec;

use defmt_semihosting as _;
use hetune_core::ckks::encoder::{encode_coeffs, Complex};
use hetune_core::ckks::stream::PublicKeyLimbs;
use hetune_core::ckks::stream::{
    caller_bytes, stream_encrypt_pk, stream_encrypt_sk, stream_public_key, StreamMode, StreamPlaintext, StreamWork,
};
use hetune_core::entropy::{BootCounterDrbg, EntropySource};
use hetune_core::ring::{CompactNtt, Modulus};
use hetune_core::rlwe::sampling::{ternary, ChaCha20Core, GaussianSampler, UniformExpander};
use hetune_core::rlwe::SecretKey;
use hetune_core::wire::{Limits, RecordWriter, Sink, StoredPublicKey};
use hetune_core::ObjectKind;
use hetune_core::{Error, Parameters, Security};
use rand_core::RngCore;
use zeroize::Zeroizing;

use crate::platform::{instructions, HeapSteps};
use crate::storage::{HostFile, StorageReader};

/// Slots per ciphertext: 4 rows of 384 features, each padded to 512 slots.
const LOG_SLOTS: u32 = 11;
/// Slots given to one row.
const ROW_STRIDE: usize = 512;
/// Rows per ciphertext.
const ROWS_PER_CT: usize = (1 << LOG_SLOTS) / ROW_STRIDE;

/// The seeds an insecure preset runs with: published test values built into the image, so an
/// insecure set never touches the device's provisioned secrets.
#[cfg(feature = "insecure-test-presets")]
mod test_seeds {
    /// SHA-256 of `hetune firmware-example: insecure test-preset secret-key seed, v1`.
    pub static KEY: &[u8; 32] = include_bytes!("../provision/test-key.seed");
    /// SHA-256 of `hetune firmware-example: insecure test-preset randomness seed, v1`.
    pub static RNG: &[u8; 32] = include_bytes!("../provision/test-rng.seed");
}

/// A parameter set the firmware runs, and the level it encrypts at.
struct Run {
    preset: &'static str,
    security: Security,
    /// `None`: the preset's default (top computing) level.
    level: Option<usize>,
    /// Where the records go.
    out: &'static core::ffi::CStr,
    /// A sensor's stored public key for this set.
    public_key: &'static core::ffi::CStr,
}

const RUNS: &[Run] = &[
    #[cfg(feature = "insecure-test-presets")]
    Run {
        preset: "test-n12",
        security: Security::InsecureForTestingOnly,
        level: None,
        out: c"hetune-test-n12.hetn",
        public_key: c"public-test-n12.hetn",
    },
    // Level 3 (q_0 and three 42-bit primes): the host's first products (the plaintext-weight
    // product, one ciphertext product and a mask, each followed by a rescale) fit before it
    // bootstraps. Time and bytes grow linearly with the limbs, so other levels follow from the
    // per-limb figures.
    Run {
        preset: "n16-boot",
        security: Security::Require128Bits,
        level: Some(3),
        out: c"hetune-n16-boot.hetn",
        public_key: c"public-n16-boot.hetn",
    },
];

/// What this device holds.
enum Role {
    /// The owner's device: the provisioned secret-key seed.
    Owner(Zeroizing<[u8; 32]>),
    /// A sensor: public keys only.
    Sensor,
}

impl Role {
    fn mode(&self) -> StreamMode {
        match self {
            Role::Owner(_) => StreamMode::SecretKey,
            Role::Sensor => StreamMode::PublicKey,
        }
    }
}

fn mode_name(mode: StreamMode) -> &'static str {
    match mode {
        StreamMode::SecretKey => "secret-key",
        StreamMode::PublicKey => "public-key",
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    platform::init_heap();
    platform::init();
    const LOOP: u32 = 1_000_000;
    let measured = platform::calibrate(LOOP);
    defmt::info!("calibration loop_instructions={=u64} measured={=u64}", 2 * LOOP as u64, measured);
    defmt::info!(
        "start target={=str} core={=str} rows={=usize} features={=usize} heap_capacity={=usize} stack_capacity={=usize}",
        platform::TARGET,
        platform::core_name(),
        data::ROWS,
        data::FEATURES,
        platform::HEAP_SIZE,
        platform::stack_capacity()
    );
    if let Err(e) = run_device() {
        defmt::error!("failed error={}", e);
        platform::exit(1);
    }
    defmt::info!("done instructions={=u64}", instructions());
    platform::exit(0)
}

/// Reads the provisioning, advances the boot counter, then runs every parameter set.
fn run_device() -> Result<(), Error> {
    let role = if storage::exists(c"key.seed") { Role::Owner(storage::read_seed(c"key.seed")?) } else { Role::Sensor };
    let boot = storage::next_boot()?;
    let mut entropy = BootCounterDrbg::new(&*storage::read_seed(c"rng.seed")?, boot);
    defmt::info!("device mode={=str} boot={=u64} entropy=boot-counter-chacha20", mode_name(role.mode()), boot);
    for run in RUNS {
        let secure = run.security == Security::Require128Bits;
        let result = if secure {
            let key_seed = match &role {
                Role::Owner(seed) => Some(&**seed),
                Role::Sensor => None,
            };
            run_preset(run, role.mode(), key_seed, &mut entropy)
        } else {
            insecure_run(run, &role, boot)
        };
        if let Err(e) = result {
            defmt::error!("failed preset={=str} error={}", run.preset, e);
            return Err(e);
        }
    }
    Ok(())
}

/// An insecure preset, with the published test seeds and a test generator of its own.
#[cfg(feature = "insecure-test-presets")]
fn insecure_run(run: &Run, role: &Role, boot: u64) -> Result<(), Error> {
    let mut entropy = BootCounterDrbg::new(test_seeds::RNG, boot);
    let key_seed = match role {
        Role::Owner(_) => Some(test_seeds::KEY),
        Role::Sensor => None,
    };
    run_preset(run, role.mode(), key_seed, &mut entropy)
}

/// Without the feature there is no insecure preset to run.
#[cfg(not(feature = "insecure-test-presets"))]
fn insecure_run(_run: &Run, _role: &Role, _boot: u64) -> Result<(), Error> {
    Err(Error::InvalidArgument("this image runs no insecure parameter set"))
}

/// Keys, then every ciphertext of one parameter set, with their figures logged.
fn run_preset(
    run: &Run,
    mode: StreamMode,
    key_seed: Option<&[u8; 32]>,
    entropy: &mut dyn EntropySource,
) -> Result<(), Error> {
    platform::repaint_stack();
    let mut heap = HeapSteps::start();
    let name = run.preset;

    let t = instructions();
    let params = Parameters::preset(name, run.security)?;
    let level = run.level.unwrap_or(params.default_level());
    let n = params.n();
    defmt::info!(
        "preset name={=str} mode={=str} n={=usize} level={=usize} limbs={=usize} log_slots={=u32} secure={=bool} params_instructions={=u64}",
        name,
        mode_name(mode),
        n,
        level,
        level + 1,
        LOG_SLOTS,
        params.is_secure(),
        instructions() - t
    );

    // The working memory is known before anything is allocated: refuse clearly if it cannot fit.
    let needed = StreamWork::bytes_for(n, mode) + caller_bytes(n, mode, LOG_SLOTS) + 2 * storage::CHUNK;
    if needed > platform::heap_free() {
        defmt::error!(
            "memory preset={=str} needed={=usize} heap_free={=usize}: the heap is too small for this parameter set",
            name,
            needed,
            platform::heap_free()
        );
        return Err(Error::InvalidArgument("heap too small for the parameter set"));
    }

    // ChaCha20 in the 32-bit scalar form of the core (the words of rand_chacha's ChaCha20Rng).
    let mut rng = ChaCha20Core::rng(&entropy.fresh_seed()?, 0);
    let mut out = HostFile::create(run.out)?;
    let mut work = StreamWork::new(n, mode);
    let mut message = vec![0f64; 2 << LOG_SLOTS];
    let mut encrypt: Encryptor = match key_seed {
        Some(seed) => {
            let t = instructions();
            let sk = SecretKey::from_seed(&params, seed);
            defmt::info!("keygen preset={=str} instructions={=u64}", name, instructions() - t);
            heap.step();
            let t = instructions();
            let start = out.written();
            stream_public_key(&params, &sk, &mut rng, &mut work, &mut out)?;
            defmt::info!(
                "public_key preset={=str} bytes={=u64} instructions={=u64} heap_peak={=usize}",
                name,
                out.written() - start,
                instructions() - t,
                heap.step()
            );
            Encryptor::Secret(sk)
        }
        None => {
            heap.step();
            let t = instructions();
            let reader = StorageReader::open(run.public_key)?;
            let limits = Limits::new(64 << 20, 64 << 20);
            let pk = StoredPublicKey::open(reader, &params, &limits)?;
            defmt::info!(
                "open_key preset={=str} bytes={=u64} instructions={=u64} heap_peak={=usize}",
                name,
                pk.record_len(),
                instructions() - t,
                heap.step()
            );
            Encryptor::Public(pk)
        }
    };

    for (index, first_row) in (0..data::ROWS).step_by(ROWS_PER_CT).enumerate() {
        heap.step();
        let t = instructions();
        encode_coeffs(LOG_SLOTS, params.scale(), 1 << LOG_SLOTS, |j| slot_value(first_row, j), &mut message)?;
        let encode = instructions() - t;
        let pt = StreamPlaintext { coeffs: &message, log_slots: LOG_SLOTS, level, scale: params.scale() };
        let t = instructions();
        let start = out.written();
        match &mut encrypt {
            Encryptor::Secret(sk) => stream_encrypt_sk(&params, sk, &pt, &mut rng, &mut work, &mut out)?,
            Encryptor::Public(pk) => stream_encrypt_pk(&params, pk, &pt, &mut rng, &mut work, &mut out)?,
        }
        defmt::info!(
            "ciphertext preset={=str} mode={=str} index={=usize} first_row={=usize} rows={=usize} bytes={=u64} encode_instructions={=u64} encrypt_instructions={=u64} heap_peak={=usize}",
            name,
            mode_name(mode),
            index,
            first_row,
            ROWS_PER_CT,
            out.written() - start,
            encode,
            instructions() - t,
            heap.step()
        );
    }
    out.flush()?;
    let file_bytes = out.written();
    drop((message, work, out));
    heap.step();
    let pk = match &mut encrypt {
        Encryptor::Public(pk) => Some(pk),
        Encryptor::Secret(_) => None,
    };
    // The stack the keys and ciphertexts took, before the profile's own calls.
    let stack_work = platform::stack_high_water();
    profile_limbs(name, &params, pk)?;
    drop(encrypt);
    heap.step();
    defmt::info!(
        "memory preset={=str} heap_peak={=usize} stack_peak={=usize} stack_peak_encryption={=usize} file_bytes={=u64} heap_leaked={=usize}",
        name,
        heap.overall(),
        platform::stack_high_water(),
        stack_work,
        file_bytes,
        heap.leaked()
    );
    Ok(())
}

/// The key a device encrypts with.
enum Encryptor {
    Secret(SecretKey),
    Public(StoredPublicKey<StorageReader>),
}

/// Discards what it is given: lets the profile time bit packing and checksums alone.
struct NullSink;

impl Sink for NullSink {
    fn write_all(&mut self, _bytes: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

/// Instructions of the steps of an encryption, so the per-ciphertext figure can be broken down:
/// once, the secret randomness of one polynomial (the Gaussian error, the ternary mask, the raw
/// generator words) and the mask's fused load and forward transform; then on the first two
/// primes, transform setup (the root of unity), lazy forward and inverse transforms, the
/// expansion of `a` from its seed, one Montgomery product per slot, bit packing with the
/// checksum, and (sensors) reading a limb of the stored public key.
fn profile_limbs(
    preset: &str,
    params: &Parameters,
    mut pk: Option<&mut StoredPublicKey<StorageReader>>,
) -> Result<(), Error> {
    let n = params.n();
    {
        // The samplers of one polynomial's secret randomness: the Gaussian error and the ternary
        // mask (test words from a fixed seed; the figures do not depend on them).
        let mut small = vec![0i8; n];
        let mut rng = ChaCha20Core::rng(&[9; 32], 0);
        let gaussian = GaussianSampler::new(params.sigma())?;
        let t = instructions();
        gaussian.fill(&mut rng, &mut small);
        let gaussian_fill = instructions() - t;
        let t = instructions();
        ternary(&mut rng, &mut small);
        let ternary_fill = instructions() - t;
        let t = instructions();
        let mut words = 0u64;
        for _ in 0..n {
            words ^= rng.next_u64();
        }
        let rng_words = instructions() - t;
        // The mask's ternary load fused with the first forward stage, then the other stages (on
        // the first prime; the one transform a product takes of the mask).
        let q = Modulus::new(params.q()[0]);
        let ntt = CompactNtt::new(n, &q)?;
        let mut buf = vec![0u64; n];
        let t = instructions();
        ntt.forward_ternary_lazy(&small, ntt.product_scale(), &mut buf);
        let ternary_forward = instructions() - t;
        drop(buf);
        defmt::info!(
            "profile_sampling preset={=str} n={=usize} gaussian_instructions={=u64} ternary_instructions={=u64} rng_u64_instructions={=u64} ternary_forward_instructions={=u64} check={=u64}",
            preset,
            n,
            gaussian_fill,
            ternary_fill,
            rng_words,
            ternary_forward,
            words & 1
        );
    }
    let mut buf = vec![0u64; n];
    for (limb, &q) in params.q().iter().enumerate().take(2) {
        let q = Modulus::new(q);
        for (t, v) in buf.iter_mut().enumerate() {
            *v = q.reduce(t as u64);
        }
        let t = instructions();
        let ntt = CompactNtt::new(n, &q)?;
        let setup = instructions() - t;
        let t = instructions();
        ntt.forward_lazy(&mut buf);
        let forward = instructions() - t;
        // The lazy inverse takes inputs below 2q (in a product, the slot multiplication does this).
        for v in buf.iter_mut() {
            *v = ntt.reduce_4q(*v);
        }
        let t = instructions();
        ntt.inverse_lazy_unnormalized(&mut buf);
        let inverse = instructions() - t;
        // The round trip gives N times the input back, or the figures are of a broken transform.
        let n_mod = q.reduce(n as u64);
        if buf.iter().enumerate().any(|(t, &v)| ntt.reduce_lazy(v) != q.mul(q.reduce(t as u64), n_mod)) {
            return Err(Error::InvalidArgument("NTT round trip failed"));
        }
        let t = instructions();
        UniformExpander::new(&[7; 32], 0, &q).fill(&mut buf);
        let expand = instructions() - t;
        // The slot products as the encryptor takes them: 64 at a time against a staged operand.
        let staged = [ntt.product_scale(); 64];
        let t = instructions();
        for block in buf.chunks_mut(staged.len()) {
            ntt.mul_lazy_slice(block, &staged[..block.len()]);
        }
        let pointwise = instructions() - t;
        for v in buf.iter_mut() {
            *v = ntt.reduce_lazy(*v);
        }
        let bits = q.bits();
        let len = hetune_core::wire::record::packed_limb_len(n, bits);
        let mut sink = NullSink;
        let mut w = RecordWriter::begin(&mut sink, ObjectKind::Plaintext, &[0; 32], len, &[])?;
        let t = instructions();
        w.limb(&buf, bits)?;
        let pack = instructions() - t;
        w.finish()?;
        let t = instructions();
        if let Some(pk) = pk.as_deref_mut() {
            pk.for_each_b(limb, |t, v| buf[t] = v)?;
        }
        let unpack = if pk.is_some() { instructions() - t } else { 0 };
        defmt::info!(
            "profile preset={=str} limb={=usize} bits={=u32} ntt_setup_instructions={=u64} ntt_forward_instructions={=u64} ntt_inverse_instructions={=u64} expand_instructions={=u64} pointwise_instructions={=u64} pack_instructions={=u64} read_key_limb_instructions={=u64}",
            preset,
            limb,
            bits,
            setup,
            forward,
            inverse,
            expand,
            pointwise,
            pack,
            unpack
        );
    }
    Ok(())
}

/// Slot `j` of the ciphertext that starts at row `first_row`: feature `j % 512` of row
/// `first_row + j / 512`, zero in the padding.
fn slot_value(first_row: usize, j: usize) -> Complex {
    let (row, feature) = (first_row + j / ROW_STRIDE, j % ROW_STRIDE);
    if row < data::ROWS && feature < data::FEATURES {
        Complex::new(data::value(row, feature) as f64, 0.0)
    } else {
        Complex::default()
    }
}
