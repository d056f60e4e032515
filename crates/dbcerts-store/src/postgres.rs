//! The PostgreSQL adapter, for several dbcerts nodes on one database.
//!
//! Writes that must see a stable part of the store (an audit chain, a project's user limit or
//! active CA, a CRL number, the first organization) take a transaction-scoped advisory lock per
//! part ([`WriteLock`]), so that nodes writing different projects do not wait for each other. Migrations run under sqlx's session advisory lock, so nodes starting at
//! once apply them one after the other. A database that cannot be reached answers
//! [`StoreError::Unavailable`] within the acquire timeout; the pool reconnects by itself when it
//! is back.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};

use crate::sql::WriteLock;
use crate::*;

type Db = sqlx::Postgres;
type DbRow = PgRow;
type DbConn = sqlx::PgConnection;

/// The audit INSERT. The next `seq` comes from a sequence, so that appends to different chains
/// do not wait for each other (it may skip a number when an append rolls back).
const INSERT_AUDIT_ENTRY: &str =
    insert_audit_entry_sql!("nextval('audit_log_seq')", "chain" = "$1");

/// Removes the Digest nonce counts expired before `$1` that no other transaction holds: a
/// batch's prune never waits for another batch (nor makes one wait in a cycle with it).
const PRUNE_NONCE_COUNTS: &str = "DELETE FROM digest_nonce_counts WHERE nonce IN
     (SELECT nonce FROM digest_nonce_counts WHERE expires < $1 FOR UPDATE SKIP LOCKED)";

/// A batch's certificates in one statement: [`crate::sql::certificates::INSERT_CERTIFICATE`]
/// for each row of the arrays `$1` … `$11` (whose serials differ), with the same conditions;
/// returns the serials inserted.
const INSERT_CERTIFICATES: &str = "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert,
                           ca_id, revoked_at, revocation_reason)
 SELECT n.serial, n.project_id, n.username, n.subject, n.not_before, n.not_after, n.created_ms, n.cert,
        n.ca_id, n.revoked_at, n.revocation_reason
 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
             $8::bytea[], $9::bigint[], $10::bigint[], $11::bigint[])
      AS n(serial, project_id, username, subject, not_before, not_after, created_ms, cert, ca_id,
           revoked_at, revocation_reason)
 WHERE EXISTS (SELECT 1 FROM projects WHERE id = n.project_id)
   AND EXISTS (SELECT 1 FROM database_users
               WHERE project_id = n.project_id AND database_name IN ('$external', 'admin')
                 AND username = n.username AND x509_type = 'MANAGED')
 ON CONFLICT (serial) DO NOTHING
 RETURNING serial";

/// Every chain of `$1`'s places in one statement, in `$1`'s order: its recorded head
/// ([`crate::sql::audit::RECORDED_HEAD`]) and its last entry
/// ([`crate::sql::audit::LAST_CHAIN_ENTRY`]), each `seq`, `chain_seq`, `hash` or NULLs.
const CHAIN_PLACES: &str = "SELECT h.seq, h.chain_seq, h.hash, l.seq, l.chain_seq, l.hash
 FROM unnest($1::text[]) WITH ORDINALITY AS c(chain, i)
 LEFT JOIN audit_chain_heads h ON h.chain = c.chain
 LEFT JOIN LATERAL (SELECT seq, chain_seq, hash FROM audit_log WHERE chain = c.chain
                    ORDER BY chain_seq DESC LIMIT 1) AS l ON true
 ORDER BY c.i";

/// `$1` new audit `seq`s, from the sequence [`INSERT_AUDIT_ENTRY`] takes them from.
const NEXT_AUDIT_SEQS: &str = "SELECT nextval('audit_log_seq') FROM generate_series(1, $1)";

/// A batch's audit entries in one statement: [`INSERT_AUDIT_ENTRY`]'s columns as arrays (`$2` …
/// `$14`) after their `seq`s (`$1`, from [`NEXT_AUDIT_SEQS`]).
const INSERT_AUDIT_ENTRIES: &str = "INSERT INTO audit_log (seq, chain, chain_seq, prev_seq, at_ms, actor, source_ip, action, project_id,
                       target, status, details, prev_hash, hash)
 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[],
                      $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[],
                      $13::bytea[], $14::bytea[])";

/// Every chain's head in one statement: [`crate::sql::audit::SAVE_AUDIT_HEAD`] for each row of
/// the arrays `$1` … `$4` (whose chains differ).
const SAVE_AUDIT_HEADS: &str = "INSERT INTO audit_chain_heads (chain, chain_seq, seq, hash)
 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])
 ON CONFLICT (chain) DO UPDATE SET chain_seq = excluded.chain_seq, seq = excluded.seq,
     hash = excluded.hash";

