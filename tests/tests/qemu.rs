//! The QEMU cross-target test: builds `firmware-example` (with its test-only insecure preset) for
//! thumbv7em-none-eabihf, which runs on a Cortex-M4F (QEMU `mps2-an386`) and a Cortex-M7 (QEMU
//! `mps2-an500`) alike, and for riscv32imac-unknown-none-elf (QEMU `virt`); provisions each
//! machine as a sensor (public key only) and as the owner's device (secret-key seed); runs them
//! under `-icount shift=0` in a 2 MiB RAM budget; decodes the defmt logs; and for every record:
//! - decrypts it with the owner's key and compares all slots with the embedded feature rows;
//! - reproduces it on the host with the same seeds and the same core code, byte for byte;
//! - checks the device's heap, stack, instruction and byte figures.
//!
//! It also boots one sensor twice (the ciphertexts of the same rows must differ, and both
//! decrypt), checks that corrupted records are rejected with typed errors, and that an image
//! linked for a too-small RAM region fails to build with a clear error. It prints one
//! `qemu-report: {json}` line (also written to `target/qemu-report.json`).
//!
//! Needs `qemu-system-arm` and `qemu-system-riscv32` on the PATH and both rustup targets
//! (`bash .ci/qemu-deps.sh` installs them); without them the test fails and says so.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hetune_core::ckks::encoder::encode_coeffs;
use hetune_core::ckks::stream::{
    caller_bytes, stream_encrypt_pk, stream_encrypt_sk, stream_public_key, StreamMode, StreamPlaintext, StreamWork,
};
use hetune_core::ckks::{decrypt, encrypt_pk, Complex, Encoder};
use hetune_core::entropy::{BootCounterDrbg, EntropySource};
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use hetune_core::wire::{
    ciphertext_size, read_ciphertext, read_public_key, seeded_ciphertext_size, write_public_key, AnyCiphertext, Limits,
    StoredPublicKey,
};
use hetune_core::{Error, Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;

/// A machine the firmware runs on.
struct Machine {
    /// Short name in the report.
    name: &'static str,
    /// Rust target triple.
    target: &'static str,
    /// QEMU binary and the arguments before `-kernel <elf>`.
    qemu: &'static str,
    args: &'static [&'static str],
    /// The core the firmware must report.
    core: &'static str,
    /// Where the instruction counts come from.
    counter: &'static str,
}

const SYSTICK: &str = "SysTick (25 MHz) on QEMU's -icount shift=0 virtual clock, 40 instructions per tick";
const MACHINES: [Machine; 3] = [
    Machine {
        name: "m4f",
        target: "thumbv7em-none-eabihf",
        qemu: "qemu-system-arm",
        args: &["-machine", "mps2-an386", "-cpu", "cortex-m4"],
        core: "cortex-m4",
        counter: SYSTICK,
    },
    Machine {
        name: "m7",
        target: "thumbv7em-none-eabihf",
        qemu: "qemu-system-arm",
        args: &["-machine", "mps2-an500", "-cpu", "cortex-m7"],
        core: "cortex-m7",
        counter: SYSTICK,
    },
    Machine {
        name: "rv32",
        target: "riscv32imac-unknown-none-elf",
        qemu: "qemu-system-riscv32",
        args: &["-machine", "virt", "-cpu", "rv32", "-m", "64M", "-bios", "none"],
        core: "rv32imac",
        counter: "minstret CSR, which QEMU derives from the -icount instruction count",
    },
];
/// Whole QEMU run; it takes a few seconds on an idle machine.
const QEMU_TIMEOUT: Duration = Duration::from_secs(600);
/// Features of the test image: the insecure test-n12 preset (with published test seeds).
const TEST_FEATURES: &str = "insecure-test-presets";
/// Rows, features and packing of the embedded data (firmware-example/src/{data,main}.rs).
const ROWS: usize = 8;
const FEATURES: usize = 384;
const ROW_STRIDE: usize = 512;
const ROWS_PER_CT: usize = 4;
const LOG_SLOTS: u32 = 11;
/// The presets the test image runs, in order, with their levels.
const PRESETS: [(&str, Security, Option<usize>); 2] =
    [("test-n12", Security::InsecureForTestingOnly, None), ("n16-boot", Security::Require128Bits, Some(3))];
