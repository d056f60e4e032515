//! Persistence for dbcerts: the [`Store`] trait, its records, and its two adapters: SQLite
//! (one file, the default) and PostgreSQL (for several nodes).
//!
//! The store knows nothing of HTTP, Atlas JSON or cryptography. It keeps rows and enforces the
//! constraints that must hold across every node: unique serials, unique users, unique project
//! names per organization, and one active CA per project. Secrets arrive already sealed.

mod audit_check;
#[macro_use]
mod sql;
mod open;
mod postgres;
mod records;
mod sqlite;

pub use audit_check::{
    ChainCheck, ChainSummary, Checkpoint, CheckpointChain, checkpoint_event, root_digest,
    verify_audit_chains,
};
pub use open::{Backend, redact_url};
pub use postgres::{
    ACQUIRE_TIMEOUT as PG_ACQUIRE_TIMEOUT, CHANGE_LISTENER_APPLICATION, ChangeListener, Changed,
    PgStore,
};
pub use records::*;
pub use sqlite::{
    RowCounts, SqliteStore, checkpoint_file, lock_path, row_counts, sqlite_file, try_lock_unused,
};

use async_trait::async_trait;

/// What can go wrong in the store, in the terms callers act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write; the string names the constraint.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database cannot be reached or is too busy right now; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A per-parent limit (for example users per project) refused the write.
    #[error("limit reached")]
    LimitReached,
    /// The write refers to a row that does not exist (any more), for example a grant in a
    /// project deleted a moment before.
    #[error("referenced row is gone")]
    Gone,
    /// Anything else: a bug or corrupted data.
    #[error("store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a list: rows to skip and rows to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u32,
}

/// Counts of the SQLite store's work meant for its own threads that took the sqlx path instead
/// (docs/ARCHITECTURE.md, "Reads on the calling thread (SQLite)" and "Group commits on a
/// writer thread (SQLite)").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadSideStats {
    /// Reads that failed there (busy, an I/O error) and were run again through sqlx: zero in
    /// normal operation.
    pub read_fallbacks: u64,
    /// Reads stopped by their budget (a huge user, a deep page) and run through sqlx.
    pub reads_handed_off: u64,
    /// Group commits the writer thread could not take (its connection would not open, the
    /// thread had stopped), run through sqlx: zero in normal operation.
    pub batch_fallbacks: u64,
}

