//! Conformance checks for any [`Store`] implementation.
//!
//! Every check is a `pub async fn(&dyn Store)`. An adapter's test file includes this module
//! (`mod conformance;`) and runs each check against a real, freshly opened store, one test per
//! check (see `tests/sqlite_conformance.rs`), so that a failure is named after the promise it
//! breaks.
//!
//! Apart from [`is_empty_until_first_org`], which needs a store with no organization in it, and
//! [`audit_log_starts_at_genesis`], which needs an empty audit log, the checks do not depend on
//! each other: each one works in its own namespace of organization ids, project ids, API keys,
//! service accounts, token ids, audit actors, secret names and certificate serials, so that
//! [`run_all`] can run them all, one after another, against a single store. The audit log is
//! the one thing they share: a check that appends to it compares against the entries that were
//! there before it started, never against absolute sequence numbers.

use dbcerts_store::{
    AccessListEntry, ApiKeyAuth, ApiKeyRecord, AuditEntry, AuditEvent, AuditFilter, BatchWrite,
    CaRecord, CertificateRecord, CertificateSummary, ChainCheck, ChainSummary, DatabaseUserRecord,
    ExpiringCount, Org, Page, Project, ProjectGrant, Recorded, Revocation, RevocationReason,
    RevokeWhich, ServiceAccountAuth, ServiceAccountRecord, ServiceAccountSecretRecord, Store,
    StoreError, StoreResult, UserSecurityRecord, verify_audit_chains,
};
use dbcerts_store::{CaExpiry, RetireOutcome};

mod crl;
pub use crl::*;

/// Runs every check against one store, which must be fresh (contain no organization and no
/// audit entry), then checks that the audit log they built is one unbroken chain.
pub async fn run_all(store: &dyn Store) {
    is_empty_until_first_org(store).await;
    audit_log_starts_at_genesis(store).await;
    ping_answers(store).await;
    bootstrap_first_org_happens_once(store).await;
    expiring_certificates_counts_per_project(store).await;
    org_and_api_key_round_trip(store).await;
    create_org_with_key_is_atomic(store).await;
    secret_first_value_wins(store).await;
    secret_concurrent_inserts_agree(store).await;
    project_round_trip(store).await;
    project_name_unique_per_org(store).await;
    list_projects_filters_orders_and_pages(store).await;
    delete_project_cascades(store).await;
    ca_first_insert_wins(store).await;
    ca_concurrent_inserts_agree(store).await;
    database_user_round_trip(store).await;
    database_user_unique_key(store).await;
    list_database_users_orders_and_pages(store).await;
    update_database_user(store).await;
    delete_database_user(store).await;
    certificate_serial_unique(store).await;
    list_unexpired_certificates_filters_orders_and_pages(store).await;
    certificates_outlive_database_user_but_not_project(store).await;
    user_security_default_put_overwrite_clear(store).await;
    database_user_limit_is_atomic(store).await;
    api_key_create_and_get(store).await;
    api_key_public_key_unique(store).await;
    create_api_key_with_grants_is_atomic(store).await;
    list_api_keys_filters_orders_and_pages(store).await;
    update_api_key_replaces_description_and_roles(store).await;
    delete_api_key_takes_grants_and_access_list(store).await;
    api_key_auth_bundles_grants_and_access_list(store).await;
    grants_put_replace_list_delete(store).await;
    access_list_add_keeps_existing_and_deletes_once(store).await;
    service_account_round_trip(store).await;
    list_service_accounts_filters_orders_and_pages(store).await;
    update_service_account(store).await;
    service_account_secrets_add_list_delete_touch(store).await;
    delete_service_account_cascades(store).await;
    service_account_auth_bundles_everything(store).await;
    revoked_tokens_remembered_until_expiry(store).await;
    audit_append_chains_entries(store).await;
    list_audit_filters(store).await;
    audit_concurrent_appends_keep_the_chain(store).await;
    audit_chains_are_separate(store).await;
    insert_certificate_appends_one_audit_entry(store).await;
    commit_batch_skips_only_the_refused(store).await;
    digest_nonce_counts_only_rise_and_expire(store).await;
    certificate_records_its_issuing_ca(store).await;
    revoke_one_certificate_is_idempotent(store).await;
    revoke_all_unexpired_of_one_user(store).await;
    list_revoked_unexpired_per_ca(store).await;
    crl_revision_moves_with_each_revocation(store).await;
    crl_publish_is_compare_and_set(store).await;
    crls_due_are_the_stale_and_the_old(store).await;
    crl_distribution_tokens_are_stored_once(store).await;
    revoked_certificates_leave_the_unexpired_list(store).await;
    ca_rotation_and_retirement(store).await;
    delete_database_user_revoking_in_one_transaction(store).await;
    assert_audit_log_intact(store).await;
}

/// The `sql` argument of [`audit_tampering_is_detected`] for a backend: each statement on a
/// fresh `$conn` (`sqlx::PgConnection`, `sqlx::SqliteConnection`) to the database at `$url`.
#[macro_export]
macro_rules! tamper_sql {
    ($conn:ty, $url:expr) => {
        |sql: &'static str, seq: i64, text: Option<String>| {
            let url: String = $url.clone();
            async move {
                use sqlx::Connection;
                let mut db = <$conn>::connect(&url).await.unwrap();
                let query = sqlx::query_scalar::<_, String>(sql).bind(seq);
                let query = match text {
                    Some(text) => query.bind(text),
                    None => query,
                };
                let got = query.fetch_optional(&mut db).await.unwrap();
                db.close().await.unwrap();
                got
            }
        }
    };
}

/// Calls `$test!(check, ...)` with every check that takes one store, so that each adapter's
/// test file runs the same list, one test per check.
#[macro_export]
macro_rules! for_each_check {
    ($test:ident) => {
        $test!(
            is_empty_until_first_org,
            ping_answers,
            bootstrap_first_org_happens_once,
            expiring_certificates_counts_per_project,
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
            audit_chains_are_separate,
            insert_certificate_appends_one_audit_entry,
            commit_batch_skips_only_the_refused,
            digest_nonce_counts_only_rise_and_expire,
            certificate_records_its_issuing_ca,
            revoke_one_certificate_is_idempotent,
            revoke_all_unexpired_of_one_user,
            list_revoked_unexpired_per_ca,
            crl_revision_moves_with_each_revocation,
            crl_publish_is_compare_and_set,
            crls_due_are_the_stale_and_the_old,
            crl_distribution_tokens_are_stored_once,
            revoked_certificates_leave_the_unexpired_list,
            ca_rotation_and_retirement,
            delete_database_user_revoking_in_one_transaction,
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A check's private namespace of ids, so that checks can share one store.
#[derive(Clone, Copy)]
struct Ns(u64);

impl Ns {
    /// A 24-hex organization id.
    fn org(self, n: u64) -> String {
        format!("{:024x}", (0xa << 60) | (self.0 << 32) | n)
    }
    /// A 24-hex project id.
    fn project(self, n: u64) -> String {
        format!("{:024x}", (0xb << 60) | (self.0 << 32) | n)
    }
    /// A certificate serial.
    fn serial(self, n: i64) -> i64 {
        ((self.0 as i64) << 32) | n
    }
    /// An API public key.
    fn public_key(self, n: u64) -> String {
        format!("PK{:02}{:06}", self.0, n)
    }
    /// An API key id.
    fn key_id(self, n: u64) -> String {
        format!("{:024x}", (0xc << 60) | (self.0 << 32) | n)
    }
    /// A server-secret name.
    fn secret(self, name: &str) -> String {
        format!("conformance-{}-{name}", self.0)
    }
    /// A service-account client id.
    fn client_id(self, n: u64) -> String {
        format!("mdb_sa_id_{:024x}", (0xd << 60) | (self.0 << 32) | n)
    }
    /// A service-account secret id.
    fn secret_id(self, n: u64) -> String {
        format!("{:024x}", (0xe << 60) | (self.0 << 32) | n)
    }
    /// An access-token id (`jti`).
    fn jti(self, n: u64) -> String {
        format!("jti-{}-{n}", self.0)
    }
    /// An audit actor: the API key with public key `n`.
    fn actor(self, n: u64) -> String {
        format!("api-key:{}", self.public_key(n))
    }
}

const T0: i64 = 1_700_000_000;
const NO_PAGE: Page = Page {
    offset: 0,
    limit: 1000,
};

fn page(offset: u64, limit: u32) -> Page {
    Page { offset, limit }
}

fn org(id: &str) -> Org {
    Org {
        id: id.to_owned(),
        name: format!("org {id}"),
        created: T0,
    }
}

fn api_key(ns: Ns, n: u64, org_id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ns.key_id(n),
        org_id: org_id.to_owned(),
        public_key: ns.public_key(n),
        sealed_private_key: vec![0, 1, 2, 0xff, n as u8],
        description: format!("key {n} of namespace {}", ns.0),
        org_roles: vec!["ORG_OWNER".to_owned(), "ORG_READ_ONLY".to_owned()],
        created: T0 + 1,
    }
}

/// Creates organization `n` of `ns` with API key `n`; returns the organization id.
async fn setup_org(store: &dyn Store, ns: Ns, n: u64) -> String {
    let id = ns.org(n);
    store
        .create_org_with_key(&org(&id), &api_key(ns, n, &id))
        .await
        .expect("create_org_with_key");
    id
}

fn project(id: &str, org_id: &str, name: &str, created: i64) -> Project {
    Project {
        id: id.to_owned(),
        org_id: org_id.to_owned(),
        name: name.to_owned(),
        created,
        with_default_alerts_settings: true,
        tags_json: r#"[{"key":"env","value":"test"}]"#.to_owned(),
    }
}

/// Creates organization 0 of `ns` and project `n` in it; returns the project id.
async fn setup_project(store: &dyn Store, ns: Ns, n: u64) -> String {
    let org_id = ns.org(0);
    if store.get_org(&org_id).await.expect("get_org").is_none() {
        setup_org(store, ns, 0).await;
    }
    let id = ns.project(n);
    store
        .create_project(&project(
            &id,
            &org_id,
            &format!("project {n}"),
            T0 + n as i64,
        ))
        .await
        .expect("create_project");
    id
}

/// The CA as offered to `insert_ca_if_absent` (whose `id` the store ignores).
fn ca(project_id: &str, tag: u8) -> CaRecord {
    CaRecord {
        id: 0,
        project_id: project_id.to_owned(),
        algorithm: ["RSA", "ECDSA"][usize::from(tag % 2)].to_owned(),
        cert_der: vec![0x30, 0x82, tag, tag, 0x00],
        sealed_key: vec![tag; 40],
        not_before: T0 + i64::from(tag),
        not_after: T0 + 10 * 365 * 86_400 + i64::from(tag),
        generation: 1,
        active: true,
        retired_at: None,
    }
}

/// `stored` without the row id the store assigned: comparable with what [`ca`] offered.
fn sans_id(stored: CaRecord) -> CaRecord {
    CaRecord { id: 0, ..stored }
}

fn user(project_id: &str, database_name: &str, username: &str, created: i64) -> DatabaseUserRecord {
    DatabaseUserRecord {
        project_id: project_id.to_owned(),
        database_name: database_name.to_owned(),
        username: username.to_owned(),
        x509_type: "MANAGED".to_owned(),
        created,
        doc: format!(r#"{{"roles":[{{"roleName":"read","databaseName":"{database_name}"}}]}}"#),
    }
}

fn cert(
    serial: i64,
    project_id: &str,
    username: &str,
    not_before: i64,
    not_after: i64,
) -> CertificateRecord {
    CertificateRecord {
        serial,
        project_id: project_id.to_owned(),
        username: username.to_owned(),
        subject: format!("CN={username},serial={serial}"),
        not_before,
        not_after,
        // Issued one hour after notBefore, as the server does.
        created_ms: (not_before + 3600) * 1000,
        cert_der: vec![0x30, 0x82, (serial & 0xff) as u8],
        // The store does not check `ca_id` against `project_cas` (see migration 0007); checks
        // about revocation and CRLs use real CA rows (`issued_by`).
        ca_id: 0,
        revocation: None,
    }
}

fn summary(c: &CertificateRecord) -> CertificateSummary {
    CertificateSummary {
        serial: c.serial,
        subject: c.subject.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
    }
}

fn summaries<'a>(
    certs: impl IntoIterator<Item = &'a CertificateRecord>,
) -> Vec<CertificateSummary> {
    certs.into_iter().map(summary).collect()
}

/// The audit event the server records when it issues `c`.
fn issued(c: &CertificateRecord) -> AuditEvent {
    AuditEvent {
        at_ms: c.created_ms,
        actor: "operator".to_owned(),
        source_ip: None,
        action: "certificate.issued".to_owned(),
        project_id: Some(c.project_id.clone()),
        target: Some(c.username.clone()),
        status: None,
        details: format!(r#"{{"serial":{}}}"#, c.serial),
    }
}

/// Inserts `c` with its issuance audit event.
async fn insert_cert(store: &dyn Store, c: &CertificateRecord) -> StoreResult<()> {
    store.insert_certificate(c, &issued(c)).await
}

fn grant(principal_id: &str, project_id: &str, roles: &[&str]) -> ProjectGrant {
    ProjectGrant {
        principal_id: principal_id.to_owned(),
        project_id: project_id.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn entry(principal_id: &str, cidr_block: &str, created: i64) -> AccessListEntry {
    AccessListEntry {
        principal_id: principal_id.to_owned(),
        cidr_block: cidr_block.to_owned(),
        created,
    }
}

fn service_account(ns: Ns, n: u64, org_id: &str) -> ServiceAccountRecord {
    ServiceAccountRecord {
        client_id: ns.client_id(n),
        org_id: org_id.to_owned(),
        name: format!("account {n}"),
        description: format!("service account {n} of namespace {}", ns.0),
        org_roles: vec!["ORG_MEMBER".to_owned()],
        created: T0 + n as i64,
    }
}

fn sa_secret(ns: Ns, n: u64, client_id: &str, created: i64) -> ServiceAccountSecretRecord {
    ServiceAccountSecretRecord {
        id: ns.secret_id(n),
        client_id: client_id.to_owned(),
        secret_hash: vec![n as u8; 32],
        masked: format!("mdb_sa_sk_...{n:04}"),
        created,
        expires: created + 90 * 86_400,
        last_used: None,
    }
}

fn audit_event(actor: &str, action: &str, project_id: Option<&str>, at_ms: i64) -> AuditEvent {
    AuditEvent {
        at_ms,
        actor: actor.to_owned(),
        source_ip: Some("192.0.2.7".to_owned()),
        action: action.to_owned(),
        project_id: project_id.map(str::to_owned),
        target: None,
        status: Some(200),
        details: "{}".to_owned(),
    }
}

/// How many migrations the crate ships for `backend` (every one must be applied, once).
pub fn migration_count(backend: &str) -> i64 {
    migration_versions(backend).len() as i64
}

/// The versions of the migrations the crate ships for `backend`, in order (the numbers are
/// fixed per feature, so a branch may ship 9 without 8).
pub fn migration_versions(backend: &str) -> Vec<i64> {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let (number, rest) = name.split_once('_')?;
            rest.ends_with(".sql").then(|| number.parse().unwrap())
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// The whole audit log, in order.
async fn audit_log(store: &dyn Store) -> Vec<AuditEntry> {
    let mut all: Vec<AuditEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let batch = store
            .list_audit(&AuditFilter::default(), after, 500)
            .await
            .expect("list_audit");
        if batch.is_empty() {
            return all;
        }
        assert!(
            batch.len() <= 500 && batch.iter().all(|e| e.seq > after),
            "list_audit returns at most `limit` entries, all after `after_seq`"
        );
        all.extend(batch);
    }
}

/// The seq of the last audit entry, and the hash of the last entry of `chain` (its genesis
/// when it has none): what the next append to the chain chains to.
async fn audit_tip(store: &dyn Store, chain: &str) -> (i64, Vec<u8>) {
    let log = audit_log(store).await;
    let hash = log
        .iter()
        .rfind(|e| e.chain == chain)
        .map_or_else(|| AuditEntry::genesis(chain), |e| e.hash.clone());
    (log.last().map_or(0, |e| e.seq), hash)
}

/// The last entry of `chain` as `(chain_seq, seq, hash)`; `(0, 0, genesis)` for an empty chain.
async fn chain_tip(store: &dyn Store, chain: &str) -> (i64, i64, Vec<u8>) {
    audit_log(store)
        .await
        .into_iter()
        .rfind(|e| e.chain == chain)
        .map_or_else(
            || (0, 0, AuditEntry::genesis(chain)),
            |e| (e.chain_seq, e.seq, e.hash),
        )
}

/// Asserts that the audit log is unbroken: seqs 1, 2, 3, ... (no append here rolls back), and
/// each chain (an event's project's, or the store chain) numbered 1, 2, 3, ... in it, its first
/// entry chained to the chain's genesis, every other one to the chain's previous entry, every
/// one intact; and that `verify_audit_chains` finds the same.
pub async fn assert_audit_log_intact(store: &dyn Store) {
    // chain -> (chain_seq, seq, hash) of its last entry
    let mut tips: std::collections::BTreeMap<String, (i64, i64, Vec<u8>)> = Default::default();
    let mut prev_seq = 0;
    let log = audit_log(store).await;
    for e in &log {
        assert_eq!(e.seq, prev_seq + 1, "audit seqs are consecutive");
        assert_eq!(
            e.chain,
            AuditEntry::chain_of(&e.event),
            "entry {} is in its project's chain",
            e.seq
        );
        let (chain_seq, seq, hash) = tips
            .entry(e.chain.clone())
            .or_insert_with(|| (0, 0, AuditEntry::genesis(&e.chain)));
        assert_eq!(
            e.chain_seq,
            *chain_seq + 1,
            "entry {} is next in its chain",
            e.seq
        );
        assert_eq!(
            e.prev_seq, *seq,
            "entry {} names its chain's previous entry",
            e.seq
        );
        assert_eq!(
            &e.prev_hash, hash,
            "entry {} chains to its predecessor",
            e.seq
        );
        assert!(e.is_intact(), "entry {} is intact", e.seq);
        *tips.get_mut(&e.chain).unwrap() = (e.chain_seq, e.seq, e.hash.clone());
        prev_seq = e.seq;
    }
    let heads: Vec<(String, i64, i64, Vec<u8>)> = store
        .audit_chain_heads()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.chain, h.chain_seq, h.seq, h.hash))
        .collect();
    let expected: Vec<(String, i64, i64, Vec<u8>)> = tips
        .iter()
        .map(|(chain, (chain_seq, seq, hash))| (chain.clone(), *chain_seq, *seq, hash.clone()))
        .collect();
    assert_eq!(
        heads, expected,
        "each chain's recorded head is its last entry"
    );
    let chains = tips
        .iter()
        .map(|(chain, (entries, last_seq, _))| ChainSummary {
            chain: chain.clone(),
            entries: *entries as u64,
            last_seq: *last_seq,
        })
        .collect();
    assert_eq!(
        verify_audit_chains(store).await.unwrap(),
        ChainCheck::Intact {
            entries: log.len() as u64,
            chains
        },
        "verify_audit_chains agrees"
    );
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(w)) => assert_eq!(w, what, "conflict names the wrong constraint"),
        other => panic!("expected Conflict({what:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_any_conflict<T: std::fmt::Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Organizations, API keys, server secrets
// ---------------------------------------------------------------------------------------------

/// A fresh store is empty; it is not once an organization exists. Needs a fresh store.
pub async fn is_empty_until_first_org(store: &dyn Store) {
    let ns = Ns(1);
    assert!(store.is_empty().await.unwrap(), "a fresh store is empty");
    assert!(
        store.is_empty().await.unwrap(),
        "is_empty does not change the store"
    );
    setup_org(store, ns, 0).await;
    assert!(
        !store.is_empty().await.unwrap(),
        "a store with an organization is not empty"
    );
}

/// A reachable store answers `ping`, repeatedly.
pub async fn ping_answers(store: &dyn Store) {
    for _ in 0..3 {
        store.ping().await.expect("ping");
    }
}

/// Of eight nodes bootstrapping at once, exactly one creates the first organization and its
/// key; the losers leave nothing behind. On a store that has organizations already (as under
/// [`run_all`]), nobody bootstraps.
pub async fn bootstrap_first_org_happens_once(store: &dyn Store) {
    let ns = Ns(43);
    let was_empty = store.is_empty().await.unwrap();
    let racers: Vec<(Org, ApiKeyRecord)> = (0..8)
        .map(|n| {
            let id = ns.org(n);
            (org(&id), api_key(ns, n, &id))
        })
        .collect();
    let results =
        futures_join_all(racers.iter().map(|(o, k)| store.bootstrap_first_org(o, k))).await;
    let winners: Vec<usize> = results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.expect("bootstrap_first_org").then_some(i))
        .collect();
    if was_empty {
        assert_eq!(winners.len(), 1, "exactly one bootstrap wins: {winners:?}");
    } else {
        assert!(
            winners.is_empty(),
            "nobody bootstraps a store with organizations"
        );
    }
    for (i, (o, k)) in racers.iter().enumerate() {
        let won = winners.contains(&i);
        assert_eq!(
            store.get_org(&o.id).await.unwrap().is_some(),
            won,
            "org {i}"
        );
        assert_eq!(
            store.get_api_key(&k.public_key).await.unwrap(),
            won.then(|| k.clone()),
            "key {i}"
        );
    }
    assert!(!store.is_empty().await.unwrap());
    // Once an organization exists, bootstrapping again does nothing.
    let (late_org, late_key) = (org(&ns.org(100)), api_key(ns, 100, &ns.org(100)));
    assert!(
        !store
            .bootstrap_first_org(&late_org, &late_key)
            .await
            .unwrap()
    );
    assert_eq!(store.get_org(&late_org.id).await.unwrap(), None);
}

/// `expiring_certificates` counts unexpired certificates per project by expiry horizon: the
/// nearer count within the farther one, expired and far-off certificates in neither, projects
/// with nothing expiring absent, in project-id order.
pub async fn expiring_certificates_counts_per_project(store: &dyn Store) {
    let ns = Ns(44);
    let (p1, p2, quiet) = (
        setup_project(store, ns, 1).await,
        setup_project(store, ns, 2).await,
        setup_project(store, ns, 3).await,
    );
    // "now" far in the future of every other check's certificates, so they do not count.
    let now = 4_000_000_000;
    let (soon, later) = (now + 7 * 86_400, now + 30 * 86_400);
    let expiries: [(&str, i64); 9] = [
        (&p1, now),               // expired at `now` exactly: not counted
        (&p1, now + 1),           // soon
        (&p1, soon),              // soon (inclusive)
        (&p1, soon + 1),          // later only
        (&p1, later),             // later (inclusive)
        (&p1, later + 1),         // beyond both
        (&p2, now + 3 * 86_400),  // soon
        (&p2, now - 86_400),      // expired
        (&quiet, later + 86_400), // beyond both
    ];
    for (i, (project, not_after)) in expiries.iter().enumerate() {
        let c = cert(
            ns.serial(i as i64 + 1),
            project,
            "CN=exp",
            now - 86_400,
            *not_after,
        );
        insert_cert(store, &c).await.unwrap();
    }
    let counts = store.expiring_certificates(now, soon, later).await.unwrap();
    let ours: Vec<&ExpiringCount> = counts
        .iter()
        .filter(|c| [&p1, &p2, &quiet].contains(&&c.project_id))
        .collect();
    let mut expected = [
        ExpiringCount {
            project_id: p1.clone(),
            within_soon: 2,
            within_later: 4,
        },
        ExpiringCount {
            project_id: p2.clone(),
            within_soon: 1,
            within_later: 1,
        },
    ];
    expected.sort_by(|a, b| a.project_id.cmp(&b.project_id));
    assert_eq!(ours, expected.iter().collect::<Vec<_>>());
    let ids: Vec<&String> = counts.iter().map(|c| &c.project_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "project-id order");
    // Deleting a project takes its certificates out of the counts.
    store.delete_project(&p2).await.unwrap();
    let counts = store.expiring_certificates(now, soon, later).await.unwrap();
    assert!(counts.iter().all(|c| c.project_id != p2));
}

/// Two nodes (two stores on one database) appending from spawned tasks still build one
/// unbroken store chain with consecutive seqs.
pub async fn audit_chain_holds_across_two_nodes(
    first: std::sync::Arc<dyn Store>,
    second: std::sync::Arc<dyn Store>,
) {
    let before = audit_tip(&*first, "").await.0;
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
    assert_eq!(seqs, (before + 1..=before + 80).collect::<Vec<i64>>());
    assert_audit_log_intact(&*first).await;
    assert_audit_log_intact(&*second).await;
}

/// Two nodes creating the same projects' CAs at the same moment end with one CA per project,
/// the same on both.
pub async fn ca_race_across_two_nodes(first: &dyn Store, second: &dyn Store) {
    let ns = Ns(45);
    for n in 0..10 {
        let p = setup_project(first, ns, n).await;
        let (a, b) = (ca(&p, 2 * n as u8), ca(&p, 2 * n as u8 + 1));
        let (ra, rb) = tokio::join!(
            first.insert_ca_if_absent(&a),
            second.insert_ca_if_absent(&b)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both nodes get the same CA");
        assert_eq!(second.get_active_ca(&p).await.unwrap(), Some(ra.clone()));
        assert_eq!(first.get_active_ca(&p).await.unwrap(), Some(ra));
    }
}

/// `get_org` and `get_api_key` return exactly what `create_org_with_key` stored.
pub async fn org_and_api_key_round_trip(store: &dyn Store) {
    let ns = Ns(2);
    let org_id = ns.org(0);
    let o = Org {
        id: org_id.clone(),
        name: "Round Trip Org".into(),
        created: T0 + 42,
    };
    let k = ApiKeyRecord {
        id: ns.key_id(0),
        org_id: org_id.clone(),
        public_key: ns.public_key(0),
        sealed_private_key: (0..=255).collect(),
        description: "ünïcode & \"quotes\"".into(),
        org_roles: vec![
            "ORG_OWNER".into(),
            "ORG_BILLING_ADMIN".into(),
            "ORG_MEMBER".into(),
        ],
        created: T0 + 43,
    };
    store.create_org_with_key(&o, &k).await.unwrap();
    assert_eq!(store.get_org(&org_id).await.unwrap(), Some(o));
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k.clone())
    );

    // A key with no roles and an empty sealed key round-trips as well.
    let org2 = ns.org(1);
    let k2 = ApiKeyRecord {
        org_roles: Vec::new(),
        sealed_private_key: Vec::new(),
        description: String::new(),
        ..api_key(ns, 1, &org2)
    };
    store.create_org_with_key(&org(&org2), &k2).await.unwrap();
    assert_eq!(store.get_api_key(&k2.public_key).await.unwrap(), Some(k2));
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k),
        "first key untouched"
    );

    assert_eq!(store.get_org(&ns.org(99)).await.unwrap(), None);
    assert_eq!(store.get_api_key(&ns.public_key(99)).await.unwrap(), None);
    // Keys are looked up by public key, not by id.
    assert_eq!(store.get_api_key(&ns.key_id(0)).await.unwrap(), None);
}

