//! Revoking certificates: one by serial or all of a user's unexpired ones, each revoked now
//! audited in the same transaction under the write lock, and the revoked, unexpired serials of
//! a CA that its CRL lists.

use crate::{AuditEvent, Revocation, RevocationReason, StoreError, StoreResult};

/// The revocation stored as `revoked_at` and `revocation_reason` (an RFC 5280 reason code).
pub(crate) fn revocation_from(
    at: Option<i64>,
    code: Option<i64>,
) -> StoreResult<Option<Revocation>> {
    match (at, code) {
        (None, _) => Ok(None),
        (Some(at), Some(code)) => u8::try_from(code)
            .ok()
            .and_then(RevocationReason::from_code)
            .map(|reason| Some(Revocation { at, reason }))
            .ok_or_else(|| StoreError::Internal(format!("certificates.revocation_reason {code}"))),
        (Some(_), None) => Err(StoreError::Internal(
            "certificates.revoked_at without a reason".into(),
        )),
    }
}

/// `audit` for one certificate revoked now: its `details` object gains the serial.
pub(crate) fn revoked_event(audit: &AuditEvent, serial: i64) -> StoreResult<AuditEvent> {
    let mut details: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&audit.details)
            .map_err(|e| StoreError::Internal(format!("revocation audit details: {e}")))?;
    details.insert("serial".into(), serial.into());
    Ok(AuditEvent {
        details: serde_json::Value::Object(details).to_string(),
        ..audit.clone()
    })
}

macro_rules! sql_revocation {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::revocation::{revocation_from, revoked_event};

        /// Revokes `which` of (project, username) inside the caller's transaction, which must
        /// hold the write lock: sets `revocation` on each certificate not revoked yet and appends
        /// its audit entry. Returns the certificates (oldest first, each with its revocation, the
        /// first one for those revoked before) and whether any was revoked now.
        async fn revoke_in(
            conn: &mut DbConn,
            project_id: &str,
            username: &str,
            which: RevokeWhich,
            revocation: Revocation,
            audit: &AuditEvent,
        ) -> StoreResult<(Vec<CertificateRecord>, bool)> {
            let (which_sql, which_arg) = match which {
                RevokeWhich::One(serial) => ("serial = $3", serial),
                RevokeWhich::AllUnexpired { now } => ("not_after > $3", now),
            };
            let mut newly: Vec<i64> = sqlx::query_scalar(&format!(
                "UPDATE certificates SET revoked_at = $4, revocation_reason = $5
                 WHERE project_id = $1 AND username = $2 AND {which_sql} AND revoked_at IS NULL
                 RETURNING serial"
            ))
            .bind(project_id)
            .bind(username)
            .bind(which_arg)
            .bind(revocation.at)
            .bind(i64::from(revocation.reason.code()))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            let rows = sqlx::query_as::<_, CertificateRow>(&format!(
                "SELECT * FROM certificates WHERE project_id = $1 AND username = $2 AND {which_sql}
                 ORDER BY not_before, created_ms, serial"
            ))
            .bind(project_id)
            .bind(username)
            .bind(which_arg)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            let certs: Vec<CertificateRecord> = records(rows)?;
            if !newly.is_empty() {
                newly.sort_unstable();
                let mut head = audit_head(&mut *conn).await?;
                // Audited in the order the result lists them.
                for c in certs.iter().filter(|c| newly.binary_search(&c.serial).is_ok()) {
                    append_audit_after(&mut *conn, &mut head, &revoked_event(audit, c.serial)?).await?;
                }
            }
            Ok((certs, !newly.is_empty()))
        }

        sql_impl!($store [$($methods)*
            async fn revoke_certificates(
                &self,
                project_id: &str,
                username: &str,
                which: RevokeWhich,
                revocation: Revocation,
                audit: &AuditEvent,
            ) -> StoreResult<Vec<CertificateRecord>> {
                // Under the write lock: the audit entries chain onto the log's head, and two
                // revocations of one certificate cannot both see it unrevoked.
                let mut tx = self.write_tx().await?;
                let (certs, any_new) =
                    revoke_in(&mut tx, project_id, username, which, revocation, audit).await?;
                if any_new {
                    tx.commit().await.map_err(map_err)?;
                }
                Ok(certs)
            }

            async fn list_revoked_unexpired(
                &self,
                ca_id: i64,
                now: i64,
            ) -> StoreResult<Vec<(i64, Revocation)>> {
                let rows: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "SELECT serial, revoked_at, revocation_reason FROM certificates
                     WHERE ca_id = $1 AND revoked_at IS NOT NULL AND not_after > $2
                     ORDER BY serial",
                )
                .bind(ca_id)
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.into_iter()
                    .map(|(serial, at, code)| {
                        let revocation = revocation_from(at, code)?;
                        Ok((
                            serial,
                            revocation.ok_or_else(|| StoreError::Internal("revoked_at vanished".into()))?,
                        ))
                    })
                    .collect()
            }
        ] $($rest)*);
    };
}
