//! Service accounts (OAuth 2.0 clients), API version 2024-08-05: `/orgs/{orgId}/serviceAccounts`
//! (create, list, get, update, delete, secrets, access list, project assignments) and
//! `/groups/{groupId}/serviceAccounts` (create in a project, list, get, update roles, remove,
//! `:invite`). A secret is shown once, in the response that creates it; only its SHA-256 is
//! stored.

use std::sync::LazyLock;

use axum::extract::State;
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
use super::{AtlasBody, AtlasPath, Scope, load_project};
use crate::AppState;
use crate::auth::oauth::hash_secret;
use crate::auth::{Caller, Holdings, OrgNeed, ProjectRole, Via};
use crate::body::parse_json_with;
use crate::bootstrap::new_object_id;
use crate::error::AtlasError;
use crate::format::{Shape, atlas_time};
use crate::links::{Base, Paginated};
use crate::openapi::ATLAS_2023;
use crate::params::{EntityParams, EntityQuery, GroupPath, ListParams, ListQuery, OrgPath};

/// The spec's pattern for names and descriptions.
static TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{N}\-_.,' ]*$").expect("valid pattern"));

/// Secret lifetimes an organization allows by default: 8 hours to 365 days.
const SECRET_HOURS: std::ops::RangeInclusive<i64> = 8..=8760;

/// `OrgServiceAccount` / `GroupServiceAccount`, keys in alphabetical order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ServiceAccount)]
pub struct AccountOut {
    client_id: String,
    created_at: String,
    description: String,
    name: String,
    roles: Vec<String>,
    secrets: Vec<SecretOut>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ServiceAccountSecret)]
pub struct SecretOut {
    created_at: String,
    expires_at: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    masked_secret_value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ServiceAccountIPAccessListEntry)]
pub struct EntryOut {
    cidr_block: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ServiceAccountProject)]
pub struct GroupOut {
    group_id: String,
    roles: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ServiceAccountRequest)]
pub struct AccountIn {
    name: Option<String>,
    description: Option<String>,
    roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::body::integral")]
    secret_expires_after_hours: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ServiceAccountSecretRequest)]
pub struct SecretIn {
    #[serde(default, deserialize_with = "crate::body::integral")]
    secret_expires_after_hours: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ServiceAccountRolesRequest)]
pub struct RolesIn {
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
///
/// Atlas operation `createOrgServiceAccount`.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts",
    operation_id = "createOrgServiceAccount",
    tag = "Service Accounts",
    params(OrgPath, EntityParams),
    request_body(content = AccountIn, content_type = ATLAS_2023),
    responses(
        (status = 201, description = "The new account, with its first secret shown this once.", content_type = ATLAS_2023, body = AccountOut),
    ),
)]
pub async fn create_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(org_id): AtlasPath<String>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
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
    Ok(base.respond(StatusCode::CREATED, &body, Shape::Entity, format))
}

/// `GET /orgs/{orgId}/serviceAccounts`, Organization Read Only.
///
/// Atlas operation `listOrgServiceAccounts`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts",
    operation_id = "listOrgServiceAccounts",
    tag = "Service Accounts",
    params(OrgPath, ListParams),
    responses(
        (status = 200, description = "A page of accounts.", content_type = ATLAS_2023, body = Paginated<AccountOut>),
    ),
)]
pub async fn list_org_service_accounts(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(org_id): AtlasPath<String>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
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
///
/// Atlas operation `getOrgServiceAccount`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}",
    operation_id = "getOrgServiceAccount",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    responses(
        (status = 200, description = "The account.", content_type = ATLAS_2023, body = AccountOut),
    ),
)]
pub async fn get_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let org = load_org(&state, &caller, &org_id, OrgNeed::ReadOnly).await?;
    let a = load_account(&state, &org.id, &client_id).await?;
    let secrets = secrets_of(&state, &a.client_id).await?;
    let body = account_out(&a, a.org_roles.clone(), &secrets, None);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `PATCH /orgs/{orgId}/serviceAccounts/{clientId}`, Organization Owner: partial update.
///
/// Atlas operation `updateOrgServiceAccount`.
#[utoipa::path(
    patch,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}",
    operation_id = "updateOrgServiceAccount",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    request_body(content = AccountIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The account as changed.", content_type = ATLAS_2023, body = AccountOut),
    ),
)]
pub async fn update_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
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
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `DELETE /orgs/{orgId}/serviceAccounts/{clientId}`, Organization Owner: the account, its
/// secrets (so its tokens stop working), grants and access list. 204.
///
/// Atlas operation `deleteOrgServiceAccount`.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}",
    operation_id = "deleteOrgServiceAccount",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
