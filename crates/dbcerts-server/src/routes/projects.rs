//! Projects (`/groups`): listGroups, createGroup, getGroup, deleteGroup.

use std::sync::LazyLock;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use dbcerts_store::{Project, ProjectGrant, StoreError};
use serde::{Deserialize, Serialize};

use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::body::{ReadOnly, parse_json};
use crate::error::ApiErrorBody;
use crate::error::AtlasError;
use crate::format::{Shape, atlas_time};
use crate::links::{Base, Link, Paginated};
use crate::openapi::{ATLAS_2023, JSON};
use crate::params::{EntityParams, EntityQuery, GroupPath, ListParams, ListQuery, is_object_id};

static GROUP_NAME: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{N}\-_.(),:&@+']{1,64}$").expect("valid regex"));

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ResourceTag {
    #[schema(min_length = 1, max_length = 255)]
    pub key: String,
    #[schema(min_length = 1, max_length = 255)]
    pub value: String,
}

/// `Group` as Atlas returns it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Group)]
pub struct GroupOut {
    /// Always 0: dbcerts runs no clusters.
    cluster_count: i64,
    #[schema(format = DateTime)]
    created: String,
    #[schema(pattern = "^([a-f0-9]{24})$")]
    id: String,
    links: Vec<Link>,
    name: String,
    #[schema(pattern = "^([a-f0-9]{24})$")]
    org_id: String,
    tags: Vec<ResourceTag>,
    with_default_alerts_settings: bool,
}

/// `Group` as a client sends it. Read-only fields that SDKs echo back are accepted and ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GroupCreate)]
pub struct GroupIn {
    #[schema(required = true, pattern = r"^[\p{L}\p{N}\-_.(),:&@+']{1,64}$")]
    pub name: Option<String>,
    /// The caller's organization.
    #[schema(required = true, pattern = "^([a-f0-9]{24})$")]
    org_id: Option<String>,
    pub tags: Option<Vec<ResourceTag>>,
    /// Default true.
    with_default_alerts_settings: Option<bool>,
    #[serde(rename = "id")]
    #[schema(schema_with = crate::openapi::echoed)]
    _id: Option<ReadOnly>,
    #[serde(rename = "created")]
    #[schema(schema_with = crate::openapi::echoed)]
    _created: Option<ReadOnly>,
    #[serde(rename = "clusterCount")]
    #[schema(schema_with = crate::openapi::echoed)]
    _cluster_count: Option<ReadOnly>,
    #[serde(rename = "links")]
    #[schema(schema_with = crate::openapi::echoed)]
    _links: Option<ReadOnly>,
}

/// An empty JSON object, the body of a project deletion.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The seven links of a single project, as Atlas emits them.
fn project_links(base: &Base, id: &str) -> Vec<Link> {
    let mut links = base.self_link(&["groups", id]);
    for rel in [
        "containers",
        "clusters",
        "databaseUsers",
        "peers",
        "processes",
        "whitelist",
    ] {
        links.push(Link {
            href: base.url(&["groups", id, rel]),
            rel: format!("https://cloud.mongodb.com/{rel}"),
        });
    }
    links
}

pub fn tags_from_json(json: &str) -> Vec<ResourceTag> {
    serde_json::from_str(json).unwrap_or_default()
}

fn group_out(p: &Project, links: Vec<Link>) -> GroupOut {
    GroupOut {
        cluster_count: 0,
        created: atlas_time(p.created),
        id: p.id.clone(),
        links,
        name: p.name.clone(),
        org_id: p.org_id.clone(),
        tags: tags_from_json(&p.tags_json),
        with_default_alerts_settings: p.with_default_alerts_settings,
    }
}

/// Checks `ResourceTag`/`ComponentLabel` key and value lengths (1..=255).
fn check_key_values<'a>(
    attr: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), AtlasError> {
    for (k, v) in pairs {
        let ok = |s: &str| (1..=255).contains(&s.chars().count());
        if !ok(k) || !ok(v) {
            return Err(AtlasError::invalid_attribute(attr));
        }
    }
    Ok(())
}

