//! The QEMU cross-target test: builds `firmware-example` for a Cortex-M4F (thumbv7em-none-eabihf,
//! QEMU `mps2-an386`) and an RV32IMAC core (riscv32imac-unknown-none-elf, QEMU `virt`), runs each
//! under `-icount shift=0`, decodes its defmt log, decrypts the wire records it streamed with the
//! host's copy of the key, compares them with the embedded feature rows, checks that corrupted
//! streams are rejected with typed errors, and prints one `qemu-report: {json}` line (also written
//! to `target/qemu-report.json`).
//!
//! Needs `qemu-system-arm` and `qemu-system-riscv32` on the PATH and both rustup targets
//! (`bash .ci/qemu-deps.sh` installs them); without them the test fails and says so.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hetune_core::ckks::{decrypt, encrypt_pk, Complex, Encoder};
use hetune_core::rlwe::{Context, PublicKey, SecretKey};
use hetune_core::wire::{
    ciphertext_size, read_ciphertext, read_public_key, seeded_ciphertext_size, AnyCiphertext, Limits,
};
use hetune_core::{Error, Parameters, Security};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;

/// A machine the firmware runs on.
struct Machine {
    /// Rust target triple.
    target: &'static str,
    /// QEMU binary and the arguments before `-kernel <elf>`.
    qemu: &'static str,
    args: &'static [&'static str],
    /// Where the instruction counts come from.
    counter: &'static str,
}

const MACHINES: [Machine; 2] = [
    Machine {
        target: "thumbv7em-none-eabihf",
        qemu: "qemu-system-arm",
        args: &["-machine", "mps2-an386", "-cpu", "cortex-m4"],
        counter: "SysTick (25 MHz) on QEMU's -icount shift=0 virtual clock, 40 instructions per tick",
    },
    Machine {
        target: "riscv32imac-unknown-none-elf",
        qemu: "qemu-system-riscv32",
        args: &["-machine", "virt", "-cpu", "rv32", "-m", "64M", "-bios", "none"],
        counter: "minstret CSR, which QEMU derives from the -icount instruction count",
    },
];
/// Whole QEMU run; it takes a few seconds on an idle machine.
const QEMU_TIMEOUT: Duration = Duration::from_secs(300);
/// Rows, features and packing of the embedded data (firmware-example/src/{data,main}.rs).
const ROWS: usize = 8;
const FEATURES: usize = 384;
const ROW_STRIDE: usize = 512;
const ROWS_PER_CT: usize = 4;
/// Smallest accepted precision of a decrypted slot, in bits (-log2 of the largest absolute
/// error over all slots, padding included). Fresh encryptions at scale 2^40 and 2^42 give about
/// 30 bits; 24 leaves room for an unlucky error draw without hiding a broken encoder.
const MIN_PRECISION_BITS: f64 = 24.0;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

fn firmware_dir() -> PathBuf {
    repo_root().join("firmware-example")
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

/// Builds the firmware for `machine` (its own workspace, its own target directory) and returns
/// the ELF path. One cargo run per target: building both at once would unify the features of
/// their runtimes' shared dependencies (critical-section), which conflict.
fn build_firmware(machine: &Machine) -> PathBuf {
    let dir = firmware_dir();
    let target_dir = dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--target", machine.target])
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer `cargo test` must not leak host build settings into the cross build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .output()
        .expect("run cargo to build the firmware");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "building firmware-example for {} failed{}:\n{stderr}",
        machine.target,
        if stderr.contains("can't find crate for `core`") || stderr.contains("target may not be installed") {
            format!(" (the target is missing: `rustup target add {}`)", machine.target)
        } else {
            String::new()
        }
    );
    let elf = target_dir.join(machine.target).join("release").join("hetune-firmware-example");
    assert!(elf.is_file(), "no firmware ELF at {}", elf.display());
    elf
}