/// A failing `create_org_with_key` leaves neither the organization nor the key behind.
pub async fn create_org_with_key_is_atomic(store: &dyn Store) {
    let ns = Ns(3);
    let first = setup_org(store, ns, 0).await;
    let first_key = api_key(ns, 0, &first);

    // New organization, new key id, but a public key that exists already.
    let second = ns.org(1);
    let clash = ApiKeyRecord {
        public_key: first_key.public_key.clone(),
        ..api_key(ns, 1, &second)
    };
    assert_any_conflict(store.create_org_with_key(&org(&second), &clash).await);
    assert_eq!(
        store.get_org(&second).await.unwrap(),
        None,
        "no organization left behind"
    );
    assert_eq!(
        store.get_api_key(&first_key.public_key).await.unwrap(),
        Some(first_key.clone()),
        "the existing key is untouched"
    );

    // New organization, new public key, but a key id that exists already.
    let third = ns.org(2);
    let clash = ApiKeyRecord {
        id: first_key.id.clone(),
        ..api_key(ns, 2, &third)
    };
    assert_any_conflict(store.create_org_with_key(&org(&third), &clash).await);
    assert_eq!(
        store.get_org(&third).await.unwrap(),
        None,
        "no organization left behind"
    );
    assert_eq!(
        store.get_api_key(&clash.public_key).await.unwrap(),
        None,
        "no key left behind"
    );

    // An organization id that exists already, with a brand-new key.
    let fresh_key = api_key(ns, 3, &first);
    let renamed = Org {
        name: "another name".into(),
        ..org(&first)
    };
    assert_any_conflict(store.create_org_with_key(&renamed, &fresh_key).await);
    assert_eq!(
        store.get_org(&first).await.unwrap(),
        Some(org(&first)),
        "organization untouched"
    );
    assert_eq!(
        store.get_api_key(&fresh_key.public_key).await.unwrap(),
        None,
        "no key left behind"
    );

    // After the failures the same organization id can still be created properly.
    store
        .create_org_with_key(&org(&second), &api_key(ns, 1, &second))
        .await
        .unwrap();
    assert_eq!(store.get_org(&second).await.unwrap(), Some(org(&second)));
    assert_eq!(
        store.get_api_key(&ns.public_key(1)).await.unwrap(),
        Some(api_key(ns, 1, &second))
    );
}

/// The first value stored under a secret name wins; later values are ignored.
pub async fn secret_first_value_wins(store: &dyn Store) {
    let ns = Ns(4);
    let name = ns.secret("nonce-key");
    let first = vec![1u8, 2, 3, 0, 255];
    let second = vec![9u8; 64];
    assert_eq!(
        store.get_or_insert_secret(&name, &first).await.unwrap(),
        first
    );
    assert_eq!(
        store.get_or_insert_secret(&name, &second).await.unwrap(),
        first
    );
    assert_eq!(store.get_or_insert_secret(&name, &[]).await.unwrap(), first);
    assert_eq!(
        store.get_or_insert_secret(&name, &first).await.unwrap(),
        first
    );

    // Names are independent.
    let other = ns.secret("check-value");
    assert_eq!(
        store.get_or_insert_secret(&other, &second).await.unwrap(),
        second
    );
    assert_eq!(
        store.get_or_insert_secret(&name, &second).await.unwrap(),
        first
    );
}

/// Nodes racing to create the same secret all end up with one value.
pub async fn secret_concurrent_inserts_agree(store: &dyn Store) {
    let ns = Ns(5);
    for i in 0..10u8 {
        let name = ns.secret(&format!("race-{i}"));
        let (a, b) = (vec![i, 0xaa], vec![i, 0xbb]);
        let (ra, rb) = tokio::join!(
            store.get_or_insert_secret(&name, &a),
            store.get_or_insert_secret(&name, &b)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both racers see the same secret");
        assert!(
            ra == a || ra == b,
            "the secret is one of the values offered"
        );
        assert_eq!(store.get_or_insert_secret(&name, &[0]).await.unwrap(), ra);
    }
}

// ---------------------------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------------------------

/// `get_project` returns exactly what `create_project` stored.
pub async fn project_round_trip(store: &dyn Store) {
    let ns = Ns(6);
    let org_id = setup_org(store, ns, 0).await;
    let p = Project {
        id: ns.project(0),
        org_id: org_id.clone(),
        name: "My Project ✓".into(),
        created: T0 + 7,
        with_default_alerts_settings: true,
        tags_json: r#"[{"key":"a","value":"b"},{"key":"c","value":""}]"#.into(),
    };
    let q = Project {
        id: ns.project(1),
        org_id: org_id.clone(),
        name: "other".into(),
        created: T0 + 8,
        with_default_alerts_settings: false,
        tags_json: "[]".into(),
    };
    store.create_project(&p).await.unwrap();
    store.create_project(&q).await.unwrap();
    assert_eq!(store.get_project(&p.id).await.unwrap(), Some(p));
    assert_eq!(store.get_project(&q.id).await.unwrap(), Some(q));
    assert_eq!(store.get_project(&ns.project(2)).await.unwrap(), None);
}

/// Project names are unique within an organization, not across organizations.
pub async fn project_name_unique_per_org(store: &dyn Store) {
    let ns = Ns(7);
    let org_a = setup_org(store, ns, 0).await;
    let org_b = setup_org(store, ns, 1).await;
    let original = project(&ns.project(0), &org_a, "Shared Name", T0);
    store.create_project(&original).await.unwrap();

    let dup = Project {
        with_default_alerts_settings: false,
        tags_json: "[]".into(),
        ..project(&ns.project(1), &org_a, "Shared Name", T0 + 1)
    };
    assert_conflict(store.create_project(&dup).await, "project name");
    assert_eq!(
        store.get_project(&dup.id).await.unwrap(),
        None,
        "the duplicate was not stored"
    );
    assert_eq!(
        store.get_project(&original.id).await.unwrap(),
        Some(original.clone())
    );

    // Another organization may use the same name.
    let other_org = project(&ns.project(2), &org_b, "Shared Name", T0 + 2);
    store.create_project(&other_org).await.unwrap();
    assert_eq!(
        store.get_project(&other_org.id).await.unwrap(),
        Some(other_org)
    );

    // Names differing only in case are different names.
    store
        .create_project(&project(&ns.project(3), &org_a, "shared name", T0 + 3))
        .await
        .unwrap();

    let (listed, total) = store.list_projects(&[org_a], NO_PAGE).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        listed.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        [ns.project(0), ns.project(3)]
    );
}

