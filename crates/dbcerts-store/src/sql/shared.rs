//! What several areas share: role lists stored as JSON text, paging, mapping a unique
//! violation to a conflict, one page of a list with its total, and deleting a principal (an API
//! key or a service account) with what hangs off it.

use crate::{Page, StoreError, StoreResult};

pub(crate) fn roles_to_json(roles: &[String]) -> String {
    serde_json::to_string(roles).expect("a list of strings serializes")
}

/// A stored role list; `what` names the column in the error a damaged one gives.
pub(crate) fn roles_from_json(text: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("{what}: {e}")))
}

/// A page as `LIMIT` and `OFFSET` values.
pub(crate) fn limit(page: Page) -> (i64, i64) {
    (
        i64::from(page.limit),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

/// Rows of a private row type as the records they convert to.
pub(crate) fn records<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

macro_rules! sql_shared {
    ($store:ident) => {
        use crate::sql::shared::{limit, records, roles_to_json};

        /// Maps a unique-constraint violation to `Conflict(what)`, anything else through `map_err`.
        fn map_conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
            move |e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
                _ => map_err(e),
            }
        }

        impl $store {
            /// One page of the rows `list_sql` selects, and the total `count_sql` counts: both
            /// bind `keys` as `$1`, `$2`…, and `list_sql` then the page's limit and offset.
            async fn page_of<R>(
                &self,
                count_sql: &str,
                list_sql: &str,
                keys: &[&str],
                page: Page,
            ) -> StoreResult<(Vec<R>, u64)>
            where
                R: for<'r> sqlx::FromRow<'r, DbRow> + Send + Unpin,
            {
                let mut count = sqlx::query_scalar::<_, i64>(count_sql);
                let mut list = sqlx::query_as::<_, R>(list_sql);
                for key in keys {
                    count = count.bind(*key);
                    list = list.bind(*key);
                }
                let (lim, off) = limit(page);
                let total = count.fetch_one(&self.pool).await.map_err(map_err)?;
                let rows = list
                    .bind(lim)
                    .bind(off)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok((rows, total as u64))
            }

            /// Deletes a principal (`delete_sql` binds its id) with its grants and access list, in one
            /// transaction. Returns whether the principal existed.
            async fn delete_principal(
                &self,
                delete_sql: &'static str,
                id: &str,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                delete_principal_rows_in(&mut tx, id).await?;
                let done = sqlx::query(delete_sql)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }
        }

        /// Deletes what hangs off a principal id (grants and access list) inside the caller's
        /// transaction.
        async fn delete_principal_rows_in(
            conn: &mut DbConn,
            principal_id: &str,
        ) -> StoreResult<()> {
            for sql in [
                "DELETE FROM project_grants WHERE principal_id = $1",
                "DELETE FROM access_list_entries WHERE principal_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(principal_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)?;
            }
            Ok(())
        }
    };
}