/// A place read by [`CHAIN_PLACES`], from its three columns.
fn chain_place(
    seq: Option<i64>,
    chain_seq: Option<i64>,
    hash: Option<Vec<u8>>,
) -> Option<crate::sql::audit::ChainPlace> {
    Some((seq?, chain_seq?, hash?))
}

/// How long a request waits for a connection before the store answers `Unavailable`.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A [`Store`] on a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// What the pool connects with, for [`PgStore::listen_for_changes`]'s connection.
    options: Arc<PgConnectOptions>,
}

impl PgStore {
    /// Nothing to release beyond the pool (SQLite's store also has thread-side readers and a
    /// writer thread).
    pub(crate) async fn close_thread_side(&self) {}

    /// Always the pool (SQLite's file store has a writer thread).
    pub(crate) async fn commit_batch_on_writer(
        &self,
        _batch: &[BatchWrite],
    ) -> Option<StoreResult<Vec<Recorded>>> {
        None
    }

    /// Always the ordinary path (for this and the next): PostgreSQL is one round trip
    /// whatever the thread.
    pub(crate) fn active_ca_inline(
        &self,
        _project_id: &str,
    ) -> Option<Option<crate::sql::cas::CaRow>> {
        None
    }

    pub(crate) fn thread_side_counts(&self) -> ThreadSideStats {
        ThreadSideStats::default()
    }

    pub(crate) fn token_revoked_inline(&self, _jti: &str) -> Option<bool> {
        None
    }

    pub(crate) fn unexpired_page_inline(
        &self,
        _project_id: &str,
        _username: &str,
        _now: i64,
        _limit: i64,
        _offset: i64,
    ) -> Option<Vec<crate::sql::certificates::PageRow>> {
        None
    }

    /// Connects to a `postgres://` URL and runs pending migrations. Fails (rather than waits)
    /// when the database cannot be reached within [`ACQUIRE_TIMEOUT`].
    pub async fn open_url(url: &str) -> StoreResult<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad PostgreSQL URL: {e}")))?
            .application_name("dbcerts")
            .options([
                // A statement that runs this long is stuck; the request gets a 503, not a hang.
                ("statement_timeout", "15s"),
                ("lock_timeout", "10s"),
                // The write lock relies on each statement seeing what committed before it, and
                // "committed" must mean on disk: a database, role or server default must not
                // weaken either.
                // (Option values are split at spaces; a backslash keeps this one whole.)
                ("default_transaction_isolation", "read\\ committed"),
                ("synchronous_commit", "on"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        Self::migrate(options.clone()).await?;
        Ok(PgStore {
            pool,
            options: Arc::new(options),
        })
    }

    /// Runs pending migrations under sqlx's advisory lock, on a connection of its own without
    /// the pool's statement and lock timeouts: a node that starts while another migrates waits
    /// for it, however long the migration takes, instead of failing.
    async fn migrate(options: PgConnectOptions) -> StoreResult<()> {
        let migration_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.options([("statement_timeout", "0"), ("lock_timeout", "0")]))
            .await
            .map_err(map_err)?;
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        // See the SQLite adapter: migrations are additive, so older nodes keep working.
        migrator.set_ignore_missing(true);
        let result = migrator.run(&migration_pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err(e),
            e => StoreError::Internal(format!("migration failed: {e}")),
        });
        migration_pool.close().await;
        result
    }

    /// A connection of its own (application name [`CHANGE_LISTENER_APPLICATION`]) listening
    /// on the channel that migration 0011's triggers notify on every committed change of a
    /// table a node may cache (but a service-account secret's `last_used`: migration 0014).
    /// Fails within [`ACQUIRE_TIMEOUT`] when the database cannot be
    /// reached.
    pub async fn listen_for_changes(&self) -> StoreResult<ChangeListener> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(
                PgConnectOptions::clone(&self.options)
                    .application_name(CHANGE_LISTENER_APPLICATION),
            );
        let mut listener = PgListener::connect_with(&pool).await.map_err(map_err)?;
        listener.listen(CHANGE_CHANNEL).await.map_err(map_err)?;
        Ok(ChangeListener {
            listener,
            _pool: pool,
        })
    }

    /// Notifies `probe:<token>` on the change channel, from a pooled connection: a listener
    /// that receives it knows that what is committed through the pool reaches it (a
    /// connection pooler in transaction mode, for one, accepts `LISTEN` and delivers nothing).
    pub async fn probe_changes(&self, token: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(format!("{PROBE_PREFIX}{token}"))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// The advisory-lock key of an audit chain's write lock (a project id, or empty for the
    /// store chain), as `pg_locks` shows it (`classid` the high 32 bits, `objid` the low): for an
    /// operator looking for what a write waits on.
    pub fn audit_chain_lock_key(chain: &str) -> i64 {
        WriteLock::Chain(chain).key()
    }

    /// A transaction holding `locks` until it ends, taken before anything else in the order of
    /// their keys.
    async fn write_tx(
        &self,
        locks: &[WriteLock<'_>],
    ) -> StoreResult<sqlx::Transaction<'static, Db>> {
        // READ COMMITTED explicitly: each statement after the locks must see what the previous
        // holder committed (a snapshot taken at the lock statement would not).
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(map_err)?;
        let keys = WriteLock::keys(locks);
        if !keys.is_empty() {
            // One round trip whatever the number of locks: a function scan of unnest yields the
            // keys in array order (no sort, no parallel plan), so they are taken in that order.
            sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
                .bind(keys)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        Ok(tx)
    }
}

/// The notification channel of migration 0011.
const CHANGE_CHANNEL: &str = "dbcerts_cache";

/// How a probe's payload starts ([`PgStore::probe_changes`]).
const PROBE_PREFIX: &str = "probe:";

/// The `application_name` of each node's change-listener connection (as `pg_stat_activity`
/// shows it).
pub const CHANGE_LISTENER_APPLICATION: &str = "dbcerts-cache-listener";

/// What changed, as a notification names it: the part of a read cache to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// API keys, service accounts and their secrets, grants, access lists, organizations.
    Principals,
    Projects,
    DatabaseUsers,
    UserSecurity,
    /// A liveness probe ([`PgStore::probe_changes`]) with its token: changes nothing.
    Probe(String),
    /// A payload this release does not know (a newer node's migration, or `all` sent by hand):
    /// drop everything.
    Unknown,
}

