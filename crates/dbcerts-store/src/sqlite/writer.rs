//! SQLite's writer thread: the group commits ([`Store::commit_batch`](crate::Store::commit_batch))
//! of a file store, each in one hop. Through sqlx, every statement of a batch is a round trip to
//! the connection's worker thread (two context switches each way), about two per write and five
//! more per batch; here the async caller hands the whole batch to a thread that owns a
//! read-write rusqlite connection to the same file, which runs `BEGIN IMMEDIATE` … `COMMIT` with
//! cached prepared statements and answers through a oneshot channel.
//!
//! The statements are those of the sqlx path, run through [`BatchConn`] by the same
//! `commit_batch_in`, so the outcomes, the audit chaining and the nonce order are the same.
//!
//! Faults: after any failed batch the transaction is rolled back if SQLite has not already done
//! so; after a disk fault (or a rollback that failed) the connection is dropped and the next
//! batch opens a fresh one, whose page cache holds nothing read before the fault (the store does
//! not trust pages after a failed `fsync`). Errors are classified as the sqlx path's `map_err`
//! classifies them: a disk fault or a busy database is `Unavailable` (503).
//!
//! Fallback: a batch the thread cannot take (the thread gone, or its connection failing to open:
//! nothing of the batch was written) takes the sqlx path and is counted. Once the store is
//! closed, batches take the sqlx path uncounted, and the closed pool refuses them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, mpsc};

use tokio::sync::oneshot;

use super::{BUSY_TIMEOUT, INSERT_AUDIT_ENTRY, PRUNE_NONCE_COUNTS, is_disk_fault, printable};
use crate::sql::BatchConn;
use crate::sql::audit::{ChainHead, ChainPlace, NewAuditRow};
use crate::sql::certificates::{
    CERTIFICATE_REFUSAL, INSERT_CERTIFICATE, RECORD_NONCE_COUNT, commit_batch_in,
};
use crate::{BatchWrite, CertificateRecord, Recorded, StoreError, StoreResult};

/// The writer thread and what it did.
#[derive(Debug)]
pub(super) struct Writer {
    /// Where batches go; `None` once closed.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The thread, joined by [`Writer::close`]; dropping the store (the sender) ends it too.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Batches the thread answered.
    pub(super) batches: AtomicU64,
    /// Batches that took the sqlx path because the thread could not take them.
    pub(super) fallbacks: AtomicU64,
}

/// A batch and where its answer goes.
struct Job {
    batch: Vec<BatchWrite>,
    answer: oneshot::Sender<Answer>,
}

enum Answer {
    /// The batch ran: its outcomes, or the error that rolled it back.
    Ran(StoreResult<Vec<Recorded>>),
    /// Nothing of the batch ran: the connection could not be opened.
    NotRun(rusqlite::Error),
}

impl Writer {
    /// Starts the thread, which opens its connection to `path` at once (so that the store's
    /// descriptors are all open before it serves), and again for the next batch after a fault.
    pub(super) fn start(path: PathBuf) -> std::io::Result<Writer> {
        let (jobs, received) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dbcerts-sqlite-writer".into())
            .spawn(move || run(&path, &received))?;
        Ok(Writer {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            batches: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Runs `batch` on the thread; `None` when it must take the sqlx path.
    pub(super) async fn commit(&self, batch: &[BatchWrite]) -> Option<StoreResult<Vec<Recorded>>> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            batch: batch.to_vec(),
            answer,
        };
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .send(job);
        if sent.is_err() {
            self.fell_back(&"the writer thread has stopped");
            return None;
        }
        match answered.await {
            Ok(Answer::Ran(done)) => {
                self.batches.fetch_add(1, Relaxed);
                Some(done)
            }
            Ok(Answer::NotRun(e)) => {
                self.fell_back(&printable(&e));
                None
            }
            // The thread ended inside the batch (a panic): its connection was closed without a
            // COMMIT, which rolled the batch back.
            Err(_) => {
                self.fell_back(&"the writer thread stopped inside a batch");
                None
            }
        }
    }

    fn fell_back(&self, why: &dyn std::fmt::Display) {
        if self.fallbacks.fetch_add(1, Relaxed) == 0 {
            tracing::warn!(error = %why, "SQLite writer thread unavailable; its batch takes the sqlx path");
        } else {
            tracing::debug!(error = %why, "SQLite writer thread unavailable; taking the sqlx path");
        }
    }

    /// Stops taking batches; the thread finishes the one it runs, closes its connection and
    /// ends. Returns the thread to wait for, unless another call took it.
    pub(super) fn stop(&self) -> Option<std::thread::JoinHandle<()>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// [`Writer::stop`], then waits (off the async threads) until the connection is closed.
    pub(super) async fn close(&self) {
        if let Some(thread) = self.stop() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Ends the thread as a crash would, the store still open: later batches find it gone.
    #[cfg(test)]
    pub(super) fn lose_thread(&self) {
        let mut jobs = self.jobs.lock().unwrap();
        // A channel nobody receives from: the old thread ends, sends fail.
        *jobs = Some(mpsc::channel().0);
        drop(jobs);
        if let Some(thread) = self.thread.lock().unwrap().take() {
            thread.join().unwrap();
        }
    }
}

/// The thread: one batch after another until the store stops it.
fn run(path: &Path, jobs: &mpsc::Receiver<Job>) {
    // Failing here is not final: the first batch tries again, and falls back if it fails.
    let mut kept = open(path).ok();
    while let Ok(job) = jobs.recv() {
        let mut conn = match kept.take().map_or_else(|| open(path), Ok) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = job.answer.send(Answer::NotRun(e));
                continue;
            }
        };
        let mut tx = Tx {
            conn: &mut conn,
            disk_fault: false,
        };
        let done = tx.run(&job.batch);
        let keep = tx.settle();
        if keep {
            kept = Some(conn);
        } else {
            drop(conn);
        }
        let _ = job.answer.send(Answer::Ran(done));
    }
}

