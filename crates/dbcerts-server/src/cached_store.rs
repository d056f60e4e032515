//! [`CachedStore`]: a [`Store`] that serves the reads every request makes (the caller's API key
//! or service account with its grants and access list, the project, the database user, the
//! project's user security) from a bounded per-node memory cache, and forwards everything else.
//! [`StoreCache`] owns the cache and what keeps it true; [`follow_changes`] is the PostgreSQL
//! change listener. The semantics and the staleness bound are in docs/ARCHITECTURE.md
//! ("Read cache").
//!
//! - Found rows are kept, and a project's missing user security (its default). "Not found" is
//!   kept only for the two credential reads, each in a bounded part of its own, so that a
//!   second wrong-secret probe of an unknown key or client is answered from memory exactly as
//!   one of a known one is (docs/ARCHITECTURE.md, "Read cache"); any other "not found" is never
//!   kept, so a project or user created anywhere is seen at once. Creating a key or account
//!   drops the principal parts, both kinds, as any other principal write does.
//! - Every write method that can change a cached row drops the parts of the cache it may have
//!   changed before it returns (whether it succeeded or not: a write that timed out may still
//!   have committed). The macro below makes each `Store` method say whether it is a cached
//!   read, a write and what it drops, or a plain forward, so none goes unclassified.
//! - A read that misses remembers the part's epoch before asking the store and keeps its answer
//!   only if no drop happened meanwhile, so an answer read before a write cannot be kept after
//!   the drop that write made.
//! - Other writers: on SQLite (one serving node, but operator commands may write the same file)
//!   each cached read first reads the store's cache version (migration 0011 raises it on every
//!   change of a cached table), and an entry is served only while the version is the one read
//!   before the entry was. On PostgreSQL a listener per node drops what the notifications of
//!   migration 0011 name; while it is not connected, or its latest liveness probe is overdue,
//!   the cache is bypassed (neither read nor filled), and it is emptied whenever the listener
//!   becomes trusted or stops being.
//! - Every entry also expires [`CacheConfig::ttl`] after its read began, whatever happens.
//!
//! It sits outside [`crate::metered_store::MeteredStore`]: a hit never reaches the store, so the
//! store-operation metrics count real database calls only.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dbcerts_store::*;

/// Size and lifetime of the read cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// The longest an entry is served after its read from the store began. Zero turns the
    /// cache off.
    pub ttl: Duration,
    /// Entries kept at most, in each of the seven parts.
    pub capacity: usize,
}

/// The `cache-ttl-seconds` default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// The `cache-capacity` default.
pub const DEFAULT_CAPACITY: usize = 10_000;

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: DEFAULT_TTL,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// How the cache learns of writes made by other processes.
#[derive(Clone)]
pub enum Coherence {
    /// Each cached read first reads SQLite's cache version.
    Version(SqliteStore),
    /// [`follow_changes`] drops what PostgreSQL notifies; until it is connected, the cache is
    /// bypassed.
    Notified,
    /// No other writer (a store only this process opens, as in tests).
    Alone,
}

/// One part of the cache: entries of one kind, and its epoch (raised by every drop).
struct Part<K, V> {
    name: &'static str,
    entries: quick_cache::sync::Cache<K, Entry<V>>,
    epoch: AtomicU64,
}

#[derive(Clone)]
struct Entry<V> {
    value: V,
    /// When the read that produced it began.
    read_at: Instant,
    /// The SQLite cache version read before it (0 otherwise).
    version: i64,
}

/// What a cached read answers: a found row, or "not found" (kept only in a read's part for
/// absent keys, when it has one).
pub trait Keep: Clone + Send + Sync + 'static {
    fn found(&self) -> bool;
}

impl<T: Clone + Send + Sync + 'static> Keep for Option<T> {
    fn found(&self) -> bool {
        self.is_some()
    }
}

