//! Programmatic API keys: `/orgs/{orgId}/apiKeys` (create, list, get, update, delete, and each
//! key's IP access list) and `/groups/{groupId}/apiKeys` (assign keys to projects with project
//! roles). The private key is shown once, in the create response; afterwards it is masked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dbcerts_store::{AccessListEntry, ApiKeyRecord, ProjectGrant, StoreError};
use serde::{Deserialize, Serialize};

use super::access::{
    add_entries, find_entry, load_org, manage, org_roles, parse_json_array, project_roles,
    remove_entry, single_address,
};
use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, Holdings, OrgNeed, ProjectRole, Via};
use crate::body::{ReadOnly, parse_json_with};
use crate::bootstrap::{api_key_purpose, new_api_key};
use crate::error::AtlasError;
use crate::format::{Shape, atlas_time};
use crate::links::{Base, Link, Paginated};
use crate::openapi::ATLAS_2023;
use crate::params::{
    EntityParams, EntityQuery, GroupPath, ListParams, ListQuery, OrgPath, Query, is_object_id,
};

/// Atlas's `ApiKeyUserDetails`, keys in alphabetical order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKeyUserDetails)]
pub struct KeyOut {
    desc: String,
    id: String,
    links: Vec<Link>,
    private_key: String,
    public_key: String,
    roles: Vec<RoleOut>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CloudAccessRoleAssignment)]
pub struct RoleOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<String>,
    role_name: String,
}

/// `UserAccessListResponse`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserAccessListResponse)]
pub struct EntryOut {
    cidr_block: String,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    links: Vec<Link>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKeyRequest)]
pub struct KeyIn {
    desc: Option<String>,
    pub roles: Option<Vec<String>>,
    #[serde(rename = "id")]
    #[schema(schema_with = crate::openapi::echoed)]
    _id: Option<ReadOnly>,
    #[serde(rename = "links")]
    #[schema(schema_with = crate::openapi::echoed)]
    _links: Option<ReadOnly>,
    #[serde(rename = "privateKey")]
    #[schema(schema_with = crate::openapi::echoed)]
    _private_key: Option<ReadOnly>,
    #[serde(rename = "publicKey")]
    #[schema(schema_with = crate::openapi::echoed)]
    _public_key: Option<ReadOnly>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserAccessRoleAssignment)]
pub struct AssignmentIn {
    roles: Option<Vec<String>>,
    #[serde(rename = "userId")]
    #[schema(schema_with = crate::openapi::echoed)]
    _user_id: Option<ReadOnly>,
}

/// `********-****-****-<last 12>`: the private key as Atlas shows it after creation.
fn masked(state: &AppState, key: &ApiKeyRecord) -> Result<String, AtlasError> {
    let secret = state
        .inner
        .master
        .open(&key.sealed_private_key, &api_key_purpose(&key.public_key))
        .map_err(|e| AtlasError::unexpected(format!("unsealing an API key: {e}")))?;
    let text = String::from_utf8_lossy(&secret);
    let tail: String = text
        .chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Ok(format!("********-****-****-{tail}"))
}

/// The key as the API shows it to `caller`: its organization roles and its roles in the
/// projects the caller can see (another project's id would reveal that the project exists).
async fn key_out(
    state: &AppState,
    caller: &Caller,
    base: &Base,
    key: &ApiKeyRecord,
    shown_private_key: Option<&str>,
) -> Result<KeyOut, AtlasError> {
    let mut roles: Vec<RoleOut> = key
        .org_roles
        .iter()
        .map(|r| RoleOut {
            group_id: None,
            org_id: Some(key.org_id.clone()),
            role_name: r.clone(),
        })
        .collect();
    let visible = |project_id: &str| {
        caller.in_org(&key.org_id)
            && (caller.sees_whole_org() || caller.grants.contains_key(project_id))
    };
    for g in state.inner.store.list_grants(&key.id).await? {
        if !visible(&g.project_id) {
            continue;
        }
        roles.extend(g.roles.into_iter().map(|r| RoleOut {
            group_id: Some(g.project_id.clone()),
            org_id: None,
            role_name: r,
        }));
    }
    let private_key = match shown_private_key {
        Some(p) => p.to_owned(),
        None => masked(state, key)?,
    };
    Ok(KeyOut {
        desc: key.description.clone(),
        id: key.id.clone(),
        links: base.self_link(&["orgs", &key.org_id, "apiKeys", &key.id]),
        private_key,
        public_key: key.public_key.clone(),
        roles,
    })
}