/// The firmware's I/O buffers (firmware-example/src/storage.rs): output and stored-key window.
const IO_BUFFERS: usize = 2 * 4096;
/// The working-memory target at n16-boot, both modes: 1.25 MiB.
const HEAP_TARGET: u64 = 1_310_720;
/// Instructions per ciphertext (encode + encrypt) at n16-boot on the Cortex-M (M4F and M7 run
/// the same image and count the same), level 3, 2^11 slots: the public-key mode within 1.2 times
/// the 600.5 M of the firmware before the streaming encryptor (secret-key mode, 2 MiB NTT plan),
/// the secret-key mode no slower than the 419.6 M it took before the assembly kernels. QEMU's
/// counts are deterministic, so these are exact regression bounds, not timing guesses.
const CORTEX_M_N16_INSTRUCTIONS: [(StreamMode, u64); 2] =
    [(StreamMode::PublicKey, 720_600_000), (StreamMode::SecretKey, 419_600_000)];
/// Smallest accepted precision of a decrypted slot, in bits (-log2 of the largest absolute
/// error over all 2048 slots, padding included). Fresh secret-key encryptions at scale 2^40 and
/// 2^42 give 30 to 33 bits, public-key ones 2 to 4 bits less (the division by the special prime
/// leaves a rounding term times the secret); 24 leaves room for an unlucky draw without hiding a
/// broken encoder.
const MIN_PRECISION_BITS: f64 = 24.0;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

fn firmware_dir() -> PathBuf {
    repo_root().join("firmware-example")
}

fn read_seed(name: &str) -> [u8; 32] {
    std::fs::read(firmware_dir().join("provision").join(name))
        .unwrap_or_else(|e| panic!("read provision/{name}: {e}"))
        .try_into()
        .expect("a 32-byte seed")
}

/// `<qemu> --version`, or a failure that says how to install it.
fn qemu_version(qemu: &str) -> String {
    let out = Command::new(qemu).arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "{qemu} is not available ({e}): this test runs the firmware under QEMU. Install it \
             (Debian/Ubuntu: `apt-get install -y --no-install-recommends qemu-system-arm qemu-system-misc`, \
             or `bash .ci/qemu-deps.sh`)"
        )
    });
    assert!(out.status.success(), "{qemu} --version failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string()
}

/// Builds the firmware for `target` with `features` (its own workspace, its own target
/// directory): the ELF path, or cargo's stderr. One cargo run per target: building both at once
/// would unify the features of their runtimes' shared dependencies (critical-section), which
/// conflict.
fn build_firmware(target: &str, features: &str) -> Result<PathBuf, String> {
    let dir = firmware_dir();
    let target_dir = dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--target", target, "--features", features])
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer `cargo test` must not leak host build settings into the cross build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .output()
        .expect("run cargo to build the firmware");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        let hint = if stderr.contains("can't find crate for `core`") || stderr.contains("target may not be installed") {
            format!(" (the target is missing: `rustup target add {target}`)")
        } else {
            String::new()
        };
        return Err(format!("building firmware-example for {target} with [{features}] failed{hint}:\n{stderr}"));
    }
    let elf = target_dir.join(target).join("release").join("hetune-firmware-example");
    assert!(elf.is_file(), "no firmware ELF at {}", elf.display());
    // The same path serves every feature set: keep a copy of this one.
    let kept = target_dir.join(target).join(format!("hetune-firmware-example-{}", features.replace(',', "-")));
    std::fs::copy(&elf, &kept).expect("copy the ELF");
    Ok(kept)
}

struct QemuRun {
    /// Raw defmt frames written to semihosting stdout.
    log: Vec<u8>,
    status: i32,
    wall: Duration,
}

/// Runs the firmware in `workdir` (its storage: where its semihosting files are) under a timeout.
fn run_qemu(machine: &Machine, elf: &Path, workdir: &Path) -> QemuRun {
    let start = Instant::now();
    let mut child = Command::new(machine.qemu)
        .current_dir(workdir)
        .args(machine.args)
        .args(["-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", machine.qemu));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for qemu") {
            break s;
        }
        if start.elapsed() > QEMU_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within {QEMU_TIMEOUT:?} (hung firmware?)", machine.qemu);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    let log = reader.join().expect("stdout reader").expect("read qemu stdout");
    let mut stderr = String::new();
    child.stderr.take().expect("piped stderr").read_to_string(&mut stderr).expect("read qemu stderr");
    let status = status.code().unwrap_or_else(|| panic!("{} killed by a signal; stderr:\n{stderr}", machine.qemu));
    QemuRun { log, status, wall }
}

/// One decoded defmt line: the message's leading word and its `key=value` pairs.
#[derive(Debug)]
struct LogLine {
    level: String,
    tag: String,
    fields: BTreeMap<String, String>,
    instructions: Option<u64>,
    text: String,
}

impl LogLine {
    fn get(&self, key: &str) -> &str {
        self.fields.get(key).unwrap_or_else(|| panic!("log line without `{key}`: {}", self.text))
    }

    fn u64(&self, key: &str) -> u64 {
        self.get(key).parse().unwrap_or_else(|_| panic!("`{key}` is not a number in: {}", self.text))
    }
}

