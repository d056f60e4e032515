//! `dbcerts_bench::seed` on a store bootstrapped the way `dbcerts serve` bootstraps one.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use dbcerts::app::{App, open_checked_store};
use dbcerts::cli::{GlobalArgs, ServeArgs};
use dbcerts::config::Settings;
use dbcerts_bench::seed::{HOT_USER, SeedOptions, SeedReport, seed, user_name};
use dbcerts_store::{AuditFilter, ChainCheck, Page, Store, verify_audit_chains};
use sqlx::{Connection, Row};
use x509_parser::prelude::*;

const PROJECTS: usize = 2;
const USERS: usize = 3;

fn settings(dir: &Path) -> Settings {
    let global = GlobalArgs {
        data_dir: Some(dir.to_owned()),
        key_algorithm: Some("ecdsa-p256".into()),
        ..Default::default()
    };
    let serve = ServeArgs {
        key_pool_size: Some(0),
        ..Default::default()
    };
    Settings::resolve(&global, &serve).unwrap()
}

/// What `dbcerts serve` does before it listens: open, bootstrap, write the credentials. Then
/// stop, releasing the database.
async fn bootstrap(settings: &Settings) {
    let app = App::build(settings.clone()).await.unwrap();
    let pool = std::sync::Arc::clone(app.state.pool());
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .unwrap();
    app.store.close().await;
    drop(app);
    assert!(
        settings
            .data_dir
            .join("bootstrap-credentials.json")
            .exists()
    );
}

fn options(certificates: u64) -> SeedOptions {
    SeedOptions {
        projects: PROJECTS,
        users_per_project: USERS,
        certificates,
        hot_user_certificates: 25,
        // Several transactions, and chunks from both threads in one transaction.
        batch: 7,
        threads: 2,
        key_ring: 4,
        ..SeedOptions::default()
    }
}

async fn run(settings: &Settings, certificates: u64) -> SeedReport {
    seed(settings, &options(certificates), &|line: &str| {
        eprintln!("{line}")
    })
    .await
    .unwrap()
}

/// Unexpired certificates per `(project id, username)` of every benchmark user.
async fn listed(store: &dyn Store, hot_project: &str) -> HashMap<(String, String), u64> {
    let orgs = {
        let p = store.get_project(hot_project).await.unwrap().unwrap();
        vec![p.org_id]
    };
    let (projects, _) = store
        .list_projects(
            &orgs,
            Page {
                offset: 0,
                limit: 100,
            },
        )
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut out = HashMap::new();
    for (p, name) in ["bench-000", "bench-001"].iter().enumerate() {
        let project = projects.iter().find(|x| x.name == *name).unwrap();
        for slot in 0..USERS {
            let user = user_name(p, slot, USERS);
            let db_user = store
                .get_database_user(&project.id, "$external", &user)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("user {user} in {name}"));
            assert_eq!(db_user.x509_type, "MANAGED");
            let (page, total) = store
                .list_unexpired_certificates(
                    &project.id,
                    &user,
                    now,
                    Page {
                        offset: 0,
                        limit: 100,
                    },
                )
                .await
                .unwrap();
            assert_eq!(page.len() as u64, total);
            assert!(page.iter().all(|c| c.subject == format!("CN={user}")));
            assert!(page.windows(2).all(|w| w[0].not_before <= w[1].not_before));
            out.insert((project.id.clone(), user), total);
        }
    }
    out
}

