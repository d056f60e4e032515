//! Issued certificates: the batched, audited write of issuance (with Digest nonce counts, the
//! journal's group commit), the per-user lists and counts, one certificate by serial, the last
//! expiry a CA signed, and the per-project counts of certificates about to expire.

use std::collections::{BTreeMap, HashSet};

use crate::sql::BatchConn;
use crate::sql::audit;
use crate::sql::revocation::revocation_from;
use crate::{AuditEvent, BatchWrite, CertificateRecord, Recorded, StoreError, StoreResult};

/// A batch's Digest nonce-count writes, by nonce in ascending order, each nonce's in batch
/// order: `(index in the batch, nc, expires)`.
fn nonce_writes(batch: &[BatchWrite]) -> BTreeMap<&str, Vec<(usize, u32, i64)>> {
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

/// Inserts one certificate of a batch (`$1` … `$11`: serial, project, username, subject,
/// not_before, not_after, created_ms, cert, ca_id, revoked_at, revocation_reason) unless its
/// serial is taken, its project gone, or its project has no `MANAGED` X.509 user of its name.
///
/// Neither a taken serial (ON CONFLICT) nor a project or user deleted meanwhile (EXISTS) is an
/// error here: either would abort the transaction that the rest of the batch shares. Each skips
/// only its certificate. The user is checked here, not only by the server before it signs: the
/// server may have read it from its read cache, which another node's deletion reaches a moment
/// later; the deletion takes the project's lock, as this transaction does, so one of them sees
/// the other. `$external` and `admin` are where the server looks for a certificate's user.
pub(crate) const INSERT_CERTIFICATE: &str = "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert,
                           ca_id, revoked_at, revocation_reason)
 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
 WHERE EXISTS (SELECT 1 FROM projects WHERE id = $2)
   AND EXISTS (SELECT 1 FROM database_users
               WHERE project_id = $2 AND database_name IN ('$external', 'admin')
                 AND username = $3 AND x509_type = 'MANAGED')
 ON CONFLICT (serial) DO NOTHING";

/// Why [`INSERT_CERTIFICATE`] inserted nothing: the project (`$1`)'s rows, its users named `$2`,
/// and those of them that are `MANAGED`.
pub(crate) const CERTIFICATE_REFUSAL: &str = "SELECT (SELECT COUNT(*) FROM projects WHERE id = $1),
        (SELECT COUNT(*) FROM database_users
         WHERE project_id = $1 AND database_name IN ('$external', 'admin') AND username = $2),
        (SELECT COUNT(*) FROM database_users
         WHERE project_id = $1 AND database_name IN ('$external', 'admin') AND username = $2
           AND x509_type = 'MANAGED')";

/// Records that the Digest nonce `$1` was used with count `$2` (kept until `$3`): inserted, or
/// raised; a count not higher changes no row.
pub(crate) const RECORD_NONCE_COUNT: &str =
    "INSERT INTO digest_nonce_counts (nonce, nc, expires) VALUES ($1, $2, $3)
 ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc
 WHERE digest_nonce_counts.nc < excluded.nc";

