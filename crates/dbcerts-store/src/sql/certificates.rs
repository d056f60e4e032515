//! Issued certificates: the batched, audited write of issuance (with Digest nonce counts, the
//! journal's group commit), the per-user lists and counts, one certificate by serial, the last
//! expiry a CA signed, and the per-project counts of certificates about to expire.

use std::collections::BTreeMap;

use crate::sql::revocation::revocation_from;
use crate::{BatchWrite, CertificateRecord, StoreError};

/// A batch's Digest nonce-count writes, by nonce in ascending order, each nonce's in batch
/// order: `(index in the batch, nc, expires)`.
pub(crate) fn nonce_writes(batch: &[BatchWrite]) -> BTreeMap<&str, Vec<(usize, u32, i64)>> {
    let mut by_nonce: BTreeMap<&str, Vec<(usize, u32, i64)>> = BTreeMap::new();
    for (i, write) in batch.iter().enumerate() {
        if let BatchWrite::DigestNonceCount {
            nonce, nc, expires, ..
        } = write
        {
            by_nonce.entry(nonce).or_default().push((i, *nc, *expires));
        }
    }
    by_nonce
}

/// A `certificates` row: the certificate is `cert`, the issuing CA nullable, the revocation
/// two nullable columns.
#[derive(sqlx::FromRow)]
pub(crate) struct CertificateRow {
    serial: i64,
    project_id: String,
    username: String,
    subject: String,
    not_before: i64,
    not_after: i64,
    created_ms: i64,
    cert: Vec<u8>,
    ca_id: Option<i64>,
    revoked_at: Option<i64>,
    revocation_reason: Option<i64>,
}

/// A user's unexpired, unrevoked certificates: the count (issued minus expired, migration 0005,
/// minus revoked unexpired, 0007: its scans touch expired and revoked entries only) as a one-row
/// derived table left-joined to the page, so that an empty page still returns the count.
/// Parameters: project, username, now, limit, offset (rusqlite binds `$N` by order of first
/// appearance: keep them first appearing in numeric order). `+not_after`: a range on not_after must
/// not lure the planner to the expiry index (which would sort all the user's certificates for
/// every page); the page comes in the order of certificates_by_user_page, which holds not_after
/// too.
pub(crate) const UNEXPIRED_PAGE: &str = "SELECT n.total, p.serial, p.subject, p.not_before, p.not_after
 FROM (SELECT COALESCE((SELECT issued FROM certificate_counts WHERE project_id = $1 AND username = $2), 0)
            - (SELECT COUNT(*) FROM certificates WHERE project_id = $1 AND username = $2 AND not_after <= $3)
            - (SELECT COUNT(*) FROM certificates WHERE project_id = $1 AND username = $2 AND not_after > $3
                                                 AND revoked_at IS NOT NULL) AS total) AS n
 LEFT JOIN (SELECT serial, subject, not_before, not_after, created_ms FROM certificates
            WHERE project_id = $1 AND username = $2 AND +not_after > $3 AND revoked_at IS NULL
            ORDER BY not_before, created_ms, serial LIMIT $4 OFFSET $5) AS p ON 1 = 1
 ORDER BY p.not_before, p.created_ms, p.serial";

/// A row of the certificate list's one statement: the count, and one certificate of the page
/// (all NULL when the page is empty).
#[derive(sqlx::FromRow)]
pub(crate) struct PageRow {
    pub(crate) total: i64,
    pub(crate) serial: Option<i64>,
    pub(crate) subject: Option<String>,
    pub(crate) not_before: Option<i64>,
    pub(crate) not_after: Option<i64>,
}

impl PageRow {
    pub(crate) fn summary(self) -> Option<crate::CertificateSummary> {
        Some(crate::CertificateSummary {
            serial: self.serial?,
            subject: self.subject?,
            not_before: self.not_before?,
            not_after: self.not_after?,
        })
    }
}

impl TryFrom<CertificateRow> for CertificateRecord {
    type Error = StoreError;

    fn try_from(row: CertificateRow) -> Result<Self, StoreError> {
        let serial = row.serial;
        Ok(CertificateRecord {
            serial,
            project_id: row.project_id,
            username: row.username,
            subject: row.subject,
            not_before: row.not_before,
            not_after: row.not_after,
            created_ms: row.created_ms,
            cert_der: row.cert,
            // NULL only for a certificate of a project that had no CA when it was stored,
            // which issuance never does.
            ca_id: row.ca_id.ok_or_else(|| {
                StoreError::Internal(format!("certificate {serial} has no issuing CA"))
            })?,
            revocation: revocation_from(row.revoked_at, row.revocation_reason)?,
        })
    }
}

