//! Database users: listDatabaseUsers, createDatabaseUser, getDatabaseUser, updateDatabaseUser,
//! deleteDatabaseUser, with Atlas's rules for combining authentication methods.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dbcerts_store::{
    DatabaseUserDoc, DatabaseUserLabel, DatabaseUserRecord, DatabaseUserRole, DatabaseUserScope,
    StoreError,
};
use serde::{Deserialize, Serialize};

use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::body::{ReadOnly, parse_json};
use crate::error::ApiErrorBody;
use crate::error::AtlasError;
use crate::format::{ApiVersion, Shape, atlas_time, with_content_type};
use crate::links::{Base, Link, Paginated};
use crate::openapi::{ATLAS_2023, JSON};
use crate::params::{EntityParams, EntityQuery, GroupId, GroupPath, ListParams, ListQuery};
use crate::values::X509Type;

/// The `{databaseName}/{username}` path parameters, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct UserPath {
    /// `admin` or `$external`.
    database_name: String,
    username: String,
}

pub const EXTERNAL: &str = "$external";
pub const ADMIN: &str = "admin";
const WRITERS: &[ProjectRole] = &[
    ProjectRole::DatabaseAccessAdmin,
    ProjectRole::StreamProcessingOwner,
];

static SCOPE_NAME: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9-]*$").expect("valid regex"));

/// The authentication-method enumerations, as the handlers check them and the OpenAPI document
/// lists them.
const AWS_IAM_TYPES: [&str; 3] = ["NONE", "USER", "ROLE"];
const LDAP_AUTH_TYPES: [&str; 3] = ["NONE", "GROUP", "USER"];
const OIDC_AUTH_TYPES: [&str; 3] = ["NONE", "IDP_GROUP", "USER"];
const DATABASE_NAMES: [&str; 2] = [ADMIN, EXTERNAL];
const SCOPE_TYPES: [&str; 3] = ["CLUSTER", "DATA_LAKE", "STREAM"];

fn x509_types() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&X509Type::NAMES)
}
fn aws_iam_types() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&AWS_IAM_TYPES)
}
fn ldap_auth_types() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&LDAP_AUTH_TYPES)
}
fn oidc_auth_types() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&OIDC_AUTH_TYPES)
}
fn database_names() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&DATABASE_NAMES)
}
fn scope_types() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&SCOPE_TYPES)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DatabaseUserRole)]
pub struct RoleDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection_name: Option<String>,
    pub database_name: String,
    pub role_name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = UserScope)]
pub struct ScopeDoc {
    pub name: String,
    #[serde(rename = "type")]
    #[schema(schema_with = scope_types)]
    pub kind: String,
}

/// `ComponentLabel`: both members are optional in the spec, 1 to 255 characters when given.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ComponentLabel)]
pub struct LabelDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl From<DatabaseUserRole> for RoleDoc {
    fn from(r: DatabaseUserRole) -> RoleDoc {
        RoleDoc {
            collection_name: r.collection_name,
            database_name: r.database_name,
            role_name: r.role_name,
        }
    }
}

impl From<DatabaseUserScope> for ScopeDoc {
    fn from(s: DatabaseUserScope) -> ScopeDoc {
        ScopeDoc {
            name: s.name,
            kind: s.kind,
        }
    }
}

impl From<DatabaseUserLabel> for LabelDoc {
    fn from(l: DatabaseUserLabel) -> LabelDoc {
        LabelDoc {
            key: l.key,
            value: l.value,
        }
    }
}

/// `CloudDatabaseUser` as Atlas returns it (keys alphabetical; no password, ever). `groupId` is
/// returned, as Atlas does (MongoDB's specification marks it write-only).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CloudDatabaseUser)]
pub struct UserOut {
    #[serde(rename = "awsIAMType")]
    #[schema(schema_with = aws_iam_types)]
    aws_iam_type: String,
    #[schema(schema_with = database_names)]
    database_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    delete_after_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[schema(pattern = "^([a-f0-9]{24})$")]
    group_id: String,
    labels: Vec<LabelDoc>,
    #[schema(schema_with = ldap_auth_types)]
    ldap_auth_type: String,
    links: Vec<Link>,
    #[schema(schema_with = oidc_auth_types)]
    oidc_auth_type: String,
    roles: Vec<RoleDoc>,
    scopes: Vec<ScopeDoc>,
    username: String,
    #[schema(schema_with = x509_types)]
    x509_type: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DatabaseUserRoleRequest)]