struct QemuRun {
    /// Raw defmt frames written to semihosting stdout.
    log: Vec<u8>,
    status: i32,
    wall: Duration,
}

/// Runs the firmware in `workdir` (where its semihosting files land) under a timeout.
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

struct PresetOutcome {
    report: serde_json::Value,
}

/// Checks the stream of one preset and returns its report entry.
fn check_preset(preset: &str, security: Security, stream: &[u8], lines: &[LogLine], rows: &[f32]) -> PresetOutcome {
    let params = Parameters::preset(preset, security).expect("preset");
    let info = find(lines, "preset", preset);
    let level = info.u64("level") as usize;
    let log_slots = info.u64("log_slots") as u32;
    assert_eq!(log_slots, (ROWS_PER_CT * ROW_STRIDE).trailing_zeros());
    assert_eq!(info.get("secure"), if security == Security::Require128Bits { "true" } else { "false" });
    let ctx = Context::new(params.clone()).expect("context");
    let key_seed: [u8; 32] = std::fs::read(firmware_dir().join("provision/key.seed"))
        .expect("read the provisioned key seed")
        .try_into()
        .expect("a 32-byte seed");
    let sk = SecretKey::from_seed(&params, &key_seed);
    let encoder = Encoder::new(&ctx);

    // Records in order: the public key, then one seeded ciphertext per 4 rows, then nothing.
    let cts = ROWS / ROWS_PER_CT;
    let ct_bytes = seeded_ciphertext_size(&params, level);
    let pk_log = find(lines, "public_key", preset);
    let pk_bytes = pk_log.u64("bytes");
    assert_eq!(stream.len() as u64, pk_bytes + cts as u64 * ct_bytes, "{preset}: stream length");
    assert_eq!(
        find(lines, "memory", preset).u64("file_bytes"),
        stream.len() as u64,
        "{preset}: bytes the device wrote"
    );
    let mut src: &[u8] = stream;
    let pk: PublicKey =
        read_public_key(&mut src, &ctx, &Limits::for_params(ctx.params())).expect("read the public key");
    let pk_end = stream.len() - src.len();
    assert_eq!(pk_end as u64, pk_bytes);

    let mut precision = f64::INFINITY;
    let mut ct_starts = Vec::new();
    let mut encode_instr = Vec::new();
    let mut encrypt_instr = Vec::new();
    let mut ct_heap_peak = 0;
    for index in 0..cts {
        ct_starts.push(stream.len() - src.len());
        let ct =
            read_ciphertext(&mut src, &ctx, &Limits::for_ciphertexts(ctx.params())).expect("read a device ciphertext");
        let AnyCiphertext::Seeded(ref seeded) = ct else { panic!("{preset}: the device sends seeded ciphertexts") };
        assert!(!seeded.c0_ntt, "the streaming encryptor writes c0 in coefficient form");
        assert_eq!((seeded.level, seeded.log_slots, seeded.scale), (level, log_slots, params.scale()));
        let full = ct.into_full(&ctx);
        let decoded = encoder.decode_complex(&decrypt(&ctx, &sk, &full).expect("decrypt")).expect("decode");
        assert_eq!(decoded.len(), 1 << log_slots);
        let first_row = index * ROWS_PER_CT;
        let bits = precision_bits(&decoded, |j| expected_slot(rows, first_row, j));
        assert!(
            bits >= MIN_PRECISION_BITS,
            "{preset} ciphertext {index}: precision {bits:.1} bits < {MIN_PRECISION_BITS}"
        );
        precision = precision.min(bits);
        let log = lines
            .iter()
            .find(|l| l.tag == "ciphertext" && l.get("preset") == preset && l.u64("index") == index as u64)
            .unwrap_or_else(|| panic!("no log line for {preset} ciphertext {index}"));
        assert_eq!(log.u64("bytes"), ct_bytes, "{preset}: bytes per ciphertext");
        assert_eq!(log.u64("first_row") as usize, first_row);
        encode_instr.push(log.u64("encode_instructions"));
        encrypt_instr.push(log.u64("encrypt_instructions"));
        ct_heap_peak = ct_heap_peak.max(log.u64("heap_peak"));
    }
    assert!(src.is_empty(), "{preset}: {} bytes after the last record", src.len());

    // The streamed public key encrypts on the host and decrypts under the device's key.
    let values: Vec<f64> = (0..1usize << log_slots).map(|j| expected_slot(rows, 0, j)).collect();
    let pt = encoder.encode_real(&values, log_slots, level, params.scale()).expect("encode");
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let ct = encrypt_pk(&ctx, &pk, &pt, &mut rng).expect("encrypt with the device's public key");
    let decoded = encoder.decode_complex(&decrypt(&ctx, &sk, &ct).expect("decrypt")).expect("decode");
    let pk_precision = precision_bits(&decoded, |j| values[j]);
    assert!(
        pk_precision >= MIN_PRECISION_BITS - 4.0,
        "{preset}: public-key encryption precision {pk_precision:.1} bits"
    );

    check_corruption(preset, stream, ct_starts[0], &ctx, ct_bytes);

    let mem = find(lines, "memory", preset);
    assert_eq!(mem.u64("heap_leaked"), 0, "{preset}: heap not returned");
    // Memory does not grow with the limbs: one NTT plan (32 N), one limb (8 N), the error (N)
    // and the secret (N), plus the message (8 N) while encrypting; the public key over every
    // prime of the set and the ciphertexts over 4 or 7 limbs stay under the same bound.
    let n = params.n() as u64;
    let pk_heap_peak = pk_log.u64("heap_peak");
    assert!(pk_heap_peak <= 42 * n + 4096, "{preset}: public-key heap peak {pk_heap_peak} > 42 N");
    assert!(ct_heap_peak <= 50 * n + 4096, "{preset}: encryption heap peak {ct_heap_peak} > 50 N");
    assert_eq!(mem.u64("heap_peak"), pk_heap_peak.max(ct_heap_peak), "{preset}: heap peak outside the steps");
    let stack_peak = mem.u64("stack_peak");
    assert!(stack_peak > 0 && stack_peak <= 32 * 1024, "{preset}: stack peak {stack_peak} bytes");
    let ntt: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.tag == "profile" && l.get("preset") == preset)
        .map(|l| {
            json!({
                "limb": l.u64("limb"),
                "bits": l.u64("bits"),
                "plan_instructions": l.u64("ntt_plan_instructions"),
                "forward_instructions": l.u64("ntt_forward_instructions"),
                "inverse_instructions": l.u64("ntt_inverse_instructions"),
            })
        })
        .collect();
    assert_eq!(ntt.len(), 2, "{preset}: NTT profile lines");
    let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len() as u64;
    let (enc, cry) = (mean(&encode_instr), mean(&encrypt_instr));
    let pk_instr = pk_log.u64("instructions");
    let limbs = level as u64 + 1;
    PresetOutcome {
        report: json!({
            "preset": preset,
            "n": params.n(),
            "secure_128": params.is_secure(),
            "level": level,
            "limbs": limbs,
            "slots": 1u64 << log_slots,
            "ciphertexts": cts,
            "instructions_per_ciphertext": enc + cry,
            "encode_instructions_per_ciphertext": enc,
            "encrypt_instructions_per_ciphertext": cry,
            "encrypt_instructions_per_limb": cry / limbs,
            "bytes_per_ciphertext": ct_bytes,
            "bytes_per_full_ciphertext": ciphertext_size(&params, level),
            "seeded_to_full_ratio": (ct_bytes as f64 / ciphertext_size(&params, level) as f64 * 1000.0).round() / 1000.0,
            "public_key_limbs": pk.b.limbs(),
            "public_key_bytes": pk_bytes,
            "public_key_instructions": pk_instr,
            "keygen_instructions": find(lines, "keygen", preset).u64("instructions"),
            "parameter_generation_instructions": info.u64("params_instructions"),
            "heap_peak_bytes": mem.u64("heap_peak"),
            "heap_peak_public_key_bytes": pk_heap_peak,
            "heap_peak_encryption_bytes": ct_heap_peak,
            "stack_peak_bytes": mem.u64("stack_peak"),
            "ntt_profile": ntt,
            "precision_bits_min": (precision * 10.0).round() / 10.0,
            "public_key_encryption_precision_bits": (pk_precision * 10.0).round() / 10.0,
        }),
    }
}

