//! The store conformance suite (`tests/conformance/mod.rs`) run against [`SqliteStore`] on a
//! real database file in a temporary directory, one test per check, plus the checks that only
//! make sense for SQLite (integrity check, durability across close and reopen).

#[macro_use]
mod conformance;

use std::path::{Path, PathBuf};

use dbcerts_store::{
    ApiKeyRecord, AuditEvent, AuditFilter, CaRecord, CertificateRecord, CertificateSummary,
    DatabaseUserRecord, Org, Page, Project, SqliteStore, Store, UserSecurityRecord,
};
use tempfile::TempDir;

/// A fresh store on a new file; keep the directory alive as long as the store.
async fn fresh_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&db_path(dir.path()))
        .await
        .expect("open SQLite store");
    (dir, store)
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("dbcerts.db")
}

/// The database file in `dir` turned back into what an older release left, by `statements`
/// (which undo later migrations); its URL and an open pool.
async fn as_an_older_release_left_it(
    dir: &Path,
    statements: &[&str],
) -> (String, sqlx::SqlitePool) {
    let url = format!("sqlite://{}", db_path(dir).display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    for statement in statements {
        sqlx::query(statement).execute(&db).await.unwrap();
    }
    (url, db)
}

/// An organization, its bootstrap API key and a project, with ids `first`, `first + 1` and
/// `first + 2` (24 hex digits).
fn org_key_project(first: u64, name: &str, public_key: &str) -> (Org, ApiKeyRecord, Project) {
    let org = Org {
        id: format!("{first:024x}"),
        name: name.into(),
        created: 1_700_000_000,
    };
    let key = ApiKeyRecord {
        id: format!("{:024x}", first + 1),
        org_id: org.id.clone(),
        public_key: public_key.into(),
        sealed_private_key: vec![1, 2, 3],
        description: "bootstrap".into(),
        org_roles: vec!["ORG_OWNER".into()],
        created: 1_700_000_001,
    };
    let project = Project {
        id: format!("{:024x}", first + 2),
        org_id: org.id.clone(),
        name: format!("{name} project"),
        created: 1_700_000_002,
        with_default_alerts_settings: false,
        tags_json: "[]".into(),
    };
    (org, key, project)
}

/// One `#[tokio::test]` per conformance check, each on its own fresh database file.
macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_dir, store) = fresh_store().await;
                conformance::$check(&store).await;
                conformance::assert_audit_log_intact(&store).await;
                assert_eq!(store.integrity_check().await.unwrap(), "ok");
                assert_eq!(store.inline_fallbacks(), 0, "every thread-side read ran there");
                assert_eq!(store.writer_fallbacks(), 0, "every batch ran on the writer thread");
                store.close().await;
            }
        )*
    };
}

for_each_check!(conformance_tests);

/// All checks, one after another, on a single store: they do not interfere with each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_store() {
    let (_dir, store) = fresh_store().await;
    conformance::run_all(&store).await;
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    assert_eq!(
        store.inline_fallbacks(),
        0,
        "every thread-side read ran there"
    );
    assert!(
        store.writer_batches() > 0,
        "the batches ran on the writer thread"
    );
    assert_eq!(
        store.writer_fallbacks(),
        0,
        "every batch ran on the writer thread"
    );
    store.close().await;
}

/// All checks again with every read and every batch through sqlx, as a store without a file
/// (or a URL with options) runs them: the path that the reads on the calling thread and the
/// batches on the writer thread fall back to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_with_everything_through_sqlx() {
    let (_dir, store) = fresh_store().await;
    let store = store
        .without_thread_side_reads()
        .without_thread_side_writes();
    conformance::run_all(&store).await;
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    assert_eq!(store.inline_fallbacks(), 0);
    assert_eq!(store.writer_batches(), 0);
    store.close().await;
}

#[tokio::test]
async fn integrity_check_is_ok() {
    let (_dir, store) = fresh_store().await;
    assert_eq!(
        store.integrity_check().await.unwrap(),
        "ok",
        "on a fresh file"
    );
    conformance::delete_project_cascades(&store).await;
    assert_eq!(
        store.integrity_check().await.unwrap(),
        "ok",
        "after writes and deletes"
    );
    store.close().await;
}