impl Changed {
    fn from_payload(payload: &str) -> Changed {
        match payload {
            "principals" => Changed::Principals,
            "projects" => Changed::Projects,
            "database_users" => Changed::DatabaseUsers,
            "user_security" => Changed::UserSecurity,
            // A bare `probe` (sent by hand, or by a later release) is a probe too.
            "probe" => Changed::Probe(String::new()),
            _ => match payload.strip_prefix(PROBE_PREFIX) {
                Some(token) => Changed::Probe(token.to_owned()),
                None => Changed::Unknown,
            },
        }
    }
}

/// One connection listening for changes ([`PgStore::listen_for_changes`]).
pub struct ChangeListener {
    listener: PgListener,
    /// The one-connection pool the listener's connection came from.
    _pool: PgPool,
}

impl ChangeListener {
    /// The next change committed. An error means the connection is lost (changes committed
    /// meanwhile are not reported): the listener must be dropped and a new one opened.
    pub async fn next(&mut self) -> StoreResult<Changed> {
        match self.listener.try_recv().await {
            Ok(Some(n)) => Ok(Changed::from_payload(n.payload())),
            Ok(None) => Err(StoreError::Unavailable(
                "the change listener's connection was lost".into(),
            )),
            Err(e) => Err(map_err(e)),
        }
    }
}

/// Classifies an error. Lost connections, a server shutting down or starting up, too many
/// connections, timeouts and serialization failures are `Unavailable` (503, retry); everything
/// else is a bug or bad data.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Gone,
        sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_transient) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// SQLSTATEs worth retrying: connection exceptions (08), insufficient resources (53), operator
/// intervention such as shutdown (57, which includes statement timeouts as 57014), the
/// lock_timeout's 55P03, serialization failure and deadlock (40001, 40P01), a write that
/// reached a read-only server (25006: a standby or a demoted primary during failover), and the
/// server's disk failing (58030 `io_error`, as SQLite's I/O errors are on that backend).
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "40001" | "40P01" | "55P03" | "25006" | "58030")
}

