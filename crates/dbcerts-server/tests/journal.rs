//! The journal's group commit, on a real SQLite file: concurrent certificates and audit entries
//! share transactions, each caller learns its own write's fate, and the audit chain stays whole.

use std::sync::Arc;
use std::time::Duration;

use dbcerts_server::journal::Journal;
use dbcerts_store::{
    ApiKeyRecord, AuditEvent, AuditFilter, CertificateRecord, DatabaseUserRecord, Org, Project,
    SqliteStore, Store, StoreError,
};
use sqlx::Connection;

const T0: i64 = 1_800_000_000;
const ORG: &str = "5f0000000000000000000001";
const PROJECT: &str = "5f0000000000000000000002";

async fn store_with_project(dir: &std::path::Path) -> Arc<SqliteStore> {
    let store = SqliteStore::open(&dir.join("dbcerts.db")).await.unwrap();
    let org = Org {
        id: ORG.into(),
        name: "org".into(),
        created: T0,
    };
    let key = ApiKeyRecord {
        id: "5f0000000000000000000003".into(),
        org_id: ORG.into(),
        public_key: "abcdefgh".into(),
        sealed_private_key: vec![0; 40],
        description: "test".into(),
        org_roles: vec!["ORG_OWNER".into()],
        created: T0,
    };
    store.create_org_with_key(&org, &key).await.unwrap();
    let project = Project {
        id: PROJECT.into(),
        org_id: ORG.into(),
        name: "p".into(),
        created: T0,
        with_default_alerts_settings: true,
        tags_json: "[]".into(),
    };
    store.create_project(&project).await.unwrap();
    // The store records certificates of MANAGED X.509 users only.
    let alice = DatabaseUserRecord {
        project_id: PROJECT.into(),
        database_name: "$external".into(),
        username: "alice".into(),
        x509_type: "MANAGED".into(),
        created: T0,
        doc: "{}".into(),
    };
    store.create_database_user(&alice).await.unwrap();
    Arc::new(store)
}

fn record(serial: i64, project_id: &str) -> (CertificateRecord, AuditEvent) {
    let cert = CertificateRecord {
        serial,
        project_id: project_id.into(),
        username: "alice".into(),
        subject: "CN=alice".into(),
        not_before: T0 + serial,
        not_after: T0 + 86_400,
        created_ms: (T0 + serial) * 1000,
        cert_der: vec![0x30, 0x03, 0x02, 0x01, serial as u8],
        ca_id: 0,
        revocation: None,
    };
    let audit = AuditEvent {
        at_ms: cert.created_ms,
        actor: "test".into(),
        source_ip: None,
        action: "certificate.issued".into(),
        project_id: Some(project_id.into()),
        target: Some("alice".into()),
        status: Some(201),
        details: format!(r#"{{"serial":{serial}}}"#),
    };
    (cert, audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_keep_their_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_project(dir.path()).await;
    let journal = Journal::new(store.clone());
    let audit_before = store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();

    // Another connection holds SQLite's write lock, so the first commit waits and every
    // certificate issued meanwhile queues behind it.
    let url = format!("sqlite://{}", dir.path().join("dbcerts.db").display());
    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for serial in 1..=64 {
        let journal = journal.clone();
        // Serial 7 twice: exactly one of the two may be recorded. A project that does not
        // exist: refused alone.
        let (serial, project) = match serial {
            64 => (7, PROJECT),
            63 => (63, "5f00000000000000000000ff"),
            n => (n, PROJECT),
        };
        tasks.push(tokio::spawn(async move {
            let (cert, audit) = record(serial, project);
            (
                serial,
                project,
                journal.insert_certificate(cert, audit).await,
            )
        }));
    }
    // Audit entries of other requests, queued among them.
    let audits: Vec<_> = (0..16)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let (_, mut event) = record(1000 + i, PROJECT);
                event.action = format!("POST /request/{i}");
                journal.append_audit(event).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();

    let mut recorded = Vec::new();
    let (mut conflicts, mut gone) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (serial, _, Ok(())) => recorded.push(serial),
            (7, _, Err(StoreError::Conflict("certificate serial"))) => conflicts += 1,
            (63, _, Err(StoreError::Gone)) => gone += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    for a in audits {
        a.await
            .unwrap()
            .expect("an audit entry alone is always recorded");
    }
    recorded.sort_unstable();
    assert_eq!((conflicts, gone), (1, 1));
    assert_eq!(recorded, (1..=62).collect::<Vec<i64>>());

    let stats = journal.stats();
    assert_eq!(stats.writes, 80);
    assert!(
        stats.commits <= 3,
        "80 writes queued behind one lock should take a few transactions, not {}",
        stats.commits
    );

    // One audit entry per recorded certificate and per audit write, chained.
    let audit: Vec<_> = store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .skip(audit_before.len())
        .collect();
    assert_eq!(audit.len(), 62 + 16);
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.event.action.starts_with("POST /request/"))
            .count(),
        16
    );
    assert!(audit.iter().all(|e| e.is_intact()));
    assert!(audit.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    let (listed, total) = store
        .list_unexpired_certificates(
            PROJECT,
            "alice",
            T0,
            dbcerts_store::Page {
                offset: 0,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 62);
    assert_eq!(
        listed.iter().map(|c| c.serial).collect::<Vec<_>>(),
        recorded
    );
}