pub struct RoleIn {
    collection_name: Option<String>,
    #[schema(required = true, min_length = 1)]
    database_name: Option<String>,
    /// A built-in role (`atlasAdmin`, `readWriteAnyDatabase`, ...) or a custom role's name.
    #[schema(required = true, min_length = 1)]
    role_name: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UserScopeRequest)]
pub struct ScopeIn {
    #[schema(required = true, pattern = "^[a-zA-Z0-9][a-zA-Z0-9-]*$")]
    name: Option<String>,
    #[serde(rename = "type")]
    #[schema(required = true, schema_with = scope_types)]
    kind: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ComponentLabelRequest)]
pub struct LabelIn {
    #[schema(min_length = 1, max_length = 255)]
    key: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    value: Option<String>,
}

/// `CloudDatabaseUser` as a client sends it. Every field is optional here; the rules below
/// decide what is required for create and what may change on update.
///
/// In the OpenAPI document this is `CloudDatabaseUserCreate` (what creation requires; without
/// `groupId` on `/api/atlas/v1.0`) and `CloudDatabaseUserUpdate` (nothing required).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CloudDatabaseUserCreate)]
pub struct UserIn {
    /// Default NONE.
    #[serde(rename = "awsIAMType")]
    #[schema(schema_with = aws_iam_types)]
    aws_iam_type: Option<String>,
    /// `$external` for x.509, AWS IAM, LDAP user and OIDC user; `admin` (the default) otherwise.
    #[schema(schema_with = database_names)]
    database_name: Option<String>,
    /// A future date at most one week away.
    #[schema(format = DateTime)]
    delete_after_date: Option<String>,
    #[schema(max_length = 100)]
    description: Option<String>,
    /// The project in the path.
    #[schema(required = true, pattern = "^([a-f0-9]{24})$")]
    group_id: Option<String>,
    labels: Option<Vec<LabelIn>>,
    /// Default NONE.
    #[schema(schema_with = ldap_auth_types)]
    ldap_auth_type: Option<String>,
    /// Default NONE.
    #[schema(schema_with = oidc_auth_types)]
    oidc_auth_type: Option<String>,
    /// Required for a SCRAM user (no other method), refused for any other.
    #[schema(min_length = 8, write_only)]
    password: Option<String>,
    #[schema(required = true)]
    pub roles: Option<Vec<RoleIn>>,
    scopes: Option<Vec<ScopeIn>>,
    /// A MANAGED x.509 user's name is its certificate's CN; CUSTOMER x.509 and LDAP names are
    /// RFC 2253 DNs with a CN. `certs` is refused.
    #[schema(required = true, min_length = 1, max_length = 1024)]
    pub username: Option<String>,
    /// Default NONE.
    #[schema(schema_with = x509_types)]
    x509_type: Option<String>,
    #[serde(rename = "links")]
    #[schema(schema_with = crate::openapi::echoed)]
    _links: Option<ReadOnly>,
}

fn enum_value(
    value: Option<String>,
    allowed: &[&str],
    default: &str,
) -> Result<String, AtlasError> {
    match value {
        None => Ok(default.to_owned()),
        Some(v) if allowed.contains(&v.as_str()) => Ok(v),
        Some(v) => Err(AtlasError::invalid_enum_value(&v)),
    }
}

/// The authentication method of a user, from its four type fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Scram,
    X509,
    Aws,
    LdapUser,
    LdapGroup,
    OidcUser,
    OidcGroup,
}

