//! The store conformance suite (`tests/conformance/mod.rs`) run against [`SqliteStore`] on a
//! real database file in a temporary directory, one test per check, plus the checks that only
//! make sense for SQLite (integrity check, durability across close and reopen).

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
                store.close().await;
            }
        )*
    };
}

conformance_tests!(
    is_empty_until_first_org,
    org_and_api_key_round_trip,
    create_org_with_key_is_atomic,
    secret_first_value_wins,
    secret_concurrent_inserts_agree,
    project_round_trip,
    project_name_unique_per_org,
    list_projects_filters_orders_and_pages,
    delete_project_cascades,
    ca_first_insert_wins,
    ca_concurrent_inserts_agree,
    database_user_round_trip,
    database_user_unique_key,
    list_database_users_orders_and_pages,
    update_database_user,
    delete_database_user,
    certificate_serial_unique,
    list_unexpired_certificates_filters_orders_and_pages,
    certificates_outlive_database_user_but_not_project,
    user_security_default_put_overwrite_clear,
    database_user_limit_is_atomic,
    api_key_create_and_get,
    api_key_public_key_unique,
    create_api_key_with_grants_is_atomic,
    list_api_keys_filters_orders_and_pages,
    update_api_key_replaces_description_and_roles,
    delete_api_key_takes_grants_and_access_list,
    api_key_auth_bundles_grants_and_access_list,
    grants_put_replace_list_delete,
    access_list_add_keeps_existing_and_deletes_once,
    service_account_round_trip,
    list_service_accounts_filters_orders_and_pages,
    update_service_account,
    service_account_secrets_add_list_delete_touch,
    delete_service_account_cascades,
    service_account_auth_bundles_everything,
    revoked_tokens_remembered_until_expiry,
    audit_log_starts_at_genesis,
    audit_append_chains_entries,
    list_audit_filters,
    audit_concurrent_appends_keep_the_chain,
    insert_certificate_appends_one_audit_entry,
);

/// All checks, one after another, on a single store: they do not interfere with each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_store() {
    let (_dir, store) = fresh_store().await;
    conformance::run_all(&store).await;
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
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
/// still build one unbroken audit chain with unique seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_holds_across_two_nodes() {
    let (dir, first) = fresh_store().await;
    let second = SqliteStore::open(&db_path(dir.path())).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..16u16 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..5 {
                let event = AuditEvent {
                    at_ms: 1_700_000_000_000 + i,
                    actor: format!("node-writer-{w}"),
                    source_ip: None,
                    action: "concurrent".into(),
                    project_id: None,
                    target: None,
                    status: Some(w),
                    details: "{}".into(),
                };
                seqs.push(store.append_audit(&event).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=80).collect::<Vec<i64>>());
    conformance::assert_audit_log_intact(&first).await;
    conformance::assert_audit_log_intact(&second).await;
    second.close().await;
    assert_eq!(first.integrity_check().await.unwrap(), "ok");
    first.close().await;
}

/// Everything committed before `close` is there after reopening the file, and reopening runs
/// the (already applied) migrations without error.
#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let org = Org {
        id: format!("{:024x}", 1),
        name: "durable".into(),
        created: 1_700_000_000,
    };
    let key = ApiKeyRecord {
        id: format!("{:024x}", 2),
        org_id: org.id.clone(),
        public_key: "DURABLEKEY".into(),
        sealed_private_key: vec![1, 2, 3],
        description: "bootstrap".into(),
        org_roles: vec!["ORG_OWNER".into()],
        created: 1_700_000_001,
    };
    let project = Project {
        id: format!("{:024x}", 3),
        org_id: org.id.clone(),
        name: "durable project".into(),
        created: 1_700_000_002,
        with_default_alerts_settings: false,
        tags_json: "[]".into(),
    };
    let ca = CaRecord {
        project_id: project.id.clone(),
        algorithm: "RSA".into(),
        cert_der: vec![0x30, 0x82, 0x01],
        sealed_key: vec![7; 32],
        not_before: 1_700_000_000,
        not_after: 2_000_000_000,
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
        store.insert_ca_if_absent(&ca).await.unwrap();
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
            Some(ca.clone())
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