/// `list_projects` returns the given organizations' projects by (created, id), paged, with the
/// total count of all of them.
pub async fn list_projects_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(8);
    let org_a = setup_org(store, ns, 0).await;
    let org_b = setup_org(store, ns, 1).await;
    let org_c = setup_org(store, ns, 2).await; // no projects
    let org_d = setup_org(store, ns, 3).await; // not asked for

    // (project n, org, created), inserted out of order, with ties on `created` broken by id.
    let specs: [(u64, &str, i64); 8] = [
        (5, &org_a, T0 + 30),
        (2, &org_a, T0 + 10),
        (4, &org_b, T0 + 20),
        (1, &org_a, T0 + 20),
        (3, &org_a, T0 + 20),
        (6, &org_b, T0 + 5),
        (7, &org_d, T0 + 1),
        (0, &org_a, T0 + 40),
    ];
    for (n, o, created) in specs {
        store
            .create_project(&project(&ns.project(n), o, &format!("p{n}"), created))
            .await
            .unwrap();
    }
    let ids = |ps: &[Project]| ps.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    let expect = |ns_: &[u64]| ns_.iter().map(|&n| ns.project(n)).collect::<Vec<_>>();

    // One organization.
    let (ps, total) = store
        .list_projects(std::slice::from_ref(&org_a), NO_PAGE)
        .await
        .unwrap();
    assert_eq!(ids(&ps), expect(&[2, 1, 3, 5, 0]));
    assert_eq!(total, 5);
    assert_eq!(
        ps[0],
        project(&ns.project(2), &org_a, "p2", T0 + 10),
        "full rows are returned"
    );

    // Several organizations, merged in one order; org D excluded, org C contributes nothing.
    let orgs = vec![org_a.clone(), org_b.clone(), org_c.clone()];
    let all = expect(&[6, 2, 1, 3, 4, 5, 0]);
    let (ps, total) = store.list_projects(&orgs, NO_PAGE).await.unwrap();
    assert_eq!(ids(&ps), all);
    assert_eq!(total, 7);

    // Pages.
    for (offset, limit) in [
        (0u64, 1u32),
        (0, 3),
        (3, 3),
        (6, 3),
        (2, 100),
        (7, 3),
        (100, 5),
    ] {
        let (ps, total) = store
            .list_projects(&orgs, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(all.len());
        let end = (start + limit as usize).min(all.len());
        assert_eq!(
            ids(&ps),
            all[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 7,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    // No organizations, or organizations without projects.
    assert_eq!(
        store.list_projects(&[], NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store.list_projects(&[org_c], NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store.list_projects(&[ns.org(99)], NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    let (ps, total) = store.list_projects(&[org_d], NO_PAGE).await.unwrap();
    assert_eq!((ids(&ps), total), (expect(&[7]), 1));
}

/// Deleting a project deletes its users, CA, certificates, user-security settings and project
/// grants, and nothing of any other project. Its audit entries stay: the log outlives what it
/// describes.
pub async fn delete_project_cascades(store: &dyn Store) {
    let ns = Ns(9);
    let doomed = setup_project(store, ns, 0).await;
    let kept = setup_project(store, ns, 1).await;
    let now = T0 + 1000;
    let security = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\n...".into()),
        ldap_json: Some(r#"{"hostname":"ldap.example"}"#.into()),
    };
    for (i, p) in [&doomed, &kept].into_iter().enumerate() {
        let i = i as i64;
        store
            .create_database_user(&user(p, "$external", "CN=alice", T0))
            .await
            .unwrap();
        store
            .create_database_user(&user(p, "admin", "bob", T0))
            .await
            .unwrap();
        store.insert_ca_if_absent(&ca(p, 1)).await.unwrap();
        insert_cert(
            store,
            &cert(ns.serial(10 * i), p, "CN=alice", T0, now + 100),
        )
        .await
        .unwrap();
        insert_cert(
            store,
            &cert(ns.serial(10 * i + 1), p, "CN=alice", T0 + 1, now + 100),
        )
        .await
        .unwrap();
        store.put_user_security(p, &security).await.unwrap();
    }
    // Key 1 holds roles in both projects, the organization's first key only in the doomed one.
    let key = api_key(ns, 1, &ns.org(0));
    let kept_grant = grant(&key.id, &kept, &["GROUP_READ_ONLY"]);
    store
        .create_api_key(
            &key,
            &[
                grant(&key.id, &doomed, &["GROUP_OWNER"]),
                kept_grant.clone(),
            ],
        )
        .await
        .unwrap();
    store
        .put_grant(&grant(&ns.key_id(0), &doomed, &["GROUP_OWNER"]))
        .await
        .unwrap();
    let doomed_audit = AuditFilter {
        project_id: Some(doomed.clone()),
        ..AuditFilter::default()
    };
    let audit_before = store.list_audit(&doomed_audit, 0, 100).await.unwrap();
    assert_eq!(audit_before.len(), 2, "one entry per issued certificate");

    assert!(
        store.delete_project(&doomed).await.unwrap(),
        "the project existed"
    );
    assert!(
        !store.delete_project(&doomed).await.unwrap(),
        "the project is gone"
    );
    assert!(
        !store.delete_project(&ns.project(99)).await.unwrap(),
        "never existed"
    );

    assert_eq!(store.get_project(&doomed).await.unwrap(), None);
    assert_eq!(store.get_active_ca(&doomed).await.unwrap(), None);
    assert_eq!(
        store
            .get_database_user(&doomed, "$external", "CN=alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&doomed, "admin", "bob")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_database_users(&doomed, NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(store.count_database_users(&doomed).await.unwrap(), 0);
    assert_eq!(
        store
            .list_unexpired_certificates(&doomed, "CN=alice", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store.get_user_security(&doomed).await.unwrap(),
        UserSecurityRecord::default()
    );

    // The other project of the same organization is untouched.
    assert!(store.get_project(&kept).await.unwrap().is_some());
    assert_eq!(
        store.get_active_ca(&kept).await.unwrap().map(sans_id),
        Some(ca(&kept, 1))
    );
    assert_eq!(store.count_database_users(&kept).await.unwrap(), 2);
    let (certs, total) = store
        .list_unexpired_certificates(&kept, "CN=alice", now, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        certs.iter().map(|c| c.serial).collect::<Vec<_>>(),
        [ns.serial(10), ns.serial(11)]
    );
    assert_eq!(store.get_user_security(&kept).await.unwrap(), security);
    assert!(
        store.get_org(&ns.org(0)).await.unwrap().is_some(),
        "the organization remains"
    );

    // Grants in the deleted project are gone; the principals and their other grants remain.
    assert_eq!(store.list_project_grants(&doomed).await.unwrap(), []);
    assert_eq!(
        store.list_grants(&key.id).await.unwrap(),
        std::slice::from_ref(&kept_grant)
    );
    assert_eq!(store.list_grants(&ns.key_id(0)).await.unwrap(), []);
    assert_eq!(
        store.list_project_grants(&kept).await.unwrap(),
        [kept_grant]
    );
    assert_eq!(store.get_api_key_by_id(&key.id).await.unwrap(), Some(key));

    // The audit log still tells what happened in the deleted project.
    assert_eq!(
        store.list_audit(&doomed_audit, 0, 100).await.unwrap(),
        audit_before
    );

    // The deleted project's name is free again in its organization, and the new project starts
    // empty.
    let again = project(&ns.project(2), &ns.org(0), "project 0", T0 + 5);
    store.create_project(&again).await.unwrap();
    assert_eq!(store.get_active_ca(&again.id).await.unwrap(), None);
    assert_eq!(store.count_database_users(&again.id).await.unwrap(), 0);
    assert_eq!(
        store.get_user_security(&again.id).await.unwrap(),
        UserSecurityRecord::default()
    );
    assert_eq!(store.list_project_grants(&again.id).await.unwrap(), []);
}

// ---------------------------------------------------------------------------------------------
// Managed CA
// ---------------------------------------------------------------------------------------------

/// There is no CA until one is inserted; after that, every insert returns the first CA.
pub async fn ca_first_insert_wins(store: &dyn Store) {
    let ns = Ns(10);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    assert_eq!(store.get_active_ca(&p).await.unwrap(), None);
    assert_eq!(store.get_active_ca(&ns.project(99)).await.unwrap(), None);

    let offered = ca(&p, 1);
    let winner = store.insert_ca_if_absent(&offered).await.unwrap();
    assert_eq!(sans_id(winner.clone()), offered, "the first insert wins");
    assert!(winner.id > 0, "the store assigns the row id: {winner:?}");
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner.clone()));

    let loser = ca(&p, 2);
    assert_ne!(loser.cert_der, winner.cert_der);
    assert_eq!(
        store.insert_ca_if_absent(&loser).await.unwrap(),
        winner,
        "a later insert loses"
    );
    assert_eq!(store.insert_ca_if_absent(&offered).await.unwrap(), winner);
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner.clone()));

    // Each project has its own CA, with its own id.
    assert_eq!(store.get_active_ca(&other).await.unwrap(), None);
    let other_ca = ca(&other, 2);
    let other_stored = store.insert_ca_if_absent(&other_ca).await.unwrap();
    assert_eq!(sans_id(other_stored.clone()), other_ca);
    assert_ne!(other_stored.id, winner.id);
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner));
}

/// Two inserts racing for a project's CA agree on one winner.
pub async fn ca_concurrent_inserts_agree(store: &dyn Store) {
    let ns = Ns(11);
    for n in 0..10 {
        let p = setup_project(store, ns, n).await;
        let (a, b) = (ca(&p, 2 * n as u8), ca(&p, 2 * n as u8 + 1));
        let (ra, rb) = tokio::join!(store.insert_ca_if_absent(&a), store.insert_ca_if_absent(&b));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both racers get the same CA");
        let offered = sans_id(ra.clone());
        assert!(
            offered == a || offered == b,
            "the winner is one of the CAs offered"
        );
        assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(ra));
    }
}

// ---------------------------------------------------------------------------------------------
// Database users
// ---------------------------------------------------------------------------------------------

/// `get_database_user` returns exactly what `create_database_user` stored, by full key only.
pub async fn database_user_round_trip(store: &dyn Store) {
    let ns = Ns(12);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let u = DatabaseUserRecord {
        project_id: p.clone(),
        database_name: "$external".into(),
        username: "CN=alice,OU=eng,O=Example".into(),
        x509_type: "CUSTOMER".into(),
        created: T0 + 3,
        doc: r#"{"roles":[{"roleName":"readWrite","databaseName":"app"}],"labels":[]}"#.into(),
    };
    store.create_database_user(&u).await.unwrap();
    assert_eq!(
        store
            .get_database_user(&p, "$external", &u.username)
            .await
            .unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        store
            .get_database_user(&p, "admin", &u.username)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&p, "$external", "CN=alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&other, "$external", &u.username)
            .await
            .unwrap(),
        None
    );
}

/// (project, databaseName, username) is unique.
pub async fn database_user_unique_key(store: &dyn Store) {
    let ns = Ns(13);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let original = user(&p, "admin", "carol", T0);
    store.create_database_user(&original).await.unwrap();

    let dup = DatabaseUserRecord {
        x509_type: "NONE".into(),
        created: T0 + 9,
        doc: "{}".into(),
        ..original.clone()
    };
    assert_conflict(store.create_database_user(&dup).await, "database user");
    assert_eq!(
        store.get_database_user(&p, "admin", "carol").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 1);

    // The same username on another database, or in another project, is another user.
    let other_db = user(&p, "$external", "carol", T0 + 1);
    store.create_database_user(&other_db).await.unwrap();
    let other_project = user(&other, "admin", "carol", T0 + 2);
    store.create_database_user(&other_project).await.unwrap();
    assert_eq!(
        store
            .get_database_user(&p, "$external", "carol")
            .await
            .unwrap(),
        Some(other_db)
    );
    assert_eq!(
        store
            .get_database_user(&other, "admin", "carol")
            .await
            .unwrap(),
        Some(other_project)
    );
    assert_eq!(
        store.get_database_user(&p, "admin", "carol").await.unwrap(),
        Some(original)
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

/// `list_database_users` orders by (created, databaseName, username), pages, and counts all.
pub async fn list_database_users_orders_and_pages(store: &dyn Store) {
    let ns = Ns(14);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let empty = setup_project(store, ns, 2).await;

    // Inserted out of order; ties on `created`, then on database name.
    let users = [
        user(&p, "admin", "zed", T0 + 5),
        user(&p, "admin", "amy", T0 + 5),
        user(&p, "$external", "zed", T0 + 5),
        user(&p, "admin", "old", T0 + 1),
        user(&p, "admin", "new", T0 + 9),
        user(&p, "$external", "CN=x", T0 + 5),
    ];
    for u in &users {
        store.create_database_user(u).await.unwrap();
    }
    store
        .create_database_user(&user(&other, "admin", "stranger", T0))
        .await
        .unwrap();

    let expected = vec![
        users[3].clone(), // created T0+1
        users[5].clone(), // T0+5, $external, CN=x
        users[2].clone(), // T0+5, $external, zed
        users[1].clone(), // T0+5, admin, amy
        users[0].clone(), // T0+5, admin, zed
        users[4].clone(), // T0+9
    ];
    assert_eq!(
        store.list_database_users(&p, NO_PAGE).await.unwrap(),
        (expected.clone(), 6)
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 6);

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 2),
        (2, 2),
        (4, 2),
        (5, 10),
        (6, 1),
        (50, 50),
    ] {
        let (got, total) = store
            .list_database_users(&p, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        let end = (start + limit as usize).min(expected.len());
        assert_eq!(
            got,
            expected[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 6,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    assert_eq!(store.count_database_users(&other).await.unwrap(), 1);
    assert_eq!(
        store.list_database_users(&empty, NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(store.count_database_users(&empty).await.unwrap(), 0);
    assert_eq!(
        store.count_database_users(&ns.project(99)).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .list_database_users(&ns.project(99), NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
}

/// `update_database_user` replaces x509Type and the document of an existing user only.
pub async fn update_database_user(store: &dyn Store) {
    let ns = Ns(15);
    let p = setup_project(store, ns, 0).await;
    let original = user(&p, "admin", "dave", T0);
    let neighbour = user(&p, "$external", "dave", T0);
    store.create_database_user(&original).await.unwrap();
    store.create_database_user(&neighbour).await.unwrap();

    let changed = DatabaseUserRecord {
        x509_type: "NONE".into(),
        doc: r#"{"roles":[{"roleName":"atlasAdmin","databaseName":"admin"}]}"#.into(),
        ..original.clone()
    };
    assert!(
        store.update_database_user(&changed).await.unwrap(),
        "the user existed"
    );
    assert_eq!(
        store.get_database_user(&p, "admin", "dave").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_database_user(&p, "$external", "dave")
            .await
            .unwrap(),
        Some(neighbour),
        "only the addressed user changes"
    );

    // The creation time is not a mutable field.
    let later = DatabaseUserRecord {
        created: T0 + 500,
        x509_type: "MANAGED".into(),
        ..changed.clone()
    };
    assert!(store.update_database_user(&later).await.unwrap());
    let got = store
        .get_database_user(&p, "admin", "dave")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.x509_type, "MANAGED");
    assert_eq!(got.created, T0, "created is kept");

    // Missing users are not created.
    let missing = user(&p, "admin", "nobody", T0);
    assert!(
        !store.update_database_user(&missing).await.unwrap(),
        "the user did not exist"
    );
    assert_eq!(
        store
            .get_database_user(&p, "admin", "nobody")
            .await
            .unwrap(),
        None
    );
    let missing_project = user(&ns.project(99), "admin", "dave", T0);
    assert!(!store.update_database_user(&missing_project).await.unwrap());
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

/// `delete_database_user` deletes exactly the addressed user, once.
pub async fn delete_database_user(store: &dyn Store) {
    let ns = Ns(16);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    store
        .create_database_user(&user(&p, "admin", "erin", T0))
        .await
        .unwrap();
    store
        .create_database_user(&user(&p, "$external", "erin", T0))
        .await
        .unwrap();
    store
        .create_database_user(&user(&other, "admin", "erin", T0))
        .await
        .unwrap();

    assert!(
        store
            .delete_database_user(&p, "admin", "erin")
            .await
            .unwrap(),
        "the user existed"
    );
    assert!(
        !store
            .delete_database_user(&p, "admin", "erin")
            .await
            .unwrap(),
        "the user is gone"
    );
    assert!(
        !store
            .delete_database_user(&p, "admin", "nobody")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_database_user(&ns.project(99), "admin", "erin")
            .await
            .unwrap()
    );

    assert_eq!(
        store.get_database_user(&p, "admin", "erin").await.unwrap(),
        None
    );
    assert!(
        store
            .get_database_user(&p, "$external", "erin")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_database_user(&other, "admin", "erin")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 1);
    let (listed, total) = store.list_database_users(&p, NO_PAGE).await.unwrap();
    assert_eq!(
        (listed, total),
        (vec![user(&p, "$external", "erin", T0)], 1)
    );

    // The user can be created again.
    store
        .create_database_user(&user(&p, "admin", "erin", T0 + 1))
        .await
        .unwrap();
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A serial is stored once; a second certificate with the same serial is refused and the first
/// one is left as it was.
pub async fn certificate_serial_unique(store: &dyn Store) {
    let ns = Ns(17);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let now = T0 + 100;
    let original = cert(ns.serial(1), &p, "CN=frank", T0, T0 + 1000);
    insert_cert(store, &original).await.unwrap();

    // Same serial, everything else different (another project even).
    let dup = CertificateRecord {
        serial: original.serial,
        subject: "CN=mallory".into(),
        not_before: T0 + 1,
        not_after: T0 + 2000,
        cert_der: vec![0xde, 0xad],
        ..cert(0, &other, "CN=mallory", 0, 0)
    };
    assert_conflict(insert_cert(store, &dup).await, "certificate serial");
    // Same serial, same owner.
    let dup_same_owner = CertificateRecord {
        subject: "CN=other".into(),
        ..original.clone()
    };
    assert_conflict(
        insert_cert(store, &dup_same_owner).await,
        "certificate serial",
    );
    assert_conflict(insert_cert(store, &original).await, "certificate serial");

    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=frank", now, NO_PAGE)
            .await
            .unwrap(),
        (vec![summary(&original)], 1),
        "the original row is unchanged"
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=mallory", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0),
        "the duplicate was not stored"
    );

    // Other serials are fine, including large ones.
    for serial in [ns.serial(2), ns.serial(3), i64::MAX - 17] {
        insert_cert(store, &cert(serial, &p, "CN=frank", T0, T0 + 1000))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=frank", now, NO_PAGE)
            .await
            .unwrap()
            .1,
        4
    );
}

/// `list_unexpired_certificates` returns certificates of (project, username) with
/// `not_after > now`, ordered by (notBefore, serial), paged, with the count of all of them.
pub async fn list_unexpired_certificates_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(18);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let now = T0 + 10_000;
    let s = |n| ns.serial(n);

    let live = [
        cert(s(7), &p, "CN=gina", T0 + 300, now + 1), // just alive
        cert(s(3), &p, "CN=gina", T0 + 100, now + 500),
        cert(s(9), &p, "CN=gina", T0 + 200, now + 86_400),
        cert(s(1), &p, "CN=gina", T0 + 200, now + 10), // ties on notBefore: serial order
        cert(s(5), &p, "CN=gina", T0 + 200, now + 20),
        cert(s(2), &p, "CN=gina", T0 + 400, i64::MAX),
    ];
    let noise = [
        cert(s(20), &p, "CN=gina", T0, now), // expires exactly now: excluded
        cert(s(21), &p, "CN=gina", T0, now - 1),
        cert(s(22), &p, "CN=gina", T0 - 1000, T0),
        cert(s(23), &p, "CN=other", T0, now + 100), // another user
        cert(s(24), &p, "cn=gina", T0, now + 100),  // usernames are case-sensitive
        cert(s(25), &other, "CN=gina", T0, now + 100), // another project
    ];
    for c in live.iter().chain(noise.iter()) {
        insert_cert(store, c).await.unwrap();
    }

    let expected = summaries([&live[1], &live[3], &live[4], &live[2], &live[0], &live[5]]);
    // Within one second of notBefore, issuance time (created_ms) orders before the serial.
    let (first, second) = (
        CertificateRecord {
            created_ms: (T0 + 3600) * 1000 + 1,
            ..cert(s(31), &other, "CN=hank", T0, now + 100)
        },
        CertificateRecord {
            created_ms: (T0 + 3600) * 1000 + 900,
            ..cert(s(30), &other, "CN=hank", T0, now + 100)
        },
    );
    insert_cert(store, &second).await.unwrap();
    insert_cert(store, &first).await.unwrap();
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=hank", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&first, &second]), 2),
        "issued first is listed first, although its serial is larger"
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (expected.clone(), 6)
    );

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 4),
        (1, 2),
        (4, 4),
        (5, 1),
        (6, 3),
        (1000, 1),
    ] {
        let (got, total) = store
            .list_unexpired_certificates(&p, "CN=gina", now, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        let end = (start + limit as usize).min(expected.len());
        assert_eq!(
            got,
            expected[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 6,
            "total counts every unexpired certificate (offset={offset} limit={limit})"
        );
    }

    // The boundary moves with `now`.
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=gina", now - 1, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 7);
    assert!(
        got.contains(&summary(&noise[0])),
        "not_after == now + 1 is unexpired"
    );
    assert!(
        !got.contains(&summary(&noise[1])),
        "not_after == now is expired"
    );
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=gina", now + 1, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert!(!got.contains(&summary(&live[0])));
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=gina", i64::MAX, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );

    // Scoping by project and username.
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=other", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&noise[3]]), 1)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&noise[5]]), 1)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=nobody", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&ns.project(99), "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
}

/// Certificates belong to (project, username): deleting the database user keeps them, deleting
/// the project does not.
pub async fn certificates_outlive_database_user_but_not_project(store: &dyn Store) {
    let ns = Ns(19);
    let p = setup_project(store, ns, 0).await;
    let now = T0 + 100;
    store
        .create_database_user(&user(&p, "$external", "CN=hank", T0))
        .await
        .unwrap();
    let certs = [
        cert(ns.serial(1), &p, "CN=hank", T0, T0 + 1000),
        cert(ns.serial(2), &p, "CN=hank", T0 + 1, T0 + 1000),
    ];
    for c in &certs {
        insert_cert(store, c).await.unwrap();
    }
    let expected = (summaries(&certs), 2);

    assert!(
        store
            .delete_database_user(&p, "$external", "CN=hank")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=hank", now, NO_PAGE)
            .await
            .unwrap(),
        expected
    );

    // A re-created user sees the old certificates, and new ones join them.
    store
        .create_database_user(&user(&p, "$external", "CN=hank", T0 + 50))
        .await
        .unwrap();
    let third = cert(ns.serial(3), &p, "CN=hank", T0 + 2, T0 + 1000);
    insert_cert(store, &third).await.unwrap();
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=hank", now, NO_PAGE)
        .await
        .unwrap();
    assert_eq!((got, total), (summaries(certs.iter().chain([&third])), 3));

    // A certificate does not need a user row at all.
    insert_cert(store, &cert(ns.serial(4), &p, "CN=ghost", T0, T0 + 1000))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=ghost", now, NO_PAGE)
            .await
            .unwrap()
            .1,
        1
    );

    assert!(store.delete_project(&p).await.unwrap());
    for username in ["CN=hank", "CN=ghost"] {
        assert_eq!(
            store
                .list_unexpired_certificates(&p, username, now, NO_PAGE)
                .await
                .unwrap(),
            (Vec::new(), 0)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// User security
// ---------------------------------------------------------------------------------------------

/// User-security settings default to unset, and `put` replaces both fields.
pub async fn user_security_default_put_overwrite_clear(store: &dyn Store) {
    let ns = Ns(20);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    assert_eq!(
        store.get_user_security(&p).await.unwrap(),
        UserSecurityRecord::default()
    );
    assert_eq!(
        store.get_user_security(&ns.project(99)).await.unwrap(),
        UserSecurityRecord::default()
    );

    let both = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        ldap_json: Some(r#"{"authenticationEnabled":true,"hostname":"ldap.example"}"#.into()),
    };
    store.put_user_security(&p, &both).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), both);
    assert_eq!(
        store.get_user_security(&other).await.unwrap(),
        UserSecurityRecord::default()
    );

    let replaced = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into()),
        ldap_json: Some("{}".into()),
    };
    store.put_user_security(&p, &replaced).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), replaced);

    // `None` clears a field; it does not mean "leave as is".
    let cas_only = UserSecurityRecord {
        ldap_json: None,
        ..replaced.clone()
    };
    store.put_user_security(&p, &cas_only).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), cas_only);
    let ldap_only = UserSecurityRecord {
        customer_cas: None,
        ldap_json: Some("[]".into()),
    };
    store.put_user_security(&p, &ldap_only).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), ldap_only);
    store
        .put_user_security(&p, &UserSecurityRecord::default())
        .await
        .unwrap();
    assert_eq!(
        store.get_user_security(&p).await.unwrap(),
        UserSecurityRecord::default()
    );

    // An empty string is a value, not an unset field.
    let empty = UserSecurityRecord {
        customer_cas: Some(String::new()),
        ldap_json: None,
    };
    store.put_user_security(&p, &empty).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), empty);

    // Projects are independent.
    store.put_user_security(&other, &both).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), empty);
    assert_eq!(store.get_user_security(&other).await.unwrap(), both);
}

