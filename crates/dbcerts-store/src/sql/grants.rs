//! What API keys and service accounts (principals) share: their roles in projects (grants) and
//! their IP access lists, read for authentication in the principal's read transaction.

use crate::sql::shared::roles_from_json;
use crate::{ProjectGrant, StoreError};

/// A `project_grants` row: `roles` is a JSON list.
#[derive(sqlx::FromRow)]
pub(crate) struct GrantRow {
    principal_id: String,
    project_id: String,
    roles: String,
}

impl TryFrom<GrantRow> for ProjectGrant {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        Ok(ProjectGrant {
            roles: roles_from_json(&row.roles, "project_grants.roles")?,
            principal_id: row.principal_id,
            project_id: row.project_id,
        })
    }
}

macro_rules! sql_grants {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::grants::GrantRow;

        const GRANTS_OF_PRINCIPAL: &str =
            "SELECT * FROM project_grants WHERE principal_id = $1 ORDER BY project_id";
        const ACCESS_LIST_OF_PRINCIPAL: &str =
            "SELECT * FROM access_list_entries WHERE principal_id = $1 ORDER BY cidr_block";

        async fn put_grant_in(conn: &mut DbConn, g: &ProjectGrant) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO project_grants (principal_id, project_id, roles) VALUES ($1, $2, $3)
                 ON CONFLICT (principal_id, project_id) DO UPDATE SET roles = excluded.roles",
            )
            .bind(&g.principal_id)
            .bind(&g.project_id)
            .bind(roles_to_json(&g.roles))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        /// A principal's grants and access list, inside the caller's (read) transaction.
        async fn principal_rows_in(
            conn: &mut DbConn,
            principal_id: &str,
        ) -> StoreResult<(Vec<ProjectGrant>, Vec<AccessListEntry>)> {
            let grants = records(
                sqlx::query_as::<_, GrantRow>(GRANTS_OF_PRINCIPAL)
                    .bind(principal_id)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(map_err)?,
            )?;
            let access_list = sqlx::query_as(ACCESS_LIST_OF_PRINCIPAL)
                .bind(principal_id)
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?;
            Ok((grants, access_list))
        }

        sql_impl!($store [$($methods)*
            async fn list_grants(&self, principal_id: &str) -> StoreResult<Vec<ProjectGrant>> {
                records(
                    sqlx::query_as::<_, GrantRow>(GRANTS_OF_PRINCIPAL)
                        .bind(principal_id)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(map_err)?,
                )
            }

            async fn list_project_grants(&self, project_id: &str) -> StoreResult<Vec<ProjectGrant>> {
                records(
                    sqlx::query_as::<_, GrantRow>(
                        "SELECT * FROM project_grants WHERE project_id = $1 ORDER BY principal_id",
                    )
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?,
                )
            }

            async fn put_grant(&self, grant: &ProjectGrant) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                put_grant_in(&mut conn, grant).await
            }

            async fn delete_grant(&self, principal_id: &str, project_id: &str) -> StoreResult<bool> {
                let done =
                    sqlx::query("DELETE FROM project_grants WHERE principal_id = $1 AND project_id = $2")
                        .bind(principal_id)
                        .bind(project_id)
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn add_access_list_entries(&self, entries: &[AccessListEntry]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                for e in entries {
                    sqlx::query(
                        "INSERT INTO access_list_entries (principal_id, cidr_block, created) VALUES ($1, $2, $3)
                         ON CONFLICT (principal_id, cidr_block) DO NOTHING",
                    )
                    .bind(&e.principal_id)
                    .bind(&e.cidr_block)
                    .bind(e.created)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn list_access_list(&self, principal_id: &str) -> StoreResult<Vec<AccessListEntry>> {
                sqlx::query_as(ACCESS_LIST_OF_PRINCIPAL)
                    .bind(principal_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn delete_access_list_entry(&self, principal_id: &str, cidr: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "DELETE FROM access_list_entries WHERE principal_id = $1 AND cidr_block = $2",
                )
                .bind(principal_id)
                .bind(cidr)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }
        ] $($rest)*);
    };
}
