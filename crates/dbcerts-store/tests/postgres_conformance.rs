//! The store conformance suite (`tests/conformance/mod.rs`) run against [`PgStore`] on a real
//! PostgreSQL: one fresh database per test, created through the superuser URL in
//! `DBCERTS_TEST_POSTGRES_URL` (which `scripts/test` sets after starting a throw-away cluster),
//! plus the checks that need two nodes on one database and the migration lock.
//!
//! Without `DBCERTS_TEST_POSTGRES_URL` the tests say so and pass, unless `CI` is set, where a
//! missing database is a failure: the CI run must exercise PostgreSQL.

#[macro_use]
mod conformance;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dbcerts_store::{PgStore, Store, StoreError};
use sqlx::Connection;

/// The superuser URL of the test cluster, or `None` (outside CI) to skip.
fn admin_url() -> Option<String> {
    match std::env::var("DBCERTS_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("DBCERTS_TEST_POSTGRES_URL is not set; run the suite through scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: DBCERTS_TEST_POSTGRES_URL is not set (scripts/test sets it)");
            None
        }
    }
}

/// A new, empty database on the test cluster; returns its URL.
async fn fresh_database(admin: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "conformance_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to the test cluster");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    // Hostile defaults an operator may have set: the store must not depend on the server's
    // default isolation level or commit durability (it sets its own).
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'"
    ))
    .execute(&mut conn)
    .await
    .expect("alter database");
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET synchronous_commit = off"
    ))
    .execute(&mut conn)
    .await
    .expect("alter database");
    conn.close().await.ok();
    let (base, _) = admin.rsplit_once('/').expect("URL with a database path");
    format!("{base}/{name}")
}

async fn fresh_store() -> Option<(String, PgStore)> {
    let admin = admin_url()?;
    let url = fresh_database(&admin).await;
    let store = PgStore::open_url(&url)
        .await
        .expect("open PostgreSQL store");
    Some((url, store))
}

/// One `#[tokio::test]` per conformance check, each on its own fresh database.
macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((_url, store)) = fresh_store().await else { return };
                conformance::$check(&store).await;
                conformance::assert_audit_log_intact(&store).await;
                store.close().await;
            }
        )*
    };
}

for_each_check!(conformance_tests);

/// All checks, one after another, on a single database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_store() {
    let Some((_url, store)) = fresh_store().await else {
        return;
    };
    conformance::run_all(&store).await;
    store.close().await;
}

/// Two nodes (two pools on one database) build one unbroken store chain between them, then
/// several chains at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_holds_across_two_nodes() {
    let Some((url, first)) = fresh_store().await else {
        return;
    };
    let second = PgStore::open_url(&url).await.unwrap();
    let nodes = || -> (Arc<dyn Store>, Arc<dyn Store>) {
        (Arc::new(first.clone()), Arc::new(second.clone()))
    };
    let (a, b) = nodes();
    conformance::audit_chain_holds_across_two_nodes(a, b).await;
    let (a, b) = nodes();
    conformance::audit_chains_hold_across_two_nodes(a, b).await;
    second.close().await;
    first.close().await;
}

/// The chains' locks are separate: while another session holds one project's chain lock, a
/// node appends to another project's chain and to the store chain at once (a wait would end in
/// the pool's lock_timeout, an error), and its append to the held chain waits for the lock and
/// then chains on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_locks_are_separate() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    let (p, q) = ("b0000000000000000000000a", "b0000000000000000000000b");
    let event = |project: Option<&str>| dbcerts_store::AuditEvent {
        at_ms: 1_700_000_000_000,
        actor: "operator".into(),
        source_ip: None,
        action: "lock-check".into(),
        project_id: project.map(str::to_owned),
        target: None,
        status: None,
        details: "{}".into(),
    };
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PgStore::audit_chain_lock_key(p))
        .execute(&mut holder)
        .await
        .unwrap();

    let other = store.append_audit(&event(Some(q))).await.unwrap();
    let store_chain = store.append_audit(&event(None)).await.unwrap();
    assert_eq!((other.chain_seq, store_chain.chain_seq), (1, 1));

    let waiting = tokio::spawn({
        let store = store.clone();
        let e = event(Some(p));
        async move { store.append_audit(&e).await }
    });
    // Until the append is seen waiting for the held lock.
    let mut probe = sqlx::PgConnection::connect(&url).await.unwrap();
    loop {
        let waiters: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&mut probe)
        .await
        .unwrap();
        if waiters > 0 {
            break;
        }
        assert!(
            !waiting.is_finished(),
            "the append to the held chain did not wait"
        );
        tokio::task::yield_now().await;
    }
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let held = waiting.await.unwrap().unwrap();
    assert_eq!((held.chain.as_str(), held.chain_seq), (p, 1));
    assert!(held.seq > store_chain.seq);
    conformance::assert_audit_log_intact(&store).await;
    store.close().await;
}

