//! dbcerts' own OpenAPI 3.1 document, served at `GET /api/dbcerts/v1/openapi.json`.
//!
//! The document is generated with `utoipa` from the handlers' `#[utoipa::path]` attributes and the
//! `ToSchema` derives on the wire structs they read and write, so it changes with the code. The
//! handlers are written once, for `/api/atlas/v2`; [`document`] then states what the router does
//! with them and what every operation shares, in one place:
//!
//! - every Atlas operation but the service-account ones is also served under `/api/atlas/v1.0`,
//!   with `application/json` for the versioned media type (operationId suffixed `_v1`);
//! - service-account operations answer `application/vnd.atlas.2024-08-05+json`;
//! - every Atlas operation may answer the errors of the layers in front of it (authentication,
//!   version negotiation, rate limits, query parameters, body limits), in Atlas's error format;
//! - every request body refuses attributes it does not declare (`INVALID_ATTRIBUTE`) and `null`
//!   anywhere (`INVALID_JSON_ATTRIBUTE`), so request objects are `additionalProperties: false` and
//!   nothing in the document is nullable (dbcerts never sends `null` either).
//!
//! The document is public: it describes the API, which is itself documented, and holds no
//! configuration, secret or data of the server that serves it.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The media type of Atlas operations at API version 2023-01-01.
pub const ATLAS_2023: &str = "application/vnd.atlas.2023-01-01+json";
/// The media type of the service-account operations (API version 2024-08-05).
pub const ATLAS_2024: &str = "application/vnd.atlas.2024-08-05+json";
/// Errors, `/api/atlas/v1.0`, OAuth, health and the document itself.
pub const JSON: &str = "application/json";
/// The project CA of the extension endpoint.
pub const PEM: &str = "application/x-pem-file";
/// Where the document is served.
pub const PATH: &str = "/api/dbcerts/v1/openapi.json";

const V2: &str = "/api/atlas/v2";
const V1: &str = "/api/atlas/v1.0";

/// A string schema with exactly `values`: the enumerations handlers check against.
pub fn string_enum(values: &[&str]) -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// `ApiError.parameters`: the plain values substituted into the message, strings or numbers.
pub fn error_parameters() -> utoipa::openapi::Array {
    ArrayBuilder::new()
        .items(
            OneOfBuilder::new()
                .item(ObjectBuilder::new().schema_type(Type::String))
                .item(ObjectBuilder::new().schema_type(Type::Number)),
        )
        .build()
}