impl Method {
    /// `x509_on`: whether `x509Type` is other than `NONE`.
    fn of(
        x509_on: bool,
        aws: &str,
        ldap: &str,
        oidc: &str,
        has_password: bool,
    ) -> Result<Method, AtlasError> {
        if x509_on && ldap != "NONE" {
            return Err(AtlasError::x509_cannot_use_ldap());
        }
        if x509_on && has_password {
            return Err(AtlasError::x509_cannot_use_scram());
        }
        let on: Vec<Method> = [
            (x509_on, Method::X509),
            (aws != "NONE", Method::Aws),
            (ldap == "USER", Method::LdapUser),
            (ldap == "GROUP", Method::LdapGroup),
            (oidc == "USER", Method::OidcUser),
            (oidc == "IDP_GROUP", Method::OidcGroup),
        ]
        .into_iter()
        .filter_map(|(set, m)| set.then_some(m))
        .collect();
        match on.as_slice() {
            [] => Ok(Method::Scram),
            [one] if !has_password => Ok(*one),
            _ => Err(AtlasError::validation_error(
                "a database user can use only one authentication method",
            )),
        }
    }

    fn external(self) -> bool {
        matches!(
            self,
            Method::X509 | Method::Aws | Method::LdapUser | Method::OidcUser
        )
    }

    fn label(self) -> &'static str {
        match self {
            Method::Scram => "SCRAM users",
            Method::LdapGroup => "LDAP groups",
            Method::OidcGroup => "OIDC IdP groups",
            _ => "External users",
        }
    }
}

/// Whether `name` is a plausible RFC 2253 DN with a CN: comma-separated `type=value` pairs
/// (escapes allowed), at least one of type CN.
fn is_dn_with_cn(name: &str) -> bool {
    let mut parts = Vec::new();
    let (mut cur, mut escaped) = (String::new(), false);
    for c in name.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        return false;
    }
    parts.push(cur);
    let mut has_cn = false;
    for p in &parts {
        let Some((ty, value)) = p.split_once('=') else {
            return false;
        };
        let ty = ty.trim();
        if ty.is_empty()
            || value.trim().is_empty()
            || !ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return false;
        }
        has_cn |= ty.eq_ignore_ascii_case("CN");
    }
    has_cn
}

fn parse_roles(roles: Vec<RoleIn>) -> Result<Vec<DatabaseUserRole>, AtlasError> {
    roles
        .into_iter()
        .map(|r| {
            let database_name = r
                .database_name
                .ok_or_else(|| AtlasError::missing_attribute("roles.databaseName"))?;
            let role_name = r
                .role_name
                .ok_or_else(|| AtlasError::missing_attribute("roles.roleName"))?;
            if database_name.is_empty() || role_name.is_empty() {
                return Err(AtlasError::invalid_attribute("roles"));
            }
            Ok(DatabaseUserRole {
                collection_name: r.collection_name,
                database_name,
                role_name,
            })
        })
        .collect()
}

fn parse_scopes(scopes: Vec<ScopeIn>) -> Result<Vec<DatabaseUserScope>, AtlasError> {
    scopes
        .into_iter()
        .map(|s| {
            let name = s
                .name
                .ok_or_else(|| AtlasError::missing_attribute("scopes.name"))?;
            let kind = s
                .kind
                .ok_or_else(|| AtlasError::missing_attribute("scopes.type"))?;
            if !SCOPE_NAME.is_match(&name) {
                return Err(AtlasError::invalid_attribute("scopes.name"));
            }
            let kind = enum_value(Some(kind), &SCOPE_TYPES, "")?;
            Ok(DatabaseUserScope { name, kind })
        })
        .collect()
}

fn parse_labels(labels: Vec<LabelIn>) -> Result<Vec<DatabaseUserLabel>, AtlasError> {
    for l in &labels {
        let fits = |s: &Option<String>| {
            s.as_ref()
                .is_none_or(|s| (1..=255).contains(&s.chars().count()))
        };
        if !fits(&l.key) || !fits(&l.value) {
            return Err(AtlasError::invalid_attribute("labels"));
        }
    }
    Ok(labels
        .into_iter()
        .map(|l| DatabaseUserLabel {
            key: l.key,
            value: l.value,
        })
        .collect())
}