/// The projects the caller can see.
///
/// Atlas operation `listGroups`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups",
    operation_id = "listGroups",
    tag = "Projects",
    params(ListParams),
    responses((status = 200, description = "A page of projects.", content_type = ATLAS_2023, body = Paginated<GroupOut>)),
)]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    // Decide visibility before paging, so that `totalCount` and the links stay honest: a
    // caller with an organization-wide role sees every project of its organization, anyone
    // else only the projects it holds a role in.
    let store = &state.inner.store;
    let (projects, total) = if caller.sees_whole_org() {
        store
            .list_projects(std::slice::from_ref(&caller.org_id), query.paging.page())
            .await?
    } else {
        let mut granted = Vec::new();
        for project_id in caller.grants.keys() {
            if let Some(p) = store.get_project(project_id).await?
                && caller.can_see(&p)
            {
                granted.push(p);
            }
        }
        granted.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let total = granted.len() as u64;
        (query.paging.slice(&granted).to_vec(), total)
    };
    let visible: Vec<_> = projects
        .iter()
        .map(|p| group_out(p, base.self_link(&["groups", &p.id])))
        .collect();
    let body = Paginated::new(&base, &["groups"], &query.paging, total, visible);
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// Creates a project in the caller's organization. Atlas answers 201, as dbcerts does; MongoDB's
/// specification documents 200.
///
/// Atlas operation `createGroup`.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups",
    operation_id = "createGroup",
    tag = "Projects",
    params(
        EntityParams,
        ("projectOwnerId" = Option<String>, Query, pattern = "^([a-f0-9]{24})$", description = "Accepted and checked for shape; dbcerts has no Atlas users to make owner."),
    ),
    request_body(content = GroupIn, content_type = ATLAS_2023),
    responses(
        (status = 201, description = "The new project; Location names it.", content_type = ATLAS_2023, body = GroupOut,
            headers(("Location" = String, description = "The project's URL."))),
        (status = 409, description = "A project of that name exists (GROUP_ALREADY_EXISTS).", content_type = JSON, body = ApiErrorBody),
    ),
)]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    query: Result<EntityQuery, AtlasError>,
    RawQuery(q): RawQuery,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    // An operation-specific parameter, beside the entity ones.
    if let Some(owner) = raw_param(q.as_deref(), "projectOwnerId")
        && !is_object_id(&owner)
    {
        return Err(AtlasError::invalid_query_parameter("projectOwnerId"));
    }
    let input: GroupIn = parse_json(&bytes)?;
    let name = input
        .name
        .ok_or_else(|| AtlasError::missing_attribute("name"))?;
    let org_id = input
        .org_id
        .ok_or_else(|| AtlasError::missing_attribute("orgId"))?;
    if !GROUP_NAME.is_match(&name) {
        return Err(AtlasError::invalid_group_name(&name));
    }
    if !is_object_id(&org_id)
        || !caller.in_org(&org_id)
        || state.inner.store.get_org(&org_id).await?.is_none()
    {
        return Err(AtlasError::org_not_found(&org_id));
    }
    if !caller.can_create_projects(&org_id) {
        return Err(AtlasError::new(
            StatusCode::UNAUTHORIZED,
            "NOT_ORG_GROUP_CREATOR",
            format!("The currently logged in user does not have the group creator role in organization {org_id}."),
        )
        .with_params([serde_json::Value::String(org_id)]));
    }
    let tags = input.tags.unwrap_or_default();
    check_key_values(
        "tags",
        tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
    )?;
    let project = Project {
        id: crate::bootstrap::new_object_id(),
        org_id,
        name: name.clone(),
        created: chrono::Utc::now().timestamp(),
        with_default_alerts_settings: input.with_default_alerts_settings.unwrap_or(true),
        tags_json: serde_json::to_string(&tags).expect("tags serialize"),
    };
    match state.inner.store.create_project(&project).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(AtlasError::group_already_exists(&name)),
        Err(e) => return Err(e.into()),
    }
    // A Project Creator that is not an Organization Owner would otherwise lose sight of the
    // project it just made: it becomes the project's owner, as an Atlas user creating a
    // project does.
    if !caller.can_see(&project) {
        state
            .inner
            .store
            .put_grant(&ProjectGrant {
                principal_id: caller.principal_id().to_owned(),
                project_id: project.id.clone(),
                roles: vec!["GROUP_OWNER".into()],
            })
            .await?;
    }
    let body = group_out(&project, project_links(&base, &project.id));
    let mut res = base.respond(StatusCode::CREATED, &body, Shape::Entity, format);
    if let Ok(v) = HeaderValue::from_str(&base.url(&["groups", &project.id])) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// One project.
///
/// Atlas operation `getGroup`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}",
    operation_id = "getGroup",
    tag = "Projects",
    params(GroupPath, EntityParams),
    responses((status = 200, description = "The project.", content_type = ATLAS_2023, body = GroupOut)),
)]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let (_, project) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let body = group_out(&project, project_links(&base, &project.id));
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// Deletes a project with its users, certificates and CA. Atlas answers 202 with `{}`, as dbcerts
/// does; MongoDB's specification documents 204.
///
/// Atlas operation `deleteGroup`.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/groups/{groupId}",
    operation_id = "deleteGroup",
    tag = "Projects",
    params(GroupPath, EntityParams),
    responses((status = 202, description = "Deleted.", content_type = ATLAS_2023, body = Empty)),
)]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    if !state.inner.store.delete_project(id.as_str()).await? {
        return Err(AtlasError::group_not_found(id.as_str()));
    }
    state.inner.ca.forget(id.as_str());
    tracing::info!(project = id.as_str(), "deleted project");
    Ok(base.respond(StatusCode::ACCEPTED, &Empty {}, Shape::Entity, format))
}

/// The first value of query parameter `name`, if present.
fn raw_param(q: Option<&str>, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q?).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}