fn check_desc(desc: &str) -> Result<(), AtlasError> {
    if (1..=250).contains(&desc.chars().count()) {
        Ok(())
    } else {
        Err(AtlasError::invalid_attribute("desc"))
    }
}

/// Loads key `raw_id` of organization `org_id`; a key of another organization is not found.
async fn load_key(
    state: &AppState,
    org_id: &str,
    raw_id: &str,
) -> Result<ApiKeyRecord, AtlasError> {
    let not_found = || AtlasError::resource_not_found(&format!("API key {raw_id}"));
    if !is_object_id(raw_id) {
        return Err(not_found());
    }
    state
        .inner
        .store
        .get_api_key_by_id(raw_id)
        .await?
        .filter(|k| k.org_id == org_id)
        .ok_or_else(not_found)
}

/// Loads key `raw_id` of organization `org_id` for a call that alters it or its access list,
/// through the gate (`access::manage`): 403 unless the caller may manage it `via` that path.
async fn manage_key(
    state: &AppState,
    caller: &Caller,
    via: Via<'_>,
    org_id: &str,
    raw_id: &str,
) -> Result<(ApiKeyRecord, Holdings), AtlasError> {
    let key = load_key(state, org_id, raw_id).await?;
    let held = manage(state, caller, via, &key.id, &key.org_id, &key.org_roles).await?;
    Ok((key, held))
}