fn parse_description(d: Option<String>) -> Result<Option<String>, AtlasError> {
    match d {
        Some(d) if d.chars().count() > 100 => Err(AtlasError::invalid_attribute("description")),
        other => Ok(other),
    }
}

/// `deleteAfterDate`: a date-time in the future, at most one week away.
fn parse_delete_after(d: Option<String>) -> Result<Option<i64>, AtlasError> {
    let Some(d) = d else { return Ok(None) };
    let t = chrono::DateTime::parse_from_rfc3339(&d)
        .map_err(|_| AtlasError::invalid_json_attribute("deleteAfterDate"))?
        .timestamp();
    let now = chrono::Utc::now().timestamp();
    if t <= now || t > now + 7 * 24 * 3600 {
        return Err(AtlasError::invalid_attribute("deleteAfterDate"));
    }
    Ok(Some(t))
}

fn check_password(p: &Option<String>) -> Result<(), AtlasError> {
    match p {
        Some(p) if p.chars().count() < 8 => Err(AtlasError::invalid_attribute("password")),
        _ => Ok(()),
    }
}

/// Checks the username against the rules of its authentication method.
fn check_username(method: Method, x509_type: X509Type, username: &str) -> Result<(), AtlasError> {
    // `.../databaseUsers/{db}/certs` is the certificate list of user `{db}`; a user named
    // `certs` could never be read, changed or deleted through its own path.
    if username.is_empty()
        || username == "certs"
        || username.chars().count() > dbcerts_ca::dn::MAX_USERNAME_CHARS
    {
        return Err(AtlasError::invalid_attribute("username"));
    }
    match method {
        Method::X509 if x509_type == X509Type::Managed => {
            dbcerts_ca::dn::check_managed_username(username)
                .map_err(|_| AtlasError::managed_x509_name_invalid(username))
        }
        Method::X509 | Method::LdapUser | Method::LdapGroup if !is_dn_with_cn(username) => {
            Err(AtlasError::invalid_ldap_name(username))
        }
        _ => Ok(()),
    }
}

fn decode_doc(rec: &DatabaseUserRecord) -> Result<DatabaseUserDoc, AtlasError> {
    DatabaseUserDoc::from_json(&rec.doc)
        .map_err(|e| AtlasError::unexpected(format!("database_users.doc: {e}")))
}

fn user_out(base: &Base, rec: &DatabaseUserRecord, doc: DatabaseUserDoc) -> UserOut {
    UserOut {
        aws_iam_type: doc.aws_iam_type,
        database_name: rec.database_name.clone(),
        delete_after_date: doc.delete_after_date.map(atlas_time),
        description: doc.description,
        group_id: rec.project_id.clone(),
        labels: doc.labels.into_iter().map(LabelDoc::from).collect(),
        ldap_auth_type: doc.ldap_auth_type,
        links: base.self_link(&[
            "groups",
            &rec.project_id,
            "databaseUsers",
            &rec.database_name,
            &rec.username,
        ]),
        oidc_auth_type: doc.oidc_auth_type,
        roles: doc.roles.into_iter().map(RoleDoc::from).collect(),
        scopes: doc.scopes.into_iter().map(ScopeDoc::from).collect(),
        username: rec.username.clone(),
        x509_type: rec.x509_type.clone(),
    }
}

fn check_group_id(body: &Option<String>, path: &GroupId) -> Result<(), AtlasError> {
    match body {
        Some(g) if g != path.as_str() => Err(AtlasError::new(
            StatusCode::BAD_REQUEST,
            "GROUP_MISMATCH",
            format!("The specified group ID {g} does not match the URL."),
        )
        .with_params([serde_json::Value::String(g.clone())])),
        _ => Ok(()),
    }
}

