//! The OCSP responder (RFC 6960) for every project's managed CAs:
//! `POST /api/dbcerts/v1/ocsp/{groupId}` with an `application/ocsp-request` body, and
//! `GET /api/dbcerts/v1/ocsp/{groupId}/{base64 request}` (RFC 6960 appendix A).
//!
//! OCSP clients (mongod, OpenSSL, browsers) send no credentials, so these routes are
//! unauthenticated. They answer in OCSP, never in Atlas JSON: every answer is HTTP 200 with an
//! `application/ocsp-response` body, either signed by the CA that issued the certificates
//! asked about (good / revoked with time and reason / unknown), or an unsigned status:
//! `malformedRequest` for anything unreadable, `unauthorized` when the project does not exist
//! or the request names a CA that is not one of the project's (or names more than one),
//! `tryLater` past the per-address rate limit, `internalError` when the store fails. What an
//! anonymous caller can learn, and why, is in docs/ARCHITECTURE.md ("OCSP responder").

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ca_service::ProjectCa;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dbcerts_ca::ocsp::{
    CertState, MAX_REQUEST_BYTES, OcspFailure, OcspIssuer, OcspQuery, error_response, parse_request,
};
use dbcerts_store::CaRecord;

use crate::AppState;
use crate::auth::throttle::AddressLimiter;
use crate::params::GroupId;

/// The path prefix; the project id follows, then (GET) the request.
pub const PREFIX: &str = "/api/dbcerts/v1/ocsp/";

/// Media types of RFC 6960 appendix A.
pub const REQUEST_TYPE: &str = "application/ocsp-request";
pub const RESPONSE_TYPE: &str = "application/ocsp-response";

/// Whether `path` is the responder's: served without authentication.
pub fn is_responder_path(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// Settings of the responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspConfig {
    /// The base URL OCSP clients reach this server at (`http://dbcerts.internal:8080`). When
    /// set, new leaves carry an Authority Information Access OCSP URL
    /// `<base>/api/dbcerts/v1/ocsp/<groupId>`; unset, leaves keep Atlas's exact profile (the
    /// responder still answers clients given the URL another way, e.g. `openssl ocsp -url`).
    pub responder_url: Option<String>,
    /// How long an answer stays valid: nextUpdate is thisUpdate plus this.
    pub validity_secs: i64,
    /// OCSP requests per minute from one client address (burst of the full minute).
    pub requests_per_minute: u32,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            responder_url: None,
            validity_secs: 3600,
            requests_per_minute: 600,
        }
    }
}

impl OcspConfig {
    /// The AIA OCSP URL of a leaf of project `group_id`, when a responder URL is configured.
    pub fn leaf_url(&self, group_id: &str) -> Option<String> {
        self.responder_url
            .as_ref()
            .map(|base| format!("{}{PREFIX}{group_id}", base.trim_end_matches('/')))
    }
}

/// CAs kept opened (keys unsealed) before the cache starts over.
const MAX_CACHED_SIGNERS: usize = 1024;

/// This node's responder state: the per-address rate limiter and the opened CAs, by CA row id
/// (a CA row's certificate and key never change).
pub struct Responder {
    limiter: AddressLimiter,
    signers: Mutex<HashMap<i64, Arc<ProjectCa>>>,
}

impl Responder {
    pub fn new(config: &OcspConfig) -> Responder {
        Responder {
            limiter: AddressLimiter::new(config.requests_per_minute),
            signers: Mutex::new(HashMap::new()),
        }
    }

    fn signer(&self, state: &AppState, rec: &CaRecord) -> Result<Arc<ProjectCa>, String> {
        let mut signers = self.signers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ca) = signers.get(&rec.id) {
            return Ok(Arc::clone(ca));
        }
        let ca = state
            .inner
            .ca
            .open_record(rec)
            .map_err(|e| format!("{e:?}"))?;
        if signers.len() >= MAX_CACHED_SIGNERS {
            signers.clear();
        }
        signers.insert(rec.id, Arc::clone(&ca));
        Ok(ca)
    }
}

