//! Who is calling, and what they may do.
//!
//! The middleware authenticates every `/api/atlas/...` request before its body is read (curl's
//! first Digest POST carries an empty body) and puts a [`Caller`] into the request extensions.
//! Handlers ask the caller for the project roles an operation needs; a project the caller
//! cannot see answers exactly like one that does not exist.

pub mod authority;
pub mod claimed;
pub mod digest;
pub mod oauth;
pub mod roles;
pub mod throttle;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dbcerts_store::{AccessListEntry, AuditEvent};

use crate::AppState;
use crate::error::AtlasError;
pub use authority::{Holdings, Via};
use digest::{NonceCheck, REALM};
pub use roles::{Caller, OrgNeed, OrgRole, Principal, ProjectRole};
use throttle::EndpointGroup;

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AtlasError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| AtlasError::unexpected("route is missing the authentication layer"))
    }
}

/// What checking the credentials of a request came to.
enum Outcome {
    Authenticated(Box<Caller>, Vec<AccessListEntry>),
    /// Answer with a (fresh) challenge; not a failed attempt (a stale nonce, a replayed `nc`).
    Challenge {
        stale: bool,
    },
    /// The claimed principal is locked out from this address after failed attempts (429).
    Locked(throttle::Lockout),
    /// Credentials were presented and are wrong: a failed attempt.
    Failed {
        scheme: &'static str,
        claimed: String,
        reason: &'static str,
    },
}