impl Keep for UserSecurityRecord {
    /// A project without a row has the default record, which is kept as a found one: creating
    /// the row drops it like any other change.
    fn found(&self) -> bool {
        true
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Part<K, V> {
    fn new(name: &'static str, capacity: usize) -> Self {
        Part {
            name,
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            epoch: AtomicU64::new(0),
        }
    }
}

type DbUserKey = (String, String, String);

/// The cache of one node, shared by its [`CachedStore`] and its change listener.
#[derive(Clone)]
pub struct StoreCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    ttl: Duration,
    coherence: Coherence,
    /// With [`Coherence::Notified`]: whether the listener is connected (else always true).
    trusted: AtomicBool,
    /// Held while an entry is inserted and while a part is dropped, so that an insert checks
    /// the epoch and trust it read against the current ones atomically.
    gate: Mutex<()>,
    api_keys: Part<String, Option<ApiKeyAuth>>,
    /// Public keys no key had: "not found", kept apart so that probes of made-up keys cannot
    /// evict found ones.
    unknown_api_keys: Part<String, Option<ApiKeyAuth>>,
    service_accounts: Part<String, Option<ServiceAccountAuth>>,
    /// Client ids no account had.
    unknown_service_accounts: Part<String, Option<ServiceAccountAuth>>,
    projects: Part<String, Option<Project>>,
    database_users: Part<DbUserKey, Option<DatabaseUserRecord>>,
    user_security: Part<String, UserSecurityRecord>,
    stats: Stats,
}

/// This cache's own counts (the Prometheus counters are process-wide).
#[derive(Default)]
struct Stats {
    hits: AtomicU64,
    misses: AtomicU64,
    drops: AtomicU64,
}

/// A snapshot of a cache's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Times a part was dropped (by a write, a notification, or the listener's state).
    pub drops: u64,
}

/// What parts a write drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    Principals,
    Projects,
    DatabaseUsers,
    UserSecurity,
    All,
}

impl StoreCache {
    pub fn new(config: CacheConfig, coherence: Coherence) -> StoreCache {
        let trusted = !matches!(coherence, Coherence::Notified);
        let cap = config.capacity;
        StoreCache {
            inner: Arc::new(CacheInner {
                ttl: config.ttl,
                coherence,
                trusted: AtomicBool::new(trusted),
                gate: Mutex::new(()),
                api_keys: Part::new("api_key", cap),
                unknown_api_keys: Part::new("unknown_api_key", cap),
                service_accounts: Part::new("service_account", cap),
                unknown_service_accounts: Part::new("unknown_service_account", cap),
                projects: Part::new("project", cap),
                database_users: Part::new("database_user", cap),
                user_security: Part::new("user_security", cap),
                stats: Stats::default(),
            }),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let s = &self.inner.stats;
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            drops: s.drops.load(Ordering::Relaxed),
        }
    }

    /// Entries held now, in all parts.
    pub fn entries(&self) -> usize {
        let i = &self.inner;
        i.api_keys.entries.len()
            + i.unknown_api_keys.entries.len()
            + i.service_accounts.entries.len()
            + i.unknown_service_accounts.entries.len()
            + i.projects.entries.len()
            + i.database_users.entries.len()
            + i.user_security.entries.len()
    }

    /// Whether cached entries may be served now.
    fn trusted(&self) -> bool {
        self.inner.trusted.load(Ordering::SeqCst)
    }

    /// The listener connected (`true`, after it has started listening) or was lost (`false`):
    /// either way everything cached is dropped, and the cache is used only while connected.
    pub fn set_listening(&self, listening: bool) {
        let _gate = self.inner.gate.lock().unwrap_or_else(|e| e.into_inner());
        if !listening {
            self.inner.trusted.store(false, Ordering::SeqCst);
        }
        self.drop_locked(Parts::All, "listener");
        if listening {
            self.inner.trusted.store(true, Ordering::SeqCst);
        }
    }

    /// Drops what a notification names.
    pub fn changed(&self, what: Changed) {
        let parts = match what {
            Changed::Principals => Parts::Principals,
            Changed::Projects => Parts::Projects,
            Changed::DatabaseUsers => Parts::DatabaseUsers,
            Changed::UserSecurity => Parts::UserSecurity,
            Changed::Unknown => Parts::All,
            // Liveness probes are handled by the listener; they change nothing.
            Changed::Probe(_) => return,
        };
        self.drop_parts(parts, "notification");
    }

    fn drop_parts(&self, parts: Parts, cause: &'static str) {
        let _gate = self.inner.gate.lock().unwrap_or_else(|e| e.into_inner());
        self.drop_locked(parts, cause);
    }