/// `POST /orgs/{orgId}/apiKeys` (createOrgApiKey), Organization Owner. 200, private key shown.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys",
    operation_id = "createOrgApiKey",
    tag = "Programmatic API Keys",
    params(OrgPath, EntityParams),
    request_body(content = KeyIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The new key, with its private key shown this once.", content_type = ATLAS_2023, body = KeyOut),
    ),
)]
pub async fn create_org_api_key(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(org_id): AtlasPath<String>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let input: KeyIn = parse_json_with(&bytes, &["roles"])?;
    let desc = input
        .desc
        .ok_or_else(|| AtlasError::missing_attribute("desc"))?;
    check_desc(&desc)?;
    let roles = org_roles(
        input
            .roles
            .ok_or_else(|| AtlasError::missing_attribute("roles"))?,
        true,
    )?;
    caller.may_manage(Via::Org, &Holdings::new(&org.id, roles.clone(), Vec::new()))?;
    let (key, private_key) = new_api_key(&state.inner.master, &org.id, &desc, roles);
    state.inner.store.create_api_key(&key, &[]).await?;
    let body = key_out(&state, &caller, &base, &key, Some(&private_key)).await?;
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `GET /orgs/{orgId}/apiKeys` (listOrgApiKeys), Organization Member.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys",
    operation_id = "listOrgApiKeys",
    tag = "Programmatic API Keys",
    params(OrgPath, ListParams),
    responses(
        (status = 200, description = "A page of keys.", content_type = ATLAS_2023, body = Paginated<KeyOut>),
    ),
)]
pub async fn list_org_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(org_id): AtlasPath<String>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    let org = load_org(&state, &caller, &org_id, OrgNeed::Member).await?;
    let (keys, total) = state
        .inner
        .store
        .list_api_keys(&org.id, query.paging.page())
        .await?;
    let mut out = Vec::with_capacity(keys.len());
    for k in &keys {
        out.push(key_out(&state, &caller, &base, k, None).await?);
    }
    let body = Paginated::new(
        &base,
        &["orgs", &org.id, "apiKeys"],
        &query.paging,
        total,
        out,
    );
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// `GET /orgs/{orgId}/apiKeys/{apiUserId}` (getOrgApiKey), Organization Member.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}",
    operation_id = "getOrgApiKey",
    tag = "Programmatic API Keys",
    params(OrgPath, ("apiUserId" = String, Path, description = "The API key's id."), EntityParams),
    responses(
        (status = 200, description = "The key, private key masked.", content_type = ATLAS_2023, body = KeyOut),
    ),
)]
pub async fn get_org_api_key(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, key_id)): AtlasPath<(String, String)>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let org = load_org(&state, &caller, &org_id, OrgNeed::Member).await?;
    let key = load_key(&state, &org.id, &key_id).await?;
    let body = key_out(&state, &caller, &base, &key, None).await?;
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `PATCH /orgs/{orgId}/apiKeys/{apiUserId}` (updateOrgApiKey), Organization Owner.
#[utoipa::path(
    patch,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}",
    operation_id = "updateOrgApiKey",
    tag = "Programmatic API Keys",
    params(OrgPath, ("apiUserId" = String, Path, description = "The API key's id."), EntityParams),
    request_body(content = KeyIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The key as changed.", content_type = ATLAS_2023, body = KeyOut),
    ),
)]
pub async fn update_org_api_key(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, key_id)): AtlasPath<(String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let (mut key, held) = manage_key(&state, &caller, Via::Org, &org.id, &key_id).await?;
    let input: KeyIn = parse_json_with(&bytes, &["roles"])?;
    if input.desc.is_none() && input.roles.is_none() {
        return Err(AtlasError::missing_attribute("desc"));
    }
    if let Some(desc) = input.desc {
        check_desc(&desc)?;
        key.description = desc;
    }
    if let Some(roles) = input.roles {
        key.org_roles = org_roles(roles, true)?;
        caller.may_manage(Via::Org, &held.with_org_roles(&key.org_roles))?;
    }
    if !state.inner.store.update_api_key(&key).await? {
        return Err(AtlasError::resource_not_found(&format!("API key {key_id}")));
    }
    let body = key_out(&state, &caller, &base, &key, None).await?;
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `DELETE /orgs/{orgId}/apiKeys/{apiUserId}` (deleteOrgApiKey), Organization Owner. Removes
/// the key from every project and drops its access list. 204.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}",
    operation_id = "deleteOrgApiKey",
    tag = "Programmatic API Keys",
    params(OrgPath, ("apiUserId" = String, Path, description = "The API key's id."), EntityParams),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
pub async fn delete_org_api_key(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((org_id, key_id)): AtlasPath<(String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let (key, _) = manage_key(&state, &caller, Via::Org, &org.id, &key_id).await?;
    state.inner.store.delete_api_key(&key.id).await?;
    Ok(no_content())
}

pub(super) fn no_content() -> Response {
    axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT)
}

fn entry_out(base: &Base, segments: &[&str], e: &AccessListEntry) -> EntryOut {
    let mut path: Vec<&str> = segments.to_vec();
    path.push(&e.cidr_block);
    EntryOut {
        cidr_block: e.cidr_block.clone(),
        created: atlas_time(e.created),
        ip_address: single_address(&e.cidr_block),
        links: base.self_link(&path),
    }
}

/// A page of a principal's access list, in the API's shape.
pub(super) fn page_of<T>(
    base: &Base,
    segments: &[&str],
    query: &Query,
    list: &[AccessListEntry],
    out: impl Fn(&AccessListEntry) -> T,
) -> Paginated<T> {
    let shown = query.paging.slice(list).iter().map(out).collect();
    Paginated::new(base, segments, &query.paging, list.len() as u64, shown)
}

/// A page of `key`'s access list, as the list and create operations answer.
fn access_list_page(
    base: &Base,
    key: &ApiKeyRecord,
    query: &Query,
    list: &[AccessListEntry],
) -> Response {
    let segs = ["orgs", &key.org_id, "apiKeys", &key.id, "accessList"];
    let body = page_of(base, &segs, query, list, |e| entry_out(base, &segs, e));
    base.respond(StatusCode::OK, &body, Shape::List, query.format)
}

/// `GET /orgs/{orgId}/apiKeys/{apiUserId}/accessList`, Organization Member.
///
/// Atlas operation `listOrgApiKeyAccessListEntries`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}/accessList",
    operation_id = "listOrgApiKeyAccessListEntries",
    tag = "Programmatic API Keys",
    params(OrgPath, ("apiUserId" = String, Path, description = "The API key's id."), ListParams),
    responses(
        (status = 200, description = "A page of entries.", content_type = ATLAS_2023, body = Paginated<EntryOut>),
    ),
)]
pub async fn list_org_api_key_access_list_entries(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, key_id)): AtlasPath<(String, String)>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    let org = load_org(&state, &caller, &org_id, OrgNeed::Member).await?;
    let key = load_key(&state, &org.id, &key_id).await?;
    let list = state.inner.store.list_access_list(&key.id).await?;
    Ok(access_list_page(&base, &key, &query, &list))
}

