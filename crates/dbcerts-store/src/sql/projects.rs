//! Projects (created, read, listed for a set of organizations, deleted with everything in
//! them) and each project's user-security settings (customer CAs, LDAP).

macro_rules! sql_projects {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        sql_impl!($store [$($methods)*
            async fn create_project(&self, p: &Project) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO projects (id, org_id, name, created, with_default_alerts_settings, tags)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&p.id)
                .bind(&p.org_id)
                .bind(&p.name)
                .bind(p.created)
                .bind(p.with_default_alerts_settings)
                .bind(&p.tags_json)
                .execute(&self.pool)
                .await
                .map_err(map_conflict("project name"))?;
                Ok(())
            }

            async fn get_project(&self, id: &str) -> StoreResult<Option<Project>> {
                sqlx::query_as("SELECT * FROM projects WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn list_projects(
                &self,
                org_ids: &[String],
                page: Page,
            ) -> StoreResult<(Vec<Project>, u64)> {
                if org_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let n = org_ids.len();
                let placeholders = (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let count_sql =
                    format!("SELECT COUNT(*) AS n FROM projects WHERE org_id IN ({placeholders})");
                let list_sql = format!(
                    "SELECT * FROM projects WHERE org_id IN ({placeholders}) ORDER BY created, id LIMIT ${} OFFSET ${}",
                    n + 1,
                    n + 2
                );
                let keys: Vec<&str> = org_ids.iter().map(String::as_str).collect();
                self.page_of(&count_sql, &list_sql, &keys, page).await
            }

            async fn delete_project(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM projects WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_user_security(&self, project_id: &str) -> StoreResult<UserSecurityRecord> {
                let record = sqlx::query_as("SELECT customer_cas, ldap FROM user_security WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(record.unwrap_or_default())
            }

            async fn put_user_security(
                &self,
                project_id: &str,
                rec: &UserSecurityRecord,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO user_security (project_id, customer_cas, ldap) VALUES ($1, $2, $3)
                     ON CONFLICT (project_id) DO UPDATE SET customer_cas = excluded.customer_cas, ldap = excluded.ldap",
                )
                .bind(project_id)
                .bind(&rec.customer_cas)
                .bind(&rec.ldap_json)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
        ] $($rest)*);
    };
}
