//! [`MeteredStore`]: a [`Store`] that times every call of the store it wraps, into the histogram
//! `dbcerts_store_operation_duration_seconds{operation="<method name>"}`, and bounds it: a call
//! that has not finished after [`CALL_TIMEOUT`] is abandoned as `StoreError::Unavailable` (a 503),
//! so that a database that stops answering (frozen, or cut off mid-query, where its own
//! statement timeout cannot act) never holds a request open.
//!
//! Otherwise it only delegates: it never changes arguments, results or errors, retries, or
//! caches. [`crate::AppState::new`] wraps the store it is given, so every handler is covered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dbcerts_store::*;

/// Times each call of the inner store, labelled with the method name.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>) -> MeteredStore {
        MeteredStore { inner }
    }
}

/// The longest a store call may take: above PostgreSQL's lock timeout (10 s) plus the pool's
/// acquire timeout (3 s), so that those, which say more, normally answer first.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What an abandoned call answers.
trait TimedOut {
    fn timed_out(operation: &str) -> Self;
}

impl<T> TimedOut for StoreResult<T> {
    fn timed_out(operation: &str) -> Self {
        Err(StoreError::Unavailable(format!(
            "the store did not answer {operation} within {} s",
            CALL_TIMEOUT.as_secs()
        )))
    }
}

impl TimedOut for () {
    fn timed_out(_: &str) -> Self {}
}

impl TimedOut for ThreadSideStats {
    fn timed_out(_: &str) -> Self {
        ThreadSideStats::default()
    }
}

/// Implements `Store` for `MeteredStore`, one delegating, timed body per listed method. A method
/// added to the trait and not listed here fails to compile, so none goes unmeasured.
macro_rules! metered {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;)*) => {
        #[async_trait]
        impl Store for MeteredStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> $ret {
                    let started = Instant::now();
                    let out = tokio::time::timeout(CALL_TIMEOUT, self.inner.$name($($arg),*))
                        .await
                        .unwrap_or_else(|_| <$ret as TimedOut>::timed_out(stringify!($name)));
                    crate::observe::store_operation(stringify!($name), started);
                    out
                }
            )*
        }
    };
}