/// Decodes every defmt frame of `log` with the firmware ELF's table.
fn decode_log(elf: &[u8], log: &[u8]) -> Vec<LogLine> {
    let table =
        defmt_decoder::Table::parse(elf).expect("parse the defmt table").expect("the firmware has a defmt table");
    let mut decoder = table.new_stream_decoder();
    decoder.received(log);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                let text = frame.display_message().to_string();
                let level = frame.level().map(|l| format!("{l:?}")).unwrap_or_default();
                let instructions = frame.display_timestamp().and_then(|t| t.to_string().parse().ok());
                let mut words = text.split_whitespace();
                let tag = words.next().unwrap_or_default().to_string();
                let fields =
                    words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
                lines.push(LogLine { level, tag, fields, instructions, text });
            }
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => panic!("malformed defmt frame after {} lines", lines.len()),
        }
    }
    lines
}

fn find<'a>(lines: &'a [LogLine], tag: &str, preset: &str) -> &'a LogLine {
    lines
        .iter()
        .find(|l| l.tag == tag && l.fields.get("preset").or(l.fields.get("name")).map(String::as_str) == Some(preset))
        .unwrap_or_else(|| panic!("no `{tag}` line for {preset} in the firmware log"))
}

/// The embedded feature rows, as the firmware includes them.
fn feature_rows() -> Vec<f32> {
    let bytes =
        std::fs::read(firmware_dir().join("data/snips_minilm_test_rows0-7.f32")).expect("read the embedded rows");
    assert_eq!(bytes.len(), ROWS * FEATURES * 4);
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Slot `j` of the ciphertext starting at `first_row`, as the firmware packs it.
fn expected_slot(rows: &[f32], first_row: usize, j: usize) -> f64 {
    let (row, feature) = (first_row + j / ROW_STRIDE, j % ROW_STRIDE);
    if row < ROWS && feature < FEATURES {
        rows[row * FEATURES + feature] as f64
    } else {
        0.0
    }
}

/// -log2 of the largest absolute error between decoded slots and expected values (imaginary
/// parts are expected to be zero).
fn precision_bits(decoded: &[Complex], expected: impl Fn(usize) -> f64) -> f64 {
    let worst =
        decoded.iter().enumerate().map(|(j, c)| (c.re - expected(j)).abs().max(c.im.abs())).fold(0.0f64, f64::max);
    -worst.log2()
}

/// The owner's side of one parameter set: the key the devices' records decrypt under, and what
/// a sensor is provisioned with.
struct Owner {
    name: &'static str,
    security: Security,
    level: Option<usize>,
    ctx: Context,
    sk: SecretKey,
    /// The secret-key seed the owner's device is provisioned with (test seeds for insecure sets).
    key_seed: [u8; 32],
    /// The device randomness seed of this set (test seeds for insecure sets).
    rng_seed: [u8; 32],
    /// The public-key record a sensor stores (b in evaluation form).
    public_record: Vec<u8>,
}

fn owners() -> Vec<Owner> {
    PRESETS
        .iter()
        .map(|&(name, security, level)| {
            let insecure = security == Security::InsecureForTestingOnly;
            let key_seed = read_seed(if insecure { "test-key.seed" } else { "key.seed" });
            let rng_seed = read_seed(if insecure { "test-rng.seed" } else { "rng.seed" });
            let ctx = Context::new(Parameters::preset(name, security).expect("preset")).expect("context");
            let sk = SecretKey::from_seed(ctx.params(), &key_seed);
            let pk = PublicKey::generate(&ctx, &sk, &mut ChaCha20Rng::from_seed([0x5e; 32]));
            let mut public_record = Vec::new();
            write_public_key(&mut public_record, ctx.params(), &pk).expect("write the public key");
            Owner { name, security, level, ctx, sk, key_seed, rng_seed, public_record }
        })
        .collect()
}

/// Writes a fresh device's storage: boot counter 0, the randomness seed, and the secret-key seed
/// (owner's device) or the public keys (sensor).
fn provision(workdir: &Path, mode: StreamMode, owners: &[Owner]) {
    let _ = std::fs::remove_dir_all(workdir);
    std::fs::create_dir_all(workdir).expect("create the device's storage");
    std::fs::write(workdir.join("boot.counter"), 0u64.to_le_bytes()).unwrap();
    let secure = owners.iter().find(|o| o.security == Security::Require128Bits).unwrap();
    std::fs::write(workdir.join("rng.seed"), secure.rng_seed).unwrap();
    match mode {
        StreamMode::SecretKey => std::fs::write(workdir.join("key.seed"), secure.key_seed).unwrap(),
        StreamMode::PublicKey => {
            for o in owners {
                std::fs::write(workdir.join(format!("public-{}.hetn", o.name)), &o.public_record).unwrap();
            }
        }
    }
}

/// The stream the firmware must have written for `owner`'s set, computed on the host with the
/// same seeds: `boot` is the boot number the device used.
fn host_stream(owner: &Owner, mode: StreamMode, boot: u64, rows: &[f32]) -> Vec<u8> {
    let params = owner.ctx.params();
    let level = owner.level.unwrap_or(params.default_level());
    let mut rng = ChaCha20Rng::from_seed(BootCounterDrbg::new(&owner.rng_seed, boot).fresh_seed().unwrap());
    let mut work = StreamWork::new(params.n(), mode);
    let mut out = Vec::new();
    let sk = SecretKey::from_seed(params, &owner.key_seed);
    let mut pk = StoredPublicKey::open(owner.public_record.as_slice(), params, &Limits::default()).unwrap();
    if mode == StreamMode::SecretKey {
        stream_public_key(params, &sk, &mut rng, &mut work, &mut out).unwrap();
    }
    let mut message = vec![0f64; 2 << LOG_SLOTS];
    for first_row in (0..ROWS).step_by(ROWS_PER_CT) {
        let value = |j| Complex::new(expected_slot(rows, first_row, j), 0.0);
        encode_coeffs(LOG_SLOTS, params.scale(), 1 << LOG_SLOTS, value, &mut message).unwrap();
        let pt = StreamPlaintext { coeffs: &message, log_slots: LOG_SLOTS, level, scale: params.scale() };
        match mode {
            StreamMode::SecretKey => stream_encrypt_sk(params, &sk, &pt, &mut rng, &mut work, &mut out).unwrap(),
            StreamMode::PublicKey => stream_encrypt_pk(params, &mut pk, &pt, &mut rng, &mut work, &mut out).unwrap(),
        }
    }
    out
}

fn mode_name(mode: StreamMode) -> &'static str {
    match mode {
        StreamMode::SecretKey => "secret-key",
        StreamMode::PublicKey => "public-key",
    }
}