/// One corrupted byte in the first ciphertext record must be rejected with the wire format's
/// typed error: a header byte (header CRC), a payload bit (payload CRC), a residue pushed out of
/// range (range check), and a cut stream (truncation).
fn check_corruption(preset: &str, stream: &[u8], start: usize, ctx: &Context, ct_bytes: u64) {
    let limits = Limits::for_ciphertexts(ctx.params());
    assert!(ct_bytes <= limits.max_bytes);
    let span = record_span(stream, start);
    let record = &stream[span.start..span.payload_end + 4];
    let read = |bytes: &[u8]| {
        let mut src = bytes;
        read_ciphertext(&mut src, ctx, &limits).map(|_| ())
    };
    assert_eq!(read(record), Ok(()), "{preset}: the untouched record reads");

    // The level byte of the header extension.
    let mut bad = record.to_vec();
    bad[50] ^= 0x01;
    assert_eq!(read(&bad), Err(Error::ChecksumMismatch), "{preset}: corrupted header");

    // One bit in the middle of c0: still a valid residue, caught by the payload CRC.
    let mut bad = record.to_vec();
    let mid = (span.payload - span.start) + 32 + (span.payload_end - span.payload - 32) / 2;
    bad[mid] ^= 0x01;
    assert_eq!(read(&bad), Err(Error::ChecksumMismatch), "{preset}: corrupted payload bit");

    // A byte set to 0xff over the top bits of a residue that then reaches its modulus (found
    // from the decoded residues; a limb whose prime lies just above a power of two has many).
    let AnyCiphertext::Seeded(ct) = read_ciphertext(&mut &record[..], ctx, &limits).unwrap() else { unreachable!() };
    let params = ctx.params();
    let mut limb_start = 32; // the seed comes first
    let mut target = None;
    for i in 0..=ct.level {
        let (q, bits) = (params.q()[i], params.limb_bits(i) as usize);
        let limb = ct.c0.limb(i);
        target = (0..limb.len()).find_map(|k| {
            // The byte holding residue k's top bit, and residue k with that byte's bits all set.
            let byte = (k * bits + bits - 1) / 8;
            let lo = (byte * 8).max(k * bits) - k * bits;
            let mask = ((1u64 << (bits - lo)) - 1) << lo;
            (limb[k] | mask >= q).then_some((i, k, limb_start + byte))
        });
        if target.is_some() {
            break;
        }
        limb_start += (limb.len() * bits).div_ceil(8);
    }
    let (limb, k, at) = target.expect("some residue can be pushed out of range by one byte");
    let mut bad = record.to_vec();
    bad[(span.payload - span.start) + at] = 0xff;
    assert_eq!(
        read(&bad),
        Err(Error::ResidueOutOfRange { limb: limb as u32 }),
        "{preset}: residue {k} of limb {limb} out of range"
    );

    // The stream cut inside the payload.
    assert_eq!(read(&record[..record.len() - 100]), Err(Error::Truncated), "{preset}: truncated record");
}

