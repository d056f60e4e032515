//! Certificate revocation and status, a dbcerts extension (issue 17, section 1):
//!
//! - `POST /api/dbcerts/v1/groups/{groupId}/databaseUsers/{username}/certs/{serial}:revoke`
//!   revokes one certificate; `POST .../databaseUsers/{username}/certs:revoke` revokes every
//!   unexpired certificate of the user. Body `{"reason": "<RFC 5280 name>"}` (default
//!   `unspecified`). Project Owner. The revocation is committed (with one audit entry per
//!   certificate revoked, in the same transaction) before the 200; revoking again changes
//!   nothing and answers the first time and reason.
//! - `GET .../databaseUsers/{username}/certs` lists every certificate of the user with its
//!   status: VALID, EXPIRING (within `RevocationConfig::expiring_within_secs`), EXPIRED or
//!   REVOKED (with time and reason). Project Read Only. Paginated as Atlas lists are.
//! - [`delete_user_revoking`]: deleting a MANAGED user revokes its certificates in the same
//!   transaction (unless `revoke-on-user-delete` is off).
//!
//! A serial is found only among the certificates of the user named in the path, in the project
//! named in the path: a serial of another user or another project answers exactly as one that
//! does not exist (404 `CERTIFICATE_NOT_FOUND`), so a project cannot even confirm another's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dbcerts_store::{AuditEvent, CertificateRecord, Revocation, RevocationReason, RevokeWhich};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Audited, Caller, ProjectRole};
use crate::body::parse_json;
use crate::error::AtlasError;
use crate::format::{Shape, atlas_time};
use crate::links::{Base, Paginated};
use crate::params::{GroupId, GroupPath, ListParams, ListQuery};

/// The extension's path prefix.
pub const PREFIX: &str = "/api/dbcerts/v1";

/// The revocation routes, with the API-version marker their JSON answers and links use (the
/// `application/json` media type of v1.0; links are rebased onto [`PREFIX`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    let users = "/api/dbcerts/v1/groups/{groupId}/databaseUsers/{username}";
    axum::Router::new()
        .route(
            &format!("{users}/certs"),
            get(list_database_user_cert_statuses),
        )
        .route(
            &format!("{users}/certs:revoke"),
            post(revoke_all_database_user_certs),
        )
        .route(
            &format!("{users}/certs/{{serial}}"),
            post(revoke_database_user_cert),
        )
        .layer(axum::middleware::from_fn(
            |mut req: axum::extract::Request, next: axum::middleware::Next| {
                req.extensions_mut().insert(crate::format::ApiVersion::V1);
                next.run(req)
            },
        ))
}

/// The body of both revoke operations.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RevokeRequest)]
pub struct RevokeIn {
    /// The RFC 5280 reason: `unspecified` (the default), `keyCompromise`,
    /// `affiliationChanged`, `superseded` or `cessationOfOperation`.
    #[schema(value_type = Option<String>, example = "keyCompromise")]
    pub reason: Option<Value>,
}

/// A certificate with its status: Atlas's `UserCert` fields, then the status.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserCertStatus)]
pub struct CertStatusOut {
    #[serde(flatten)]
    cert: super::certs::UserCertOut,
    /// `VALID`, `EXPIRING` (valid, expires within the configured window, 30 days by default),
    /// `EXPIRED` or `REVOKED`.
    #[schema(example = "REVOKED")]
    status: &'static str,
    /// When it was revoked; only for REVOKED.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    /// The RFC 5280 reason; only for REVOKED.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "keyCompromise")]
    revocation_reason: Option<&'static str>,
}

/// The certificates one revoke-all call covered.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RevokedCerts)]
pub struct RevokedOut {
    results: Vec<CertStatusOut>,
    #[schema(value_type = i64, minimum = 0)]
    total_count: usize,
}