/// The project's database users.
///
/// Atlas operation `listGroupDatabaseUsers`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/databaseUsers",
    operation_id = "listGroupDatabaseUsers",
    tag = "Database Users",
    params(GroupPath, ListParams),
    responses((status = 200, description = "A page of users.", content_type = ATLAS_2023, body = Paginated<UserOut>)),
)]
pub async fn list_group_database_users(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let (users, total) = state
        .inner
        .store
        .list_database_users(id.as_str(), query.paging.page())
        .await?;
    let results = users
        .iter()
        .map(|u| Ok(user_out(&base, u, decode_doc(u)?)))
        .collect::<Result<Vec<_>, AtlasError>>()?;
    let segments = ["groups", id.as_str(), "databaseUsers"];
    let body = Paginated::new(&base, &segments, &query.paging, total, results);
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// Creates a database user with exactly one authentication method.
///
/// Atlas operation `createGroupDatabaseUser`.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/databaseUsers",
    operation_id = "createGroupDatabaseUser",
    tag = "Database Users",
    params(GroupPath, EntityParams),
    request_body(content = UserIn, content_type = ATLAS_2023),
    responses(
        (status = 201, description = "The new user.", content_type = ATLAS_2023, body = UserOut),
        (status = 409, description = "The user exists (USER_ALREADY_EXISTS), or the project holds the most users it may.", content_type = JSON, body = ApiErrorBody),
    ),
)]
pub async fn create_group_database_user(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let (id, _) = load_project(&state, &caller, &group_id, WRITERS).await?;
    let input: UserIn = parse_json(&bytes)?;
    check_group_id(&input.group_id, &id)?;
    let username = input
        .username
        .ok_or_else(|| AtlasError::missing_attribute("username"))?;
    let roles = parse_roles(
        input
            .roles
            .ok_or_else(|| AtlasError::missing_attribute("roles"))?,
    )?;
    let x509_type = X509Type::from_attribute(input.x509_type.as_deref())?;
    let aws = enum_value(input.aws_iam_type, &AWS_IAM_TYPES, "NONE")?;
    let ldap = enum_value(input.ldap_auth_type, &LDAP_AUTH_TYPES, "NONE")?;
    let oidc = enum_value(input.oidc_auth_type, &OIDC_AUTH_TYPES, "NONE")?;
    let database_name = enum_value(input.database_name, &DATABASE_NAMES, ADMIN)?;
    let method = Method::of(
        x509_type != X509Type::None,
        &aws,
        &ldap,
        &oidc,
        input.password.is_some(),
    )?;
    if method == Method::X509 && input.delete_after_date.is_some() {
        return Err(AtlasError::x509_cannot_be_temporary());
    }
    if method.external() && database_name != EXTERNAL {
        return Err(AtlasError::database_name_invalid_external());
    }
    if !method.external() && database_name != ADMIN {
        return Err(AtlasError::database_name_invalid_admin(method.label()));
    }
    if method == Method::Scram && input.password.is_none() {
        return Err(AtlasError::missing_attribute("password"));
    }
    check_password(&input.password)?;
    check_username(method, x509_type, &username)?;
    let doc = DatabaseUserDoc {
        aws_iam_type: aws,
        ldap_auth_type: ldap,
        oidc_auth_type: oidc,
        roles,
        scopes: parse_scopes(input.scopes.unwrap_or_default())?,
        labels: parse_labels(input.labels.unwrap_or_default())?,
        description: parse_description(input.description)?,
        delete_after_date: parse_delete_after(input.delete_after_date)?,
    };
    let rec = DatabaseUserRecord {
        project_id: id.as_str().to_owned(),
        database_name,
        username: username.clone(),
        x509_type: x509_type.as_str().to_owned(),
        created: chrono::Utc::now().timestamp(),
        doc: doc.to_json(),
    };
    // The v2 spec requires groupId in the body (and every MongoDB client sends it); it is
    // checked last so that a body with several problems reports the more specific one. The
    // v1.0 paths take the project from the path, as Atlas does for clients that have sent
    // v1.0 bodies without it for years (docs/COMPATIBILITY.md).
    if input.group_id.is_none() && base.api == ApiVersion::V2 {
        return Err(AtlasError::missing_attribute("groupId"));
    }
    let limit = state.inner.config.max_database_users_per_project;
    match state
        .inner
        .store
        .create_database_user_within_limit(&rec, limit)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(AtlasError::user_already_exists(&username)),
        Err(StoreError::LimitReached) => return Err(AtlasError::group_users_limit(limit)),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(project = id.as_str(), database = %rec.database_name, x509_type = %rec.x509_type, "created database user");
    let body = user_out(&base, &rec, doc);
    Ok(base.respond(StatusCode::CREATED, &body, Shape::Entity, format))
}

