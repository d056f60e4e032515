//! Database users of a project: created (within the per-project limit, counted under the write
//! lock), read, listed, counted, updated and deleted (under the project's lock, which
//! certificate inserts take to check their user), optionally revoking a `MANAGED` X.509 user's
//! certificates in the same transaction.

macro_rules! sql_database_users {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        const COUNT_USERS: &str = "SELECT COUNT(*) AS n FROM database_users WHERE project_id = $1";

        async fn insert_user_in(conn: &mut DbConn, u: &DatabaseUserRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO database_users (project_id, database_name, username, x509_type, created, doc)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&u.project_id)
            .bind(&u.database_name)
            .bind(&u.username)
            .bind(&u.x509_type)
            .bind(u.created)
            .bind(&u.doc)
            .execute(&mut *conn)
            .await
            .map_err(map_conflict("database user"))?;
            Ok(())
        }

        sql_impl!($store [$($methods)*
            async fn create_database_user(&self, u: &DatabaseUserRecord) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                insert_user_in(&mut conn, u).await
            }

            async fn create_database_user_within_limit(
                &self,
                u: &DatabaseUserRecord,
                max_per_project: u64,
            ) -> StoreResult<()> {
                // The write transaction holds the project's lock before the count, so the count
                // cannot go stale.
                let mut tx = self.write_tx(&[WriteLock::Chain(&u.project_id)]).await?;
                let n: i64 = sqlx::query_scalar(COUNT_USERS)
                    .bind(&u.project_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if n as u64 >= max_per_project {
                    return Err(StoreError::LimitReached);
                }
                insert_user_in(&mut tx, u).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_database_user(
                &self,
                project_id: &str,
                database_name: &str,
                username: &str,
            ) -> StoreResult<Option<DatabaseUserRecord>> {
                sqlx::query_as(
                    "SELECT * FROM database_users WHERE project_id = $1 AND database_name = $2 AND username = $3",
                )
                .bind(project_id)
                .bind(database_name)
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn list_database_users(
                &self,
                project_id: &str,
                page: Page,
            ) -> StoreResult<(Vec<DatabaseUserRecord>, u64)> {
                self.page_of(
                    COUNT_USERS,
                    "SELECT * FROM database_users WHERE project_id = $1
                     ORDER BY created, database_name, username LIMIT $2 OFFSET $3",
                    &[project_id],
                    page,
                )
                .await
            }

            async fn count_database_users(&self, project_id: &str) -> StoreResult<u64> {
                let n: i64 = sqlx::query_scalar(COUNT_USERS)
                    .bind(project_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(n as u64)
            }

            async fn update_database_user(&self, u: &DatabaseUserRecord) -> StoreResult<bool> {
                // Under the project's lock, as certificate inserts check the user under it: an
                // insert that waited for this change sees it.
                let mut tx = self.write_tx(&[WriteLock::Chain(&u.project_id)]).await?;
                let done = sqlx::query(
                    "UPDATE database_users SET x509_type = $1, doc = $2
                     WHERE project_id = $3 AND database_name = $4 AND username = $5",
                )
                .bind(&u.x509_type)
                .bind(&u.doc)
                .bind(&u.project_id)
                .bind(&u.database_name)
                .bind(&u.username)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_database_user(
                &self,
                project_id: &str,
                database_name: &str,
                username: &str,
            ) -> StoreResult<bool> {
                // Under the project's lock, as in `update_database_user`.
                let mut tx = self.write_tx(&[WriteLock::Chain(project_id)]).await?;
                let done = sqlx::query(
                    "DELETE FROM database_users WHERE project_id = $1 AND database_name = $2 AND username = $3",
                )
                .bind(project_id)
                .bind(database_name)
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_database_user_revoking(
                &self,
                project_id: &str,
                database_name: &str,
                username: &str,
                revoke: Option<(Revocation, &AuditEvent)>,
            ) -> StoreResult<(bool, Vec<CertificateRecord>)> {
                // The project's lock also orders this deletion with certificate inserts, which
                // check the user under it (`insert_certificate_in`): an insert either commits
                // first, and its certificate is revoked here, or waits and is refused.
                let mut locks = vec![WriteLock::Chain(project_id)];
                if let Some((_, audit)) = revoke {
                    locks.push(WriteLock::Chain(AuditEntry::chain_of(audit)));
                }
                let mut tx = self.write_tx(&locks).await?;
                let deleted: Option<String> = sqlx::query_scalar(
                    "DELETE FROM database_users WHERE project_id = $1 AND database_name = $2 AND username = $3
                     RETURNING x509_type",
                )
                .bind(project_id)
                .bind(database_name)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(x509_type) = deleted else {
                    return Ok((false, Vec::new()));
                };
                let mut certs = Vec::new();
                if let Some((revocation, audit)) = revoke
                    && x509_type == "MANAGED"
                {
                    let which = RevokeWhich::AllUnexpired { now: revocation.at };
                    (certs, _) =
                        revoke_in(&mut tx, project_id, username, which, revocation, audit).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok((true, certs))
            }
        ] $($rest)*);
    };
}