/// `create_database_user_within_limit` counts and inserts atomically: 12 concurrent creations
/// against a limit of 5 leave exactly 5 users, and an existing user is still a conflict.
pub async fn database_user_limit_is_atomic(store: &dyn Store) {
    let ns = Ns(40);
    let p = setup_project(store, ns, 0).await;
    let attempts = (0..12).map(|i| {
        let u = user(&p, "$external", &format!("u{i:02}"), T0 + i);
        async move { store.create_database_user_within_limit(&u, 5).await }
    });
    let results = futures_join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 5, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::LimitReached))),
        "{results:?}"
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 5);
    let (listed, _) = store.list_database_users(&p, NO_PAGE).await.unwrap();
    let existing = listed[0].clone();
    assert!(matches!(
        store
            .create_database_user_within_limit(&existing, 100)
            .await,
        Err(StoreError::Conflict("database user"))
    ));
    assert!(matches!(
        store
            .create_database_user_within_limit(&user(&p, "admin", "one-more", T0), 5)
            .await,
        Err(StoreError::LimitReached)
    ));
    assert!(
        store
            .create_database_user_within_limit(&user(&p, "admin", "one-more", T0), 6)
            .await
            .is_ok()
    );
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

/// `create_api_key` stores a key that `get_api_key_by_id` (by id) and `get_api_key` (by public
/// key) return exactly as stored.
pub async fn api_key_create_and_get(store: &dyn Store) {
    let ns = Ns(21);
    let org_id = setup_org(store, ns, 0).await;
    let k = ApiKeyRecord {
        sealed_private_key: (0..=255).rev().collect(),
        description: "ünïcode & \"quotes\"".into(),
        org_roles: vec!["ORG_MEMBER".into(), "ORG_GROUP_CREATOR".into()],
        created: T0 + 5,
        ..api_key(ns, 1, &org_id)
    };
    store.create_api_key(&k, &[]).await.unwrap();
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k.clone())
    );

    // No roles, no description, an empty sealed key.
    let bare = ApiKeyRecord {
        org_roles: Vec::new(),
        description: String::new(),
        sealed_private_key: Vec::new(),
        ..api_key(ns, 2, &org_id)
    };
    store.create_api_key(&bare, &[]).await.unwrap();
    assert_eq!(
        store.get_api_key_by_id(&bare.id).await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        store.get_api_key(&bare.public_key).await.unwrap(),
        Some(bare)
    );

    // The organization's first key, made by `create_org_with_key`, is found by id too.
    assert_eq!(
        store.get_api_key_by_id(&ns.key_id(0)).await.unwrap(),
        Some(api_key(ns, 0, &org_id))
    );

    // Ids and public keys are separate: neither finds the other.
    assert_eq!(store.get_api_key_by_id(&k.public_key).await.unwrap(), None);
    assert_eq!(store.get_api_key(&k.id).await.unwrap(), None);
    assert_eq!(store.get_api_key_by_id(&ns.key_id(99)).await.unwrap(), None);
    assert_eq!(store.get_api_key(&ns.public_key(99)).await.unwrap(), None);

    // A key needs an existing organization.
    let orphan = api_key(ns, 3, &ns.org(99));
    assert!(store.create_api_key(&orphan, &[]).await.is_err());
    assert_eq!(store.get_api_key_by_id(&orphan.id).await.unwrap(), None);
    assert_eq!(store.get_api_key(&orphan.public_key).await.unwrap(), None);
}

/// Public keys are unique: a second key with the same public key is `Conflict("api key")` and
/// leaves nothing behind, not even its grants. A reused id is a conflict as well.
pub async fn api_key_public_key_unique(store: &dyn Store) {
    let ns = Ns(22);
    let p = setup_project(store, ns, 0).await;
    let org_id = ns.org(0);
    let original = api_key(ns, 1, &org_id);
    store.create_api_key(&original, &[]).await.unwrap();

    let dup = ApiKeyRecord {
        public_key: original.public_key.clone(),
        description: "impostor".into(),
        ..api_key(ns, 2, &org_id)
    };
    assert_conflict(
        store
            .create_api_key(&dup, &[grant(&dup.id, &p, &["GROUP_OWNER"])])
            .await,
        "api key",
    );
    assert_eq!(
        store.get_api_key(&original.public_key).await.unwrap(),
        Some(original.clone()),
        "the existing key is untouched"
    );
    assert_eq!(store.get_api_key_by_id(&dup.id).await.unwrap(), None);
    assert_eq!(store.list_grants(&dup.id).await.unwrap(), []);
    assert_eq!(store.list_project_grants(&p).await.unwrap(), []);

    // The organization's first key clashes the same way.
    let dup_first = ApiKeyRecord {
        public_key: ns.public_key(0),
        ..api_key(ns, 3, &org_id)
    };
    assert_conflict(store.create_api_key(&dup_first, &[]).await, "api key");
    assert_eq!(store.get_api_key_by_id(&dup_first.id).await.unwrap(), None);

    // Same id, new public key.
    let same_id = ApiKeyRecord {
        id: original.id.clone(),
        ..api_key(ns, 4, &org_id)
    };
    assert_any_conflict(store.create_api_key(&same_id, &[]).await);
    assert_eq!(store.get_api_key(&same_id.public_key).await.unwrap(), None);
    assert_eq!(
        store.get_api_key_by_id(&original.id).await.unwrap(),
        Some(original)
    );

    assert_eq!(
        store.list_api_keys(&org_id, NO_PAGE).await.unwrap().1,
        2,
        "the first key and the original"
    );
}

/// `create_api_key` stores the key and its grants in one step: a grant that cannot be stored
/// (to a project that does not exist) leaves neither the key nor its other grants.
pub async fn create_api_key_with_grants_is_atomic(store: &dyn Store) {
    let ns = Ns(23);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let k = api_key(ns, 1, &org_id);
    let good = grant(&k.id, &p0, &["GROUP_READ_ONLY"]);
    let bad = grant(&k.id, &ns.project(99), &["GROUP_OWNER"]);

    assert!(
        matches!(
            store.create_api_key(&k, &[good.clone(), bad]).await,
            Err(StoreError::Gone)
        ),
        "a grant in a project that does not exist is refused as Gone"
    );
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        None,
        "no key left behind"
    );
    assert_eq!(store.get_api_key(&k.public_key).await.unwrap(), None);
    assert_eq!(store.get_api_key_auth(&k.public_key).await.unwrap(), None);
    assert_eq!(
        store.list_grants(&k.id).await.unwrap(),
        [],
        "no grant left behind"
    );
    assert_eq!(store.list_project_grants(&p0).await.unwrap(), []);
    assert_eq!(store.list_api_keys(&org_id, NO_PAGE).await.unwrap().1, 1);

    // The same key with grants that can be stored is created whole.
    let other = grant(&k.id, &p1, &["GROUP_OWNER", "GROUP_DATA_ACCESS_ADMIN"]);
    store
        .create_api_key(&k, &[other.clone(), good.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        store.list_grants(&k.id).await.unwrap(),
        [good.clone(), other]
    );
    assert_eq!(store.list_project_grants(&p0).await.unwrap(), [good]);

    // A conflicting key stores none of its grants either.
    let clash = ApiKeyRecord {
        public_key: k.public_key.clone(),
        ..api_key(ns, 2, &org_id)
    };
    assert_conflict(
        store
            .create_api_key(&clash, &[grant(&clash.id, &p0, &["GROUP_OWNER"])])
            .await,
        "api key",
    );
    assert_eq!(store.list_grants(&clash.id).await.unwrap(), []);
}

/// `list_api_keys` returns one organization's keys, oldest first, paged, with the total count.
pub async fn list_api_keys_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(24);
    let org_a = setup_org(store, ns, 0).await; // key 0, created T0 + 1
    let org_b = setup_org(store, ns, 1).await; // key 1, created T0 + 1
    let org_c = setup_org(store, ns, 2).await; // key 2, created T0 + 1

    // (key n, org, created), inserted out of order.
    let specs: [(u64, &str, i64); 5] = [
        (15, &org_a, T0 + 30),
        (12, &org_a, T0 + 10),
        (13, &org_b, T0 + 20),
        (14, &org_a, T0 + 20),
        (16, &org_a, T0 - 5),
    ];
    let keyed = |n: u64, o: &str, created: i64| ApiKeyRecord {
        created,
        ..api_key(ns, n, o)
    };
    for (n, o, created) in specs {
        store
            .create_api_key(&keyed(n, o, created), &[])
            .await
            .unwrap();
    }

    let expected = vec![
        keyed(16, &org_a, T0 - 5),
        api_key(ns, 0, &org_a),
        keyed(12, &org_a, T0 + 10),
        keyed(14, &org_a, T0 + 20),
        keyed(15, &org_a, T0 + 30),
    ];
    assert_eq!(
        store.list_api_keys(&org_a, NO_PAGE).await.unwrap(),
        (expected.clone(), 5),
        "full rows, oldest first"
    );
    assert_eq!(
        store.list_api_keys(&org_b, NO_PAGE).await.unwrap(),
        (vec![api_key(ns, 1, &org_b), keyed(13, &org_b, T0 + 20)], 2)
    );
    assert_eq!(
        store.list_api_keys(&ns.org(99), NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 2),
        (2, 2),
        (4, 2),
        (3, 100),
        (5, 1),
        (99, 3),
    ] {
        let (got, total) = store
            .list_api_keys(&org_a, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        let end = (start + limit as usize).min(expected.len());
        assert_eq!(
            got,
            expected[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 5,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    // Keys created in the same second: pages still split one stable order, without gaps or
    // repeats.
    for n in 20..27 {
        store
            .create_api_key(&api_key(ns, n, &org_c), &[])
            .await
            .unwrap();
    }
    let (all, total) = store.list_api_keys(&org_c, NO_PAGE).await.unwrap();
    assert_eq!(total, 8);
    let mut ids: Vec<_> = all.iter().map(|k| k.id.clone()).collect();
    let mut paged = Vec::new();
    for offset in (0..8).step_by(3) {
        let (got, _) = store.list_api_keys(&org_c, page(offset, 3)).await.unwrap();
        paged.extend(got);
    }
    assert_eq!(paged, all, "pages concatenate to the whole list");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every key once");
}

/// `update_api_key` replaces the description and organization roles of an existing key, and
/// nothing else.
pub async fn update_api_key_replaces_description_and_roles(store: &dyn Store) {
    let ns = Ns(25);
    let org_id = setup_org(store, ns, 0).await;
    let other_org = setup_org(store, ns, 1).await;
    let k = api_key(ns, 2, &org_id);
    let neighbour = api_key(ns, 3, &org_id);
    store.create_api_key(&k, &[]).await.unwrap();
    store.create_api_key(&neighbour, &[]).await.unwrap();

    let changed = ApiKeyRecord {
        description: "rotated ✓".into(),
        org_roles: vec!["ORG_READ_ONLY".into()],
        ..k.clone()
    };
    assert!(
        store.update_api_key(&changed).await.unwrap(),
        "the key existed"
    );
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.get_api_key_by_id(&neighbour.id).await.unwrap(),
        Some(neighbour),
        "only the addressed key changes"
    );

    // Roles can be emptied, and the description cleared.
    let emptied = ApiKeyRecord {
        description: String::new(),
        org_roles: Vec::new(),
        ..changed.clone()
    };
    assert!(store.update_api_key(&emptied).await.unwrap());
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(emptied.clone())
    );

    // The public key, the sealed private key, the organization and the creation time are not
    // mutable.
    let sneaky = ApiKeyRecord {
        public_key: ns.public_key(50),
        sealed_private_key: vec![9; 9],
        org_id: other_org.clone(),
        created: T0 + 999,
        description: "again".into(),
        ..emptied.clone()
    };
    assert!(store.update_api_key(&sneaky).await.unwrap());
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(ApiKeyRecord {
            description: "again".into(),
            ..emptied
        })
    );
    assert_eq!(store.get_api_key(&ns.public_key(50)).await.unwrap(), None);
    assert_eq!(store.list_api_keys(&other_org, NO_PAGE).await.unwrap().1, 1);

    // Missing keys are not created.
    let missing = api_key(ns, 99, &org_id);
    assert!(
        !store.update_api_key(&missing).await.unwrap(),
        "the key did not exist"
    );
    assert_eq!(store.get_api_key_by_id(&missing.id).await.unwrap(), None);
    assert_eq!(store.list_api_keys(&org_id, NO_PAGE).await.unwrap().1, 3);
}

/// `delete_api_key` deletes the key with its grants and access list, once, and nothing of any
/// other key.
pub async fn delete_api_key_takes_grants_and_access_list(store: &dyn Store) {
    let ns = Ns(26);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let doomed = ApiKeyRecord {
        created: T0 + 10,
        ..api_key(ns, 1, &org_id)
    };
    let kept = ApiKeyRecord {
        created: T0 + 20,
        ..api_key(ns, 2, &org_id)
    };
    for k in [&doomed, &kept] {
        store
            .create_api_key(
                k,
                &[
                    grant(&k.id, &p0, &["GROUP_OWNER"]),
                    grant(&k.id, &p1, &["GROUP_READ_ONLY"]),
                ],
            )
            .await
            .unwrap();
        store
            .add_access_list_entries(&[
                entry(&k.id, "10.0.0.0/8", T0),
                entry(&k.id, "192.0.2.7/32", T0 + 1),
            ])
            .await
            .unwrap();
    }
    let kept_auth = store
        .get_api_key_auth(&kept.public_key)
        .await
        .unwrap()
        .expect("the kept key exists");
    assert_eq!(kept_auth.grants.len(), 2);
    assert_eq!(kept_auth.access_list.len(), 2);

    assert!(
        store.delete_api_key(&doomed.id).await.unwrap(),
        "the key existed"
    );
    assert!(
        !store.delete_api_key(&doomed.id).await.unwrap(),
        "the key is gone"
    );
    assert!(
        !store.delete_api_key(&ns.key_id(99)).await.unwrap(),
        "never existed"
    );
    assert!(
        !store.delete_api_key(&kept.public_key).await.unwrap(),
        "keys are deleted by id, not by public key"
    );

    assert_eq!(store.get_api_key_by_id(&doomed.id).await.unwrap(), None);
    assert_eq!(store.get_api_key(&doomed.public_key).await.unwrap(), None);
    assert_eq!(
        store.get_api_key_auth(&doomed.public_key).await.unwrap(),
        None
    );
    assert_eq!(store.list_grants(&doomed.id).await.unwrap(), []);
    assert_eq!(store.list_access_list(&doomed.id).await.unwrap(), []);

    // The other key keeps everything.
    assert_eq!(
        store.get_api_key_auth(&kept.public_key).await.unwrap(),
        Some(kept_auth.clone())
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [grant(&kept.id, &p0, &["GROUP_OWNER"])]
    );
    assert_eq!(
        store.list_project_grants(&p1).await.unwrap(),
        [grant(&kept.id, &p1, &["GROUP_READ_ONLY"])]
    );
    assert_eq!(
        store.list_api_keys(&org_id, NO_PAGE).await.unwrap(),
        (vec![api_key(ns, 0, &org_id), kept.clone()], 2)
    );

    // A key created again under the same id starts with nothing.
    store.create_api_key(&doomed, &[]).await.unwrap();
    assert_eq!(
        store.get_api_key_auth(&doomed.public_key).await.unwrap(),
        Some(ApiKeyAuth {
            key: doomed,
            grants: Vec::new(),
            access_list: Vec::new(),
        })
    );
    assert_eq!(
        store.get_api_key_auth(&kept.public_key).await.unwrap(),
        Some(kept_auth)
    );
}

/// `get_api_key_auth` reads a key by public key with its grants (in project-id order) and its
/// access list (in CIDR order), and nothing of any other principal.
pub async fn api_key_auth_bundles_grants_and_access_list(store: &dyn Store) {
    let ns = Ns(27);
    // Projects created out of id order.
    let p2 = setup_project(store, ns, 2).await;
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let k = api_key(ns, 1, &org_id);
    let g2 = grant(&k.id, &p2, &["GROUP_OWNER"]);
    let g0 = grant(
        &k.id,
        &p0,
        &["GROUP_READ_ONLY", "GROUP_DATA_ACCESS_READ_ONLY"],
    );
    let g1 = grant(&k.id, &p1, &["GROUP_CLUSTER_MANAGER"]);
    store
        .create_api_key(&k, &[g2.clone(), g0.clone()])
        .await
        .unwrap();
    store.put_grant(&g1).await.unwrap();
    let (v6, v4, net) = (
        entry(&k.id, "2001:db8::/32", T0 + 3),
        entry(&k.id, "192.0.2.7/32", T0 + 1),
        entry(&k.id, "10.0.0.0/8", T0 + 2),
    );
    store
        .add_access_list_entries(&[v6.clone(), v4.clone()])
        .await
        .unwrap();
    store
        .add_access_list_entries(std::slice::from_ref(&net))
        .await
        .unwrap();

    // Noise: another key with a grant and an entry of its own.
    let other = api_key(ns, 2, &org_id);
    store
        .create_api_key(&other, &[grant(&other.id, &p0, &["GROUP_OWNER"])])
        .await
        .unwrap();
    store
        .add_access_list_entries(&[entry(&other.id, "198.51.100.0/24", T0)])
        .await
        .unwrap();

    let expected = ApiKeyAuth {
        key: k.clone(),
        grants: vec![g0, g1, g2],
        access_list: vec![net, v4, v6],
    };
    let auth = store.get_api_key_auth(&k.public_key).await.unwrap();
    assert_eq!(auth, Some(expected.clone()));
    assert_eq!(store.list_grants(&k.id).await.unwrap(), expected.grants);
    assert_eq!(
        store.list_access_list(&k.id).await.unwrap(),
        expected.access_list
    );

    // A key with no grants and no access list.
    assert_eq!(
        store.get_api_key_auth(&ns.public_key(0)).await.unwrap(),
        Some(ApiKeyAuth {
            key: api_key(ns, 0, &org_id),
            grants: Vec::new(),
            access_list: Vec::new(),
        })
    );

    // Unknown public keys, and ids, find nothing.
    assert_eq!(
        store.get_api_key_auth(&ns.public_key(99)).await.unwrap(),
        None
    );
    assert_eq!(store.get_api_key_auth(&k.id).await.unwrap(), None);

    // What authentication reads follows later changes.
    assert!(store.delete_grant(&k.id, &p1).await.unwrap());
    assert!(
        store
            .delete_access_list_entry(&k.id, "192.0.2.7/32")
            .await
            .unwrap()
    );
    let auth = store
        .get_api_key_auth(&k.public_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        auth.grants
            .iter()
            .map(|g| g.project_id.clone())
            .collect::<Vec<_>>(),
        [p0, p2]
    );
    assert_eq!(
        auth.access_list
            .iter()
            .map(|e| e.cidr_block.as_str())
            .collect::<Vec<_>>(),
        ["10.0.0.0/8", "2001:db8::/32"]
    );
}

// ---------------------------------------------------------------------------------------------
// Project grants and access lists
// ---------------------------------------------------------------------------------------------