/// Opens the writer's connection with the pool's settings: WAL, `synchronous=FULL`, foreign
/// keys, the busy timeout. The file exists (the store created, switched to WAL and migrated
/// it).
fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL is a property of the file, set by the pool's first connection: checked, not changed
    // (changing it takes a lock that the busy timeout does not wait for).
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!(
                "the database stays in journal mode {mode}, not WAL"
            )),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

/// The writer's connection inside one batch.
struct Tx<'c> {
    conn: &'c mut rusqlite::Connection,
    /// A statement failed on a disk fault: the connection is dropped after the batch.
    disk_fault: bool,
}

impl Tx<'_> {
    /// `BEGIN IMMEDIATE`, the batch, `COMMIT`: the batch's outcomes once it is durable.
    fn run(&mut self, batch: &[BatchWrite]) -> StoreResult<Vec<Recorded>> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.fail(e))?;
        let outcomes = ready(commit_batch_in(self, batch))?;
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.fail(e))?;
        Ok(outcomes)
    }

    /// After a batch: rolls back what a failure left open; whether the connection may serve
    /// the next batch (not after a disk fault, nor when it cannot leave the transaction).
    fn settle(&mut self) -> bool {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        !self.disk_fault && self.conn.is_autocommit()
    }

    /// Classifies `e` as the sqlx path's `map_err` does, noting a disk fault.
    fn fail(&mut self, e: rusqlite::Error) -> StoreError {
        let rusqlite::Error::SqliteFailure(failure, message) = &e else {
            return StoreError::Internal(printable(&e));
        };
        let code = failure.extended_code.to_string();
        let message = message.clone().unwrap_or_else(|| failure.to_string());
        // As sqlx words a database error.
        let text = printable(&format!(
            "error returned from database: (code: {code}) {message}"
        ));
        if is_disk_fault(Some(&code)) {
            self.disk_fault = true;
            StoreError::Unavailable(text)
        } else if message.contains("database is locked") {
            StoreError::Unavailable(text)
        } else if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY {
            StoreError::Gone
        } else {
            StoreError::Internal(text)
        }
    }
}

/// An integer column as SQLite's `sqlite3_column_int64` converts any value.
fn as_integer(value: rusqlite::types::ValueRef<'_>) -> i64 {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Integer(n) => n,
        ValueRef::Real(f) => f as i64,
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
        ValueRef::Blob(_) | ValueRef::Null => 0,
    }
}

/// A blob column as SQLite's `sqlite3_column_blob` gives any value: a text's bytes too.
fn as_bytes(value: rusqlite::types::ValueRef<'_>) -> Vec<u8> {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
        ValueRef::Integer(n) => n.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
        ValueRef::Null => Vec::new(),
    }
}

/// `params` named `$1`, `$2`, … in their order, for rusqlite to bind by those names: the shared
/// statements' `$N` parameters then need not first appear in numeric order (sqlx binds them by
/// number as well).
fn numbered<'a>(
    params: &[&'a dyn rusqlite::ToSql],
) -> Vec<(&'static str, &'a dyn rusqlite::ToSql)> {
    const NAMES: [&str; 16] = [
        "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14",
        "$15", "$16",
    ];
    assert!(params.len() <= NAMES.len(), "more parameters than names");
    NAMES.iter().copied().zip(params.iter().copied()).collect()
}

/// The output of a future that never waits: [`BatchConn`] on rusqlite runs each statement
/// synchronously, so `commit_batch_in` over it finishes on its first poll.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => unreachable!("rusqlite statements never wait"),
    }
}

