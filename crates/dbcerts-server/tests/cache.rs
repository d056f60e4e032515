//! The read cache (`dbcerts_server::cached_store`) on one node, over a real SQLite file: every
//! write through the cached store drops what it changed before it returns, a missing project or
//! user is never kept, an unknown credential is kept as absent (in bounded parts of its own)
//! until one is created, a writer in another process is seen at once on SQLite (the cache
//! version), entries end with their TTL, the capacity bounds memory, and a node whose change
//! listener is not connected serves nothing from memory.

use std::sync::Arc;
use std::time::Duration;

use dbcerts_server::cached_store::{CacheConfig, CachedStore, Coherence, StoreCache};
use dbcerts_store::*;

const ORG: &str = "5f0000000000000000000001";
const PROJECT: &str = "5f00000000000000000000a1";

struct Node {
    /// The store itself, as another writer (or another process) sees it.
    raw: SqliteStore,
    cached: CachedStore,
    cache: StoreCache,
    _dir: tempfile::TempDir,
}

/// A node with an organization and its key `k1` (public key `pubkey01`), written behind the
/// cache's back.
async fn node(
    coherence: impl FnOnce(&SqliteStore) -> Coherence,
    ttl: Duration,
    capacity: usize,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let raw = SqliteStore::open(&dir.path().join("dbcerts.db"))
        .await
        .unwrap();
    raw.create_org_with_key(&org(), &key("k1", "pubkey01"))
        .await
        .unwrap();
    let cache = StoreCache::new(CacheConfig { ttl, capacity }, coherence(&raw));
    let cached = CachedStore::new(Arc::new(raw.clone()), cache.clone());
    Node {
        raw,
        cached,
        cache,
        _dir: dir,
    }
}

/// A node whose cache hears of nothing but its own writes (and its TTL is long): whatever it
/// shows after a write, it owes to that write's drop.
async fn alone() -> Node {
    node(|_| Coherence::Alone, Duration::from_secs(3600), 1000).await
}

/// A node on SQLite as `serve` runs it: each cached read checks the cache version, so writes
/// by other processes are seen (and the TTL is long).
async fn versioned() -> Node {
    node(
        |raw| Coherence::Version(raw.clone()),
        Duration::from_secs(3600),
        1000,
    )
    .await
}

fn org() -> Org {
    Org {
        id: ORG.into(),
        name: "org".into(),
        created: 1,
    }
}

fn key(id: &str, public_key: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        org_id: ORG.into(),
        public_key: public_key.into(),
        sealed_private_key: vec![1, 2, 3],
        description: "k".into(),
        org_roles: vec!["ORG_OWNER".into()],
        created: 1,
    }
}

fn project(id: &str) -> Project {
    Project {
        id: id.into(),
        org_id: ORG.into(),
        name: format!("p-{id}"),
        created: 1,
        with_default_alerts_settings: true,
        tags_json: "[]".into(),
    }
}

fn user(project_id: &str, username: &str, doc: &str) -> DatabaseUserRecord {
    DatabaseUserRecord {
        project_id: project_id.into(),
        database_name: "$external".into(),
        username: username.into(),
        x509_type: "MANAGED".into(),
        created: 1,
        doc: doc.into(),
    }
}

fn grant(principal: &str, project_id: &str, role: &str) -> ProjectGrant {
    ProjectGrant {
        principal_id: principal.into(),
        project_id: project_id.into(),
        roles: vec![role.into()],
    }
}

fn account(client_id: &str, name: &str) -> ServiceAccountRecord {
    ServiceAccountRecord {
        client_id: client_id.into(),
        org_id: ORG.into(),
        name: name.into(),
        description: "d".into(),
        org_roles: vec!["ORG_MEMBER".into()],
        created: 1,
    }
}

fn secret(id: &str, client_id: &str) -> ServiceAccountSecretRecord {
    ServiceAccountSecretRecord {
        id: id.into(),
        client_id: client_id.into(),
        secret_hash: vec![7; 32],
        masked: "mdb_sa_sk_...abcd".into(),
        created: 1,
        expires: i64::MAX / 2,
        last_used: None,
    }
}

fn entry(principal: &str, cidr: &str) -> AccessListEntry {
    AccessListEntry {
        principal_id: principal.into(),
        cidr_block: cidr.into(),
        created: 1,
    }
}