/// Byte positions of one record in a stream: start, payload start, payload end (CRC follows).
struct RecordSpan {
    start: usize,
    payload: usize,
    payload_end: usize,
}

fn record_span(stream: &[u8], start: usize) -> RecordSpan {
    let h = &stream[start..];
    let ext_len = u16::from_le_bytes([h[48], h[49]]) as usize;
    let payload_len = u64::from_le_bytes(h[40..48].try_into().unwrap()) as usize;
    let payload = start + 50 + ext_len + 4;
    RecordSpan { start, payload, payload_end: payload + payload_len }
}

/// Checks the stream of one preset from one run and returns its report entry and the decrypted
/// precision.
fn check_preset(
    owner: &Owner,
    mode: StreamMode,
    boot: u64,
    stream: &[u8],
    lines: &[LogLine],
    rows: &[f32],
) -> serde_json::Value {
    let (ctx, name) = (&owner.ctx, owner.name);
    let params = ctx.params();
    let info = find(lines, "preset", name);
    let level = info.u64("level") as usize;
    let log_slots = info.u64("log_slots") as u32;
    assert_eq!(log_slots, LOG_SLOTS);
    assert_eq!(info.get("mode"), mode_name(mode));
    assert_eq!(level, owner.level.unwrap_or(params.default_level()));
    assert_eq!(info.get("secure"), if owner.security == Security::Require128Bits { "true" } else { "false" });

    // The host, with the same seeds and the same core code, writes the same bytes.
    let host = host_stream(owner, mode, boot, rows);
    assert!(host == stream, "{name} {}: the device's bytes differ from the host's for the same seeds", mode_name(mode));

    let cts = ROWS / ROWS_PER_CT;
    let ct_bytes = match mode {
        StreamMode::SecretKey => seeded_ciphertext_size(params, level),
        StreamMode::PublicKey => ciphertext_size(params, level),
    };
    let mut src: &[u8] = stream;
    let mut heap_steps = Vec::new();
    let pk_report = if mode == StreamMode::SecretKey {
        let pk_log = find(lines, "public_key", name);
        let pk_bytes = pk_log.u64("bytes");
        let pk = read_public_key(&mut src, ctx, &Limits::for_params(ctx.params())).expect("read the public key");
        assert_eq!((stream.len() - src.len()) as u64, pk_bytes);
        // The streamed public key encrypts on the host and decrypts under the owner's key.
        let values: Vec<f64> = (0..1usize << log_slots).map(|j| expected_slot(rows, 0, j)).collect();
        let encoder = Encoder::new(ctx);
        let pt = encoder.encode_real(&values, log_slots, level, params.scale()).expect("encode");
        let ct = encrypt_pk(ctx, &pk, &pt, &mut ChaCha20Rng::from_seed([7; 32])).expect("encrypt");
        let decoded = encoder.decode_complex(&decrypt(ctx, &owner.sk, &ct).expect("decrypt")).expect("decode");
        let bits = precision_bits(&decoded, |j| values[j]);
        assert!(bits >= MIN_PRECISION_BITS, "{name}: the device's public key gives {bits:.1} bits");
        heap_steps.push(pk_log.u64("heap_peak"));
        json!({
            "limbs": pk.b.limbs(),
            "bytes": pk_bytes,
            "instructions": pk_log.u64("instructions"),
            "heap_peak_bytes": pk_log.u64("heap_peak"),
            "host_encryption_precision_bits": (bits * 10.0).round() / 10.0,
        })
    } else {
        let open = find(lines, "open_key", name);
        assert_eq!(open.u64("bytes"), owner.public_record.len() as u64);
        heap_steps.push(open.u64("heap_peak"));
        json!({
            "stored_bytes": open.u64("bytes"),
            "open_and_check_instructions": open.u64("instructions"),
        })
    };

    let encoder = Encoder::new(ctx);
    let mut precision = f64::INFINITY;
    let mut starts = Vec::new();
    let (mut encode_instr, mut encrypt_instr) = (Vec::new(), Vec::new());
    for index in 0..cts {
        starts.push(stream.len() - src.len());
        let ct =
            read_ciphertext(&mut src, ctx, &Limits::for_ciphertexts(ctx.params())).expect("read a device ciphertext");
        match (&ct, mode) {
            (AnyCiphertext::Seeded(s), StreamMode::SecretKey) => {
                assert!(!s.c0_ntt, "c0 in coefficient form");
                assert_eq!((s.level, s.log_slots, s.scale), (level, log_slots, params.scale()));
            }
            (AnyCiphertext::Full(c), StreamMode::PublicKey) => {
                assert_eq!((c.c.len(), c.level, c.log_slots, c.scale), (2, level, log_slots, params.scale()));
            }
            _ => panic!("{name}: a {} device sent the other kind of ciphertext", mode_name(mode)),
        }
        let full = ct.into_full(ctx);
        let decoded = encoder.decode_complex(&decrypt(ctx, &owner.sk, &full).expect("decrypt")).expect("decode");
        let first_row = index * ROWS_PER_CT;
        let bits = precision_bits(&decoded, |j| expected_slot(rows, first_row, j));
        assert!(
            bits >= MIN_PRECISION_BITS,
            "{name} ciphertext {index}: precision {bits:.1} bits < {MIN_PRECISION_BITS}"
        );
        precision = precision.min(bits);
        let log = lines
            .iter()
            .find(|l| l.tag == "ciphertext" && l.get("preset") == name && l.u64("index") == index as u64)
            .unwrap_or_else(|| panic!("no log line for {name} ciphertext {index}"));
        assert_eq!(log.u64("bytes"), ct_bytes, "{name}: bytes per ciphertext");
        assert_eq!(log.u64("first_row") as usize, first_row);
        encode_instr.push(log.u64("encode_instructions"));
        encrypt_instr.push(log.u64("encrypt_instructions"));
        heap_steps.push(log.u64("heap_peak"));
    }
    assert!(src.is_empty(), "{name}: {} bytes after the last record", src.len());
    check_corruption(name, mode, stream, starts[0], ctx, ct_bytes);

    let mem = find(lines, "memory", name);
    assert_eq!(mem.u64("heap_leaked"), 0, "{name}: heap not returned");
    assert_eq!(mem.u64("file_bytes"), stream.len() as u64, "{name}: bytes the device wrote");
    // The heap: the working memory of the mode, the compact message and (secret-key mode) the
    // secret, the firmware's two 4 KiB I/O buffers, plus the parameter set's small tables; never
    // more, whatever the number of limbs (the public key runs over all 33 at n16-boot,
    // ciphertexts over 4).
    let n = params.n();
    let need = StreamWork::bytes_for(n, mode) + caller_bytes(n, mode, log_slots) + IO_BUFFERS;
    let bound = (need + 4096) as u64;
    let heap_peak = mem.u64("heap_peak");
    assert_eq!(heap_peak, heap_steps.iter().copied().max().unwrap(), "{name}: heap peak outside the steps");
    assert!(heap_peak <= bound, "{name} {}: heap peak {heap_peak} > {bound}", mode_name(mode));
    if name == "n16-boot" {
        assert!(heap_peak <= HEAP_TARGET, "n16-boot {}: heap peak {heap_peak} above 1.25 MiB", mode_name(mode));
    }
    let stack_peak = mem.u64("stack_peak");
    assert!(stack_peak > 0 && stack_peak <= 16 * 1024, "{name}: stack peak {stack_peak} bytes");
    let stack_encryption = mem.u64("stack_peak_encryption");
    assert!(
        stack_encryption > 0 && stack_encryption <= stack_peak,
        "{name}: encryption stack {stack_encryption} bytes"
    );
    let ntt: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.tag == "profile" && l.get("preset") == name)
        .map(|l| {
            json!({
                "limb": l.u64("limb"),
                "bits": l.u64("bits"),
                "ntt_setup_instructions": l.u64("ntt_setup_instructions"),
                "ntt_forward_instructions": l.u64("ntt_forward_instructions"),
                "ntt_inverse_instructions": l.u64("ntt_inverse_instructions"),
                "expand_a_instructions": l.u64("expand_instructions"),
                "pointwise_product_instructions": l.u64("pointwise_instructions"),
                "pack_and_checksum_instructions": l.u64("pack_instructions"),
                "read_stored_key_limb_instructions": l.u64("read_key_limb_instructions"),
            })
        })
        .collect();
    assert_eq!(ntt.len(), 2, "{name}: NTT profile lines");
    let sampling = find(lines, "profile_sampling", name);
    let sampling = json!({
        "gaussian_error_instructions": sampling.u64("gaussian_instructions"),
        "ternary_mask_instructions": sampling.u64("ternary_instructions"),
        "generator_u64_words_instructions": sampling.u64("rng_u64_instructions"),
        "mask_load_and_forward_instructions": sampling.u64("ternary_forward_instructions"),
    });
    let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len() as u64;
    let (enc, cry) = (mean(&encode_instr), mean(&encrypt_instr));
    let limbs = level as u64 + 1;
    json!({
        "preset": name,
        "mode": mode_name(mode),
        "n": n,
        "secure_128": params.is_secure(),
        "level": level,
        "limbs": limbs,
        "slots": 1u64 << log_slots,
        "ciphertexts": cts,
        "instructions_per_ciphertext": enc + cry,
        "instructions_per_slot": (enc + cry) >> log_slots,
        "encode_instructions_per_ciphertext": enc,
        "encrypt_instructions_per_ciphertext": cry,
        "bytes_per_ciphertext": ct_bytes,
        "bytes_per_slot": ct_bytes as f64 / (1u64 << log_slots) as f64,
        "key": pk_report,
        "keygen_instructions": lines.iter().find(|l| l.tag == "keygen" && l.get("preset") == name).map(|l| l.u64("instructions")),
        "parameter_generation_instructions": info.u64("params_instructions"),
        "heap_peak_bytes": heap_peak,
        "heap_need_bytes": need,
        "stack_peak_bytes": stack_peak,
        "stack_peak_keys_and_ciphertexts_bytes": stack_encryption,
        "limb_profile": ntt,
        "polynomial_profile": sampling,
        "precision_bits_min": (precision * 10.0).round() / 10.0,
    })
}