/// The peer address, when the server was started with connect info.
pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| canonical_ip(c.0.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, from dual-stack sockets) as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` falls in one of the access list's CIDR blocks.
pub fn access_list_allows(entries: &[AccessListEntry], ip: IpAddr) -> bool {
    entries.iter().any(|e| {
        e.cidr_block
            .parse::<ipnet::IpNet>()
            .is_ok_and(|net| net.contains(&ip))
    })
}

/// Marks a response whose handler recorded the call's audit entry itself, in the same
/// transaction as what the call wrote (an issued certificate's `certificate.issued` entry,
/// which names the caller, address, project, user and status): the middleware then adds no
/// second, generic `<METHOD> <path>` entry for the same call.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

/// Appends an audit entry; a failure to write is logged, never shown to the client.
#[allow(clippy::too_many_arguments)]
pub async fn audit(
    state: &AppState,
    actor: String,
    ip: Option<IpAddr>,
    action: &str,
    project_id: Option<String>,
    target: Option<String>,
    status: Option<u16>,
    details: serde_json::Value,
) {
    let event = AuditEvent {
        at_ms: chrono::Utc::now().timestamp_millis(),
        actor,
        source_ip: ip.map(|i| i.to_string()),
        action: action.to_owned(),
        project_id,
        target,
        status,
        details: details.to_string(),
    };
    if let Err(e) = state.inner.journal.append_audit(event).await {
        tracing::error!(error = %e, action, "could not append to the audit log");
    }
}

/// Records a failed authentication: audit entry, failure count, and the slow-down.
pub async fn record_failure(
    state: &AppState,
    ip: Option<IpAddr>,
    scheme: &str,
    claimed: &str,
    reason: &str,
) {
    // Counted under the claim as recorded: a known principal's own id, which the lockout
    // check reads too; an unknown claim's keyed hash, which only the per-address ceiling
    // counts (there is no account behind it to protect).
    let now = chrono::Utc::now().timestamp();
    let delay = ip.map_or(std::time::Duration::ZERO, |ip| {
        state.inner.limits.record_failure(ip, scheme, claimed, now)
    });
    tracing::info!(scheme, claimed, reason, "authentication failed");
    // What the client claimed to be is recorded, truncated: never what it offered as proof.
    let claimed: String = claimed.chars().take(128).collect();
    audit(
        state,
        "unauthenticated".into(),
        ip,
        "authentication.failed",
        None,
        None,
        Some(401),
        serde_json::json!({ "scheme": scheme, "claimed": claimed, "reason": reason }),
    )
    .await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// The project id of a `/api/atlas/<version>/groups/{groupId}/...` path, percent-decoded as
/// the handlers' path extractor decodes it (`%36b...` names the project `6b...` there too).
fn project_of(path: &str) -> Option<String> {
    let mut segs = path.split('/').filter(|s| !s.is_empty()).skip(3);
    (segs.next() == Some("groups"))
        .then(|| segs.next())
        .flatten()
        .and_then(|id| percent_encoding::percent_decode_str(id).decode_utf8().ok())
        .filter(|id| crate::params::GroupId::parse(id).is_ok())
        .map(|id| id.into_owned())
}

/// The project whose audit chain a mutating call's entry goes to: the one its path names, if
/// it exists and the caller holds a role in it ([`Caller::can_see`]), read before the handler
/// runs (so that deleting a project is recorded in its chain). Otherwise none, and the entry
/// goes to the store chain (its action still shows the path): a caller cannot append to, and
/// take the write lock of, a project it has nothing to do with, nor open chains for made-up
/// ids. A store error also gives none (the handler will meet it too).
async fn audit_project(state: &AppState, caller: &Caller, path: &str) -> Option<String> {
    let id = project_of(path)?;
    match state.inner.store.get_project(&id).await {
        Ok(Some(project)) if caller.can_see(&project) => Some(id),
        _ => None,
    }
}

/// Authenticates every request under `/api/` (except the OAuth endpoints, which authenticate
/// their clients themselves), enforces the caller's IP access list and rate limits, and
/// audits every mutating call. Other paths pass through.
pub async fn authenticate_api(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    // The OAuth endpoints authenticate their clients themselves; the OpenAPI document is public
    // (it describes the API and holds nothing of the server's).
    if !path.starts_with("/api/") || path.starts_with("/api/oauth/") || path == crate::openapi::PATH
    {
        return next.run(req).await;
    }
    // OCSP clients send no credentials (the responder is rate-limited per address instead).
    if crate::routes::ocsp::is_responder_path(&path) {
        return next.run(req).await;
    }
    // The CRL distribution URL is public by design (an unguessable token names the project).
    if crate::routes::crl::is_distribution_path(&path) {
        return next.run(req).await;
    }
    let now = chrono::Utc::now().timestamp();
    let ip = peer_ip(&req);
    // Too many failed authentications for many principals from this address (spraying); a
    // principal locked out from it alone is refused once its claim is read.
    if let Some(ip) = ip
        && let Some(lockout) = state.inner.limits.address_locked_out(ip, now)
    {
        return lockout.error(&path).into_response();
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let Some(header) = header else {
        return challenge(&state, now, false);
    };
    let outcome = if let Some(token) = header.strip_prefix("Bearer ") {
        match oauth::authenticate_bearer(&state, token.trim(), ip, now).await {
            Ok(Some((caller, list))) => Outcome::Authenticated(Box::new(caller), list),
            Ok(None) => Outcome::Failed {
                scheme: "bearer",
                claimed: String::new(),
                reason: "invalid, expired or revoked token",
            },
            Err(e) => return e.into_response(),
        }
    } else {
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        match check_digest(&state, &header, req.method().as_str(), &target, ip, now).await {
            Ok(o) => o,
            Err(e) => return e.into_response(),
        }
    };
    let (caller, access_list) = match outcome {
        Outcome::Authenticated(c, l) => (*c, l),
        Outcome::Challenge { stale } => return challenge(&state, now, stale),
        Outcome::Locked(lockout) => return lockout.error(&path).into_response(),
        Outcome::Failed {
            scheme,
            claimed,
            reason,
        } => {
            record_failure(&state, ip, scheme, &claimed, reason).await;
            return challenge(&state, now, false);
        }
    };
    if !access_list.is_empty() && !ip.is_some_and(|ip| access_list_allows(&access_list, ip)) {
        let shown = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
        tracing::info!(actor = %caller.actor(), ip = %shown, "refused: address not on the access list");
        // Refused before any project is authorized: the store chain (`audit_project`).
        audit(
            &state,
            caller.actor(),
            ip,
            "authorization.ip_refused",
            None,
            None,
            Some(403),
            serde_json::json!({ "path": path }),
        )
        .await;
        return AtlasError::ip_not_on_access_list(&shown).into_response();
    }
    let allowance = match state
        .inner
        .limits
        .request(&caller.actor(), EndpointGroup::of(&path))
    {
        Ok(a) => a,
        Err(r) => {
            return AtlasError::rate_limited(&path, r.limit, 1, r.retry_after).into_response();
        }
    };
    let method = req.method().clone();
    let actor = caller.actor();
    let project = if [Method::GET, Method::HEAD, Method::OPTIONS].contains(&method) {
        None
    } else {
        audit_project(&state, &caller, &path).await
    };
    req.extensions_mut().insert(caller);
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(allowance.limit));
    h.insert(
        "ratelimit-remaining",
        HeaderValue::from(allowance.remaining),
    );
    let audited = res.extensions_mut().remove::<Audited>().is_some();
    if !audited && ![Method::GET, Method::HEAD, Method::OPTIONS].contains(&method) {
        audit(
            &state,
            actor,
            ip,
            &format!("{method} {path}"),
            project,
            None,
            Some(res.status().as_u16()),
            serde_json::json!({}),
        )
        .await;
    }
    res
}

/// Checks a Digest `Authorization` header.
async fn check_digest(
    state: &AppState,
    header: &str,
    method: &str,
    target: &str,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Outcome, AtlasError> {
    // `claimed` is as `claimed::recorded` shows it: never a secret typed as the username.
    let failed = |claimed: String, reason| Outcome::Failed {
        scheme: "digest",
        claimed,
        reason,
    };
    let creds = match digest::parse(header) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = ?e, "refused Digest header");
            return Ok(failed(String::new(), "malformed Authorization header"));
        }
    };
    // Refused before anything is checked: a locked-out principal learns nothing more.
    if let Some(ip) = ip
        && let Some(lockout) = state
            .inner
            .limits
            .locked_out(ip, "digest", &creds.username, now)
    {
        return Ok(Outcome::Locked(lockout));
    }
    if creds.uri != target {
        return Ok(failed(
            claimed::api_key_username(state, &creds.username).await?,
            "Digest uri does not match the request",
        ));
    }
    let (nonce, issued) = state.inner.nonce_key.check_issued(&creds.nonce, now);
    if nonce == NonceCheck::Invalid {
        return Ok(failed(
            claimed::api_key_username(state, &creds.username).await?,
            "nonce not issued by this server",
        ));
    }
    let auth = state.inner.store.get_api_key_auth(&creds.username).await?;
    // Unknown keys take the same path (unseal, hash, compare) as known ones.
    let (sealed, purpose) = match &auth {
        Some(a) => (
            a.key.sealed_private_key.as_slice(),
            format!("api-key:{}", a.key.public_key),
        ),
        None => (
            state.inner.dummy_sealed_key.as_slice(),
            "api-key:dummy".to_owned(),
        ),
    };
    let secret = state
        .inner
        .master
        .open(sealed, &purpose)
        .map_err(|e| AtlasError::unexpected(format!("unsealing an API key: {e}")))?;
    let password = String::from_utf8_lossy(&secret);
    let expected = digest::expected_response(&creds, method, &password);
    let matched = digest::responses_match(&expected, &creds.response);
    let known = auth.is_some();
    let Some(auth) = auth.filter(|_| matched) else {
        let claimed = claimed::recorded(state, &creds.username, known);
        return Ok(failed(claimed, "wrong key or response"));
    };
    if nonce == NonceCheck::Stale {
        return Ok(Outcome::Challenge { stale: true });
    }
    let nc = u32::from_str_radix(&creds.nc, 16).unwrap_or(0);
    if !state
        .inner
        .nonce_counts
        .accept(&creds.nonce, issued, nc, now)
        .await?
    {
        tracing::warn!(public_key = %auth.key.public_key, "Digest nonce count reused (replay); answering stale=true");
        return Ok(Outcome::Challenge { stale: true });
    }
    let caller = Caller::new(
        Principal::ApiKey {
            id: auth.key.id.clone(),
            public_key: auth.key.public_key.clone(),
        },
        &auth.key.org_id,
        &auth.key.org_roles,
        &auth.grants,
        ip,
    );
    Ok(Outcome::Authenticated(Box::new(caller), auth.access_list))
}

/// Atlas's exact 401: a Digest challenge and a Jackson-pretty JSON body whose keys are in
/// Atlas's order (error, reason, detail, errorCode), as recorded from Atlas.
fn challenge(state: &AppState, now: i64, stale: bool) -> Response {
    let nonce = state.inner.nonce_key.issue(now);
    let www = format!(
        "Digest realm=\"{REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
    );
    let body = "{\n  \"error\" : 401,\n  \"reason\" : \"Unauthorized\",\n  \"detail\" : \"You are not authorized for this resource.\",\n  \"errorCode\" : \"UNEXPECTED_ERROR\"\n}";
    let mut res = (StatusCode::UNAUTHORIZED, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-error-code", HeaderValue::from_static("UNEXPECTED_ERROR"));
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&www).expect("challenge is ASCII"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cidr: &str) -> AccessListEntry {
        AccessListEntry {
            principal_id: "k".into(),
            cidr_block: cidr.into(),
            created: 0,
        }
    }

    #[test]
    fn access_lists_match_addresses_and_blocks() {
        let list = [
            entry("127.0.0.2/32"),
            entry("10.1.0.0/16"),
            entry("2001:db8::/32"),
        ];
        let allows = |ip: &str| access_list_allows(&list, ip.parse().unwrap());
        assert!(allows("127.0.0.2"));
        assert!(!allows("127.0.0.1"));
        assert!(allows("10.1.255.3"));
        assert!(!allows("10.2.0.1"));
        assert!(allows("2001:db8::7"));
        assert!(!allows("2001:db9::7"));
    }

    #[test]
    fn mapped_ipv6_addresses_count_as_ipv4() {
        let ip: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(canonical_ip(ip), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn project_ids_come_from_group_paths_only() {
        let id = "5f1e2d3c4b5a69788796a5b4";
        assert_eq!(
            project_of(&format!("/api/atlas/v2/groups/{id}/databaseUsers")),
            Some(id.into())
        );
        assert_eq!(project_of("/api/atlas/v2/groups"), None);
        assert_eq!(project_of("/api/atlas/v2/groups/nothex"), None);
        // Encoded as a client may send it, decoded as the handler reads it.
        assert_eq!(
            project_of("/api/atlas/v2/groups/%35f1e2d3c4b5a69788796a5b4/databaseUsers"),
            Some(id.into())
        );
        assert_eq!(project_of("/api/atlas/v2/groups/%ff%fe"), None);
        assert_eq!(
            project_of(&format!("/api/atlas/v2/orgs/{id}/apiKeys")),
            None
        );
    }
}