pub async fn delete_org_service_account(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
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
///
/// Atlas operation `getOrgServiceAccountGroups`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}/groups",
    operation_id = "getOrgServiceAccountGroups",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), ListParams),
    responses(
        (status = 200, description = "A page of the account's projects.", content_type = ATLAS_2023, body = Paginated<GroupOut>),
    ),
)]
pub async fn get_org_service_account_groups(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, client_id)): AtlasPath<(String, String)>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
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

/// The service account of a [`Scope`]'s path, with `{clientId}` after it.
fn account_segments<'s>(scope: &'s Scope, client_id: &'s str, tail: &'s str) -> [&'s str; 5] {
    let [kind, id] = scope.segments();
    [kind, id, "serviceAccounts", client_id, tail]
}

/// Who may make a secret or access-list call, and whether it goes through the gate
/// (`access::manage`) because it reveals a new secret or alters the account.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Organization Read Only, or Project Read Only on project paths; reads.
    ReadOnly,
    /// Organization Owner, or Project Owner on project paths; manages.
    Owner,
    /// Organization Owner, or Project Access Manager on project paths; manages.
    AccessManager,
}

/// The account `client_id` of `scope` for a caller with `need` there (on project paths, the
/// account must be assigned to the project).
async fn scoped_account(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    client_id: &str,
    need: Need,
) -> Result<ServiceAccountRecord, AtlasError> {
    let (org_need, project_need) = match need {
        Need::ReadOnly => (OrgNeed::ReadOnly, ProjectRole::ReadOnly),
        Need::Owner => (OrgNeed::Owner, ProjectRole::Owner),
        Need::AccessManager => (OrgNeed::Owner, ProjectRole::AccessManager),
    };
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
    if need != Need::ReadOnly {
        manage(state, caller, via, &a.client_id, &a.org_id, &a.org_roles).await?;
    }
    Ok(a)
}