/// Where QEMU runs for `machine`, and so where the firmware's files land.
fn workdir(machine: &Machine) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-firmware").join(machine.target)
}

/// Runs the firmware on one machine and checks everything it sent; returns its report entry.
fn check_machine(machine: &Machine, elf_path: &Path, rows: &[f32]) -> serde_json::Value {
    let qemu = qemu_version(machine.qemu);
    let elf = std::fs::read(elf_path).expect("read the firmware ELF");
    let workdir = workdir(machine);
    let _ = std::fs::remove_dir_all(&workdir);
    std::fs::create_dir_all(&workdir).expect("create the QEMU working directory");

    let run = run_qemu(machine, elf_path, &workdir);
    let lines = decode_log(&elf, &run.log);
    for l in &lines {
        eprintln!(
            "[{} {} @{}] {}",
            machine.target,
            l.level,
            l.instructions.map(|i| i.to_string()).unwrap_or_default(),
            l.text
        );
    }
    assert_eq!(run.status, 0, "{}: firmware exit status (log above)", machine.target);
    assert!(lines.iter().any(|l| l.tag == "done"), "{}: the firmware did not log `done`", machine.target);
    assert!(lines.iter().all(|l| l.level != "Error"), "{}: the firmware logged an error", machine.target);
    let start = lines.iter().find(|l| l.tag == "start").expect("start line");
    assert_eq!(start.get("target"), machine.target);

    // The instruction counter against a loop of known length.
    let cal = lines.iter().find(|l| l.tag == "calibration").expect("calibration line");
    let (want, got) = (cal.u64("loop_instructions"), cal.u64("measured"));
    assert!(
        got.abs_diff(want) <= want / 200 + 100,
        "{}: instruction counter off: loop of {want} measured as {got}",
        machine.target
    );

    let mut presets = Vec::new();
    for (preset, security) in [("test-n12", Security::InsecureForTestingOnly), ("n16-boot", Security::Require128Bits)] {
        let stream = std::fs::read(workdir.join(format!("hetune-{preset}.hetn"))).expect("read the streamed records");
        presets.push(check_preset(preset, security, &stream, &lines, rows).report);
    }
    json!({
        "target": machine.target,
        "board": start.get("board"),
        "qemu": qemu,
        "instruction_counter": machine.counter,
        "calibration": { "loop_instructions": want, "measured": got },
        "heap_capacity_bytes": start.u64("heap_capacity"),
        "stack_capacity_bytes": start.u64("stack_capacity"),
        "total_instructions": lines.iter().find(|l| l.tag == "done").unwrap().u64("instructions"),
        "qemu_wall_seconds": (run.wall.as_secs_f64() * 100.0).round() / 100.0,
        "presets": presets,
    })
}