async fn load_user(
    state: &AppState,
    id: &GroupId,
    database_name: &str,
    username: &str,
) -> Result<DatabaseUserRecord, AtlasError> {
    state
        .inner
        .store
        .get_database_user(id.as_str(), database_name, username)
        .await?
        .ok_or_else(|| AtlasError::username_not_found(username))
}

/// One database user.
///
/// Atlas operation `getGroupDatabaseUser`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/databaseUsers/{databaseName}/{username}",
    operation_id = "getGroupDatabaseUser",
    tag = "Database Users",
    params(GroupPath, UserPath, EntityParams),
    responses((status = 200, description = "The user.", content_type = ATLAS_2023, body = UserOut)),
)]
pub async fn get_group_database_user(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let rec = load_user(&state, &id, &database_name, &username).await?;
    let doc = decode_doc(&rec)?;
    let body = user_out(&base, &rec, doc);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// Changes a user's roles, scopes, labels, description, password or deleteAfterDate; its name,
/// database and authentication method cannot change (409).
///
/// Atlas operation `updateGroupDatabaseUser`.
#[utoipa::path(
    patch,
    path = "/api/atlas/v2/groups/{groupId}/databaseUsers/{databaseName}/{username}",
    operation_id = "updateGroupDatabaseUser",
    tag = "Database Users",
    params(GroupPath, UserPath, EntityParams),
    request_body(content = UserIn, content_type = ATLAS_2023),
    responses(
        (status = 200, description = "The user as changed.", content_type = ATLAS_2023, body = UserOut),
        (status = 409, description = "The body names another username, database or authentication method.", content_type = JSON, body = ApiErrorBody),
    ),
)]
pub async fn update_group_database_user(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let (id, _) = load_project(&state, &caller, &group_id, WRITERS).await?;
    let input: UserIn = parse_json(&bytes)?;
    check_group_id(&input.group_id, &id)?;
    let mut rec = load_user(&state, &id, &database_name, &username).await?;
    let mut doc = decode_doc(&rec)?;
    if input.username.as_ref().is_some_and(|u| *u != rec.username) {
        return Err(AtlasError::username_cannot_change());
    }
    if input
        .database_name
        .as_ref()
        .is_some_and(|d| *d != rec.database_name)
    {
        return Err(AtlasError::database_name_cannot_change());
    }
    // An omitted type field means "unchanged"; a different value is refused.
    for (given, current) in [
        (&input.x509_type, &rec.x509_type),
        (&input.aws_iam_type, &doc.aws_iam_type),
        (&input.ldap_auth_type, &doc.ldap_auth_type),
        (&input.oidc_auth_type, &doc.oidc_auth_type),
    ] {
        if given.as_ref().is_some_and(|g| g != current) {
            return Err(AtlasError::auth_type_cannot_change());
        }
    }
    let method = Method::of(
        !X509Type::None.is(&rec.x509_type),
        &doc.aws_iam_type,
        &doc.ldap_auth_type,
        &doc.oidc_auth_type,
        false,
    )?;
    if input.password.is_some() && method != Method::Scram {
        return Err(if method == Method::X509 {
            AtlasError::x509_cannot_use_scram()
        } else {
            AtlasError::validation_error("only SCRAM users have a password")
        });
    }
    check_password(&input.password)?;
    if method == Method::X509 && input.delete_after_date.is_some() {
        return Err(AtlasError::x509_cannot_be_temporary());
    }
    if let Some(roles) = input.roles {
        doc.roles = parse_roles(roles)?;
    }
    if let Some(scopes) = input.scopes {
        doc.scopes = parse_scopes(scopes)?;
    }
    if let Some(labels) = input.labels {
        doc.labels = parse_labels(labels)?;
    }
    if input.description.is_some() {
        doc.description = parse_description(input.description)?;
    }
    if input.delete_after_date.is_some() {
        doc.delete_after_date = parse_delete_after(input.delete_after_date)?;
    }
    rec.doc = doc.to_json();
    if !state.inner.store.update_database_user(&rec).await? {
        return Err(AtlasError::username_not_found(&username));
    }
    let body = user_out(&base, &rec, doc);
    Ok(base.respond(StatusCode::OK, &body, Shape::Entity, format))
}

