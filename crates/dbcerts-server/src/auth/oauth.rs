//! OAuth 2.0 client credentials for service accounts: `POST /api/oauth/token`,
//! `POST /api/oauth/revoke`, and the bearer tokens they hand out.
//!
//! Access tokens are JWTs (HS256) signed with a key every node derives from the shared nonce
//! key, so any node verifies any node's tokens without a lookup. Revocation is the one thing
//! that needs the store: a revoked token's `jti` is kept until the token would have expired,
//! and every bearer request checks it, so a revocation takes effect on all nodes at once.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::body::BodyFailure;
use crate::error::AtlasError;

const ISSUER: &str = "dbcerts";
/// The audience Atlas puts in its tokens.
const AUDIENCE: &str = "api://admin";

/// Claims of an access token. `sid` names the secret the token was obtained with: deleting the
/// secret invalidates its tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Signs and verifies access tokens.
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime_secs: i64,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([secret elided])")
    }
}

impl TokenKey {
    pub fn new(secret: &[u8; 32], lifetime_secs: i64) -> TokenKey {
        TokenKey {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            lifetime_secs,
        }
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// A signed token for `client_id`, obtained with secret `secret_id`.
    pub fn issue(&self, client_id: &str, secret_id: &str, now: i64) -> (String, Claims) {
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: client_id.into(),
            sid: secret_id.into(),
            iat: now,
            exp: now + self.lifetime_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, claims)
    }

    /// The claims of a token this server signed that has not expired at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[ISSUER]);
        v.leeway = 0;
        // Expiry is checked below against the caller's clock, exactly (no leeway).
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()?
            .claims;
        (claims.exp > now).then_some(claims)
    }
}

/// SHA-256 of a client secret, as stored.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Client credentials from `Authorization: Basic` or, failing that, the form body. Credentials
/// holding a NUL character are none at all: no client id or secret has one.
fn client_credentials(headers: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    given_credentials(headers, form)
        .filter(|(id, secret)| !id.contains('\0') && !secret.contains('\0'))
}

fn given_credentials(headers: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
    {
        let decoded = STANDARD.decode(basic.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        let id = percent_encoding::percent_decode_str(id)
            .decode_utf8()
            .ok()?
            .into_owned();
        let secret = percent_encoding::percent_decode_str(secret)
            .decode_utf8()
            .ok()?
            .into_owned();
        return Some((id, secret));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

/// An OAuth error body (RFC 6749 §5.2), in the key order Atlas documents.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error_description": description, "error": error });
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A token or revocation request body. One too large or not received within the body timeout
/// is answered in OAuth's error format (RFC 6749 §5.2), as every other error here is.
pub struct OAuthBody(Bytes);

impl axum::extract::FromRequest<AppState> for OAuthBody {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        crate::body::read_body(req, state)
            .await
            .map(OAuthBody)
            .map_err(|failure| {
                let (status, description) = match failure {
                    BodyFailure::TooLarge => (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "The request body is too large.",
                    ),
                    BodyFailure::TimedOut => (
                        StatusCode::REQUEST_TIMEOUT,
                        "The request body was not received in time.",
                    ),
                    BodyFailure::Unreadable => (
                        StatusCode::BAD_REQUEST,
                        "The request body could not be read.",
                    ),
                };
                let mut res = oauth_error(status, "invalid_request", description);
                // The rest of the body is not read; the client must not reuse the connection.
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                res
            })
    }
}

fn invalid_client() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Invalid credentials provided.",
    )
}

/// What client credentials came to.
enum ClientCheck {
    /// The account and the id of the secret presented, valid now.
    Valid(Box<dbcerts_store::ServiceAccountAuth>, String),
    /// The client id names an account, but the secret is none of its valid ones.
    WrongSecret,
    /// No account has this client id.
    UnknownClient,
}

/// Checks `client_id`/`secret`. Every candidate secret is compared in constant time, and an
/// unknown client takes the same path as a known one (the store reads the same rows, the secret
/// is hashed and compared with a stored-sized hash), so that the answer's timing does not tell
/// which clients exist.
async fn check_client(
    state: &AppState,
    client_id: &str,
    secret: &str,
    now: i64,
) -> Result<ClientCheck, AtlasError> {
    let auth = state
        .inner
        .store
        .get_service_account_auth(client_id)
        .await?;
    let presented = hash_secret(secret);
    let Some(auth) = auth else {
        let _ = std::hint::black_box(bool::from(DUMMY_SECRET_HASH.ct_eq(&presented[..])));
        return Ok(ClientCheck::UnknownClient);
    };
    let mut matched = None;
    for s in &auth.secrets {
        if bool::from(s.secret_hash.ct_eq(&presented)) && s.expires > now {
            matched = Some(s.id.clone());
        }
    }
    Ok(match matched {
        Some(id) => ClientCheck::Valid(Box::new(auth), id),
        None => ClientCheck::WrongSecret,
    })
}

