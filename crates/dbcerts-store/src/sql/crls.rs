//! Certificate revocation lists: each CA's CRL state (the revocation revision and the CRL
//! published last), publishing the next CRL (exactly one of racing publishers wins a number),
//! the CAs whose CRL is due, and each project's CRL distribution token.

use crate::{CrlState, PublishedCrl};

/// A `crl_state` row: a published CRL has `number > 0` and its DER and dates set.
#[derive(sqlx::FromRow)]
pub(crate) struct CrlRow {
    revision: i64,
    number: i64,
    built_revision: i64,
    this_update: Option<i64>,
    next_update: Option<i64>,
    refresh_at: Option<i64>,
    der: Option<Vec<u8>>,
}

impl CrlRow {
    /// The state of CA `ca_id` this row holds.
    pub(crate) fn into_state(self, ca_id: i64) -> CrlState {
        let published = match self.der {
            Some(der) if self.number > 0 => Some(PublishedCrl {
                number: self.number,
                built_revision: self.built_revision,
                this_update: self.this_update.unwrap_or(0),
                next_update: self.next_update.unwrap_or(0),
                refresh_at: self.refresh_at.unwrap_or(0),
                der,
            }),
            _ => None,
        };
        CrlState {
            ca_id,
            revision: self.revision,
            published,
        }
    }
}

macro_rules! sql_crls {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::crls::CrlRow;

        sql_impl!($store [$($methods)*
            async fn get_crl_state(&self, ca_id: i64) -> StoreResult<CrlState> {
                let row = sqlx::query_as::<_, CrlRow>("SELECT * FROM crl_state WHERE ca_id = $1")
                    .bind(ca_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(match row {
                    Some(row) => row.into_state(ca_id),
                    None => CrlState { ca_id, revision: 0, published: None },
                })
            }

            async fn publish_crl(&self, ca_id: i64, crl: &PublishedCrl) -> StoreResult<bool> {
                // Under the write lock: the number read is still the number when the row is
                // written, so exactly one of several racing publishers of one number wins.
                let mut tx = self.write_tx().await?;
                let current: Option<i64> = sqlx::query_scalar("SELECT number FROM crl_state WHERE ca_id = $1")
                    .bind(ca_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if crl.number != current.unwrap_or(0) + 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO crl_state (ca_id, number, built_revision, this_update, next_update, refresh_at, der)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (ca_id) DO UPDATE SET number = excluded.number,
                         built_revision = excluded.built_revision, this_update = excluded.this_update,
                         next_update = excluded.next_update, refresh_at = excluded.refresh_at,
                         der = excluded.der",
                )
                .bind(ca_id)
                .bind(crl.number)
                .bind(crl.built_revision)
                .bind(crl.this_update)
                .bind(crl.next_update)
                .bind(crl.refresh_at)
                .bind(&crl.der)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn list_projects_with_crls_due(&self, now: i64) -> StoreResult<Vec<String>> {
                sqlx::query_scalar(
                    "SELECT DISTINCT c.project_id FROM crl_state s JOIN project_cas c ON c.id = s.ca_id
                     WHERE s.number > 0 AND c.not_after > $1
                       AND (s.built_revision < s.revision OR s.refresh_at <= $1)
                     ORDER BY c.project_id",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn crl_distribution_token(
                &self,
                project_id: &str,
                new_token: &str,
            ) -> StoreResult<String> {
                let mut tx = self.write_tx().await?;
                sqlx::query(
                    "INSERT INTO crl_distribution (project_id, token) VALUES ($1, $2)
                     ON CONFLICT (project_id) DO NOTHING",
                )
                .bind(project_id)
                .bind(new_token)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let token = sqlx::query_scalar("SELECT token FROM crl_distribution WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(token)
            }

            async fn project_of_crl_token(&self, token: &str) -> StoreResult<Option<String>> {
                sqlx::query_scalar("SELECT project_id FROM crl_distribution WHERE token = $1")
                    .bind(token)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }
        ] $($rest)*);
    };
}