impl BatchConn for Tx<'_> {
    async fn insert_certificate(&mut self, c: &CertificateRecord) -> StoreResult<bool> {
        let params = rusqlite::params![
            c.serial,
            c.project_id,
            c.username,
            c.subject,
            c.not_before,
            c.not_after,
            c.created_ms,
            c.cert_der,
            c.ca_id,
            c.revocation.map(|r| r.at),
            c.revocation.map(|r| i64::from(r.reason.code())),
        ];
        let done = self
            .conn
            .prepare_cached(INSERT_CERTIFICATE)
            .and_then(|mut s| s.execute(params));
        Ok(done.map_err(|e| self.fail(e))? == 1)
    }

    async fn certificate_refusal(
        &mut self,
        project_id: &str,
        username: &str,
    ) -> StoreResult<(i64, i64, i64)> {
        let counts = self
            .conn
            .prepare_cached(CERTIFICATE_REFUSAL)
            .and_then(|mut s| {
                s.query_row([project_id, username], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
            });
        counts.map_err(|e| self.fail(e))
    }

    async fn record_nonce_count(
        &mut self,
        nonce: &str,
        nc: u32,
        expires: i64,
    ) -> StoreResult<bool> {
        let done = self
            .conn
            .prepare_cached(RECORD_NONCE_COUNT)
            .and_then(|mut s| s.execute(rusqlite::params![nonce, i64::from(nc), expires]));
        Ok(done.map_err(|e| self.fail(e))? == 1)
    }

    async fn prune_nonce_counts(&mut self, before: i64) -> StoreResult<()> {
        let done = self
            .conn
            .prepare_cached(PRUNE_NONCE_COUNTS)
            .and_then(|mut s| s.execute([before]));
        done.map(drop).map_err(|e| self.fail(e))
    }

    async fn chain_place(
        &mut self,
        statement: &'static str,
        chain: &str,
    ) -> StoreResult<Option<ChainPlace>> {
        use rusqlite::OptionalExtension;
        // Read as SQLite's own conversions (and sqlx) would, whatever type the columns hold: a
        // head or entry edited outside dbcerts to another type must lead to the mismatch entry,
        // as on the sqlx path, never to a refused batch (tampering must not stop issuance).
        let place = self.conn.prepare_cached(statement).and_then(|mut s| {
            s.query_row([chain], |r| {
                Ok((
                    as_integer(r.get_ref(0)?),
                    as_integer(r.get_ref(1)?),
                    as_bytes(r.get_ref(2)?),
                ))
            })
            .optional()
        });
        place.map_err(|e| self.fail(e))
    }

    async fn insert_audit_row(&mut self, row: &NewAuditRow<'_>) -> StoreResult<i64> {
        let event = row.event;
        let status = event.status.map(i64::from);
        // By name: SQLite's INSERT_AUDIT_ENTRY uses `$8` (the project) in its chain column's
        // expression, before `$2`, and rusqlite binds a list by order of first appearance.
        let params = numbered(&[
            &row.chain,
            &row.chain_seq,
            &row.prev_seq,
            &event.at_ms,
            &event.actor,
            &event.source_ip,
            &event.action,
            &event.project_id,
            &event.target,
            &status,
            &event.details,
            &row.prev_hash,
            &row.hash,
        ]);
        let seq = self
            .conn
            .prepare_cached(INSERT_AUDIT_ENTRY)
            .and_then(|mut s| s.query_row(params.as_slice(), |r| r.get(0)));
        seq.map_err(|e| self.fail(e))
    }

    async fn save_audit_head(&mut self, chain: &str, head: &ChainHead) -> StoreResult<()> {
        let done = self
            .conn
            .prepare_cached(crate::sql::audit::SAVE_AUDIT_HEAD)
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    chain,
                    head.chain_seq,
                    head.seq,
                    head.hash
                ])
            });
        done.map(drop).map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer classifies SQLite's failures as the pool's `map_err` does, and notes the
    /// disk faults after which its connection is replaced.
    #[test]
    fn failures_are_classified_as_the_pool_classifies_them() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let cases = [
            (1034, "disk I/O error", "Unavailable", true), // IOERR_FSYNC (EIO)
            (778, "disk I/O error", "Unavailable", true),  // IOERR_WRITE
            (13, "database or disk is full", "Unavailable", true), // FULL (ENOSPC)
            (5, "database is locked", "Unavailable", false), // BUSY after the timeout
            (787, "FOREIGN KEY constraint failed", "Gone", false),
            (2067, "UNIQUE constraint failed", "Internal", false),
            (11, "database disk image is malformed", "Internal", false),
        ];
        for (code, message, kind, disk_fault) in cases {
            let mut tx = Tx {
                conn: &mut conn,
                disk_fault: false,
            };
            let e = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some(message.to_owned()),
            );
            let mapped = tx.fail(e);
            let got = match &mapped {
                StoreError::Unavailable(text) | StoreError::Internal(text) => {
                    assert!(
                        text.contains(&format!("(code: {code}) {message}")),
                        "{text}"
                    );
                    if matches!(mapped, StoreError::Unavailable(_)) {
                        "Unavailable"
                    } else {
                        "Internal"
                    }
                }
                StoreError::Gone => "Gone",
                other => panic!("{code}: {other:?}"),
            };
            assert_eq!((got, tx.disk_fault), (kind, disk_fault), "{code}");
        }
    }
}