/// `put_grant` sets (replacing, not merging) a principal's roles in a project; `list_grants`
/// orders by project id and `list_project_grants` by principal id; `delete_grant` removes one
/// grant, once; deleting a project removes its grants.
pub async fn grants_put_replace_list_delete(store: &dyn Store) {
    let ns = Ns(28);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let p2 = setup_project(store, ns, 2).await;
    let org_id = ns.org(0);
    let a = api_key(ns, 1, &org_id).id;
    let b = api_key(ns, 2, &org_id).id;
    for n in [1, 2] {
        store
            .create_api_key(&api_key(ns, n, &org_id), &[])
            .await
            .unwrap();
    }
    let sa = service_account(ns, 1, &org_id);
    store
        .create_service_account(&sa, &sa_secret(ns, 1, &sa.client_id, T0))
        .await
        .unwrap();
    let s = sa.client_id.clone();
    assert!(b < s, "fixture: key ids sort before client ids");

    store
        .put_grant(&grant(&a, &p2, &["GROUP_OWNER"]))
        .await
        .unwrap();
    store
        .put_grant(&grant(&s, &p0, &["GROUP_READ_ONLY"]))
        .await
        .unwrap();
    store
        .put_grant(&grant(&a, &p0, &["GROUP_READ_ONLY"]))
        .await
        .unwrap();
    store
        .put_grant(&grant(&b, &p0, &["GROUP_OWNER"]))
        .await
        .unwrap();

    assert_eq!(
        store.list_grants(&a).await.unwrap(),
        [
            grant(&a, &p0, &["GROUP_READ_ONLY"]),
            grant(&a, &p2, &["GROUP_OWNER"])
        ]
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [
            grant(&a, &p0, &["GROUP_READ_ONLY"]),
            grant(&b, &p0, &["GROUP_OWNER"]),
            grant(&s, &p0, &["GROUP_READ_ONLY"]),
        ]
    );
    assert_eq!(store.list_project_grants(&p1).await.unwrap(), []);

    // A second put replaces the roles; it does not add a grant or merge roles.
    let replaced = grant(
        &a,
        &p0,
        &["GROUP_DATA_ACCESS_ADMIN", "GROUP_CLUSTER_MANAGER"],
    );
    store.put_grant(&replaced).await.unwrap();
    assert_eq!(
        store.list_grants(&a).await.unwrap(),
        [replaced.clone(), grant(&a, &p2, &["GROUP_OWNER"])]
    );
    let narrowed = grant(&a, &p0, &["GROUP_OWNER"]);
    store.put_grant(&narrowed).await.unwrap();
    store.put_grant(&narrowed).await.unwrap();
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [
            narrowed.clone(),
            grant(&b, &p0, &["GROUP_OWNER"]),
            grant(&s, &p0, &["GROUP_READ_ONLY"]),
        ],
        "other principals' grants in the project are untouched"
    );

    // A grant needs an existing project.
    assert!(
        store
            .put_grant(&grant(&a, &ns.project(99), &["GROUP_OWNER"]))
            .await
            .is_err()
    );
    assert_eq!(store.list_grants(&a).await.unwrap().len(), 2);

    // Deleting.
    assert!(store.delete_grant(&a, &p0).await.unwrap(), "it was there");
    assert!(!store.delete_grant(&a, &p0).await.unwrap(), "it is gone");
    assert!(!store.delete_grant(&a, &p1).await.unwrap(), "never there");
    assert!(!store.delete_grant(&ns.key_id(99), &p0).await.unwrap());
    assert!(!store.delete_grant(&a, &ns.project(99)).await.unwrap());
    assert_eq!(
        store.list_grants(&a).await.unwrap(),
        [grant(&a, &p2, &["GROUP_OWNER"])]
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [
            grant(&b, &p0, &["GROUP_OWNER"]),
            grant(&s, &p0, &["GROUP_READ_ONLY"]),
        ]
    );

    // A deleted grant can be put again.
    store.put_grant(&narrowed).await.unwrap();
    assert_eq!(store.list_grants(&a).await.unwrap().len(), 2);

    // Deleting a project takes its grants; the principals' other grants stay.
    assert!(store.delete_project(&p2).await.unwrap());
    assert_eq!(store.list_grants(&a).await.unwrap(), [narrowed]);
    assert_eq!(store.list_project_grants(&p2).await.unwrap(), []);
    assert_eq!(store.list_project_grants(&p0).await.unwrap().len(), 3);

    assert_eq!(store.list_grants(&ns.key_id(99)).await.unwrap(), []);
    assert_eq!(
        store.list_project_grants(&ns.project(99)).await.unwrap(),
        []
    );
}

/// `add_access_list_entries` adds new entries and keeps existing ones exactly as they are (so
/// adding is idempotent); lists are in CIDR order and per principal; `delete_access_list_entry`
/// deletes one entry, once.
pub async fn access_list_add_keeps_existing_and_deletes_once(store: &dyn Store) {
    let ns = Ns(29);
    let org_id = setup_org(store, ns, 0).await;
    let a = ns.key_id(0);
    let other_key = api_key(ns, 1, &org_id);
    store.create_api_key(&other_key, &[]).await.unwrap();
    let b = other_key.id;
    let (net, v4, v6) = ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32");

    store
        .add_access_list_entries(&[entry(&a, v6, T0 + 1), entry(&a, v4, T0 + 2)])
        .await
        .unwrap();
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        [entry(&a, v4, T0 + 2), entry(&a, v6, T0 + 1)]
    );

    // An entry that exists already keeps its creation time; new ones are added, once even when
    // a batch repeats them.
    store
        .add_access_list_entries(&[
            entry(&a, v4, T0 + 50),
            entry(&a, net, T0 + 51),
            entry(&a, net, T0 + 52),
        ])
        .await
        .unwrap();
    let all = vec![
        entry(&a, net, T0 + 51),
        entry(&a, v4, T0 + 2),
        entry(&a, v6, T0 + 1),
    ];
    assert_eq!(store.list_access_list(&a).await.unwrap(), all);
    store
        .add_access_list_entries(&[entry(&a, net, T0 + 60), entry(&a, v6, T0 + 60)])
        .await
        .unwrap();
    store.add_access_list_entries(&[]).await.unwrap();
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        all,
        "adding again changes nothing"
    );

    // Principals are separate, even for the same block.
    store
        .add_access_list_entries(&[entry(&b, v4, T0 + 70)])
        .await
        .unwrap();
    assert_eq!(
        store.list_access_list(&b).await.unwrap(),
        [entry(&b, v4, T0 + 70)]
    );
    assert_eq!(store.list_access_list(&a).await.unwrap(), all);

    // Deleting.
    assert!(
        store.delete_access_list_entry(&a, v4).await.unwrap(),
        "it was there"
    );
    assert!(
        !store.delete_access_list_entry(&a, v4).await.unwrap(),
        "it is gone"
    );
    assert!(
        !store
            .delete_access_list_entry(&a, "198.51.100.0/24")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_access_list_entry(&ns.key_id(99), v6)
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        [entry(&a, net, T0 + 51), entry(&a, v6, T0 + 1)]
    );
    assert_eq!(
        store.list_access_list(&b).await.unwrap(),
        [entry(&b, v4, T0 + 70)],
        "the other principal's entry for the same block stays"
    );

    // A deleted entry added again is a new entry.
    store
        .add_access_list_entries(&[entry(&a, v4, T0 + 80)])
        .await
        .unwrap();
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        [
            entry(&a, net, T0 + 51),
            entry(&a, v4, T0 + 80),
            entry(&a, v6, T0 + 1)
        ]
    );
    assert_eq!(store.list_access_list(&ns.key_id(99)).await.unwrap(), []);
}

// ---------------------------------------------------------------------------------------------
// Service accounts
// ---------------------------------------------------------------------------------------------

/// `create_service_account` stores the account with its first secret, read back as stored;
/// client ids are unique (`Conflict("service account")`), and a failed creation leaves nothing
/// behind.
pub async fn service_account_round_trip(store: &dyn Store) {
    let ns = Ns(30);
    let org_id = setup_org(store, ns, 0).await;
    let sa = ServiceAccountRecord {
        name: "CI ✓".into(),
        description: "deploys \"prod\"".into(),
        org_roles: vec!["ORG_MEMBER".into(), "ORG_GROUP_CREATOR".into()],
        ..service_account(ns, 1, &org_id)
    };
    let first = sa_secret(ns, 1, &sa.client_id, T0 + 10);
    store.create_service_account(&sa, &first).await.unwrap();
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(sa.clone())
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&first)
    );

    // No roles, no description; a secret that was used already keeps its last use.
    let bare = ServiceAccountRecord {
        description: String::new(),
        org_roles: Vec::new(),
        ..service_account(ns, 2, &org_id)
    };
    let used = ServiceAccountSecretRecord {
        last_used: Some(T0 + 20),
        ..sa_secret(ns, 2, &bare.client_id, T0 + 11)
    };
    store.create_service_account(&bare, &used).await.unwrap();
    assert_eq!(
        store.get_service_account(&bare.client_id).await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        store
            .list_service_account_secrets(&bare.client_id)
            .await
            .unwrap(),
        [used]
    );

    // The same client id again, with a new secret: a conflict, and nothing of it is stored.
    let dup = ServiceAccountRecord {
        name: "impostor".into(),
        created: T0 + 30,
        ..sa.clone()
    };
    assert_conflict(
        store
            .create_service_account(&dup, &sa_secret(ns, 3, &sa.client_id, T0 + 30))
            .await,
        "service account",
    );
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(sa.clone()),
        "the existing account is untouched"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&first),
        "the duplicate's secret was not stored"
    );

    // A new account whose first secret cannot be stored (its id is taken) is not created.
    let clashing = service_account(ns, 4, &org_id);
    let taken = ServiceAccountSecretRecord {
        client_id: clashing.client_id.clone(),
        ..first.clone()
    };
    assert_any_conflict(store.create_service_account(&clashing, &taken).await);
    assert_eq!(
        store
            .get_service_account(&clashing.client_id)
            .await
            .unwrap(),
        None,
        "no account left behind"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first]
    );

    // An account needs an existing organization.
    let orphan = service_account(ns, 5, &ns.org(99));
    assert!(
        store
            .create_service_account(&orphan, &sa_secret(ns, 5, &orphan.client_id, T0))
            .await
            .is_err()
    );
    assert_eq!(
        store.get_service_account(&orphan.client_id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .list_service_account_secrets(&orphan.client_id)
            .await
            .unwrap(),
        []
    );

    assert_eq!(
        store.get_service_account(&ns.client_id(99)).await.unwrap(),
        None
    );
    assert_eq!(
        store.list_service_accounts(&org_id, NO_PAGE).await.unwrap(),
        (vec![sa, bare], 2)
    );
}

/// `list_service_accounts` returns one organization's accounts, oldest first, paged, with the
/// total count.
pub async fn list_service_accounts_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(31);
    let org_a = setup_org(store, ns, 0).await;
    let org_b = setup_org(store, ns, 1).await;
    let org_c = setup_org(store, ns, 2).await;

    let account = |n: u64, o: &str, created: i64| ServiceAccountRecord {
        created,
        ..service_account(ns, n, o)
    };
    // (account n, org, created), inserted out of order.
    let specs: [(u64, &str, i64); 6] = [
        (5, &org_a, T0 + 30),
        (2, &org_a, T0 + 10),
        (3, &org_b, T0 + 20),
        (4, &org_a, T0 + 20),
        (6, &org_a, T0 - 5),
        (1, &org_a, T0 + 40),
    ];
    for (n, o, created) in specs {
        store
            .create_service_account(
                &account(n, o, created),
                &sa_secret(ns, n, &ns.client_id(n), created),
            )
            .await
            .unwrap();
    }
    let expected = vec![
        account(6, &org_a, T0 - 5),
        account(2, &org_a, T0 + 10),
        account(4, &org_a, T0 + 20),
        account(5, &org_a, T0 + 30),
        account(1, &org_a, T0 + 40),
    ];
    assert_eq!(
        store.list_service_accounts(&org_a, NO_PAGE).await.unwrap(),
        (expected.clone(), 5),
        "full rows, oldest first"
    );
    assert_eq!(
        store.list_service_accounts(&org_b, NO_PAGE).await.unwrap(),
        (vec![account(3, &org_b, T0 + 20)], 1)
    );
    assert_eq!(
        store.list_service_accounts(&org_c, NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store
            .list_service_accounts(&ns.org(99), NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 2),
        (2, 2),
        (4, 2),
        (3, 100),
        (5, 1),
        (99, 3),
    ] {
        let (got, total) = store
            .list_service_accounts(&org_a, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        let end = (start + limit as usize).min(expected.len());
        assert_eq!(
            got,
            expected[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 5,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    // Accounts created in the same second: pages still split one stable order.
    for n in 20..27 {
        store
            .create_service_account(
                &account(n, &org_c, T0),
                &sa_secret(ns, n, &ns.client_id(n), T0),
            )
            .await
            .unwrap();
    }
    let (all, total) = store.list_service_accounts(&org_c, NO_PAGE).await.unwrap();
    assert_eq!(total, 7);
    let mut paged = Vec::new();
    for offset in (0..7).step_by(2) {
        paged.extend(
            store
                .list_service_accounts(&org_c, page(offset, 2))
                .await
                .unwrap()
                .0,
        );
    }
    assert_eq!(paged, all, "pages concatenate to the whole list");
    let mut ids: Vec<_> = all.iter().map(|a| a.client_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "every account once");
}

/// `update_service_account` replaces name, description and organization roles of an existing
/// account, and nothing else.
pub async fn update_service_account(store: &dyn Store) {
    let ns = Ns(32);
    let org_id = setup_org(store, ns, 0).await;
    let other_org = setup_org(store, ns, 1).await;
    let sa = service_account(ns, 1, &org_id);
    let neighbour = service_account(ns, 2, &org_id);
    let secret = sa_secret(ns, 1, &sa.client_id, T0);
    store.create_service_account(&sa, &secret).await.unwrap();
    store
        .create_service_account(&neighbour, &sa_secret(ns, 2, &neighbour.client_id, T0))
        .await
        .unwrap();

    let changed = ServiceAccountRecord {
        name: "renamed ✓".into(),
        description: "new description".into(),
        org_roles: vec!["ORG_OWNER".into(), "ORG_READ_ONLY".into()],
        ..sa.clone()
    };
    assert!(
        store.update_service_account(&changed).await.unwrap(),
        "the account existed"
    );
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_service_account(&neighbour.client_id)
            .await
            .unwrap(),
        Some(neighbour),
        "only the addressed account changes"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [secret],
        "secrets are untouched"
    );

    // Roles can be emptied; the organization and creation time are not mutable.
    let sneaky = ServiceAccountRecord {
        org_roles: Vec::new(),
        org_id: other_org.clone(),
        created: T0 + 999,
        ..changed.clone()
    };
    assert!(store.update_service_account(&sneaky).await.unwrap());
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(ServiceAccountRecord {
            org_roles: Vec::new(),
            ..changed
        })
    );
    assert_eq!(
        store
            .list_service_accounts(&other_org, NO_PAGE)
            .await
            .unwrap()
            .1,
        0
    );

    // Missing accounts are not created.
    let missing = service_account(ns, 99, &org_id);
    assert!(
        !store.update_service_account(&missing).await.unwrap(),
        "the account did not exist"
    );
    assert_eq!(
        store.get_service_account(&missing.client_id).await.unwrap(),
        None
    );
}

/// Secrets of an account: added, listed oldest first, touched (`last_used`), and deleted by
/// (client id, secret id) only, once.
pub async fn service_account_secrets_add_list_delete_touch(store: &dyn Store) {
    let ns = Ns(33);
    let org_id = setup_org(store, ns, 0).await;
    let sa = service_account(ns, 1, &org_id);
    let other = service_account(ns, 2, &org_id);
    let first = sa_secret(ns, 1, &sa.client_id, T0 + 10);
    let other_secret = sa_secret(ns, 9, &other.client_id, T0 + 5);
    store.create_service_account(&sa, &first).await.unwrap();
    store
        .create_service_account(&other, &other_secret)
        .await
        .unwrap();

    // Added out of order.
    let third = sa_secret(ns, 3, &sa.client_id, T0 + 30);
    let second = sa_secret(ns, 2, &sa.client_id, T0 + 20);
    store.add_service_account_secret(&third).await.unwrap();
    store.add_service_account_secret(&second).await.unwrap();
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), second.clone(), third.clone()]
    );
    assert_eq!(
        store
            .list_service_account_secrets(&other.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&other_secret)
    );

    // A secret id is used once, and a secret needs an existing account.
    assert_any_conflict(
        store
            .add_service_account_secret(&ServiceAccountSecretRecord {
                created: T0 + 40,
                ..second.clone()
            })
            .await,
    );
    assert_any_conflict(
        store
            .add_service_account_secret(&ServiceAccountSecretRecord {
                client_id: sa.client_id.clone(),
                ..other_secret.clone()
            })
            .await,
    );
    assert!(
        store
            .add_service_account_secret(&sa_secret(ns, 4, &ns.client_id(99), T0))
            .await
            .is_err()
    );
    assert_eq!(
        store
            .list_service_account_secrets(&ns.client_id(99))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), second.clone(), third.clone()]
    );

    // Touching records the last use of that one secret; a later touch overwrites it.
    store
        .touch_service_account_secret(&second.id, T0 + 100)
        .await
        .unwrap();
    let touched = |at| ServiceAccountSecretRecord {
        last_used: Some(at),
        ..second.clone()
    };
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), touched(T0 + 100), third.clone()]
    );
    store
        .touch_service_account_secret(&second.id, T0 + 200)
        .await
        .unwrap();
    store
        .touch_service_account_secret(&ns.secret_id(99), T0 + 200)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), touched(T0 + 200), third.clone()]
    );
    assert_eq!(
        store
            .list_service_account_secrets(&other.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&other_secret),
        "other accounts' secrets are untouched"
    );

    // Deleting needs the secret's own client id.
    assert!(
        !store
            .delete_service_account_secret(&other.client_id, &second.id)
            .await
            .unwrap(),
        "another account cannot delete the secret"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .delete_service_account_secret(&sa.client_id, &second.id)
            .await
            .unwrap(),
        "the secret existed"
    );
    assert!(
        !store
            .delete_service_account_secret(&sa.client_id, &second.id)
            .await
            .unwrap(),
        "the secret is gone"
    );
    assert!(
        !store
            .delete_service_account_secret(&sa.client_id, &ns.secret_id(99))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), third.clone()]
    );

    // An account may run out of secrets; it stays.
    for s in [&first, &third] {
        assert!(
            store
                .delete_service_account_secret(&sa.client_id, &s.id)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(sa)
    );
    assert_eq!(
        store
            .list_service_account_secrets(&other.client_id)
            .await
            .unwrap(),
        [other_secret]
    );
}

