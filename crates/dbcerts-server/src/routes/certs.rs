//! X.509 certificates of managed users: listDatabaseUserCerts and createDatabaseUserCert.
//!
//! createDatabaseUserCert parses the query and body (`monthsUntilExpiration`), authorizes the
//! caller (Project Owner), finds the user, and renders the PEM answer; everything between (who
//! may get a certificate, the CA, the key, signing, the durable commit before the key leaves)
//! is [`crate::issuance`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dbcerts_ca::response_pem;
use serde::{Deserialize, Serialize};

use super::database_users::find_cert_user;
use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::body::{ReadOnly, parse_json};
use crate::ca_service::Who;
use crate::error::AtlasError;
use crate::format::{Format, Shape, atlas_time, envelope, json_response, with_content_type};
use crate::issuance;
use crate::links::{Base, Paginated};
use crate::openapi::ATLAS_2023;
use crate::params::{EntityParams, EntityQuery, GroupPath, ListParams, ListQuery};
use crate::values::MonthsUntilExpiration;

/// `UserCert` as Atlas lists it: no `links`, no `monthsUntilExpiration`.
// Its fields stay in their JSON names' byte order (the list serializes it straight).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserCert)]
pub struct UserCertOut {
    /// The certificate's serial number.
    #[serde(rename = "_id")]
    id: i64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(pattern = "^([a-f0-9]{24})$")]
    group_id: String,
    #[schema(format = DateTime)]
    not_after: String,
    /// `CN=<username>`, the whole subject of a certificate dbcerts issues (MongoDB's
    /// specification's pattern, taken from LDAP DNs, requires DC= components).
    #[schema(pattern = "^CN=.+$")]
    subject: String,
}

impl UserCertOut {
    /// A certificate as Atlas lists it (`createdAt` is its notBefore).
    pub(crate) fn new(
        serial: i64,
        group_id: &str,
        not_before: i64,
        not_after: i64,
        subject: String,
    ) -> UserCertOut {
        UserCertOut {
            id: serial,
            created_at: atlas_time(not_before),
            group_id: group_id.to_owned(),
            not_after: atlas_time(not_after),
            subject,
        }
    }
}

/// `UserCert` as a client sends it: only `monthsUntilExpiration` is writable; the read-only
/// fields are accepted and ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserCertRequest)]
pub struct UserCertIn {
    /// 1 to 24, default 3.
    #[serde(default, deserialize_with = "crate::body::integral")]
    #[schema(minimum = 1, maximum = 24, value_type = Option<i32>)]
    pub months_until_expiration: Option<i64>,
    #[serde(rename = "_id")]
    #[schema(schema_with = crate::openapi::echoed)]
    _id: Option<ReadOnly>,
    #[serde(rename = "createdAt")]
    #[schema(schema_with = crate::openapi::echoed)]
    _created_at: Option<ReadOnly>,
    #[serde(rename = "groupId")]
    #[schema(schema_with = crate::openapi::echoed)]
    _group_id: Option<ReadOnly>,
    #[serde(rename = "notAfter")]
    #[schema(schema_with = crate::openapi::echoed)]
    _not_after: Option<ReadOnly>,
    #[serde(rename = "subject")]
    #[schema(schema_with = crate::openapi::echoed)]
    _subject: Option<ReadOnly>,
    #[serde(rename = "links")]
    #[schema(schema_with = crate::openapi::echoed)]
    _links: Option<ReadOnly>,
}

/// The user's unexpired certificates issued by dbcerts.
///
/// Atlas operation `listGroupDatabaseUserCerts`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/databaseUsers/{username}/certs",
    operation_id = "listGroupDatabaseUserCerts",
    tag = "X.509 Authentication",
    params(GroupPath, ("username" = String, Path, description = "A MANAGED x.509 user."), ListParams),
    responses((status = 200, description = "A page of certificates.", content_type = ATLAS_2023, body = Paginated<UserCertOut>)),
)]
pub async fn list_group_database_user_certs(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    find_cert_user(&state, &id, &username).await?;
    let now = chrono::Utc::now().timestamp();
    let (certs, total) = state
        .inner
        .store
        .list_unexpired_certificates(id.as_str(), &username, now, query.paging.page())
        .await?;
    let results = certs
        .into_iter()
        .map(|c| UserCertOut::new(c.serial, id.as_str(), c.not_before, c.not_after, c.subject))
        .collect();
    let segments = ["groups", id.as_str(), "databaseUsers", &username, "certs"];
    let body = Paginated::new(&base, &segments, &query.paging, total, results);
    // Paginated, Link and UserCertOut declare their fields in their JSON names' order.
    Ok(base.respond_fields_sorted(StatusCode::OK, &body, Shape::List, query.format))
}

/// Issues a certificate for a MANAGED x.509 user, signed by the project's CA, with a new private
/// key that dbcerts does not keep.
///
/// Atlas operation `createGroupDatabaseUserCert`.
#[utoipa::path(
    post,
    path = "/api/atlas/v2/groups/{groupId}/databaseUsers/{username}/certs",
    operation_id = "createGroupDatabaseUserCert",
    tag = "X.509 Authentication",
    params(GroupPath, ("username" = String, Path, description = "A MANAGED x.509 user."), EntityParams),
    request_body(content = UserCertIn, content_type = ATLAS_2023),
    responses(
        (status = 201, content_type = ATLAS_2023, body = String, description = "The certificate then its unencrypted PKCS#8 private key, as PEM text. As Atlas does, the PEM is the raw body (not a quoted JSON string) under this media type; with envelope=true it is the JSON string `content` of the envelope.",
            example = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"),
    ),
)]
pub async fn create_group_database_user_cert(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let input: UserCertIn = parse_json(&bytes)?;
    let months = MonthsUntilExpiration::from_attribute(input.months_until_expiration)?.get();
    let user = find_cert_user(&state, &id, &username).await?;
    issuance::check_eligible(&state, &id, &user).await?;
    let issued = issuance::issue(&state, Who::of(&caller), &id, &user.username, months).await?;
    let pem = response_pem(&issued.cert_der, &issued.key);
    let mut res = pem_response(pem.as_str(), format, base.api);
    res.extensions_mut().insert(crate::auth::Audited);
    Ok(res)
}

/// 201 with the raw PEM as the body (Atlas sends it under the JSON media type, unquoted), or
/// `{"content": "<pem>", "status": 201}` with `envelope=true`.
fn pem_response(pem: &str, format: Format, api: crate::format::ApiVersion) -> Response {
    if format.envelope {
        let value = envelope(
            serde_json::Value::String(pem.to_owned()),
            StatusCode::CREATED,
            Shape::Entity,
        );
        return json_response(
            StatusCode::CREATED,
            &value,
            Shape::Entity,
            Format {
                envelope: false,
                ..format
            },
            api,
        );
    }
    with_content_type(StatusCode::CREATED, pem.as_bytes().to_vec(), api)
}
