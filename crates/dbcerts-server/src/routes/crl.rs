//! `GET /api/dbcerts/v1/groups/{groupId}/crl`: the project's certificate revocation lists, for
//! `net.tls.CRLFile` of `mongod`. Project Read Only.
//!
//! PEM by default: one `X509 CRL` block per issuer that has not expired (the active CA and any
//! earlier one whose leaves may still be valid), concatenated, which OpenSSL and therefore
//! `mongod` load as one file. `Accept: application/pkix-crl` asks for DER (RFC 5280 §4.2.1.13's
//! media type), which holds exactly one CRL: answered when the project has one issuer, and 406
//! `CRL_SEVERAL_ISSUERS` when it has several (fetch the PEM instead). A project without a CA yet
//! has no CRL: 404.
//!
//! With `crl-distribution` on, the same CRLs are also served without credentials at
//! `/api/dbcerts/v1/crl/<token>` (for verifiers that fetch a URL and hold no API key): the token
//! is 256 random bits made on the project's first authenticated CRL request and kept in the
//! store (one per project, shared by every node), and that answer names the URL in a `Link`
//! header (`rel="alternate"`). Off, or for any token that is not a project's, the path answers
//! 404 `RESOURCE_NOT_FOUND`, the same either way. The URL reveals what the CRL reveals (serials
//! and revocation times of the project's CA) and nothing else.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::error::AtlasError;

/// The media type of one DER CRL (RFC 2585).
const DER: &str = "application/pkix-crl";

/// The project's CRLs, for `net.tls.CRLFile` of `mongod`.
#[utoipa::path(
    get,
    path = "/api/dbcerts/v1/groups/{groupId}/crl",
    operation_id = "getProjectCrl",
    tag = "dbcerts",
    params(crate::params::GroupPath),
    responses(
        (status = 200, description = "The CRLs of every issuer that has not expired, PEM blocks one after another; or, with `Accept: application/pkix-crl` and one issuer, its CRL in DER.", content_type = crate::openapi::PEM, body = String),
        (status = 401, description = "No valid credentials.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 403, description = "The caller's address is not on its access list.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 404, description = "No such project, or the project has no CA yet.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 406, description = "DER was asked for, and the project has several issuers.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 429, description = "Too many requests.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 500, description = "An unexpected error.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn get_project_crl(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath(group_id): AtlasPath<String>,
    headers: HeaderMap,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let mut res = crl_response(&state, id.as_str(), &headers).await?;
    if state.inner.config.crl.distribution {
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let token = state
            .inner
            .store
            .crl_distribution_token(id.as_str(), &token)
            .await?;
        let link = format!("<{DISTRIBUTION_PREFIX}{token}>; rel=\"alternate\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}

/// The CRLs of project `project_id` as `headers` ask for them (PEM, or DER with one issuer).
async fn crl_response(
    state: &AppState,
    project_id: &str,
    headers: &HeaderMap,
) -> Result<Response, AtlasError> {
    let now = chrono::Utc::now().timestamp();
    let crls = crate::crl::project_crls(state, project_id, now).await?;
    if crls.is_empty() {
        let what = format!("CRL of group {}", project_id);
        return Err(AtlasError::resource_not_found(&what));
    }
    let wants_der = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(DER)
        });
    let (body, media) = if wants_der {
        match <[Vec<u8>; 1]>::try_from(crls) {
            Ok([der]) => (der, DER),
            Err(crls) => {
                return Err(AtlasError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "CRL_SEVERAL_ISSUERS",
                    format!(
                        "Group {} has {} CA certificates that publish CRLs; DER holds one CRL. Request the PEM form, which holds them all.",
                        project_id,
                        crls.len()
                    ),
                )
                .with_params([project_id.into(), crls.len().into()]));
            }
        }
    } else {
        let pem: String = crls.iter().map(|der| dbcerts_ca::crl_pem(der)).collect();
        (pem.into_bytes(), "application/x-pem-file")
    };
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    Ok(res)
}

/// Where the unauthenticated distribution URLs live.
pub const DISTRIBUTION_PREFIX: &str = "/api/dbcerts/v1/crl/";

/// Whether `path` is a distribution URL (served without credentials).
pub fn is_distribution_path(path: &str) -> bool {
    path.starts_with(DISTRIBUTION_PREFIX)
}

/// The project's CRLs at its unguessable distribution URL, without credentials.
#[utoipa::path(
    get,
    path = "/api/dbcerts/v1/crl/{token}",
    operation_id = "getDistributedCrl",
    tag = "dbcerts",
    security(()),
    params(
        ("token" = String, Path, description = "The project's distribution token, from the `Link` header of `getProjectCrl`."),
    ),
    responses(
        (status = 200, description = "As `getProjectCrl`: PEM, or DER with `Accept: application/pkix-crl` and one issuer.", content_type = crate::openapi::PEM, body = String),
        (status = 404, description = "Distribution is off, or no project has this token.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 406, description = "DER was asked for, and the project has several issuers.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 429, description = "Past `rate-limit-crl-distribution-per-minute` requests from this address (with `Retry-After`).", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 500, description = "An unexpected error.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn get_distributed_crl(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AtlasError> {
    let not_found = || AtlasError::resource_not_found("CRL distribution token");
    if !state.inner.config.crl.distribution {
        return Err(not_found());
    }
    // Anyone may call this path, with any token: each address is counted before the store is
    // asked, so that guessing (or a fleet of misconfigured sidecars) cannot load the database.
    let limiter = &state.inner.crl_distribution_limiter;
    if let Err(wait) = limiter.admit(Some(crate::auth::canonical_ip(peer.ip()))) {
        return Err(AtlasError::rate_limited(
            "CRL distribution",
            limiter.per_minute(),
            1,
            wait,
        ));
    }
    if token.len() > 64 {
        return Err(not_found());
    }
    let Some(project) = state.inner.store.project_of_crl_token(&token).await? else {
        return Err(not_found());
    };
    crl_response(&state, &project, &headers).await
}
