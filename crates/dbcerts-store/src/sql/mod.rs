//! The SQL both adapters share, one file per area of the [`Store`](crate::Store) trait.
//!
//! Each backend module defines `Db`, `DbRow` and `DbConn` (its sqlx database, row and
//! connection types), `map_err` (its error classification), `INSERT_AUDIT_ENTRY` (its audit
//! INSERT, from [`insert_audit_entry_sql!`] and its expression of the next `seq`),
//! `PRUNE_NONCE_COUNTS` (the statement that removes expired Digest nonce counts without waiting)
//! and a `write_tx` method (a transaction holding the [`WriteLock`]s it is given), then expands
//! `sql_store!` for its store type.
//!
//! The statements of a group commit and of an audit append also run on SQLite's writer thread,
//! on rusqlite: they are `const`s of their area, run by both through [`BatchConn`], and the
//! logic around them (`commit_batch_in`, `append_audit`) is written once over that trait. Statements use `$N` placeholders, which SQLite and PostgreSQL both accept, and only SQL
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

use std::future::Future;

use crate::sql::audit::{BatchAuditRow, ChainHead, ChainPlace, NewAuditRow};
use crate::{CertificateRecord, StoreResult};

/// The statements of a group commit ([`crate::Store::commit_batch`]) and of an audit append, on
/// a connection inside a write transaction: each backend's sqlx connection
/// ([`sql_batch_conn!`]), and SQLite's writer thread's rusqlite connection. Each method runs
/// one statement, whose text is a `const` both implementations use.
pub(crate) trait BatchConn: Send {
    /// [`certificates::INSERT_CERTIFICATE`]: whether the row was inserted.
    fn insert_certificate(
        &mut self,
        c: &CertificateRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// [`certificates::CERTIFICATE_REFUSAL`]: the project's rows, its users of the name, its
    /// `MANAGED` users of the name.
    fn certificate_refusal(
        &mut self,
        project_id: &str,
        username: &str,
    ) -> impl Future<Output = StoreResult<(i64, i64, i64)>> + Send;

    /// [`certificates::RECORD_NONCE_COUNT`]: whether a row was inserted or raised.
    fn record_nonce_count(
        &mut self,
        nonce: &str,
        nc: u32,
        expires: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The backend's `PRUNE_NONCE_COUNTS`.
    fn prune_nonce_counts(&mut self, before: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// [`audit::RECORDED_HEAD`] or [`audit::LAST_CHAIN_ENTRY`] (`statement`) of `chain`.
    fn chain_place(
        &mut self,
        statement: &'static str,
        chain: &str,
    ) -> impl Future<Output = StoreResult<Option<ChainPlace>>> + Send;

    /// The backend's `INSERT_AUDIT_ENTRY`: the new entry's `seq`.
    fn insert_audit_row(
        &mut self,
        row: &NewAuditRow<'_>,
    ) -> impl Future<Output = StoreResult<i64>> + Send;

    /// [`audit::SAVE_AUDIT_HEAD`].
    fn save_audit_head(
        &mut self,
        chain: &str,
        head: &ChainHead,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    // The batch-granular steps of a group commit. Each defaults to its single-row statement
    // once per row (SQLite, whose statements are calls on the same thread or the same file);
    // PostgreSQL overrides each with one multi-row statement, so that a batch costs the same
    // few round trips whatever its size (docs/ARCHITECTURE.md, "PostgreSQL's batch round
    // trips").

    /// [`Self::insert_certificate`] for each of `certs` (whose serials differ), in order:
    /// whether each was inserted.
    fn insert_certificates(
        &mut self,
        certs: &[&CertificateRecord],
    ) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        async move {
            let mut inserted = Vec::with_capacity(certs.len());
            for c in certs {
                inserted.push(self.insert_certificate(c).await?);
            }
            Ok(inserted)
        }
    }

    /// For each of `chains` (distinct), in order: its recorded head ([`audit::RECORDED_HEAD`])
    /// and its last entry ([`audit::LAST_CHAIN_ENTRY`]).
    fn chain_places(
        &mut self,
        chains: &[&str],
    ) -> impl Future<Output = StoreResult<Vec<(Option<ChainPlace>, Option<ChainPlace>)>>> + Send
    {
        async move {
            let mut places = Vec::with_capacity(chains.len());
            for chain in chains {
                let recorded = self.chain_place(audit::RECORDED_HEAD, chain).await?;
                let last = self.chain_place(audit::LAST_CHAIN_ENTRY, chain).await?;
                places.push((recorded, last));
            }
            Ok(places)
        }
    }

    /// Inserts `rows` with `seq`s ascending in their order: their `seq`s.
    fn insert_audit_rows(
        &mut self,
        rows: &[BatchAuditRow<'_>],
    ) -> impl Future<Output = StoreResult<Vec<i64>>> + Send {
        async move {
            let mut seqs: Vec<i64> = Vec::with_capacity(rows.len());
            for row in rows {
                let seq = self
                    .insert_audit_row(&NewAuditRow {
                        chain: row.chain,
                        chain_seq: row.chain_seq,
                        prev_seq: row.prev.resolve(&seqs),
                        event: &row.event,
                        prev_hash: &row.prev_hash,
                        hash: &row.hash,
                    })
                    .await?;
                seqs.push(seq);
            }
            Ok(seqs)
        }
    }

    /// [`Self::save_audit_head`] for each of `heads` (distinct chains).
    fn save_audit_heads(
        &mut self,
        heads: &[(&str, ChainHead)],
    ) -> impl Future<Output = StoreResult<()>> + Send {
        async move {
            for (chain, head) in heads {
                self.save_audit_head(chain, head).await?;
            }
            Ok(())
        }
    }
}

/// [`BatchConn`] on the backend's sqlx connection.
macro_rules! sql_batch_conn {
    ($($batch:tt)*) => {
        impl crate::sql::BatchConn for DbConn {
            $($batch)*

            async fn insert_certificate(&mut self, c: &CertificateRecord) -> StoreResult<bool> {
                let done = sqlx::query(crate::sql::certificates::INSERT_CERTIFICATE)
                    .bind(c.serial)
                    .bind(&c.project_id)
                    .bind(&c.username)
                    .bind(&c.subject)
                    .bind(c.not_before)
                    .bind(c.not_after)
                    .bind(c.created_ms)
                    .bind(&c.cert_der)
                    .bind(c.ca_id)
                    .bind(c.revocation.map(|r| r.at))
                    .bind(c.revocation.map(|r| i64::from(r.reason.code())))
                    .execute(&mut *self)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn certificate_refusal(
                &mut self,
                project_id: &str,
                username: &str,
            ) -> StoreResult<(i64, i64, i64)> {
                sqlx::query_as(crate::sql::certificates::CERTIFICATE_REFUSAL)
                    .bind(project_id)
                    .bind(username)
                    .fetch_one(&mut *self)
                    .await
                    .map_err(map_err)
            }

            async fn record_nonce_count(
                &mut self,
                nonce: &str,
                nc: u32,
                expires: i64,
            ) -> StoreResult<bool> {
                let done = sqlx::query(crate::sql::certificates::RECORD_NONCE_COUNT)
                    .bind(nonce)
                    .bind(i64::from(nc))
                    .bind(expires)
                    .execute(&mut *self)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_nonce_counts(&mut self, before: i64) -> StoreResult<()> {
                sqlx::query(PRUNE_NONCE_COUNTS)
                    .bind(before)
                    .execute(&mut *self)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn chain_place(
                &mut self,
                statement: &'static str,
                chain: &str,
            ) -> StoreResult<Option<crate::sql::audit::ChainPlace>> {
                sqlx::query_as(statement)
                    .bind(chain)
                    .fetch_optional(&mut *self)
                    .await
                    .map_err(map_err)
            }

            async fn insert_audit_row(
                &mut self,
                row: &crate::sql::audit::NewAuditRow<'_>,
            ) -> StoreResult<i64> {
                let event = row.event;
                sqlx::query_scalar(INSERT_AUDIT_ENTRY)
                    .bind(row.chain)
                    .bind(row.chain_seq)
                    .bind(row.prev_seq)
                    .bind(event.at_ms)
                    .bind(&event.actor)
                    .bind(&event.source_ip)
                    .bind(&event.action)
                    .bind(&event.project_id)
                    .bind(&event.target)
                    .bind(event.status.map(i64::from))
                    .bind(&event.details)
                    .bind(row.prev_hash)
                    .bind(row.hash)
                    .fetch_one(&mut *self)
                    .await
                    .map_err(map_err)
            }

            async fn save_audit_head(
                &mut self,
                chain: &str,
                head: &crate::sql::audit::ChainHead,
            ) -> StoreResult<()> {
                sqlx::query(crate::sql::audit::SAVE_AUDIT_HEAD)
                    .bind(chain)
                    .bind(head.chain_seq)
                    .bind(head.seq)
                    .bind(&head.hash)
                    .execute(&mut *self)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }
    };
}

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

/// The whole `Store` implementation for `$store`, from every area's SQL; the methods in braces
/// after it, if any, override [`BatchConn`]'s batch-granular defaults for its connection.
macro_rules! sql_store {
    ($store:ident $({ $($batch:tt)* })?) => {
        sql_shared!($store);
        sql_batch_conn!($($($batch)*)?);
        sql_impl!($store []
            sql_server sql_orgs sql_api_keys sql_grants sql_service_accounts sql_audit
            sql_projects sql_cas sql_database_users sql_certificates sql_revocation sql_crls
        );
    };
}