/// What an unknown client's secret is compared with: the size of a stored secret's hash.
const DUMMY_SECRET_HASH: [u8; 32] = [0; 32];

/// The 429 for a client locked out from `ip` after failed authentications, if it is.
fn lockout(state: &AppState, ip: IpAddr, client_id: &str, path: &str) -> Option<Response> {
    let now = chrono::Utc::now().timestamp();
    state
        .inner
        .limits
        .locked_out(ip, "oauth", client_id, now)
        .map(|l| l.error(path).into_response())
}

/// The form and the client credentials of a token or revoke request.
fn read_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(TokenForm, String, String), Box<Response>> {
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(body) else {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is not application/x-www-form-urlencoded.",
        )));
    };
    let (id, secret) =
        client_credentials(headers, &form).ok_or_else(|| Box::new(invalid_client()))?;
    Ok((form, id, secret))
}

/// The client's account and the id of the secret it presented, or the `invalid_client`
/// answer (after recording the failure).
async fn authenticate_client(
    state: &AppState,
    ip: IpAddr,
    client_id: &str,
    secret: &str,
    now: i64,
) -> Result<(dbcerts_store::ServiceAccountAuth, String), Box<Response>> {
    let known = match check_client(state, client_id, secret, now).await {
        Ok(ClientCheck::Valid(auth, secret_id)) => return Ok((*auth, secret_id)),
        Ok(ClientCheck::WrongSecret) => true,
        Ok(ClientCheck::UnknownClient) => false,
        Err(e) => return Err(Box::new(e.into_response())),
    };
    // An unknown client id may be a secret sent in the wrong field: never recorded as given.
    let claimed = super::claimed::recorded(state, client_id, known);
    super::record_failure(
        state,
        Some(ip),
        "oauth",
        &claimed,
        "invalid client credentials",
    )
    .await;
    Err(Box::new(invalid_client()))
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    access_token: String,
    /// Seconds.
    expires_in: i64,
    /// `Bearer`.
    #[schema(value_type = String)]
    token_type: &'static str,
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthError {
    error: String,
    error_description: String,
}

/// The form of both OAuth endpoints (`application/x-www-form-urlencoded`); the client may
/// authenticate with HTTP Basic instead of `client_id`/`client_secret`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct OAuthForm {
    /// `client_credentials` (token endpoint).
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// The access token to revoke (revocation endpoint).
    token: Option<String>,
}

/// `POST /api/oauth/token`: an access token for a service account (client credentials grant).
#[utoipa::path(
    post,
    path = "/api/oauth/token",
    operation_id = "createOAuthToken",
    tag = "OAuth",
    security(("ClientCredentials" = [])),
    request_body(content = OAuthForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token.", content_type = "application/json", body = TokenResponse),
        (status = 400, description = "A malformed request or unsupported grant type.", content_type = "application/json", body = OAuthError),
        (status = 401, description = "The client did not authenticate.", content_type = "application/json", body = OAuthError),
        (status = 408, description = "The body did not arrive in time.", content_type = "application/json", body = OAuthError),
        (status = 413, description = "The body is too large.", content_type = "application/json", body = OAuthError),
        (status = 429, description = "Too many token requests (Atlas's error format).", content_type = "application/json", body = crate::error::ApiErrorBody),
    ),
)]
pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    OAuthBody(body): OAuthBody,
) -> Response {
    let (form, client_id, secret) = match read_request(&headers, &body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let ip = super::canonical_ip(peer.ip());
    if let Some(refused) = lockout(&state, ip, &client_id, "/api/oauth/token") {
        return refused;
    }
    let now = chrono::Utc::now().timestamp();
    if let Err(retry) = state.inner.limits.token_request(&client_id, ip) {
        let limit = state.inner.config.access.token_requests_per_minute;
        return AtlasError::rate_limited("/api/oauth/token", limit, 1, retry).into_response();
    }
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The grant_type parameter is required.",
            );
        }
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only the client_credentials grant type is supported.",
            );
        }
    }
    let (auth, secret_id) = match authenticate_client(&state, ip, &client_id, &secret, now).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let (token, claims) = state
        .inner
        .tokens
        .issue(&auth.account.client_id, &secret_id, now);
    if let Err(e) = state
        .inner
        .store
        .touch_service_account_secret(&secret_id, now)
        .await
    {
        tracing::warn!(error = %e, "could not record secret use");
    }
    super::audit(
        &state,
        format!("service-account:{}", auth.account.client_id),
        Some(ip),
        "oauth.token.issued",
        None,
        Some(claims.jti.clone()),
        Some(200),
        serde_json::json!({ "expiresAt": claims.exp, "secretId": secret_id }),
    )
    .await;
    let body = TokenResponse {
        access_token: token,
        expires_in: state.inner.tokens.lifetime_secs(),
        token_type: "Bearer",
    };
    let body = serde_json::to_string(&body).expect("a token response serializes");
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `POST /api/oauth/revoke`: 200 whether or not the token was valid (RFC 7009 §2.2), once the
/// client has authenticated. A client can revoke only its own tokens.
#[utoipa::path(
    post,
    path = "/api/oauth/revoke",
    operation_id = "revokeOAuthToken",
    tag = "OAuth",
    security(("ClientCredentials" = [])),
    request_body(content = OAuthForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or was not a valid token of this client."),
        (status = 400, description = "A malformed request.", content_type = "application/json", body = OAuthError),
        (status = 401, description = "The client did not authenticate.", content_type = "application/json", body = OAuthError),
        (status = 408, description = "The body did not arrive in time.", content_type = "application/json", body = OAuthError),
        (status = 413, description = "The body is too large.", content_type = "application/json", body = OAuthError),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    OAuthBody(body): OAuthBody,
) -> Response {
    let (form, client_id, secret) = match read_request(&headers, &body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let ip = super::canonical_ip(peer.ip());
    if let Some(refused) = lockout(&state, ip, &client_id, "/api/oauth/revoke") {
        return refused;
    }
    let now = chrono::Utc::now().timestamp();
    let (auth, _) = match authenticate_client(&state, ip, &client_id, &secret, now).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let Some(token) = form.token else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The token parameter is required.",
        );
    };
    // An expired token needs no revocation; a foreign or forged one is ignored.
    if let Some(claims) = state.inner.tokens.verify(&token, now)
        && claims.sub == auth.account.client_id
    {
        if let Err(e) = state
            .inner
            .store
            .revoke_token(&claims.jti, claims.exp, now)
            .await
        {
            return AtlasError::from(e).into_response();
        }
        super::audit(
            &state,
            format!("service-account:{}", auth.account.client_id),
            Some(ip),
            "oauth.token.revoked",
            None,
            Some(claims.jti),
            Some(200),
            serde_json::json!({}),
        )
        .await;
    }
    StatusCode::OK.into_response()
}