/// Two nodes (two stores on one file) appending from spawned tasks on a multi-threaded runtime
/// still build one unbroken store chain with unique seqs, then several chains at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_holds_across_two_nodes() {
    let (dir, first) = fresh_store().await;
    let second = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    let nodes = || -> (std::sync::Arc<dyn Store>, std::sync::Arc<dyn Store>) {
        (
            std::sync::Arc::new(first.clone()),
            std::sync::Arc::new(second.clone()),
        )
    };
    let (a, b) = nodes();
    conformance::audit_chain_holds_across_two_nodes(a, b).await;
    let (a, b) = nodes();
    conformance::audit_chains_hold_across_two_nodes(a, b).await;
    second.close().await;
    assert_eq!(first.integrity_check().await.unwrap(), "ok");
    first.close().await;
}

/// A chain cut short stays found after its next append (review 26, finding 2).
#[tokio::test]
async fn audit_truncation_survives_later_appends() {
    let (dir, store) = fresh_store().await;
    let url = format!("sqlite://{}", db_path(dir.path()).display());
    conformance::audit_truncation_survives_later_appends(
        &store,
        tamper_sql!(sqlx::SqliteConnection, url),
    )
    .await;
    store.close().await;
}

/// A chain cut short stays found after a group commit appends to it.
#[tokio::test]
async fn audit_truncation_survives_a_group_commit() {
    let (dir, store) = fresh_store().await;
    let url = format!("sqlite://{}", db_path(dir.path()).display());
    conformance::audit_truncation_survives_a_group_commit(
        &store,
        tamper_sql!(sqlx::SqliteConnection, url),
    )
    .await;
    store.close().await;
}

/// A chain whose recorded head is deleted is found, also after its next append.
#[tokio::test]
async fn audit_lost_head_is_found() {
    let (dir, store) = fresh_store().await;
    let url = format!("sqlite://{}", db_path(dir.path()).display());
    conformance::audit_lost_head_is_found(&store, tamper_sql!(sqlx::SqliteConnection, url)).await;
    store.close().await;
}

/// A whole chain deleted with its head, or cut back with it, is found through a checkpoint.
#[tokio::test]
async fn audit_deleted_chain_is_found_by_checkpoint() {
    let (dir, store) = fresh_store().await;
    let url = format!("sqlite://{}", db_path(dir.path()).display());
    conformance::audit_deleted_chain_is_found_by_checkpoint(
        &store,
        tamper_sql!(sqlx::SqliteConnection, url),
    )
    .await;
    store.close().await;
}

/// A release before migration 0012 appends without the chain columns (its INSERT is copied
/// here as it was); migration 0013's trigger refuses it, rather than let it add an entry
/// numbered 0 to the store chain (review 26, finding 4). The log stays intact.
#[tokio::test]
async fn audit_append_by_a_release_before_chains_is_refused() {
    use sqlx::Connection;
    let (dir, store) = fresh_store().await;
    let event = AuditEvent {
        at_ms: 1_700_000_000_000,
        actor: "operator".into(),
        source_ip: None,
        action: "current".into(),
        project_id: None,
        target: None,
        status: None,
        details: "{}".into(),
    };
    let first = store.append_audit(&event).await.unwrap();
    let url = format!("sqlite://{}", db_path(dir.path()).display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let old = sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, source_ip, action, project_id, target, status, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(first.seq + 1)
    .bind(1_700_000_000_001i64)
    .bind("operator")
    .bind(None::<String>)
    .bind("old-release")
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(None::<i64>)
    .bind("{}")
    .bind(&first.hash)
    .bind(vec![0u8; 32])
    .execute(&mut db)
    .await;
    let err = old
        .expect_err("an old release's append is refused")
        .to_string();
    assert!(err.contains("upgrade dbcerts"), "{err}");
    db.close().await.unwrap();
    conformance::assert_audit_log_intact(&store).await;
    store.close().await;
}

/// Editing or deleting one entry of one chain is found, and named by its seq and chain.
#[tokio::test]
async fn audit_tampering_in_one_chain_is_detected() {
    let (dir, store) = fresh_store().await;
    let url = format!("sqlite://{}", db_path(dir.path()).display());
    conformance::audit_tampering_is_detected(&store, tamper_sql!(sqlx::SqliteConnection, url))
        .await;
    store.close().await;
}

/// Two nodes on one file racing to create the same CAs end with one CA per project.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ca_race_across_two_nodes() {
    let (dir, first) = fresh_store().await;
    let second = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    conformance::ca_race_across_two_nodes(&first, &second).await;
    second.close().await;
    first.close().await;
}

