//! A wire-format sink that writes to a file on the host through semihosting (`SYS_OPEN`,
//! `SYS_WRITE`), in fixed-size chunks from a buffer on the stack: the channel is separate from
//! the defmt log on stdout, so neither can corrupt the other.

use core::ffi::CStr;

use hetune_core::wire::Sink;
use hetune_core::Error;
use semihosting::fs::File;
use semihosting::io::Write;

/// Bytes buffered before each semihosting write.
const CHUNK: usize = 4096;

/// A host file opened for writing (created or truncated), with a byte count.
pub struct HostFile {
    file: File,
    buf: [u8; CHUNK],
    len: usize,
    written: u64,
}

impl HostFile {
    /// Creates (or truncates) `path`, relative to QEMU's working directory.
    pub fn create(path: &CStr) -> Result<Self, Error> {
        let file = File::create(path).map_err(|_| Error::Io)?;
        Ok(HostFile { file, buf: [0; CHUNK], len: 0, written: 0 })
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
