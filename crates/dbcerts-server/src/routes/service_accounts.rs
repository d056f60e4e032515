//! Service accounts (OAuth 2.0 clients), API version 2024-08-05: `/orgs/{orgId}/serviceAccounts`
//! (create, list, get, update, delete, secrets, access list, project assignments) and
//! `/groups/{groupId}/serviceAccounts` (create in a project, list, get, update roles, remove,
//! `:invite`). A secret is shown once, in the response that creates it; only its SHA-256 is
//! stored.

use std::sync::LazyLock;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dbcerts_store::{
    AccessListEntry, ProjectGrant, ServiceAccountRecord, ServiceAccountSecretRecord,
};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::access::{
    add_entries, load_org, manage, org_roles, project_roles, remove_entry, single_address,
};
use super::api_keys::{no_content, page_of};
use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::oauth::hash_secret;
use crate::auth::{Caller, Holdings, OrgNeed, ProjectRole, Via};
use crate::body::parse_json_with;
use crate::bootstrap::new_object_id;
use crate::error::AtlasError;
use crate::format::{Shape, atlas_time};
use crate::links::{Base, Paginated};
use crate::params::{Accepts, Query};

/// The spec's pattern for names and descriptions.
static TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{N}\-_.,' ]*$").expect("valid pattern"));

/// Secret lifetimes an organization allows by default: 8 hours to 365 days.
const SECRET_HOURS: std::ops::RangeInclusive<i64> = 8..=8760;