/// Two nodes on one file rotating the same projects' CAs at once make one generation each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ca_rotation_race_across_two_nodes() {
    let (dir, first) = fresh_store().await;
    let second = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    conformance::ca_rotation_race_across_two_nodes(&first, &second).await;
    conformance::assert_audit_log_intact(&first).await;
    second.close().await;
    first.close().await;
}

/// Two nodes on one file recording the same Digest nonce counts: each is accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_nonce_count_accepted_once_across_two_nodes() {
    let (dir, first) = fresh_store().await;
    let second = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    conformance::digest_nonce_count_accepted_once_across_two_nodes(&first, &second).await;
    second.close().await;
    first.close().await;
}

/// Two nodes on one file committing batches of the same Digest nonces in opposite orders at
/// once: both commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_nonce_batches_in_opposite_orders_both_commit() {
    let (dir, first) = fresh_store().await;
    let second = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    conformance::digest_nonce_batches_in_opposite_orders_both_commit(&first, &second).await;
    second.close().await;
    first.close().await;
}

/// Everything committed before `close` is there after reopening the file, and reopening runs
/// the (already applied) migrations without error.
#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let (org, key, project) = org_key_project(1, "durable", "DURABLEKEY");
    let ca = CaRecord {
        id: 0,
        project_id: project.id.clone(),
        algorithm: "RSA".into(),
        cert_der: vec![0x30, 0x82, 0x01],
        sealed_key: vec![7; 32],
        not_before: 1_700_000_000,
        not_after: 2_000_000_000,
        generation: 1,
        active: true,
        retired_at: None,
    };
    let user = DatabaseUserRecord {
        project_id: project.id.clone(),
        database_name: "$external".into(),
        username: "CN=durable".into(),
        x509_type: "MANAGED".into(),
        created: 1_700_000_003,
        doc: "{}".into(),
    };
    let cert = CertificateRecord {
        serial: 4242,
        project_id: project.id.clone(),
        username: user.username.clone(),
        subject: "CN=durable".into(),
        not_before: 1_700_000_004,
        not_after: 1_800_000_000,
        created_ms: 1_700_003_604_000,
        cert_der: vec![0x30, 0x82, 0x02],
        ca_id: 1,
        revocation: None,
    };
    let security = UserSecurityRecord {
        customer_cas: Some("PEM".into()),
        ldap_json: None,
    };
    let secret = vec![0xab; 16];
    let issued = AuditEvent {
        at_ms: cert.created_ms,
        actor: "operator".into(),
        source_ip: None,
        action: "certificate.issued".into(),
        project_id: Some(project.id.clone()),
        target: Some(user.username.clone()),
        status: None,
        details: format!(r#"{{"serial":{}}}"#, cert.serial),
    };

    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.create_org_with_key(&org, &key).await.unwrap();
        store.create_project(&project).await.unwrap();
        assert_eq!(store.insert_ca_if_absent(&ca).await.unwrap().id, cert.ca_id);
        store.create_database_user(&user).await.unwrap();
        store.insert_certificate(&cert, &issued).await.unwrap();
        store
            .put_user_security(&project.id, &security)
            .await
            .unwrap();
        assert_eq!(
            store
                .get_or_insert_secret("nonce-key", &secret)
                .await
                .unwrap(),
            secret
        );
        store.close().await;
    }

    for round in 0..2 {
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            store.integrity_check().await.unwrap(),
            "ok",
            "round {round}"
        );
        assert!(!store.is_empty().await.unwrap());
        assert_eq!(store.get_org(&org.id).await.unwrap(), Some(org.clone()));
        assert_eq!(
            store.get_api_key(&key.public_key).await.unwrap(),
            Some(key.clone())
        );
        assert_eq!(
            store.get_project(&project.id).await.unwrap(),
            Some(project.clone())
        );
        assert_eq!(
            store.get_active_ca(&project.id).await.unwrap(),
            Some(CaRecord {
                id: 1,
                ..ca.clone()
            })
        );
        assert_eq!(
            store
                .get_certificate(&project.id, cert.serial)
                .await
                .unwrap(),
            Some(cert.clone())
        );
        assert_eq!(
            store
                .get_database_user(&project.id, &user.database_name, &user.username)
                .await
                .unwrap(),
            Some(user.clone())
        );
        let expected = CertificateSummary {
            serial: cert.serial,
            subject: cert.subject.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
        };
        assert_eq!(
            store
                .list_unexpired_certificates(
                    &project.id,
                    &user.username,
                    1_750_000_000,
                    Page {
                        offset: 0,
                        limit: 10
                    }
                )
                .await
                .unwrap(),
            (vec![expected], 1)
        );
        assert_eq!(
            store.get_user_security(&project.id).await.unwrap(),
            security
        );
        assert_eq!(
            store
                .get_or_insert_secret("nonce-key", &[0; 16])
                .await
                .unwrap(),
            secret
        );
        let audit = store
            .list_audit(&AuditFilter::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(audit.len(), 1, "round {round}: {audit:?}");
        assert_eq!(audit[0].event, issued);
        assert!(audit[0].is_intact());
        // Constraints still hold after reopening.
        assert!(matches!(
            store.insert_certificate(&cert, &issued).await,
            Err(dbcerts_store::StoreError::Conflict("certificate serial"))
        ));
        store.close().await;
    }
}