#[test]
fn firmware_on_qemu_streams_ciphertexts_the_host_decrypts() {
    for m in &MACHINES {
        qemu_version(m.qemu);
    }
    let elfs: Vec<PathBuf> = MACHINES.iter().map(build_firmware).collect();
    let rows = feature_rows();
    let targets: Vec<serde_json::Value> =
        MACHINES.iter().zip(&elfs).map(|(machine, elf)| check_machine(machine, elf, &rows)).collect();
    // Same seeds, same integer arithmetic: both machines must have sent the same bytes (a
    // target-dependent NTT, sampler or encoder would show here).
    for preset in ["test-n12", "n16-boot"] {
        let streams: Vec<Vec<u8>> =
            MACHINES.iter().map(|m| std::fs::read(workdir(m).join(format!("hetune-{preset}.hetn"))).unwrap()).collect();
        assert!(streams.windows(2).all(|w| w[0] == w[1]), "{preset}: the machines streamed different bytes");
    }
    let report = json!({
        "instruction_counts": "emulated instructions executed under QEMU -icount shift=0 (exactly one virtual ns per instruction); \
            QEMU models no cycles, pipeline, caches, memory wait states or bus contention, so these are instruction counts, not cycles",
        "streams_identical_across_targets": true,
        "targets": targets,
    });
    let _ = std::fs::write(repo_root().join("target").join("qemu-report.json"), format!("{report:#}\n"));
    println!("qemu-report: {report}");
}
