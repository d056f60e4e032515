//! The SQL both adapters share, one file per area of the [`Store`](crate::Store) trait.
//!
//! Each backend module defines `Db`, `DbRow` and `DbConn` (its sqlx database, row and
//! connection types), `map_err` (its error classification), `NEXT_AUDIT_SEQ` (the SQL
//! expression of the next audit `seq`), `AUDIT_CHAIN_COLUMN` and `AUDIT_CHAIN_VALUE` (where and
//! how an audit entry's chain is written), `PRUNE_NONCE_COUNTS` (the statement that removes expired
//! Digest nonce counts without waiting) and a `write_tx` method (a transaction holding the
//! [`WriteLock`]s it is given), then expands `sql_store!` for its store type. Statements use `$N` placeholders, which SQLite and PostgreSQL both accept, and only SQL
//! both dialects run the same way.
//!
//! The statements are written once but run on each backend's own types, so the code around
//! them is a macro expanded once per backend. `Store` is an `#[async_trait]` trait, and
//! `#[async_trait]` rewrites only the `async fn`s it sees in the `impl` block, not what a macro
//! call inside the block would expand to; so every area's methods must reach one
//! `impl Store` block as plain tokens. Each area file therefore holds one macro (`sql_orgs!`,
//! `sql_api_keys!`, …) that expands to the area's helper functions and then calls
//! `sql_impl!` with its trait methods appended to those gathered so far and the areas still
//! to come; when none is left, `sql_impl!` writes the single `#[async_trait] impl Store`.
//!
//! Rows become records through `sqlx::FromRow` derives: on the records themselves where the
//! columns are the fields, otherwise on the area's private row type, whose `TryFrom`
//! conversion checks what a column type cannot (JSON role lists, revocation codes).

#[macro_use]
pub(crate) mod shared;

/// What a write transaction locks before its first statement, so that what it reads cannot go
/// stale before it writes (docs/ARCHITECTURE.md, "Audit chains and PostgreSQL write locks").
/// SQLite's `BEGIN IMMEDIATE` locks the whole store for every transaction, so only PostgreSQL
/// tells them apart: one transaction-scoped advisory lock each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteLock<'a> {
    /// An audit chain (a project id, or empty for the store chain). A project's chain lock is
    /// also the lock of what must not change under a check of that project (the user limit, the
    /// active CA); the store chain's, of the first organization.
    Chain(&'a str),
    /// One CA's CRL number.
    Crl(i64),
}

impl WriteLock<'_> {
    /// The advisory-lock key: the first 8 bytes of a SHA-256 of the lock's kind and name. Two
    /// locks that share a key (a 2⁻⁶⁴ chance) only wait for each other.
    pub(crate) fn key(&self) -> i64 {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        match self {
            WriteLock::Chain(chain) => {
                h.update(b"dbcerts-lock-chain\0");
                h.update(chain.as_bytes());
            }
            WriteLock::Crl(ca_id) => {
                h.update(b"dbcerts-lock-crl\0");
                h.update(ca_id.to_be_bytes());
            }
        }
        let digest = h.finalize();
        i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    /// The keys of `locks`, sorted and without repeats: every transaction takes its locks in
    /// this one order, so that two cannot wait for each other.
    pub(crate) fn keys(locks: &[WriteLock<'_>]) -> Vec<i64> {
        let mut keys: Vec<i64> = locks.iter().map(WriteLock::key).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}
#[macro_use]
pub(crate) mod orgs;
#[macro_use]
pub(crate) mod api_keys;
#[macro_use]
pub(crate) mod grants;
#[macro_use]
pub(crate) mod service_accounts;
#[macro_use]
pub(crate) mod projects;
#[macro_use]
pub(crate) mod database_users;
#[macro_use]
pub(crate) mod certificates;
#[macro_use]
pub(crate) mod cas;
#[macro_use]
pub(crate) mod revocation;
#[macro_use]
pub(crate) mod crls;
#[macro_use]
pub(crate) mod audit;
#[macro_use]
pub(crate) mod server;

/// Gathers the trait methods: `sql_impl!(Store [methods so far] next_area later_areas…)`
/// expands `next_area!`, which appends its methods and calls back with the rest; with no area
/// left, the one `#[async_trait] impl Store`.
macro_rules! sql_impl {
    ($store:ident [$($methods:tt)*]) => {
        #[async_trait]
        impl Store for $store {
            $($methods)*
        }
    };
    ($store:ident [$($methods:tt)*] $area:ident $($rest:ident)*) => {
        $area!($store [$($methods)*] $($rest)*);
    };
}

/// The whole `Store` implementation for `$store`, from every area's SQL.
macro_rules! sql_store {
    ($store:ident) => {
        sql_shared!($store);
        sql_impl!($store []
            sql_server sql_orgs sql_api_keys sql_grants sql_service_accounts sql_audit
            sql_projects sql_cas sql_database_users sql_certificates sql_revocation sql_crls
        );
    };
}