/// `OrgServiceAccount` / `GroupServiceAccount`, keys in alphabetical order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountOut {
    client_id: String,
    created_at: String,
    description: String,
    name: String,
    roles: Vec<String>,
    secrets: Vec<SecretOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretOut {
    created_at: String,
    expires_at: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    masked_secret_value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut {
    cidr_block: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupOut {
    group_id: String,
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountIn {
    name: Option<String>,
    description: Option<String>,
    roles: Option<Vec<String>>,
    secret_expires_after_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretIn {
    secret_expires_after_hours: Option<i64>,
}

#[derive(Deserialize)]
struct RolesIn {
    roles: Option<Vec<String>>,
}

fn secret_out(s: &ServiceAccountSecretRecord, shown: Option<&str>) -> SecretOut {
    SecretOut {
        created_at: atlas_time(s.created),
        expires_at: atlas_time(s.expires),
        id: s.id.clone(),
        last_used_at: s.last_used.map(atlas_time),
        masked_secret_value: s.masked.clone(),
        secret: shown.map(str::to_owned),
    }
}

fn account_out(
    a: &ServiceAccountRecord,
    roles: Vec<String>,
    secrets: &[ServiceAccountSecretRecord],
    shown: Option<(&str, &str)>,
) -> AccountOut {
    AccountOut {
        client_id: a.client_id.clone(),
        created_at: atlas_time(a.created),
        description: a.description.clone(),
        name: a.name.clone(),
        roles,
        secrets: secrets
            .iter()
            .map(|s| secret_out(s, shown.filter(|(id, _)| *id == s.id).map(|(_, v)| v)))
            .collect(),
    }
}

fn check_text(attr: &str, value: &str, max: usize) -> Result<(), AtlasError> {
    let n = value.chars().count();
    if (1..=max).contains(&n) && TEXT.is_match(value) {
        Ok(())
    } else {
        Err(AtlasError::invalid_attribute(attr))
    }
}

fn secret_hours(hours: Option<i64>) -> Result<i64, AtlasError> {
    let h = hours.ok_or_else(|| AtlasError::missing_attribute("secretExpiresAfterHours"))?;
    if SECRET_HOURS.contains(&h) {
        Ok(h)
    } else {
        Err(AtlasError::invalid_attribute("secretExpiresAfterHours"))
    }
}

/// A new secret for `client_id`: the record to store and the value to show once.
fn new_secret(
    client_id: &str,
    hours: i64,
) -> (ServiceAccountSecretRecord, zeroize::Zeroizing<String>) {
    let mut raw = zeroize::Zeroizing::new([0u8; 30]);
    dbcerts_ca::fill_random(raw.as_mut());
    let value = zeroize::Zeroizing::new(format!(
        "mdb_sa_sk_{}",
        URL_SAFE_NO_PAD.encode(raw.as_ref())
    ));
    let tail: String = value[value.len() - 4..].to_owned();
    let now = chrono::Utc::now().timestamp();
    let record = ServiceAccountSecretRecord {
        id: new_object_id(),
        client_id: client_id.to_owned(),
        secret_hash: hash_secret(&value),
        masked: format!("mdb_sa_sk_...{tail}"),
        created: now,
        expires: now + hours * 3600,
        last_used: None,
    };
    (record, value)
}

fn new_client_id() -> String {
    format!("mdb_sa_id_{}", new_object_id())
}

/// Validates a create body; returns (name, description, roles, hours).
fn create_input(
    bytes: &[u8],
    roles_of: fn(Vec<String>, bool) -> Result<Vec<String>, AtlasError>,
) -> Result<(String, String, Vec<String>, i64), AtlasError> {
    let input: AccountIn = parse_json_with(bytes, &["roles"])?;
    let name = input
        .name
        .ok_or_else(|| AtlasError::missing_attribute("name"))?;
    let description = input
        .description
        .ok_or_else(|| AtlasError::missing_attribute("description"))?;
    check_text("name", &name, 64)?;
    check_text("description", &description, 250)?;
    let roles = roles_of(
        input
            .roles
            .ok_or_else(|| AtlasError::missing_attribute("roles"))?,
        true,
    )?;
    let hours = secret_hours(input.secret_expires_after_hours)?;
    Ok((name, description, roles, hours))
}

/// Service account `client_id` of organization `org_id`; another organization's is not found.
async fn load_account(
    state: &AppState,
    org_id: &str,
    client_id: &str,
) -> Result<ServiceAccountRecord, AtlasError> {
    state
        .inner
        .store
        .get_service_account(client_id)
        .await?
        .filter(|a| a.org_id == org_id)
        .ok_or_else(|| AtlasError::resource_not_found(&format!("service account {client_id}")))
}

/// Loads account `client_id` of organization `org_id` for a call that reveals a secret of it or
/// alters it, through the gate (`access::manage`): 403 unless the caller may manage it `via`
/// that path.
async fn manage_account(
    state: &AppState,
    caller: &Caller,
    via: Via<'_>,
    org_id: &str,
    client_id: &str,
) -> Result<(ServiceAccountRecord, Holdings), AtlasError> {
    let a = load_account(state, org_id, client_id).await?;
    let held = manage(state, caller, via, &a.client_id, &a.org_id, &a.org_roles).await?;
    Ok((a, held))
}

async fn secrets_of(
    state: &AppState,
    client_id: &str,
) -> Result<Vec<ServiceAccountSecretRecord>, AtlasError> {
    Ok(state
        .inner
        .store
        .list_service_account_secrets(client_id)
        .await?)
}

/// `POST /orgs/{orgId}/serviceAccounts`, Organization Owner. 201 with the secret shown.
pub async fn create_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(org_id): AtlasPath<String>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::Entity)?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let (name, description, roles, hours) = create_input(&bytes, org_roles)?;
    caller.may_manage(Via::Org, &Holdings::new(&org.id, roles.clone(), Vec::new()))?;
    let account = ServiceAccountRecord {
        client_id: new_client_id(),
        org_id: org.id,
        name,
        description,
        org_roles: roles,
        created: chrono::Utc::now().timestamp(),
    };
    let (secret, value) = new_secret(&account.client_id, hours);
    state
        .inner
        .store
        .create_service_account(&account, &secret)
        .await?;
    let body = account_out(
        &account,
        account.org_roles.clone(),
        std::slice::from_ref(&secret),
        Some((&secret.id, &value)),
    );
    Ok(base.respond(StatusCode::CREATED, &body, Shape::Entity, query.format))
}

/// `GET /orgs/{orgId}/serviceAccounts`, Organization Read Only.
pub async fn list_org_service_accounts(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(org_id): AtlasPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::List)?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::ReadOnly).await?;
    let (accounts, total) = state
        .inner
        .store
        .list_service_accounts(&org.id, query.paging.page())
        .await?;
    let mut out = Vec::with_capacity(accounts.len());
    for a in &accounts {
        let secrets = secrets_of(&state, &a.client_id).await?;
        out.push(account_out(a, a.org_roles.clone(), &secrets, None));
    }
    let body = Paginated::new(
        &base,
        &["orgs", &org.id, "serviceAccounts"],
        &query.paging,
        total,
        out,
    );
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// `GET /orgs/{orgId}/serviceAccounts/{clientId}`, Organization Read Only.
pub async fn get_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::Entity)?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::ReadOnly).await?;
    let a = load_account(&state, &org.id, &client_id).await?;
    let secrets = secrets_of(&state, &a.client_id).await?;
    let body = account_out(&a, a.org_roles.clone(), &secrets, None);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, query.format))
}

