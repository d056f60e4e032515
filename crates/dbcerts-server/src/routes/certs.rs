//! X.509 certificates of managed users: listDatabaseUserCerts and createDatabaseUserCert.
//!
//! Creation order: validate the body; find the project, the user, and check it is MANAGED and
//! that no customer CA is set; get a CA that covers the certificate (rotating the project CA
//! first when the active one would not, [`crate::ca_service::CaService::for_leaf`]); take a pooled key (or generate one) and sign, off the async
//! runtime for RSA (ECDSA takes tens of microseconds, less than the hand-off); durably commit
//! the certificate row (shared with concurrent requests, see [`crate::journal`]); only then
//! count it (`dbcerts_certificates_issued_total`) and return certificate and key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dbcerts_ca::{LeafRequest, leaf_validity, random_serial, response_pem};
use dbcerts_store::{CertificateRecord, StoreError};
use serde::{Deserialize, Serialize};

use super::database_users::find_cert_user;
use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::body::{ReadOnly, parse_json};
use crate::error::AtlasError;
use crate::format::{Format, Shape, atlas_time, envelope, json_response, with_content_type};
use crate::links::{Base, Paginated};
use crate::openapi::ATLAS_2023;
use crate::params::{EntityParams, EntityQuery, GroupPath, ListParams, ListQuery};
use crate::values::{MonthsUntilExpiration, X509Type};

/// Serial collisions are astronomically rare (63 random bits); retry a few times anyway.
const SERIAL_ATTEMPTS: usize = 4;

/// `UserCert` as Atlas lists it: no `links`, no `monthsUntilExpiration`.
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
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
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
    if !X509Type::Managed.is(&user.x509_type) {
        return Err(AtlasError::user_not_managed_x509());
    }
    // A user stored under older username rules (or written to the store by hand) may hold a
    // name today's rules refuse: such a name never reaches a certificate's CN.
    if dbcerts_ca::dn::check_managed_username(&user.username).is_err() {
        return Err(AtlasError::managed_x509_name_invalid(&user.username));
    }
    if state
        .inner
        .store
        .get_user_security(id.as_str())
        .await?
        .customer_cas
        .is_some()
    {
        return Err(AtlasError::advanced_x509());
    }
    // A CA that covers the certificate: the active one, or a new generation when the active
    // one would expire within the rotation margin of the certificate's end.
    let (_, planned_not_after) = leaf_validity(chrono::Utc::now(), months)
        .map_err(|e| AtlasError::unexpected(format!("validity: {e}")))?;
    let who = crate::ca_service::Who::of(&caller);
    let ca = state
        .inner
        .ca
        .for_leaf(id.as_str(), planned_not_after, &who)
        .await?;
    let key = std::sync::Arc::new(take_key(&state).await?);
    for _ in 0..SERIAL_ATTEMPTS {
        let now = chrono::Utc::now();
        let (not_before, not_after) = leaf_validity(now, months)
            .map_err(|e| AtlasError::unexpected(format!("validity: {e}")))?;
        let serial = random_serial();
        let (ca2, key2, name) = (
            std::sync::Arc::clone(&ca),
            std::sync::Arc::clone(&key),
            user.username.clone(),
        );
        let ocsp_url = state.inner.config.ocsp.leaf_url(id.as_str());
        let issued = off_runtime_unless(ca.algorithm().is_cheap(), move || {
            ca2.issue_with_ocsp_url(
                &LeafRequest {
                    username: &name,
                    serial,
                    not_before,
                    not_after,
                },
                &key2,
                ocsp_url.as_deref(),
            )
        })
        .await?
        .map_err(|e| AtlasError::unexpected(format!("signing: {e}")))?;
        let rec = CertificateRecord {
            serial,
            project_id: id.as_str().to_owned(),
            username: user.username.clone(),
            subject: issued.subject,
            not_before: not_before.timestamp(),
            not_after: not_after.timestamp(),
            created_ms: now.timestamp_millis(),
            cert_der: issued.der,
            ca_id: ca.id,
            revocation: None,
        };
        let audit = crate::journal::certificate_issued_event(
            &rec,
            caller.actor(),
            caller.ip.map(|ip| ip.to_string()),
            key.algorithm(),
        );
        match state
            .inner
            .journal
            .insert_certificate(rec.clone(), audit)
            .await
        {
            Ok(()) => {
                tracing::info!(project = id.as_str(), serial, algorithm = %key.algorithm(), months, "issued certificate");
                crate::observe::certificate_issued(id.as_str(), key.algorithm());
                let pem = response_pem(&rec.cert_der, &key);
                let mut res = pem_response(pem.as_str(), format, base.api);
                res.extensions_mut().insert(crate::auth::Audited);
                return Ok(res);
            }
            Err(StoreError::Conflict(_)) => {
                tracing::warn!(
                    serial,
                    "certificate serial collision; retrying with a new serial"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AtlasError::unexpected(
        "could not find a free certificate serial",
    ))
}

/// A leaf key: a pooled one if ready, else a new one, generated off the async runtime unless
/// the algorithm is cheap.
async fn take_key(state: &AppState) -> Result<dbcerts_ca::LeafKey, AtlasError> {
    if let Some(key) = state.inner.pool.try_take() {
        return Ok(key);
    }
    let pool = std::sync::Arc::clone(&state.inner.pool);
    off_runtime_unless(pool.algorithm().is_cheap(), move || pool.take_or_generate())
        .await?
        .map_err(|e| AtlasError::unexpected(format!("key generation: {e}")))
}

/// Runs `work` on this thread when `cheap`, else on a blocking thread.
pub(crate) async fn off_runtime_unless<T: Send + 'static>(
    cheap: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AtlasError> {
    if cheap {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AtlasError::unexpected(format!("blocking task: {e}")))
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
