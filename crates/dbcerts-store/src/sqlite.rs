//! The SQLite adapter: one database file, WAL journal, `synchronous=FULL` so that a committed
//! certificate survives a crash or power loss before its private key leaves the server.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use crate::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A [`Store`] on one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
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
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        Ok(SqliteStore { pool })
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `PRAGMA integrity_check` and returns its first line (`ok` when healthy).
    pub async fn integrity_check(&self) -> StoreResult<String> {
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        row.try_get::<String, _>(0).map_err(map_err)
    }
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Maps a unique-constraint violation to `Conflict(what)`, anything else through `map_err`.
fn map_conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => map_err(e),
    }
}

fn roles_to_json(roles: &[String]) -> String {
    serde_json::to_string(roles).expect("a list of strings serializes")
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> StoreResult<T> {
    row.try_get(col).map_err(map_err)
}

fn api_key_from_row(row: &SqliteRow) -> StoreResult<ApiKeyRecord> {
    let roles: String = get(row, "org_roles")?;
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        org_id: get(row, "org_id")?,
        public_key: get(row, "public_key")?,
        sealed_private_key: get(row, "sealed_private_key")?,
        description: get(row, "description")?,
        org_roles: serde_json::from_str(&roles)
            .map_err(|e| StoreError::Internal(format!("api_keys.org_roles: {e}")))?,
        created: get(row, "created")?,
    })
}

fn project_from_row(row: &SqliteRow) -> StoreResult<Project> {
    Ok(Project {
        id: get(row, "id")?,
        org_id: get(row, "org_id")?,
        name: get(row, "name")?,
        created: get(row, "created")?,
        with_default_alerts_settings: get(row, "with_default_alerts_settings")?,
        tags_json: get(row, "tags")?,
    })
}

fn ca_from_row(row: &SqliteRow) -> StoreResult<CaRecord> {
    Ok(CaRecord {
        project_id: get(row, "project_id")?,
        algorithm: get(row, "algorithm")?,
        cert_der: get(row, "cert")?,
        sealed_key: get(row, "sealed_key")?,
        not_before: get(row, "not_before")?,
        not_after: get(row, "not_after")?,
    })
}

fn user_from_row(row: &SqliteRow) -> StoreResult<DatabaseUserRecord> {
    Ok(DatabaseUserRecord {
        project_id: get(row, "project_id")?,
        database_name: get(row, "database_name")?,
        username: get(row, "username")?,
        x509_type: get(row, "x509_type")?,
        created: get(row, "created")?,
        doc: get(row, "doc")?,
    })
}