    fn drop_locked(&self, parts: Parts, cause: &'static str) {
        let i = &self.inner;
        let all = parts == Parts::All;
        if all || parts == Parts::Principals {
            clear(&i.api_keys, cause, &i.stats);
            clear(&i.unknown_api_keys, cause, &i.stats);
            clear(&i.service_accounts, cause, &i.stats);
            clear(&i.unknown_service_accounts, cause, &i.stats);
        }
        if all || parts == Parts::Projects {
            clear(&i.projects, cause, &i.stats);
        }
        if all || parts == Parts::DatabaseUsers {
            clear(&i.database_users, cause, &i.stats);
        }
        if all || parts == Parts::UserSecurity {
            clear(&i.user_security, cause, &i.stats);
        }
    }

    /// `load`'s answer for `key`, from the cache when it holds a fresh entry. `parts` names
    /// the part for found rows and, for a read that keeps "not found", the part for absent
    /// keys.
    async fn read<K, V, F>(
        &self,
        parts: impl Fn(&CacheInner) -> (&Part<K, V>, Option<&Part<K, V>>),
        key: K,
        load: F,
    ) -> StoreResult<V>
    where
        K: Eq + Hash + Clone,
        V: Keep,
        F: Future<Output = StoreResult<V>>,
    {
        let i = &*self.inner;
        let (found, absent) = parts(i);
        if !self.trusted() {
            return load.await;
        }
        // All read before the store is: a drop or a change after this makes the answer
        // below unkeepable or the entry unservable.
        let epochs = (
            found.epoch.load(Ordering::SeqCst),
            absent.map(|p| p.epoch.load(Ordering::SeqCst)),
        );
        let version = match &i.coherence {
            Coherence::Version(sqlite) => {
                let started = Instant::now();
                let v = sqlite.cache_version().await;
                crate::observe::store_operation("cache_version", started);
                v?
            }
            Coherence::Notified | Coherence::Alone => 0,
        };
        for p in std::iter::once(found).chain(absent) {
            if let Some(e) = p.entries.get(&key)
                && e.version == version
                && e.read_at.elapsed() < i.ttl
            {
                i.stats.hits.fetch_add(1, Ordering::Relaxed);
                crate::observe::cache_hit(p.name);
                return Ok(e.value);
            }
        }
        i.stats.misses.fetch_add(1, Ordering::Relaxed);
        crate::observe::cache_miss(found.name);
        let read_at = Instant::now();
        let value = load.await?;
        let into = match (value.found(), absent, epochs.1) {
            (true, _, _) => Some((found, epochs.0)),
            (false, Some(p), Some(epoch)) => Some((p, epoch)),
            (false, _, _) => None,
        };
        if let Some((p, epoch)) = into {
            let _gate = i.gate.lock().unwrap_or_else(|e| e.into_inner());
            if self.trusted() && p.epoch.load(Ordering::SeqCst) == epoch {
                p.entries.insert(
                    key,
                    Entry {
                        value: value.clone(),
                        read_at,
                        version,
                    },
                );
            }
        }
        Ok(value)
    }
}

fn clear<K: Eq + Hash + Clone, V: Clone>(p: &Part<K, V>, cause: &'static str, stats: &Stats) {
    p.epoch.fetch_add(1, Ordering::SeqCst);
    p.entries.clear();
    stats.drops.fetch_add(1, Ordering::Relaxed);
    crate::observe::cache_drop(p.name, cause);
}

/// Serves the listed reads of the store it wraps from a [`StoreCache`].
pub struct CachedStore {
    inner: Arc<dyn Store>,
    cache: StoreCache,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>, cache: StoreCache) -> CachedStore {
        CachedStore { inner, cache }
    }
}