/// The caller a bearer token stands for, or `None` when the token is invalid, expired,
/// revoked, or its account or secret is gone.
pub async fn authenticate_bearer(
    state: &AppState,
    token: &str,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Option<(super::Caller, Vec<dbcerts_store::AccessListEntry>)>, AtlasError> {
    let Some(claims) = state.inner.tokens.verify(token, now) else {
        return Ok(None);
    };
    let store = &state.inner.store;
    let Some(auth) = store.get_service_account_auth(&claims.sub).await? else {
        return Ok(None);
    };
    if !auth.secrets.iter().any(|s| s.id == claims.sid)
        || store.is_token_revoked(&claims.jti).await?
    {
        return Ok(None);
    }
    let caller = super::Caller::new(
        super::Principal::ServiceAccount {
            client_id: auth.account.client_id.clone(),
            jti: claims.jti,
        },
        &auth.account.org_id,
        &auth.account.org_roles,
        &auth.grants,
        ip,
    );
    Ok(Some((caller, auth.access_list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire() {
        let key = TokenKey::new(&[7; 32], 60);
        let (token, claims) = key.issue("mdb_sa_id_0123456789abcdef01234567", "s1", 1_000);
        assert_eq!(key.verify(&token, 1_059), Some(claims.clone()));
        assert_eq!(key.verify(&token, 1_060), None);
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn tokens_from_another_key_or_tampered_do_not_verify() {
        let key = TokenKey::new(&[7; 32], 60);
        let other = TokenKey::new(&[8; 32], 60);
        let (token, _) = other.issue("c", "s", 1_000);
        assert_eq!(key.verify(&token, 1_001), None);
        let (good, _) = key.issue("c", "s", 1_000);
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            br#"{"iss":"dbcerts","aud":"api://admin","sub":"other","sid":"s","iat":1000,"exp":99999,"jti":"x"}"#,
        );
        parts[1] = &forged_claims;
        assert_eq!(key.verify(&parts.join("."), 1_001), None);
        assert_eq!(key.verify("not a token", 1_001), None);
    }

    #[test]
    fn basic_credentials_win_over_form_and_are_url_decoded() {
        let mut headers = HeaderMap::new();
        let enc = STANDARD.encode("mdb_sa_id_x:a%3Ab");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {enc}")).unwrap(),
        );
        let form = TokenForm {
            client_id: Some("form".into()),
            client_secret: Some("formsecret".into()),
            ..TokenForm::default()
        };
        assert_eq!(
            client_credentials(&headers, &form),
            Some(("mdb_sa_id_x".into(), "a:b".into()))
        );
        assert_eq!(
            client_credentials(&HeaderMap::new(), &form),
            Some(("form".into(), "formsecret".into()))
        );
        assert_eq!(
            client_credentials(&HeaderMap::new(), &TokenForm::default()),
            None
        );
    }
}