/// An OCSP answer: HTTP 200, `application/ocsp-response`. Signed answers may be cached until
/// their nextUpdate; failures must not be.
fn ocsp_reply(der: Vec<u8>, max_age: Option<i64>) -> Response {
    let cache = match max_age {
        Some(secs) => format!(
            "max-age={}, public, no-transform, must-revalidate",
            secs.max(0)
        ),
        None => "no-store".to_owned(),
    };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(RESPONSE_TYPE),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_str(&cache).expect("ASCII"),
            ),
        ],
        der,
    )
        .into_response()
}

fn failure(f: OcspFailure) -> Response {
    ocsp_reply(error_response(f), None)
}

/// `POST /api/dbcerts/v1/ocsp/{groupId}` and `GET /api/dbcerts/v1/ocsp/{groupId}/{request}`.
/// One handler for the whole prefix, so that no path or method under it ever gets an Atlas JSON
/// answer an OCSP client could not read.
pub async fn respond(State(state): State<AppState>, req: Request) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| crate::auth::canonical_ip(c.0.ip()));
    if let Err(wait) = state.inner.ocsp.limiter.admit(ip) {
        let mut res = failure(OcspFailure::TryLater);
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return res;
    }
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let (group, encoded) = rest.split_once('/').unwrap_or((rest, ""));
    let der = match *req.method() {
        Method::POST if encoded.is_empty() => {
            let typed = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(REQUEST_TYPE));
            if !typed {
                return failure(OcspFailure::MalformedRequest);
            }
            match axum::body::to_bytes(req.into_body(), MAX_REQUEST_BYTES).await {
                Ok(bytes) => bytes.to_vec(),
                Err(_) => return failure(OcspFailure::MalformedRequest),
            }
        }
        Method::GET if !encoded.is_empty() => match decode_get(encoded) {
            Some(der) => der,
            None => return failure(OcspFailure::MalformedRequest),
        },
        _ => return failure(OcspFailure::MalformedRequest),
    };
    let query = match parse_request(&der) {
        Ok(q) => q,
        Err(problem) => {
            tracing::debug!(%problem, "OCSP request refused");
            return failure(OcspFailure::MalformedRequest);
        }
    };
    let Ok(group) = GroupId::parse(group) else {
        return failure(OcspFailure::Unauthorized);
    };
    match answer(&state, group.as_str(), &query).await {
        Ok(reply) => reply,
        Err(Answer::Unauthorized) => failure(OcspFailure::Unauthorized),
        Err(Answer::Internal(cause)) => {
            tracing::error!(project = group.as_str(), %cause, "OCSP responder failed");
            failure(OcspFailure::InternalError)
        }
    }
}

/// The request of a GET: the rest of the path, percent-decoded, then base64 (standard alphabet,
/// padding optional; RFC 6960 appendix A.1). Clients that do not escape `/` in the base64 are
/// served too, since the rest of the path is taken whole.
fn decode_get(encoded: &str) -> Option<Vec<u8>> {
    // base64 of the largest request accepted, percent-encoded at worst.
    if encoded.len() > MAX_REQUEST_BYTES.div_ceil(3) * 4 * 3 {
        return None;
    }
    let text = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    let text = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
}

enum Answer {
    Unauthorized,
    Internal(String),
}

