//! The owner's HTTP client of the daemon (blocking; plain HTTP, meant for loopback or a tunnel):
//! JSON calls, byte downloads with a size limit, chunked uploads with a SHA-256 per chunk that
//! resume at the daemon's acknowledged length and are retried on a refused checksum.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::serve::protocol::{BlobStatus, CompleteBlob, ErrorBody, CHUNK_SHA256, PREFIX};

/// Largest download (an encrypted model or loss) the client reads.
const MAX_DOWNLOAD: u64 = 1 << 30;

/// A client of one daemon, with a job's token once it has one.
pub struct Http {
    agent: ureq::Agent,
    base: String,
    /// The job's bearer token.
    pub token: Option<String>,
    /// How long a request is retried while the daemon cannot be reached (a restart).
    pub retry_for: Duration,
}

fn transport(e: ureq::Error) -> Error {
    Error::Http(e.to_string())
}

impl Http {
    /// A client of the daemon at `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
            base: base.trim_end_matches('/').to_string(),
            token: None,
            retry_for: Duration::from_secs(120),
        }
    }

    /// Sends a request again while the daemon is unreachable (refused connections during a
    /// restart), for up to `retry_for`; an answer, even an error status, ends it.
    fn retry(
        &self,
        send: impl Fn() -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>> {
        let start = std::time::Instant::now();
        loop {
            match send() {
                Ok(r) => return Self::finish(r),
                Err(e) if start.elapsed() < self.retry_for => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(transport(e)),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        if path.is_empty() {
            format!("{}{PREFIX}", self.base)
        } else {
            format!("{}{PREFIX}/{path}", self.base)
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token.as_deref().unwrap_or(""))
    }

    fn finish(mut r: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>> {
        let status = r.status().as_u16();
        let body = r.body_mut().with_config().limit(MAX_DOWNLOAD).read_to_vec().map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let e: ErrorBody = serde_json::from_slice(&body)
            .unwrap_or(ErrorBody { error: "unknown".into(), message: String::from_utf8_lossy(&body).into_owned() });
        Err(Error::Daemon { status, code: e.error, message: e.message })
    }

    /// `POST` of JSON, answer parsed.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let body = serde_json::to_vec(body)?;
        let b = self.retry(|| {
            self.agent
                .post(self.url(path))
                .header("authorization", self.auth())
                .header("content-type", "application/json")
                .send(&body[..])
        })?;
        Ok(serde_json::from_slice(&b)?)
    }

    /// `GET`, answer parsed as JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(serde_json::from_slice(&self.get_bytes(path)?)?)
    }

    /// `GET`, answer as bytes.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        self.retry(|| self.agent.get(self.url(path)).header("authorization", self.auth()).call())
    }

    /// `DELETE`.
    pub fn delete(&self, path: &str) -> Result<Vec<u8>> {
        self.retry(|| self.agent.delete(self.url(path)).header("authorization", self.auth()).call())
    }

    /// `PUT` of one chunk of blob `name` of job `job` at `offset`, with its checksum.
    pub fn put_chunk(&self, job: &str, name: &str, offset: u64, chunk: &[u8]) -> Result<BlobStatus> {
        let sum = hex::encode(Sha256::digest(chunk));
        self.put_raw(job, name, offset, chunk, &sum)
    }

    /// `PUT` of a chunk with the checksum given (tests send wrong ones).
    pub fn put_raw(&self, job: &str, name: &str, offset: u64, chunk: &[u8], sum: &str) -> Result<BlobStatus> {
        let url = self.url(&format!("{job}/blobs/{name}?offset={offset}"));
        let b = self.retry(|| {
            self.agent.put(&url).header("authorization", self.auth()).header(CHUNK_SHA256, sum).send(chunk)
        })?;
        Ok(serde_json::from_slice(&b)?)
    }

    /// Uploads `file` as blob `name` of job `job` in chunks of `chunk` bytes, from the daemon's
    /// acknowledged length on; `progress(bytes)` after each acknowledged chunk (and once for what
    /// was there before). Completes the blob with its whole SHA-256.
    pub fn upload(&self, job: &str, name: &str, file: &Path, chunk: u64, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let st: BlobStatus = self.get_json(&format!("{job}/blobs/{name}"))?;
        let size = std::fs::metadata(file).map_err(|e| Error::io(file, e))?.len();
        if st.complete {
            progress(size);
            return Ok(());
        }
        let mut f = File::open(file).map_err(|e| Error::io(file, e))?;
        // The whole file's checksum, and the part the daemon already has.
        let mut whole = Sha256::new();
        let mut buf = vec![0u8; chunk.clamp(1, 64 << 20) as usize];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(file, e))?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
        }
        let mut offset = st.received.min(size);
        progress(offset);
        f.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(file, e))?;
        while offset < size {
            let want = ((size - offset) as usize).min(buf.len());
            f.read_exact(&mut buf[..want]).map_err(|e| Error::io(file, e))?;
            let mut tries = 0;
            let ack = loop {
                match self.put_chunk(job, name, offset, &buf[..want]) {
                    Ok(a) => break a,
                    Err(Error::Daemon { code, .. }) if code == "checksum_mismatch" && tries < 3 => tries += 1,
                    // The daemon acknowledged more or less than this side knows (an answer lost
                    // in a restart, or bytes it had not fsynced): continue at its length.
                    Err(Error::Daemon { code, .. }) if code == "wrong_offset" => {
                        let st: BlobStatus = self.get_json(&format!("{job}/blobs/{name}"))?;
                        break st;
                    }
                    Err(e) => return Err(e),
                }
            };
            if ack.received != offset + want as u64 {
                progress(ack.received.saturating_sub(offset));
                offset = ack.received.min(size);
                f.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(file, e))?;
                continue;
            }
            progress(ack.received - offset);
            offset = ack.received;
        }
        let c = CompleteBlob { size, sha256: hex::encode(whole.finalize()) };
        let _: BlobStatus = self.post_json(&format!("{job}/blobs/{name}/complete"), &c)?;
        Ok(())
    }
}
