//! `std::io` adapters for the core's wire sinks and sources.

use std::io::{BufRead, Write};

use hetune_core::wire::{Sink, Source};
use hetune_core::Error as CoreError;

/// A [`Sink`] over any writer.
pub struct IoSink<W: Write>(pub W);

impl<W: Write> Sink for IoSink<W> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        self.0.write_all(bytes).map_err(|_| CoreError::Io)
    }
}

/// A [`Source`] over any buffered reader; end of stream inside a record is
/// [`CoreError::Truncated`].
pub struct IoSource<R: BufRead>(pub R);

impl<R: BufRead> IoSource<R> {
    /// Whether the stream is at its end (between records).
    pub fn at_end(&mut self) -> Result<bool, CoreError> {
        Ok(self.0.fill_buf().map_err(|_| CoreError::Io)?.is_empty())
    }
}

impl<R: BufRead> Source for IoSource<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), CoreError> {
        self.0.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                CoreError::Truncated
            } else {
                CoreError::Io
            }
        })
    }
}
