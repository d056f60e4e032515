//! The SQLite adapter: one database file, WAL journal, `synchronous=FULL` so that a committed
//! certificate survives a crash or power loss before its private key leaves the server.
//!
//! Two lock files sit beside the database. `<db>.migrate.lock` is held exclusively while
//! migrations run, so that processes starting at once migrate one after the other (sqlx takes
//! no lock for SQLite). `<db>.serve.lock` is held shared for as long as a store is open, so that
//! `dbcerts restore` can tell that the file is in use.
//!
//! Every file the adapter creates is mode 0600 whatever the umask: the lock files, and the
//! database file, created empty before SQLite opens it, since SQLite gives the `-wal` and `-shm`
//! files the database file's mode.
//!
//! A file store runs its hottest small reads on the calling thread ([`Readers`]) and its group
//! commits on a writer thread of its own ([`writer`]): rusqlite connections to the same file,
//! on sqlx's libsqlite3-sys; the pool does everything else.

mod writer;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};

use crate::sql::WriteLock;
use crate::*;

type Db = sqlx::Sqlite;
type DbRow = SqliteRow;
type DbConn = sqlx::SqliteConnection;

/// The audit INSERT. The next `seq` is one past the last, gap-free (the transaction holds the
/// only write lock). The `chain` column is derived from the project (migration 0015), so only a
/// chain other than the derived one would be stored, in `chain_override`; every entry this
/// release writes has the derived chain, so the column stays NULL.
const INSERT_AUDIT_ENTRY: &str = insert_audit_entry_sql!(
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log)",
    "chain_override" = "NULLIF($1, COALESCE($8, ''))"
);

/// How long a write waits for SQLite's write lock (the pool's and the writer thread's).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Removes the Digest nonce counts expired before `$1` (the transaction holds the only write
/// lock, so nothing else holds them).
const PRUNE_NONCE_COUNTS: &str = "DELETE FROM digest_nonce_counts WHERE expires < $1";