// A group commit's steps as one statement each: a constant number of round trips per batch.
sql_store!(PgStore {
    async fn insert_certificates(&mut self, certs: &[&CertificateRecord]) -> StoreResult<Vec<bool>> {
        if certs.is_empty() {
            return Ok(Vec::new());
        }
        let col = |f: fn(&CertificateRecord) -> i64| certs.iter().map(|c| f(c)).collect::<Vec<i64>>();
        let text = |f: fn(&CertificateRecord) -> &str| {
            certs.iter().map(|c| f(c).to_owned()).collect::<Vec<String>>()
        };
        let inserted: Vec<i64> = sqlx::query_scalar(INSERT_CERTIFICATES)
            .bind(col(|c| c.serial))
            .bind(text(|c| &c.project_id))
            .bind(text(|c| &c.username))
            .bind(text(|c| &c.subject))
            .bind(col(|c| c.not_before))
            .bind(col(|c| c.not_after))
            .bind(col(|c| c.created_ms))
            .bind(certs.iter().map(|c| c.cert_der.clone()).collect::<Vec<Vec<u8>>>())
            .bind(col(|c| c.ca_id))
            .bind(certs.iter().map(|c| c.revocation.map(|r| r.at)).collect::<Vec<Option<i64>>>())
            .bind(
                certs
                    .iter()
                    .map(|c| c.revocation.map(|r| i64::from(r.reason.code())))
                    .collect::<Vec<Option<i64>>>(),
            )
            .fetch_all(&mut *self)
            .await
            .map_err(map_err)?;
        let inserted: std::collections::HashSet<i64> = inserted.into_iter().collect();
        Ok(certs.iter().map(|c| inserted.contains(&c.serial)).collect())
    }

    async fn chain_places(
        &mut self,
        chains: &[&str],
    ) -> StoreResult<Vec<(Option<crate::sql::audit::ChainPlace>, Option<crate::sql::audit::ChainPlace>)>> {
        type PlacesRow = (
            Option<i64>,
            Option<i64>,
            Option<Vec<u8>>,
            Option<i64>,
            Option<i64>,
            Option<Vec<u8>>,
        );
        let rows: Vec<PlacesRow> = sqlx::query_as(CHAIN_PLACES)
            .bind(chains)
            .fetch_all(&mut *self)
            .await
            .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(hs, hc, hh, ls, lc, lh)| (chain_place(hs, hc, hh), chain_place(ls, lc, lh)))
            .collect())
    }

    async fn insert_audit_rows(
        &mut self,
        rows: &[crate::sql::audit::BatchAuditRow<'_>],
    ) -> StoreResult<Vec<i64>> {
        let mut seqs: Vec<i64> = sqlx::query_scalar(NEXT_AUDIT_SEQS)
            .bind(rows.len() as i64)
            .fetch_all(&mut *self)
            .await
            .map_err(map_err)?;
        // In the rows' order, as one INSERT each would have taken them.
        seqs.sort_unstable();
        let events = || rows.iter().map(|r| &*r.event);
        sqlx::query(INSERT_AUDIT_ENTRIES)
            .bind(&seqs)
            .bind(rows.iter().map(|r| r.chain).collect::<Vec<&str>>())
            .bind(rows.iter().map(|r| r.chain_seq).collect::<Vec<i64>>())
            .bind(rows.iter().map(|r| r.prev.resolve(&seqs)).collect::<Vec<i64>>())
            .bind(events().map(|e| e.at_ms).collect::<Vec<i64>>())
            .bind(events().map(|e| e.actor.as_str()).collect::<Vec<&str>>())
            .bind(events().map(|e| e.source_ip.as_deref()).collect::<Vec<Option<&str>>>())
            .bind(events().map(|e| e.action.as_str()).collect::<Vec<&str>>())
            .bind(events().map(|e| e.project_id.as_deref()).collect::<Vec<Option<&str>>>())
            .bind(events().map(|e| e.target.as_deref()).collect::<Vec<Option<&str>>>())
            .bind(events().map(|e| e.status.map(i64::from)).collect::<Vec<Option<i64>>>())
            .bind(events().map(|e| e.details.as_str()).collect::<Vec<&str>>())
            .bind(rows.iter().map(|r| r.prev_hash.as_slice()).collect::<Vec<&[u8]>>())
            .bind(rows.iter().map(|r| r.hash.as_slice()).collect::<Vec<&[u8]>>())
            .execute(&mut *self)
            .await
            .map_err(map_err)?;
        Ok(seqs)
    }

    async fn save_audit_heads(
        &mut self,
        heads: &[(&str, crate::sql::audit::ChainHead)],
    ) -> StoreResult<()> {
        sqlx::query(SAVE_AUDIT_HEADS)
            .bind(heads.iter().map(|(chain, _)| *chain).collect::<Vec<&str>>())
            .bind(heads.iter().map(|(_, h)| h.chain_seq).collect::<Vec<i64>>())
            .bind(heads.iter().map(|(_, h)| h.seq).collect::<Vec<i64>>())
            .bind(heads.iter().map(|(_, h)| h.hash.as_slice()).collect::<Vec<&[u8]>>())
            .execute(&mut *self)
            .await
            .map_err(map_err)?;
        Ok(())
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_states() {
        for code in [
            "08006", "08001", "53100", "53300", "57P01", "57P03", "57014", "40001", "55P03",
            "25006", "58030",
        ] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22P02", "58P01"] {
            assert!(!is_transient(code), "{code}");
        }
    }

    #[test]
    fn notification_payloads() {
        assert_eq!(Changed::from_payload("principals"), Changed::Principals);
        assert_eq!(
            Changed::from_payload("user_security"),
            Changed::UserSecurity
        );
        assert_eq!(
            Changed::from_payload("probe:0123abcd-4"),
            Changed::Probe("0123abcd-4".into())
        );
        assert_eq!(Changed::from_payload("all"), Changed::Unknown);
        assert_eq!(
            Changed::from_payload("probe"),
            Changed::Probe(String::new())
        );
        assert_eq!(Changed::from_payload("probes"), Changed::Unknown);
    }
}
