//! The `hetune` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    match hetune::cli::run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