/// A read-only attribute that clients may echo back: any value, accepted and ignored.
pub fn echoed() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .read_only(Some(true))
        .description(Some(
            "Read-only; accepted in requests, whatever its value, and ignored.",
        ))
        .build()
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "DigestAuth",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Digest)
                    .description(Some(
                        "HTTP Digest (MD5, qop=auth) with an API key: the public key as username, \
                         the private key as password.",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "ServiceAccounts",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token of a service account, from POST /api/oauth/token.",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "ClientCredentials",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The project-path operations that share their handler with the organization-path ones
/// (`routes::service_accounts`): one function cannot name two `paths(...)` entries.
struct ProjectPaths;

impl utoipa::Modify for ProjectPaths {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use crate::routes::service_accounts as sa;
        fn add<P: utoipa::Path>(doc: &mut utoipa::openapi::OpenApi) {
            let mut operation = P::operation();
            operation.tags = Some(vec![sa::PROJECT_PATHS_TAG.to_owned()]);
            doc.paths
                .add_path_operation(P::path(), P::methods(), operation);
        }
        add::<sa::CreateGroupServiceAccountSecret>(doc);
        add::<sa::DeleteGroupServiceAccountSecret>(doc);
        add::<sa::ListGroupServiceAccountAccessList>(doc);
        add::<sa::CreateGroupServiceAccountAccessList>(doc);
        add::<sa::DeleteGroupServiceAccountAccessListEntry>(doc);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dbcerts",
        description = "The MongoDB Atlas Administration API's X.509 authentication resource as \
            dbcerts serves it (Atlas paths under /api/atlas/v2 and /api/atlas/v1.0), with dbcerts' \
            extensions (/api/dbcerts/v1, /health). Where dbcerts differs from MongoDB's own \
            specification, this document describes dbcerts; docs/COMPATIBILITY.md lists each \
            difference.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    security(("DigestAuth" = []), ("ServiceAccounts" = [])),
    paths(
        crate::routes::projects::list_groups,
        crate::routes::projects::create_group,
        crate::routes::projects::get_group,
        crate::routes::projects::delete_group,
        crate::routes::database_users::list_group_database_users,
        crate::routes::database_users::create_group_database_user,
        crate::routes::database_users::get_group_database_user,
        crate::routes::database_users::update_group_database_user,
        crate::routes::database_users::delete_group_database_user,
        crate::routes::certs::list_group_database_user_certs,
        crate::routes::certs::create_group_database_user_cert,
        crate::routes::user_security::get_group_user_security,
        crate::routes::user_security::update_group_user_security,
        crate::routes::user_security::disable_group_user_security_customer_x509,
        crate::routes::api_keys::list_org_api_keys,
        crate::routes::api_keys::create_org_api_key,
        crate::routes::api_keys::get_org_api_key,
        crate::routes::api_keys::update_org_api_key,
        crate::routes::api_keys::delete_org_api_key,
        crate::routes::api_keys::list_org_api_key_access_list_entries,
        crate::routes::api_keys::create_org_api_key_access_list_entry,
        crate::routes::api_keys::get_org_api_key_access_list_entry,
        crate::routes::api_keys::delete_org_api_key_access_list_entry,
        crate::routes::api_keys::list_group_api_keys,
        crate::routes::api_keys::create_group_api_key,
        crate::routes::api_keys::add_group_api_key,
        crate::routes::api_keys::update_group_api_key_roles,
        crate::routes::api_keys::remove_group_api_key,
        crate::routes::service_accounts::list_org_service_accounts,
        crate::routes::service_accounts::create_org_service_account,
        crate::routes::service_accounts::get_org_service_account,
        crate::routes::service_accounts::update_org_service_account,
        crate::routes::service_accounts::delete_org_service_account,
        crate::routes::service_accounts::get_org_service_account_groups,
        crate::routes::service_accounts::create_service_account_secret,
        crate::routes::service_accounts::delete_service_account_secret,
        crate::routes::service_accounts::list_service_account_access_list,
        crate::routes::service_accounts::create_service_account_access_list,
        crate::routes::service_accounts::delete_service_account_access_list_entry,
        crate::routes::service_accounts::list_group_service_accounts,
        crate::routes::service_accounts::create_group_service_account,
        crate::routes::service_accounts::get_group_service_account,
        crate::routes::service_accounts::update_group_service_account,
        crate::routes::service_accounts::delete_group_service_account,
        crate::routes::service_accounts::invite_group_service_account,
        crate::auth::oauth::token,
        crate::auth::oauth::revoke,
        crate::routes::extension::get_project_ca,
        crate::routes::crl::get_project_crl,
        crate::routes::crl::get_distributed_crl,
        crate::routes::revocation::revoke_database_user_cert,
        crate::routes::revocation::revoke_all_database_user_certs,
        crate::routes::revocation::list_database_user_cert_statuses,
        crate::routes::ca_generations::list_project_ca_generations,
        crate::routes::ca_generations::rotate_project_ca,
        crate::routes::ca_generations::retire_project_ca_generation,
        crate::routes::ocsp::post_ocsp_request,
        crate::routes::ocsp::get_ocsp_request,
        crate::observe::live,
        crate::observe::ready,
        crate::observe::metrics,
        serve,
    ),
    modifiers(&Security, &ProjectPaths),
)]
struct Generated;

/// The document dbcerts serves (see the module documentation for what is added to the
/// generated one).
pub fn document() -> Value {
    let mut doc = serde_json::to_value(Generated::openapi()).expect("the document serializes");
    finish(&mut doc);
    doc
}

/// The served bytes: the document, pretty-printed, with a final newline.
pub fn document_text() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let mut s = serde_json::to_string_pretty(&document()).expect("the document serializes");
        s.push('\n');
        s
    });
    &TEXT
}

/// This document, in OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/api/dbcerts/v1/openapi.json",
    operation_id = "getOpenApiDocument",
    tag = "dbcerts",
    security(()),
    responses((status = 200, description = "This document.", content_type = JSON, body = Object)),
)]
pub async fn serve() -> Response {
    let mut res = (StatusCode::OK, document_text()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    res
}

/// Error responses every Atlas operation may give, from the layers in front of its handler.
const COMMON_ERRORS: [(&str, &str); 6] = [
    (
        "400",
        "A query parameter is malformed or given twice (INVALID_QUERY_PARAMETER), or the request \
         is otherwise invalid.",
    ),
    (
        "401",
        "No valid credentials (the Digest challenge is in WWW-Authenticate), or the caller lacks \
         the role.",
    ),
    (
        "403",
        "The caller's address is not on its access list, or the caller may not do this.",
    ),
    (
        "404",
        "The resource, or a project or organization it belongs to, does not exist or is not \
         visible to the caller.",
    ),
    (
        "429",
        "Too many requests, or too many failed authentications from this address (Retry-After).",
    ),
    (
        "500",
        "An unexpected error; the cause is logged with the request id.",
    ),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/ApiError"}}},
    })
}