/// Eight processes' worth of stores opening one new file at once all start: the migration lock
/// file makes them migrate one after the other, and each migration is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opening_at_once_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await })
        })
        .collect();
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("every store opens"));
    }
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        applied,
        conformance::migration_versions("sqlite")
            .into_iter()
            .map(|version| (version, true))
            .collect::<Vec<_>>()
    );
    assert_eq!(applied.len() as i64, conformance::migration_count("sqlite"));
    db.close().await;
    for s in stores {
        assert!(s.is_empty().await.unwrap());
        s.close().await;
    }
}

/// An older release keeps opening a file that a newer one migrated further.
#[tokio::test]
async fn older_release_opens_newer_schema() {
    let (dir, store) = fresh_store().await;
    store.close().await;
    drop(store);
    let path = db_path(dir.path());
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', 1, x'00', 1)",
    )
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
    let older = SqliteStore::open(&path).await.expect("older release opens");
    assert_eq!(older.integrity_check().await.unwrap(), "ok");
    older.close().await;
}

/// `restore` can tell whether the file is open: the serve lock is held while any store is.
#[tokio::test]
async fn serve_lock_is_held_while_open() {
    let (dir, store) = fresh_store().await;
    let path = db_path(dir.path());
    assert!(dbcerts_store::try_lock_unused(&path).unwrap().is_none());
    let clone = store.clone();
    store.close().await;
    drop(store);
    assert!(
        dbcerts_store::try_lock_unused(&path).unwrap().is_none(),
        "a clone still holds it"
    );
    drop(clone);
    let exclusive = dbcerts_store::try_lock_unused(&path).unwrap();
    assert!(exclusive.is_some(), "free once every store is dropped");
}