/// `PATCH /orgs/{orgId}/serviceAccounts/{clientId}`, Organization Owner: partial update.
pub async fn update_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::Entity)?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let (mut a, held) = manage_account(&state, &caller, Via::Org, &org.id, &client_id).await?;
    let input: AccountIn = parse_json_with(&bytes, &["roles"])?;
    if input.secret_expires_after_hours.is_some() {
        return Err(AtlasError::invalid_attribute("secretExpiresAfterHours"));
    }
    if let Some(name) = input.name {
        check_text("name", &name, 64)?;
        a.name = name;
    }
    if let Some(d) = input.description {
        check_text("description", &d, 250)?;
        a.description = d;
    }
    if let Some(roles) = input.roles {
        a.org_roles = org_roles(roles, true)?;
        caller.may_manage(Via::Org, &held.with_org_roles(&a.org_roles))?;
    }
    state.inner.store.update_service_account(&a).await?;
    let secrets = secrets_of(&state, &a.client_id).await?;
    let body = account_out(&a, a.org_roles.clone(), &secrets, None);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, query.format))
}

/// `DELETE /orgs/{orgId}/serviceAccounts/{clientId}`, Organization Owner: the account, its
/// secrets (so its tokens stop working), grants and access list. 204.
pub async fn delete_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    Query::parse(q.as_deref(), Accepts::Entity)?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let (a, _) = manage_account(&state, &caller, Via::Org, &org.id, &client_id).await?;
    state
        .inner
        .store
        .delete_service_account(&a.client_id)
        .await?;
    Ok(no_content())
}

/// `GET /orgs/{orgId}/serviceAccounts/{clientId}/groups`, Organization Read Only.
pub async fn list_service_account_groups(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::List)?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::ReadOnly).await?;
    let a = load_account(&state, &org.id, &client_id).await?;
    let grants = state.inner.store.list_grants(&a.client_id).await?;
    let out: Vec<GroupOut> = query
        .paging
        .slice(&grants)
        .iter()
        .map(|g| GroupOut {
            group_id: g.project_id.clone(),
            roles: g.roles.clone(),
        })
        .collect();
    let body = Paginated::new(
        &base,
        &["orgs", &org.id, "serviceAccounts", &a.client_id, "groups"],
        &query.paging,
        grants.len() as u64,
        out,
    );
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// Where a secret or access-list operation was addressed: the organization's path, or a
/// project's, where the account must be assigned to the project.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Org(&'a str),
    Group(&'a str),
}

impl Scope<'_> {
    /// `orgs/{orgId}` or `groups/{groupId}`, then `serviceAccounts/{clientId}/<tail>`.
    fn segments<'s>(&'s self, client_id: &'s str, tail: &'s str) -> [&'s str; 5] {
        match self {
            Scope::Org(id) => ["orgs", id, "serviceAccounts", client_id, tail],
            Scope::Group(id) => ["groups", id, "serviceAccounts", client_id, tail],
        }
    }
}

