//! OAuth 2.0 client credentials for service accounts: fetching bearer tokens from
//! `POST {base}/api/oauth/token`, caching them, and renewing them shortly before they expire.
//!
//! One token is shared by every request of a [`crate::Client`]; fetching is single-flight (a
//! request that finds the token due waits for the one fetch in progress). Tokens and the client
//! secret are [`Secret`]s and never logged.

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::credentials::Secret;
use crate::error::{self, ClientError};
use crate::http::{read_body, send_error};

/// Characters escaped in the Basic credentials: all but `A-Za-z0-9-._~`, as Go's
/// `url.QueryEscape` (which Atlas's own SDK uses) leaves them.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Assumed lifetime of a token whose response omits `expires_in` (Atlas: one hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Renew at most this long before expiry…
const MAX_MARGIN: Duration = Duration::from_secs(60);
/// …and at least this long: servers count expiry in whole seconds.
const MIN_MARGIN: Duration = Duration::from_secs(1);

/// How long before its expiry a token of `lifetime` is renewed: a tenth of its lifetime,
/// between one second and a minute, and never more than half the lifetime.
pub(crate) fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 10)
        .clamp(MIN_MARGIN, MAX_MARGIN)
        .min(lifetime / 2)
}

/// A service account's credentials and its cached token.
pub(crate) struct TokenSource {
    client_id: String,
    secret: Secret,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: Secret,
    renew_at: Instant,
    /// The same moment on the wall clock, for handing the token to a later process.
    renew_at_wall: SystemTime,
}

/// An access token and the wall-clock time from which it is due for renewal: what a
/// command-line tool keeps between runs ([`crate::ClientBuilder::cached_token`],
/// [`crate::Client::cached_token`]). `Debug` never shows the token.
#[derive(Clone)]
pub struct CachedToken {
    /// The bearer token.
    pub token: Secret,
    /// From this moment on the token is renewed before use.
    pub renew_at: SystemTime,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"[redacted]")
            .field("renew_at", &self.renew_at)
            .finish()
    }
}

/// A bearer token for one request, and whether it was fetched for that request.
pub(crate) struct Token {
    pub value: Secret,
    pub fresh: bool,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    expires_in: Option<u64>,
    token_type: Option<String>,
}

impl TokenSource {
    pub fn new(client_id: String, secret: Secret, seed: Option<CachedToken>) -> TokenSource {
        let now = (Instant::now(), SystemTime::now());
        let cached = seed.and_then(|c| {
            // A token already due (or a clock that went backwards past it) is not used.
            let left = c.renew_at.duration_since(now.1).ok()?;
            Some(Cached {
                token: c.token,
                renew_at: now.0.checked_add(left)?,
                renew_at_wall: c.renew_at,
            })
        });
        TokenSource {
            client_id,
            secret,
            cached: Mutex::new(cached),
        }
    }

    /// The cached token and when it is due, if there is one.
    pub async fn cached(&self) -> Option<CachedToken> {
        self.cached.lock().await.as_ref().map(|c| CachedToken {
            token: c.token.clone(),
            renew_at: c.renew_at_wall,
        })
    }

    /// A token that is not yet due for renewal, fetched from `token_url` if needed.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        token_url: &reqwest::Url,
    ) -> Result<Token, ClientError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(Token {
                value: c.token.clone(),
                fresh: false,
            });
        }
        let (token, renew_at, renew_at_wall) = self.fetch(http, token_url).await?;
        *cached = Some(Cached {
            token: token.clone(),
            renew_at,
            renew_at_wall,
        });
        Ok(Token {
            value: token,
            fresh: true,
        })
    }

    /// Forgets `rejected` if it is still the cached token (a concurrent request may already
    /// have replaced it).
    pub async fn invalidate(&self, rejected: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose() == rejected.expose())
        {
            *cached = None;
        }
    }

    /// Forgets the cached token, returning it.
    pub async fn take(&self) -> Option<Secret> {
        self.cached.lock().await.take().map(|c| c.token)
    }

    /// `Authorization: Basic` with both parts form-urlencoded first (RFC 6749 §2.3.1).
    pub fn basic_authorization(&self) -> Result<HeaderValue, ClientError> {
        let pair = zeroize::Zeroizing::new(format!(
            "{}:{}",
            utf8_percent_encode(&self.client_id, FORM),
            utf8_percent_encode(self.secret.expose(), FORM)
        ));
        let encoded =
            zeroize::Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())));
        let mut value = HeaderValue::from_str(&encoded)
            .map_err(|_| ClientError::InvalidInput("unusable client credentials".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        token_url: &reqwest::Url,
    ) -> Result<(Secret, Instant, SystemTime), ClientError> {
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let res = http
            .post(token_url.clone())
            .header(AUTHORIZATION, self.basic_authorization()?)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(send_error)?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = read_body(res).await?;
        tracing::debug!(status = status.as_u16(), "dbcerts-client: token request");
        if !status.is_success() {
            return Err(match error::from_response(status, &headers, &body) {
                // invalid_request, invalid_grant, unsupported_grant_type: the credentials or
                // the grant are wrong, not the caller's request.
                ClientError::Atlas(e) if status.as_u16() == 400 => ClientError::Auth(e),
                other => other,
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| error::unreadable_success(status, &headers, &e))?;
        if parsed
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
            || parsed.access_token.is_empty()
        {
            return Err(ClientError::UnexpectedBody {
                status: status.as_u16(),
                content_type: None,
                problem: "the token endpoint did not return a bearer token".into(),
            });
        }
        let lifetime = parsed
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        // Counted from before the request was sent, so never later than the server's clock.
        let usable = lifetime - renewal_margin(lifetime);
        let renew_at = started
            .checked_add(usable)
            .unwrap_or(started + DEFAULT_LIFETIME);
        let renew_at_wall = started_wall
            .checked_add(usable)
            .unwrap_or(started_wall + DEFAULT_LIFETIME);
        Ok((parsed.access_token, renew_at, renew_at_wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        let s = Duration::from_secs;
        assert_eq!(renewal_margin(s(3600)), s(60));
        assert_eq!(renewal_margin(s(300)), s(30));
        assert_eq!(renewal_margin(s(3)), s(1));
        assert_eq!(renewal_margin(s(1)), Duration::from_millis(500));
        assert_eq!(renewal_margin(s(0)), s(0));
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        let src = TokenSource::new("mdb_sa_id_x".into(), Secret::new("a:b"), None);
        let v = src.basic_authorization().unwrap();
        assert!(v.is_sensitive());
        let text = v.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(text).unwrap()).unwrap();
        assert_eq!(decoded, "mdb_sa_id_x:a%3Ab");
    }
}