/// Whether `store` finds `username` on `$external` in [`PROJECT`].
async fn has_user(store: &dyn Store, username: &str) -> bool {
    store
        .get_database_user(PROJECT, "$external", username)
        .await
        .unwrap()
        .is_some()
}

/// Reads `read` twice and checks that the second answer came from memory and equals the first.
macro_rules! cached_twice {
    ($n:expr, $read:expr) => {{
        let first = $read.await.unwrap();
        let hits = $n.cache.stats().hits;
        let second = $read.await.unwrap();
        assert_eq!($n.cache.stats().hits, hits + 1, "the second read is a hit");
        assert_eq!(first, second);
        second
    }};
}

#[tokio::test]
async fn every_write_through_the_node_drops_what_it_changed() {
    let n = alone().await;
    let s = &n.cached;
    s.create_project(&project(PROJECT)).await.unwrap();

    // API key: grants, access list, roles, deletion.
    let auth = cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    assert!(auth.grants.is_empty());
    s.put_grant(&grant("k1", PROJECT, "GROUP_OWNER"))
        .await
        .unwrap();
    let auth = cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    assert_eq!(auth.grants, vec![grant("k1", PROJECT, "GROUP_OWNER")]);
    s.add_access_list_entries(&[entry("k1", "192.0.2.7/32")])
        .await
        .unwrap();
    let auth = cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    assert_eq!(auth.access_list.len(), 1);
    s.delete_access_list_entry("k1", "192.0.2.7/32")
        .await
        .unwrap();
    let auth = cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    assert!(auth.access_list.is_empty());
    s.delete_grant("k1", PROJECT).await.unwrap();
    let auth = cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    assert!(auth.grants.is_empty(), "a removed grant is gone at once");
    let mut changed = key("k1", "pubkey01");
    changed.org_roles = vec!["ORG_READ_ONLY".into()];
    s.update_api_key(&changed).await.unwrap();
    let auth = cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    assert_eq!(auth.key.org_roles, vec!["ORG_READ_ONLY".to_owned()]);
    s.delete_api_key("k1").await.unwrap();
    assert_eq!(s.get_api_key_auth("pubkey01").await.unwrap(), None);

    // Service account: secrets added, deleted; account renamed, deleted.
    let client = "mdb_sa_id_000000000000000000000001";
    s.create_service_account(&account(client, "a"), &secret("s1", client))
        .await
        .unwrap();
    let sa = cached_twice!(n, s.get_service_account_auth(client)).unwrap();
    assert_eq!(sa.secrets.len(), 1);
    s.add_service_account_secret(&secret("s2", client))
        .await
        .unwrap();
    let sa = cached_twice!(n, s.get_service_account_auth(client)).unwrap();
    assert_eq!(sa.secrets.len(), 2);
    s.delete_service_account_secret(client, "s1").await.unwrap();
    let sa = cached_twice!(n, s.get_service_account_auth(client)).unwrap();
    assert!(
        sa.secrets.iter().all(|x| x.id != "s1"),
        "a deleted secret is gone at once"
    );
    s.update_service_account(&account(client, "renamed"))
        .await
        .unwrap();
    let sa = cached_twice!(n, s.get_service_account_auth(client)).unwrap();
    assert_eq!(sa.account.name, "renamed");
    s.delete_service_account(client).await.unwrap();
    assert_eq!(s.get_service_account_auth(client).await.unwrap(), None);

    // Database user: updated, deleted (both ways).
    s.create_database_user(&user(PROJECT, "alice", "{}"))
        .await
        .unwrap();
    cached_twice!(n, s.get_database_user(PROJECT, "$external", "alice")).unwrap();
    s.update_database_user(&user(PROJECT, "alice", r#"{"v":2}"#))
        .await
        .unwrap();
    let u = cached_twice!(n, s.get_database_user(PROJECT, "$external", "alice")).unwrap();
    assert_eq!(u.doc, r#"{"v":2}"#);
    s.delete_database_user(PROJECT, "$external", "alice")
        .await
        .unwrap();
    assert!(!has_user(s, "alice").await);
    s.create_database_user_within_limit(&user(PROJECT, "bob", "{}"), 100)
        .await
        .unwrap();
    cached_twice!(n, s.get_database_user(PROJECT, "$external", "bob")).unwrap();
    s.delete_database_user_revoking(PROJECT, "$external", "bob", None)
        .await
        .unwrap();
    assert!(!has_user(s, "bob").await);

    // User security.
    assert_eq!(
        cached_twice!(n, s.get_user_security(PROJECT)),
        UserSecurityRecord::default()
    );
    let record = UserSecurityRecord {
        customer_cas: Some("PEM".into()),
        ldap_json: None,
    };
    s.put_user_security(PROJECT, &record).await.unwrap();
    assert_eq!(cached_twice!(n, s.get_user_security(PROJECT)), record);

    // Deleting the project drops it and everything cached that hung on it: a grant in it, its
    // users, its user security.
    s.create_api_key(
        &key("k2", "pubkey02"),
        &[grant("k2", PROJECT, "GROUP_OWNER")],
    )
    .await
    .unwrap();
    s.create_database_user(&user(PROJECT, "carol", "{}"))
        .await
        .unwrap();
    cached_twice!(n, s.get_project(PROJECT)).unwrap();
    assert_eq!(
        cached_twice!(n, s.get_api_key_auth("pubkey02"))
            .unwrap()
            .grants
            .len(),
        1
    );
    cached_twice!(n, s.get_database_user(PROJECT, "$external", "carol")).unwrap();
    s.delete_project(PROJECT).await.unwrap();
    assert_eq!(s.get_project(PROJECT).await.unwrap(), None);
    assert!(
        s.get_api_key_auth("pubkey02")
            .await
            .unwrap()
            .unwrap()
            .grants
            .is_empty()
    );
    assert!(!has_user(s, "carol").await);
    assert_eq!(
        s.get_user_security(PROJECT).await.unwrap(),
        UserSecurityRecord::default()
    );
}

#[tokio::test]
async fn a_missing_project_or_user_is_never_kept() {
    let n = alone().await;
    assert_eq!(n.cached.get_project(PROJECT).await.unwrap(), None);
    assert!(!has_user(&n.cached, "alice").await);
    // Created behind the node's back (as another node would): seen at once all the same.
    n.raw.create_project(&project(PROJECT)).await.unwrap();
    n.raw
        .create_database_user(&user(PROJECT, "alice", "{}"))
        .await
        .unwrap();
    assert!(n.cached.get_project(PROJECT).await.unwrap().is_some());
    assert!(has_user(&n.cached, "alice").await);
    assert_eq!(n.cache.stats().hits, 0);
}

/// A service account's client id of this file.
const CLIENT: &str = "mdb_sa_id_000000000000000000000009";

/// An unknown public key or client id is kept as absent (a second probe is a hit, as it is for
/// a known one), and creating a key or account through the node drops it at once.
#[tokio::test]
async fn an_unknown_credential_is_kept_as_absent_until_one_is_created() {
    let n = alone().await;
    let s = &n.cached;
    assert_eq!(cached_twice!(n, s.get_api_key_auth("pubkey09")), None);
    assert_eq!(cached_twice!(n, s.get_service_account_auth(CLIENT)), None);
    assert_eq!(n.cache.entries(), 2);

    s.create_api_key(&key("k9", "pubkey09"), &[]).await.unwrap();
    assert_eq!(
        s.get_api_key_auth("pubkey09").await.unwrap().unwrap().key,
        key("k9", "pubkey09")
    );
    s.create_service_account(&account(CLIENT, "a"), &secret("s9", CLIENT))
        .await
        .unwrap();
    assert_eq!(
        s.get_service_account_auth(CLIENT)
            .await
            .unwrap()
            .unwrap()
            .account,
        account(CLIENT, "a")
    );

    // Created by another node or process: the SQLite cache version drops the absent entries
    // too.
    let n = versioned().await;
    let s = &n.cached;
    assert_eq!(cached_twice!(n, s.get_api_key_auth("pubkey09")), None);
    assert_eq!(cached_twice!(n, s.get_service_account_auth(CLIENT)), None);
    n.raw
        .create_api_key(&key("k9", "pubkey09"), &[])
        .await
        .unwrap();
    assert!(s.get_api_key_auth("pubkey09").await.unwrap().is_some());
    n.raw
        .create_service_account(&account(CLIENT, "a"), &secret("s9", CLIENT))
        .await
        .unwrap();
    assert!(s.get_service_account_auth(CLIENT).await.unwrap().is_some());

    // On PostgreSQL: the principals notification drops them.
    let n = node(|_| Coherence::Notified, Duration::from_secs(3600), 1000).await;
    n.cache.set_listening(true);
    let s = &n.cached;
    assert_eq!(cached_twice!(n, s.get_api_key_auth("pubkey09")), None);
    n.raw
        .create_api_key(&key("k9", "pubkey09"), &[])
        .await
        .unwrap();
    n.cache.changed(Changed::Principals);
    assert!(s.get_api_key_auth("pubkey09").await.unwrap().is_some());
}

/// Probes of many made-up keys fill only the part for absent keys: found keys stay cached.
#[tokio::test]
async fn unknown_credentials_are_bounded_apart_from_found_ones() {
    let n = node(|_| Coherence::Alone, Duration::from_secs(3600), 8).await;
    let s = &n.cached;
    cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    for i in 0..200 {
        assert_eq!(
            s.get_api_key_auth(&format!("made{i:04}")).await.unwrap(),
            None
        );
        assert_eq!(
            s.get_service_account_auth(&format!("mdb_sa_id_{i:024}"))
                .await
                .unwrap(),
            None
        );
    }
    let held = n.cache.entries();
    assert!((3..=17).contains(&held), "{held} entries held");
    cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    let hits = n.cache.stats().hits;
    s.get_api_key_auth("pubkey01").await.unwrap().unwrap();
    assert_eq!(
        n.cache.stats().hits,
        hits + 1,
        "the found key was not evicted"
    );
}

#[tokio::test]
async fn on_sqlite_another_processes_writes_are_seen_at_once() {
    let n = versioned().await;
    let s = &n.cached;
    s.create_project(&project(PROJECT)).await.unwrap();
    s.create_database_user(&user(PROJECT, "alice", "{}"))
        .await
        .unwrap();
    s.put_grant(&grant("k1", PROJECT, "GROUP_OWNER"))
        .await
        .unwrap();
    // Another writer with a connection pool of its own, as `dbcerts apikey rotate-bootstrap`
    // is while `serve` runs.
    let other = SqliteStore::open(&n._dir.path().join("dbcerts.db"))
        .await
        .unwrap();

    assert_eq!(
        cached_twice!(n, s.get_api_key_auth("pubkey01"))
            .unwrap()
            .grants
            .len(),
        1
    );
    other.delete_grant("k1", PROJECT).await.unwrap();
    assert!(
        s.get_api_key_auth("pubkey01")
            .await
            .unwrap()
            .unwrap()
            .grants
            .is_empty()
    );
    cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    other.delete_api_key("k1").await.unwrap();
    assert_eq!(s.get_api_key_auth("pubkey01").await.unwrap(), None);

    cached_twice!(n, s.get_database_user(PROJECT, "$external", "alice")).unwrap();
    other
        .delete_database_user(PROJECT, "$external", "alice")
        .await
        .unwrap();
    assert!(!has_user(s, "alice").await);

    cached_twice!(n, s.get_project(PROJECT)).unwrap();
    other.delete_project(PROJECT).await.unwrap();
    assert_eq!(s.get_project(PROJECT).await.unwrap(), None);
}

/// Every OAuth token records its secret's use: that is not an input of authentication, so it
/// drops nothing and (migration 0014) does not raise the SQLite cache version, which would
/// empty the whole cache; changing the secrets still does.
#[tokio::test]
async fn using_a_secret_drops_nothing() {
    let n = versioned().await;
    let s = &n.cached;
    s.create_service_account(&account(CLIENT, "a"), &secret("s1", CLIENT))
        .await
        .unwrap();
    s.add_service_account_secret(&secret("s2", CLIENT))
        .await
        .unwrap();
    cached_twice!(n, s.get_service_account_auth(CLIENT)).unwrap();
    cached_twice!(n, s.get_api_key_auth("pubkey01")).unwrap();
    let version = n.raw.cache_version().await.unwrap();
    let drops = n.cache.stats().drops;

    s.touch_service_account_secret("s2", 99).await.unwrap();
    // Written by another process (another node's token, on the same file): the same.
    n.raw.touch_service_account_secret("s1", 98).await.unwrap();
    assert_eq!(n.raw.cache_version().await.unwrap(), version);
    assert_eq!(n.cache.stats().drops, drops);
    let hits = n.cache.stats().hits;
    s.get_service_account_auth(CLIENT).await.unwrap().unwrap();
    s.get_api_key_auth("pubkey01").await.unwrap().unwrap();
    assert_eq!(
        n.cache.stats().hits,
        hits + 2,
        "both still answered from memory"
    );
    // The use is recorded, where it is shown from.
    let used: Vec<_> = s
        .list_service_account_secrets(CLIENT)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.last_used)
        .collect();
    assert_eq!(used, vec![Some(98), Some(99)]);

    // A secret deleted by another process raises the version: gone at once.
    n.raw
        .delete_service_account_secret(CLIENT, "s1")
        .await
        .unwrap();
    assert!(n.raw.cache_version().await.unwrap() > version);
    let sa = s.get_service_account_auth(CLIENT).await.unwrap().unwrap();
    assert_eq!(
        sa.secrets.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["s2"]
    );
}

#[tokio::test]
async fn an_entry_nobody_drops_ends_with_its_ttl() {
    let ttl = Duration::from_millis(300);
    let n = node(|_| Coherence::Alone, ttl, 1000).await;
    cached_twice!(n, n.cached.get_api_key_auth("pubkey01")).unwrap();
    // Deleted where this cache cannot hear of it (it was told it has no other writer).
    n.raw.delete_api_key("k1").await.unwrap();
    tokio::time::sleep(ttl).await;
    assert_eq!(
        n.cached.get_api_key_auth("pubkey01").await.unwrap(),
        None,
        "served no longer than the TTL"
    );
}

#[tokio::test]
async fn memory_is_bounded_by_the_capacity() {
    let n = node(|_| Coherence::Alone, Duration::from_secs(3600), 8).await;
    for i in 0..200 {
        let id = format!("5f00000000000000000{i:05}");
        n.raw.create_project(&project(&id)).await.unwrap();
        assert!(n.cached.get_project(&id).await.unwrap().is_some());
    }
    let held = n.cache.entries();
    assert!((1..=8).contains(&held), "{held} entries held");
}

#[tokio::test]
async fn without_a_listener_nothing_is_served_from_memory() {
    let n = node(|_| Coherence::Notified, Duration::from_secs(3600), 1000).await;
    n.raw.create_project(&project(PROJECT)).await.unwrap();
    // Not yet listening: every read asks the store and nothing is kept.
    for _ in 0..3 {
        assert!(n.cached.get_project(PROJECT).await.unwrap().is_some());
    }
    assert_eq!(n.cache.stats().hits, 0);
    assert_eq!(n.cache.entries(), 0);
    n.cache.set_listening(true);
    cached_twice!(n, n.cached.get_project(PROJECT)).unwrap();
    // Listener lost: everything is dropped, and a change made meanwhile is seen.
    n.cache.set_listening(false);
    assert_eq!(n.cache.entries(), 0);
    n.raw.delete_project(PROJECT).await.unwrap();
    assert_eq!(n.cached.get_project(PROJECT).await.unwrap(), None);
    // A notification drops its part.
    n.cache.set_listening(true);
    n.raw.create_project(&project(PROJECT)).await.unwrap();
    cached_twice!(n, n.cached.get_project(PROJECT)).unwrap();
    n.cache.changed(Changed::Projects);
    assert_eq!(n.cache.entries(), 0);
    // A liveness probe (any node's) drops nothing; a payload this release does not know (a
    // newer migration's, or `NOTIFY dbcerts_cache, 'all'` by hand) drops everything.
    cached_twice!(n, n.cached.get_project(PROJECT)).unwrap();
    cached_twice!(n, n.cached.get_api_key_auth("pubkey01")).unwrap();
    n.cache.changed(Changed::Probe("another-node-7".into()));
    assert_eq!(n.cache.entries(), 2);
    n.cache.changed(Changed::Unknown);
    assert_eq!(n.cache.entries(), 0);
}
