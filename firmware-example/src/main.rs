//! hetune on a data owner's microcontroller: a firmware for a Cortex-M4F (QEMU `mps2-an386`) and,
//! from the same source, an RV32IMAC core (QEMU `virt`).
//!
//! For each parameter set (the insecure `test-n12` and the 128-bit `n16-boot`) it derives the
//! secret key from the provisioned key seed, streams the public key and then encrypts the
//! embedded feature rows into seeded ciphertexts, one record after another, into a host file
//! over semihosting (`hetune-<preset>.hetn` in QEMU's working directory). The defmt log on
//! stdout carries one `key=value` line per step with instruction counts and memory figures; the
//! QEMU test in `tests/tests/qemu.rs` decodes it, decrypts the records and checks them.
//!
//! Randomness: a ChaCha20 generator seeded from a second provisioned seed, so that runs are
//! reproducible. A real device must seed it from a hardware TRNG at every boot: with a fixed
//! seed every boot repeats the same encryption randomness.
#![no_std]
#![no_main]

extern crate alloc;

mod data;
mod hostfile;
mod platform;

use alloc::vec;

use defmt_semihosting as _;
use hetune_core::ckks::encoder::{encode_coeffs, Complex};
use hetune_core::ckks::stream::{stream_encrypt_sk, stream_public_key, StreamWork};
use hetune_core::ring::{Modulus, NttTable};
use hetune_core::rlwe::SecretKey;
use hetune_core::{Error, Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::hostfile::HostFile;
use crate::platform::{instructions, HeapSteps};

/// The provisioned secret-key seed. The host derives the same key from the same file.
static KEY_SEED: &[u8; 32] = include_bytes!("../provision/key.seed");
/// The provisioned seed of the encryption randomness (stands in for a hardware TRNG).
static RNG_SEED: &[u8; 32] = include_bytes!("../provision/rng.seed");

/// Slots per ciphertext: 4 rows of 384 features, each padded to 512 slots.
const LOG_SLOTS: u32 = 11;
/// Slots given to one row.
const ROW_STRIDE: usize = 512;
/// Rows per ciphertext.
const ROWS_PER_CT: usize = (1 << LOG_SLOTS) / ROW_STRIDE;

/// A parameter set the firmware runs, and the level it encrypts at.
struct Run {
    preset: &'static str,
    security: Security,
    /// `None`: the preset's default (top computing) level.
    level: Option<usize>,
    file: &'static core::ffi::CStr,
}

const RUNS: [Run; 2] = [
    Run { preset: "test-n12", security: Security::InsecureForTestingOnly, level: None, file: c"hetune-test-n12.hetn" },
    // Level 3 (q_0 and three 42-bit primes): the host's first products (the plaintext-weight
    // product, one ciphertext product and a mask, each followed by a rescale) fit before it
    // bootstraps. Time and bytes grow linearly with the limbs, so other levels follow from the
    // per-limb figures.
    Run { preset: "n16-boot", security: Security::Require128Bits, level: Some(3), file: c"hetune-n16-boot.hetn" },
];

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    platform::init_heap();
    platform::init();
    const LOOP: u32 = 1_000_000;
    let measured = platform::calibrate(LOOP);
    defmt::info!("calibration loop_instructions={=u64} measured={=u64}", 2 * LOOP as u64, measured);
    defmt::info!(
        "start target={=str} board={=str} rows={=usize} features={=usize} heap_capacity={=usize} stack_capacity={=usize}",
        platform::TARGET,
        platform::BOARD,
        data::ROWS,
        data::FEATURES,
        platform::HEAP_SIZE,
        platform::stack_capacity()
    );
    let mut rng = ChaCha20Rng::from_seed(*RNG_SEED);
    for run in &RUNS {
        if let Err(e) = run_preset(run, &mut rng) {
            defmt::error!("failed preset={=str} error={}", run.preset, e);
            platform::exit(1);
        }
    }
    defmt::info!("done instructions={=u64}", instructions());
    platform::exit(0)
}