/// Migration 5 counts the certificates a store already holds, and its triggers count the ones
/// written by anything, including a writer that knows nothing of the count (a node still on the
/// previous version): the list's totals stay right across the upgrade.
#[tokio::test]
async fn certificate_counts_cover_existing_and_directly_written_rows() {
    let (dir, store) = fresh_store().await;
    let (org, key, project) = org_key_project(11, "counted", "COUNTEDKEY");
    store.create_org_with_key(&org, &key).await.unwrap();
    store.create_project(&project).await.unwrap();
    let now = 1_800_000_000;
    let cert = |serial: i64, username: &str, not_after: i64| CertificateRecord {
        serial,
        project_id: project.id.clone(),
        username: username.into(),
        subject: format!("CN={username}"),
        not_before: now - 1000 + serial,
        not_after,
        created_ms: (now - 1000 + serial) * 1000,
        cert_der: vec![0x30, 0x00],
        ca_id: 0,
        revocation: None,
    };
    let audit = AuditEvent {
        at_ms: now * 1000,
        actor: "test".into(),
        source_ip: None,
        action: "certificate.issued".into(),
        project_id: Some(project.id.clone()),
        target: None,
        status: None,
        details: "{}".into(),
    };
    // Certificates are recorded for MANAGED X.509 users only.
    for username in ["alice", "bob"] {
        let user = dbcerts_store::DatabaseUserRecord {
            project_id: project.id.clone(),
            database_name: "$external".into(),
            username: username.into(),
            x509_type: "MANAGED".into(),
            created: now,
            doc: "{}".into(),
        };
        store.create_database_user(&user).await.unwrap();
    }
    for c in [
        cert(1, "alice", now + 10),
        cert(2, "alice", now - 10),
        cert(3, "bob", now + 10),
    ] {
        store.insert_certificate(&c, &audit).await.unwrap();
    }
    store.close().await;
    drop(store);

    // The store as the previous version left it: no count, no triggers, no migration 5.
    let (url, db) = as_an_older_release_left_it(
        dir.path(),
        &[
            "DROP TRIGGER certificates_counted_on_insert",
            "DROP TRIGGER certificates_counted_on_delete",
            "DROP INDEX certificates_by_user_expiry",
            "DROP TABLE certificate_counts",
            "DELETE FROM _sqlx_migrations WHERE version = 5",
        ],
    )
    .await;
    let direct = "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert)
                  VALUES ($1, $2, 'alice', 'CN=alice', $3, $4, $5, x'3000')";
    // An old node's write before the upgrade.
    sqlx::query(direct)
        .bind(4_i64)
        .bind(&project.id)
        .bind(now - 900)
        .bind(now + 10)
        .bind((now - 900) * 1000)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    let store = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    // An old node's write after the upgrade.
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(direct)
        .bind(5_i64)
        .bind(&project.id)
        .bind(now - 800)
        .bind(now + 10)
        .bind((now - 800) * 1000)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let page = Page {
        offset: 0,
        limit: 100,
    };
    let listed = |user: &'static str| {
        let store = &store;
        let project = project.id.clone();
        async move {
            let (certs, total) = store
                .list_unexpired_certificates(&project, user, now, page)
                .await
                .unwrap();
            (certs.iter().map(|c| c.serial).collect::<Vec<_>>(), total)
        }
    };
    assert_eq!(listed("alice").await, (vec![1, 4, 5], 3));
    assert_eq!(listed("bob").await, (vec![3], 1));
    assert_eq!(listed("nobody").await, (vec![], 0));
    // Deleting the project takes its counts with it.
    assert!(store.delete_project(&project.id).await.unwrap());
    store.create_project(&project).await.unwrap();
    assert_eq!(listed("alice").await, (vec![], 0));
    store.close().await;
}

/// Migration 0007 gives certificates written before it the project's CA, and a node still on
/// the previous version, which inserts without `ca_id`, gets it filled by the trigger.
#[tokio::test]
async fn certificates_without_ca_id_get_the_active_ca() {
    let (dir, store) = fresh_store().await;
    let (org, key, project) = org_key_project(12, "revocable", "REVOCABLEKEY");
    store.create_org_with_key(&org, &key).await.unwrap();
    store.create_project(&project).await.unwrap();
    let ca = store
        .insert_ca_if_absent(&CaRecord {
            id: 0,
            project_id: project.id.clone(),
            algorithm: "ECDSA".into(),
            cert_der: vec![0x30, 0x01],
            sealed_key: vec![1; 32],
            not_before: 1_700_000_000,
            not_after: 2_000_000_000,
            generation: 1,
            active: true,
            retired_at: None,
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);

    // The store as the previous version left it: no migration 7 (nor 8, 9 and 10, which build
    // on it).
    let (url, db) = as_an_older_release_left_it(
        dir.path(),
        &[
            "DROP INDEX certificates_by_ca_expiry",
            "DROP INDEX project_cas_generation",
            "ALTER TABLE project_cas DROP COLUMN generation",
            "ALTER TABLE project_cas DROP COLUMN retired_at",
            "DELETE FROM _sqlx_migrations WHERE version = 9",
            "DROP TRIGGER crl_revision_on_revoke",
            "DROP TRIGGER crl_revision_on_revoked_insert",
            "DROP TRIGGER crl_revision_on_revoked_delete",
            "DROP TABLE crl_state",
            "DROP TABLE crl_distribution",
            "DELETE FROM _sqlx_migrations WHERE version = 8",
            "DROP TRIGGER certificates_ca_id_on_insert",
            "DROP INDEX certificates_revoked_by_ca",
            "DROP INDEX certificates_revoked_by_user",
            "ALTER TABLE certificates DROP COLUMN ca_id",
            "ALTER TABLE certificates DROP COLUMN revoked_at",
            "ALTER TABLE certificates DROP COLUMN revocation_reason",
            "DELETE FROM _sqlx_migrations WHERE version IN (7, 10)",
        ],
    )
    .await;
    let direct = "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert)
                  VALUES ($1, $2, 'alice', 'CN=alice', 1700000000, 1800000000, 1700000000000, x'3000')";
    // An old node's write before the upgrade.
    sqlx::query(direct)
        .bind(1_i64)
        .bind(&project.id)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    let store = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    // An old node's write after the upgrade.
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(direct)
        .bind(2_i64)
        .bind(&project.id)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    for serial in [1, 2] {
        let c = store
            .get_certificate(&project.id, serial)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.ca_id, c.revocation), (ca.id, None), "serial {serial}");
    }
    store.close().await;
}