/// `delete_service_account` deletes the account with its secrets, grants and access list,
/// once, and nothing of any other account.
pub async fn delete_service_account_cascades(store: &dyn Store) {
    let ns = Ns(34);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let doomed = service_account(ns, 1, &org_id);
    let kept = service_account(ns, 2, &org_id);
    for (i, sa) in [&doomed, &kept].into_iter().enumerate() {
        let n = 10 * i as u64;
        store
            .create_service_account(sa, &sa_secret(ns, n, &sa.client_id, T0))
            .await
            .unwrap();
        store
            .add_service_account_secret(&sa_secret(ns, n + 1, &sa.client_id, T0 + 1))
            .await
            .unwrap();
        store
            .put_grant(&grant(&sa.client_id, &p0, &["GROUP_OWNER"]))
            .await
            .unwrap();
        store
            .put_grant(&grant(&sa.client_id, &p1, &["GROUP_READ_ONLY"]))
            .await
            .unwrap();
        store
            .add_access_list_entries(&[
                entry(&sa.client_id, "10.0.0.0/8", T0),
                entry(&sa.client_id, "2001:db8::/32", T0),
            ])
            .await
            .unwrap();
    }
    let kept_auth = store
        .get_service_account_auth(&kept.client_id)
        .await
        .unwrap()
        .expect("the kept account exists");

    assert!(
        store
            .delete_service_account(&doomed.client_id)
            .await
            .unwrap(),
        "the account existed"
    );
    assert!(
        !store
            .delete_service_account(&doomed.client_id)
            .await
            .unwrap(),
        "the account is gone"
    );
    assert!(
        !store
            .delete_service_account(&ns.client_id(99))
            .await
            .unwrap()
    );

    assert_eq!(
        store.get_service_account(&doomed.client_id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_service_account_auth(&doomed.client_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .list_service_account_secrets(&doomed.client_id)
            .await
            .unwrap(),
        []
    );
    assert_eq!(store.list_grants(&doomed.client_id).await.unwrap(), []);
    assert_eq!(store.list_access_list(&doomed.client_id).await.unwrap(), []);

    // The other account keeps everything.
    assert_eq!(
        store
            .get_service_account_auth(&kept.client_id)
            .await
            .unwrap(),
        Some(kept_auth.clone())
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [grant(&kept.client_id, &p0, &["GROUP_OWNER"])]
    );
    assert_eq!(
        store.list_service_accounts(&org_id, NO_PAGE).await.unwrap(),
        (vec![kept.clone()], 1)
    );

    // The account can be created again, with the same secret id even, and starts with nothing.
    let fresh = sa_secret(ns, 0, &doomed.client_id, T0 + 50);
    store.create_service_account(&doomed, &fresh).await.unwrap();
    assert_eq!(
        store
            .get_service_account_auth(&doomed.client_id)
            .await
            .unwrap(),
        Some(ServiceAccountAuth {
            account: doomed,
            secrets: vec![fresh],
            grants: Vec::new(),
            access_list: Vec::new(),
        })
    );
    assert_eq!(
        store
            .get_service_account_auth(&kept.client_id)
            .await
            .unwrap(),
        Some(kept_auth)
    );
}

/// `get_service_account_auth` reads an account with its secrets (oldest first), grants
/// (project-id order) and access list (CIDR order), and nothing of any other principal.
pub async fn service_account_auth_bundles_everything(store: &dyn Store) {
    let ns = Ns(35);
    let p1 = setup_project(store, ns, 1).await;
    let p0 = setup_project(store, ns, 0).await;
    let org_id = ns.org(0);
    let sa = service_account(ns, 1, &org_id);
    let s1 = sa_secret(ns, 1, &sa.client_id, T0 + 10);
    let s0 = ServiceAccountSecretRecord {
        last_used: Some(T0 + 15),
        ..sa_secret(ns, 2, &sa.client_id, T0 + 5)
    };
    store.create_service_account(&sa, &s1).await.unwrap();
    store.add_service_account_secret(&s0).await.unwrap();
    let g1 = grant(&sa.client_id, &p1, &["GROUP_OWNER"]);
    let g0 = grant(&sa.client_id, &p0, &["GROUP_READ_ONLY"]);
    store.put_grant(&g1).await.unwrap();
    store.put_grant(&g0).await.unwrap();
    let v6 = entry(&sa.client_id, "2001:db8::/32", T0);
    let v4 = entry(&sa.client_id, "192.0.2.0/24", T0 + 1);
    store
        .add_access_list_entries(&[v6.clone(), v4.clone()])
        .await
        .unwrap();

    // Noise: another account, and an API key, each with a grant and an entry.
    let other = service_account(ns, 2, &org_id);
    store
        .create_service_account(&other, &sa_secret(ns, 3, &other.client_id, T0))
        .await
        .unwrap();
    for principal in [other.client_id.clone(), ns.key_id(0)] {
        store
            .put_grant(&grant(&principal, &p0, &["GROUP_OWNER"]))
            .await
            .unwrap();
        store
            .add_access_list_entries(&[entry(&principal, "198.51.100.0/24", T0)])
            .await
            .unwrap();
    }

    let expected = ServiceAccountAuth {
        account: sa.clone(),
        secrets: vec![s0, s1],
        grants: vec![g0, g1],
        access_list: vec![v4, v6],
    };
    assert_eq!(
        store.get_service_account_auth(&sa.client_id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        expected.secrets
    );
    assert_eq!(
        store.list_grants(&sa.client_id).await.unwrap(),
        expected.grants
    );
    assert_eq!(
        store.list_access_list(&sa.client_id).await.unwrap(),
        expected.access_list
    );

    // An account with only its first secret.
    let other_auth = store
        .get_service_account_auth(&other.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other_auth.account, other);
    assert_eq!(other_auth.secrets.len(), 1);

    // Unknown client ids, and API key ids, find nothing.
    assert_eq!(
        store
            .get_service_account_auth(&ns.client_id(99))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_service_account_auth(&ns.key_id(0)).await.unwrap(),
        None
    );

    // What authentication reads follows later changes.
    store
        .touch_service_account_secret(&expected.secrets[1].id, T0 + 500)
        .await
        .unwrap();
    let auth = store
        .get_service_account_auth(&sa.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.secrets[1].last_used, Some(T0 + 500));
    assert_eq!(auth.secrets[0], expected.secrets[0]);
}

// ---------------------------------------------------------------------------------------------
// Revoked tokens
// ---------------------------------------------------------------------------------------------

/// A revoked token is reported revoked until a later revocation finds it expired
/// (`expires <= now`); revoking a token twice is harmless.
pub async fn revoked_tokens_remembered_until_expiry(store: &dyn Store) {
    let ns = Ns(36);
    let [a, b, c, d, e] = [1, 2, 3, 4, 5].map(|n| ns.jti(n));
    let revoked = move |jti: &str| {
        let jti = jti.to_owned();
        async move { store.is_token_revoked(&jti).await.unwrap() }
    };
    let t = T0;
    assert!(!revoked(&a).await, "nothing is revoked at first");

    store.revoke_token(&a, t + 100, t).await.unwrap();
    assert!(revoked(&a).await);
    assert!(!revoked(&b).await, "only the revoked token");
    store.revoke_token(&a, t + 100, t).await.unwrap();
    assert!(revoked(&a).await, "revoking twice is harmless");

    store.revoke_token(&b, t + 300, t + 1).await.unwrap();
    store.revoke_token(&c, t + 1000, t + 99).await.unwrap();
    for jti in [&a, &b, &c] {
        assert!(revoked(jti).await, "{jti} has not expired yet");
    }

    // At t + 100, A (expires t + 100) has expired: the next revocation forgets it.
    store.revoke_token(&d, t + 1000, t + 100).await.unwrap();
    assert!(!revoked(&a).await, "expires == now is expired");
    for jti in [&b, &c, &d] {
        assert!(revoked(jti).await, "{jti} has not expired yet");
    }

    store.revoke_token(&e, t + 2000, t + 1000).await.unwrap();
    for jti in [&a, &b, &c, &d] {
        assert!(!revoked(jti).await, "{jti} has expired");
    }
    assert!(revoked(&e).await);

    // A forgotten token can be revoked again.
    store.revoke_token(&a, t + 3000, t + 1000).await.unwrap();
    assert!(revoked(&a).await);
}

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

/// The first audit entry has seq 1 and chains to [`AuditEntry::GENESIS`]; the second chains to
/// the first. Needs a store whose audit log is empty.
pub async fn audit_log_starts_at_genesis(store: &dyn Store) {
    let ns = Ns(37);
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), 0, 100)
            .await
            .unwrap(),
        [],
        "a fresh store has an empty audit log"
    );
    let e1 = audit_event(&ns.actor(0), "operator.bootstrap", None, T0 * 1000);
    let first = store.append_audit(&e1).await.unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(
        (first.chain.as_str(), first.chain_seq, first.prev_seq),
        ("", 1, 0)
    );
    assert_eq!(first.event, e1);
    assert_eq!(first.prev_hash, AuditEntry::GENESIS);
    assert_eq!(
        first.hash,
        AuditEntry::chain_hash(&AuditEntry::GENESIS, 1, &e1)
    );
    assert!(first.is_intact());

    let e2 = audit_event(&ns.actor(0), "operator.check", None, T0 * 1000 + 1);
    let second = store.append_audit(&e2).await.unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!((second.chain_seq, second.prev_seq), (2, 1));
    assert_eq!(second.prev_hash, first.hash);
    assert!(second.is_intact());

    // A project's first entry starts the project's own chain, from a genesis of its own.
    let p = ns.project(0);
    let e3 = audit_event(&ns.actor(0), "certificate.issued", Some(&p), T0 * 1000 + 2);
    let third = store.append_audit(&e3).await.unwrap();
    assert_eq!(third.seq, 3);
    assert_eq!(
        (third.chain.as_str(), third.chain_seq, third.prev_seq),
        (p.as_str(), 1, 0)
    );
    assert_eq!(third.prev_hash, AuditEntry::genesis(&p));
    assert_ne!(AuditEntry::genesis(&p), AuditEntry::GENESIS.to_vec());
    assert_eq!(
        third.hash,
        AuditEntry::chain_hash(&AuditEntry::genesis(&p), 1, &e3)
    );
    assert!(third.is_intact());
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), 0, 100)
            .await
            .unwrap(),
        [first, second, third]
    );
}

/// `append_audit` gives each entry the next seq and chains it to the previous entry; what it
/// returns is what `list_audit` reads back, and every entry verifies.
pub async fn audit_append_chains_entries(store: &dyn Store) {
    let ns = Ns(38);
    let p = ns.project(0);
    let (base, _) = audit_tip(store, "").await;
    // chain -> (chain_seq, seq, hash) of its last entry
    let mut tips = std::collections::HashMap::from([
        ("".to_owned(), chain_tip(store, "").await),
        (p.clone(), chain_tip(store, &p).await),
    ]);
    let events = [
        audit_event(&ns.actor(1), "POST /api/atlas/v2/groups", None, T0 * 1000),
        AuditEvent {
            source_ip: None,
            status: None,
            ..audit_event(&ns.actor(1), "certificate.issued", Some(&p), T0 * 1000)
        },
        AuditEvent {
            source_ip: Some("2001:db8::1".into()),
            target: Some("CN=ünïcode \"user\"".into()),
            status: Some(401),
            details: r#"{"reason":"bad digest","nested":{"list":[1,2,3]},"text":"✓"}"#.into(),
            ..audit_event(
                "anonymous",
                "authentication.failed",
                Some(&p),
                T0 * 1000 - 5,
            )
        },
        audit_event(
            &format!("service-account:{}", ns.client_id(1)),
            "DELETE /api/atlas/v2/groups/{groupId}/databaseUsers/{databaseName}/{username}",
            Some(&p),
            i64::MAX,
        ),
        AuditEvent {
            status: Some(u16::MAX),
            details: String::new(),
            ..audit_event(&ns.actor(1), "", None, 0)
        },
    ];
    let mut appended = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let got = store.append_audit(e).await.unwrap();
        let seq = base + 1 + i as i64;
        assert_eq!(got.seq, seq, "seqs are consecutive");
        assert_eq!(&got.event, e, "the event is stored as given");
        assert_eq!(
            got.chain,
            AuditEntry::chain_of(e),
            "entry {seq} is in its project's chain"
        );
        let (chain_seq, prev_seq, prev) = tips.get_mut(&got.chain).unwrap();
        assert_eq!(
            got.chain_seq,
            *chain_seq + 1,
            "entry {seq} is next in its chain"
        );
        assert_eq!(
            got.prev_seq, *prev_seq,
            "entry {seq} names its chain's previous entry"
        );
        assert_eq!(
            &got.prev_hash, prev,
            "entry {seq} chains to its predecessor"
        );
        assert_eq!(got.hash, AuditEntry::chain_hash(prev, got.chain_seq, e));
        assert!(got.is_intact());
        (*chain_seq, *prev_seq, *prev) = (got.chain_seq, seq, got.hash.clone());
        appended.push(got);
    }
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), base, 100)
            .await
            .unwrap(),
        appended,
        "read back exactly as appended"
    );
    assert_audit_log_intact(store).await;

    // Changing any part of an entry breaks it.
    let e = &appended[2];
    let mut forged = e.clone();
    forged.event.status = Some(200);
    assert!(!forged.is_intact(), "edited event");
    let mut forged = e.clone();
    forged.chain_seq += 1;
    assert!(!forged.is_intact(), "moved entry");
    let mut forged = e.clone();
    forged.prev_hash = appended[0].hash.clone();
    assert!(!forged.is_intact(), "re-chained entry");
}

/// `list_audit` filters by project, actor and time (`since` inclusive, `until` exclusive),
/// returns entries after `after_seq` in log order, and at most `limit` of them.
pub async fn list_audit_filters(store: &dyn Store) {
    let ns = Ns(39);
    let (base, _) = audit_tip(store, "").await;
    // Projects the log outlives: they need not exist.
    let (p, q) = (ns.project(0), ns.project(1));
    let (a, b) = (ns.actor(1), ns.actor(2));
    let t = (T0 + 39_000) * 1000;
    let events = [
        audit_event(&a, "zero", Some(&p), t),
        audit_event(&b, "one", Some(&p), t + 10),
        audit_event(&a, "two", Some(&q), t + 20),
        audit_event(&a, "three", None, t + 20),
        audit_event(&b, "four", Some(&q), t + 30),
        audit_event(&a, "five", Some(&p), t + 40),
    ];
    let mut appended = Vec::new();
    for e in &events {
        appended.push(store.append_audit(e).await.unwrap());
    }
    // Which of this check's entries a listing returns, by index into `events`.
    let appended = &appended;
    let list = move |filter: AuditFilter, after: i64, limit: u32| async move {
        let got = store.list_audit(&filter, after, limit).await.unwrap();
        got.iter()
            .map(|e| {
                let i = usize::try_from(e.seq - base - 1).expect("an entry of this check");
                assert_eq!(e, &appended[i], "listed entries are complete");
                i
            })
            .collect::<Vec<_>>()
    };
    const NOTHING: [usize; 0] = [];
    let all = AuditFilter::default();
    let project = |id: &str| AuditFilter {
        project_id: Some(id.to_owned()),
        ..AuditFilter::default()
    };
    let actor = |id: &str| AuditFilter {
        actor: Some(id.to_owned()),
        ..AuditFilter::default()
    };
    let window = |since: Option<i64>, until: Option<i64>| AuditFilter {
        since_ms: since,
        until_ms: until,
        ..AuditFilter::default()
    };

    assert_eq!(list(all.clone(), base, 100).await, [0, 1, 2, 3, 4, 5]);
    assert_eq!(list(project(&p), base, 100).await, [0, 1, 5]);
    assert_eq!(list(project(&q), base, 100).await, [2, 4]);
    assert_eq!(list(project(&ns.project(99)), 0, 100).await, NOTHING);
    assert_eq!(list(actor(&a), base, 100).await, [0, 2, 3, 5]);
    assert_eq!(list(actor(&b), base, 100).await, [1, 4]);
    assert_eq!(
        list(actor(&a[..a.len() - 1]), 0, 100).await,
        NOTHING,
        "actors match exactly"
    );
    // Project and actor filters need no `after_seq` to single out this check's entries.
    assert_eq!(list(project(&p), 0, 100).await, [0, 1, 5]);
    assert_eq!(list(actor(&b), 0, 100).await, [1, 4]);
    assert_eq!(
        list(
            AuditFilter {
                project_id: Some(p.clone()),
                actor: Some(a.clone()),
                ..AuditFilter::default()
            },
            0,
            100
        )
        .await,
        [0, 5]
    );

    // Time windows: since inclusive, until exclusive.
    assert_eq!(
        list(window(Some(t + 20), None), base, 100).await,
        [2, 3, 4, 5]
    );
    assert_eq!(list(window(None, Some(t + 20)), base, 100).await, [0, 1]);
    assert_eq!(
        list(window(Some(t + 10), Some(t + 30)), base, 100).await,
        [1, 2, 3]
    );
    assert_eq!(
        list(window(Some(t + 20), Some(t + 20)), base, 100).await,
        NOTHING
    );
    assert_eq!(list(window(Some(t + 41), None), base, 100).await, NOTHING);
    assert_eq!(
        list(
            AuditFilter {
                actor: Some(a.clone()),
                since_ms: Some(t + 20),
                ..AuditFilter::default()
            },
            0,
            100
        )
        .await,
        [2, 3, 5]
    );
    assert_eq!(
        list(
            AuditFilter {
                chain: None,
                project_id: Some(q.clone()),
                actor: Some(b.clone()),
                since_ms: Some(t),
                until_ms: Some(t + 31),
            },
            0,
            100
        )
        .await,
        [4]
    );

    // after_seq and limit.
    assert_eq!(list(all.clone(), base + 2, 100).await, [2, 3, 4, 5]);
    assert_eq!(list(all.clone(), base + 6, 100).await, NOTHING);
    assert_eq!(list(all.clone(), base, 2).await, [0, 1]);
    assert_eq!(list(all.clone(), base + 1, 2).await, [1, 2]);
    assert_eq!(list(all.clone(), base, 0).await, NOTHING);
    assert_eq!(list(actor(&a), base + 1, 2).await, [2, 3]);

    // Paging through one project, one entry at a time, as `dbcerts audit` does.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = list(project(&p), after, 1).await;
        let Some(&i) = page.first() else { break };
        seen.push(i);
        after = appended[i].seq;
    }
    assert_eq!(seen, [0, 1, 5]);
}

/// Concurrent appends (16 writers × 5 entries) take unique, consecutive seqs and build one
/// unbroken chain.
pub async fn audit_concurrent_appends_keep_the_chain(store: &dyn Store) {
    let ns = Ns(41);
    let (base, tip) = audit_tip(store, "").await;
    let writers = (0..16u64).map(move |w| async move {
        let mut got = Vec::new();
        for i in 0..5 {
            let e = audit_event(&ns.actor(w), "concurrent", None, T0 * 1000 + i);
            let entry = store.append_audit(&e).await.expect("append_audit");
            assert_eq!(entry.event, e);
            got.push(entry);
        }
        got
    });
    let results = futures_join_all(writers).await;

    for got in &results {
        assert!(
            got.windows(2).all(|w| w[0].seq < w[1].seq),
            "one writer's entries are in its order"
        );
    }
    let mut returned: Vec<AuditEntry> = results.into_iter().flatten().collect();
    returned.sort_by_key(|e| e.seq);
    assert_eq!(
        returned.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (base + 1..=base + 80).collect::<Vec<_>>(),
        "unique, consecutive seqs"
    );
    let listed = store
        .list_audit(&AuditFilter::default(), base, 1000)
        .await
        .unwrap();
    assert_eq!(listed, returned, "what appends returned is what is stored");
    let mut prev = tip;
    for e in &listed {
        assert_eq!(
            e.prev_hash, prev,
            "entry {} chains to its predecessor",
            e.seq
        );
        assert!(e.is_intact(), "entry {} is intact", e.seq);
        prev = e.hash.clone();
    }
    assert_audit_log_intact(store).await;
}

/// Writer `w`'s five entries ("concurrent", into `project`'s chain), appended one after another;
/// each is stored as given.
async fn append_five(store: &dyn Store, ns: Ns, w: u64, project: Option<&str>) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    for i in 0..5 {
        let e = audit_event(&ns.actor(w), "concurrent", project, T0 * 1000 + i);
        let entry = store.append_audit(&e).await.expect("append_audit");
        assert_eq!(entry.event, e);
        entries.push(entry);
    }
    entries
}