/// Deletes a database user. A MANAGED x.509 user's unexpired certificates are revoked in the
/// same transaction (`cessationOfOperation`), unless `revoke-on-user-delete` is off;
/// certificates are kept, as in Atlas, and stay in dbcerts' status list.
///
/// Atlas operation `deleteGroupDatabaseUser`.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/groups/{groupId}/databaseUsers/{databaseName}/{username}",
    operation_id = "deleteGroupDatabaseUser",
    tag = "Database Users",
    params(GroupPath, UserPath, EntityParams),
    responses((status = 204, description = "Deleted; no body.")),
)]
pub async fn delete_group_database_user(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
    _: EntityQuery,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, WRITERS).await?;
    if !super::revocation::delete_user_revoking(&state, &caller, &id, &database_name, &username)
        .await?
    {
        return Err(AtlasError::username_not_found(&username));
    }
    tracing::info!(project = id.as_str(), database = %database_name, "deleted database user");
    let mut res = with_content_type(StatusCode::NO_CONTENT, Vec::new(), base.api);
    res.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
    Ok(res.into_response())
}

/// Finds a user by name for the certificate operations: on `$external` first, then `admin`.
pub async fn find_cert_user(
    state: &AppState,
    id: &GroupId,
    username: &str,
) -> Result<DatabaseUserRecord, AtlasError> {
    for db in [EXTERNAL, ADMIN] {
        if let Some(u) = state
            .inner
            .store
            .get_database_user(id.as_str(), db, username)
            .await?
        {
            return Ok(u);
        }
    }
    Err(AtlasError::username_not_found(username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_shapes() {
        assert!(is_dn_with_cn(
            "CN=david@example.com,OU=users,DC=example,DC=com"
        ));
        assert!(is_dn_with_cn("CN=Dylan Bloggs,OU=Enterprise"));
        assert!(is_dn_with_cn("cn=a\\,b"));
        assert!(!is_dn_with_cn("david"));
        assert!(!is_dn_with_cn("OU=x,DC=y"));
        assert!(!is_dn_with_cn("CN=a,,OU=b"));
        assert!(!is_dn_with_cn("CN=a\\"));
    }

    #[test]
    fn method_combinations() {
        assert_eq!(
            Method::of(true, "NONE", "NONE", "NONE", false).unwrap(),
            Method::X509
        );
        assert_eq!(
            Method::of(false, "NONE", "NONE", "NONE", true).unwrap(),
            Method::Scram
        );
        assert_eq!(
            Method::of(true, "NONE", "USER", "NONE", false)
                .unwrap_err()
                .code,
            "ATLAS_X509_USER_CANNOT_USE_LDAP"
        );
        assert_eq!(
            Method::of(true, "NONE", "NONE", "NONE", true)
                .unwrap_err()
                .code,
            "ATLAS_X509_USER_CANNOT_USE_SCRAM"
        );
        assert_eq!(
            Method::of(false, "USER", "NONE", "USER", false)
                .unwrap_err()
                .code,
            "VALIDATION_ERROR"
        );
    }
}