/// `createOrgServiceAccountSecret` (Organization Owner) and `createGroupServiceAccountSecret`
/// (Project Owner): a new secret of the account, shown this once (201).
#[utoipa::path(
    post,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}/secrets",
    operation_id = "createOrgServiceAccountSecret",
    summary = "`POST /orgs/{orgId}/serviceAccounts/{clientId}/secrets`, Organization Owner.",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    request_body(content = SecretIn, content_type = ATLAS_2023),
    responses(
        (status = 201, description = "The new secret, shown this once.", content_type = ATLAS_2023, body = SecretOut),
    ),
)]
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}/secrets",
    operation_id = "createGroupServiceAccountSecret",
    impl_for = CreateGroupServiceAccountSecret,
    summary = "`POST /groups/{groupId}/serviceAccounts/{clientId}/secrets`, Project Owner.",
    tag = PROJECT_PATHS_TAG,
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    request_body(content = SecretIn, content_type = ATLAS_2023),
    responses(
        (status = 201, description = "The new secret, shown this once.", content_type = ATLAS_2023, body = SecretOut),
    ),
)]
pub async fn create_service_account_secret(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    scope: Scope,
    AtlasPath((_, client_id)): AtlasPath<(String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let a = scoped_account(&state, &caller, &scope, &client_id, Need::Owner).await?;
    let input: SecretIn = parse_json_with(&bytes, &[])?;
    let hours = secret_hours(input.secret_expires_after_hours)?;
    let (secret, value) = new_secret(&a.client_id, hours);
    state
        .inner
        .store
        .add_service_account_secret(&secret)
        .await?;
    let body = secret_out(&secret, Some(&value));
    Ok(base.respond(StatusCode::CREATED, &body, Shape::Entity, format))
}

/// `deleteOrgServiceAccountSecret` (Organization Owner) and `deleteGroupServiceAccountSecret`
/// (Project Owner): deletes a secret; tokens obtained with it stop working (204).
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}/secrets/{secretId}",
    operation_id = "deleteOrgServiceAccountSecret",
    summary = "`DELETE /orgs/{orgId}/serviceAccounts/{clientId}/secrets/{secretId}`, Organization Owner.",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), ("secretId" = String, Path, description = "The secret's id."), EntityParams),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}/secrets/{secretId}",
    operation_id = "deleteGroupServiceAccountSecret",
    impl_for = DeleteGroupServiceAccountSecret,
    summary = "`DELETE /groups/{groupId}/serviceAccounts/{clientId}/secrets/{secretId}`, Project Owner.",
    tag = PROJECT_PATHS_TAG,
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), ("secretId" = String, Path, description = "The secret's id."), EntityParams),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
pub async fn delete_service_account_secret(
    State(state): State<AppState>,
    caller: Caller,
    scope: Scope,
    AtlasPath((_, client_id, secret_id)): AtlasPath<(String, String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
    let a = scoped_account(&state, &caller, &scope, &client_id, Need::Owner).await?;
    if !state
        .inner
        .store
        .delete_service_account_secret(&a.client_id, &secret_id)
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

/// `listOrgServiceAccountAccessList` (Organization Read Only) and
/// `listGroupServiceAccountAccessList` (Project Read Only): a page of the account's access list.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}/accessList",
    operation_id = "listOrgServiceAccountAccessList",
    summary = "`GET /orgs/{orgId}/serviceAccounts/{clientId}/accessList`, Organization Read Only.",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), ListParams),
    responses(
        (status = 200, description = "A page of entries.", content_type = ATLAS_2023, body = Paginated<EntryOut>),
    ),
)]
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}/accessList",
    operation_id = "listGroupServiceAccountAccessList",
    impl_for = ListGroupServiceAccountAccessList,
    summary = "`GET /groups/{groupId}/serviceAccounts/{clientId}/accessList`, Project Read Only.",
    tag = PROJECT_PATHS_TAG,
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), ListParams),
    responses(
        (status = 200, description = "A page of entries.", content_type = ATLAS_2023, body = Paginated<EntryOut>),
    ),
)]
pub async fn list_service_account_access_list(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    scope: Scope,
    AtlasPath((_, client_id)): AtlasPath<(String, String)>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    let a = scoped_account(&state, &caller, &scope, &client_id, Need::ReadOnly).await?;
    let list = state.inner.store.list_access_list(&a.client_id).await?;
    let segs = account_segments(&scope, &a.client_id, "accessList");
    let body = page_of(&base, &segs, &query, &list, sa_entry_out);
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// `createOrgServiceAccountAccessList` (Organization Owner) and
/// `createGroupServiceAccountAccessList` (Project Access Manager): adds up to 200 entries and
/// returns the whole list (200).
#[utoipa::path(
    post,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}/accessList",
    operation_id = "createOrgServiceAccountAccessList",
    summary = "`POST /orgs/{orgId}/serviceAccounts/{clientId}/accessList`, Organization Owner.",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), ListParams),
    request_body(content = Vec<crate::routes::access::EntryIn>, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The account's whole access list.", content_type = ATLAS_2023, body = Paginated<EntryOut>),
    ),
)]
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}/accessList",
    operation_id = "createGroupServiceAccountAccessList",
    impl_for = CreateGroupServiceAccountAccessList,
    summary = "`POST /groups/{groupId}/serviceAccounts/{clientId}/accessList`, Project Access Manager.",
    tag = PROJECT_PATHS_TAG,
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), ListParams),
    request_body(content = Vec<crate::routes::access::EntryIn>, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The account's whole access list.", content_type = ATLAS_2023, body = Paginated<EntryOut>),
    ),
)]
pub async fn create_service_account_access_list(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    scope: Scope,
    AtlasPath((_, client_id)): AtlasPath<(String, String)>,
    query: Result<ListQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let ListQuery(query) = query?;
    let a = scoped_account(&state, &caller, &scope, &client_id, Need::AccessManager).await?;
    let list = add_entries(&state, &a.client_id, &bytes, 200).await?;
    let segs = account_segments(&scope, &a.client_id, "accessList");
    let body = page_of(&base, &segs, &query, &list, sa_entry_out);
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// `deleteOrgServiceAccountAccessListEntry` (Organization Owner) and
/// `deleteGroupServiceAccountAccessListEntry` (Project Access Manager): removes an entry, not
/// the one admitting the account's own request (204).
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/orgs/{orgId}/serviceAccounts/{clientId}/accessList/{ipAddress}",
    operation_id = "deleteOrgServiceAccountAccessListEntry",
    summary = "`DELETE /orgs/{orgId}/serviceAccounts/{clientId}/accessList/{ipAddress}`, Organization Owner.",
    tag = "Service Accounts",
    params(OrgPath, ("clientId" = String, Path, description = "The service account's client id."), ("ipAddress" = String, Path, description = "An IP address or CIDR block (with / as %2F)."), EntityParams),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}/accessList/{ipAddress}",
    operation_id = "deleteGroupServiceAccountAccessListEntry",
    impl_for = DeleteGroupServiceAccountAccessListEntry,
    summary = "`DELETE /groups/{groupId}/serviceAccounts/{clientId}/accessList/{ipAddress}`, Project\nAccess Manager.",
    tag = PROJECT_PATHS_TAG,
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), ("ipAddress" = String, Path, description = "An IP address or CIDR block (with / as %2F)."), EntityParams),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
pub async fn delete_service_account_access_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    scope: Scope,
    AtlasPath((_, client_id, ip)): AtlasPath<(String, String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
    let a = scoped_account(&state, &caller, &scope, &client_id, Need::AccessManager).await?;
    remove_entry(&state, &caller, &a.client_id, &ip).await?;
    Ok(no_content())
}