/// Migration 0015 derives each audit entry's chain from its project instead of storing it: an
/// entry whose chain is not its project's (the store chain's entries written before 0012, which
/// carry a project id) keeps its chain, the log still verifies, and appends go on in both
/// chains. A release of 0012 to 0014, which names `chain` in its INSERT, is refused afterwards
/// and the log stays whole.
#[tokio::test]
async fn audit_chains_survive_migration_0015() {
    use dbcerts_store::{AuditEntry, ChainCheck, verify_audit_chains};

    let (dir, store) = fresh_store().await;
    let project = "0000000000000000000000aa".to_owned();
    let event = |action: &str, project_id: Option<&str>| AuditEvent {
        at_ms: 1_700_000_000_000,
        actor: "operator".into(),
        source_ip: None,
        action: action.into(),
        project_id: project_id.map(str::to_owned),
        target: None,
        status: None,
        details: "{}".into(),
    };
    let store_head = store.append_audit(&event("store", None)).await.unwrap();
    store
        .append_audit(&event("project", Some(&project)))
        .await
        .unwrap();
    store.close().await;
    drop(store);

    // The file as 0012 to 0014 left it: `chain` stored in every row, and the three filter
    // indexes.
    let (url, db) = as_an_older_release_left_it(
        dir.path(),
        &[
            "DROP TRIGGER audit_log_refuses_unchained_appends",
            "DROP INDEX audit_log_by_chain",
            "ALTER TABLE audit_log ADD COLUMN chain_stored TEXT NOT NULL DEFAULT ''",
            "UPDATE audit_log SET chain_stored = chain",
            "ALTER TABLE audit_log DROP COLUMN chain",
            "ALTER TABLE audit_log DROP COLUMN chain_override",
            "ALTER TABLE audit_log RENAME COLUMN chain_stored TO chain",
            "CREATE UNIQUE INDEX audit_log_by_chain ON audit_log (chain, chain_seq)",
            "CREATE INDEX audit_log_by_project ON audit_log (project_id, seq)",
            "CREATE INDEX audit_log_by_actor ON audit_log (actor, seq)",
            "CREATE INDEX audit_log_by_time ON audit_log (at_ms)",
            "CREATE TRIGGER audit_log_refuses_unchained_appends BEFORE INSERT ON audit_log
             WHEN NEW.chain_seq < 1 BEGIN SELECT RAISE(ABORT, 'upgrade dbcerts'); END",
            "DELETE FROM _sqlx_migrations WHERE version = 15",
        ],
    )
    .await;
    // An entry of the store chain that carries a project id, as every entry written before
    // 0012 is, appended as a release of that schema appends (its INSERT names `chain`).
    let legacy = event("legacy", Some(&project));
    let hash = AuditEntry::chain_hash(&store_head.hash, 2, &legacy);
    let insert_naming_chain = "INSERT INTO audit_log (seq, chain, chain_seq, prev_seq, at_ms, actor, source_ip, action,
                                   project_id, target, status, details, prev_hash, hash)
         VALUES ((SELECT MAX(seq) + 1 FROM audit_log), $1, $2, $3, $4, $5, NULL, $6, $7, NULL, NULL, '{}', $8, $9)
         RETURNING seq";
    let legacy_seq: i64 = sqlx::query_scalar(insert_naming_chain)
        .bind("")
        .bind(2_i64)
        .bind(store_head.seq)
        .bind(legacy.at_ms)
        .bind(&legacy.actor)
        .bind(&legacy.action)
        .bind(&project)
        .bind(&store_head.hash)
        .bind(&hash)
        .fetch_one(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_chain_heads SET chain_seq = 2, seq = $1, hash = $2 WHERE chain = ''")
        .bind(legacy_seq)
        .bind(&hash)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    let store = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    let chain_of = |seq: i64, chain: &str| {
        let store = &store;
        let chain = chain.to_owned();
        async move {
            let filter = AuditFilter {
                chain: Some(chain),
                ..AuditFilter::default()
            };
            store
                .list_audit(&filter, 0, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| e.seq == seq)
        }
    };
    assert!(chain_of(legacy_seq, "").await, "kept in the store chain");
    assert!(!chain_of(legacy_seq, &project).await);
    store.append_audit(&event("store", None)).await.unwrap();
    store
        .append_audit(&event("project", Some(&project)))
        .await
        .unwrap();
    match verify_audit_chains(&store).await.unwrap() {
        ChainCheck::Intact {
            entries, chains, ..
        } => {
            assert_eq!(entries, 5);
            let lengths: Vec<(String, u64)> =
                chains.into_iter().map(|c| (c.chain, c.entries)).collect();
            assert_eq!(lengths, [("".to_owned(), 3), (project.clone(), 2)]);
        }
        broken => panic!("{broken:?}"),
    }

    // Only the legacy entry stores its chain; the others derive it.
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let stored: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM audit_log WHERE chain_override IS NOT NULL")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(stored, [legacy_seq]);
    // A release of 0012 to 0014 cannot append any more, and nothing changed.
    let refused = sqlx::query(insert_naming_chain)
        .bind(&project)
        .bind(3_i64)
        .bind(0_i64)
        .bind(legacy.at_ms)
        .bind(&legacy.actor)
        .bind("old-release")
        .bind(&project)
        .bind(&hash)
        .bind(&hash)
        .execute(&db)
        .await
        .expect_err("an append naming the chain is refused")
        .to_string();
    assert!(refused.contains("generated column"), "{refused}");
    db.close().await;
    assert!(matches!(
        verify_audit_chains(&store).await.unwrap(),
        ChainCheck::Intact { entries: 5, .. }
    ));
    store.close().await;
}

