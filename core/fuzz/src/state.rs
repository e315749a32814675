//! What the fuzz target and the corpus writer share: the parameter set, its keys, one record of
//! every kind with its reader, and how an input selects a reader and asks for a repair.

use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::wire::Limits;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::records::{records, small_params, Record};

/// The decoders under test, built once per process.
pub struct State {
    /// The reader's context (the small insecure N = 2^10 set, so each execution is fast).
    pub ctx: &'static Context,
    /// One record of every kind, with its reader; input byte 0 picks one (one past the end:
    /// `read_object`).
    pub records: Vec<Record<'static>>,
    /// The limits every decoder runs under.
    pub limits: Limits,
}

impl State {
    /// Builds the context, keys and records (deterministically).
    pub fn new() -> Self {
        let ctx: &'static Context = Box::leak(Box::new(Context::new(small_params()).expect("valid set")));
        let mut rng = ChaCha20Rng::seed_from_u64(0x6675_7a7a);
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let records = records(ctx, &sk, &mut rng);
        State { ctx, records, limits: Limits::for_params(ctx.params()) }
    }
}

/// Input layout: byte 0 selects the reader, byte 1 the repair (bit 0: recompute checksums and
/// fingerprint, bit 1: also the payload length), the rest is the record.
pub const PREFIX: usize = 2;
