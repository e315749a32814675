//! The daemon's storage: jobs, their uploads, answers and progress in SQLite (`jobs.sqlite`), blobs
//! as files under `jobs/{id}/`, each written atomically (a temporary file, fsync, rename, fsync of
//! the directory), so that whatever the daemon acknowledged survives `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path)
}

/// Fsyncs the directory holding `path` (a rename is durable only then).
pub fn sync_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Created; uploads under way.
    Uploading,
    /// Started, waiting for a training slot (FIFO).
    Queued,
    /// Training.
    Running,
    /// Waiting for the owner's answer on an epoch.
    Awaiting,
    /// Finished: the model can be downloaded.
    Done,
    /// Failed (see the job's error).
    Failed,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Uploading => "uploading",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Awaiting => "awaiting",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "awaiting" => JobState::Awaiting,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => JobState::Uploading,
        }
    }
}

/// A job's row.
#[derive(Clone, Debug, Serialize)]
pub struct JobRow {
    /// Job id.
    pub id: String,
    /// SHA-256 of the bearer token (the token itself is never stored).
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    /// Parameter-set fingerprint (hex).
    pub fingerprint: String,
    /// The job's options (JSON).
    pub options: serde_json::Value,
    /// State.
    pub state: JobState,
    /// Place in the start order (FIFO).
    pub queue_seq: Option<i64>,
    /// Steps done.
    pub step: i64,
    /// Epoch of the last step.
    pub epoch: i64,
    /// Bootstraps so far.
    pub bootstraps: i64,
    /// Seconds per step (mean of this daemon run's steps).
    pub seconds_per_step: f64,
    /// The epoch whose answer the server waits for.
    pub awaiting_epoch: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The last step's times (JSON of [`crate::train::server::StepTimes`]).
    pub last_times: Option<String>,
    /// Bootstraps the plan places per step.
    pub planned: i64,
}

/// An upload's row.
#[derive(Clone, Debug, Serialize)]
pub struct BlobRow {
    /// Blob name.
    pub name: String,
    /// Bytes acknowledged (on disk and fsynced).
    pub received: u64,
    /// Checked and in place.
    pub complete: bool,
}

