//! The SQL both adapters share. Each backend module defines `Db`, `DbRow` and `DbConn` (its
//! sqlx database, row and connection types), `map_err` (its error classification) and a
//! `write_tx` method (a transaction holding the store-wide write lock), then expands
//! `sql_store!` for its store type. Statements use `$N` placeholders, which SQLite and
//! PostgreSQL both accept, and only SQL both dialects run the same way.

macro_rules! sql_store {
    ($store:ident) => {
        /// Maps a unique-constraint violation to `Conflict(what)`, anything else through `map_err`.
        fn map_conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
            move |e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
                _ => map_err(e),
            }
        }

        fn roles_to_json(roles: &[String]) -> String {
            serde_json::to_string(roles).expect("a list of strings serializes")
        }

        fn get<'r, T: sqlx::Decode<'r, Db> + sqlx::Type<Db>>(
            row: &'r DbRow,
            col: &str,
        ) -> StoreResult<T> {
            row.try_get(col).map_err(map_err)
        }

        fn api_key_from_row(row: &DbRow) -> StoreResult<ApiKeyRecord> {
            let roles: String = get(row, "org_roles")?;
            Ok(ApiKeyRecord {
                id: get(row, "id")?,
                org_id: get(row, "org_id")?,
                public_key: get(row, "public_key")?,
                sealed_private_key: get(row, "sealed_private_key")?,
                description: get(row, "description")?,
                org_roles: roles_from_json(&roles, "api_keys.org_roles")?,
                created: get(row, "created")?,
            })
        }

        fn project_from_row(row: &DbRow) -> StoreResult<Project> {
            Ok(Project {
                id: get(row, "id")?,
                org_id: get(row, "org_id")?,
                name: get(row, "name")?,
                created: get(row, "created")?,
                with_default_alerts_settings: get(row, "with_default_alerts_settings")?,
                tags_json: get(row, "tags")?,
            })
        }

        fn ca_from_row(row: &DbRow) -> StoreResult<CaRecord> {
            Ok(CaRecord {
                id: get(row, "id")?,
                project_id: get(row, "project_id")?,
                algorithm: get(row, "algorithm")?,
                cert_der: get(row, "cert")?,
                sealed_key: get(row, "sealed_key")?,
                not_before: get(row, "not_before")?,
                not_after: get(row, "not_after")?,
                generation: get(row, "generation")?,
                active: get::<i32>(row, "active")? == 1,
                retired_at: get(row, "retired_at")?,
            })
        }

        fn revocation_from(at: Option<i64>, code: Option<i64>) -> StoreResult<Option<Revocation>> {
            match (at, code) {
                (None, _) => Ok(None),
                (Some(at), Some(code)) => u8::try_from(code)
                    .ok()
                    .and_then(RevocationReason::from_code)
                    .map(|reason| Some(Revocation { at, reason }))
                    .ok_or_else(|| {
                        StoreError::Internal(format!("certificates.revocation_reason {code}"))
                    }),
                (Some(_), None) => Err(StoreError::Internal(
                    "certificates.revoked_at without a reason".into(),
                )),
            }
        }

        fn certificate_from_row(row: &DbRow) -> StoreResult<CertificateRecord> {
            let serial: i64 = get(row, "serial")?;
            Ok(CertificateRecord {
                serial,
                project_id: get(row, "project_id")?,
                username: get(row, "username")?,
                subject: get(row, "subject")?,
                not_before: get(row, "not_before")?,
                not_after: get(row, "not_after")?,
                created_ms: get(row, "created_ms")?,
                cert_der: get(row, "cert")?,
                // NULL only for a certificate of a project that had no CA when it was stored,
                // which issuance never does.
                ca_id: get::<Option<i64>>(row, "ca_id")?.ok_or_else(|| {
                    StoreError::Internal(format!("certificate {serial} has no issuing CA"))
                })?,
                revocation: revocation_from(
                    get(row, "revoked_at")?,
                    get(row, "revocation_reason")?,
                )?,
            })
        }

        /// `audit` for one certificate revoked now: its `details` object gains the serial.
        fn revoked_event(audit: &AuditEvent, serial: i64) -> StoreResult<AuditEvent> {
            let mut details: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&audit.details).map_err(|e| {
                    StoreError::Internal(format!("revocation audit details: {e}"))
                })?;
            details.insert("serial".into(), serial.into());
            Ok(AuditEvent {
                details: serde_json::Value::Object(details).to_string(),
                ..audit.clone()
            })
        }

        fn user_from_row(row: &DbRow) -> StoreResult<DatabaseUserRecord> {
            Ok(DatabaseUserRecord {
                project_id: get(row, "project_id")?,
                database_name: get(row, "database_name")?,
                username: get(row, "username")?,
                x509_type: get(row, "x509_type")?,
                created: get(row, "created")?,
                doc: get(row, "doc")?,
            })
        }

        fn limit(page: Page) -> (i64, i64) {
            (
                i64::from(page.limit),
                i64::try_from(page.offset).unwrap_or(i64::MAX),
            )
        }

        impl $store {
            /// One page of an organization's rows of `table` in `order`, and their total count.
            async fn page_of_org<T>(
                &self,
                table: &'static str,
                order: &'static str,
                org_id: &str,
                page: Page,
                from_row: fn(&DbRow) -> StoreResult<T>,
            ) -> StoreResult<(Vec<T>, u64)> {
                let count = sqlx::query(&format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE org_id = $1"
                ))
                .bind(org_id)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
                let (lim, off) = limit(page);
                let rows = sqlx::query(&format!(
                    "SELECT * FROM {table} WHERE org_id = $1 ORDER BY {order} LIMIT $2 OFFSET $3"
                ))
                .bind(org_id)
                .bind(lim)
                .bind(off)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let items = rows.iter().map(from_row).collect::<StoreResult<_>>()?;
                Ok((items, get::<i64>(&count, "n")? as u64))
            }

            /// Deletes a principal (`delete_sql` binds its id) with its grants and access list, in one
            /// transaction. Returns whether the principal existed.
            async fn delete_principal(&self, delete_sql: &'static str, id: &str) -> StoreResult<bool> {
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

        fn roles_from_json(text: &str, what: &str) -> StoreResult<Vec<String>> {
            serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("{what}: {e}")))
        }

        fn grant_from_row(row: &DbRow) -> StoreResult<ProjectGrant> {
            Ok(ProjectGrant {
                principal_id: get(row, "principal_id")?,
                project_id: get(row, "project_id")?,
                roles: roles_from_json(&get::<String>(row, "roles")?, "project_grants.roles")?,
            })
        }

        fn access_entry_from_row(row: &DbRow) -> StoreResult<AccessListEntry> {
            Ok(AccessListEntry {
                principal_id: get(row, "principal_id")?,
                cidr_block: get(row, "cidr_block")?,
                created: get(row, "created")?,
            })
        }

        fn service_account_from_row(row: &DbRow) -> StoreResult<ServiceAccountRecord> {
            Ok(ServiceAccountRecord {
                client_id: get(row, "client_id")?,
                org_id: get(row, "org_id")?,
                name: get(row, "name")?,
                description: get(row, "description")?,
                org_roles: roles_from_json(
                    &get::<String>(row, "org_roles")?,
                    "service_accounts.org_roles",
                )?,
                created: get(row, "created")?,
            })
        }

        fn secret_from_row(row: &DbRow) -> StoreResult<ServiceAccountSecretRecord> {
            Ok(ServiceAccountSecretRecord {
                id: get(row, "id")?,
                client_id: get(row, "client_id")?,
                secret_hash: get(row, "secret_hash")?,
                masked: get(row, "masked")?,
                created: get(row, "created")?,
                expires: get(row, "expires")?,
                last_used: get(row, "last_used")?,
            })
        }

        fn audit_from_row(row: &DbRow) -> StoreResult<AuditEntry> {
            Ok(AuditEntry {
                seq: get(row, "seq")?,
                event: AuditEvent {
                    at_ms: get(row, "at_ms")?,
                    actor: get(row, "actor")?,
                    source_ip: get(row, "source_ip")?,
                    action: get(row, "action")?,
                    project_id: get(row, "project_id")?,
                    target: get(row, "target")?,
                    status: get::<Option<i64>>(row, "status")?.map(|s| s as u16),
                    details: get(row, "details")?,
                },
                prev_hash: get(row, "prev_hash")?,
                hash: get(row, "hash")?,
            })
        }

        /// The last audit entry's `seq` and hash (0 and the genesis hash in an empty log). The
        /// caller's transaction must hold the write lock (`BEGIN IMMEDIATE`), so that no other
        /// writer can append meanwhile.
        async fn audit_head(conn: &mut DbConn) -> StoreResult<(i64, Vec<u8>)> {
            let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
            match last {
                Some(r) => Ok((get::<i64>(&r, "seq")?, get::<Vec<u8>>(&r, "hash")?)),
                None => Ok((0, AuditEntry::GENESIS.to_vec())),
            }
        }

        /// Appends `event` after the entry `(seq, hash)` that `head` names, and moves `head` to
        /// the new entry. The caller's transaction must hold the write lock.
        async fn append_audit_after(
            conn: &mut DbConn,
            head: &mut (i64, Vec<u8>),
            event: &AuditEvent,
        ) -> StoreResult<AuditEntry> {
            let seq = head.0 + 1;
            let prev_hash = std::mem::take(&mut head.1);
            let hash = AuditEntry::chain_hash(&prev_hash, seq, event);
            sqlx::query(
                "INSERT INTO audit_log (seq, at_ms, actor, source_ip, action, project_id, target, status, details, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(seq)
            .bind(event.at_ms)
            .bind(&event.actor)
            .bind(&event.source_ip)
            .bind(&event.action)
            .bind(&event.project_id)
            .bind(&event.target)
            .bind(event.status.map(i64::from))
            .bind(&event.details)
            .bind(&prev_hash)
            .bind(&hash)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            *head = (seq, hash.clone());
            Ok(AuditEntry {
                seq,
                event: event.clone(),
                prev_hash,
                hash,
            })
        }

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
            let mut newly: Vec<i64> = sqlx::query(&format!(
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
            .map_err(map_err)?
            .iter()
            .map(|r| get::<i64>(r, "serial"))
            .collect::<StoreResult<_>>()?;
            let certs = sqlx::query(&format!(
                "SELECT * FROM certificates WHERE project_id = $1 AND username = $2 AND {which_sql}
                 ORDER BY not_before, created_ms, serial"
            ))
            .bind(project_id)
            .bind(username)
            .bind(which_arg)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(certificate_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
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

        /// Appends `event` after the last entry. The caller's transaction must hold the write lock.
        async fn append_audit_in(
            conn: &mut DbConn,
            event: &AuditEvent,
        ) -> StoreResult<AuditEntry> {
            let mut head = audit_head(&mut *conn).await?;
            append_audit_after(conn, &mut head, event).await
        }

        async fn insert_api_key_in(
            conn: &mut DbConn,
            key: &ApiKeyRecord,
        ) -> StoreResult<()> {
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

        #[async_trait]
        impl Store for $store {
            async fn is_empty(&self) -> StoreResult<bool> {
                let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM organizations) AS any_org")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(!get::<bool>(&row, "any_org")?)
            }

            async fn create_org_with_key(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                insert_org_in(&mut tx, org).await?;
                insert_api_key_in(&mut tx, key).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_org(&self, id: &str) -> StoreResult<Option<Org>> {
                let row = sqlx::query("SELECT id, name, created FROM organizations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.map(|r| {
                    Ok(Org {
                        id: get(&r, "id")?,
                        name: get(&r, "name")?,
                        created: get(&r, "created")?,
                    })
                })
                .transpose()
            }

            async fn get_api_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>> {
                let row = sqlx::query("SELECT * FROM api_keys WHERE public_key = $1")
                    .bind(public_key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(api_key_from_row).transpose()
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
                let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(api_key_from_row).transpose()
            }

            async fn list_api_keys(
                &self,
                org_id: &str,
                page: Page,
            ) -> StoreResult<(Vec<ApiKeyRecord>, u64)> {
                self.page_of_org("api_keys", "created, id", org_id, page, api_key_from_row)
                    .await
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
                let key = sqlx::query("SELECT * FROM api_keys WHERE public_key = $1")
                    .bind(public_key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .map(|row| api_key_from_row(&row))
                    .transpose()?;
                let principal_id = key.as_ref().map_or("", |k| k.id.as_str());
                let grants =
                    sqlx::query("SELECT * FROM project_grants WHERE principal_id = $1 ORDER BY project_id")
                        .bind(principal_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .iter()
                        .map(grant_from_row)
                        .collect::<StoreResult<_>>()?;
                let access_list = sqlx::query(
                    "SELECT * FROM access_list_entries WHERE principal_id = $1 ORDER BY cidr_block",
                )
                .bind(principal_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
                .iter()
                .map(access_entry_from_row)
                .collect::<StoreResult<_>>()?;
                tx.commit().await.map_err(map_err)?;
                Ok(key.map(|key| ApiKeyAuth {
                    key,
                    grants,
                    access_list,
                }))
            }

            async fn list_grants(&self, principal_id: &str) -> StoreResult<Vec<ProjectGrant>> {
                sqlx::query("SELECT * FROM project_grants WHERE principal_id = $1 ORDER BY project_id")
                    .bind(principal_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(grant_from_row)
                    .collect()
            }

            async fn list_project_grants(&self, project_id: &str) -> StoreResult<Vec<ProjectGrant>> {
                sqlx::query("SELECT * FROM project_grants WHERE project_id = $1 ORDER BY principal_id")
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(grant_from_row)
                    .collect()
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
                sqlx::query("SELECT * FROM access_list_entries WHERE principal_id = $1 ORDER BY cidr_block")
                    .bind(principal_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(access_entry_from_row)
                    .collect()
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
                let row = sqlx::query("SELECT * FROM service_accounts WHERE client_id = $1")
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(service_account_from_row).transpose()
            }

            async fn list_service_accounts(
                &self,
                org_id: &str,
                page: Page,
            ) -> StoreResult<(Vec<ServiceAccountRecord>, u64)> {
                self.page_of_org(
                    "service_accounts",
                    "created, client_id",
                    org_id,
                    page,
                    service_account_from_row,
                )
                .await
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
                sqlx::query(
                    "SELECT * FROM service_account_secrets WHERE client_id = $1 ORDER BY created, id",
                )
                .bind(client_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(secret_from_row)
                .collect()
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
                let account = sqlx::query("SELECT * FROM service_accounts WHERE client_id = $1")
                    .bind(client_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .map(|row| service_account_from_row(&row))
                    .transpose()?;
                let client_id = account.as_ref().map_or("", |a| a.client_id.as_str());
                let secrets = sqlx::query(
                    "SELECT * FROM service_account_secrets WHERE client_id = $1 ORDER BY created, id",
                )
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
                .iter()
                .map(secret_from_row)
                .collect::<StoreResult<_>>()?;
                let grants =
                    sqlx::query("SELECT * FROM project_grants WHERE principal_id = $1 ORDER BY project_id")
                        .bind(client_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .iter()
                        .map(grant_from_row)
                        .collect::<StoreResult<_>>()?;
                let access_list = sqlx::query(
                    "SELECT * FROM access_list_entries WHERE principal_id = $1 ORDER BY cidr_block",
                )
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
                .iter()
                .map(access_entry_from_row)
                .collect::<StoreResult<_>>()?;
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
                let row =
                    sqlx::query("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1) AS revoked")
                        .bind(jti)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?;
                get(&row, "revoked")
            }

            async fn append_audit(&self, event: &AuditEvent) -> StoreResult<AuditEntry> {
                let mut tx = self.write_tx().await?;
                let entry = append_audit_in(&mut tx, event).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(entry)
            }

            async fn list_audit(
                &self,
                filter: &AuditFilter,
                after_seq: i64,
                limit: u32,
            ) -> StoreResult<Vec<AuditEntry>> {
                sqlx::query(
                    "SELECT * FROM audit_log
                     WHERE seq > $1
                       AND ($2 IS NULL OR project_id = $3)
                       AND ($4 IS NULL OR actor = $5)
                       AND ($6 IS NULL OR at_ms >= $7)
                       AND ($8 IS NULL OR at_ms < $9)
                     ORDER BY seq LIMIT $10",
                )
                .bind(after_seq)
                .bind(&filter.project_id)
                .bind(&filter.project_id)
                .bind(&filter.actor)
                .bind(&filter.actor)
                .bind(filter.since_ms)
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(filter.until_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(audit_from_row)
                .collect()
            }

            async fn get_or_insert_secret(&self, name: &str, sealed: &[u8]) -> StoreResult<Vec<u8>> {
                sqlx::query(
                    "INSERT INTO server_secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(sealed)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                let row = sqlx::query("SELECT sealed FROM server_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                get(&row, "sealed")
            }

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
                let row = sqlx::query("SELECT * FROM projects WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(project_from_row).transpose()
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
                let mut count = sqlx::query(&count_sql);
                let mut list = sqlx::query(&list_sql);
                for id in org_ids {
                    count = count.bind(id);
                    list = list.bind(id);
                }
                let (lim, off) = limit(page);
                let total: i64 = get(&count.fetch_one(&self.pool).await.map_err(map_err)?, "n")?;
                let rows = list
                    .bind(lim)
                    .bind(off)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                let projects = rows
                    .iter()
                    .map(project_from_row)
                    .collect::<StoreResult<_>>()?;
                Ok((projects, total as u64))
            }

            async fn delete_project(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM projects WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_active_ca(&self, project_id: &str) -> StoreResult<Option<CaRecord>> {
                let row = sqlx::query("SELECT * FROM project_cas WHERE project_id = $1 AND active = 1")
                    .bind(project_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(ca_from_row).transpose()
            }

            async fn insert_ca_if_absent(&self, ca: &CaRecord) -> StoreResult<CaRecord> {
                // No conflict target: a racing node's row conflicts on "one active CA per
                // project" and on "one row per (project, generation)" (0009), and PostgreSQL
                // raises on a conflict with any unique index but a named arbiter.
                sqlx::query(
                    "INSERT INTO project_cas (project_id, algorithm, cert, sealed_key, not_before, not_after, active, generation)
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&ca.project_id)
                .bind(&ca.algorithm)
                .bind(&ca.cert_der)
                .bind(&ca.sealed_key)
                .bind(ca.not_before)
                .bind(ca.not_after)
                .bind(ca.generation)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                self.get_active_ca(&ca.project_id)
                    .await?
                    .ok_or_else(|| StoreError::Internal("active CA vanished after insert".into()))
            }

            async fn create_database_user(&self, u: &DatabaseUserRecord) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                insert_user_in(&mut conn, u).await
            }

            async fn create_database_user_within_limit(
                &self,
                u: &DatabaseUserRecord,
                max_per_project: u64,
            ) -> StoreResult<()> {
                // The write transaction holds the store's write lock before the count, so the count
                // cannot go stale.
                let mut tx = self.write_tx().await?;
                let row = sqlx::query("SELECT COUNT(*) AS n FROM database_users WHERE project_id = $1")
                    .bind(&u.project_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if get::<i64>(&row, "n")? as u64 >= max_per_project {
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
                let row = sqlx::query(
                    "SELECT * FROM database_users WHERE project_id = $1 AND database_name = $2 AND username = $3",
                )
                .bind(project_id)
                .bind(database_name)
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn list_database_users(
                &self,
                project_id: &str,
                page: Page,
            ) -> StoreResult<(Vec<DatabaseUserRecord>, u64)> {
                let total = self.count_database_users(project_id).await?;
                let (lim, off) = limit(page);
                let rows = sqlx::query(
                    "SELECT * FROM database_users WHERE project_id = $1
                     ORDER BY created, database_name, username LIMIT $2 OFFSET $3",
                )
                .bind(project_id)
                .bind(lim)
                .bind(off)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let users = rows.iter().map(user_from_row).collect::<StoreResult<_>>()?;
                Ok((users, total))
            }

            async fn count_database_users(&self, project_id: &str) -> StoreResult<u64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM database_users WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(get::<i64>(&row, "n")? as u64)
            }

            async fn update_database_user(&self, u: &DatabaseUserRecord) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE database_users SET x509_type = $1, doc = $2
                     WHERE project_id = $3 AND database_name = $4 AND username = $5",
                )
                .bind(&u.x509_type)
                .bind(&u.doc)
                .bind(&u.project_id)
                .bind(&u.database_name)
                .bind(&u.username)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_database_user(
                &self,
                project_id: &str,
                database_name: &str,
                username: &str,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "DELETE FROM database_users WHERE project_id = $1 AND database_name = $2 AND username = $3",
                )
                .bind(project_id)
                .bind(database_name)
                .bind(username)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn commit_batch(&self, batch: &[BatchWrite]) -> StoreResult<Vec<Recorded>> {
                let mut tx = self.write_tx().await?;
                let audits = batch
                    .iter()
                    .any(|w| !matches!(w, BatchWrite::DigestNonceCount { .. }));
                // A batch of nonce counts alone (most of them under Digest load) needs no head.
                let mut head = if audits {
                    audit_head(&mut tx).await?
                } else {
                    (0, Vec::new())
                };
                let mut prune_before = None;
                let mut outcomes = Vec::with_capacity(batch.len());
                for write in batch {
                    let (c, audit) = match write {
                        BatchWrite::Audit(event) => {
                            append_audit_after(&mut tx, &mut head, event).await?;
                            outcomes.push(Recorded::Yes);
                            continue;
                        }
                        BatchWrite::DigestNonceCount {
                            nonce,
                            nc,
                            expires,
                            now,
                        } => {
                            // Inserted, or raised; a count not higher changes no row.
                            let done = sqlx::query(
                                "INSERT INTO digest_nonce_counts (nonce, nc, expires) VALUES ($1, $2, $3)
                                 ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc
                                 WHERE digest_nonce_counts.nc < excluded.nc",
                            )
                            .bind(nonce)
                            .bind(i64::from(*nc))
                            .bind(*expires)
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                            outcomes.push(if done.rows_affected() == 1 {
                                Recorded::Yes
                            } else {
                                Recorded::CountNotHigher
                            });
                            prune_before = prune_before.max(Some(*now));
                            continue;
                        }
                        BatchWrite::Certificate(c, audit) => (c, audit),
                    };
                    // Neither a taken serial (ON CONFLICT) nor a project deleted meanwhile
                    // (EXISTS) is an error here: either would abort the transaction that the
                    // rest of the batch shares. Each skips only its certificate.
                    let done = sqlx::query(
                        "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert,
                                                   ca_id, revoked_at, revocation_reason)
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
                         WHERE EXISTS (SELECT 1 FROM projects WHERE id = $2)
                         ON CONFLICT (serial) DO NOTHING",
                    )
                    .bind(c.serial)
                    .bind(&c.project_id)
                    .bind(&c.username)
                    .bind(&c.subject)
                    .bind(c.not_before)
                    .bind(c.not_after)
                    .bind(c.created_ms)
                    .bind(&c.cert_der)
                    .bind(c.ca_id)
                    .bind(c.revocation.map(|r| r.at))
                    .bind(c.revocation.map(|r| i64::from(r.reason.code())))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let outcome = if done.rows_affected() == 1 {
                        append_audit_after(&mut tx, &mut head, audit).await?;
                        Recorded::Yes
                    } else if sqlx::query("SELECT 1 FROM projects WHERE id = $1")
                        .bind(&c.project_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .is_some()
                    {
                        Recorded::SerialTaken
                    } else {
                        Recorded::ProjectGone
                    };
                    outcomes.push(outcome);
                }
                if let Some(now) = prune_before {
                    sqlx::query("DELETE FROM digest_nonce_counts WHERE expires < $1")
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
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
                // Issued minus expired (migration 0005) minus revoked unexpired (0007): the scans
                // touch expired and revoked entries only.
                let count = sqlx::query(
                    "SELECT COALESCE((SELECT issued FROM certificate_counts WHERE project_id = $1 AND username = $2), 0)
                          - (SELECT COUNT(*) FROM certificates WHERE project_id = $1 AND username = $2 AND not_after <= $3)
                          - (SELECT COUNT(*) FROM certificates WHERE project_id = $1 AND username = $2 AND not_after > $3
                                                               AND revoked_at IS NOT NULL) AS n",
                )
                .bind(project_id)
                .bind(username)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
                let (lim, off) = limit(page);
                // `+not_after`: a range on not_after must not lure the planner to the expiry index
                // (which would sort all the user's certificates for every page); the page comes
                // in the order of certificates_by_user_page, which holds not_after too.
                let rows = sqlx::query(
                    "SELECT serial, subject, not_before, not_after FROM certificates
                     WHERE project_id = $1 AND username = $2 AND +not_after > $3 AND revoked_at IS NULL
                     ORDER BY not_before, created_ms, serial LIMIT $4 OFFSET $5",
                )
                .bind(project_id)
                .bind(username)
                .bind(now)
                .bind(lim)
                .bind(off)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let certs = rows
                    .iter()
                    .map(|r| {
                        Ok(CertificateSummary {
                            serial: get(r, "serial")?,
                            subject: get(r, "subject")?,
                            not_before: get(r, "not_before")?,
                            not_after: get(r, "not_after")?,
                        })
                    })
                    .collect::<StoreResult<_>>()?;
                Ok((certs, get::<i64>(&count, "n")? as u64))
            }

            async fn list_project_cas(&self, project_id: &str) -> StoreResult<Vec<CaRecord>> {
                sqlx::query("SELECT * FROM project_cas WHERE project_id = $1 ORDER BY id")
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(ca_from_row)
                    .collect()
            }

            async fn rotate_ca(
                &self,
                ca: &CaRecord,
                replaces: i64,
                audit: &AuditEvent,
            ) -> StoreResult<Option<CaRecord>> {
                let mut tx = self.write_tx().await?;
                let current = sqlx::query(
                    "SELECT * FROM project_cas WHERE project_id = $1 AND active = 1",
                )
                .bind(&ca.project_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(current) = current.as_ref().map(ca_from_row).transpose()? else {
                    return Ok(None);
                };
                if current.id != replaces {
                    return Ok(None);
                }
                if ca.generation != current.generation + 1 {
                    return Err(StoreError::Internal(format!(
                        "rotation to generation {} from generation {}",
                        ca.generation, current.generation
                    )));
                }
                sqlx::query("UPDATE project_cas SET active = 0 WHERE id = $1")
                    .bind(current.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO project_cas (project_id, algorithm, cert, sealed_key, not_before, not_after, active, generation)
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7)",
                )
                .bind(&ca.project_id)
                .bind(&ca.algorithm)
                .bind(&ca.cert_der)
                .bind(&ca.sealed_key)
                .bind(ca.not_before)
                .bind(ca.not_after)
                .bind(ca.generation)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let row = sqlx::query("SELECT * FROM project_cas WHERE project_id = $1 AND active = 1")
                    .bind(&ca.project_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let stored = ca_from_row(&row)?;
                append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(Some(stored))
            }

            async fn retire_ca(
                &self,
                project_id: &str,
                generation: i64,
                now: i64,
                audit: &AuditEvent,
            ) -> StoreResult<RetireOutcome> {
                let mut tx = self.write_tx().await?;
                let select = "SELECT * FROM project_cas WHERE project_id = $1 AND generation = $2";
                let row = sqlx::query(select)
                    .bind(project_id)
                    .bind(generation)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some(ca) = row.as_ref().map(ca_from_row).transpose()? else {
                    return Ok(RetireOutcome::NotFound);
                };
                if ca.active {
                    return Ok(RetireOutcome::Active);
                }
                if ca.retired_at.is_some() {
                    return Ok(RetireOutcome::Retired { ca, now: false });
                }
                sqlx::query("UPDATE project_cas SET retired_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(ca.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(RetireOutcome::Retired {
                    ca: CaRecord {
                        retired_at: Some(now),
                        ..ca
                    },
                    now: true,
                })
            }

            async fn last_leaf_not_after(&self, ca_id: i64) -> StoreResult<Option<i64>> {
                let row = sqlx::query("SELECT MAX(not_after) AS last FROM certificates WHERE ca_id = $1")
                    .bind(ca_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                get(&row, "last")
            }

            async fn unretired_ca_expiries(&self) -> StoreResult<Vec<CaExpiry>> {
                sqlx::query(
                    "SELECT project_id, generation, not_after FROM project_cas
                     WHERE retired_at IS NULL ORDER BY project_id, generation",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(|row| {
                    Ok(CaExpiry {
                        project_id: get(row, "project_id")?,
                        generation: get(row, "generation")?,
                        not_after: get(row, "not_after")?,
                    })
                })
                .collect()
            }

            async fn get_certificate(
                &self,
                project_id: &str,
                serial: i64,
            ) -> StoreResult<Option<CertificateRecord>> {
                let row = sqlx::query("SELECT * FROM certificates WHERE serial = $1 AND project_id = $2")
                    .bind(serial)
                    .bind(project_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(certificate_from_row).transpose()
            }

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

            async fn delete_database_user_revoking(
                &self,
                project_id: &str,
                database_name: &str,
                username: &str,
                revoke: Option<(Revocation, &AuditEvent)>,
            ) -> StoreResult<(bool, Vec<CertificateRecord>)> {
                let mut tx = self.write_tx().await?;
                let deleted = sqlx::query(
                    "DELETE FROM database_users WHERE project_id = $1 AND database_name = $2 AND username = $3
                     RETURNING x509_type",
                )
                .bind(project_id)
                .bind(database_name)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(row) = deleted else {
                    return Ok((false, Vec::new()));
                };
                let mut certs = Vec::new();
                if let Some((revocation, audit)) = revoke
                    && get::<String>(&row, "x509_type")? == "MANAGED"
                {
                    let which = RevokeWhich::AllUnexpired { now: revocation.at };
                    (certs, _) =
                        revoke_in(&mut tx, project_id, username, which, revocation, audit).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok((true, certs))
            }

            async fn list_user_certificates(
                &self,
                project_id: &str,
                username: &str,
                page: Page,
            ) -> StoreResult<(Vec<CertificateRecord>, u64)> {
                let count = sqlx::query(
                    "SELECT COALESCE((SELECT issued FROM certificate_counts WHERE project_id = $1 AND username = $2), 0) AS n",
                )
                .bind(project_id)
                .bind(username)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
                let (lim, off) = limit(page);
                let certs = sqlx::query(
                    "SELECT * FROM certificates WHERE project_id = $1 AND username = $2
                     ORDER BY not_before, created_ms, serial LIMIT $3 OFFSET $4",
                )
                .bind(project_id)
                .bind(username)
                .bind(lim)
                .bind(off)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(certificate_from_row)
                .collect::<StoreResult<_>>()?;
                Ok((certs, get::<i64>(&count, "n")? as u64))
            }

            async fn list_revoked_unexpired(
                &self,
                ca_id: i64,
                now: i64,
            ) -> StoreResult<Vec<(i64, Revocation)>> {
                sqlx::query(
                    "SELECT serial, revoked_at, revocation_reason FROM certificates
                     WHERE ca_id = $1 AND revoked_at IS NOT NULL AND not_after > $2
                     ORDER BY serial",
                )
                .bind(ca_id)
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| {
                    let revocation =
                        revocation_from(get(r, "revoked_at")?, get(r, "revocation_reason")?)?;
                    Ok((
                        get(r, "serial")?,
                        revocation.ok_or_else(|| StoreError::Internal("revoked_at vanished".into()))?,
                    ))
                })
                .collect()
            }

            async fn get_user_security(&self, project_id: &str) -> StoreResult<UserSecurityRecord> {
                let row = sqlx::query("SELECT customer_cas, ldap FROM user_security WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                match row {
                    None => Ok(UserSecurityRecord::default()),
                    Some(r) => Ok(UserSecurityRecord {
                        customer_cas: get(&r, "customer_cas")?,
                        ldap_json: get(&r, "ldap")?,
                    }),
                }
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

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn bootstrap_first_org(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<bool> {
                // Under the write lock, so that two nodes starting on one empty store create one
                // organization between them.
                let mut tx = self.write_tx().await?;
                let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM organizations) AS any_org")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if get::<bool>(&row, "any_org")? {
                    return Ok(false);
                }
                insert_org_in(&mut tx, org).await?;
                insert_api_key_in(&mut tx, key).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn expiring_certificates(
                &self,
                now: i64,
                soon: i64,
                later: i64,
            ) -> StoreResult<Vec<ExpiringCount>> {
                sqlx::query(
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
                .map_err(map_err)?
                .iter()
                .map(|r| {
                    Ok(ExpiringCount {
                        project_id: get(r, "project_id")?,
                        within_soon: get::<i64>(r, "soon")? as u64,
                        within_later: get::<i64>(r, "later")? as u64,
                    })
                })
                .collect()
            }
        }
    };
}