/// What a secret or access-list call does with the account.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    Read,
    /// Reveals a new secret or alters the account: through the gate (`access::manage`).
    Manage,
}

/// The account `client_id` for a caller who needs `org_need` (organization paths) or
/// `project_need` (project paths) there, and who may manage it if `intent` says so.
async fn scoped_account(
    state: &AppState,
    caller: &Caller,
    scope: Scope<'_>,
    client_id: &str,
    (org_need, project_need): (OrgNeed, ProjectRole),
    intent: Intent,
) -> Result<ServiceAccountRecord, AtlasError> {
    let (a, via) = match scope {
        Scope::Org(org_id) => {
            let org = load_org(state, caller, org_id, org_need).await?;
            (load_account(state, &org.id, client_id).await?, Via::Org)
        }
        Scope::Group(group_id) => {
            let (id, project) = load_project(state, caller, group_id, &[project_need]).await?;
            let a = load_account(state, &project.org_id, client_id).await?;
            project_grant(state, &a.client_id, id.as_str()).await?;
            (a, Via::Project(group_id))
        }
    };
    if intent == Intent::Manage {
        manage(state, caller, via, &a.client_id, &a.org_id, &a.org_roles).await?;
    }
    Ok(a)
}

/// Creates a secret (201, shown once): Organization Owner, or Project Owner on project paths.
async fn create_secret(
    state: &AppState,
    caller: &Caller,
    base: &Base,
    scope: Scope<'_>,
    client_id: &str,
    q: Option<&str>,
    bytes: &[u8],
) -> Result<Response, AtlasError> {
    let query = Query::parse(q, Accepts::Entity)?;
    let a = scoped_account(
        state,
        caller,
        scope,
        client_id,
        (OrgNeed::Owner, ProjectRole::Owner),
        Intent::Manage,
    )
    .await?;
    let input: SecretIn = parse_json_with(bytes, &[])?;
    let hours = secret_hours(input.secret_expires_after_hours)?;
    let (secret, value) = new_secret(&a.client_id, hours);
    state
        .inner
        .store
        .add_service_account_secret(&secret)
        .await?;
    let body = secret_out(&secret, Some(&value));
    Ok(base.respond(StatusCode::CREATED, &body, Shape::Entity, query.format))
}

/// Deletes a secret; tokens obtained with it stop working. 204.
async fn delete_secret(
    state: &AppState,
    caller: &Caller,
    scope: Scope<'_>,
    client_id: &str,
    secret_id: &str,
    q: Option<&str>,
) -> Result<Response, AtlasError> {
    Query::parse(q, Accepts::Entity)?;
    let a = scoped_account(
        state,
        caller,
        scope,
        client_id,
        (OrgNeed::Owner, ProjectRole::Owner),
        Intent::Manage,
    )
    .await?;
    if !state
        .inner
        .store
        .delete_service_account_secret(&a.client_id, secret_id)
        .await?
    {
        return Err(AtlasError::resource_not_found(&format!(
            "secret {secret_id}"
        )));
    }
    Ok(no_content())
}

fn sa_entry_out(e: &AccessListEntry) -> EntryOut {
    EntryOut {
        cidr_block: e.cidr_block.clone(),
        created_at: atlas_time(e.created),
        ip_address: single_address(&e.cidr_block),
    }
}