/// Corrupted copies of the first ciphertext record must be rejected with the wire format's typed
/// errors: a header byte (header CRC), a payload bit (payload CRC), a residue pushed to its
/// modulus (range check; seeded records), and a cut stream (truncation).
fn check_corruption(name: &str, mode: StreamMode, stream: &[u8], start: usize, ctx: &Context, ct_bytes: u64) {
    let limits = Limits::for_ciphertexts(ctx.params());
    assert!(ct_bytes <= limits.max_bytes, "{name}: a ciphertext record fits the reader's limit");
    let span = record_span(stream, start);
    let record = &stream[span.start..span.payload_end + 4];
    let read = |bytes: &[u8]| {
        let mut src = bytes;
        read_ciphertext(&mut src, ctx, &limits).map(|_| ())
    };
    assert_eq!(read(record), Ok(()), "{name}: the untouched record reads");
    let mut bad = record.to_vec();
    bad[50] ^= 0x01; // the level byte of the header extension
    assert_eq!(read(&bad), Err(Error::ChecksumMismatch), "{name}: corrupted header");
    let mut bad = record.to_vec();
    let mid = (span.payload - span.start) + (span.payload_end - span.payload) / 2;
    bad[mid] ^= 0x01;
    assert_eq!(read(&bad), Err(Error::ChecksumMismatch), "{name}: corrupted payload bit");
    assert_eq!(read(&record[..record.len() - 100]), Err(Error::Truncated), "{name}: truncated record");
    if mode == StreamMode::PublicKey {
        return;
    }
    // A byte set to 0xff over the top bits of a residue that then reaches its modulus (found from
    // the decoded residues; a limb whose prime lies just above a power of two has many).
    let AnyCiphertext::Seeded(ct) = read_ciphertext(&mut &record[..], ctx, &limits).unwrap() else { unreachable!() };
    let params = ctx.params();
    let mut limb_start = 32; // the seed comes first
    let mut target = None;
    for i in 0..=ct.level {
        let (q, bits) = (params.q()[i], params.limb_bits(i) as usize);
        let limb = ct.c0.limb(i);
        target = (0..limb.len()).find_map(|k| {
            let byte = (k * bits + bits - 1) / 8;
            let lo = (byte * 8).max(k * bits) - k * bits;
            let mask = ((1u64 << (bits - lo)) - 1) << lo;
            (limb[k] | mask >= q).then_some((i, limb_start + byte))
        });
        if target.is_some() {
            break;
        }
        limb_start += (limb.len() * bits).div_ceil(8);
    }
    let (limb, at) = target.expect("some residue can be pushed out of range by one byte");
    let mut bad = record.to_vec();
    bad[(span.payload - span.start) + at] = 0xff;
    assert_eq!(read(&bad), Err(Error::ResidueOutOfRange { limb: limb as u32 }), "{name}: residue out of range");
}