metered! {
    fn ping() -> StoreResult<()>;
    fn close() -> ();
    fn thread_side_stats() -> ThreadSideStats;

    fn is_empty() -> StoreResult<bool>;
    fn bootstrap_first_org(org: &Org, key: &ApiKeyRecord) -> StoreResult<bool>;
    fn create_org_with_key(org: &Org, key: &ApiKeyRecord) -> StoreResult<()>;
    fn get_org(id: &str) -> StoreResult<Option<Org>>;

    fn get_api_key(public_key: &str) -> StoreResult<Option<ApiKeyRecord>>;
    fn create_api_key(key: &ApiKeyRecord, grants: &[ProjectGrant]) -> StoreResult<()>;
    fn get_api_key_by_id(id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    fn list_api_keys(org_id: &str, page: Page) -> StoreResult<(Vec<ApiKeyRecord>, u64)>;
    fn update_api_key(key: &ApiKeyRecord) -> StoreResult<bool>;
    fn delete_api_key(id: &str) -> StoreResult<bool>;
    fn get_api_key_auth(public_key: &str) -> StoreResult<Option<ApiKeyAuth>>;

    fn list_grants(principal_id: &str) -> StoreResult<Vec<ProjectGrant>>;
    fn list_project_grants(project_id: &str) -> StoreResult<Vec<ProjectGrant>>;
    fn put_grant(grant: &ProjectGrant) -> StoreResult<()>;
    fn delete_grant(principal_id: &str, project_id: &str) -> StoreResult<bool>;

    fn add_access_list_entries(entries: &[AccessListEntry]) -> StoreResult<()>;
    fn list_access_list(principal_id: &str) -> StoreResult<Vec<AccessListEntry>>;
    fn delete_access_list_entry(principal_id: &str, cidr: &str) -> StoreResult<bool>;

    fn create_service_account(
        account: &ServiceAccountRecord,
        secret: &ServiceAccountSecretRecord,
    ) -> StoreResult<()>;
    fn get_service_account(client_id: &str) -> StoreResult<Option<ServiceAccountRecord>>;
    fn list_service_accounts(
        org_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<ServiceAccountRecord>, u64)>;
    fn update_service_account(account: &ServiceAccountRecord) -> StoreResult<bool>;
    fn delete_service_account(client_id: &str) -> StoreResult<bool>;
    fn add_service_account_secret(secret: &ServiceAccountSecretRecord) -> StoreResult<()>;
    fn list_service_account_secrets(
        client_id: &str,
    ) -> StoreResult<Vec<ServiceAccountSecretRecord>>;
    fn delete_service_account_secret(client_id: &str, secret_id: &str) -> StoreResult<bool>;
    fn touch_service_account_secret(secret_id: &str, at: i64) -> StoreResult<()>;
    fn get_service_account_auth(client_id: &str) -> StoreResult<Option<ServiceAccountAuth>>;

    fn revoke_token(jti: &str, expires: i64, now: i64) -> StoreResult<()>;
    fn is_token_revoked(jti: &str) -> StoreResult<bool>;

    fn append_audit(event: &AuditEvent) -> StoreResult<AuditEntry>;
    fn list_audit(filter: &AuditFilter, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditEntry>>;
    fn audit_chain_heads() -> StoreResult<Vec<AuditChainHead>>;

    fn get_or_insert_secret(name: &str, sealed: &[u8]) -> StoreResult<Vec<u8>>;

    fn create_project(project: &Project) -> StoreResult<()>;
    fn get_project(id: &str) -> StoreResult<Option<Project>>;
    fn list_projects(org_ids: &[String], page: Page) -> StoreResult<(Vec<Project>, u64)>;
    fn delete_project(id: &str) -> StoreResult<bool>;

    fn get_active_ca(project_id: &str) -> StoreResult<Option<CaRecord>>;
    fn insert_ca_if_absent(ca: &CaRecord) -> StoreResult<CaRecord>;

    fn get_crl_state(ca_id: i64) -> StoreResult<CrlState>;
    fn publish_crl(ca_id: i64, crl: &PublishedCrl) -> StoreResult<bool>;
    fn list_projects_with_crls_due(now: i64) -> StoreResult<Vec<String>>;
    fn crl_distribution_token(project_id: &str, new_token: &str) -> StoreResult<String>;
    fn project_of_crl_token(token: &str) -> StoreResult<Option<String>>;

    fn create_database_user(user: &DatabaseUserRecord) -> StoreResult<()>;
    fn create_database_user_within_limit(
        user: &DatabaseUserRecord,
        max_per_project: u64,
    ) -> StoreResult<()>;
    fn get_database_user(
        project_id: &str,
        database_name: &str,
        username: &str,
    ) -> StoreResult<Option<DatabaseUserRecord>>;
    fn list_database_users(
        project_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<DatabaseUserRecord>, u64)>;
    fn count_database_users(project_id: &str) -> StoreResult<u64>;
    fn update_database_user(user: &DatabaseUserRecord) -> StoreResult<bool>;
    fn delete_database_user(
        project_id: &str,
        database_name: &str,
        username: &str,
    ) -> StoreResult<bool>;

    fn commit_batch(batch: &[BatchWrite]) -> StoreResult<Vec<Recorded>>;
    fn list_unexpired_certificates(
        project_id: &str,
        username: &str,
        now: i64,
        page: Page,
    ) -> StoreResult<(Vec<CertificateSummary>, u64)>;
    fn expiring_certificates(now: i64, soon: i64, later: i64) -> StoreResult<Vec<ExpiringCount>>;
    fn list_project_cas(project_id: &str) -> StoreResult<Vec<CaRecord>>;
    fn rotate_ca(
        ca: &CaRecord,
        replaces: i64,
        audit: &AuditEvent,
    ) -> StoreResult<Option<CaRecord>>;
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
    fn delete_database_user_revoking(
        project_id: &str,
        database_name: &str,
        username: &str,
        revoke: Option<(Revocation, &AuditEvent)>,
    ) -> StoreResult<(bool, Vec<CertificateRecord>)>;
    fn list_user_certificates(
        project_id: &str,
        username: &str,
        page: Page,
    ) -> StoreResult<(Vec<CertificateRecord>, u64)>;
    fn list_revoked_unexpired(ca_id: i64, now: i64) -> StoreResult<Vec<(i64, Revocation)>>;

    fn get_user_security(project_id: &str) -> StoreResult<UserSecurityRecord>;
    fn put_user_security(project_id: &str, record: &UserSecurityRecord) -> StoreResult<()>;
}