/// Each project's entries form a chain of their own and entries with no project the store
/// chain, whatever the order they come in (one at a time, concurrently, or in one batch): each
/// chain numbered from 1 and linked from its own genesis, listed alone by
/// [`AuditFilter::chain`], and reported by [`verify_audit_chains`].
pub async fn audit_chains_are_separate(store: &dyn Store) {
    let ns = Ns(74);
    let (p, q) = (
        setup_project(store, ns, 0).await,
        setup_project(store, ns, 1).await,
    );
    let before = chain_tip(store, "").await;
    // Interleaved one at a time, then concurrently (16 writers over the three chains).
    for i in 0..6u64 {
        let project = [Some(p.as_str()), Some(q.as_str()), None][i as usize % 3];
        let e = audit_event(&ns.actor(i), "interleaved", project, T0 * 1000 + i as i64);
        store.append_audit(&e).await.unwrap();
    }
    let writers = (0..16u64).map(|w| {
        let (p, q) = (p.clone(), q.clone());
        async move {
            let project = [Some(p), Some(q), None][w as usize % 3].clone();
            for entry in append_five(store, ns, w, project.as_deref()).await {
                assert_eq!(entry.chain, project.clone().unwrap_or_default());
            }
        }
    });
    futures_join_all(writers).await;
    // One batch with certificates of both projects and an entry of neither.
    let (a, b) = (
        cert(ns.serial(1), &p, "CN=una", T0, T0 + 1000),
        cert(ns.serial(2), &q, "CN=una", T0, T0 + 1000),
    );
    let batch = [
        BatchWrite::Certificate(a.clone(), issued(&a)),
        BatchWrite::Audit(audit_event(&ns.actor(99), "batched", None, T0 * 1000)),
        BatchWrite::Certificate(b.clone(), issued(&b)),
    ];
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        [Recorded::Yes; 3]
    );

    // 6 interleaved (2 each), 16 writers × 5 (p: 6 writers, q: 5, store: 5), 1 batched each.
    for (chain, entries) in [(p.as_str(), 2 + 30 + 1), (q.as_str(), 2 + 25 + 1)] {
        let filter = AuditFilter {
            chain: Some(chain.to_owned()),
            ..AuditFilter::default()
        };
        let listed = store.list_audit(&filter, 0, 1000).await.unwrap();
        assert_eq!(
            listed.iter().map(|e| e.chain_seq).collect::<Vec<_>>(),
            (1..=entries).collect::<Vec<_>>(),
            "chain {chain} alone, numbered from 1 in log order"
        );
        assert!(
            listed
                .iter()
                .all(|e| e.chain == chain && e.event.project_id.as_deref() == Some(chain))
        );
        assert_eq!(listed[0].prev_hash, AuditEntry::genesis(chain));
        assert!(
            listed
                .windows(2)
                .all(|w| w[1].prev_hash == w[0].hash && w[1].prev_seq == w[0].seq)
        );
    }
    let store_chain = store
        .list_audit(
            &AuditFilter {
                chain: Some(String::new()),
                ..AuditFilter::default()
            },
            before.1,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(
        store_chain.iter().map(|e| e.chain_seq).collect::<Vec<_>>(),
        (before.0 + 1..=before.0 + 2 + 25 + 1).collect::<Vec<_>>(),
        "the store chain goes on from where it was"
    );
    assert_audit_log_intact(store).await;
    let ChainCheck::Intact { chains, .. } = verify_audit_chains(store).await.unwrap() else {
        panic!("the chains verify");
    };
    let count = |c: &str| chains.iter().find(|s| s.chain == c).map(|s| s.entries);
    assert_eq!((count(&p), count(&q)), (Some(33), Some(28)));
    assert_eq!(chains[0].chain, "", "the store chain is reported first");
}

/// Two nodes appending to several chains at once (16 tasks over four projects' chains and the
/// store chain) leave every chain unbroken, with unique seqs.
pub async fn audit_chains_hold_across_two_nodes(
    first: std::sync::Arc<dyn Store>,
    second: std::sync::Arc<dyn Store>,
) {
    let ns = Ns(75);
    let (before, _) = audit_tip(&*first, "").await;
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let project = (w % 5 != 4).then(|| ns.project(w % 5));
        tasks.push(tokio::spawn(async move {
            let entries = append_five(&*store, ns, w, project.as_deref()).await;
            entries.into_iter().map(|e| e.seq).collect::<Vec<_>>()
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 80, "unique seqs");
    assert!(seqs[0] > before);
    for n in 0..4 {
        let chain = ns.project(n);
        let filter = AuditFilter {
            chain: Some(chain.clone()),
            ..AuditFilter::default()
        };
        let listed = first.list_audit(&filter, 0, 1000).await.unwrap();
        // Projects 0..3 have writers w ≡ n (mod 5): 4 of them for n = 0, 3 for the others.
        let writers = (0..16).filter(|w| w % 5 == n).count() as i64;
        assert_eq!(listed.len() as i64, writers * 5, "chain {chain}");
    }
    assert_audit_log_intact(&*first).await;
    assert_audit_log_intact(&*second).await;
}

/// Builds three chains, then edits and deletes entries through
/// `sql(statement, seq, text)` (the backend's own connection: `$1` is the entry's `seq`, `$2`
/// the text when given; a `SELECT` returns its one text column): [`verify_audit_chains`] names
/// the entry and its chain each time, and finds the log intact again once the edit is undone.
pub async fn audit_tampering_is_detected<F, Fut>(store: &dyn Store, sql: F)
where
    F: Fn(&'static str, i64, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let ns = Ns(76);
    let (p, q) = (ns.project(0), ns.project(1));
    let mut victim = None;
    for i in 0..9u64 {
        let project = [Some(p.as_str()), Some(q.as_str()), None][i as usize % 3];
        let e = audit_event(
            &ns.actor(i),
            "to-be-tampered",
            project,
            T0 * 1000 + i as i64,
        );
        let entry = store.append_audit(&e).await.unwrap();
        if i == 3 {
            victim = Some(entry);
        }
    }
    let victim = victim.unwrap();
    assert_eq!((victim.chain.as_str(), victim.chain_seq), (p.as_str(), 2));
    assert_audit_log_intact(store).await;

    let original = sql(
        "SELECT details FROM audit_log WHERE seq = $1",
        victim.seq,
        None,
    )
    .await;
    assert_eq!(original.as_deref(), Some("{}"));
    let edit = "UPDATE audit_log SET details = $2 WHERE seq = $1 RETURNING details";
    sql(edit, victim.seq, Some(r#"{"forged":true}"#.into()))
        .await
        .unwrap();
    assert_audit_broken_at(store, victim.seq, &p, "contents").await;
    sql(edit, victim.seq, original).await.unwrap();
    assert_audit_log_intact(store).await;
    // Cutting off a chain's newest entry (the store chain's, which a later entry of another
    // chain follows in the log) is found through the chain's recorded head.
    let newest = audit_log(store)
        .await
        .into_iter()
        .rfind(|e| e.chain.is_empty())
        .unwrap();
    let after = audit_event(&ns.actor(9), "after", Some(&ns.project(2)), T0 * 1000);
    store.append_audit(&after).await.unwrap();
    let delete = "DELETE FROM audit_log WHERE seq = $1 RETURNING details";
    sql(delete, newest.seq, None).await.unwrap();
    assert_audit_broken_at(store, newest.seq, "", "missing").await;
    // Deleting an entry inside a chain is found by the gap it leaves.
    sql(delete, victim.seq, None).await.unwrap();
    assert_audit_broken_at(store, victim.seq, &p, "missing").await;
}

/// Asserts that [`verify_audit_chains`] reports entry `seq` of `chain` as broken, for `reason`.
async fn assert_audit_broken_at(store: &dyn Store, seq: i64, chain: &str, reason: &str) {
    match verify_audit_chains(store).await.unwrap() {
        ChainCheck::Broken {
            seq: at,
            chain: c,
            reason: why,
        } => {
            assert_eq!((at, c.as_str()), (seq, chain), "{why}");
            assert!(why.contains(reason), "{why}");
        }
        intact => panic!("tampering not detected: {intact:?}"),
    }
}

/// `insert_certificate` appends its audit entry in the same transaction: one entry for each
/// stored certificate, none for a refused one, and no seq is lost to a refusal.
pub async fn insert_certificate_appends_one_audit_entry(store: &dyn Store) {
    let ns = Ns(42);
    let p = setup_project(store, ns, 0).await;
    let now = T0 + 100;
    let (base, tip) = audit_tip(store, &p).await;
    let c = cert(ns.serial(1), &p, "CN=ivy", T0, T0 + 1000);
    let e = issued(&c);
    store.insert_certificate(&c, &e).await.unwrap();
    let after = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "exactly one entry: {after:?}");
    let first = after[0].clone();
    assert_eq!(first.seq, base + 1);
    assert_eq!(first.event, e);
    assert_eq!(first.prev_hash, tip);
    assert!(first.is_intact());

    // A serial that exists already: no certificate, no audit entry.
    let dup = CertificateRecord {
        subject: "CN=mallory".into(),
        ..c.clone()
    };
    let dup_event = AuditEvent {
        actor: ns.actor(1),
        ..issued(&dup)
    };
    assert_conflict(
        store.insert_certificate(&dup, &dup_event).await,
        "certificate serial",
    );
    // A project that does not exist: no certificate, no audit entry.
    let orphan = cert(ns.serial(2), &ns.project(99), "CN=ivy", T0, T0 + 1000);
    assert!(matches!(
        insert_cert(store, &orphan).await,
        Err(StoreError::Gone)
    ));
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), base, 100)
            .await
            .unwrap(),
        std::slice::from_ref(&first),
        "refused certificates leave no audit entry"
    );
    assert_eq!(
        store
            .list_audit(
                &AuditFilter {
                    actor: Some(ns.actor(1)),
                    ..AuditFilter::default()
                },
                0,
                100
            )
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=ivy", now, NO_PAGE)
            .await
            .unwrap(),
        (vec![summary(&c)], 1)
    );

    // The next certificate's entry follows directly.
    let c2 = cert(ns.serial(3), &p, "CN=ivy", T0 + 1, T0 + 1000);
    insert_cert(store, &c2).await.unwrap();
    let after = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[1].seq, base + 2, "no seq was lost to the refusals");
    assert_eq!(after[1].event, issued(&c2));
    assert_eq!(after[1].prev_hash, first.hash);
    assert!(after[1].is_intact());
    assert_eq!(
        store
            .list_audit(
                &AuditFilter {
                    project_id: Some(p.clone()),
                    ..AuditFilter::default()
                },
                0,
                100
            )
            .await
            .unwrap(),
        after
    );
    assert_audit_log_intact(store).await;
}

/// `commit_batch` (the server's group commit) records a batch in one transaction: a taken
/// serial (stored before, or earlier in the same batch) and a missing project each skip only
/// their certificate; the recorded certificates and the audit entries alone get consecutive
/// audit entries, in batch order.
pub async fn commit_batch_skips_only_the_refused(store: &dyn Store) {
    let ns = Ns(46);
    let p = setup_project(store, ns, 0).await;
    let earlier = cert(ns.serial(1), &p, "CN=jo", T0, T0 + 1000);
    insert_cert(store, &earlier).await.unwrap();
    let (base, tip) = audit_tip(store, &p).await;
    let first = cert(ns.serial(2), &p, "CN=jo", T0 + 1, T0 + 1000);
    let taken_before = cert(ns.serial(1), &p, "CN=jo", T0 + 2, T0 + 1000);
    let taken_in_batch = cert(ns.serial(2), &p, "CN=other", T0 + 3, T0 + 1000);
    let orphan = cert(ns.serial(3), &ns.project(99), "CN=jo", T0 + 4, T0 + 1000);
    let last = cert(ns.serial(4), &p, "CN=jo", T0 + 5, T0 + 1000);
    let request = AuditEvent {
        actor: ns.actor(2),
        action: "POST /request".into(),
        ..issued(&first)
    };
    let mut batch: Vec<_> = [&first, &taken_before, &taken_in_batch, &orphan]
        .into_iter()
        .map(|c| BatchWrite::Certificate(c.clone(), issued(c)))
        .collect();
    batch.push(BatchWrite::Audit(request.clone()));
    batch.push(BatchWrite::Certificate(last.clone(), issued(&last)));
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        [
            Recorded::Yes,
            Recorded::SerialTaken,
            Recorded::SerialTaken,
            Recorded::ProjectGone,
            Recorded::Yes,
            Recorded::Yes
        ]
    );
    let entries = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.seq, &e.event))
            .collect::<Vec<_>>(),
        [
            (base + 1, &issued(&first)),
            (base + 2, &request),
            (base + 3, &issued(&last))
        ]
    );
    assert_eq!(entries[0].prev_hash, tip);
    assert!(entries.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert!(entries.iter().all(AuditEntry::is_intact));
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=jo", T0 + 100, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&earlier, &first, &last]), 3)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=other", T0 + 100, NO_PAGE)
            .await
            .unwrap(),
        (vec![], 0)
    );
    assert_eq!(store.commit_batch(&[]).await.unwrap(), []);
    assert_audit_log_intact(store).await;
}

/// A Digest nonce count write of a group commit.
fn nonce_count(nonce: &str, nc: u32, expires: i64, now: i64) -> BatchWrite {
    BatchWrite::DigestNonceCount {
        nonce: nonce.to_owned(),
        nc,
        expires,
        now,
    }
}

/// `commit_batch` records a Digest nonce count only when it is higher than every count
/// recorded for its nonce, within a batch and across batches; nonces are independent; audit
/// entries in the same batch chain as usual; a batch removes the counts of expired nonces and
/// keeps the live ones.
pub async fn digest_nonce_counts_only_rise_and_expire(store: &dyn Store) {
    let ns = Ns(47);
    let (a, b, old) = (ns.jti(1), ns.jti(2), ns.jti(3));
    let live = T0 + 300;
    let (base, _) = audit_tip(store, "").await;
    let request = AuditEvent {
        at_ms: T0 * 1000,
        actor: ns.actor(1),
        source_ip: None,
        action: "POST /nonce-check".into(),
        project_id: None,
        target: None,
        status: Some(201),
        details: "{}".into(),
    };
    let batch = [
        nonce_count(&a, 1, live, T0),
        nonce_count(&a, 1, live, T0),
        BatchWrite::Audit(request.clone()),
        nonce_count(&a, 3, live, T0),
        nonce_count(&a, 2, live, T0),
        nonce_count(&b, 1, live, T0),
        nonce_count(&old, 7, T0 + 10, T0),
    ];
    use Recorded::{CountNotHigher as No, Yes};
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        [Yes, No, Yes, Yes, No, Yes, Yes]
    );
    let entries = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| &e.event).collect::<Vec<_>>(),
        [&request]
    );
    // Later batches see what earlier ones recorded.
    assert_eq!(
        store
            .commit_batch(&[
                nonce_count(&a, 3, live, T0 + 1),
                nonce_count(&a, 4, live, T0 + 1),
                nonce_count(&b, 1, live, T0 + 1),
                nonce_count(&old, 7, T0 + 10, T0 + 1),
            ])
            .await
            .unwrap(),
        [No, Yes, No, No]
    );
    // A batch at T0 + 11 removes the expired nonce's count: its count can be recorded afresh
    // (the server refuses the expired nonce before it gets here). The live ones stay.
    assert_eq!(
        store
            .commit_batch(&[nonce_count(&b, 2, live, T0 + 11)])
            .await
            .unwrap(),
        [Yes]
    );
    assert_eq!(
        store
            .commit_batch(&[
                nonce_count(&old, 1, T0 + 400, T0 + 12),
                nonce_count(&a, 4, live, T0 + 12),
                nonce_count(&b, 2, live, T0 + 12),
            ])
            .await
            .unwrap(),
        [Yes, No, No]
    );
    assert_audit_log_intact(store).await;
}

/// Two nodes recording the same nonce counts at the same moment: each count is accepted once,
/// by one node, never by both.
pub async fn digest_nonce_count_accepted_once_across_two_nodes(
    first: &dyn Store,
    second: &dyn Store,
) {
    let ns = Ns(48);
    for n in 0..20 {
        let nonce = ns.jti(n);
        for nc in 1..=3 {
            let write = [nonce_count(&nonce, nc, T0 + 300, T0)];
            let (x, y) = tokio::join!(first.commit_batch(&write), second.commit_batch(&write));
            let mut outcomes = [x.unwrap()[0], y.unwrap()[0]];
            outcomes.sort_by_key(|o| *o != Recorded::Yes);
            assert_eq!(
                outcomes,
                [Recorded::Yes, Recorded::CountNotHigher],
                "nonce {n} nc {nc}"
            );
        }
    }
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(
        results
            .into_iter()
            .map(|r| r.expect("every future completed")),
    );
    outputs
}

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

/// Creates project `n` of `ns` with a CA; returns the project id and the stored CA.
async fn project_with_ca(store: &dyn Store, ns: Ns, n: u64) -> (String, CaRecord) {
    let p = setup_project(store, ns, n).await;
    let stored = store.insert_ca_if_absent(&ca(&p, n as u8)).await.unwrap();
    (p, stored)
}

/// `c` as signed by `ca`.
fn issued_by(ca: &CaRecord, c: CertificateRecord) -> CertificateRecord {
    CertificateRecord { ca_id: ca.id, ..c }
}