fn status_of(c: CertificateRecord, now: i64, expiring_within: i64) -> CertStatusOut {
    let status = match c.revocation {
        Some(_) => "REVOKED",
        None if c.not_after <= now => "EXPIRED",
        None if c.not_after - now <= expiring_within => "EXPIRING",
        None => "VALID",
    };
    CertStatusOut {
        cert: super::certs::UserCertOut::new(
            c.serial,
            &c.project_id,
            c.not_before,
            c.not_after,
            c.subject,
        ),
        status,
        revoked_at: c.revocation.map(|r| atlas_time(r.at)),
        revocation_reason: c.revocation.map(|r| r.reason.as_str()),
    }
}

fn invalid_reason(value: &str) -> AtlasError {
    AtlasError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_REVOCATION_REASON",
        format!(
            "Revocation reason {value} is not one of unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation."
        ),
    )
    .with_params([Value::String(value.to_owned())])
}

fn certificate_not_found(serial: &str, username: &str, group_id: &str) -> AtlasError {
    AtlasError::new(
        StatusCode::NOT_FOUND,
        "CERTIFICATE_NOT_FOUND",
        format!(
            "No certificate with serial {serial} exists for user {username} in group {group_id}."
        ),
    )
    .with_params([
        Value::String(serial.to_owned()),
        Value::String(username.to_owned()),
        Value::String(group_id.to_owned()),
    ])
}

/// The reason a revoke body asks for. An empty body means `unspecified`.
fn reason(bytes: &[u8]) -> Result<RevocationReason, AtlasError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(RevocationReason::Unspecified);
    }
    let input: RevokeIn = parse_json(bytes)?;
    match input.reason {
        None | Some(Value::Null) => Ok(RevocationReason::Unspecified),
        Some(Value::String(s)) => s.parse().map_err(|_| invalid_reason(&s)),
        Some(other) => Err(invalid_reason(&other.to_string())),
    }
}

/// The revocation of now with `reason`, and the audit entry the store completes per
/// certificate (adding its serial) under `action`.
fn revocation_now(
    caller: &Caller,
    project: &GroupId,
    username: &str,
    reason: RevocationReason,
    action: &str,
) -> (Revocation, AuditEvent) {
    let now = chrono::Utc::now();
    let revocation = Revocation {
        at: now.timestamp(),
        reason,
    };
    let audit = AuditEvent {
        at_ms: now.timestamp_millis(),
        actor: caller.actor(),
        source_ip: caller.ip.map(|ip| ip.to_string()),
        action: action.to_owned(),
        project_id: Some(project.as_str().to_owned()),
        target: Some(username.to_owned()),
        status: Some(200),
        details: serde_json::json!({
            "reason": reason.as_str(),
            "revokedAt": revocation.at,
        })
        .to_string(),
    };
    (revocation, audit)
}

/// Logs and counts the certificates of `certs` that `revocation` revoked (the others were
/// revoked before); returns whether there was any. Both revoke operations and user deletion
/// call it after their commit. A certificate is taken as revoked by this call when it holds
/// this call's time (seconds) and reason: a concurrent call with the same reason in the same
/// second is counted (metric, log line) as well, though the store revoked and audited the
/// certificate once.
fn note_revoked(project: &GroupId, revocation: Revocation, certs: &[CertificateRecord]) -> bool {
    let mut any = false;
    for c in certs.iter().filter(|c| c.revocation == Some(revocation)) {
        any = true;
        let reason = revocation.reason;
        tracing::info!(project = project.as_str(), serial = c.serial, reason = %reason, "revoked certificate");
        crate::observe::certificate_revoked(project.as_str(), reason.as_str());
    }
    any
}

/// Revokes `which` of (project, username), durably, auditing each certificate revoked now.
/// Returns the certificates and whether any was revoked by this call.
async fn revoke(
    state: &AppState,
    caller: &Caller,
    project: &GroupId,
    username: &str,
    which: RevokeWhich,
    reason: RevocationReason,
) -> Result<(Vec<CertificateRecord>, bool), AtlasError> {
    let (revocation, audit) =
        revocation_now(caller, project, username, reason, "certificate.revoked");
    let certs = state
        .inner
        .store
        .revoke_certificates(project.as_str(), username, which, revocation, &audit)
        .await?;
    let revoked_now = note_revoked(project, revocation, &certs);
    if revoked_now {
        crate::crl::rebuild_soon(state, project.as_str());
    }
    Ok((certs, revoked_now))
}