/// Adds what the router and its layers do to the generated document.
fn finish(doc: &mut Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    let mut v1 = Map::new();
    for (path, item) in paths.iter_mut() {
        let Some(rest) = path.strip_prefix(V2) else {
            continue;
        };
        let item = item.as_object_mut().expect("path item");
        for op in item.values_mut() {
            add_common_errors(op, true);
            if op["operationId"] == "updateGroupDatabaseUser" {
                op["requestBody"]["content"][ATLAS_2023]["schema"] =
                    json!({"$ref": "#/components/schemas/CloudDatabaseUserUpdate"});
            }
        }
        let service_accounts = item
            .values()
            .any(|op| op["tags"][0] == json!("Service Accounts"));
        if !service_accounts {
            let mut copy = Value::Object(item.clone());
            for op in copy.as_object_mut().expect("path item").values_mut() {
                let id = op["operationId"].as_str().expect("operationId").to_owned();
                op["operationId"] = json!(format!("{id}_v1"));
                op["responses"]
                    .as_object_mut()
                    .expect("responses")
                    .remove("406");
                rename_media_type(op, ATLAS_2023, JSON);
                if id == "updateGroupDatabaseUser" {
                    op["requestBody"]["content"][JSON]["schema"] =
                        json!({"$ref": "#/components/schemas/CloudDatabaseUserUpdate"});
                }
                if id == "createGroupDatabaseUser" {
                    op["requestBody"]["content"][JSON]["schema"] =
                        json!({"$ref": "#/components/schemas/CloudDatabaseUserCreateV1"});
                }
            }
            v1.insert(format!("{V1}{rest}"), copy);
        }
    }
    paths.extend(v1);
    for op in doc["paths"]
        .as_object_mut()
        .expect("paths")
        .values_mut()
        .flat_map(|item| item.as_object_mut().expect("path item").values_mut())
    {
        if op["tags"][0] == json!("Service Accounts") {
            rename_media_type(op, ATLAS_2023, ATLAS_2024);
        }
    }
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("schemas");
    // `/api/atlas/v1.0` takes the project of a new database user from the path alone.
    let mut create_v1 = schemas["CloudDatabaseUserCreate"].clone();
    if let Some(required) = create_v1["required"].as_array_mut() {
        required.retain(|r| r != "groupId");
    }
    schemas.insert("CloudDatabaseUserCreateV1".into(), create_v1);
    // A PATCH changes only what it names.
    let mut update = schemas["CloudDatabaseUserCreate"].clone();
    if let Some(o) = update.as_object_mut() {
        o.remove("required");
        o.insert(
            "description".into(),
            json!("CloudDatabaseUser as a PATCH sends it: every attribute optional."),
        );
    }
    schemas.insert("CloudDatabaseUserUpdate".into(), update);
    let requests = request_schemas(doc);
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("schemas");
    for name in requests {
        if let Some(s) = schemas.get_mut(&name) {
            close_objects(s);
        }
    }
    strip_null(doc);
}

fn add_common_errors(op: &mut Value, versioned: bool) {
    let responses = op["responses"].as_object_mut().expect("responses");
    for (status, description) in COMMON_ERRORS {
        responses
            .entry(status)
            .or_insert_with(|| error_response(description));
    }
    if versioned {
        responses.entry("406").or_insert_with(|| {
            error_response(
                "Accept names no Atlas API version (application/vnd.atlas.YYYY-MM-DD+json) this \
                 operation has (INVALID_VERSION_DATE).",
            )
        });
    }
    if op.get("requestBody").is_some() {
        for (status, description) in [
            ("408", "The request body did not arrive in time."),
            ("413", "The request body is larger than the server accepts."),
        ] {
            op["responses"]
                .as_object_mut()
                .expect("responses")
                .entry(status)
                .or_insert_with(|| error_response(description));
        }
    }
}

/// Replaces media type `from` with `to` in an operation's request body and responses.
fn rename_media_type(op: &mut Value, from: &str, to: &str) {
    let rename = |content: &mut Value| {
        if let Some(content) = content.as_object_mut()
            && let Some(media) = content.remove(from)
        {
            content.insert(to.to_owned(), media);
        }
    };
    if let Some(body) = op.get_mut("requestBody") {
        rename(&mut body["content"]);
    }
    if let Some(responses) = op["responses"].as_object_mut() {
        for r in responses.values_mut() {
            if let Some(c) = r.get_mut("content") {
                rename(c);
            }
        }
    }
}

/// The schemas request bodies name, and every schema they name in turn.
fn request_schemas(doc: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo: Vec<Value> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .filter_map(|op| op.get("requestBody").cloned())
        .collect();
    while let Some(v) = todo.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref")
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                    && found.insert(name.to_owned())
                {
                    todo.push(doc["components"]["schemas"][name].clone());
                }
                todo.extend(map.into_iter().map(|(_, v)| v));
            }
            Value::Array(items) => todo.extend(items),
            _ => {}
        }
    }
    found
}

/// `additionalProperties: false` on a request object schema and the objects inlined in it.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (k, v) in map.iter_mut() {
                if k != "additionalProperties" {
                    close_objects(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Removes `null` from every `type` list, and `null` alternatives from `oneOf`s.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types[0].clone();
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(alternatives)) = map.get_mut("oneOf") {
                alternatives.retain(|a| a != &json!({"type": "null"}));
                if alternatives.len() == 1 {
                    let only = alternatives.pop().expect("one");
                    map.remove("oneOf");
                    if let Value::Object(o) = only {
                        map.extend(o);
                    }
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}