/// A [`Store`] on one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Connections for the hottest small reads, run on the calling thread (none in memory).
    readers: Option<Arc<Readers>>,
    /// The thread that runs group commits (none in memory); stopped when the last clone is
    /// dropped.
    writer: Option<Arc<writer::Writer>>,
    /// The shared lock on `<db>.serve.lock`, released when the last clone is dropped.
    _in_use: Option<Arc<File>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs pending migrations.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect(options, true).await
    }

    /// Opens a `sqlite:` URL (for example `sqlite:///var/lib/dbcerts/dbcerts.db`).
    pub async fn open_url(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true);
        // A URL with options (a VFS, `mode=ro`, `immutable`, ...) gets no thread-side readers:
        // they would open the file without them.
        Self::connect(options, !url.contains('?')).await
    }

    /// `plain_file`: the file may also be read by [`Readers`], which open it by name with
    /// SQLite's defaults.
    async fn connect(options: SqliteConnectOptions, plain_file: bool) -> StoreResult<SqliteStore> {
        let path = database_file(&options);
        if let Some(p) = &path {
            create_private(p)
                .map_err(|e| StoreError::Internal(format!("creating {}: {e}", p.display())))?;
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_use = match &path {
            Some(p) => Some(Arc::new(lock_file(p, "serve", Lock::Shared).await?)),
            None => None,
        };
        // Held from before the first connection: that connection switches a new file to WAL,
        // which stores opening the same file at once must not race (SQLite answers such a
        // race with an immediate SQLITE_BUSY, busy timeout or not).
        let migrating = match &path {
            Some(p) => Some(lock_file(p, "migrate", Lock::Exclusive).await?),
            None => None,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .before_acquire(|conn, _| Box::pin(async move { Ok(outside_a_transaction(conn)) }))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        // A node of the previous release keeps running on a schema that a newer node has
        // migrated: every migration is additive (see docs/ARCHITECTURE.md) except 0012 and
        // 0015, after which an older release's audit appends are refused (upgrade together).
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {}", printable(&e))))?;
        drop(migrating);
        let path = path.filter(|_| plain_file);
        let writer = match &path {
            Some(p) => Some(Arc::new(writer::Writer::start(p.clone()).map_err(|e| {
                StoreError::Internal(format!("starting the SQLite writer thread: {e}"))
            })?)),
            None => None,
        };
        Ok(SqliteStore {
            pool,
            readers: path.map(|path| Arc::new(Readers::new(path))),
            writer,
            _in_use: in_use,
        })
    }

    /// The cache version: a counter that every committed change of a table a node may cache
    /// (principals, projects, database users, user security) has raised, in its own
    /// transaction, whatever process made it (migration 0011; but a service-account secret's
    /// `last_used`, migration 0014). A node's read cache serves a row
    /// only while this still holds the value read before the row was.
    ///
    /// Read on the calling thread (a few microseconds, no hop to sqlx's worker thread): it is
    /// read before every cached read, and the hop cost more than the read.
    pub async fn cache_version(&self) -> StoreResult<i64> {
        const READ: &str = "SELECT n FROM cache_version WHERE id = 1";
        if let Some(n) = self
            .readers
            .as_ref()
            .and_then(|r| r.read(|conn| conn.prepare_cached(READ)?.query_row([], |row| row.get(0))))
        {
            return Ok(n);
        }
        self.first_value(READ).await
    }

    /// The certificate list's one statement on the calling thread: the request's only store
    /// access once its principal, project and user come from the read cache. `None` when it
    /// must take the sqlx path.
    pub(crate) fn unexpired_page_inline(
        &self,
        project_id: &str,
        username: &str,
        now: i64,
        limit: i64,
        offset: i64,
    ) -> Option<Vec<crate::sql::certificates::PageRow>> {
        self.readers.as_ref()?.read(|conn| {
            let mut statement = conn.prepare_cached(crate::sql::certificates::UNEXPIRED_PAGE)?;
            let rows = statement.query_map(
                rusqlite::params![project_id, username, now, limit, offset],
                |row| {
                    Ok(crate::sql::certificates::PageRow {
                        total: row.get(0)?,
                        serial: row.get(1)?,
                        subject: row.get(2)?,
                        not_before: row.get(3)?,
                        not_after: row.get(4)?,
                    })
                },
            )?;
            rows.collect()
        })
    }

    /// The project's active CA on the calling thread (every issuance reads it); the outer
    /// `None` when it must take the sqlx path.
    pub(crate) fn active_ca_inline(
        &self,
        project_id: &str,
    ) -> Option<Option<crate::sql::cas::CaRow>> {
        use rusqlite::OptionalExtension;
        self.readers.as_ref()?.read(|conn| {
            let mut statement = conn.prepare_cached(crate::sql::cas::ACTIVE_CA)?;
            statement
                .query_row([project_id], |row| {
                    Ok(crate::sql::cas::CaRow {
                        id: row.get("id")?,
                        project_id: row.get("project_id")?,
                        algorithm: row.get("algorithm")?,
                        cert: row.get("cert")?,
                        sealed_key: row.get("sealed_key")?,
                        not_before: row.get("not_before")?,
                        not_after: row.get("not_after")?,
                        generation: row.get("generation")?,
                        active: row.get("active")?,
                        retired_at: row.get("retired_at")?,
                    })
                })
                .optional()
        })
    }

    /// Whether an access token is revoked, on the calling thread (every Bearer request
    /// asks); `None` when it must take the sqlx path.
    pub(crate) fn token_revoked_inline(&self, jti: &str) -> Option<bool> {
        self.readers.as_ref()?.read(|conn| {
            conn.prepare_cached(crate::sql::service_accounts::TOKEN_REVOKED)?
                .query_row([jti], |row| row.get(0))
        })
    }

    /// Both counters below.
    pub(crate) fn thread_side_counts(&self) -> ThreadSideStats {
        ThreadSideStats {
            read_fallbacks: self.inline_fallbacks(),
            reads_handed_off: self.inline_handed_off(),
            batch_fallbacks: self.writer_fallbacks(),
        }
    }

    /// Reads that failed on the calling thread and took the sqlx path instead (a busy WAL
    /// index, an I/O error): zero in normal operation, which the conformance suite checks.
    pub fn inline_fallbacks(&self) -> u64 {
        self.readers.as_ref().map_or(0, |r| {
            r.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Reads stopped on the calling thread by their budget (100,000 SQLite steps) and run
    /// through sqlx instead.
    pub fn inline_handed_off(&self) -> u64 {
        self.readers.as_ref().map_or(0, |r| {
            r.handed_off.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Runs every read through sqlx from now on, as a store without a file does: for tests
    /// that check the sqlx path of the reads that normally run on the calling thread.
    pub fn without_thread_side_reads(mut self) -> SqliteStore {
        if let Some(r) = self.readers.take() {
            r.close();
        }
        self
    }

    /// Runs every group commit through sqlx from now on, as a store without a file does: for
    /// tests that check the sqlx path of the batches that normally run on the writer thread.
    pub fn without_thread_side_writes(mut self) -> SqliteStore {
        if let Some(w) = self.writer.take() {
            w.stop();
        }
        self
    }

    /// Group commits the writer thread ran ([`Store::commit_batch`]).
    pub fn writer_batches(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| w.batches.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Group commits that took the sqlx path because the writer thread could not take them
    /// (its connection would not open, the thread had stopped): zero in normal operation,
    /// which the conformance suite checks.
    pub fn writer_fallbacks(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| {
            w.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// `batch` on the writer thread; `None` when it must take the sqlx path.
    pub(crate) async fn commit_batch_on_writer(
        &self,
        batch: &[BatchWrite],
    ) -> Option<StoreResult<Vec<Recorded>>> {
        self.writer.as_ref()?.commit(batch).await
    }

    /// Releases the connections of [`Readers`] and stops the writer thread, once its batch is
    /// done and its connection closed (the pool's are closed by `Store::close`).
    pub(crate) async fn close_thread_side(&self) {
        if let Some(r) = &self.readers {
            r.close();
        }
        if let Some(w) = &self.writer {
            w.close().await;
        }
    }

    /// Runs `PRAGMA integrity_check` and returns its first line (`ok` when healthy).
    pub async fn integrity_check(&self) -> StoreResult<String> {
        self.first_value("PRAGMA integrity_check").await
    }

    /// The first column of the first row `statement` answers.
    async fn first_value<T>(&self, statement: &'static str) -> StoreResult<T>
    where
        T: for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
    {
        let row = sqlx::query(statement)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        row.try_get::<T, _>(0).map_err(map_err)
    }

    /// Writes a consistent copy of the database to `to` (which must not exist) while the store
    /// stays in use (`VACUUM INTO`), and syncs it to disk.
    pub async fn backup_to(&self, to: &Path) -> StoreResult<()> {
        let target = to
            .to_str()
            .ok_or_else(|| StoreError::Internal("backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        File::open(to)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::Internal(format!("syncing {}: {e}", to.display())))
    }

    /// A server secret, without creating it (what `restore` checks a backup with).
    pub async fn server_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT sealed FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| r.try_get("sealed").map_err(map_err))
            .transpose()
    }

    /// A transaction that holds the write lock from its first statement, so that what it reads
    /// cannot go stale before it writes. SQLite has one writer: whatever `_locks` name, the
    /// whole store is locked.
    async fn write_tx(
        &self,
        _locks: &[WriteLock<'_>],
    ) -> StoreResult<sqlx::Transaction<'static, Db>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }
}

/// Read-only connections that run a statement on the calling thread, for reads so small and
/// so frequent that handing them to sqlx's worker thread (two context switches each way) costs
/// more than the read. Each is `query_only`; one is taken from the idle list (or opened) for a
/// read and put back after it.
///
/// A read blocks its async worker thread while it runs, so each is bounded: SQLite's progress
/// handler stops it after [`READ_BUDGET_TICKS`] × [`STEPS_PER_TICK`] virtual-machine steps
/// (well under a millisecond), and a read that needs more (a user with very many expired certificates, a
/// deep page) is handed to the sqlx path, which runs it on its worker thread with no bound.
/// A read that fails for any other reason (busy, an I/O error) is dropped with its connection
/// and takes the sqlx path too, which reports the error as every other read does.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    idle: std::sync::Mutex<Option<Vec<Reader>>>,
    /// Reads that failed here and took the sqlx path (closed stores and budgets excepted).
    fallbacks: std::sync::atomic::AtomicU64,
    /// Reads stopped by the budget and handed to the sqlx path.
    handed_off: std::sync::atomic::AtomicU64,
}

/// One reader connection and the progress handler's remaining ticks for its current read.
#[derive(Debug)]
struct Reader {
    conn: rusqlite::Connection,
    ticks: Arc<std::sync::atomic::AtomicU32>,
}

/// The progress handler runs every this many virtual-machine steps...
const STEPS_PER_TICK: i32 = 1_000;
/// ...and stops a read on the calling thread after this many ticks: 100,000 steps, a page of
/// 500 certificates with its count several times over, and tens to a few hundred microseconds.
const READ_BUDGET_TICKS: u32 = 100;

impl Readers {
    fn new(path: PathBuf) -> Readers {
        Readers {
            path,
            idle: std::sync::Mutex::new(Some(Vec::new())),
            fallbacks: Default::default(),
            handed_off: Default::default(),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> Option<T> {
        use std::sync::atomic::Ordering::Relaxed;
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()?
            .pop();
        let reader = match taken.map_or_else(|| self.open(), Ok) {
            Ok(reader) => reader,
            Err(e) => {
                self.fell_back(&e);
                return None;
            }
        };
        reader.ticks.store(READ_BUDGET_TICKS, Relaxed);
        let out = match f(&reader.conn) {
            Ok(out) => out,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
                // Over budget: the connection is fine, the read goes to the worker thread.
                self.handed_off.fetch_add(1, Relaxed);
                self.put_back(reader);
                return None;
            }
            Err(e) => {
                self.fell_back(&e);
                return None;
            }
        };
        self.put_back(reader);
        Some(out)
    }

    fn put_back(&self, reader: Reader) {
        if let Some(idle) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
            && idle.len() < idle_readers()
        {
            idle.push(reader);
        }
    }

    fn fell_back(&self, e: &rusqlite::Error) {
        let before = self
            .fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if before == 0 {
            tracing::warn!(error = %e, "SQLite read on the calling thread failed; it and any like it take the sqlx path");
        } else {
            tracing::debug!(error = %e, "SQLite read on the calling thread failed; taking the sqlx path");
        }
    }

    fn open(&self) -> rusqlite::Result<Reader> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        // A WAL reader waits only while another connection recovers the WAL index; it runs on
        // an async worker thread, so it gives up soon and lets the sqlx path wait instead.
        conn.busy_timeout(Duration::from_millis(20))?;
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(READ_BUDGET_TICKS));
        let left = ticks.clone();
        conn.progress_handler(
            STEPS_PER_TICK,
            Some(move || {
                // True stops the statement (SQLITE_INTERRUPT).
                left.fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |t| t.checked_sub(1),
                )
                .is_err()
            }),
        );
        Ok(Reader { conn, ticks })
    }

    /// Drops every connection; later reads take the sqlx path (which a closed store refuses).
    fn close(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Idle reader connections kept at most: one per thread that may read at once. Computed once:
/// `available_parallelism` reads the cgroup's files on every call.
fn idle_readers() -> usize {
    static IDLE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *IDLE.get_or_init(|| std::thread::available_parallelism().map_or(8, |n| n.get().max(8)))
}

/// Row counts of a SQLite database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCounts {
    pub projects: u64,
    pub database_users: u64,
    pub certificates: u64,
}

/// How many projects, database users and certificates the database file at `path` holds, read
/// without changing it (read-only, no migrations, no lock or WAL files; the file must not be
/// written meanwhile): what `backup` and `restore` report.
pub async fn row_counts(path: &Path) -> StoreResult<RowCounts> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        // Nobody writes the file meanwhile: SQLite takes no locks and creates no -wal/-shm.
        .immutable(true)
        .connect()
        .await
        .map_err(map_err)?;
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM projects) AS projects,
                (SELECT COUNT(*) FROM database_users) AS users,
                (SELECT COUNT(*) FROM certificates) AS certificates",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(map_err)?;
    let count = |col| {
        row.try_get::<i64, _>(col)
            .map(|n| n as u64)
            .map_err(map_err)
    };
    let counts = RowCounts {
        projects: count("projects")?,
        database_users: count("users")?,
        certificates: count("certificates")?,
    };
    conn.close().await.map_err(map_err)?;
    Ok(counts)
}

/// Folds the write-ahead log of the (closed) database at `path` into the database file and
/// empties it, so that the file alone holds every commit. For `restore`, which holds the
/// exclusive serve lock and so knows no store has the file open.
pub async fn checkpoint_file(path: &Path) -> StoreResult<()> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .map_err(map_err)?;
    // One row: (busy, log frames, frames checkpointed). Busy means another connection kept
    // part of the log from being folded in: the file alone would not hold every commit.
    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut conn)
        .await
        .map_err(map_err)?;
    let busy: i64 = row.try_get(0).map_err(map_err)?;
    conn.close().await.map_err(map_err)?;
    if busy != 0 {
        return Err(StoreError::Unavailable(format!(
            "{} is in use: its write-ahead log could not be folded in",
            path.display()
        )));
    }
    Ok(())
}

/// The database file a `sqlite:` URL names; `None` for other schemes and in-memory databases.
pub fn sqlite_file(url: &str) -> StoreResult<Option<PathBuf>> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(format!("bad SQLite URL: {e}")))?;
    Ok(database_file(&options))
}

/// The file behind `options`, or `None` for an in-memory database.
fn database_file(options: &SqliteConnectOptions) -> Option<PathBuf> {
    let name = options.get_filename();
    let text = name.to_string_lossy();
    (!text.is_empty() && text != ":memory:" && !text.starts_with("file:")).then(|| name.to_owned())
}

#[derive(Clone, Copy)]
enum Lock {
    Shared,
    Exclusive,
}

/// Locks `<db>.<what>.lock`, waiting for other holders. The lock lives as long as the file.
async fn lock_file(db: &Path, what: &str, mode: Lock) -> StoreResult<File> {
    let path = lock_path(db, what);
    tokio::task::spawn_blocking(move || {
        let file = open_lock_file(&path)?;
        match mode {
            Lock::Shared => file.lock_shared()?,
            Lock::Exclusive => file.lock()?,
        }
        Ok(file)
    })
    .await
    .map_err(|e| StoreError::Internal(e.to_string()))?
    .map_err(|e: std::io::Error| StoreError::Internal(format!("locking {what} lock file: {e}")))
}

/// Opens (creating if needed, mode 0600, never truncating) a lock file.
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// Creates `path` empty with mode 0600 if it does not exist (an empty file is an empty SQLite
/// database); an existing file is left as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    match File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The lock file `<db>.<what>.lock`.
pub fn lock_path(db: &Path, what: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(format!(".{what}.lock"));
    PathBuf::from(name)
}

/// Takes `<db>.serve.lock` exclusively, without waiting: `None` while any store has the
/// database open (a running server, `backup`, another `restore`).
pub fn try_lock_unused(db: &Path) -> std::io::Result<Option<File>> {
    let file = open_lock_file(&lock_path(db, "serve"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Whether an idle connection may be handed out: only outside a transaction.
///
/// When a COMMIT fails on an I/O error or a full disk, SQLite rolls the transaction back by
/// itself, but sqlx counts the transaction as open (its COMMIT failed) and the ROLLBACK it sends
/// when the transaction is dropped fails too ("no transaction is active"): the connection would
/// stay at depth 1 and refuse every later `BEGIN`, the fault long cleared. Such a connection is
/// closed and the pool opens a new one, which also starts with an empty page cache.
///
/// No round trip of its own: the pool pings a connection when it is released and again before
/// it is handed out (`test_before_acquire`, on by default), and the ping runs on the
/// connection's worker after any ROLLBACK a dropped transaction queued, so by now the depth is
/// settled.
fn outside_a_transaction(conn: &DbConn) -> bool {
    use sqlx::TransactionManager;
    <Db as sqlx::Database>::TransactionManager::get_transaction_depth(conn) == 0
}

/// SQLite's primary result codes that mean the disk failed or is full (`SQLITE_IOERR` with
/// any extended code, `SQLITE_FULL`): the write did not happen and may be retried once the
/// disk is back, so they are `Unavailable` (503), not `Internal` (500).
fn is_disk_fault(code: Option<&str>) -> bool {
    const SQLITE_IOERR: i64 = 10;
    const SQLITE_FULL: i64 = 13;
    code.and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|c| matches!(c & 0xff, SQLITE_IOERR | SQLITE_FULL))
}

/// An error's text, safe to print on a terminal and in a log line: SQLite quotes parts of a
/// damaged database in its messages ("malformed database schema … unrecognized token"), and
/// sqlx passes them on byte for byte, so they may hold invalid UTF-8 and control characters
/// (an escape sequence, a bell) from whoever wrote the file. Invalid UTF-8 becomes U+FFFD and
/// control characters are escaped (`\u{7}`).
fn printable(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    String::from_utf8_lossy(text.as_bytes())
        .chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped
                .into_iter()
                .flatten()
                .chain((!c.is_control()).then_some(c))
        })
        .collect()
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(printable(&e))
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(printable(&e))
        }
        sqlx::Error::Database(db) if is_disk_fault(db.code().as_deref()) => {
            StoreError::Unavailable(printable(&e))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Gone,
        _ => StoreError::Internal(printable(&e)),
    }
}

sql_store!(SqliteStore);

#[cfg(test)]
mod tests {
    use super::*;

    /// A database whose schema holds a control character and invalid UTF-8 (a damaged or
    /// hostile backup): opening it fails, and the error's text is printable.
    #[tokio::test]
    async fn a_damaged_schema_gives_a_printable_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.db");
        {
            let mut conn = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .connect()
                .await
                .unwrap();
            sqlx::query("CREATE TABLE tt(aaaa TEXT, bbbb TEXT)")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        let mut raw = std::fs::read(&path).unwrap();
        let at = raw
            .windows(10)
            .position(|w| w == b"bbbb TEXT)")
            .expect("the schema text is in the file");
        raw[at..at + 10].copy_from_slice(b"b\x83\x07\x1b[31m) ");
        std::fs::write(&path, &raw).unwrap();
        let text = match SqliteStore::open(&path).await {
            Ok(_) => panic!("a malformed schema opened"),
            Err(e) => e.to_string(),
        };
        assert!(text.contains("malformed database schema"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("\\u{7}"), "{text:?}");
    }

    /// The reads that run on the calling thread answer there (not through the sqlx fallback,
    /// which would hide a statement rusqlite cannot run), agree with the sqlx path, and stop
    /// once the store is closed.
    #[tokio::test]
    async fn hot_reads_run_on_the_calling_thread_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hot.db")).await.unwrap();
        let via_sqlx: i64 = store
            .first_value("SELECT n FROM cache_version WHERE id = 1")
            .await
            .unwrap();
        let readers = store.readers.as_ref().expect("a file store has readers");
        let inline = readers.read(|c| {
            c.query_row("SELECT n FROM cache_version WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
        });
        assert_eq!(inline, Some(via_sqlx));
        let page = store
            .unexpired_page_inline("000000000000000000000000", "nobody", 0, 100, 0)
            .expect("the list statement runs on rusqlite");
        assert_eq!(page.len(), 1, "the count row alone");
        assert_eq!(page[0].total, 0);
        assert!(page[0].serial.is_none());
        assert!(matches!(
            store.active_ca_inline("000000000000000000000000"),
            Some(None)
        ));
        assert_eq!(store.token_revoked_inline("no-such-jti"), Some(false));

        // A read over its budget is stopped, counted as handed off (not as a failure), and
        // its connection stays usable.
        let long = readers.read(|c| {
            c.query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000)
                 SELECT COUNT(*) FROM n",
                [],
                |r| r.get::<_, i64>(0),
            )
        });
        assert_eq!(long, None, "stopped by the budget");
        assert_eq!(store.inline_handed_off(), 1);
        assert_eq!(store.inline_fallbacks(), 0);
        assert_eq!(store.cache_version().await.unwrap(), via_sqlx);
        assert_eq!(
            store.inline_handed_off(),
            1,
            "the next read ran on the calling thread"
        );

        Store::close(&store).await;
        assert!(
            store
                .unexpired_page_inline("000000000000000000000000", "nobody", 0, 100, 0)
                .is_none()
        );
        assert!(
            store.cache_version().await.is_err(),
            "a closed store refuses"
        );
    }

    /// Group commits run on the writer thread (counted there, not as fallbacks) with the sqlx
    /// path's outcomes, audit chaining and refusals; a batch the thread cannot take (the thread
    /// gone) takes the sqlx path and is counted; a closed store refuses batches. A store in
    /// memory has no writer thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_run_on_the_writer_thread_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).await.unwrap();
        let event = |n: i64| AuditEvent {
            at_ms: 1_700_000_000_000 + n,
            actor: "operator".into(),
            source_ip: None,
            action: format!("test.{n}"),
            project_id: None,
            target: None,
            status: Some(200),
            details: "{}".into(),
        };
        let nonce = |nc: u32| BatchWrite::DigestNonceCount {
            nonce: "n0".into(),
            nc,
            expires: 2_000_000_000,
            now: 1_700_000_000,
        };
        let cert = CertificateRecord {
            serial: 7,
            project_id: "000000000000000000000000".into(),
            username: "nobody".into(),
            subject: "CN=nobody".into(),
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
            created_ms: 1_700_000_000_000,
            cert_der: vec![0x30, 0x00],
            ca_id: 1,
            revocation: None,
        };
        let outcomes = store
            .commit_batch(&[
                BatchWrite::Audit(event(1)),
                nonce(2),
                nonce(1),
                BatchWrite::Certificate(cert.clone(), event(2)),
                BatchWrite::Audit(event(3)),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                Recorded::Yes,
                Recorded::Yes,
                Recorded::CountNotHigher,
                Recorded::ProjectGone,
                Recorded::Yes
            ]
        );
        assert_eq!((store.writer_batches(), store.writer_fallbacks()), (1, 0));
        let outcomes = store.commit_batch(&[nonce(2)]).await.unwrap();
        assert_eq!(outcomes, [Recorded::CountNotHigher], "a count not higher");
        assert_eq!((store.writer_batches(), store.writer_fallbacks()), (2, 0));

        // The thread gone, the store still open: the sqlx path takes the batch, counted.
        store.writer.as_ref().unwrap().lose_thread();
        let outcomes = store
            .commit_batch(&[nonce(3), BatchWrite::Audit(event(4))])
            .await
            .unwrap();
        assert_eq!(outcomes, [Recorded::Yes, Recorded::Yes]);
        assert_eq!((store.writer_batches(), store.writer_fallbacks()), (2, 1));
        // One chain through both paths, heads saved by each.
        let log = store
            .list_audit(&AuditFilter::default(), 0, 100)
            .await
            .unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.event.action.as_str()).collect();
        assert_eq!(actions, ["test.1", "test.3", "test.4"]);
        for (i, entry) in log.iter().enumerate() {
            assert_eq!(entry.chain_seq, i as i64 + 1);
            let prev = if i == 0 {
                AuditEntry::genesis("")
            } else {
                log[i - 1].hash.clone()
            };
            assert_eq!(entry.prev_hash, prev);
        }
        let heads = store.audit_chain_heads().await.unwrap();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].chain_seq, 3);

        Store::close(&store).await;
        assert!(
            store.commit_batch(&[nonce(4)]).await.is_err(),
            "a closed store refuses"
        );
        assert_eq!(
            store.writer_fallbacks(),
            1,
            "a closed store's batch is no fallback"
        );

        let memory = SqliteStore::open_url("sqlite::memory:").await.unwrap();
        assert_eq!(
            memory.commit_batch(&[nonce(1)]).await.unwrap(),
            [Recorded::Yes]
        );
        assert_eq!((memory.writer_batches(), memory.writer_fallbacks()), (0, 0));
        Store::close(&memory).await;
    }

    /// A batch that fails on the writer thread is rolled back whole (its audit entry is not
    /// stored), answers the error the sqlx path would, and the writer goes on with the next
    /// batch on the same thread (no fallback).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_on_the_writer_is_rolled_back_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).await.unwrap();
        // Someone else's trigger refuses one nonce (a failure neither path can foresee).
        let side = rusqlite::Connection::open(&path).unwrap();
        side.execute_batch(
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON digest_nonce_counts
             WHEN NEW.nonce = 'bad' BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END",
        )
        .unwrap();
        let event = AuditEvent {
            at_ms: 1_700_000_000_000,
            actor: "operator".into(),
            source_ip: None,
            action: "test.rolled-back".into(),
            project_id: None,
            target: None,
            status: None,
            details: "{}".into(),
        };
        let nonce = |name: &str| BatchWrite::DigestNonceCount {
            nonce: name.into(),
            nc: 1,
            expires: 2_000_000_000,
            now: 1_700_000_000,
        };
        let failed = store
            .commit_batch(&[BatchWrite::Audit(event.clone()), nonce("bad")])
            .await;
        let via_writer = match failed {
            Err(StoreError::Internal(text)) => text,
            other => panic!("{other:?}"),
        };
        assert!(via_writer.contains("refused by a trigger"), "{via_writer}");
        assert!(
            store
                .list_audit(&AuditFilter::default(), 0, 10)
                .await
                .unwrap()
                .is_empty(),
            "the batch's audit entry was rolled back with it"
        );
        assert_eq!((store.writer_batches(), store.writer_fallbacks()), (1, 0));

        let outcomes = store
            .commit_batch(&[BatchWrite::Audit(event.clone()), nonce("good")])
            .await
            .unwrap();
        assert_eq!(outcomes, [Recorded::Yes, Recorded::Yes]);
        assert_eq!((store.writer_batches(), store.writer_fallbacks()), (2, 0));
        assert_eq!(
            store
                .list_audit(&AuditFilter::default(), 0, 10)
                .await
                .unwrap()
                .len(),
            1
        );

        // The sqlx path classifies the same failure the same way.
        let store = store.without_thread_side_writes();
        match store.commit_batch(&[nonce("bad")]).await {
            Err(StoreError::Internal(text)) => assert!(text.contains("refused by a trigger")),
            other => panic!("{other:?}"),
        }
        drop(side);
        Store::close(&store).await;
    }

    #[test]
    fn disk_faults_are_the_io_error_and_full_codes() {
        // 1034 IOERR_FSYNC, 778 IOERR_WRITE, 266 IOERR_READ, 4874 IOERR_SHMSIZE, 10 IOERR,
        // 13 FULL: what test_io_faults.py sees for EIO and ENOSPC, and their kin.
        for code in ["1034", "778", "266", "4874", "10", "13"] {
            assert!(is_disk_fault(Some(code)), "{code}");
        }
        // BUSY (a lock), CONSTRAINT and its UNIQUE, CORRUPT, no code at all: not disk faults.
        for code in [
            Some("5"),
            Some("19"),
            Some("2067"),
            Some("11"),
            Some("x"),
            None,
        ] {
            assert!(!is_disk_fault(code), "{code:?}");
        }
    }
}
