//! Organizations: whether a store is still empty, the first organization that `serve`
//! bootstraps (exactly one of several nodes wins), and organizations created together with
//! their first API key.

macro_rules! sql_orgs {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        async fn insert_org_in(conn: &mut DbConn, org: &Org) -> StoreResult<()> {
            sqlx::query("INSERT INTO organizations (id, name, created) VALUES ($1, $2, $3)")
                .bind(&org.id)
                .bind(&org.name)
                .bind(org.created)
                .execute(&mut *conn)
                .await
                .map_err(map_conflict("organization id"))?;
            Ok(())
        }

        sql_impl!($store [$($methods)*
            async fn is_empty(&self) -> StoreResult<bool> {
                let any_org: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations) AS any_org")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?;
                Ok(!any_org)
            }

            async fn bootstrap_first_org(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<bool> {
                // Under the write lock, so that two nodes starting on one empty store create one
                // organization between them.
                let mut tx = self.write_tx().await?;
                let any_org: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations) AS any_org")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                if any_org {
                    return Ok(false);
                }
                insert_org_in(&mut tx, org).await?;
                insert_api_key_in(&mut tx, key).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn create_org_with_key(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                insert_org_in(&mut tx, org).await?;
                insert_api_key_in(&mut tx, key).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_org(&self, id: &str) -> StoreResult<Option<Org>> {
                sqlx::query_as("SELECT id, name, created FROM organizations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }
        ] $($rest)*);
    };
}
