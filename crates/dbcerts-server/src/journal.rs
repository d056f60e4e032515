//! Group commit of the server's writes that every request of a kind makes: issued certificates
//! (each with its audit entry), the audit entries of mutating requests, and, with
//! `digest-replay-check = "store"`, the Digest nonce count of every Digest request.
//!
//! Every certificate must be durably recorded before its private key leaves the server, and
//! every mutating request's audit entry is written before it is answered. One transaction each,
//! concurrent requests queue on the database's writer (SQLite's write lock, PostgreSQL's
//! advisory lock of the audit chain they append to) and each pays for its own log
//! flush; on SQLite the waiting is SQLite's busy handler, which sleeps and retries (1, 2, 5, 10,
//! … 100 ms) and so adds long tails: 5 ms mean and 600 ms p99 for the request audit entry at
//! 8 concurrent P-256 issuances before this module (docs/BENCHMARKS.md).
//!
//! [`Journal`] instead queues each write, and one commit task per server writes everything
//! queued so far in one transaction ([`Store::commit_batch`]): while one batch commits, the next
//! gathers. A caller still waits for the commit that holds its write, so nothing is answered
//! before it is durable; only the flushes are shared.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dbcerts_store::{
    AuditEvent, BatchWrite, CertificateRecord, Recorded, Store, StoreError, StoreResult,
};
use tokio::sync::oneshot;

/// The most writes one transaction carries. Bounds a commit's duration and memory.
pub const MAX_BATCH: usize = 256;

struct Pending {
    write: BatchWrite,
    done: oneshot::Sender<StoreResult<Recorded>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    /// A commit task is running; it takes whatever is pending before it stops.
    committing: bool,
}

/// How much sharing there was: `writes / commits` is the mean batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Transactions started.
    pub commits: u64,
    /// Writes they carried.
    pub writes: u64,
}

/// Records writes in shared transactions. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
    queue: Arc<Mutex<Queue>>,
    commits: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
}

impl Journal {
    pub fn new(store: Arc<dyn Store>) -> Journal {
        Journal {
            store,
            queue: Arc::default(),
            commits: Arc::default(),
            writes: Arc::default(),
        }
    }

    pub fn stats(&self) -> JournalStats {
        JournalStats {
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }

    /// Durably records `cert` and its audit entry; returns once the transaction holding them
    /// has committed. A serial that exists already is `Conflict("certificate serial")`; a
    /// project deleted meanwhile, or a user deleted or no longer `MANAGED`, `Gone`.
    pub async fn insert_certificate(
        &self,
        cert: CertificateRecord,
        audit: AuditEvent,
    ) -> StoreResult<()> {
        self.record_certificate(cert, audit).await?.into_result()
    }

    /// As [`Journal::insert_certificate`], with what became of the certificate: whether it was
    /// recorded, and why not.
    pub async fn record_certificate(
        &self,
        cert: CertificateRecord,
        audit: AuditEvent,
    ) -> StoreResult<Recorded> {
        self.commit(BatchWrite::Certificate(cert, audit)).await
    }

    /// Durably appends `event` to the audit log; returns once it has committed.
    pub async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        self.commit(BatchWrite::Audit(event)).await.map(drop)
    }

    /// Durably records that `nc` was accepted for the Digest `nonce` (kept until `expires`;
    /// counts of nonces expired at `now` are removed). False when a count at least as high is
    /// recorded already, by any node: the request is a replay.
    pub async fn advance_nonce_count(
        &self,
        nonce: &str,
        nc: u32,
        expires: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let write = BatchWrite::DigestNonceCount {
            nonce: nonce.to_owned(),
            nc,
            expires,
            now,
        };
        match self.commit(write).await? {
            Recorded::Yes => Ok(true),
            Recorded::CountNotHigher => Ok(false),
            other => Err(StoreError::Internal(format!(
                "a nonce count was answered {other:?}"
            ))),
        }
    }

    /// Queues `write` and waits for the commit that holds it.
    ///
    /// The commit runs in a task of its own, so a caller that goes away (a client that
    /// disconnects) neither stops nor delays the others' commit. Must be called on a Tokio
    /// runtime.
    async fn commit(&self, write: BatchWrite) -> StoreResult<Recorded> {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.pending.push(Pending { write, done });
            !std::mem::replace(&mut queue.committing, true)
        };
        if start {
            let journal = self.clone();
            tokio::spawn(async move { journal.commit_until_empty().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Internal(
                "the journal's commit task ended without an answer".into(),
            ))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits batches until nothing is pending, then marks the queue idle (under the same
    /// lock, so a write queued meanwhile either joins a batch here or starts a new task).
    async fn commit_until_empty(&self) {
        loop {
            let batch: Vec<Pending> = {
                let mut queue = self.lock();
                if queue.pending.is_empty() {
                    queue.committing = false;
                    return;
                }
                let n = queue.pending.len().min(MAX_BATCH);
                queue.pending.drain(..n).collect()
            };
            let (writes, answers): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.write, p.done)).unzip();
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.writes
                .fetch_add(writes.len() as u64, Ordering::Relaxed);
            crate::observe::journal_commit(writes.len());
            match self.store.commit_batch(&writes).await {
                Ok(outcomes) => {
                    for (answer, outcome) in answers.into_iter().zip(outcomes) {
                        let _ = answer.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for answer in answers {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