fn limit(page: Page) -> (i64, i64) {
    (
        i64::from(page.limit),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn is_empty(&self) -> StoreResult<bool> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM organizations) AS any_org")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(!get::<bool>(&row, "any_org")?)
    }

    async fn create_org_with_key(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO organizations (id, name, created) VALUES (?, ?, ?)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(org.created)
            .execute(&mut *tx)
            .await
            .map_err(map_conflict("organization id"))?;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, public_key, sealed_private_key, description, org_roles, created)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.org_id)
        .bind(&key.public_key)
        .bind(&key.sealed_private_key)
        .bind(&key.description)
        .bind(roles_to_json(&key.org_roles))
        .bind(key.created)
        .execute(&mut *tx)
        .await
        .map_err(map_conflict("api key"))?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_org(&self, id: &str) -> StoreResult<Option<Org>> {
        let row = sqlx::query("SELECT id, name, created FROM organizations WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| {
            Ok(Org {
                id: get(&r, "id")?,
                name: get(&r, "name")?,
                created: get(&r, "created")?,
            })
        })
        .transpose()
    }

    async fn get_api_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE public_key = ?")
            .bind(public_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn get_or_insert_secret(&self, name: &str, sealed: &[u8]) -> StoreResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO server_secrets (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        let row = sqlx::query("SELECT sealed FROM server_secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        get(&row, "sealed")
    }

    async fn create_project(&self, p: &Project) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO projects (id, org_id, name, created, with_default_alerts_settings, tags)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(&p.org_id)
        .bind(&p.name)
        .bind(p.created)
        .bind(p.with_default_alerts_settings)
        .bind(&p.tags_json)
        .execute(&self.pool)
        .await
        .map_err(map_conflict("project name"))?;
        Ok(())
    }

    async fn get_project(&self, id: &str) -> StoreResult<Option<Project>> {
        let row = sqlx::query("SELECT * FROM projects WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(project_from_row).transpose()
    }

    async fn list_projects(
        &self,
        org_ids: &[String],
        page: Page,
    ) -> StoreResult<(Vec<Project>, u64)> {
        if org_ids.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let placeholders = vec!["?"; org_ids.len()].join(", ");
        let count_sql =
            format!("SELECT COUNT(*) AS n FROM projects WHERE org_id IN ({placeholders})");
        let list_sql = format!(
            "SELECT * FROM projects WHERE org_id IN ({placeholders}) ORDER BY created, id LIMIT ? OFFSET ?"
        );
        let mut count = sqlx::query(&count_sql);
        let mut list = sqlx::query(&list_sql);
        for id in org_ids {
            count = count.bind(id);
            list = list.bind(id);
        }
        let (lim, off) = limit(page);
        let total: i64 = get(&count.fetch_one(&self.pool).await.map_err(map_err)?, "n")?;
        let rows = list
            .bind(lim)
            .bind(off)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let projects = rows
            .iter()
            .map(project_from_row)
            .collect::<StoreResult<_>>()?;
        Ok((projects, total as u64))
    }

    async fn delete_project(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM projects WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_active_ca(&self, project_id: &str) -> StoreResult<Option<CaRecord>> {
        let row = sqlx::query("SELECT * FROM project_cas WHERE project_id = ? AND active = 1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(ca_from_row).transpose()
    }

    async fn insert_ca_if_absent(&self, ca: &CaRecord) -> StoreResult<CaRecord> {
        sqlx::query(
            "INSERT INTO project_cas (project_id, algorithm, cert, sealed_key, not_before, not_after, active)
             VALUES (?, ?, ?, ?, ?, ?, 1)
             ON CONFLICT (project_id) WHERE active = 1 DO NOTHING",
        )
        .bind(&ca.project_id)
        .bind(&ca.algorithm)
        .bind(&ca.cert_der)
        .bind(&ca.sealed_key)
        .bind(ca.not_before)
        .bind(ca.not_after)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        self.get_active_ca(&ca.project_id)
            .await?
            .ok_or_else(|| StoreError::Internal("active CA vanished after insert".into()))
    }

    async fn create_database_user(&self, u: &DatabaseUserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO database_users (project_id, database_name, username, x509_type, created, doc)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.project_id)
        .bind(&u.database_name)
        .bind(&u.username)
        .bind(&u.x509_type)
        .bind(u.created)
        .bind(&u.doc)
        .execute(&self.pool)
        .await
        .map_err(map_conflict("database user"))?;
        Ok(())
    }

    async fn create_database_user_within_limit(
        &self,
        u: &DatabaseUserRecord,
        max_per_project: u64,
    ) -> StoreResult<()> {
        // BEGIN IMMEDIATE takes the write lock before the count, so the count cannot go stale.
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        let result = async {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM database_users WHERE project_id = ?")
                .bind(&u.project_id)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
            if get::<i64>(&row, "n")? as u64 >= max_per_project {
                return Err(StoreError::LimitReached);
            }
            sqlx::query(
                "INSERT INTO database_users (project_id, database_name, username, x509_type, created, doc)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&u.project_id)
            .bind(&u.database_name)
            .bind(&u.username)
            .bind(&u.x509_type)
            .bind(u.created)
            .bind(&u.doc)
            .execute(&mut *conn)
            .await
            .map_err(map_conflict("database user"))?;
            Ok(())
        }
        .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::query(end)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        result
    }

    async fn get_database_user(
        &self,
        project_id: &str,
        database_name: &str,
        username: &str,
    ) -> StoreResult<Option<DatabaseUserRecord>> {
        let row = sqlx::query(
            "SELECT * FROM database_users WHERE project_id = ? AND database_name = ? AND username = ?",
        )
        .bind(project_id)
        .bind(database_name)
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_database_users(
        &self,
        project_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<DatabaseUserRecord>, u64)> {
        let total = self.count_database_users(project_id).await?;
        let (lim, off) = limit(page);
        let rows = sqlx::query(
            "SELECT * FROM database_users WHERE project_id = ?
             ORDER BY created, database_name, username LIMIT ? OFFSET ?",
        )
        .bind(project_id)
        .bind(lim)
        .bind(off)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let users = rows.iter().map(user_from_row).collect::<StoreResult<_>>()?;
        Ok((users, total))
    }

    async fn count_database_users(&self, project_id: &str) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM database_users WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(get::<i64>(&row, "n")? as u64)
    }

    async fn update_database_user(&self, u: &DatabaseUserRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE database_users SET x509_type = ?, doc = ?
             WHERE project_id = ? AND database_name = ? AND username = ?",
        )
        .bind(&u.x509_type)
        .bind(&u.doc)
        .bind(&u.project_id)
        .bind(&u.database_name)
        .bind(&u.username)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_database_user(
        &self,
        project_id: &str,
        database_name: &str,
        username: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM database_users WHERE project_id = ? AND database_name = ? AND username = ?",
        )
        .bind(project_id)
        .bind(database_name)
        .bind(username)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_certificate(&self, c: &CertificateRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.serial)
        .bind(&c.project_id)
        .bind(&c.username)
        .bind(&c.subject)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.created_ms)
        .bind(&c.cert_der)
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() || db.message().contains("PRIMARY KEY") => {
                StoreError::Conflict("certificate serial")
            }
            _ => map_err(e),
        })?;
        Ok(())
    }

    async fn list_unexpired_certificates(
        &self,
        project_id: &str,
        username: &str,
        now: i64,
        page: Page,
    ) -> StoreResult<(Vec<CertificateSummary>, u64)> {
        let count = sqlx::query(
            "SELECT COUNT(*) AS n FROM certificates WHERE project_id = ? AND username = ? AND not_after > ?",
        )
        .bind(project_id)
        .bind(username)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let (lim, off) = limit(page);
        let rows = sqlx::query(
            "SELECT serial, subject, not_before, not_after FROM certificates
             WHERE project_id = ? AND username = ? AND not_after > ?
             ORDER BY not_before, created_ms, serial LIMIT ? OFFSET ?",
        )
        .bind(project_id)
        .bind(username)
        .bind(now)
        .bind(lim)
        .bind(off)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let certs = rows
            .iter()
            .map(|r| {
                Ok(CertificateSummary {
                    serial: get(r, "serial")?,
                    subject: get(r, "subject")?,
                    not_before: get(r, "not_before")?,
                    not_after: get(r, "not_after")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok((certs, get::<i64>(&count, "n")? as u64))
    }

    async fn get_user_security(&self, project_id: &str) -> StoreResult<UserSecurityRecord> {
        let row = sqlx::query("SELECT customer_cas, ldap FROM user_security WHERE project_id = ?")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        match row {
            None => Ok(UserSecurityRecord::default()),
            Some(r) => Ok(UserSecurityRecord {
                customer_cas: get(&r, "customer_cas")?,
                ldap_json: get(&r, "ldap")?,
            }),
        }
    }

    async fn put_user_security(
        &self,
        project_id: &str,
        rec: &UserSecurityRecord,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_security (project_id, customer_cas, ldap) VALUES (?, ?, ?)
             ON CONFLICT (project_id) DO UPDATE SET customer_cas = excluded.customer_cas, ldap = excluded.ldap",
        )
        .bind(project_id)
        .bind(&rec.customer_cas)
        .bind(&rec.ldap_json)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
