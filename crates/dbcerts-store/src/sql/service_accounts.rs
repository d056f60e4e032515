//! Service accounts: an organization's OAuth clients (created with their first secret, listed,
//! updated, deleted with their secrets, grants and access list), their secrets, the one read
//! authentication makes of an account with everything it needs, and revoked access tokens.

use crate::sql::shared::roles_from_json;
use crate::{ServiceAccountRecord, StoreError};

/// A `service_accounts` row: `org_roles` is a JSON list.
#[derive(sqlx::FromRow)]
pub(crate) struct ServiceAccountRow {
    client_id: String,
    org_id: String,
    name: String,
    description: String,
    org_roles: String,
    created: i64,
}

impl TryFrom<ServiceAccountRow> for ServiceAccountRecord {
    type Error = StoreError;

    fn try_from(row: ServiceAccountRow) -> Result<Self, StoreError> {
        Ok(ServiceAccountRecord {
            org_roles: roles_from_json(&row.org_roles, "service_accounts.org_roles")?,
            client_id: row.client_id,
            org_id: row.org_id,
            name: row.name,
            description: row.description,
            created: row.created,
        })
    }
}

/// Whether an access token's `jti` is revoked (1 or 0): asked on every Bearer request.
pub(crate) const TOKEN_REVOKED: &str =
    "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1) AS revoked";

macro_rules! sql_service_accounts {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::service_accounts::ServiceAccountRow;

        const SECRETS_OF_ACCOUNT: &str =
            "SELECT * FROM service_account_secrets WHERE client_id = $1 ORDER BY created, id";

        async fn insert_secret_in(
            conn: &mut DbConn,
            s: &ServiceAccountSecretRecord,
        ) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO service_account_secrets (id, client_id, secret_hash, masked, created, expires, last_used)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.id)
            .bind(&s.client_id)
            .bind(&s.secret_hash)
            .bind(&s.masked)
            .bind(s.created)
            .bind(s.expires)
            .bind(s.last_used)
            .execute(&mut *conn)
            .await
            .map_err(map_conflict("service account secret"))?;
            Ok(())
        }

        /// The account with this client id, inside the caller's connection or transaction.
        async fn service_account_in(
            conn: &mut DbConn,
            client_id: &str,
        ) -> StoreResult<Option<ServiceAccountRecord>> {
            sqlx::query_as::<_, ServiceAccountRow>("SELECT * FROM service_accounts WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?
                .map(ServiceAccountRecord::try_from)
                .transpose()
        }

        sql_impl!($store [$($methods)*
            async fn create_service_account(
                &self,
                a: &ServiceAccountRecord,
                secret: &ServiceAccountSecretRecord,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO service_accounts (client_id, org_id, name, description, org_roles, created)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&a.client_id)
                .bind(&a.org_id)
                .bind(&a.name)
                .bind(&a.description)
                .bind(roles_to_json(&a.org_roles))
                .bind(a.created)
                .execute(&mut *tx)
                .await
                .map_err(map_conflict("service account"))?;
                insert_secret_in(&mut tx, secret).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_service_account(
                &self,
                client_id: &str,
            ) -> StoreResult<Option<ServiceAccountRecord>> {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                service_account_in(&mut conn, client_id).await
            }

            async fn list_service_accounts(
                &self,
                org_id: &str,
                page: Page,
            ) -> StoreResult<(Vec<ServiceAccountRecord>, u64)> {
                let (rows, total) = self
                    .page_of::<ServiceAccountRow>(
                        "SELECT COUNT(*) AS n FROM service_accounts WHERE org_id = $1",
                        "SELECT * FROM service_accounts WHERE org_id = $1 ORDER BY created, client_id LIMIT $2 OFFSET $3",
                        &[org_id],
                        page,
                    )
                    .await?;
                Ok((records(rows)?, total))
            }

            async fn update_service_account(&self, a: &ServiceAccountRecord) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE service_accounts SET name = $1, description = $2, org_roles = $3 WHERE client_id = $4",
                )
                .bind(&a.name)
                .bind(&a.description)
                .bind(roles_to_json(&a.org_roles))
                .bind(&a.client_id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_service_account(&self, client_id: &str) -> StoreResult<bool> {
                self.delete_principal(
                    "DELETE FROM service_accounts WHERE client_id = $1",
                    client_id,
                )
                .await
            }

            async fn add_service_account_secret(
                &self,
                secret: &ServiceAccountSecretRecord,
            ) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                insert_secret_in(&mut conn, secret).await
            }

            async fn list_service_account_secrets(
                &self,
                client_id: &str,
            ) -> StoreResult<Vec<ServiceAccountSecretRecord>> {
                sqlx::query_as(SECRETS_OF_ACCOUNT)
                    .bind(client_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn delete_service_account_secret(
                &self,
                client_id: &str,
                secret_id: &str,
            ) -> StoreResult<bool> {
                let done =
                    sqlx::query("DELETE FROM service_account_secrets WHERE client_id = $1 AND id = $2")
                        .bind(client_id)
                        .bind(secret_id)
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_service_account_secret(&self, secret_id: &str, at: i64) -> StoreResult<()> {
                sqlx::query("UPDATE service_account_secrets SET last_used = $1 WHERE id = $2")
                    .bind(at)
                    .bind(secret_id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn get_service_account_auth(
                &self,
                client_id: &str,
            ) -> StoreResult<Option<ServiceAccountAuth>> {
                // An unknown client runs the same statements (for an id no row has), so that
                // the time taken does not tell which clients exist.
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let account = service_account_in(&mut tx, client_id).await?;
                let client_id = account.as_ref().map_or("", |a| a.client_id.as_str());
                let secrets = sqlx::query_as(SECRETS_OF_ACCOUNT)
                    .bind(client_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let (grants, access_list) = principal_rows_in(&mut tx, client_id).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(account.map(|account| ServiceAccountAuth {
                    account,
                    secrets,
                    grants,
                    access_list,
                }))
            }

            async fn revoke_token(&self, jti: &str, expires: i64, now: i64) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM revoked_tokens WHERE expires <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO revoked_tokens (jti, expires) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn is_token_revoked(&self, jti: &str) -> StoreResult<bool> {
                // Every Bearer request asks (revocation is never cached): on SQLite, on the
                // calling thread.
                if let Some(revoked) = self.token_revoked_inline(jti) {
                    return Ok(revoked);
                }
                sqlx::query_scalar(crate::sql::service_accounts::TOKEN_REVOKED)
                    .bind(jti)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
        ] $($rest)*);
    };
}