/// What a revocation call passes as its audit template.
fn revoked_template(ns: Ns, project_id: &str, username: &str, reason: &str) -> AuditEvent {
    AuditEvent {
        at_ms: (T0 + 500) * 1000,
        actor: ns.actor(1),
        source_ip: Some("192.0.2.9".to_owned()),
        action: "certificate.revoked".to_owned(),
        project_id: Some(project_id.to_owned()),
        target: Some(username.to_owned()),
        status: Some(200),
        details: format!(r#"{{"reason":"{reason}"}}"#),
    }
}

/// The serials named by audit entries after `base`, checking that each entry is `template`
/// with only `serial` added to its details.
async fn revoked_serials_audited(store: &dyn Store, base: i64, template: &AuditEvent) -> Vec<i64> {
    let entries = store
        .list_audit(&AuditFilter::default(), base, 1000)
        .await
        .unwrap();
    let template_details: serde_json::Value = serde_json::from_str(&template.details).unwrap();
    entries
        .into_iter()
        .map(|e| {
            let mut details: serde_json::Value = serde_json::from_str(&e.event.details).unwrap();
            let serial = details["serial"]
                .as_i64()
                .expect("the entry names its serial");
            details.as_object_mut().unwrap().remove("serial");
            assert_eq!(
                details, template_details,
                "details are the template's plus serial"
            );
            assert_eq!(
                AuditEvent {
                    details: template.details.clone(),
                    ..e.event
                },
                *template
            );
            serial
        })
        .collect()
}

/// `list_project_cas` lists every CA row with its id; a certificate keeps the id of the CA
/// that signed it, and `get_certificate` finds it (revoked or not, expired or not) in its own
/// project only.
pub async fn certificate_records_its_issuing_ca(store: &dyn Store) {
    let ns = Ns(49);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let bare = setup_project(store, ns, 2).await;
    assert_eq!(
        store.list_project_cas(&p).await.unwrap(),
        vec![ca_p.clone()]
    );
    assert_eq!(
        store.list_project_cas(&q).await.unwrap(),
        vec![ca_q.clone()]
    );
    assert_eq!(store.list_project_cas(&bare).await.unwrap(), vec![]);
    assert_eq!(
        store.list_project_cas(&ns.project(99)).await.unwrap(),
        vec![]
    );
    assert_ne!(ca_p.id, ca_q.id);

    let now = T0 + 2000;
    let live = issued_by(&ca_p, cert(ns.serial(1), &p, "CN=ann", T0, now + 100));
    let expired = issued_by(&ca_p, cert(ns.serial(2), &p, "CN=ann", T0, now - 100));
    let elsewhere = issued_by(&ca_q, cert(ns.serial(3), &q, "CN=ann", T0, now + 100));
    for c in [&live, &expired, &elsewhere] {
        insert_cert(store, c).await.unwrap();
    }
    assert_eq!(
        store.get_certificate(&p, live.serial).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store.get_certificate(&p, expired.serial).await.unwrap(),
        Some(expired.clone())
    );
    assert_eq!(
        store.get_certificate(&q, elsewhere.serial).await.unwrap(),
        Some(elsewhere.clone())
    );
    // Another project's serial is not found through this project, nor an unknown one.
    assert_eq!(
        store.get_certificate(&p, elsewhere.serial).await.unwrap(),
        None
    );
    assert_eq!(store.get_certificate(&q, live.serial).await.unwrap(), None);
    assert_eq!(
        store.get_certificate(&p, ns.serial(99)).await.unwrap(),
        None
    );
}

/// Revoking one certificate records time and reason with one audit entry; revoking it again
/// changes nothing and audits nothing; a serial of another user, another project or nobody
/// revokes nothing.
pub async fn revoke_one_certificate_is_idempotent(store: &dyn Store) {
    let ns = Ns(50);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let now = T0 + 2000;
    let a1 = issued_by(&ca_p, cert(ns.serial(1), &p, "CN=ann", T0, now + 100));
    let a2 = issued_by(&ca_p, cert(ns.serial(2), &p, "CN=ann", T0 + 1, now + 100));
    let a_old = issued_by(&ca_p, cert(ns.serial(3), &p, "CN=ann", T0, now - 100));
    let b1 = issued_by(&ca_p, cert(ns.serial(4), &p, "CN=bob", T0, now + 100));
    let qa = issued_by(&ca_q, cert(ns.serial(5), &q, "CN=ann", T0, now + 100));
    for c in [&a1, &a2, &a_old, &b1, &qa] {
        insert_cert(store, c).await.unwrap();
    }

    let first = Revocation {
        at: now,
        reason: RevocationReason::KeyCompromise,
    };
    let template = revoked_template(ns, &p, "CN=ann", "keyCompromise");
    let (base, _) = audit_tip(store, "").await;
    let got = store
        .revoke_certificates(&p, "CN=ann", RevokeWhich::One(a1.serial), first, &template)
        .await
        .unwrap();
    let a1_revoked = CertificateRecord {
        revocation: Some(first),
        ..a1.clone()
    };
    assert_eq!(got, vec![a1_revoked.clone()]);
    assert_eq!(
        store.get_certificate(&p, a1.serial).await.unwrap(),
        Some(a1_revoked.clone())
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        vec![a1.serial]
    );

    // Again, later and with another reason: the first time and reason stay, no new entry.
    let (base, _) = audit_tip(store, "").await;
    let again = Revocation {
        at: now + 50,
        reason: RevocationReason::Superseded,
    };
    let template2 = revoked_template(ns, &p, "CN=ann", "superseded");
    for which in [RevokeWhich::One(a1.serial), RevokeWhich::One(a1.serial)] {
        assert_eq!(
            store
                .revoke_certificates(&p, "CN=ann", which, again, &template2)
                .await
                .unwrap(),
            vec![a1_revoked.clone()]
        );
    }
    assert_eq!(
        revoked_serials_audited(store, base, &template2).await,
        Vec::<i64>::new()
    );

    // Not this user's, not this project's, nobody's: nothing found, nothing revoked.
    for (project, user, serial) in [
        (&p, "CN=ann", b1.serial),
        (&p, "CN=ann", qa.serial),
        (&q, "CN=ann", a2.serial),
        (&p, "CN=bob", a2.serial),
        (&p, "CN=ann", ns.serial(99)),
    ] {
        assert_eq!(
            store
                .revoke_certificates(project, user, RevokeWhich::One(serial), again, &template2)
                .await
                .unwrap(),
            vec![],
            "{project} {user} {serial}"
        );
    }
    assert_eq!(
        revoked_serials_audited(store, base, &template2).await,
        Vec::<i64>::new()
    );
    for (project, c) in [(&p, &a2), (&p, &b1), (&q, &qa)] {
        assert_eq!(
            store
                .get_certificate(project, c.serial)
                .await
                .unwrap()
                .as_ref(),
            Some(c)
        );
    }

    // An expired certificate can be revoked by serial too (it then leaves CRLs at once).
    let got = store
        .revoke_certificates(
            &p,
            "CN=ann",
            RevokeWhich::One(a_old.serial),
            again,
            &template2,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![CertificateRecord {
            revocation: Some(again),
            ..a_old.clone()
        }]
    );
}

/// Revoking all of a user's unexpired certificates revokes exactly those, keeps the first
/// revocation of any revoked before, audits each one revoked now, and is idempotent.
pub async fn revoke_all_unexpired_of_one_user(store: &dyn Store) {
    let ns = Ns(51);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let now = T0 + 2000;
    // Issued in the order 3, 1, 2 (by notBefore): the result lists them so.
    let c1 = issued_by(&ca_p, cert(ns.serial(1), &p, "CN=cy", T0 + 10, now + 100));
    let c2 = issued_by(&ca_p, cert(ns.serial(2), &p, "CN=cy", T0 + 20, now + 1));
    let c3 = issued_by(&ca_p, cert(ns.serial(3), &p, "CN=cy", T0 + 5, now + 300));
    let expired = issued_by(&ca_p, cert(ns.serial(4), &p, "CN=cy", T0, now));
    let other = issued_by(&ca_p, cert(ns.serial(5), &p, "CN=dee", T0, now + 100));
    for c in [&c1, &c2, &c3, &expired, &other] {
        insert_cert(store, c).await.unwrap();
    }
    let earlier = Revocation {
        at: now - 10,
        reason: RevocationReason::KeyCompromise,
    };
    let template = revoked_template(ns, &p, "CN=cy", "keyCompromise");
    store
        .revoke_certificates(&p, "CN=cy", RevokeWhich::One(c2.serial), earlier, &template)
        .await
        .unwrap();

    let all = Revocation {
        at: now,
        reason: RevocationReason::CessationOfOperation,
    };
    let template = revoked_template(ns, &p, "CN=cy", "cessationOfOperation");
    let (base, _) = audit_tip(store, "").await;
    let expected = vec![
        CertificateRecord {
            revocation: Some(all),
            ..c3.clone()
        },
        CertificateRecord {
            revocation: Some(all),
            ..c1.clone()
        },
        CertificateRecord {
            revocation: Some(earlier),
            ..c2.clone()
        },
    ];
    let which = RevokeWhich::AllUnexpired { now };
    assert_eq!(
        store
            .revoke_certificates(&p, "CN=cy", which, all, &template)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        vec![c3.serial, c1.serial],
        "one entry per certificate revoked now, in the result's order"
    );
    // Expired (not_after == now) and another user's: untouched.
    for c in [&expired, &other] {
        assert_eq!(
            store.get_certificate(&p, c.serial).await.unwrap().as_ref(),
            Some(c)
        );
    }
    // Idempotent.
    let (base, _) = audit_tip(store, "").await;
    let later = Revocation {
        at: now + 5,
        reason: RevocationReason::Unspecified,
    };
    assert_eq!(
        store
            .revoke_certificates(&p, "CN=cy", which, later, &template)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        Vec::<i64>::new()
    );
    // A user without certificates, and a project that does not exist.
    for (project, user) in [
        (p.as_str(), "CN=nobody"),
        (ns.project(99).as_str(), "CN=cy"),
    ] {
        assert_eq!(
            store
                .revoke_certificates(project, user, which, all, &template)
                .await
                .unwrap(),
            vec![]
        );
    }
}

/// `list_revoked_unexpired` lists one CA's revoked certificates that have not expired, in
/// serial order, with their revocations.
pub async fn list_revoked_unexpired_per_ca(store: &dyn Store) {
    let ns = Ns(52);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let now = T0 + 2000;
    let make = |n: i64, ca: &CaRecord, project: &str, not_after: i64| {
        issued_by(ca, cert(ns.serial(n), project, "CN=eve", T0, not_after))
    };
    // Serials inserted out of order; 4 expires at `now`, 5 stays unrevoked.
    let certs = [
        make(3, &ca_p, &p, now + 10),
        make(1, &ca_p, &p, now + 10),
        make(4, &ca_p, &p, now),
        make(5, &ca_p, &p, now + 10),
        make(2, &ca_p, &p, now + 1),
        make(6, &ca_q, &q, now + 10),
    ];
    for c in &certs {
        insert_cert(store, c).await.unwrap();
    }
    let reasons = [
        (1, RevocationReason::Superseded),
        (2, RevocationReason::KeyCompromise),
        (3, RevocationReason::AffiliationChanged),
        (4, RevocationReason::Unspecified),
    ];
    for (n, reason) in reasons {
        let r = Revocation {
            at: now - n,
            reason,
        };
        store
            .revoke_certificates(
                &p,
                "CN=eve",
                RevokeWhich::One(ns.serial(n)),
                r,
                &revoked_template(ns, &p, "CN=eve", reason.as_str()),
            )
            .await
            .unwrap();
    }
    let r6 = Revocation {
        at: now,
        reason: RevocationReason::CessationOfOperation,
    };
    store
        .revoke_certificates(
            &q,
            "CN=eve",
            RevokeWhich::AllUnexpired { now },
            r6,
            &revoked_template(ns, &q, "CN=eve", "cessationOfOperation"),
        )
        .await
        .unwrap();

    let expected: Vec<(i64, Revocation)> = reasons[..3]
        .iter()
        .map(|&(n, reason)| {
            (
                ns.serial(n),
                Revocation {
                    at: now - n,
                    reason,
                },
            )
        })
        .collect();
    assert_eq!(
        store.list_revoked_unexpired(ca_p.id, now).await.unwrap(),
        expected
    );
    // Earlier, the one that expires at `now` is listed too; later, fewer.
    assert_eq!(
        store
            .list_revoked_unexpired(ca_p.id, now - 1)
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        store
            .list_revoked_unexpired(ca_p.id, now + 1)
            .await
            .unwrap(),
        vec![expected[0], expected[2]]
    );
    assert_eq!(
        store.list_revoked_unexpired(ca_q.id, now).await.unwrap(),
        vec![(ns.serial(6), r6)]
    );
    assert_eq!(store.list_revoked_unexpired(-1, now).await.unwrap(), vec![]);
}

/// The Atlas list (`list_unexpired_certificates`) leaves revoked certificates out, page and
/// count alike; `list_user_certificates` lists every certificate, expired and revoked too.
pub async fn revoked_certificates_leave_the_unexpired_list(store: &dyn Store) {
    let ns = Ns(55);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let now = T0 + 2000;
    let certs: Vec<CertificateRecord> = (1..=5)
        .map(|n| {
            let not_after = if n == 1 { now - 1 } else { now + 100 };
            issued_by(&ca_p, cert(ns.serial(n), &p, "CN=fay", T0 + n, not_after))
        })
        .collect();
    for c in &certs {
        insert_cert(store, c).await.unwrap();
    }
    let r = Revocation {
        at: now,
        reason: RevocationReason::KeyCompromise,
    };
    for n in [3, 1] {
        store
            .revoke_certificates(
                &p,
                "CN=fay",
                RevokeWhich::One(ns.serial(n)),
                r,
                &revoked_template(ns, &p, "CN=fay", "keyCompromise"),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=fay", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&certs[1], &certs[3], &certs[4]]), 3)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=fay", now, page(1, 1))
            .await
            .unwrap(),
        (summaries([&certs[3]]), 3)
    );
    let revoked = |c: &CertificateRecord| CertificateRecord {
        revocation: Some(r),
        ..c.clone()
    };
    let all = vec![
        revoked(&certs[0]),
        certs[1].clone(),
        revoked(&certs[2]),
        certs[3].clone(),
        certs[4].clone(),
    ];
    assert_eq!(
        store
            .list_user_certificates(&p, "CN=fay", NO_PAGE)
            .await
            .unwrap(),
        (all.clone(), 5)
    );
    assert_eq!(
        store
            .list_user_certificates(&p, "CN=fay", page(2, 2))
            .await
            .unwrap(),
        (all[2..4].to_vec(), 5)
    );
    assert_eq!(
        store
            .list_user_certificates(&p, "CN=nobody", NO_PAGE)
            .await
            .unwrap(),
        (vec![], 0)
    );
}

/// `delete_database_user_revoking` deletes the user and, for a MANAGED user when asked,
/// revokes its unexpired certificates (the earlier revocation of one kept), auditing each one
/// revoked now; a user of another x509 type, a deletion without `revoke`, and a user that does
/// not exist revoke nothing.
pub async fn delete_database_user_revoking_in_one_transaction(store: &dyn Store) {
    let ns = Ns(56);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let now = T0 + 2000;
    let mut certs = Vec::new();
    for (n, name, not_after) in [
        (1, "gil", now + 100),
        (2, "gil", now + 200),
        (3, "gil", now),
        (4, "hal", now + 100),
        (5, "ivy", now + 100),
        (6, "jon", now + 100),
    ] {
        let c = issued_by(&ca_p, cert(ns.serial(n), &p, name, T0 + n, not_after));
        insert_cert(store, &c).await.unwrap();
        certs.push(c);
    }
    for name in ["gil", "ivy"] {
        store
            .create_database_user(&user(&p, "$external", name, T0))
            .await
            .unwrap();
    }
    let scram = DatabaseUserRecord {
        x509_type: "NONE".to_owned(),
        ..user(&p, "admin", "hal", T0)
    };
    store.create_database_user(&scram).await.unwrap();
    let earlier = Revocation {
        at: now - 10,
        reason: RevocationReason::KeyCompromise,
    };
    let template = revoked_template(ns, &p, "gil", "keyCompromise");
    store
        .revoke_certificates(
            &p,
            "gil",
            RevokeWhich::One(certs[1].serial),
            earlier,
            &template,
        )
        .await
        .unwrap();

    let ceased = Revocation {
        at: now,
        reason: RevocationReason::CessationOfOperation,
    };
    let template = revoked_template(ns, &p, "gil", "cessationOfOperation");
    let (base, _) = audit_tip(store, "").await;
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "gil", Some((ceased, &template)))
            .await
            .unwrap(),
        (
            true,
            vec![
                CertificateRecord {
                    revocation: Some(ceased),
                    ..certs[0].clone()
                },
                CertificateRecord {
                    revocation: Some(earlier),
                    ..certs[1].clone()
                },
            ]
        )
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        vec![certs[0].serial]
    );
    assert!(
        store
            .get_database_user(&p, "$external", "gil")
            .await
            .unwrap()
            .is_none()
    );
    // Expired at `now`: left as it was.
    assert_eq!(
        store
            .get_certificate(&p, certs[2].serial)
            .await
            .unwrap()
            .as_ref(),
        Some(&certs[2])
    );

    // Not MANAGED, not asked, not there: deleted (or not), nothing revoked.
    let template = revoked_template(ns, &p, "hal", "cessationOfOperation");
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "admin", "hal", Some((ceased, &template)))
            .await
            .unwrap(),
        (true, vec![])
    );
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "ivy", None)
            .await
            .unwrap(),
        (true, vec![])
    );
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "jon", Some((ceased, &template)))
            .await
            .unwrap(),
        (false, vec![])
    );
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "gil", Some((ceased, &template)))
            .await
            .unwrap(),
        (false, vec![])
    );
    for c in &certs[3..] {
        assert_eq!(
            store.get_certificate(&p, c.serial).await.unwrap().as_ref(),
            Some(c)
        );
    }
    assert!(
        store
            .get_database_user(&p, "admin", "hal")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_database_user(&p, "$external", "ivy")
            .await
            .unwrap()
            .is_none()
    );
}

/// Generation `generation` of `p`'s CA as a rotation offers it.
fn next_ca(p: &str, tag: u8, generation: i64) -> CaRecord {
    CaRecord {
        generation,
        ..ca(p, tag)
    }
}

/// The audit entries of one action about project `p`.
async fn actions_about(store: &dyn Store, p: &str, action: &str) -> usize {
    audit_log(store)
        .await
        .iter()
        .filter(|e| e.event.action == action && e.event.project_id.as_deref() == Some(p))
        .count()
}

/// Rotation swaps the active CA for the next generation with one audit entry, and only from the
/// CA that is active; retirement refuses the active CA and unknown generations, happens once
/// (its first time kept, one audit entry), and the expiry list and last-leaf probe follow.
pub async fn ca_rotation_and_retirement(store: &dyn Store) {
    let ns = Ns(53);
    let (p, g1) = project_with_ca(store, ns, 0).await;
    let (q, _) = project_with_ca(store, ns, 1).await;
    assert_eq!((g1.generation, g1.active, g1.retired_at), (1, true, None));
    let ev = |action: &str| audit_event(&ns.actor(1), action, Some(&p), (T0 + 10) * 1000);

    let g2 = store
        .rotate_ca(&next_ca(&p, 7, 2), g1.id, &ev("ca.rotated"))
        .await
        .unwrap()
        .expect("rotating from the active CA succeeds");
    assert_eq!((g2.generation, g2.active, g2.retired_at), (2, true, None));
    assert_eq!(sans_id(g2.clone()), next_ca(&p, 7, 2));
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(g2.clone()));
    let listed = store.list_project_cas(&p).await.unwrap();
    assert_eq!(
        listed,
        vec![
            CaRecord {
                active: false,
                ..g1.clone()
            },
            g2.clone()
        ]
    );
    assert_eq!(actions_about(store, &p, "ca.rotated").await, 1);

    // From a CA that is no longer active: nothing happens, nothing is audited.
    let stale = store
        .rotate_ca(&next_ca(&p, 9, 2), g1.id, &ev("ca.rotated"))
        .await
        .unwrap();
    assert_eq!(stale, None);
    assert_eq!(store.list_project_cas(&p).await.unwrap(), listed);
    assert_eq!(actions_about(store, &p, "ca.rotated").await, 1);

    // Retirement.
    let retired_event = ev("ca.retired");
    let retire = |generation: i64, now: i64| store.retire_ca(&p, generation, now, &retired_event);
    assert_eq!(retire(2, T0 + 20).await.unwrap(), RetireOutcome::Active);
    assert_eq!(retire(3, T0 + 20).await.unwrap(), RetireOutcome::NotFound);
    let retired = CaRecord {
        active: false,
        retired_at: Some(T0 + 20),
        ..g1.clone()
    };
    assert_eq!(
        retire(1, T0 + 20).await.unwrap(),
        RetireOutcome::Retired {
            ca: retired.clone(),
            now: true
        }
    );
    assert_eq!(
        retire(1, T0 + 30).await.unwrap(),
        RetireOutcome::Retired {
            ca: retired.clone(),
            now: false
        },
        "the first retirement time stays"
    );
    assert_eq!(actions_about(store, &p, "ca.retired").await, 1);
    assert_eq!(
        store.list_project_cas(&p).await.unwrap(),
        vec![retired, g2.clone()]
    );
    // Another project's generations are untouched.
    assert_eq!(
        store
            .retire_ca(&q, 2, T0 + 20, &ev("ca.retired"))
            .await
            .unwrap(),
        RetireOutcome::NotFound
    );

    let mine: Vec<CaExpiry> = store
        .unretired_ca_expiries()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.project_id == p || e.project_id == q)
        .collect();
    let want_q = CaExpiry {
        project_id: q.clone(),
        generation: 1,
        not_after: ca(&q, 1).not_after,
    };
    let want_p = CaExpiry {
        project_id: p.clone(),
        generation: 2,
        not_after: g2.not_after,
    };
    let mut want = vec![want_p, want_q];
    want.sort_by(|a, b| a.project_id.cmp(&b.project_id));
    assert_eq!(mine, want, "retired generations are left out");

    // The last certificate a CA signed.
    assert_eq!(store.last_leaf_not_after(g2.id).await.unwrap(), None);
    for (n, end) in [(1, T0 + 500), (2, T0 + 900), (3, T0 + 700)] {
        let c = issued_by(&g2, cert(ns.serial(n), &p, "CN=ann", T0, end));
        insert_cert(store, &c).await.unwrap();
    }
    assert_eq!(
        store.last_leaf_not_after(g2.id).await.unwrap(),
        Some(T0 + 900)
    );
    assert_eq!(store.last_leaf_not_after(g1.id).await.unwrap(), None);
}

/// Two nodes rotating one project's CA at the same moment, from the same active CA, make one
/// new generation: exactly one call wins, and both nodes then see it as the active CA.
pub async fn ca_rotation_race_across_two_nodes(first: &dyn Store, second: &dyn Store) {
    let ns = Ns(54);
    for n in 0..10 {
        let (p, g1) = project_with_ca(first, ns, n).await;
        let ev = audit_event(&ns.actor(1), "ca.rotated", Some(&p), (T0 + 10) * 1000);
        let (a, b) = (next_ca(&p, 2 * n as u8, 2), next_ca(&p, 2 * n as u8 + 1, 2));
        let (ra, rb) = tokio::join!(
            first.rotate_ca(&a, g1.id, &ev),
            second.rotate_ca(&b, g1.id, &ev)
        );
        let winners: Vec<CaRecord> = [ra.unwrap(), rb.unwrap()].into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "exactly one rotation wins");
        assert_eq!(
            first.get_active_ca(&p).await.unwrap().as_ref(),
            winners.first()
        );
        assert_eq!(
            second.get_active_ca(&p).await.unwrap().as_ref(),
            winners.first()
        );
        assert_eq!(first.list_project_cas(&p).await.unwrap().len(), 2);
    }
}