/// The batch of PostgreSQL's round-trip check gets the same outcomes on SQLite's writer thread.
#[tokio::test]
async fn mixed_batch_outcomes() {
    let (_dir, store) = fresh_store().await;
    let (batch, outcomes) = conformance::mixed_batch(&store, 90, 50).await;
    assert_eq!(store.commit_batch(&batch).await.unwrap(), outcomes);
    conformance::assert_audit_log_intact(&store).await;
    store.close().await;
}

/// A chain head edited outside dbcerts into another SQLite type (its hash as TEXT) does not stop
/// the writer thread's group commits: the batch commits with an `audit.chain.mismatch` entry
/// first, as the sqlx path reads it (review of stop 28: the writer refused such batches).
#[tokio::test]
async fn a_head_of_another_type_does_not_stop_group_commits() {
    use dbcerts_store::{AuditEntry, BatchWrite, Recorded};
    let (dir, store) = fresh_store().await;
    let event = |action: &str| AuditEvent {
        at_ms: 1_700_000_000_000,
        actor: "operator".into(),
        source_ip: None,
        action: action.into(),
        project_id: None,
        target: None,
        status: None,
        details: "{}".into(),
    };
    let first = [BatchWrite::Audit(event("first"))];
    assert_eq!(store.commit_batch(&first).await.unwrap(), [Recorded::Yes]);
    let url = format!("sqlite://{}", db_path(dir.path()).display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE audit_chain_heads SET hash = 'edited' WHERE chain = ''")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let batches = store.writer_batches();
    let next = [BatchWrite::Audit(event("next"))];
    assert_eq!(store.commit_batch(&next).await.unwrap(), [Recorded::Yes]);
    assert_eq!(
        store.writer_batches(),
        batches + 1,
        "ran on the writer thread"
    );
    assert_eq!(store.writer_fallbacks(), 0);
    let actions: Vec<String> = store
        .list_audit(&AuditFilter::default(), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(actions, ["first", AuditEntry::CHAIN_MISMATCH, "next"]);
    store.close().await;
}
