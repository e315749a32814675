//! The `hetune` command line: parameters, keys, encryption and decryption of `.npy` arrays, the
//! built-in demo, and encrypted training.

mod bench;
mod demo;
#[cfg(feature = "extract")]
mod extract;
mod keys;
pub(crate) mod params;
mod serve;
mod tensor;
mod train;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};

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
        /// A server's key request (JSON: relinearization, rotations, conjugation, encapsulation),
        /// added to the keys above.
        #[arg(long)]
        request: Option<PathBuf>,
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
        /// Packing: "chunks" (row-major values, N/2 per ciphertext) or "hetal" (HETAL's blocks
        /// for training: features untiled, one-hot labels tiled horizontally; secret key only).
        #[arg(long, default_value = "chunks")]
        packing: String,
        /// HETAL packing: number of classes.
        #[arg(long)]
        classes: Option<usize>,
        /// HETAL packing: batch rows (rounded up to a power of two: one block row per batch).
        #[arg(long)]
        batch: Option<usize>,
        /// HETAL packing: labels (.npy, int64) to encrypt one-hot into --labels-out.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// HETAL packing: output file of the encrypted one-hot labels.
        #[arg(long)]
        labels_out: Option<PathBuf>,
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
    /// The main job: the training daemon and the owner's client on a real SNIPS subset, ending
    /// with the encrypted model's test accuracy beside the plaintext twin's.
    Demo(demo::DemoArgs),
    /// The training daemon: owners' jobs over HTTP (create, chunked uploads, start, status, the
    /// per-epoch continue-or-stop round, the encrypted model, delete).
    Serve(serve::ServeArgs),
    /// The data owner's side of a daemon job: keys, encryption, upload, early-stopping answers,
    /// the decrypted model, its evaluation, model.npy, report.json and curves.png.
    Client(serve::ClientArgs),
    /// Train a softmax-regression head under encryption (owner and server in one process),
    /// with its plaintext twins: accuracy, seconds per step, bootstraps, memory.
    Train(train::TrainArgs),
    /// The owner's feature extraction from raw data: sentence embeddings of text, DINOv2-S
    /// features of images (.npy in the layout `hetune train` and `hetune client` read).
    #[cfg(feature = "extract")]
    Extract {
        #[command(subcommand)]
        what: extract::ExtractCommand,
    },
    /// Performance measurements (`bench ops`: the evaluator's basic operations).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

/// A fresh directory `{prefix}-{random}` under the system's temporary directory with an
/// unpredictable name, created exclusively (an existing path, link or not, makes it fail) and
/// private to the user (0700).
pub(crate) fn private_temp_dir(prefix: &str) -> Result<PathBuf> {
    use rand_core::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let name: String = (0..16).map(|_| format!("{:02x}", rng.next_u32() as u8)).collect();
    let dir = std::env::temp_dir().join(format!("{prefix}-{name}"));
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
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
        Command::Keygen { preset, out, rotations, bootstrap, request, insecure_testing_only } => {
            keys::run(keys::KeygenArgs {
                preset: &preset,
                out: &out,
                rotations: &rotations,
                bootstrap,
                request: request.as_deref(),
                insecure: insecure_testing_only,
            })
        }
        Command::Encrypt {
            keys,
            input,
            out,
            level,
            public,
            full,
            packing,
            classes,
            batch,
            labels,
            labels_out,
            insecure_testing_only,
        } => {
            let security = security(insecure_testing_only);
            match packing.as_str() {
                "chunks" => tensor::encrypt(&keys, &input, &out, level, public, full, security),
                "hetal" => tensor::encrypt_hetal(&tensor::HetalArgs {
                    keys: &keys,
                    features: &input,
                    out: &out,
                    classes,
                    batch,
                    labels: labels.as_deref(),
                    labels_out: labels_out.as_deref(),
                    level,
                    security,
                }),
                other => Err(Error::BadArgument {
                    name: "packing",
                    value: other.to_string(),
                    expected: "\"chunks\" or \"hetal\"".into(),
                }),
            }
        }
        Command::Decrypt { keys, input, out, reference, insecure_testing_only } => {
            tensor::decrypt(&keys, &input, &out, reference.as_deref(), security(insecure_testing_only))
        }
        Command::Demo(a) => demo::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Serve(a) => serve::run_serve(&a),
        Command::Client(a) => serve::run_client(&a),
        Command::Bench { what } => bench::run(what),
        #[cfg(feature = "extract")]
        Command::Extract { what } => extract::run(&what),
    }
}
