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
//!
//! One file per part of the [`Store`] trait (shared fixtures in `fixtures.rs`); this file only
//! lists them and holds the runners: [`run_all`] and [`for_each_check!`].

mod fixtures;
use fixtures::*;

mod api_keys;
mod audit;
mod cas;
mod certificates;
mod crl;
mod database_users;
mod grants;
mod misc;
mod orgs;
mod projects;
mod revocation;
mod secrets;
mod service_accounts;
mod tokens;
mod user_security;

pub use api_keys::*;
pub use audit::*;
pub use cas::*;
pub use certificates::*;
pub use crl::*;
pub use database_users::*;
pub use grants::*;
pub use misc::*;
pub use orgs::*;
pub use projects::*;
pub use revocation::*;
pub use secrets::*;
pub use service_accounts::*;
pub use tokens::*;
pub use user_security::*;

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
    certificate_needs_a_managed_user(store).await;
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
            certificate_needs_a_managed_user,
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
