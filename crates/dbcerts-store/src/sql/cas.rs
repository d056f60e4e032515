//! Each project's certificate authorities: the active one (created once however many nodes
//! race), every generation, rotation to a new generation and retirement of an old one (both
//! audited in their transaction), and the expiries of those not retired.

use crate::CaRecord;

/// A `project_cas` row: the certificate is `cert`, and `active` is 0 or 1.
#[derive(sqlx::FromRow)]
pub(crate) struct CaRow {
    pub(crate) id: i64,
    pub(crate) project_id: String,
    pub(crate) algorithm: String,
    pub(crate) cert: Vec<u8>,
    pub(crate) sealed_key: Vec<u8>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) generation: i64,
    pub(crate) active: i32,
    pub(crate) retired_at: Option<i64>,
}

/// A project's active CA (at most one: a partial unique index).
pub(crate) const ACTIVE_CA: &str = "SELECT * FROM project_cas WHERE project_id = $1 AND active = 1";

impl From<CaRow> for CaRecord {
    fn from(row: CaRow) -> Self {
        CaRecord {
            id: row.id,
            project_id: row.project_id,
            algorithm: row.algorithm,
            cert_der: row.cert,
            sealed_key: row.sealed_key,
            not_before: row.not_before,
            not_after: row.not_after,
            generation: row.generation,
            active: row.active == 1,
            retired_at: row.retired_at,
        }
    }
}

macro_rules! sql_cas {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::cas::{ACTIVE_CA, CaRow};

        const INSERT_CA: &str =
            "INSERT INTO project_cas (project_id, algorithm, cert, sealed_key, not_before, not_after, active, generation)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7)";
        // No conflict target: a racing node's row conflicts on "one active CA per
        // project" and on "one row per (project, generation)" (0009), and PostgreSQL
        // raises on a conflict with any unique index but a named arbiter.
        const INSERT_CA_IF_ABSENT: &str =
            "INSERT INTO project_cas (project_id, algorithm, cert, sealed_key, not_before, not_after, active, generation)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7)
             ON CONFLICT DO NOTHING";

        /// Inserts `ca` as its project's active CA with `insert` (one of the two above).
        async fn insert_active_ca_in(conn: &mut DbConn, insert: &str, ca: &CaRecord) -> StoreResult<()> {
            sqlx::query(insert)
                .bind(&ca.project_id)
                .bind(&ca.algorithm)
                .bind(&ca.cert_der)
                .bind(&ca.sealed_key)
                .bind(ca.not_before)
                .bind(ca.not_after)
                .bind(ca.generation)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            Ok(())
        }

        /// The project's active CA, inside the caller's connection or transaction.
        async fn active_ca_in(conn: &mut DbConn, project_id: &str) -> StoreResult<Option<CaRecord>> {
            let row = sqlx::query_as::<_, CaRow>(ACTIVE_CA)
                .bind(project_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
            Ok(row.map(CaRecord::from))
        }

        sql_impl!($store [$($methods)*
            async fn get_active_ca(&self, project_id: &str) -> StoreResult<Option<CaRecord>> {
                // Every issuance reads it: on SQLite, on the calling thread.
                if let Some(ca) = self.active_ca_inline(project_id) {
                    return Ok(ca.map(CaRecord::from));
                }
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                active_ca_in(&mut conn, project_id).await
            }

            async fn insert_ca_if_absent(&self, ca: &CaRecord) -> StoreResult<CaRecord> {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                insert_active_ca_in(&mut conn, INSERT_CA_IF_ABSENT, ca).await?;
                active_ca_in(&mut conn, &ca.project_id)
                    .await?
                    .ok_or_else(|| StoreError::Internal("active CA vanished after insert".into()))
            }

            async fn list_project_cas(&self, project_id: &str) -> StoreResult<Vec<CaRecord>> {
                let rows = sqlx::query_as::<_, CaRow>("SELECT * FROM project_cas WHERE project_id = $1 ORDER BY id")
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(rows.into_iter().map(CaRecord::from).collect())
            }

            async fn rotate_ca(
                &self,
                ca: &CaRecord,
                replaces: i64,
                audit: &AuditEvent,
            ) -> StoreResult<Option<CaRecord>> {
                let mut tx = self
                    .write_tx(&[WriteLock::Chain(&ca.project_id), WriteLock::Chain(AuditEntry::chain_of(audit))])
                    .await?;
                let Some(current) = active_ca_in(&mut tx, &ca.project_id).await? else {
                    return Ok(None);
                };
                if current.id != replaces {
                    return Ok(None);
                }
                if ca.generation != current.generation + 1 {
                    return Err(StoreError::Internal(format!(
                        "rotation to generation {} from generation {}",
                        ca.generation, current.generation
                    )));
                }
                sqlx::query("UPDATE project_cas SET active = 0 WHERE id = $1")
                    .bind(current.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                insert_active_ca_in(&mut tx, INSERT_CA, ca).await?;
                let row = sqlx::query_as::<_, CaRow>(ACTIVE_CA)
                    .bind(&ca.project_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let stored = CaRecord::from(row);
                let mut heads = AuditHeads::default();
                append_audit_in(&mut tx, &mut heads, audit).await?;
                save_audit_heads(&mut tx, &heads).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(Some(stored))
            }

            async fn retire_ca(
                &self,
                project_id: &str,
                generation: i64,
                now: i64,
                audit: &AuditEvent,
            ) -> StoreResult<RetireOutcome> {
                let mut tx = self
                    .write_tx(&[WriteLock::Chain(project_id), WriteLock::Chain(AuditEntry::chain_of(audit))])
                    .await?;
                let select = "SELECT * FROM project_cas WHERE project_id = $1 AND generation = $2";
                let row = sqlx::query_as::<_, CaRow>(select)
                    .bind(project_id)
                    .bind(generation)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some(ca) = row.map(CaRecord::from) else {
                    return Ok(RetireOutcome::NotFound);
                };
                if ca.active {
                    return Ok(RetireOutcome::Active);
                }
                if ca.retired_at.is_some() {
                    return Ok(RetireOutcome::Retired { ca, now: false });
                }
                sqlx::query("UPDATE project_cas SET retired_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(ca.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let mut heads = AuditHeads::default();
                append_audit_in(&mut tx, &mut heads, audit).await?;
                save_audit_heads(&mut tx, &heads).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(RetireOutcome::Retired {
                    ca: CaRecord {
                        retired_at: Some(now),
                        ..ca
                    },
                    now: true,
                })
            }

            async fn unretired_ca_expiries(&self) -> StoreResult<Vec<CaExpiry>> {
                sqlx::query_as(
                    "SELECT project_id, generation, not_after FROM project_cas
                     WHERE retired_at IS NULL ORDER BY project_id, generation",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
        ] $($rest)*);
    };
}