/// Lists the access list: Organization Read Only, or Project Read Only on project paths.
async fn list_access(
    state: &AppState,
    caller: &Caller,
    base: &Base,
    scope: Scope<'_>,
    client_id: &str,
    q: Option<&str>,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q, Accepts::List)?;
    let a = scoped_account(
        state,
        caller,
        scope,
        client_id,
        (OrgNeed::ReadOnly, ProjectRole::ReadOnly),
        Intent::Read,
    )
    .await?;
    let list = state.inner.store.list_access_list(&a.client_id).await?;
    let segs = scope.segments(&a.client_id, "accessList");
    let body = page_of(base, &segs, &query, &list, sa_entry_out);
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// Adds up to 200 entries and returns the whole list (200): Organization Owner, or Project
/// Access Manager on project paths.
async fn create_access(
    state: &AppState,
    caller: &Caller,
    base: &Base,
    scope: Scope<'_>,
    client_id: &str,
    q: Option<&str>,
    bytes: &[u8],
) -> Result<Response, AtlasError> {
    let query = Query::parse(q, Accepts::List)?;
    let a = scoped_account(
        state,
        caller,
        scope,
        client_id,
        (OrgNeed::Owner, ProjectRole::AccessManager),
        Intent::Manage,
    )
    .await?;
    let list = add_entries(state, &a.client_id, bytes, 200).await?;
    let segs = scope.segments(&a.client_id, "accessList");
    let body = page_of(base, &segs, &query, &list, sa_entry_out);
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// Removes an entry (not the one admitting the account's own request). 204.
async fn delete_access(
    state: &AppState,
    caller: &Caller,
    scope: Scope<'_>,
    client_id: &str,
    ip: &str,
    q: Option<&str>,
) -> Result<Response, AtlasError> {
    Query::parse(q, Accepts::Entity)?;
    let a = scoped_account(
        state,
        caller,
        scope,
        client_id,
        (OrgNeed::Owner, ProjectRole::AccessManager),
        Intent::Manage,
    )
    .await?;
    remove_entry(state, caller, &a.client_id, ip).await?;
    Ok(no_content())
}

/// `POST /orgs/{orgId}/serviceAccounts/{clientId}/secrets`, Organization Owner.
pub async fn create_service_account_secret(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let scope = Scope::Org(&org_id);
    create_secret(
        &state,
        &caller,
        &base,
        scope,
        &client_id,
        q.as_deref(),
        &bytes,
    )
    .await
}

/// `POST /groups/{groupId}/serviceAccounts/{clientId}/secrets`, Project Owner.
pub async fn create_group_service_account_secret(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let scope = Scope::Group(&group_id);
    create_secret(
        &state,
        &caller,
        &base,
        scope,
        &client_id,
        q.as_deref(),
        &bytes,
    )
    .await
}

/// `DELETE /orgs/{orgId}/serviceAccounts/{clientId}/secrets/{secretId}`, Organization Owner.
pub async fn delete_service_account_secret(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((org_id, client_id, secret_id)): AtlasPath<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    let scope = Scope::Org(&org_id);
    delete_secret(&state, &caller, scope, &client_id, &secret_id, q.as_deref()).await
}

/// `DELETE /groups/{groupId}/serviceAccounts/{clientId}/secrets/{secretId}`, Project Owner.
pub async fn delete_group_service_account_secret(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, client_id, secret_id)): AtlasPath<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    let scope = Scope::Group(&group_id);
    delete_secret(&state, &caller, scope, &client_id, &secret_id, q.as_deref()).await
}

/// `GET /orgs/{orgId}/serviceAccounts/{clientId}/accessList`, Organization Read Only.
pub async fn list_service_account_access_list(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    list_access(
        &state,
        &caller,
        &base,
        Scope::Org(&org_id),
        &client_id,
        q.as_deref(),
    )
    .await
}

/// `GET /groups/{groupId}/serviceAccounts/{clientId}/accessList`, Project Read Only.
pub async fn list_group_service_account_access_list(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    list_access(
        &state,
        &caller,
        &base,
        Scope::Group(&group_id),
        &client_id,
        q.as_deref(),
    )
    .await
}

/// `POST /orgs/{orgId}/serviceAccounts/{clientId}/accessList`, Organization Owner.
pub async fn create_service_account_access_list(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let scope = Scope::Org(&org_id);
    create_access(
        &state,
        &caller,
        &base,
        scope,
        &client_id,
        q.as_deref(),
        &bytes,
    )
    .await
}