/// One boot of a provisioned device: the checked records of every preset and the report entry.
struct Boot {
    streams: Vec<Vec<u8>>,
    report: serde_json::Value,
}

/// Runs the firmware once in `workdir` and checks everything it sent.
fn boot_device(
    machine: &Machine,
    elf_path: &Path,
    workdir: &Path,
    mode: StreamMode,
    owners: &[Owner],
    rows: &[f32],
) -> Boot {
    let elf = std::fs::read(elf_path).expect("read the firmware ELF");
    let run = run_qemu(machine, elf_path, workdir);
    let lines = decode_log(&elf, &run.log);
    for l in &lines {
        eprintln!(
            "[{} {} {} @{}] {}",
            machine.name,
            mode_name(mode),
            l.level,
            l.instructions.map(|i| i.to_string()).unwrap_or_default(),
            l.text
        );
    }
    assert_eq!(run.status, 0, "{} {}: firmware exit status (log above)", machine.name, mode_name(mode));
    assert!(lines.iter().any(|l| l.tag == "done"), "{}: the firmware did not log `done`", machine.name);
    assert!(lines.iter().all(|l| l.level != "Error"), "{}: the firmware logged an error", machine.name);
    let start = lines.iter().find(|l| l.tag == "start").expect("start line");
    assert_eq!(start.get("target"), machine.target);
    assert_eq!(start.get("core"), machine.core, "{}: the core the image found", machine.name);
    let device = lines.iter().find(|l| l.tag == "device").expect("device line");
    assert_eq!(device.get("mode"), mode_name(mode));
    let boot = device.u64("boot");
    let counter = u64::from_le_bytes(std::fs::read(workdir.join("boot.counter")).unwrap().try_into().unwrap());
    assert_eq!(counter, boot, "{}: the boot counter holds this boot's number", machine.name);

    // The instruction counter against a loop of known length.
    let cal = lines.iter().find(|l| l.tag == "calibration").expect("calibration line");
    let (want, got) = (cal.u64("loop_instructions"), cal.u64("measured"));
    assert!(
        got.abs_diff(want) <= want / 200 + 100,
        "{}: instruction counter off: {want} measured as {got}",
        machine.name
    );

    let mut streams = Vec::new();
    let mut presets = Vec::new();
    for owner in owners {
        let stream =
            std::fs::read(workdir.join(format!("hetune-{}.hetn", owner.name))).expect("read the streamed records");
        presets.push(check_preset(owner, mode, boot, &stream, &lines, rows));
        streams.push(stream);
    }
    if machine.target == "thumbv7em-none-eabihf" {
        let (_, bound) = CORTEX_M_N16_INSTRUCTIONS.iter().find(|(m, _)| *m == mode).unwrap();
        let n16 = presets.iter().find(|p| p["preset"] == "n16-boot").expect("an n16-boot report");
        let per_ct = n16["instructions_per_ciphertext"].as_u64().unwrap();
        assert!(
            per_ct <= *bound,
            "{} {}: {per_ct} instructions per n16-boot ciphertext, above {bound}",
            machine.name,
            mode_name(mode)
        );
    }
    let report = json!({
        "machine": machine.name,
        "target": machine.target,
        "core": machine.core,
        "mode": mode_name(mode),
        "boot": boot,
        "heap_capacity_bytes": start.u64("heap_capacity"),
        "stack_capacity_bytes": start.u64("stack_capacity"),
        "total_instructions": lines.iter().find(|l| l.tag == "done").unwrap().u64("instructions"),
        "qemu_wall_seconds": (run.wall.as_secs_f64() * 100.0).round() / 100.0,
        "presets": presets,
    });
    Boot { streams, report }
}