/// The OpenAPI operations of the project paths of the handlers above, which serve an
/// organization's path and a project's alike: each is the `impl_for` of its handler's second
/// `#[utoipa::path]`, and `crate::openapi` adds them to the document, with this tag (which the
/// `OpenApi` derive adds to the operations it lists itself).
pub const PROJECT_PATHS_TAG: &str = "Service Accounts";
pub struct CreateGroupServiceAccountSecret;
pub struct DeleteGroupServiceAccountSecret;
pub struct ListGroupServiceAccountAccessList;
pub struct CreateGroupServiceAccountAccessList;
pub struct DeleteGroupServiceAccountAccessListEntry;

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
///
/// Atlas operation `listGroupServiceAccounts`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts",
    operation_id = "listGroupServiceAccounts",
    tag = "Service Accounts",
    params(GroupPath, ListParams),
    responses(
        (status = 200, description = "A page of the project's accounts.", content_type = ATLAS_2023, body = Paginated<AccountOut>),
    ),
)]
pub async fn list_group_service_accounts(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
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
///
/// Atlas operation `createGroupServiceAccount`.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts",
    operation_id = "createGroupServiceAccount",
    tag = "Service Accounts",
    params(GroupPath, EntityParams),
    request_body(content = AccountIn, content_type = ATLAS_2023),
    responses(
        (status = 201, description = "The new account, with its first secret shown this once.", content_type = ATLAS_2023, body = AccountOut),
    ),
)]
pub async fn create_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
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
    Ok(base.respond(StatusCode::CREATED, &body, Shape::Entity, format))
}

/// `GET /groups/{groupId}/serviceAccounts/{clientId}`, Project Read Only.
///
/// Atlas operation `getGroupServiceAccount`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}",
    operation_id = "getGroupServiceAccount",
    tag = "Service Accounts",
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    responses(
        (status = 200, description = "The account.", content_type = ATLAS_2023, body = AccountOut),
    ),
)]
pub async fn get_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let a = load_account(&state, &project.org_id, &client_id).await?;
    let grant = project_grant(&state, &a.client_id, id.as_str()).await?;
    let secrets = secrets_of(&state, &a.client_id).await?;
    let body = account_out(&a, grant.roles, &secrets, None);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `PATCH /groups/{groupId}/serviceAccounts/{clientId}`, Project Owner: name, description, and
/// the project roles here.
///
/// Atlas operation `updateGroupServiceAccount`.
#[utoipa::path(
    patch,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}",
    operation_id = "updateGroupServiceAccount",
    tag = "Service Accounts",
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    request_body(content = AccountIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The account as changed.", content_type = ATLAS_2023, body = AccountOut),
    ),
)]
pub async fn update_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
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
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `DELETE /groups/{groupId}/serviceAccounts/{clientId}`, Project Owner: removes the account
/// from this project only; it stays in the organization with working credentials. 204.
///
/// Atlas operation `deleteGroupServiceAccount`.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}",
    operation_id = "deleteGroupServiceAccount",
    tag = "Service Accounts",
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    responses(
        (status = 204, description = "Removed from the project."),
    ),
)]
pub async fn delete_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
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
///
/// Atlas operation `inviteGroupServiceAccount`.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}:invite",
    operation_id = "inviteGroupServiceAccount",
    tag = "Service Accounts",
    params(GroupPath, ("clientId" = String, Path, description = "The service account's client id."), EntityParams),
    request_body(content = RolesIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The account, now in the project.", content_type = ATLAS_2023, body = AccountOut),
    ),
)]
pub async fn invite_group_service_account(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, client_id)): AtlasPath<(String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    // The route is `{clientId}:invite`; the router hands over the whole last segment.
    let Some(client_id) = client_id.strip_suffix(":invite").map(str::to_owned) else {
        return Err(AtlasError::resource_not_found(&format!(
            "groups/{group_id}/serviceAccounts/{client_id}"
        )));
    };
    let EntityQuery(format) = query?;
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
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}