/// The persistence operations dbcerts needs. Every implementation runs the same conformance
/// tests (see `tests/conformance/mod.rs`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can be reached (what readiness checks ask).
    async fn ping(&self) -> StoreResult<()>;
    /// Closes every connection; the store must not be used afterwards.
    async fn close(&self);
    /// How often work meant for the calling thread went to sqlx instead (SQLite; zeros on
    /// PostgreSQL, which has no such path).
    async fn thread_side_stats(&self) -> ThreadSideStats;

    /// Whether no organization exists yet (a fresh store, which `serve` bootstraps).
    async fn is_empty(&self) -> StoreResult<bool>;
    /// Creates the first organization with its first API key, unless an organization exists.
    /// Returns whether it did: of several nodes bootstrapping one empty store at once, exactly
    /// one gets `true`.
    async fn bootstrap_first_org(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<bool>;
    /// Creates an organization together with its first API key, atomically.
    async fn create_org_with_key(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<()>;
    async fn get_org(&self, id: &str) -> StoreResult<Option<Org>>;

    async fn get_api_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Creates an API key together with project grants (empty for an organization key).
    async fn create_api_key(&self, key: &ApiKeyRecord, grants: &[ProjectGrant]) -> StoreResult<()>;
    async fn get_api_key_by_id(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Keys of an organization, oldest first, and their total count.
    async fn list_api_keys(
        &self,
        org_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<ApiKeyRecord>, u64)>;
    /// Replaces a key's description and organization roles. Returns whether it existed.
    async fn update_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool>;
    /// Deletes a key with its grants and access list. Returns whether it existed.
    async fn delete_api_key(&self, id: &str) -> StoreResult<bool>;
    /// A key, its grants and its access list, by public key: what authentication reads.
    async fn get_api_key_auth(&self, public_key: &str) -> StoreResult<Option<ApiKeyAuth>>;

    /// Grants of one principal, in project-id order.
    async fn list_grants(&self, principal_id: &str) -> StoreResult<Vec<ProjectGrant>>;
    /// Grants in one project, in principal-id order.
    async fn list_project_grants(&self, project_id: &str) -> StoreResult<Vec<ProjectGrant>>;
    /// Sets (replacing) the roles a principal holds in a project.
    async fn put_grant(&self, grant: &ProjectGrant) -> StoreResult<()>;
    /// Removes a principal from a project. Returns whether it was there.
    async fn delete_grant(&self, principal_id: &str, project_id: &str) -> StoreResult<bool>;

    /// Adds access-list entries; entries already present are kept as they are.
    async fn add_access_list_entries(&self, entries: &[AccessListEntry]) -> StoreResult<()>;
    /// A principal's access list, in CIDR-text order.
    async fn list_access_list(&self, principal_id: &str) -> StoreResult<Vec<AccessListEntry>>;
    async fn delete_access_list_entry(&self, principal_id: &str, cidr: &str) -> StoreResult<bool>;

    /// Creates a service account with its first secret.
    async fn create_service_account(
        &self,
        account: &ServiceAccountRecord,
        secret: &ServiceAccountSecretRecord,
    ) -> StoreResult<()>;
    async fn get_service_account(
        &self,
        client_id: &str,
    ) -> StoreResult<Option<ServiceAccountRecord>>;
    /// Service accounts of an organization, oldest first, and their total count.
    async fn list_service_accounts(
        &self,
        org_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<ServiceAccountRecord>, u64)>;
    /// Replaces name, description and organization roles. Returns whether it existed.
    async fn update_service_account(&self, account: &ServiceAccountRecord) -> StoreResult<bool>;
    /// Deletes an account with its secrets, grants and access list. Returns whether it existed.
    async fn delete_service_account(&self, client_id: &str) -> StoreResult<bool>;
    async fn add_service_account_secret(
        &self,
        secret: &ServiceAccountSecretRecord,
    ) -> StoreResult<()>;
    /// Secrets of an account, oldest first.
    async fn list_service_account_secrets(
        &self,
        client_id: &str,
    ) -> StoreResult<Vec<ServiceAccountSecretRecord>>;
    async fn delete_service_account_secret(
        &self,
        client_id: &str,
        secret_id: &str,
    ) -> StoreResult<bool>;
    /// Records that a secret was used to obtain a token.
    async fn touch_service_account_secret(&self, secret_id: &str, at: i64) -> StoreResult<()>;
    /// An account, its secrets, grants and access list: what authentication reads.
    async fn get_service_account_auth(
        &self,
        client_id: &str,
    ) -> StoreResult<Option<ServiceAccountAuth>>;

    /// Remembers a revoked access token until `expires`; forgets tokens revoked earlier that
    /// have expired by `now`.
    async fn revoke_token(&self, jti: &str, expires: i64, now: i64) -> StoreResult<()>;
    async fn is_token_revoked(&self, jti: &str) -> StoreResult<bool>;

    /// Appends an entry to the audit log, chained to the last one of its chain (its project's,
    /// or the store chain: [`AuditEntry::chain_of`]).
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<AuditEntry>;
    /// Entries with `seq > after_seq` matching `filter`, in log order (ascending `seq`, which
    /// within one chain is the chain's order), at most `limit`.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Every audit chain's recorded head (its last entry), ordered by chain (the store chain,
    /// empty, first): what `verify_audit_chains` checks each chain's end against.
    async fn audit_chain_heads(&self) -> StoreResult<Vec<AuditChainHead>>;

    /// Stores `sealed` under `name` unless a value is there already; returns the stored value.
    /// Nodes that race to create a shared secret all end up with the same one.
    async fn get_or_insert_secret(&self, name: &str, sealed: &[u8]) -> StoreResult<Vec<u8>>;

    async fn create_project(&self, project: &Project) -> StoreResult<()>;
    async fn get_project(&self, id: &str) -> StoreResult<Option<Project>>;
    /// Projects of the given organizations, oldest first, and their total count.
    async fn list_projects(
        &self,
        org_ids: &[String],
        page: Page,
    ) -> StoreResult<(Vec<Project>, u64)>;
    /// Deletes a project and everything in it. Returns whether it existed.
    async fn delete_project(&self, id: &str) -> StoreResult<bool>;

    async fn get_active_ca(&self, project_id: &str) -> StoreResult<Option<CaRecord>>;
    /// Inserts `ca` as the project's active CA unless one exists; returns the active CA, which
    /// is `ca` only if this call won.
    async fn insert_ca_if_absent(&self, ca: &CaRecord) -> StoreResult<CaRecord>;

    async fn create_database_user(&self, user: &DatabaseUserRecord) -> StoreResult<()>;
    /// Creates a user unless its project already has `max_per_project` users; the count and the
    /// insert are one atomic step, so concurrent creations cannot overshoot. A full project is
    /// `LimitReached`; an existing user is `Conflict("database user")`.
    async fn create_database_user_within_limit(
        &self,
        user: &DatabaseUserRecord,
        max_per_project: u64,
    ) -> StoreResult<()>;
    async fn get_database_user(
        &self,
        project_id: &str,
        database_name: &str,
        username: &str,
    ) -> StoreResult<Option<DatabaseUserRecord>>;
    /// Users of a project ordered by creation, and their total count.
    async fn list_database_users(
        &self,
        project_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<DatabaseUserRecord>, u64)>;
    async fn count_database_users(&self, project_id: &str) -> StoreResult<u64>;
    /// Replaces the mutable fields of an existing user. Returns whether it existed.
    async fn update_database_user(&self, user: &DatabaseUserRecord) -> StoreResult<bool>;
    async fn delete_database_user(
        &self,
        project_id: &str,
        database_name: &str,
        username: &str,
    ) -> StoreResult<bool>;

    /// Durably records a batch of writes in one transaction (one commit, so one log flush, for
    /// the whole batch: the group commit of `dbcerts_server::journal`), audit entries chained
    /// in batch order. Answers, per write and in order, whether it was recorded: a certificate
    /// that was not leaves neither row nor audit entry and does not affect the others; an audit
    /// entry alone is always recorded. An error means none was.
    async fn commit_batch(&self, batch: &[BatchWrite]) -> StoreResult<Vec<Recorded>>;

    /// Durably records one issued certificate and its audit entry. A serial that exists already
    /// is a `Conflict("certificate serial")`, a project that does not exist (any more) `Gone`.
    async fn insert_certificate(
        &self,
        cert: &CertificateRecord,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let batch = [BatchWrite::Certificate(cert.clone(), audit.clone())];
        match self.commit_batch(&batch).await?.as_slice() {
            [outcome] => outcome.into_result(),
            other => Err(StoreError::Internal(format!(
                "one certificate inserted, {} outcomes",
                other.len()
            ))),
        }
    }

    /// Certificates of (project, username) with `not_after > now` that are not revoked, oldest
    /// first (by `not_before`, then `created_ms`, then serial), and their count.
    async fn list_unexpired_certificates(
        &self,
        project_id: &str,
        username: &str,
        now: i64,
        page: Page,
    ) -> StoreResult<(Vec<CertificateSummary>, u64)>;

    /// Every CA of the project, active or not, oldest first.
    async fn list_project_cas(&self, project_id: &str) -> StoreResult<Vec<CaRecord>>;

    /// Rotation: in one write transaction, if the CA with row id `replaces` is still the
    /// project's active one, it stops being active, `ca` (generation `replaces`' + 1) is
    /// inserted as the active CA, and `audit` is appended. Returns the stored row; `None` when
    /// `replaces` is no longer active (another rotation came first) and nothing was written.
    async fn rotate_ca(
        &self,
        ca: &CaRecord,
        replaces: i64,
        audit: &AuditEvent,
    ) -> StoreResult<Option<CaRecord>>;

    /// Retires generation `generation` of the project's CA at `now`, appending `audit` in the
    /// same transaction. The active CA is refused; a retired one keeps its first time and
    /// nothing is written.
    async fn retire_ca(
        &self,
        project_id: &str,
        generation: i64,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<RetireOutcome>;

    /// The latest `not_after` of the certificates CA `ca_id` signed, if it signed any.
    async fn last_leaf_not_after(&self, ca_id: i64) -> StoreResult<Option<i64>>;

    /// Every CA generation of every project that is not retired, in (project, generation) order.
    async fn unretired_ca_expiries(&self) -> StoreResult<Vec<CaExpiry>>;

    /// The project's certificate with this serial, revoked or not, expired or not. A serial of
    /// another project is `None`.
    async fn get_certificate(
        &self,
        project_id: &str,
        serial: i64,
    ) -> StoreResult<Option<CertificateRecord>>;

    /// Revokes certificates of (project, username), in one transaction committed before it
    /// returns: with [`RevokeWhich::One`] the one with that serial (if it is this user's in this
    /// project), with [`RevokeWhich::AllUnexpired`] every one that has not expired. Returns
    /// them (oldest first, as the certificate list orders them), each with its revocation. A
    /// certificate revoked already keeps its first time and reason and is returned as it is;
    /// each one revoked now gets `revocation` and one audit entry, in the same transaction:
    /// `audit` with the certificate's `serial` added to its `details` object. An empty result
    /// means no such certificate.
    async fn revoke_certificates(
        &self,
        project_id: &str,
        username: &str,
        which: RevokeWhich,
        revocation: Revocation,
        audit: &AuditEvent,
    ) -> StoreResult<Vec<CertificateRecord>>;

    /// Deletes a database user, as [`Store::delete_database_user`] does. With `revoke`, when
    /// the user deleted was a `MANAGED` X.509 user, also revokes every certificate of that
    /// username unexpired at `revocation.at`, in the same transaction, as
    /// [`Store::revoke_certificates`] with [`RevokeWhich::AllUnexpired`] does (one audit entry
    /// per certificate revoked now). Returns whether the user existed, and those certificates.
    async fn delete_database_user_revoking(
        &self,
        project_id: &str,
        database_name: &str,
        username: &str,
        revoke: Option<(Revocation, &AuditEvent)>,
    ) -> StoreResult<(bool, Vec<CertificateRecord>)>;

    /// Every certificate of (project, username), expired and revoked ones included, in the
    /// order of [`Store::list_unexpired_certificates`], and their count.
    async fn list_user_certificates(
        &self,
        project_id: &str,
        username: &str,
        page: Page,
    ) -> StoreResult<(Vec<CertificateRecord>, u64)>;

    /// Serial and revocation of each revoked certificate that CA `ca_id` signed and that has
    /// not expired at `now` (`not_after > now`), in serial order: what that CA's CRL lists.
    async fn list_revoked_unexpired(
        &self,
        ca_id: i64,
        now: i64,
    ) -> StoreResult<Vec<(i64, Revocation)>>;

    /// Per project, the certificates with `now < not_after <= soon` and with
    /// `now < not_after <= later`, for projects that have any of the latter; in project-id
    /// order.
    async fn expiring_certificates(
        &self,
        now: i64,
        soon: i64,
        later: i64,
    ) -> StoreResult<Vec<ExpiringCount>>;

    async fn get_user_security(&self, project_id: &str) -> StoreResult<UserSecurityRecord>;
    async fn put_user_security(
        &self,
        project_id: &str,
        record: &UserSecurityRecord,
    ) -> StoreResult<()>;

    /// The CRL state of CA `ca_id` (a `project_cas` row): revision 0 and nothing published
    /// when the CA has neither revoked anything nor published a CRL.
    async fn get_crl_state(&self, ca_id: i64) -> StoreResult<CrlState>;
    /// Stores `crl` as CA `ca_id`'s CRL only if its number is one more than the number
    /// published now (0 when none): of several nodes building the same next CRL, exactly one
    /// publishes it (`true`) and the others get `false` and read the winner's. Two different
    /// CRLs of one CA never share a number.
    async fn publish_crl(&self, ca_id: i64, crl: &PublishedCrl) -> StoreResult<bool>;
    /// The projects with a CA, not expired at `now`, whose published CRL is out of date: built
    /// before the latest revocation, or past its `refresh_at` (CAs that never published a CRL
    /// do not count). Each project once, in id order.
    async fn list_projects_with_crls_due(&self, now: i64) -> StoreResult<Vec<String>>;
    /// The token of the project's CRL distribution URL: the stored one, or `new_token` stored
    /// now if the project has none (of racing callers, all get the one stored first).
    async fn crl_distribution_token(
        &self,
        project_id: &str,
        new_token: &str,
    ) -> StoreResult<String>;
    /// The project whose CRL distribution token is `token`, if any.
    async fn project_of_crl_token(&self, token: &str) -> StoreResult<Option<String>>;
}
