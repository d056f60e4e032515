//! API keys: an organization's programmatic keys (created with their project grants, listed,
//! updated, deleted with their grants and access list) and the one read authentication makes
//! of a key with its grants and access list.

use crate::sql::shared::roles_from_json;
use crate::{ApiKeyRecord, StoreError};

/// An `api_keys` row: `org_roles` is a JSON list.
#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    org_id: String,
    public_key: String,
    sealed_private_key: Vec<u8>,
    description: String,
    org_roles: String,
    created: i64,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKeyRecord {
            org_roles: roles_from_json(&row.org_roles, "api_keys.org_roles")?,
            id: row.id,
            org_id: row.org_id,
            public_key: row.public_key,
            sealed_private_key: row.sealed_private_key,
            description: row.description,
            created: row.created,
        })
    }
}

macro_rules! sql_api_keys {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::api_keys::ApiKeyRow;

        async fn insert_api_key_in(conn: &mut DbConn, key: &ApiKeyRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO api_keys (id, org_id, public_key, sealed_private_key, description, org_roles, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&key.id)
            .bind(&key.org_id)
            .bind(&key.public_key)
            .bind(&key.sealed_private_key)
            .bind(&key.description)
            .bind(roles_to_json(&key.org_roles))
            .bind(key.created)
            .execute(&mut *conn)
            .await
            .map_err(map_conflict("api key"))?;
            Ok(())
        }

        impl $store {
            /// The API key `sql` selects by the one value it binds.
            async fn api_key_where(
                &self,
                sql: &'static str,
                value: &str,
            ) -> StoreResult<Option<ApiKeyRecord>> {
                sqlx::query_as::<_, ApiKeyRow>(sql)
                    .bind(value)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(ApiKeyRecord::try_from)
                    .transpose()
            }
        }

        sql_impl!($store [$($methods)*
            async fn get_api_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>> {
                self.api_key_where("SELECT * FROM api_keys WHERE public_key = $1", public_key)
                    .await
            }

            async fn create_api_key(&self, key: &ApiKeyRecord, grants: &[ProjectGrant]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                insert_api_key_in(&mut tx, key).await?;
                for g in grants {
                    put_grant_in(&mut tx, g).await?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn get_api_key_by_id(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
                self.api_key_where("SELECT * FROM api_keys WHERE id = $1", id)
                    .await
            }

            async fn list_api_keys(
                &self,
                org_id: &str,
                page: Page,
            ) -> StoreResult<(Vec<ApiKeyRecord>, u64)> {
                let (rows, total) = self
                    .page_of::<ApiKeyRow>(
                        "SELECT COUNT(*) AS n FROM api_keys WHERE org_id = $1",
                        "SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created, id LIMIT $2 OFFSET $3",
                        &[org_id],
                        page,
                    )
                    .await?;
                Ok((records(rows)?, total))
            }

            async fn update_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE api_keys SET description = $1, org_roles = $2 WHERE id = $3")
                    .bind(&key.description)
                    .bind(roles_to_json(&key.org_roles))
                    .bind(&key.id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_api_key(&self, id: &str) -> StoreResult<bool> {
                self.delete_principal("DELETE FROM api_keys WHERE id = $1", id)
                    .await
            }

            async fn get_api_key_auth(&self, public_key: &str) -> StoreResult<Option<ApiKeyAuth>> {
                // One connection, one read transaction: a consistent view of the key and its rows.
                // An unknown key runs the same statements (for a principal id no row has), so
                // that the time taken does not tell which keys exist.
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let key = sqlx::query_as::<_, ApiKeyRow>("SELECT * FROM api_keys WHERE public_key = $1")
                    .bind(public_key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .map(ApiKeyRecord::try_from)
                    .transpose()?;
                let principal_id = key.as_ref().map_or("", |k| k.id.as_str());
                let (grants, access_list) = principal_rows_in(&mut tx, principal_id).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(key.map(|key| ApiKeyAuth {
                    key,
                    grants,
                    access_list,
                }))
            }
        ] $($rest)*);
    };
}