/// Keeps `cache` true to a PostgreSQL store until the task is aborted: listens for changes,
/// drops what each names, and when the connection is lost drops everything and bypasses the
/// cache until a new connection listens (retrying every second).
///
/// Listening is not taken on trust: once `LISTEN` is in place, and then every half TTL, the
/// task notifies a probe of its own through the store's pool ([`PgStore::probe_changes`]).
/// The cache is used only from when a probe comes back, and is bypassed (and emptied) when
/// one has not come back by the time the next is due, until one does.
pub async fn follow_changes(cache: StoreCache, store: PgStore) {
    const RETRY: Duration = Duration::from_secs(1);
    let every = (cache.inner.ttl / 2).max(Duration::from_millis(100));
    let node = format!("{:016x}", rand::random::<u64>());
    loop {
        match store.listen_for_changes().await {
            Ok(mut listener) => {
                // The probe in flight (its number), whether it came back, and its send (on
                // its own task, so that notifications keep being drained while the pool is
                // busy; true once the NOTIFY was committed).
                let mut sent = 0u64;
                let mut answered = true;
                let mut sending: Option<tokio::task::JoinHandle<bool>> = None;
                let mut trusted = false;
                let mut warned = false;
                let mut next = tokio::time::Instant::now();
                let lost = loop {
                    tokio::select! {
                        biased;
                        got = listener.next() => match got {
                            Ok(Changed::Probe(token)) => {
                                if token == format!("{node}-{sent}") {
                                    answered = true;
                                    if !trusted {
                                        trusted = true;
                                        warned = false;
                                        cache.set_listening(true);
                                        tracing::info!("read cache: listening for changes");
                                    }
                                }
                            }
                            Ok(what) => cache.changed(what),
                            Err(e) => break e,
                        },
                        _ = tokio::time::sleep_until(next) => {
                            // A probe that could not be sent (the pool busy or the database
                            // unreachable from it) says nothing about the listener: only one
                            // that was sent and did not come back is a miss.
                            let delivered = match sending.take() {
                                Some(task) if task.is_finished() => task.await.unwrap_or(false),
                                Some(task) => {
                                    task.abort();
                                    false
                                }
                                None => true,
                            };
                            if !answered && delivered {
                                if trusted {
                                    trusted = false;
                                    cache.set_listening(false);
                                }
                                if !warned {
                                    warned = true;
                                    tracing::warn!(
                                        after = ?every,
                                        "read cache: a probe of the change listener did not come back; the cache is bypassed until one does"
                                    );
                                }
                            }
                            sent += 1;
                            answered = false;
                            let (store, token) = (store.clone(), format!("{node}-{sent}"));
                            sending = Some(tokio::spawn(async move {
                                match store.probe_changes(&token).await {
                                    Ok(()) => true,
                                    Err(e) => {
                                        tracing::debug!(error = %e, "read cache: could not send a probe");
                                        false
                                    }
                                }
                            }));
                            next = tokio::time::Instant::now() + every;
                        }
                    }
                };
                if let Some(task) = sending {
                    task.abort();
                }
                cache.set_listening(false);
                tracing::warn!(error = %lost, "read cache: change listener lost; the cache is bypassed until it is back");
            }
            Err(e) => {
                cache.set_listening(false);
                tracing::warn!(error = %e, "read cache: cannot listen for changes; the cache is bypassed until it can");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Implements `Store` for `CachedStore`. Each trait method is listed once: `cached` reads with
/// their part (`+` the part for absent keys, when "not found" is kept) and key, `drops` writes
/// with the parts they drop, `forwards` the rest (reads and writes of tables the cache does not
/// hold). A method added to the trait and not listed here fails to compile.
macro_rules! cached {
    (@absent $i:ident) => { None };
    (@absent $i:ident $absent:ident) => { Some(&$i.$absent) };
    (
        cached { $(fn $cname:ident($($carg:ident: $cty:ty),* $(,)?) -> $cret:ty
            => $part:ident $(+ $absent:ident)? [$key:expr];)* }
        drops { $(fn $wname:ident($($warg:ident: $wty:ty),* $(,)?) -> $wret:ty => $drop:ident;)* }
        forwards { $(fn $fname:ident($($farg:ident: $fty:ty),* $(,)?) -> $fret:ty;)* }
    ) => {
        #[async_trait]
        impl Store for CachedStore {
            $(
                async fn $cname(&self, $($carg: $cty),*) -> $cret {
                    self.cache
                        .read(
                            |i| (&i.$part, cached!(@absent i $($absent)?)),
                            $key,
                            self.inner.$cname($($carg),*),
                        )
                        .await
                }
            )*
            $(
                async fn $wname(&self, $($warg: $wty),*) -> $wret {
                    let out = self.inner.$wname($($warg),*).await;
                    self.cache.drop_parts(Parts::$drop, "write");
                    out
                }
            )*
            $(
                async fn $fname(&self, $($farg: $fty),*) -> $fret {
                    self.inner.$fname($($farg),*).await
                }
            )*
        }
    };
}

cached! {
    cached {
        fn get_api_key_auth(public_key: &str) -> StoreResult<Option<ApiKeyAuth>>
            => api_keys + unknown_api_keys[public_key.to_owned()];
        fn get_service_account_auth(client_id: &str) -> StoreResult<Option<ServiceAccountAuth>>
            => service_accounts + unknown_service_accounts[client_id.to_owned()];
        fn get_project(id: &str) -> StoreResult<Option<Project>> => projects[id.to_owned()];
        fn get_database_user(
            project_id: &str,
            database_name: &str,
            username: &str,
        ) -> StoreResult<Option<DatabaseUserRecord>>
            => database_users[(project_id.to_owned(), database_name.to_owned(), username.to_owned())];
        fn get_user_security(project_id: &str) -> StoreResult<UserSecurityRecord>
            => user_security[project_id.to_owned()];
    }
    drops {
        fn bootstrap_first_org(org: &Org, key: &ApiKeyRecord) -> StoreResult<bool> => Principals;
        fn create_org_with_key(org: &Org, key: &ApiKeyRecord) -> StoreResult<()> => Principals;
        fn create_api_key(key: &ApiKeyRecord, grants: &[ProjectGrant]) -> StoreResult<()> => Principals;
        fn update_api_key(key: &ApiKeyRecord) -> StoreResult<bool> => Principals;
        fn delete_api_key(id: &str) -> StoreResult<bool> => Principals;
        fn put_grant(grant: &ProjectGrant) -> StoreResult<()> => Principals;
        fn delete_grant(principal_id: &str, project_id: &str) -> StoreResult<bool> => Principals;
        fn add_access_list_entries(entries: &[AccessListEntry]) -> StoreResult<()> => Principals;
        fn delete_access_list_entry(principal_id: &str, cidr: &str) -> StoreResult<bool> => Principals;
        fn create_service_account(
            account: &ServiceAccountRecord,
            secret: &ServiceAccountSecretRecord,
        ) -> StoreResult<()> => Principals;
        fn update_service_account(account: &ServiceAccountRecord) -> StoreResult<bool> => Principals;
        fn delete_service_account(client_id: &str) -> StoreResult<bool> => Principals;
        fn add_service_account_secret(secret: &ServiceAccountSecretRecord) -> StoreResult<()> => Principals;
        fn delete_service_account_secret(client_id: &str, secret_id: &str) -> StoreResult<bool> => Principals;
        fn create_project(project: &Project) -> StoreResult<()> => Projects;
        // Cascades to the project's grants, users and user security.
        fn delete_project(id: &str) -> StoreResult<bool> => All;
        fn create_database_user(user: &DatabaseUserRecord) -> StoreResult<()> => DatabaseUsers;
        fn create_database_user_within_limit(
            user: &DatabaseUserRecord,
            max_per_project: u64,
        ) -> StoreResult<()> => DatabaseUsers;
        fn update_database_user(user: &DatabaseUserRecord) -> StoreResult<bool> => DatabaseUsers;
        fn delete_database_user(
            project_id: &str,
            database_name: &str,
            username: &str,
        ) -> StoreResult<bool> => DatabaseUsers;
        fn delete_database_user_revoking(
            project_id: &str,
            database_name: &str,
            username: &str,
            revoke: Option<(Revocation, &AuditEvent)>,
        ) -> StoreResult<(bool, Vec<CertificateRecord>)> => DatabaseUsers;
        fn put_user_security(project_id: &str, record: &UserSecurityRecord) -> StoreResult<()> => UserSecurity;
    }
    forwards {
        fn ping() -> StoreResult<()>;
        fn close() -> ();
        fn thread_side_stats() -> ThreadSideStats;
        fn is_empty() -> StoreResult<bool>;
        fn get_org(id: &str) -> StoreResult<Option<Org>>;
        fn get_api_key(public_key: &str) -> StoreResult<Option<ApiKeyRecord>>;
        fn get_api_key_by_id(id: &str) -> StoreResult<Option<ApiKeyRecord>>;
        fn list_api_keys(org_id: &str, page: Page) -> StoreResult<(Vec<ApiKeyRecord>, u64)>;
        fn list_grants(principal_id: &str) -> StoreResult<Vec<ProjectGrant>>;
        fn list_project_grants(project_id: &str) -> StoreResult<Vec<ProjectGrant>>;
        fn list_access_list(principal_id: &str) -> StoreResult<Vec<AccessListEntry>>;
        fn get_service_account(client_id: &str) -> StoreResult<Option<ServiceAccountRecord>>;
        fn list_service_accounts(
            org_id: &str,
            page: Page,
        ) -> StoreResult<(Vec<ServiceAccountRecord>, u64)>;
        fn list_service_account_secrets(
            client_id: &str,
        ) -> StoreResult<Vec<ServiceAccountSecretRecord>>;
        // Every token issued records its secret's last use: not an input of authentication,
        // so it drops nothing (and, since migration 0014, neither raises the SQLite cache
        // version nor notifies). A cached secret's `last_used` may be older than the store's;
        // what shows it (`list_service_account_secrets`) reads the store.
        fn touch_service_account_secret(secret_id: &str, at: i64) -> StoreResult<()>;
        // Revoked tokens are never cached: `is_token_revoked` always asks the store.
        fn revoke_token(jti: &str, expires: i64, now: i64) -> StoreResult<()>;
        fn is_token_revoked(jti: &str) -> StoreResult<bool>;
        fn append_audit(event: &AuditEvent) -> StoreResult<AuditEntry>;
        fn list_audit(filter: &AuditFilter, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditEntry>>;
        fn audit_chain_heads() -> StoreResult<Vec<AuditChainHead>>;
        fn get_or_insert_secret(name: &str, sealed: &[u8]) -> StoreResult<Vec<u8>>;
        fn list_projects(org_ids: &[String], page: Page) -> StoreResult<(Vec<Project>, u64)>;
        fn get_active_ca(project_id: &str) -> StoreResult<Option<CaRecord>>;
        fn insert_ca_if_absent(ca: &CaRecord) -> StoreResult<CaRecord>;
        fn get_crl_state(ca_id: i64) -> StoreResult<CrlState>;
        fn publish_crl(ca_id: i64, crl: &PublishedCrl) -> StoreResult<bool>;
        fn list_projects_with_crls_due(now: i64) -> StoreResult<Vec<String>>;
        fn crl_distribution_token(project_id: &str, new_token: &str) -> StoreResult<String>;
        fn project_of_crl_token(token: &str) -> StoreResult<Option<String>>;
        fn list_database_users(
            project_id: &str,
            page: Page,
        ) -> StoreResult<(Vec<DatabaseUserRecord>, u64)>;
        fn count_database_users(project_id: &str) -> StoreResult<u64>;
        // Certificates, audit entries and Digest nonce counts: no cached table.
        fn commit_batch(batch: &[BatchWrite]) -> StoreResult<Vec<Recorded>>;
        fn list_unexpired_certificates(
            project_id: &str,
            username: &str,
            now: i64,
            page: Page,
        ) -> StoreResult<(Vec<CertificateSummary>, u64)>;
        fn expiring_certificates(now: i64, soon: i64, later: i64) -> StoreResult<Vec<ExpiringCount>>;
        fn list_project_cas(project_id: &str) -> StoreResult<Vec<CaRecord>>;
        fn rotate_ca(ca: &CaRecord, replaces: i64, audit: &AuditEvent) -> StoreResult<Option<CaRecord>>;
        fn retire_ca(
            project_id: &str,
            generation: i64,
            now: i64,
            audit: &AuditEvent,
        ) -> StoreResult<RetireOutcome>;
        fn last_leaf_not_after(ca_id: i64) -> StoreResult<Option<i64>>;
        fn unretired_ca_expiries() -> StoreResult<Vec<CaExpiry>>;
        fn get_certificate(project_id: &str, serial: i64) -> StoreResult<Option<CertificateRecord>>;
        fn revoke_certificates(
            project_id: &str,
            username: &str,
            which: RevokeWhich,
            revocation: Revocation,
            audit: &AuditEvent,
        ) -> StoreResult<Vec<CertificateRecord>>;
        fn list_user_certificates(
            project_id: &str,
            username: &str,
            page: Page,
        ) -> StoreResult<(Vec<CertificateRecord>, u64)>;
        fn list_revoked_unexpired(ca_id: i64, now: i64) -> StoreResult<Vec<(i64, Revocation)>>;
    }
}