/// Looks up every certificate `query` names and signs the answer with their CA.
async fn answer(state: &AppState, project_id: &str, query: &OcspQuery) -> Result<Response, Answer> {
    let store = &state.inner.store;
    let internal = |e: dbcerts_store::StoreError| Answer::Internal(e.to_string());
    let cas = store.list_project_cas(project_id).await.map_err(internal)?;
    // The one CA of the project every CertID names (by name and key hash).
    let mut issuer: Option<&CaRecord> = None;
    for cert in query.certs() {
        let rec = cas
            .iter()
            .find(|rec| OcspIssuer::from_certificate(&rec.cert_der).is_ok_and(|i| i.matches(cert)))
            .ok_or(Answer::Unauthorized)?;
        match issuer {
            Some(seen) if seen.id != rec.id => return Err(Answer::Unauthorized),
            _ => issuer = Some(rec),
        }
    }
    let rec = issuer.ok_or(Answer::Unauthorized)?;
    let mut states = Vec::with_capacity(query.certs().len());
    for cert in query.certs() {
        let found = match cert.serial() {
            Some(serial) => store
                .get_certificate(project_id, serial)
                .await
                .map_err(internal)?,
            None => None,
        };
        states.push(match found {
            Some(c) if c.ca_id == rec.id => match c.revocation {
                Some(r) => CertState::Revoked {
                    at: chrono::DateTime::from_timestamp(r.at, 0)
                        .ok_or_else(|| Answer::Internal(format!("revocation time {}", r.at)))?,
                    reason: r.reason.code(),
                },
                None => CertState::Good,
            },
            // Not this CA's: a serial it never issued.
            _ => CertState::Unknown,
        });
    }
    let ca = state
        .inner
        .ocsp
        .signer(state, rec)
        .map_err(Answer::Internal)?;
    let validity = state.inner.config.ocsp.validity_secs;
    let now = chrono::Utc::now();
    let next_update = now + chrono::Duration::seconds(validity);
    let query = query.clone();
    let der = crate::issuance::off_runtime_unless(ca.algorithm().is_cheap(), move || {
        ca.ocsp_response(&query, &states, now, next_update)
    })
    .await
    .map_err(|e| Answer::Internal(format!("{e:?}")))?
    .map_err(|e| Answer::Internal(e.to_string()))?;
    Ok(ocsp_reply(der, Some(validity)))
}

/// DER bytes, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Der(Vec<u8>);

/// Asks the status of certificates of the project's CAs (RFC 6960, HTTP POST).
#[utoipa::path(
    post,
    path = "/api/dbcerts/v1/ocsp/{groupId}",
    operation_id = "postOcspRequest",
    tag = "dbcerts",
    security(()),
    params(crate::params::GroupPath),
    request_body(
        description = "A DER OCSPRequest (at most 8 KiB, at most 16 certificates). Unsigned; a signature, if any, is ignored.",
        content = Der,
        content_type = "application/ocsp-request",
    ),
    responses(
        (status = 200, description = "A DER OCSPResponse, always HTTP 200 (OCSP clients read the OCSP status, not the HTTP one): successful (a BasicOCSPResponse signed by the issuing CA: good, revoked with time and reason, or unknown), or the unsigned status malformedRequest, unauthorized (no such project, or a CA that is not the project's), tryLater (rate limit; Retry-After) or internalError.", content_type = "application/ocsp-response", body = Der),
    ),
)]
pub async fn post_ocsp_request(state: State<AppState>, req: Request) -> Response {
    respond(state, req).await
}

/// Asks the status of certificates of the project's CAs (RFC 6960 appendix A.1, HTTP GET).
#[utoipa::path(
    get,
    path = "/api/dbcerts/v1/ocsp/{groupId}/{request}",
    operation_id = "getOcspRequest",
    tag = "dbcerts",
    security(()),
    params(
        crate::params::GroupPath,
        ("request" = String, Path, description = "The DER OCSPRequest, base64 (standard alphabet, padding optional), URL-encoded. An unescaped `/` of the base64 is accepted too."),
    ),
    responses(
        (status = 200, description = "A DER OCSPResponse, as for POST.", content_type = "application/ocsp-response", body = Der),
    ),
)]
pub async fn get_ocsp_request(state: State<AppState>, req: Request) -> Response {
    respond(state, req).await
}