/// A chain cut short stays found after its next append (review 26, finding 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_truncation_survives_later_appends() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    conformance::audit_truncation_survives_later_appends(
        &store,
        tamper_sql!(sqlx::PgConnection, url),
    )
    .await;
    store.close().await;
}

/// A chain cut short stays found after a group commit appends to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_truncation_survives_a_group_commit() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    conformance::audit_truncation_survives_a_group_commit(
        &store,
        tamper_sql!(sqlx::PgConnection, url),
    )
    .await;
    store.close().await;
}

/// A chain whose recorded head is deleted is found, also after its next append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lost_head_is_found() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    conformance::audit_lost_head_is_found(&store, tamper_sql!(sqlx::PgConnection, url)).await;
    store.close().await;
}

/// A whole chain deleted with its head, or cut back with it, is found through a checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_deleted_chain_is_found_by_checkpoint() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    conformance::audit_deleted_chain_is_found_by_checkpoint(
        &store,
        tamper_sql!(sqlx::PgConnection, url),
    )
    .await;
    store.close().await;
}

/// Editing or deleting one entry of one chain is found, and named by its seq and chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_tampering_in_one_chain_is_detected() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    conformance::audit_tampering_is_detected(&store, tamper_sql!(sqlx::PgConnection, url)).await;
    store.close().await;
}

/// Two nodes racing to create the same CAs end with one CA per project.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ca_race_across_two_nodes() {
    let Some((url, first)) = fresh_store().await else {
        return;
    };
    let second = PgStore::open_url(&url).await.unwrap();
    conformance::ca_race_across_two_nodes(&first, &second).await;
    second.close().await;
    first.close().await;
}

/// Two nodes rotating the same projects' CAs at once make one generation each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ca_rotation_race_across_two_nodes() {
    let Some((url, first)) = fresh_store().await else {
        return;
    };
    let second = PgStore::open_url(&url).await.unwrap();
    conformance::ca_rotation_race_across_two_nodes(&first, &second).await;
    conformance::assert_audit_log_intact(&first).await;
    second.close().await;
    first.close().await;
}

/// Two nodes recording the same Digest nonce counts at once: each is accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_nonce_count_accepted_once_across_two_nodes() {
    let Some((url, first)) = fresh_store().await else {
        return;
    };
    let second = PgStore::open_url(&url).await.unwrap();
    conformance::digest_nonce_count_accepted_once_across_two_nodes(&first, &second).await;
    second.close().await;
    first.close().await;
}

/// Two nodes committing batches of the same Digest nonces in opposite orders at once: both
/// commit (no deadlock between their row locks).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_nonce_batches_in_opposite_orders_both_commit() {
    let Some((url, first)) = fresh_store().await else {
        return;
    };
    let second = PgStore::open_url(&url).await.unwrap();
    conformance::digest_nonce_batches_in_opposite_orders_both_commit(&first, &second).await;
    second.close().await;
    first.close().await;
}

/// Eight nodes starting at once on an empty database all succeed: migrations run once, under
/// the migration lock, and every node sees the full schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_at_once_migrate_once() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_database(&admin).await;
    let opened = futures_util_join(
        (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PgStore::open_url(&url).await })
            })
            .collect(),
    )
    .await;
    let stores: Vec<PgStore> = opened
        .into_iter()
        .map(|r| r.expect("node starts"))
        .collect();
    for store in &stores {
        assert!(store.is_empty().await.unwrap());
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        applied,
        conformance::migration_versions("postgres")
            .into_iter()
            .map(|version| (version, true))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        applied.len() as i64,
        conformance::migration_count("postgres")
    );
    for store in stores {
        store.close().await;
    }
}

/// A node of an older release keeps starting on a database that a newer node has migrated
/// further (the unknown migration is ignored, not an error).
#[tokio::test]
async fn older_node_starts_on_newer_schema() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE from_the_future (id BIGINT)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, '\\x00', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let older = PgStore::open_url(&url).await.expect("older node starts");
    older.ping().await.unwrap();
    older.close().await;
}