macro_rules! sql_certificates {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::certificates::{CertificateRow, PageRow, UNEXPIRED_PAGE, nonce_writes};

        /// Inserts one certificate of a batch unless its serial is taken, its project gone, or
        /// its project has no `MANAGED` X.509 user of its name; appends its audit entry when it
        /// was inserted. The caller holds the project's lock.
        async fn insert_certificate_in(
            conn: &mut DbConn,
            heads: &mut AuditHeads,
            c: &CertificateRecord,
            audit: &AuditEvent,
        ) -> StoreResult<Recorded> {
            // Neither a taken serial (ON CONFLICT) nor a project or user deleted meanwhile
            // (EXISTS) is an error here: either would abort the transaction that the rest of
            // the batch shares. Each skips only its certificate. The user is checked here, not
            // only by the server before it signs: the server may have read it from its read
            // cache, which another node's deletion reaches a moment later; the deletion takes
            // the project's lock, as this transaction does, so one of them sees the other.
            // `$external` and `admin` are where the server looks for a certificate's user.
            let done = sqlx::query(
                "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert,
                                           ca_id, revoked_at, revocation_reason)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
                 WHERE EXISTS (SELECT 1 FROM projects WHERE id = $2)
                   AND EXISTS (SELECT 1 FROM database_users
                               WHERE project_id = $2 AND database_name IN ('$external', 'admin')
                                 AND username = $3 AND x509_type = 'MANAGED')
                 ON CONFLICT (serial) DO NOTHING",
            )
            .bind(c.serial)
            .bind(&c.project_id)
            .bind(&c.username)
            .bind(&c.subject)
            .bind(c.not_before)
            .bind(c.not_after)
            .bind(c.created_ms)
            .bind(&c.cert_der)
            .bind(c.ca_id)
            .bind(c.revocation.map(|r| r.at))
            .bind(c.revocation.map(|r| i64::from(r.reason.code())))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            if done.rows_affected() == 1 {
                append_audit_in(&mut *conn, heads, audit).await?;
                return Ok(Recorded::Yes);
            }
            // Why not: the project first, then the user, else the serial.
            let (project, users, managed): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM projects WHERE id = $1),
                        (SELECT COUNT(*) FROM database_users
                         WHERE project_id = $1 AND database_name IN ('$external', 'admin') AND username = $2),
                        (SELECT COUNT(*) FROM database_users
                         WHERE project_id = $1 AND database_name IN ('$external', 'admin') AND username = $2
                           AND x509_type = 'MANAGED')",
            )
            .bind(&c.project_id)
            .bind(&c.username)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok(if project == 0 {
                Recorded::ProjectGone
            } else if users == 0 {
                Recorded::UserGone
            } else if managed == 0 {
                Recorded::UserNotManaged
            } else {
                Recorded::SerialTaken
            })
        }

        /// Records that a Digest nonce was used with count `nc`, unless a count as high is
        /// recorded already.
        async fn record_nonce_count_in(
            conn: &mut DbConn,
            nonce: &str,
            nc: u32,
            expires: i64,
        ) -> StoreResult<Recorded> {
            // Inserted, or raised; a count not higher changes no row.
            let done = sqlx::query(
                "INSERT INTO digest_nonce_counts (nonce, nc, expires) VALUES ($1, $2, $3)
                 ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc
                 WHERE digest_nonce_counts.nc < excluded.nc",
            )
            .bind(nonce)
            .bind(i64::from(nc))
            .bind(expires)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok(if done.rows_affected() == 1 {
                Recorded::Yes
            } else {
                Recorded::CountNotHigher
            })
        }

        sql_impl!($store [$($methods)*
            async fn commit_batch(&self, batch: &[BatchWrite]) -> StoreResult<Vec<Recorded>> {
                // The chains the batch appends to, and the project of each certificate (whose
                // user it checks), locked: batches of other projects' writes (another node's)
                // go on meanwhile. A batch of nonce counts alone (most of them under Digest
                // load) takes no advisory lock.
                let locks: Vec<WriteLock<'_>> = batch
                    .iter()
                    .flat_map(|w| match w {
                        BatchWrite::Audit(event) => {
                            vec![WriteLock::Chain(AuditEntry::chain_of(event))]
                        }
                        BatchWrite::Certificate(c, event) => vec![
                            WriteLock::Chain(&c.project_id),
                            WriteLock::Chain(AuditEntry::chain_of(event)),
                        ],
                        BatchWrite::DigestNonceCount { .. } => Vec::new(),
                    })
                    .collect();
                let mut tx = self.write_tx(&locks).await?;
                let mut heads = AuditHeads::default();
                let mut outcomes = vec![Recorded::Yes; batch.len()];
                for (outcome, write) in outcomes.iter_mut().zip(batch) {
                    match write {
                        BatchWrite::Audit(event) => {
                            append_audit_in(&mut tx, &mut heads, event).await?;
                        }
                        BatchWrite::Certificate(c, audit) => {
                            *outcome = insert_certificate_in(&mut tx, &mut heads, c, audit).await?;
                        }
                        BatchWrite::DigestNonceCount { .. } => {}
                    }
                }
                save_audit_heads(&mut tx, &heads).await?;
                // The nonce counts last, in nonce order: each upsert locks its row until the
                // commit, and two batches (two nodes') that locked shared nonces in arrival
                // order could each wait for the other (a deadlock, which PostgreSQL resolves
                // by failing one whole batch). In one order, the one that waits holds nothing
                // the other needs next.
                let nonces = nonce_writes(batch);
                for (nonce, writes) in &nonces {
                    // Each count is compared with the counts before it: those of earlier batches
                    // (in the table) and those earlier in this batch. One not above an earlier
                    // one of this batch is refused without a statement; only a new highest is
                    // written.
                    let mut highest: Option<u32> = None;
                    for &(i, nc, expires) in writes {
                        outcomes[i] = if highest.is_some_and(|h| nc <= h) {
                            Recorded::CountNotHigher
                        } else {
                            highest = Some(nc);
                            record_nonce_count_in(&mut tx, nonce, nc, expires).await?
                        };
                    }
                }
                let prune_before = batch
                    .iter()
                    .filter_map(|w| match w {
                        BatchWrite::DigestNonceCount { now, .. } => Some(*now),
                        _ => None,
                    })
                    .max();
                if let Some(now) = prune_before {
                    // Never waits: rows another transaction holds are left for a later batch.
                    sqlx::query(PRUNE_NONCE_COUNTS)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(outcomes)
            }

            async fn list_unexpired_certificates(
                &self,
                project_id: &str,
                username: &str,
                now: i64,
                page: Page,
            ) -> StoreResult<(Vec<CertificateSummary>, u64)> {
                // One statement (UNEXPIRED_PAGE), so one round trip and one snapshot; on
                // SQLite it runs on the calling thread.
                let (lim, off) = limit(page);
                let rows = match self.unexpired_page_inline(project_id, username, now, lim, off) {
                    Some(rows) => rows,
                    None => sqlx::query_as::<_, PageRow>(UNEXPIRED_PAGE)
                        .bind(project_id)
                        .bind(username)
                        .bind(now)
                        .bind(lim)
                        .bind(off)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(map_err)?,
                };
                let count = rows.first().map_or(0, |r| r.total);
                let certs = rows.into_iter().filter_map(PageRow::summary).collect();
                Ok((certs, count.max(0) as u64))
            }

            async fn get_certificate(
                &self,
                project_id: &str,
                serial: i64,
            ) -> StoreResult<Option<CertificateRecord>> {
                sqlx::query_as::<_, CertificateRow>("SELECT * FROM certificates WHERE serial = $1 AND project_id = $2")
                    .bind(serial)
                    .bind(project_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(CertificateRecord::try_from)
                    .transpose()
            }

            async fn list_user_certificates(
                &self,
                project_id: &str,
                username: &str,
                page: Page,
            ) -> StoreResult<(Vec<CertificateRecord>, u64)> {
                let (rows, total) = self
                    .page_of::<CertificateRow>(
                        "SELECT COALESCE((SELECT issued FROM certificate_counts WHERE project_id = $1 AND username = $2), 0) AS n",
                        "SELECT * FROM certificates WHERE project_id = $1 AND username = $2
                         ORDER BY not_before, created_ms, serial LIMIT $3 OFFSET $4",
                        &[project_id, username],
                        page,
                    )
                    .await?;
                Ok((records(rows)?, total))
            }

            async fn last_leaf_not_after(&self, ca_id: i64) -> StoreResult<Option<i64>> {
                sqlx::query_scalar("SELECT MAX(not_after) AS last FROM certificates WHERE ca_id = $1")
                    .bind(ca_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn expiring_certificates(
                &self,
                now: i64,
                soon: i64,
                later: i64,
            ) -> StoreResult<Vec<ExpiringCount>> {
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT project_id,
                            SUM(CASE WHEN not_after <= $2 THEN 1 ELSE 0 END) AS soon,
                            COUNT(*) AS later
                     FROM certificates
                     WHERE not_after > $1 AND not_after <= $3
                     GROUP BY project_id
                     ORDER BY project_id",
                )
                .bind(now)
                .bind(soon)
                .bind(later)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(rows
                    .into_iter()
                    .map(|(project_id, soon, later)| ExpiringCount {
                        project_id,
                        within_soon: soon as u64,
                        within_later: later as u64,
                    })
                    .collect())
            }
        ] $($rest)*);
    };
}