/// `POST /orgs/{orgId}/apiKeys/{apiUserId}/accessList`: adds entries, returns the whole list
/// (200). The spec names no role; Organization Owner is required, as for the key itself.
///
/// Atlas operation `createOrgApiKeyAccessListEntry`.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}/accessList",
    operation_id = "createOrgApiKeyAccessListEntry",
    tag = "Programmatic API Keys",
    params(OrgPath, ("apiUserId" = String, Path, description = "The API key's id."), ListParams),
    request_body(content = Vec<crate::routes::access::EntryIn>, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The key's whole access list.", content_type = ATLAS_2023, body = Paginated<EntryOut>),
    ),
)]
pub async fn create_org_api_key_access_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, key_id)): AtlasPath<(String, String)>,
    query: Result<ListQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let ListQuery(query) = query?;
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let (key, _) = manage_key(&state, &caller, Via::Org, &org.id, &key_id).await?;
    let list = add_entries(&state, &key.id, &bytes, 500).await?;
    Ok(access_list_page(&base, &key, &query, &list))
}

/// `GET /orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}`, Organization Member.
///
/// Atlas operation `getOrgApiKeyAccessListEntry`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}",
    operation_id = "getOrgApiKeyAccessListEntry",
    tag = "Programmatic API Keys",
    params(OrgPath, ("apiUserId" = String, Path, description = "The API key's id."), ("ipAddress" = String, Path, description = "An IP address or CIDR block (with / as %2F)."), EntityParams),
    responses(
        (status = 200, description = "The entry.", content_type = ATLAS_2023, body = EntryOut),
    ),
)]
pub async fn get_org_api_key_access_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((org_id, key_id, ip)): AtlasPath<(String, String, String)>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let org = load_org(&state, &caller, &org_id, OrgNeed::Member).await?;
    let key = load_key(&state, &org.id, &key_id).await?;
    let entry = find_entry(&state, &key.id, &ip).await?;
    let segs = [
        "orgs",
        org.id.as_str(),
        "apiKeys",
        key.id.as_str(),
        "accessList",
    ];
    let body = entry_out(&base, &segs, &entry);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `DELETE /orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}`, Organization Owner. A
/// key cannot remove the entry that admits its own request.
///
/// Atlas operation `deleteOrgApiKeyAccessListEntry`.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}",
    operation_id = "deleteOrgApiKeyAccessListEntry",
    tag = "Programmatic API Keys",
    params(OrgPath, ("apiUserId" = String, Path, description = "The API key's id."), ("ipAddress" = String, Path, description = "An IP address or CIDR block (with / as %2F)."), EntityParams),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