/// `POST /groups/{groupId}/serviceAccounts/{clientId}/accessList`, Project Access Manager.
pub async fn create_group_service_account_access_list(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let scope = Scope::Group(&group_id);
    create_access(
        &state,
        &caller,
        &base,
        scope,
        &client_id,
        q.as_deref(),
        &bytes,
    )
    .await
}

/// `DELETE /orgs/{orgId}/serviceAccounts/{clientId}/accessList/{ipAddress}`, Organization Owner.
pub async fn delete_service_account_access_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((org_id, client_id, ip)): AtlasPath<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    delete_access(
        &state,
        &caller,
        Scope::Org(&org_id),
        &client_id,
        &ip,
        q.as_deref(),
    )
    .await
}

/// `DELETE /groups/{groupId}/serviceAccounts/{clientId}/accessList/{ipAddress}`, Project
/// Access Manager.
pub async fn delete_group_service_account_access_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, client_id, ip)): AtlasPath<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    delete_access(
        &state,
        &caller,
        Scope::Group(&group_id),
        &client_id,
        &ip,
        q.as_deref(),
    )
    .await
}

// ---- project service accounts ----

/// The project roles of `client_id` in `project_id`, or not found when it is not assigned.
async fn project_grant(
    state: &AppState,
    client_id: &str,
    project_id: &str,
) -> Result<ProjectGrant, AtlasError> {
    state
        .inner
        .store
        .list_grants(client_id)
        .await?
        .into_iter()
        .find(|g| g.project_id == project_id)
        .ok_or_else(|| AtlasError::resource_not_found(&format!("service account {client_id}")))
}

/// `GET /groups/{groupId}/serviceAccounts`, Project Read Only.
pub async fn list_group_service_accounts(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::List)?;
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let mut found = Vec::new();
    for g in state.inner.store.list_project_grants(id.as_str()).await? {
        if let Some(a) = state
            .inner
            .store
            .get_service_account(&g.principal_id)
            .await?
        {
            found.push((a, g.roles));
        }
    }
    found.sort_by(|(a, _), (b, _)| (a.created, &a.client_id).cmp(&(b.created, &b.client_id)));
    let mut out = Vec::new();
    for (a, roles) in query.paging.slice(&found) {
        let secrets = secrets_of(&state, &a.client_id).await?;
        out.push(account_out(a, roles.clone(), &secrets, None));
    }
    let body = Paginated::new(
        &base,
        &["groups", id.as_str(), "serviceAccounts"],
        &query.paging,
        found.len() as u64,
        out,
    );
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// `POST /groups/{groupId}/serviceAccounts`, Project Owner: a new account, Organization
/// Member, with the given project roles here. 201 with the secret shown.
pub async fn create_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::Entity)?;
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let (name, description, roles, hours) = create_input(&bytes, project_roles)?;
    let account = ServiceAccountRecord {
        client_id: new_client_id(),
        org_id: project.org_id.clone(),
        name,
        description,
        org_roles: vec!["ORG_MEMBER".to_owned()],
        created: chrono::Utc::now().timestamp(),
    };
    let new = Holdings::project_member(&account.org_id, &account.client_id, id.as_str(), &roles);
    caller.may_manage(Via::Project(id.as_str()), &new)?;
    let (secret, value) = new_secret(&account.client_id, hours);
    state
        .inner
        .store
        .create_service_account(&account, &secret)
        .await?;
    state
        .inner
        .store
        .put_grant(&ProjectGrant {
            principal_id: account.client_id.clone(),
            project_id: id.as_str().to_owned(),
            roles: roles.clone(),
        })
        .await?;
    let body = account_out(
        &account,
        roles,
        std::slice::from_ref(&secret),
        Some((&secret.id, &value)),
    );
    Ok(base.respond(StatusCode::CREATED, &body, Shape::Entity, query.format))
}