/// Every run of one machine: as the owner's device, as a sensor, and (first machine) the sensor
/// booted a second time.
fn check_machine(machine: &Machine, elf: &Path, owners: &[Owner], rows: &[f32], second_boot: bool) -> Vec<Boot> {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-firmware").join(machine.name);
    let mut boots = Vec::new();
    for mode in [StreamMode::PublicKey, StreamMode::SecretKey] {
        let workdir = base.join(mode_name(mode));
        provision(&workdir, mode, owners);
        boots.push(boot_device(machine, elf, &workdir, mode, owners, rows));
        if second_boot && mode == StreamMode::PublicKey {
            boots.push(boot_device(machine, elf, &workdir, mode, owners, rows));
        }
    }
    boots
}

#[test]
fn firmware_on_qemu_encrypts_in_two_mib_in_both_modes() {
    let started = Instant::now();
    let versions: BTreeMap<&str, String> = MACHINES.iter().map(|m| (m.qemu, qemu_version(m.qemu))).collect();
    let arm = build_firmware("thumbv7em-none-eabihf", TEST_FEATURES).unwrap_or_else(|e| panic!("{e}"));
    let riscv = build_firmware("riscv32imac-unknown-none-elf", TEST_FEATURES).unwrap_or_else(|e| panic!("{e}"));
    let built = started.elapsed();
    let rows = feature_rows();
    let owners = owners();

    // The machines run side by side (QEMU is single-threaded).
    let results: Vec<Vec<Boot>> = std::thread::scope(|s| {
        let handles: Vec<_> = MACHINES
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let elf = if m.target == "thumbv7em-none-eabihf" { &arm } else { &riscv };
                let (owners, rows) = (&owners, &rows);
                s.spawn(move || check_machine(m, elf, owners, rows, k == 0))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a machine's checks")).collect()
    });

    // Same seeds, same integer arithmetic: every machine sent the same bytes in each role.
    for (k, _) in [StreamMode::PublicKey, StreamMode::SecretKey].iter().enumerate() {
        let first = &results[0][if k == 0 { 0 } else { 2 }].streams;
        for (m, boots) in MACHINES.iter().zip(&results).skip(1) {
            assert!(boots[k].streams == *first, "{}: other bytes than the M4F's for the same seeds", m.name);
        }
    }
    // The second boot of the same sensor: new randomness, so every ciphertext differs, and it
    // still decrypts (checked with the rest above).
    let (boot1, boot2) = (&results[0][0], &results[0][1]);
    assert_eq!((boot1.report["boot"].as_u64(), boot2.report["boot"].as_u64()), (Some(1), Some(2)));
    for (owner, (a, b)) in owners.iter().zip(boot1.streams.iter().zip(&boot2.streams)) {
        let ct_bytes =
            ciphertext_size(owner.ctx.params(), owner.level.unwrap_or(owner.ctx.params().default_level())) as usize;
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.chunks(ct_bytes).zip(b.chunks(ct_bytes)).enumerate() {
            let span = record_span(x, 0);
            assert_ne!(
                x[span.payload..span.payload_end],
                y[span.payload..span.payload_end],
                "{}: ciphertext {k} repeated across boots",
                owner.name
            );
        }
    }
    let runs = started.elapsed() - built;

    // A device linked for a too-small RAM region does not build, and says why.
    let small = build_firmware("thumbv7em-none-eabihf", &format!("{TEST_FEATURES},small-ram-check"));
    let err = small.expect_err("an image linked for 1 MiB of RAM must fail to link");
    assert!(
        err.contains("will not fit in region") && err.contains("RAM"),
        "the failed link must say which region overflowed:\n{err}"
    );
    let small_ram_error =
        err.lines().find(|l| l.contains("will not fit in region")).unwrap_or_default().trim().to_string();

    let report = json!({
        "instruction_counts": "emulated instructions executed under QEMU -icount shift=0 (exactly one virtual ns per instruction); \
            QEMU models no cycles, pipeline, caches, memory wait states or bus contention, so these are instruction counts, not cycles",
        "qemu": versions,
        "instruction_counters": MACHINES.iter().map(|m| (m.name, m.counter)).collect::<BTreeMap<_, _>>(),
        "ram_region_bytes": 2 << 20,
        "streams_identical_across_machines_and_host": true,
        "second_boot_ciphertexts_differ": true,
        "small_ram_link_error": small_ram_error,
        "seconds": { "build": built.as_secs(), "qemu_runs_and_checks": runs.as_secs(), "total": started.elapsed().as_secs() },
        "runs": results.iter().flatten().map(|b| &b.report).collect::<Vec<_>>(),
    });
    let _ = std::fs::write(repo_root().join("target").join("qemu-report.json"), format!("{report:#}\n"));
    println!("qemu-report: {report}");
}