pub async fn delete_org_api_key_access_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((org_id, key_id, ip)): AtlasPath<(String, String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
    let org = load_org(&state, &caller, &org_id, OrgNeed::Owner).await?;
    let (key, _) = manage_key(&state, &caller, Via::Org, &org.id, &key_id).await?;
    remove_entry(&state, &caller, &key.id, &ip).await?;
    Ok(no_content())
}

// ---- project assignments ----

/// `GET /groups/{groupId}/apiKeys` (listGroupApiKeys), Project Read Only.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/apiKeys",
    operation_id = "listGroupApiKeys",
    tag = "Programmatic API Keys",
    params(GroupPath, ListParams),
    responses(
        (status = 200, description = "A page of the keys assigned to the project.", content_type = ATLAS_2023, body = Paginated<KeyOut>),
    ),
)]
pub async fn list_group_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let mut keys = Vec::new();
    for g in state.inner.store.list_project_grants(id.as_str()).await? {
        if let Some(k) = state.inner.store.get_api_key_by_id(&g.principal_id).await? {
            keys.push(k);
        }
    }
    keys.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let total = keys.len() as u64;
    let mut out = Vec::new();
    for k in query.paging.slice(&keys) {
        out.push(key_out(&state, &caller, &base, k, None).await?);
    }
    let body = Paginated::new(
        &base,
        &["groups", id.as_str(), "apiKeys"],
        &query.paging,
        total,
        out,
    );
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// `POST /groups/{groupId}/apiKeys` (createGroupApiKey): a new organization key (Organization
/// Member) with project roles here. Project Access Manager. 200, private key shown.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/apiKeys",
    operation_id = "createGroupApiKey",
    tag = "Programmatic API Keys",
    params(GroupPath, EntityParams),
    request_body(content = KeyIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The new key, with its private key shown this once.", content_type = ATLAS_2023, body = KeyOut),
    ),
)]
pub async fn create_group_api_key(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let (id, project) =
        load_project(&state, &caller, &group_id, &[ProjectRole::AccessManager]).await?;
    let input: KeyIn = parse_json_with(&bytes, &["roles"])?;
    let desc = input
        .desc
        .ok_or_else(|| AtlasError::missing_attribute("desc"))?;
    check_desc(&desc)?;
    let roles = project_roles(
        input
            .roles
            .ok_or_else(|| AtlasError::missing_attribute("roles"))?,
        true,
    )?;
    let (key, private_key) = new_api_key(
        &state.inner.master,
        &project.org_id,
        &desc,
        vec!["ORG_MEMBER".to_owned()],
    );
    let new = Holdings::project_member(&project.org_id, &key.id, id.as_str(), &roles);
    caller.may_manage(Via::Project(id.as_str()), &new)?;
    state.inner.store.create_api_key(&key, &new.grants).await?;
    let body = key_out(&state, &caller, &base, &key, Some(&private_key)).await?;
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// `POST /groups/{groupId}/apiKeys/{apiUserId}` (addGroupApiKey), Project Owner. Body
/// `[{"roles": [...]}]`. 204.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/apiKeys/{apiUserId}",
    operation_id = "addGroupApiKey",
    tag = "Programmatic API Keys",
    params(GroupPath, ("apiUserId" = String, Path, description = "The API key's id."), EntityParams),
    request_body(content = Vec<AssignmentIn>, content_type = ATLAS_2023),
    responses(
        (status = 204, description = "Assigned."),
    ),
)]
pub async fn add_group_api_key(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, key_id)): AtlasPath<(String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    query?;
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let via = Via::Project(id.as_str());
    let (key, held) = manage_key(&state, &caller, via, &project.org_id, &key_id).await?;
    let input: Vec<AssignmentIn> = parse_json_array(&bytes, &["roles"])?;
    let mut roles = Vec::new();
    for a in input {
        roles.extend(a.roles.unwrap_or_default());
    }
    let roles = project_roles(roles, true)?;
    caller.may_manage(via, &held.with_grant(&key.id, id.as_str(), &roles))?;
    state
        .inner
        .store
        .put_grant(&ProjectGrant {
            principal_id: key.id,
            project_id: id.as_str().to_owned(),
            roles,
        })
        .await?;
    Ok(no_content())
}