/// `GET /groups/{groupId}/serviceAccounts/{clientId}`, Project Read Only.
pub async fn get_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::Entity)?;
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let a = load_account(&state, &project.org_id, &client_id).await?;
    let grant = project_grant(&state, &a.client_id, id.as_str()).await?;
    let secrets = secrets_of(&state, &a.client_id).await?;
    let body = account_out(&a, grant.roles, &secrets, None);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, query.format))
}

/// `PATCH /groups/{groupId}/serviceAccounts/{clientId}`, Project Owner: name, description, and
/// the project roles here.
pub async fn update_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let query = Query::parse(q.as_deref(), Accepts::Entity)?;
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let via = Via::Project(id.as_str());
    let mut a = load_account(&state, &project.org_id, &client_id).await?;
    let mut grant = project_grant(&state, &a.client_id, id.as_str()).await?;
    let held = manage(&state, &caller, via, &a.client_id, &a.org_id, &a.org_roles).await?;
    let input: AccountIn = parse_json_with(&bytes, &["roles"])?;
    if input.secret_expires_after_hours.is_some() {
        return Err(AtlasError::invalid_attribute("secretExpiresAfterHours"));
    }
    if let Some(name) = input.name {
        check_text("name", &name, 64)?;
        a.name = name;
    }
    if let Some(d) = input.description {
        check_text("description", &d, 250)?;
        a.description = d;
    }
    if let Some(roles) = input.roles {
        grant.roles = project_roles(roles, true)?;
        caller.may_manage(
            via,
            &held.with_grant(&a.client_id, id.as_str(), &grant.roles),
        )?;
        state.inner.store.put_grant(&grant).await?;
    }
    state.inner.store.update_service_account(&a).await?;
    let secrets = secrets_of(&state, &a.client_id).await?;
    let body = account_out(&a, grant.roles, &secrets, None);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, query.format))
}

/// `DELETE /groups/{groupId}/serviceAccounts/{clientId}`, Project Owner: removes the account
/// from this project only; it stays in the organization with working credentials. 204.
pub async fn delete_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, AtlasError> {
    Query::parse(q.as_deref(), Accepts::Entity)?;
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let via = Via::Project(id.as_str());
    let (a, _) = manage_account(&state, &caller, via, &project.org_id, &client_id).await?;
    if !state
        .inner
        .store
        .delete_grant(&a.client_id, id.as_str())
        .await?
    {
        return Err(AtlasError::resource_not_found(&format!(
            "service account {client_id}"
        )));
    }
    Ok(no_content())
}

/// `POST /groups/{groupId}/serviceAccounts/{clientId}:invite`, Organization Owner: assigns
/// the account to the project with the given roles. 200.
pub async fn invite_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    // The route is `{clientId}:invite`; the router hands over the whole last segment.
    let Some(client_id) = client_id.strip_suffix(":invite").map(str::to_owned) else {
        return Err(AtlasError::resource_not_found(&format!(
            "groups/{group_id}/serviceAccounts/{client_id}"
        )));
    };
    let query = Query::parse(q.as_deref(), Accepts::Entity)?;
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    caller.require_org(&project.org_id, OrgNeed::Owner)?;
    let via = Via::Project(id.as_str());
    let (a, held) = manage_account(&state, &caller, via, &project.org_id, &client_id).await?;
    let input: RolesIn = parse_json_with(&bytes, &["roles"])?;
    let roles = project_roles(
        input
            .roles
            .ok_or_else(|| AtlasError::missing_attribute("roles"))?,
        true,
    )?;
    caller.may_manage(via, &held.with_grant(&a.client_id, id.as_str(), &roles))?;
    state
        .inner
        .store
        .put_grant(&ProjectGrant {
            principal_id: a.client_id.clone(),
            project_id: id.as_str().to_owned(),
            roles: roles.clone(),
        })
        .await?;
    let secrets = secrets_of(&state, &a.client_id).await?;
    let body = account_out(&a, roles, &secrets, None);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, query.format))
}