/// Whether a database user of that name exists in the project (certificates outlive users).
async fn user_exists(state: &AppState, id: &GroupId, username: &str) -> Result<bool, AtlasError> {
    match super::database_users::find_cert_user(state, id, username).await {
        Ok(_) => Ok(true),
        Err(e) if e.code == "USERNAME_NOT_FOUND" => Ok(false),
        Err(e) => Err(e),
    }
}

fn answered(status: StatusCode, body: &impl Serialize, revoked_now: bool) -> Response {
    let mut res = crate::format::json_response(
        status,
        body,
        Shape::Entity,
        Default::default(),
        crate::format::ApiVersion::V1,
    );
    // The store wrote one audit entry per certificate revoked now; a call that revoked nothing
    // new gets the middleware's generic entry instead.
    if revoked_now {
        res.extensions_mut().insert(Audited);
    }
    res
}

/// Revokes one certificate of a user.
#[utoipa::path(
    post,
    path = "/api/dbcerts/v1/groups/{groupId}/databaseUsers/{username}/certs/{serial}:revoke",
    operation_id = "revokeDatabaseUserCert",
    tag = "dbcerts",
    params(
        GroupPath,
        ("username" = String, Path, description = "The user the certificate was issued to."),
        ("serial" = i64, Path, description = "The certificate's serial number (`_id` in the certificate list)."),
    ),
    request_body(content = RevokeIn, content_type = crate::openapi::JSON, description = "Optional; the reason defaults to `unspecified`."),
    responses(
        (status = 200, description = "Revoked (now, or before: then with the first time and reason).", content_type = crate::openapi::JSON, body = CertStatusOut),
        (status = 400, description = "Malformed body or unknown reason (`INVALID_REVOCATION_REASON`).", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 401, description = "No valid credentials, or not Project Owner.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 404, description = "No such project, or no certificate with this serial for this user in this project (`CERTIFICATE_NOT_FOUND`).", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 429, description = "Too many requests.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 503, description = "The store is unavailable; nothing was revoked, or the retry finds it revoked.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn revoke_database_user_cert(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, username, serial_action)): AtlasPath<(String, String, String)>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let Some(serial_text) = serial_action.strip_suffix(":revoke") else {
        let path =
            format!("{PREFIX}/groups/{group_id}/databaseUsers/{username}/certs/{serial_action}");
        return Err(AtlasError::resource_not_found(&path));
    };
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let reason = reason(&bytes)?;
    let not_found = || certificate_not_found(serial_text, &username, id.as_str());
    let serial = serial_text
        .parse::<i64>()
        .ok()
        .filter(|s| *s > 0 && serial_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(not_found)?;
    let (mut certs, revoked_now) = revoke(
        &state,
        &caller,
        &id,
        &username,
        RevokeWhich::One(serial),
        reason,
    )
    .await?;
    let cert = certs.pop().ok_or_else(not_found)?;
    let out = status_of(
        cert,
        chrono::Utc::now().timestamp(),
        state.inner.config.revocation.expiring_within_secs,
    );
    Ok(answered(StatusCode::OK, &out, revoked_now))
}

/// Revokes every unexpired certificate of a user.
#[utoipa::path(
    post,
    path = "/api/dbcerts/v1/groups/{groupId}/databaseUsers/{username}/certs:revoke",
    operation_id = "revokeAllDatabaseUserCerts",
    tag = "dbcerts",
    params(GroupPath, ("username" = String, Path, description = "The user the certificates were issued to.")),
    request_body(content = RevokeIn, content_type = crate::openapi::JSON, description = "Optional; the reason defaults to `unspecified`."),
    responses(
        (status = 200, description = "Every unexpired certificate of the user, each revoked (now, or before: then with its first time and reason).", content_type = crate::openapi::JSON, body = RevokedOut),
        (status = 400, description = "Malformed body or unknown reason (`INVALID_REVOCATION_REASON`).", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 401, description = "No valid credentials, or not Project Owner.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 404, description = "No such project, or neither such a user nor certificates of that name (`USERNAME_NOT_FOUND`).", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 429, description = "Too many requests.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 503, description = "The store is unavailable; retry (revoking again is harmless).", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn revoke_all_database_user_certs(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let reason = reason(&bytes)?;
    let now = chrono::Utc::now().timestamp();
    let (certs, revoked_now) = revoke(
        &state,
        &caller,
        &id,
        &username,
        RevokeWhich::AllUnexpired { now },
        reason,
    )
    .await?;
    if certs.is_empty() && !user_exists(&state, &id, &username).await? {
        return Err(AtlasError::username_not_found(&username));
    }
    let window = state.inner.config.revocation.expiring_within_secs;
    let results: Vec<_> = certs
        .into_iter()
        .map(|c| status_of(c, now, window))
        .collect();
    let out = RevokedOut {
        total_count: results.len(),
        results,
    };
    Ok(answered(StatusCode::OK, &out, revoked_now))
}

/// Every certificate of a user, expired and revoked ones included, with its status.
#[utoipa::path(
    get,
    path = "/api/dbcerts/v1/groups/{groupId}/databaseUsers/{username}/certs",
    operation_id = "listDatabaseUserCertStatuses",
    tag = "dbcerts",
    params(GroupPath, ("username" = String, Path, description = "The user the certificates were issued to."), ListParams),
    responses(
        (status = 200, description = "A page of certificates, oldest first, as the Atlas list orders them.", content_type = crate::openapi::JSON, body = Paginated<CertStatusOut>),
        (status = 400, description = "A bad query parameter.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 401, description = "No valid credentials, or no role in the project.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 404, description = "No such project, or neither such a user nor certificates of that name.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 429, description = "Too many requests.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn list_database_user_cert_statuses(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    ListQuery(query): ListQuery,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let (certs, total) = state
        .inner
        .store
        .list_user_certificates(id.as_str(), &username, query.paging.page())
        .await?;
    if total == 0 && !user_exists(&state, &id, &username).await? {
        return Err(AtlasError::username_not_found(&username));
    }
    let now = chrono::Utc::now().timestamp();
    let window = state.inner.config.revocation.expiring_within_secs;
    let results = certs
        .into_iter()
        .map(|c| status_of(c, now, window))
        .collect();
    let base = base.rebased(PREFIX);
    let segments = ["groups", id.as_str(), "databaseUsers", &username, "certs"];
    let body = Paginated::new(&base, &segments, &query.paging, total, results);
    Ok(base.respond(StatusCode::OK, &body, Shape::List, query.format))
}

/// deleteDatabaseUser (v2 and v1.0): deletes the user and, in the same transaction, revokes a
/// MANAGED x.509 user's unexpired certificates (`cessationOfOperation`), the self-managed
/// counterpart of Atlas removing the user from its clusters, unless `revoke-on-user-delete`
/// is off. Returns whether the user existed.
pub async fn delete_user_revoking(
    state: &AppState,
    caller: &Caller,
    id: &GroupId,
    database_name: &str,
    username: &str,
) -> Result<bool, AtlasError> {
    let revoking = state
        .inner
        .config
        .revocation
        .revoke_on_user_delete
        .then(|| {
            let (revocation, audit) = revocation_now(
                caller,
                id,
                username,
                RevocationReason::CessationOfOperation,
                "certificate.revoked.user_deleted",
            );
            // The deletion's own status, as every audit entry carries its call's.
            let audit = AuditEvent {
                status: Some(204),
                ..audit
            };
            (revocation, audit)
        });
    let (existed, certs) = state
        .inner
        .store
        .delete_database_user_revoking(
            id.as_str(),
            database_name,
            username,
            revoking.as_ref().map(|(r, a)| (*r, a)),
        )
        .await?;
    if let Some((revocation, _)) = revoking
        && note_revoked(id, revocation, &certs)
    {
        crate::crl::rebuild_soon(state, id.as_str());
    }
    Ok(existed)
}
