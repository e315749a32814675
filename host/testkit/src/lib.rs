//! hetune's test kit (a dev-dependency of the host crates): one owner (context, secret and
//! public key) per preset, evaluation and bootstrapping keys generated once per process and key
//! request and handed out as clones, deterministic test data, and assertions on
//! [`PrecisionStats`] against the plaintext references.
//!
//! Keys are cached per test process: tests of one binary that ask for the same preset and the
//! same keys share them instead of generating them again. Everything is seeded, so a failure
//! reproduces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use hetune_core::ckks::{decrypt, encrypt_sk, Ciphertext, Complex, Encoder};
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use hetune_core::{Parameters, Security};
use hetune_engine::evaluator::{EvaluationKeys, Evaluator, KeyRequest};
pub use hetune_engine::learning::reference::{abt, atb};
pub use hetune_engine::precision::PrecisionStats;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// The data owner of one preset: its context and keys. Made once per process and preset.
pub struct Owner {
    /// Preset name.
    pub preset: &'static str,
    /// Context of the preset (insecure test presets allowed).
    pub ctx: Arc<Context>,
    /// Secret key.
    pub sk: SecretKey,
    /// Public key.
    pub pk: PublicKey,
    eval: Cache<EvaluationKeys>,
}

/// Values made once per key (a request's `Debug` form), in parallel across keys.
struct Cache<V>(Mutex<HashMap<String, Arc<OnceLock<V>>>>);

impl<V: Clone> Cache<V> {
    fn new() -> Self {
        Cache(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: String, make: impl FnOnce() -> V) -> V {
        let cell = self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
        cell.get_or_init(make).clone()
    }
}

/// The owner of `preset` (made on first use, then shared by every test of the process).
pub fn owner(preset: &str) -> &'static Owner {
    static OWNERS: OnceLock<Mutex<HashMap<String, &'static OnceLock<&'static Owner>>>> = OnceLock::new();
    let cell: &'static OnceLock<&'static Owner> = OWNERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(preset.to_string())
        .or_insert_with(|| Box::leak(Box::default()));
    cell.get_or_init(|| {
        let preset: &'static str = Box::leak(preset.to_string().into_boxed_str());
        let params = Parameters::preset(preset, Security::InsecureForTestingOnly).expect("a preset of the core");
        let ctx = Arc::new(Context::new(params).expect("a preset's context"));
        let mut rng = ChaCha20Rng::seed_from_u64(seed_of(preset));
        let sk = SecretKey::generate(ctx.params(), &mut rng);
        let pk = PublicKey::generate(&ctx, &sk, &mut rng);
        Box::leak(Box::new(Owner { preset, ctx, sk, pk, eval: Cache::new() }))
    })
}

/// A seed from a name (FNV-1a), so each preset's owner has its own keys.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Owner {
    /// A CSPRNG for test data, seeded by `seed` and the preset.
    pub fn rng(&self, seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed ^ seed_of(self.preset))
    }

    /// The evaluation keys of `request` (generated on the first request of the process; a
    /// bootstrapping configuration's keys come from [`BootstrapConfig::key_request`]).
    ///
    /// [`BootstrapConfig::key_request`]: hetune_engine::circuits::bootstrap::BootstrapConfig::key_request
    pub fn eval_keys(&self, request: &KeyRequest) -> EvaluationKeys {
        let key = format!("{request:?}");
        self.eval.get(key.clone(), || {
            EvaluationKeys::generate(&self.ctx, &self.sk, request, &mut self.rng(seed_of(&key)))
                .expect("keys this preset can have")
        })
    }

    /// An evaluator with the evaluation keys of `request`.
    pub fn evaluator(&self, request: &KeyRequest) -> Evaluator {
        Evaluator::new(self.ctx.clone(), self.eval_keys(request)).expect("keys of this context")
    }

    /// The top level.
    pub fn top(&self) -> usize {
        self.ctx.params().max_level()
    }

    /// log2 of the full slot count (N/2).
    pub fn log_slots(&self) -> u32 {
        self.ctx.params().log_n() - 1
    }

    /// Encrypts complex slots (`v.len()` a power of two) at `level` and `scale`.
    pub fn encrypt_complex_at(&self, v: &[Complex], level: usize, scale: f64, rng: &mut ChaCha20Rng) -> Ciphertext {
        let pt = Encoder::new(&self.ctx).encode_complex(v, v.len().trailing_zeros(), level, scale).expect("encodable");
        encrypt_sk(&self.ctx, &self.sk, &pt, rng).expect("encryptable").expand(&self.ctx)
    }

    /// Encrypts real values in `2^log_slots` slots at `level`, at the preset's scale.
    pub fn encrypt_real(&self, v: &[f64], log_slots: u32, level: usize, rng: &mut ChaCha20Rng) -> Ciphertext {
        let pt =
            Encoder::new(&self.ctx).encode_real(v, log_slots, level, self.ctx.params().scale()).expect("encodable");
        encrypt_sk(&self.ctx, &self.sk, &pt, rng).expect("encryptable").expand(&self.ctx)
    }

    /// Decrypts and decodes complex slots.
    pub fn decrypt_complex(&self, ct: &Ciphertext) -> Vec<Complex> {
        let pt = decrypt(&self.ctx, &self.sk, ct).expect("decryptable");
        Encoder::new(&self.ctx).decode_complex(&pt).expect("decodable")
    }

    /// Decrypts and decodes real slots.
    pub fn decrypt_real(&self, ct: &Ciphertext) -> Vec<f64> {
        let pt = decrypt(&self.ctx, &self.sk, ct).expect("decryptable");
        Encoder::new(&self.ctx).decode_real(&pt).expect("decodable")
    }
}

/// `rows x cols` values uniform in `[-1, 1)`, from `seed`.
pub fn uniform(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    (0..rows * cols).map(|_| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).collect()
}

/// Asserts that `got` keeps at least `min` bits in its worst slot, and prints the statistics.
#[track_caller]
pub fn assert_min_bits(got: &PrecisionStats, min: f64, what: &str) {
    eprintln!("{what}: {got}");
    assert!(got.min_bits() >= min, "{what}: {:.1} bits < {min}", got.min_bits());
}

/// Asserts that the largest error of `got` against `want`, relative to the largest entry of
/// `want` (which must not be all zero), is below `1e-3`.
#[track_caller]
pub fn assert_close(got: &[f64], want: &[f64], what: &str) {
    let s = PrecisionStats::real(got, want).expect("equal lengths");
    eprintln!("{what}: {s}, largest entry {:.3}, relative {:.2e}", s.max_reference, s.relative_error());
    assert!(
        s.max_reference > 0.0 && s.relative_error() < 1e-3,
        "{what}: error {:e} relative to {} is {:e}",
        s.max_abs_error,
        s.max_reference,
        s.relative_error()
    );
}
