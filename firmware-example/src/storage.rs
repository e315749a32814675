//! The device's non-volatile storage and its output channel. Under QEMU both are files on the
//! host, in QEMU's working directory, through semihosting (`SYS_OPEN`, `SYS_READ`, `SYS_WRITE`,
//! `SYS_SEEK`); on a real board the storage is flash and the output a UART or a socket. The
//! channels are separate from the defmt log on stdout, so none can corrupt another.
//!
//! What a device is provisioned with (see README.md):
//! - `boot.counter`: 8 bytes, little-endian, the number of boots so far (0 when provisioned);
//! - `rng.seed`: 32 secret bytes that key its randomness ([`hetune_core::entropy`]);
//! - the owner's own device: `key.seed`, the 32-byte seed of the secret key;
//! - a sensor: `public-<preset>.hetn`, the owner's public-key record for each parameter set.

use alloc::vec;
use alloc::vec::Vec;
use core::ffi::CStr;

use hetune_core::wire::{ReadAt, Sink};
use hetune_core::Error;
use semihosting::fs::File;
use semihosting::io::{Read, Seek, SeekFrom, Write};
use zeroize::Zeroizing;

/// Bytes buffered per semihosting call (on the heap: the firmware's stack stays small).
pub const CHUNK: usize = 4096;

/// The boot counter's file.
const BOOT_COUNTER: &CStr = c"boot.counter";

/// Whether the storage holds `path`.
pub fn exists(path: &CStr) -> bool {
    File::open(path).is_ok()
}

/// Reads a 32-byte secret (a seed) from the storage, into memory wiped on drop.
pub fn read_seed(path: &CStr) -> Result<Zeroizing<[u8; 32]>, Error> {
    let mut seed = Zeroizing::new([0u8; 32]);
    let mut file = File::open(path).map_err(|_| missing(path))?;
    file.read_exact(&mut seed[..]).map_err(|_| missing(path))?;
    Ok(seed)
}

fn missing(path: &CStr) -> Error {
    defmt::error!("storage: cannot read {=str} (is the device provisioned?)", path.to_str().unwrap_or("?"));
    Error::Io
}

fn read_counter() -> Result<u64, Error> {
    let mut bytes = [0u8; 8];
    let mut file = File::open(BOOT_COUNTER).map_err(|_| missing(BOOT_COUNTER))?;
    file.read_exact(&mut bytes).map_err(|_| missing(BOOT_COUNTER))?;
    Ok(u64::from_le_bytes(bytes))
}

/// This boot's number: the stored count plus one, written back and read again before it is
/// returned, so that no boot can use a number an earlier boot used (a boot that fails after this
/// point skips a number, which is harmless). Fails if the counter cannot be advanced.
pub fn next_boot() -> Result<u64, Error> {
    let boot = read_counter()?.checked_add(1).ok_or(Error::InvalidArgument("boot counter exhausted"))?;
    let mut file = File::create(BOOT_COUNTER).map_err(|_| Error::Io)?;
    file.write_all(&boot.to_le_bytes()).map_err(|_| Error::Io)?;
    drop(file);
    if read_counter()? != boot {
        defmt::error!("storage: the boot counter did not persist");
        return Err(Error::Io);
    }
    Ok(boot)
}

/// A stored record read at any offset, through a 4 KiB window (one semihosting read per window).
pub struct StorageReader {
    file: File,
    window: Vec<u8>,
    /// Offset of `window[0]` in the file, and the bytes it holds.
    start: u64,
    len: usize,
}

impl StorageReader {
    /// Opens `path` for reading.
    pub fn open(path: &CStr) -> Result<Self, Error> {
        let file = File::open(path).map_err(|_| missing(path))?;
        Ok(StorageReader { file, window: vec![0; CHUNK], start: 0, len: 0 })
    }

    /// Loads the window that starts at `offset`.
    fn fill(&mut self, offset: u64) -> Result<(), Error> {
        self.file.seek(SeekFrom::Start(offset)).map_err(|_| Error::Io)?;
        let mut len = 0;
        while len < CHUNK {
            match self.file.read(&mut self.window[len..]) {
                Ok(0) => break,
                Ok(k) => len += k,
                Err(_) => return Err(Error::Io),
            }
        }
        self.start = offset;
        self.len = len;
        Ok(())
    }
}

impl ReadAt for StorageReader {
    fn read_at(&mut self, mut offset: u64, mut buf: &mut [u8]) -> Result<(), Error> {
        while !buf.is_empty() {
            if offset < self.start || offset >= self.start + self.len as u64 {
                self.fill(offset)?;
                if self.len == 0 {
                    return Err(Error::Truncated);
                }
            }
            let at = (offset - self.start) as usize;
            let take = (self.len - at).min(buf.len());
            buf[..take].copy_from_slice(&self.window[at..at + take]);
            offset += take as u64;
            buf = &mut buf[take..];
        }
        Ok(())
    }
}

/// A file on the host opened for writing (created or truncated), with a byte count.
pub struct HostFile {
    file: File,
    buf: Vec<u8>,
    len: usize,
    written: u64,
}

impl HostFile {
    /// Creates (or truncates) `path`, relative to QEMU's working directory.
    pub fn create(path: &CStr) -> Result<Self, Error> {
        let file = File::create(path).map_err(|_| Error::Io)?;
        Ok(HostFile { file, buf: vec![0; CHUNK], len: 0, written: 0 })
    }

    /// Bytes accepted so far (buffered or written).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes out the buffered bytes.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.len > 0 {
            self.file.write_all(&self.buf[..self.len]).map_err(|_| Error::Io)?;
            self.len = 0;
        }
        Ok(())
    }
}

impl Sink for HostFile {
    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let take = (CHUNK - self.len).min(bytes.len());
            self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
            if self.len == CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }
}