/// Keys, public key and every ciphertext of one parameter set, with their figures logged.
fn run_preset(run: &Run, rng: &mut ChaCha20Rng) -> Result<(), Error> {
    platform::repaint_stack();
    let mut heap = HeapSteps::start();

    let t = instructions();
    let params = Parameters::preset(run.preset, run.security)?;
    let level = run.level.unwrap_or(params.default_level());
    let n = params.n();
    defmt::info!(
        "preset name={=str} n={=usize} level={=usize} limbs={=usize} log_slots={=u32} secure={=bool} params_instructions={=u64}",
        run.preset,
        n,
        level,
        level + 1,
        LOG_SLOTS,
        params.is_secure(),
        instructions() - t
    );

    let t = instructions();
    let sk = SecretKey::from_seed(&params, KEY_SEED);
    defmt::info!("keygen preset={=str} instructions={=u64}", run.preset, instructions() - t);

    let mut out = HostFile::create(run.file)?;
    let mut work = StreamWork::new(n);

    heap.step();
    let t = instructions();
    let start = out.written();
    stream_public_key(&params, &sk, rng, &mut work, &mut out)?;
    defmt::info!(
        "public_key preset={=str} bytes={=u64} instructions={=u64} heap_peak={=usize}",
        run.preset,
        out.written() - start,
        instructions() - t,
        heap.step()
    );

    let mut message = vec![0f64; n];
    for (index, first_row) in (0..data::ROWS).step_by(ROWS_PER_CT).enumerate() {
        heap.step();
        let t = instructions();
        encode_coeffs(LOG_SLOTS, params.scale(), 1 << LOG_SLOTS, |j| slot_value(first_row, j), &mut message)?;
        let encode = instructions() - t;
        let t = instructions();
        let start = out.written();
        stream_encrypt_sk(&params, &sk, &message, level, params.scale(), LOG_SLOTS, rng, &mut work, &mut out)?;
        defmt::info!(
            "ciphertext preset={=str} index={=usize} first_row={=usize} rows={=usize} bytes={=u64} encode_instructions={=u64} encrypt_instructions={=u64} heap_peak={=usize}",
            run.preset,
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
    drop((message, work, out, sk));
    heap.step();
    profile_ntt(run.preset, &params)?;
    heap.step();
    defmt::info!(
        "memory preset={=str} heap_peak={=usize} stack_peak={=usize} file_bytes={=u64} heap_leaked={=usize}",
        run.preset,
        heap.overall(),
        platform::stack_high_water(),
        file_bytes,
        heap.leaked()
    );
    Ok(())
}

/// Instructions of the NTT steps inside each limb of an encryption (plan construction, forward
/// and inverse transform) on the first two primes, so the per-limb figure can be broken down.
fn profile_ntt(preset: &str, params: &Parameters) -> Result<(), Error> {
    let n = params.n();
    let mut buf = vec![0u64; n];
    for (limb, &q) in params.q().iter().enumerate().take(2) {
        let q = Modulus::new(q);
        for (t, v) in buf.iter_mut().enumerate() {
            *v = q.reduce(t as u64);
        }
        let t = instructions();
        let table = NttTable::new(n, q)?;
        let plan = instructions() - t;
        let t = instructions();
        table.forward(&mut buf);
        let forward = instructions() - t;
        let t = instructions();
        table.inverse(&mut buf);
        let inverse = instructions() - t;
        // The round trip must give the input back, or the figures are of a broken transform.
        if buf.iter().enumerate().any(|(t, &v)| v != q.reduce(t as u64)) {
            return Err(Error::InvalidArgument("NTT round trip failed"));
        }
        defmt::info!(
            "profile preset={=str} limb={=usize} bits={=u32} ntt_plan_instructions={=u64} ntt_forward_instructions={=u64} ntt_inverse_instructions={=u64}",
            preset,
            limb,
            q.bits(),
            plan,
            forward,
            inverse
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
