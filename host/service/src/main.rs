//! The `hetune` binary.

use std::process::ExitCode;

/// Keeps freed ciphertext buffers in the allocator for reuse. glibc serves every allocation
/// above its mmap threshold (128 KiB, raised on the fly only as far as the largest block freed)
/// with a fresh mapping and trims freed memory at the top of its heaps back to the kernel, so a
/// ciphertext's 0.5-14 MB polynomials were faulted in page by page (zeroed by the kernel) each
/// time one was made: with two threads faulting at once, an `add` at the top level took longer
/// than with one. Blocks up to 32 MiB (the largest threshold glibc accepts, above a top-level
/// polynomial of `n16-boot`) now come from the heaps, and up to 1 GiB of free memory at a heap's
/// top stays mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: `mallopt` only sets allocator parameters; it is called once, before this program
    // starts a thread or allocates from more than the main arena, and with parameters glibc
    // documents (it rejects a value out of range by returning 0, which leaves the default).
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    match hetune::cli::run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