fn verify_signature(leaf: &X509Certificate<'_>, ca: &X509Certificate<'_>) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    assert_eq!(
        leaf.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.10045.4.3.2",
        "ecdsa-with-SHA256"
    );
    let key = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        ca.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(
        leaf.tbs_certificate.as_ref(),
        leaf.signature_value.data.as_ref(),
    )
    .expect("the leaf verifies under its project's CA key");
    assert_eq!(leaf.issuer(), ca.subject());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_real_certificates_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    bootstrap(&settings).await;
    let creds: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("bootstrap-credentials.json")).unwrap(),
    )
    .unwrap();
    let public_key = creds["publicKey"].as_str().unwrap().to_owned();

    let first = run(&settings, 60).await;
    assert_eq!(first.projects, PROJECTS);
    assert_eq!(first.projects_created, PROJECTS);
    assert_eq!(first.users, PROJECTS * USERS);
    assert_eq!(first.users_created, PROJECTS * USERS);
    assert_eq!((first.certificates_before, first.added), (0, 60));
    assert_eq!(first.certificates, 60);
    assert_eq!(first.hot_user_certificates, 25);
    assert_eq!(first.hot_user, HOT_USER);
    let text = first.json_line();
    assert!(
        text.starts_with(
            r#"{"projects":2,"users":6,"certificates":60,"hot_user":"hot","hot_project":""#
        ),
        "{text}"
    );
    let line: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(line["certificates"], 60);
    assert_eq!(line["users"], 6);
    assert_eq!(line["hot_user"], "hot");
    assert_eq!(line["hot_project"], first.hot_project.as_str());

    let (backend, _) = open_checked_store(&settings).await.unwrap();
    let counts = listed(backend.store(), &first.hot_project).await;
    let hot = (first.hot_project.clone(), HOT_USER.to_owned());
    assert_eq!(counts[&hot], 25);
    assert_eq!(counts.values().sum::<u64>(), 60);
    // The other five share the remaining 35 evenly.
    assert!(
        counts.iter().all(|(k, n)| *k == hot || *n == 7),
        "{counts:?}"
    );

    // While the store is open, seeding refuses.
    let err = seed(&settings, &options(80), &|_: &str| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("open in another process"), "{err}");
    backend.close().await;
    drop(backend);

    let second = run(&settings, 80).await;
    assert_eq!((second.projects_created, second.users_created), (0, 0));
    assert_eq!((second.certificates_before, second.added), (60, 20));
    assert_eq!(second.certificates, 80);
    assert_eq!(second.hot_project, first.hot_project);
    let third = run(&settings, 80).await;
    assert_eq!((third.certificates, third.added), (80, 0));

    let (backend, _) = open_checked_store(&settings).await.unwrap();
    let store = backend.store();
    let counts = listed(store, &first.hot_project).await;
    assert_eq!(counts[&hot], 25);
    assert_eq!(counts.values().sum::<u64>(), 80);
    assert!(
        counts.iter().all(|(k, n)| *k == hot || *n == 11),
        "{counts:?}"
    );

    // Every stored certificate is real: CN = username, signed by its project's managed CA.
    let db = dir.path().join("dbcerts.db");
    let mut conn = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true),
    )
    .await
    .unwrap();
    let rows =
        sqlx::query("SELECT serial, project_id, username, not_after, cert FROM certificates")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    assert_eq!(rows.len(), 80);
    let mut cas = HashMap::new();
    let mut serials = BTreeSet::new();
    for row in &rows {
        let project: String = row.get("project_id");
        let username: String = row.get("username");
        let serial: i64 = row.get("serial");
        let der: Vec<u8> = row.get("cert");
        if !cas.contains_key(&project) {
            let ca = store.get_active_ca(&project).await.unwrap().unwrap();
            cas.insert(project.clone(), ca.cert_der);
        }
        let (_, ca) = parse_x509_certificate(&cas[&project]).unwrap();
        let (rest, leaf) = parse_x509_certificate(&der).unwrap();
        assert!(rest.is_empty());
        let cn = leaf.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), username);
        assert_eq!(leaf.serial.to_string(), serial.to_string());
        assert_eq!(
            leaf.validity().not_after.timestamp(),
            row.get::<i64, _>("not_after")
        );
        verify_signature(&leaf, &ca);
        serials.insert(serial);
    }
    assert_eq!(cas.len(), PROJECTS);

    // The audit chains are intact, with one certificate.issued entry per certificate.
    match verify_audit_chains(store).await.unwrap() {
        ChainCheck::Intact { entries, .. } => assert!(entries >= 80, "{entries}"),
        broken => panic!("audit chain: {broken:?}"),
    }
    let entries = store
        .list_audit(&AuditFilter::default(), 0, 10_000)
        .await
        .unwrap();
    let issued: Vec<_> = entries
        .iter()
        .filter(|e| e.event.action == "certificate.issued")
        .collect();
    assert_eq!(issued.len(), 80);
    let mut audited = BTreeSet::new();
    for e in issued {
        assert_eq!(e.event.actor, format!("api-key:{public_key}"));
        assert_eq!(e.event.status, Some(201));
        let details: serde_json::Value = serde_json::from_str(&e.event.details).unwrap();
        assert_eq!(details["algorithm"], "ecdsa-p256");
        assert!(details["subject"].as_str().unwrap().starts_with("CN="));
        audited.insert(details["serial"].as_i64().unwrap());
    }
    assert_eq!(audited, serials);
    backend.close().await;
}
