//! Persistence for dbcerts: the [`Store`] trait, its records, and the SQLite adapter.
//!
//! The store knows nothing of HTTP, Atlas JSON or cryptography. It keeps rows and enforces the
//! constraints that must hold across every node: unique serials, unique users, unique project
//! names per organization, and one active CA per project. Secrets arrive already sealed.

mod records;
mod sqlite;

pub use records::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// What can go wrong in the store, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
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

/// The persistence operations dbcerts needs. Every implementation runs the same conformance
/// tests (see `tests/conformance.rs`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether no organization exists yet (a fresh store, which `serve` bootstraps).
    async fn is_empty(&self) -> StoreResult<bool>;
    /// Creates an organization together with its first API key, atomically.
    async fn create_org_with_key(&self, org: &Org, key: &ApiKeyRecord) -> StoreResult<()>;
    async fn get_org(&self, id: &str) -> StoreResult<Option<Org>>;

    async fn get_api_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>>;

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

    /// Durably records an issued certificate. A serial that exists already is a
    /// `Conflict("certificate serial")`.
    async fn insert_certificate(&self, cert: &CertificateRecord) -> StoreResult<()>;
    /// Certificates of (project, username) with `not_after > now`, oldest first (by `not_before`,
    /// then `created_ms`, then serial), and their count.
    async fn list_unexpired_certificates(
        &self,
        project_id: &str,
        username: &str,
        now: i64,
        page: Page,
    ) -> StoreResult<(Vec<CertificateSummary>, u64)>;

    async fn get_user_security(&self, project_id: &str) -> StoreResult<UserSecurityRecord>;
    async fn put_user_security(
        &self,
        project_id: &str,
        record: &UserSecurityRecord,
    ) -> StoreResult<()>;
}
