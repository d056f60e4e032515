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

/// The next audit `seq`: one past the last, gap-free (the transaction holds the only write
/// lock).
const NEXT_AUDIT_SEQ: &str = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log)";

/// A [`Store`] on one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The shared lock on `<db>.serve.lock`, released when the last clone is dropped.
    _in_use: Option<Arc<File>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs pending migrations.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect(options).await
    }

    /// Opens a `sqlite:` URL (for example `sqlite:///var/lib/dbcerts/dbcerts.db`).
    pub async fn open_url(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> StoreResult<SqliteStore> {
        let path = database_file(&options);
        if let Some(p) = &path {
            create_private(p)
                .map_err(|e| StoreError::Internal(format!("creating {}: {e}", p.display())))?;
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
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
        // migrated: every migration is additive (see docs/ARCHITECTURE.md).
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {}", printable(&e))))?;
        drop(migrating);
        Ok(SqliteStore {
            pool,
            _in_use: in_use,
        })
    }

    /// The cache version: a counter that every committed change of a table a node may cache
    /// (principals, projects, database users, user security) has raised, in its own
    /// transaction, whatever process made it (migration 0011; but a service-account secret's
    /// `last_used`, migration 0014). A node's read cache serves a row
    /// only while this still holds the value read before the row was.
    pub async fn cache_version(&self) -> StoreResult<i64> {
        self.first_value("SELECT n FROM cache_version WHERE id = 1")
            .await
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
