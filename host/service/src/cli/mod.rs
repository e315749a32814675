//! The `hetune` command line: parameters, keys, encryption and decryption of `.npy` arrays, and
//! the built-in demo.

mod bench;
mod demo;
mod keys;
mod params;
mod tensor;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Result;

/// hetune: privacy-preserving transfer learning on CKKS-encrypted features.
#[derive(Debug, Parser)]
#[command(name = "hetune", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a parameter preset: N, log2(QP), levels, scale, dnum, security.
    Params {
        /// Preset name (see `hetune params --list`).
        #[arg(long, default_value = "n16-boot")]
        preset: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// List every preset.
        #[arg(long)]
        list: bool,
    },
    /// Generate the owner's secret key and the public bundle for the server.
    Keygen {
        /// Preset name.
        #[arg(long, default_value = "n16-boot")]
        preset: String,
        /// Output directory (gets secret.key and public.bundle).
        #[arg(long)]
        out: PathBuf,
        /// Rotation keys: "none", "pow2" (powers of two and conjugation) or a comma list of steps.
        #[arg(long, default_value = "none")]
        rotations: String,
        /// Also every key bootstrapping needs (DFT rotations, conjugation, encapsulation keys;
        /// about 2.6 GB at n16-boot).
        #[arg(long)]
        bootstrap: bool,
        /// Accept a preset below 128-bit security. For tests only, never for real data.
        #[arg(long)]
        insecure_testing_only: bool,
    },
    /// Encrypt an f32/f64 .npy vector or matrix.
    Encrypt {
        /// Key directory.
        #[arg(long)]
        keys: PathBuf,
        /// Input .npy.
        #[arg(long)]
        input: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Level of the ciphertexts (default: the preset's computation level).
        #[arg(long)]
        level: Option<usize>,
        /// Encrypt with the public key even when the secret key is present.
        #[arg(long)]
        public: bool,
        /// Write full ciphertexts instead of seeded ones (secret-key encryption only).
        #[arg(long)]
        full: bool,
        /// Accept keys of a set below 128-bit security. For tests only, never for real data.
        #[arg(long)]
        insecure_testing_only: bool,
    },
    /// Decrypt an encrypted tensor back to .npy.
    Decrypt {
        /// Key directory (needs secret.key).
        #[arg(long)]
        keys: PathBuf,
        /// Input file.
        #[arg(long)]
        input: PathBuf,
        /// Output .npy.
        #[arg(long)]
        out: PathBuf,
        /// Plaintext reference: print the measured precision against it.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Accept keys of a set below 128-bit security. For tests only, never for real data.
        #[arg(long)]
        insecure_testing_only: bool,
    },
    /// The main job on a built-in real sample: keygen, encrypt, decrypt, precision and sizes.
    Demo {
        /// Preset name.
        #[arg(long, default_value = "n16-boot")]
        preset: String,
        /// Working directory (default: a fresh temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Accept a preset below 128-bit security. For tests only.
        #[arg(long)]
        insecure_testing_only: bool,
    },
    /// Performance measurements (`bench ops`: the evaluator's basic operations).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

/// The security requirement a command runs under: 128 bits unless the user named the opt-in.
fn security(insecure_testing_only: bool) -> hetune_core::Security {
    if insecure_testing_only {
        hetune_core::Security::InsecureForTestingOnly
    } else {
        hetune_core::Security::Require128Bits
    }
}

/// Parses the arguments and runs the command.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with success; usage errors exit 2 through clap.
            e.exit();
        }
    };
    match cli.command {
        Command::Params { preset, json, list } => params::run(&preset, json, list),
        Command::Keygen { preset, out, rotations, bootstrap, insecure_testing_only } => {
            keys::run(&preset, &out, &rotations, bootstrap, insecure_testing_only)
        }
        Command::Encrypt { keys, input, out, level, public, full, insecure_testing_only } => {
            tensor::encrypt(&keys, &input, &out, level, public, full, security(insecure_testing_only))
        }
        Command::Decrypt { keys, input, out, reference, insecure_testing_only } => {
            tensor::decrypt(&keys, &input, &out, reference.as_deref(), security(insecure_testing_only))
        }
        Command::Demo { preset, dir, insecure_testing_only } => demo::run(&preset, dir, insecure_testing_only),
        Command::Bench { what } => bench::run(what),
    }
}