/// `PATCH /groups/{groupId}/apiKeys/{apiUserId}` (updateGroupApiKeyRoles): replaces the key's
/// roles in this project, and optionally its description. Project Access Manager.
#[utoipa::path(
    patch,
    path = "/api/atlas/v2/groups/{groupId}/apiKeys/{apiUserId}",
    operation_id = "updateGroupApiKeyRoles",
    tag = "Programmatic API Keys",
    params(GroupPath, ("apiUserId" = String, Path, description = "The API key's id."), ListParams),
    request_body(content = KeyIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The key as changed.", content_type = ATLAS_2023, body = KeyOut),
    ),
)]
pub async fn update_group_api_key_roles(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, key_id)): AtlasPath<(String, String)>,
    query: Result<ListQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let ListQuery(query) = query?;
    let (id, project) =
        load_project(&state, &caller, &group_id, &[ProjectRole::AccessManager]).await?;
    let via = Via::Project(id.as_str());
    let (mut key, held) = manage_key(&state, &caller, via, &project.org_id, &key_id).await?;
    let input: KeyIn = parse_json_with(&bytes, &["roles"])?;
    if input.desc.is_none() && input.roles.is_none() {
        return Err(AtlasError::missing_attribute("roles"));
    }
    if let Some(desc) = &input.desc {
        check_desc(desc)?;
    }
    let roles = input.roles.map(|r| project_roles(r, true)).transpose()?;
    if let Some(roles) = &roles {
        caller.may_manage(via, &held.with_grant(&key.id, id.as_str(), roles))?;
    }
    if let Some(desc) = input.desc {
        key.description = desc;
        if !state.inner.store.update_api_key(&key).await? {
            return Err(AtlasError::resource_not_found(&format!("API key {key_id}")));
        }
    }
    if let Some(roles) = roles {
        state
            .inner
            .store
            .put_grant(&ProjectGrant {
                principal_id: key.id.clone(),
                project_id: id.as_str().to_owned(),
                roles,
            })
            .await?;
    }
    let body = key_out(&state, &caller, &base, &key, None).await?;
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, query.format))
}

/// `DELETE /groups/{groupId}/apiKeys/{apiUserId}` (removeGroupApiKey): unassigns the key from
/// this project only. Project Access Manager. 204.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/groups/{groupId}/apiKeys/{apiUserId}",
    operation_id = "removeGroupApiKey",
    tag = "Programmatic API Keys",
    params(GroupPath, ("apiUserId" = String, Path, description = "The API key's id."), EntityParams),
    responses(
        (status = 204, description = "Unassigned."),
    ),
)]
pub async fn remove_group_api_key(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, key_id)): AtlasPath<(String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
    let (id, project) =
        load_project(&state, &caller, &group_id, &[ProjectRole::AccessManager]).await?;
    let via = Via::Project(id.as_str());
    let (key, _) = manage_key(&state, &caller, via, &project.org_id, &key_id).await?;
    match state.inner.store.delete_grant(&key.id, id.as_str()).await {
        Ok(true) => Ok(no_content()),
        Ok(false) => Err(AtlasError::resource_not_found(&format!(
            "API key {key_id} in group {}",
            id.as_str()
        ))),
        Err(StoreError::Conflict(_)) => Err(AtlasError::unexpected("conflict removing a grant")),
        Err(e) => Err(e.into()),
    }
}