/// The store: a SQLite database and a folder of job directories.
pub struct Store {
    root: PathBuf,
    db: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::Store(e.to_string())
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Store {
    /// Opens (or creates) the store in `root`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("jobs")).map_err(|e| Error::io(root, e))?;
        let path = root.join("jobs.sqlite");
        let db = Connection::open(&path).map_err(db_err)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY, token_hash BLOB NOT NULL, fingerprint TEXT NOT NULL,
                options TEXT NOT NULL, state TEXT NOT NULL, queue_seq INTEGER,
                step INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0,
                bootstraps INTEGER NOT NULL DEFAULT 0, seconds_per_step REAL NOT NULL DEFAULT 0,
                awaiting_epoch INTEGER, error TEXT, last_times TEXT,
                planned INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS blobs (
                job TEXT NOT NULL, name TEXT NOT NULL, received INTEGER NOT NULL DEFAULT 0,
                complete INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (job, name));
             CREATE TABLE IF NOT EXISTS answers (
                job TEXT NOT NULL, epoch INTEGER NOT NULL, stop INTEGER NOT NULL,
                PRIMARY KEY (job, epoch));
             CREATE TABLE IF NOT EXISTS seq (k INTEGER PRIMARY KEY, v INTEGER NOT NULL);",
        )
        .map_err(db_err)?;
        Ok(Store { root: root.to_path_buf(), db: Mutex::new(db) })
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory of job `id`.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }

    /// Records a new job with its blobs to upload.
    pub fn create(
        &self,
        id: &str,
        token_hash: &[u8],
        fingerprint: &str,
        options: &str,
        blobs: &[String],
    ) -> Result<()> {
        let dir = self.job_dir(id);
        for sub in ["uploads", "server", "data", "epochs"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| Error::io(&dir, e))?;
        }
        let mut db = self.db();
        let tx = db.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT INTO jobs (id, token_hash, fingerprint, options, state) VALUES (?1, ?2, ?3, ?4, 'uploading')",
            params![id, token_hash, fingerprint, options],
        )
        .map_err(db_err)?;
        for b in blobs {
            tx.execute("INSERT INTO blobs (job, name) VALUES (?1, ?2)", params![id, b]).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
        let options: String = r.get(3)?;
        let state: String = r.get(4)?;
        Ok(JobRow {
            id: r.get(0)?,
            token_hash: r.get(1)?,
            fingerprint: r.get(2)?,
            options: serde_json::from_str(&options).unwrap_or(serde_json::Value::Null),
            state: JobState::parse(&state),
            queue_seq: r.get(5)?,
            step: r.get(6)?,
            epoch: r.get(7)?,
            bootstraps: r.get(8)?,
            seconds_per_step: r.get(9)?,
            awaiting_epoch: r.get(10)?,
            error: r.get(11)?,
            last_times: r.get(12)?,
            planned: r.get(13)?,
        })
    }

    const COLS: &'static str = "id, token_hash, fingerprint, options, state, queue_seq, step, epoch, bootstraps, seconds_per_step, awaiting_epoch, error, last_times, planned";

    /// Job `id`, if it exists.
    pub fn job(&self, id: &str) -> Result<Option<JobRow>> {
        let db = self.db();
        db.query_row(&format!("SELECT {} FROM jobs WHERE id = ?1", Self::COLS), [id], Self::row)
            .optional()
            .map_err(db_err)
    }

    /// Jobs in `states`, in start order.
    pub fn jobs_in(&self, states: &[JobState]) -> Result<Vec<JobRow>> {
        let db = self.db();
        let mut st = db.prepare(&format!("SELECT {} FROM jobs ORDER BY queue_seq, id", Self::COLS)).map_err(db_err)?;
        let rows = st.query_map([], Self::row).map_err(db_err)?;
        let mut out = Vec::new();
        for r in rows {
            let r = r.map_err(db_err)?;
            if states.contains(&r.state) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Sets a job's state.
    pub fn set_state(&self, id: &str, state: JobState, error: Option<&str>) -> Result<()> {
        self.db()
            .execute("UPDATE jobs SET state = ?2, error = ?3 WHERE id = ?1", params![id, state.as_str(), error])
            .map_err(db_err)?;
        Ok(())
    }

    /// Moves an `uploading` job to `queued` with the next place in the queue; false when the job
    /// was not `uploading` (a second start).
    pub fn enqueue(&self, id: &str) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction().map_err(db_err)?;
        let seq: i64 =
            tx.query_row("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM jobs", [], |r| r.get(0)).map_err(db_err)?;
        let n = tx
            .execute(
                "UPDATE jobs SET state = 'queued', queue_seq = ?2 WHERE id = ?1 AND state = 'uploading'",
                params![id, seq],
            )
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(n == 1)
    }

    /// Records progress after a step: its bootstraps, the step's times (JSON), the mean seconds.
    pub fn progress(
        &self,
        id: &str,
        (step, epoch): (usize, usize),
        bootstraps: usize,
        times: &str,
        seconds_per_step: f64,
    ) -> Result<()> {
        self.db()
            .execute(
                // A step redone after a restart (its checkpoint was not written) is not counted twice.
                "UPDATE jobs SET bootstraps = bootstraps + CASE WHEN ?2 > step THEN ?4 ELSE 0 END,
                    step = ?2, epoch = ?3, last_times = ?5, seconds_per_step = ?6 WHERE id = ?1",
                params![id, step as i64, epoch as i64, bootstraps as i64, times, seconds_per_step],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Records the bootstraps the plan places per step.
    pub fn set_planned(&self, id: &str, planned: usize) -> Result<()> {
        self.db().execute("UPDATE jobs SET planned = ?2 WHERE id = ?1", params![id, planned as i64]).map_err(db_err)?;
        Ok(())
    }

    /// Sets (or clears) the epoch awaiting the owner's answer, with the state that goes with it.
    pub fn set_awaiting(&self, id: &str, epoch: Option<usize>) -> Result<()> {
        let state = if epoch.is_some() { "awaiting" } else { "running" };
        self.db()
            .execute(
                "UPDATE jobs SET awaiting_epoch = ?2, state = ?3 WHERE id = ?1",
                params![id, epoch.map(|e| e as i64), state],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Records the owner's answer on `epoch` (true: stop); false when one was recorded already.
    pub fn answer(&self, id: &str, epoch: usize, stop: bool) -> Result<bool> {
        let n = self
            .db()
            .execute(
                "INSERT OR IGNORE INTO answers (job, epoch, stop) VALUES (?1, ?2, ?3)",
                params![id, epoch as i64, stop],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    /// The answers recorded, by epoch (true: stop).
    pub fn answers(&self, id: &str) -> Result<Vec<(usize, bool)>> {
        let db = self.db();
        let mut st = db.prepare("SELECT epoch, stop FROM answers WHERE job = ?1 ORDER BY epoch").map_err(db_err)?;
        let rows = st.query_map([id], |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, bool>(1)?))).map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    /// The blobs of job `id`.
    pub fn blobs(&self, id: &str) -> Result<Vec<BlobRow>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT name, received, complete FROM blobs WHERE job = ?1 ORDER BY rowid").map_err(db_err)?;
        let rows = st
            .query_map([id], |r| {
                Ok(BlobRow { name: r.get(0)?, received: r.get::<_, i64>(1)? as u64, complete: r.get(2)? })
            })
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    /// Blob `name` of job `id`.
    pub fn blob(&self, id: &str, name: &str) -> Result<Option<BlobRow>> {
        self.db()
            .query_row(
                "SELECT name, received, complete FROM blobs WHERE job = ?1 AND name = ?2",
                params![id, name],
                |r| Ok(BlobRow { name: r.get(0)?, received: r.get::<_, i64>(1)? as u64, complete: r.get(2)? }),
            )
            .optional()
            .map_err(db_err)
    }

    /// Bytes of every upload acknowledged, all jobs.
    pub fn used_bytes(&self) -> Result<u64> {
        let n: i64 =
            self.db().query_row("SELECT COALESCE(SUM(received), 0) FROM blobs", [], |r| r.get(0)).map_err(db_err)?;
        Ok(n as u64)
    }

    /// Where upload `name` of job `id` accumulates.
    pub fn part_path(&self, id: &str, name: &str) -> PathBuf {
        self.job_dir(id).join("uploads").join(format!("{name}.part"))
    }

    /// Appends a chunk at `offset` (which must be the bytes acknowledged so far) to upload `name`,
    /// fsyncs it, then records it. Bytes past the acknowledged length (a chunk cut by a crash)
    /// are dropped first.
    pub fn append(&self, id: &str, name: &str, offset: u64, chunk: &[u8]) -> Result<u64> {
        let path = self.part_path(id, name);
        let mut f =
            OpenOptions::new().create(true).write(true).truncate(false).open(&path).map_err(|e| Error::io(&path, e))?;
        f.set_len(offset).map_err(|e| Error::io(&path, e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(&path, e))?;
        f.write_all(chunk).map_err(|e| Error::io(&path, e))?;
        f.sync_data().map_err(|e| Error::io(&path, e))?;
        let received = offset + chunk.len() as u64;
        self.db()
            .execute("UPDATE blobs SET received = ?3 WHERE job = ?1 AND name = ?2", params![id, name, received as i64])
            .map_err(db_err)?;
        Ok(received)
    }

    /// SHA-256 of the acknowledged bytes of upload `name`, read in pieces.
    pub fn part_digest(&self, id: &str, name: &str, len: u64) -> Result<[u8; 32]> {
        let path = self.part_path(id, name);
        let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f).take(len);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).map_err(|e| Error::io(&path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().into())
    }

    /// Moves a finished upload to `dest` (truncated to its acknowledged length, fsynced, renamed).
    pub fn place(&self, id: &str, name: &str, len: u64, dest: &Path) -> Result<()> {
        let path = self.part_path(id, name);
        let f = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        f.set_len(len).map_err(|e| Error::io(&path, e))?;
        f.sync_all().map_err(|e| Error::io(&path, e))?;
        std::fs::rename(&path, dest).map_err(|e| Error::io(dest, e))?;
        sync_dir(dest)
    }

    /// Marks upload `name` complete (true) or discards it (false: back to nothing received).
    pub fn finish_blob(&self, id: &str, name: &str, ok: bool) -> Result<()> {
        let sql = if ok {
            "UPDATE blobs SET complete = 1 WHERE job = ?1 AND name = ?2"
        } else {
            "UPDATE blobs SET complete = 0, received = 0 WHERE job = ?1 AND name = ?2"
        };
        self.db().execute(sql, params![id, name]).map_err(db_err)?;
        Ok(())
    }

    /// Deletes job `id`: its rows, then its files.
    pub fn delete(&self, id: &str) -> Result<()> {
        {
            let mut db = self.db();
            let tx = db.transaction().map_err(db_err)?;
            for t in [
                "DELETE FROM jobs WHERE id = ?1",
                "DELETE FROM blobs WHERE job = ?1",
                "DELETE FROM answers WHERE job = ?1",
            ] {
                tx.execute(t, [id]).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
        }
        let dir = self.job_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&dir, e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes written past the acknowledged length (a chunk cut by a crash before it was
    /// recorded) are dropped by the next append; a deleted job leaves no row and no file.
    #[test]
    fn appends_resume_at_the_acknowledged_length_and_deletes_are_whole() {
        let root = std::env::temp_dir().join(format!("hetune-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let s = Store::open(&root).unwrap();
        s.create("j", &[1; 32], "ff", "{}", &["a".into()]).unwrap();
        assert_eq!(s.append("j", "a", 0, b"hello").unwrap(), 5);
        // The crash: bytes on disk the database never acknowledged.
        let mut f = OpenOptions::new().append(true).open(s.part_path("j", "a")).unwrap();
        f.write_all(b"GARBAGE").unwrap();
        drop(f);
        drop(s);
        let s = Store::open(&root).unwrap();
        let b = s.blob("j", "a").unwrap().unwrap();
        assert_eq!((b.received, b.complete), (5, false));
        assert_eq!(s.append("j", "a", 5, b" world").unwrap(), 11);
        assert_eq!(std::fs::read(s.part_path("j", "a")).unwrap(), b"hello world");
        assert_eq!(s.part_digest("j", "a", 11).unwrap(), sha256(b"hello world"));
        assert_eq!(s.used_bytes().unwrap(), 11);
        assert!(s.enqueue("j").unwrap() && !s.enqueue("j").unwrap(), "a second start is refused");
        assert!(s.answer("j", 1, false).unwrap() && !s.answer("j", 1, true).unwrap(), "one answer per epoch");
        assert_eq!(s.answers("j").unwrap(), vec![(1, false)]);
        s.delete("j").unwrap();
        assert!(s.job("j").unwrap().is_none() && s.blobs("j").unwrap().is_empty() && !s.job_dir("j").exists());
        assert_eq!(s.used_bytes().unwrap(), 0);
        std::fs::remove_dir_all(root).unwrap();
    }
}