/// Everything a group commit ([`crate::Store::commit_batch`]) does inside its transaction,
/// which the caller begins (holding the batch's write locks) and commits: each write's outcome.
///
/// A step at a time for the whole batch, so that PostgreSQL's connection can make each step one
/// statement: the certificates ([`insert_certificates`]), why those refused were refused, the
/// audit entries of the writes that were recorded, in batch order ([`audit::append_all`]), then
/// the nonce counts.
pub(crate) async fn commit_batch_in<C: BatchConn>(
    conn: &mut C,
    batch: &[BatchWrite],
) -> StoreResult<Vec<Recorded>> {
    let mut outcomes = vec![Recorded::Yes; batch.len()];
    let certs: Vec<(usize, &CertificateRecord)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w {
            BatchWrite::Certificate(c, _) => Some((i, c)),
            _ => None,
        })
        .collect();
    let records: Vec<&CertificateRecord> = certs.iter().map(|&(_, c)| c).collect();
    let inserted = insert_certificates(conn, &records).await?;
    for (&(i, c), inserted) in certs.iter().zip(inserted) {
        if !inserted {
            outcomes[i] = certificate_refusal(conn, c).await?;
        }
    }
    let events: Vec<&AuditEvent> = batch
        .iter()
        .zip(&outcomes)
        .filter_map(|(w, outcome)| match w {
            BatchWrite::Audit(event) => Some(event),
            BatchWrite::Certificate(_, event) if *outcome == Recorded::Yes => Some(event),
            _ => None,
        })
        .collect();
    audit::append_all(conn, &events).await?;
    // The nonce counts last, in nonce order: each upsert locks its row until the commit, and
    // two batches (two nodes') that locked shared nonces in arrival order could each wait for
    // the other (a deadlock, which PostgreSQL resolves by failing one whole batch). In one
    // order, the one that waits holds nothing the other needs next.
    let nonces = nonce_writes(batch);
    for (nonce, writes) in &nonces {
        // Each count is compared with the counts before it: those of earlier batches (in the
        // table) and those earlier in this batch. One not above an earlier one of this batch is
        // refused without a statement; only a new highest is written.
        let mut highest: Option<u32> = None;
        for &(i, nc, expires) in writes {
            outcomes[i] = if highest.is_some_and(|h| nc <= h) {
                Recorded::CountNotHigher
            } else {
                highest = Some(nc);
                if conn.record_nonce_count(nonce, nc, expires).await? {
                    Recorded::Yes
                } else {
                    Recorded::CountNotHigher
                }
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
        conn.prune_nonce_counts(now).await?;
    }
    Ok(outcomes)
}

/// Inserts `certs` ([`BatchConn::insert_certificates`]): whether each was inserted. Of those
/// sharing a serial, the first is tried alone; the next only if it was not inserted, and so on
/// (a later round, which a batch without repeated serials never needs), as though each were
/// inserted in turn.
async fn insert_certificates<C: BatchConn>(
    conn: &mut C,
    certs: &[&CertificateRecord],
) -> StoreResult<Vec<bool>> {
    let mut inserted = vec![false; certs.len()];
    let mut pending: Vec<usize> = (0..certs.len()).collect();
    while !pending.is_empty() {
        let mut serials = HashSet::new();
        let (round, later): (Vec<usize>, Vec<usize>) = pending
            .iter()
            .partition(|&&i| serials.insert(certs[i].serial));
        let rows: Vec<&CertificateRecord> = round.iter().map(|&i| certs[i]).collect();
        let done = conn.insert_certificates(&rows).await?;
        let mut taken = HashSet::new();
        for (&i, done) in round.iter().zip(done) {
            inserted[i] = done;
            if done {
                taken.insert(certs[i].serial);
            }
        }
        pending = later
            .into_iter()
            .filter(|&i| !taken.contains(&certs[i].serial))
            .collect();
    }
    Ok(inserted)
}

/// Why a certificate of a batch was not inserted: the project first, then the user, else the
/// serial. The caller holds the project's lock.
async fn certificate_refusal<C: BatchConn>(
    conn: &mut C,
    c: &CertificateRecord,
) -> StoreResult<Recorded> {
    let (project, users, managed) = conn.certificate_refusal(&c.project_id, &c.username).await?;
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

macro_rules! sql_certificates {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::certificates::{CertificateRow, PageRow, UNEXPIRED_PAGE, commit_batch_in};

        sql_impl!($store [$($methods)*
            async fn commit_batch(&self, batch: &[BatchWrite]) -> StoreResult<Vec<Recorded>> {
                // On SQLite, a file store's batches run on its writer thread: one hop each.
                if let Some(done) = self.commit_batch_on_writer(batch).await {
                    return done;
                }
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
                let outcomes = commit_batch_in(&mut *tx, batch).await?;
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
