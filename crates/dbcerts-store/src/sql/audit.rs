//! The audit log: appending entries chained by hash to the log's head (always under the
//! store-wide write lock, so that no other writer appends meanwhile) and listing them.

use crate::{AuditEntry, AuditEvent};

/// An `audit_log` row: the event's columns beside the entry's own.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    at_ms: i64,
    actor: String,
    source_ip: Option<String>,
    action: String,
    project_id: Option<String>,
    target: Option<String>,
    status: Option<i64>,
    details: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            seq: row.seq,
            event: AuditEvent {
                at_ms: row.at_ms,
                actor: row.actor,
                source_ip: row.source_ip,
                action: row.action,
                project_id: row.project_id,
                target: row.target,
                status: row.status.map(|s| s as u16),
                details: row.details,
            },
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

macro_rules! sql_audit {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::audit::AuditRow;

        /// The last audit entry's `seq` and hash (0 and the genesis hash in an empty log). The
        /// caller's transaction must hold the write lock (`BEGIN IMMEDIATE`), so that no other
        /// writer can append meanwhile.
        async fn audit_head(conn: &mut DbConn) -> StoreResult<(i64, Vec<u8>)> {
            let last = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
            Ok(last.unwrap_or_else(|| (0, AuditEntry::GENESIS.to_vec())))
        }

        /// Appends `event` after the entry `(seq, hash)` that `head` names, and moves `head` to
        /// the new entry. The caller's transaction must hold the write lock.
        async fn append_audit_after(
            conn: &mut DbConn,
            head: &mut (i64, Vec<u8>),
            event: &AuditEvent,
        ) -> StoreResult<AuditEntry> {
            let seq = head.0 + 1;
            let prev_hash = std::mem::take(&mut head.1);
            let hash = AuditEntry::chain_hash(&prev_hash, seq, event);
            sqlx::query(
                "INSERT INTO audit_log (seq, at_ms, actor, source_ip, action, project_id, target, status, details, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(seq)
            .bind(event.at_ms)
            .bind(&event.actor)
            .bind(&event.source_ip)
            .bind(&event.action)
            .bind(&event.project_id)
            .bind(&event.target)
            .bind(event.status.map(i64::from))
            .bind(&event.details)
            .bind(&prev_hash)
            .bind(&hash)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            *head = (seq, hash.clone());
            Ok(AuditEntry {
                seq,
                event: event.clone(),
                prev_hash,
                hash,
            })
        }

        /// Appends `event` after the last entry. The caller's transaction must hold the write lock.
        async fn append_audit_in(
            conn: &mut DbConn,
            event: &AuditEvent,
        ) -> StoreResult<AuditEntry> {
            let mut head = audit_head(&mut *conn).await?;
            append_audit_after(conn, &mut head, event).await
        }

        sql_impl!($store [$($methods)*
            async fn append_audit(&self, event: &AuditEvent) -> StoreResult<AuditEntry> {
                let mut tx = self.write_tx().await?;
                let entry = append_audit_in(&mut tx, event).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(entry)
            }

            async fn list_audit(
                &self,
                filter: &AuditFilter,
                after_seq: i64,
                limit: u32,
            ) -> StoreResult<Vec<AuditEntry>> {
                let rows = sqlx::query_as::<_, AuditRow>(
                    "SELECT * FROM audit_log
                     WHERE seq > $1
                       AND ($2 IS NULL OR project_id = $3)
                       AND ($4 IS NULL OR actor = $5)
                       AND ($6 IS NULL OR at_ms >= $7)
                       AND ($8 IS NULL OR at_ms < $9)
                     ORDER BY seq LIMIT $10",
                )
                .bind(after_seq)
                .bind(&filter.project_id)
                .bind(&filter.project_id)
                .bind(&filter.actor)
                .bind(&filter.actor)
                .bind(filter.since_ms)
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(filter.until_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(AuditEntry::from).collect())
            }
        ] $($rest)*);
    };
}