/// An unreachable database is `Unavailable` at open, within the acquire timeout, not a hang.
#[tokio::test]
async fn unreachable_database_fails_fast() {
    let Some(admin) = admin_url() else { return };
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://dbcerts@127.0.0.1:{port}/postgres");
    let started = std::time::Instant::now();
    let result = PgStore::open_url(&url).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < dbcerts_store::PG_ACQUIRE_TIMEOUT + std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    drop(admin);
}

async fn futures_util_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// A migration that must wait longer than the pool's lock timeout (10 s), here for a table that
/// another session holds, still completes: migrations run without the request timeouts, so a
/// node starting beside a long migration waits instead of failing.
#[tokio::test]
async fn a_migration_waits_out_a_long_lock() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // Undo migration 3, then hold the table it needs for longer than the lock timeout.
    sqlx::query("DROP INDEX certificates_by_expiry")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let opening = tokio::spawn({
        let url = url.clone();
        async move { PgStore::open_url(&url).await }
    });
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert!(!opening.is_finished(), "the migration waits for the lock");
    tx.commit().await.unwrap();
    let store = opening
        .await
        .unwrap()
        .expect("the node starts once the lock is free");
    let applied: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE version = 3")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(applied, vec![(3,)]);
    store.ping().await.unwrap();
    store.close().await;
}

/// A node still on the previous version inserts certificates without `ca_id`: migration 0007's
/// trigger fills in the project's active CA.
#[tokio::test]
async fn certificate_inserted_without_ca_id_gets_the_active_ca() {
    let Some((url, store)) = fresh_store().await else {
        return;
    };
    let org = dbcerts_store::Org {
        id: format!("{:024x}", 7),
        name: "old node".into(),
        created: 1_700_000_000,
    };
    let key = dbcerts_store::ApiKeyRecord {
        id: format!("{:024x}", 8),
        org_id: org.id.clone(),
        public_key: "OLDNODEKEY".into(),
        sealed_private_key: vec![1; 16],
        description: String::new(),
        org_roles: vec![],
        created: 1_700_000_000,
    };
    let project = dbcerts_store::Project {
        id: format!("{:024x}", 9),
        org_id: org.id.clone(),
        name: "p".into(),
        created: 1_700_000_000,
        with_default_alerts_settings: true,
        tags_json: "[]".into(),
    };
    store.create_org_with_key(&org, &key).await.unwrap();
    store.create_project(&project).await.unwrap();
    let ca = store
        .insert_ca_if_absent(&dbcerts_store::CaRecord {
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
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert)
         VALUES (1, $1, 'alice', 'CN=alice', 1700000000, 1800000000, 1700000000000, '\\x3000')",
    )
    .bind(&project.id)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    let c = store
        .get_certificate(&project.id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.ca_id, c.revocation), (ca.id, None));
    store.close().await;
}

/// Counts the statements sqlx runs (its `sqlx::query` events) on the thread that sets it as
/// its default subscriber: each is one round trip to the server.
struct CountStatements(Arc<std::sync::atomic::AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A group commit costs the same round trips whatever its size (issue 22): a batch of 50
/// certificates over two projects (with as many audit entries alone and a refused certificate)
/// runs as many statements as a batch of one. One statement each for the transaction, its
/// locks, the certificates, the refused one's explanation, the chains' places, the new `seq`s,
/// the audit entries and the heads.
#[tokio::test(flavor = "current_thread")]
async fn commit_batch_round_trips_do_not_grow_with_the_batch() {
    use tracing_subscriber::layer::SubscriberExt;
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountStatements(count.clone())),
    );
    let Some((_, store)) = fresh_store().await else {
        return;
    };
    let mut statements = Vec::new();
    for (n, k) in [(90, 1), (91, 50)] {
        let (batch, outcomes) = conformance::mixed_batch(&store, n, k).await;
        // Another test's thread may have cached sqlx's event sites as uninteresting while it
        // registered them, before or while this thread's subscriber was added: recompute.
        tracing::callsite::rebuild_interest_cache();
        let before = count.load(Ordering::Relaxed);
        assert_eq!(store.commit_batch(&batch).await.unwrap(), outcomes);
        statements.push(count.load(Ordering::Relaxed) - before);
    }
    eprintln!("statements of a batch of 1 and of 50: {statements:?}");
    assert!(statements[0] > 0, "sqlx's statements were counted");
    assert_eq!(
        statements[0], statements[1],
        "a batch of 1 and a batch of 50"
    );
    conformance::assert_audit_log_intact(&store).await;
    store.close().await;
}
