//! The request machinery every operation shares: the [`Client`] and its builder, URL and path
//! construction (each path segment percent-encoded), media types, authentication with at most
//! one re-authentication per call, response size limits, and decoding.
//!
//! Requests are built from bytes, so a request can be sent again after a challenge. Headers that
//! carry credentials are marked sensitive and never logged; only method, path and status are.

use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::credentials::{Credentials, Secret};
use crate::digest::{self, DigestAuth};
use crate::error::{self, ClientError};
use crate::oauth::{CachedToken, TokenSource};

/// Media type of the Atlas v2 operations (every operation dbcerts serves exists at 2023-01-01).
pub const MEDIA_TYPE_2023_01_01: &str = "application/vnd.atlas.2023-01-01+json";
/// Media type of the service-account operations.
pub const MEDIA_TYPE_2024_08_05: &str = "application/vnd.atlas.2024-08-05+json";
/// The path prefix of the Atlas Administration API v2.
pub const API_V2: &str = "/api/atlas/v2";
/// Default limit on a whole request, response body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body read.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Characters escaped in a path segment: all but `A-Za-z0-9-._~` and `$` (which Atlas keeps
/// literal in `/databaseUsers/$external/…`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'$');

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    credentials: Option<Credentials>,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    root_certificates: Vec<reqwest::Certificate>,
    proxy: bool,
    cached_token: Option<CachedToken>,
    rate_limit_wait: Duration,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .field("root_certificates", &self.root_certificates.len())
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl ClientBuilder {
    fn new(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            credentials: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            user_agent: concat!("dbcerts-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            root_certificates: Vec::new(),
            proxy: true,
            cached_token: None,
            rate_limit_wait: Duration::ZERO,
        }
    }

    /// Authenticate with `credentials`. Without credentials, requests are sent anonymously
    /// (and the API answers 401).
    pub fn credentials(mut self, credentials: Credentials) -> ClientBuilder {
        self.credentials = Some(credentials);
        self
    }

    /// The limit on each HTTP request, from connecting to the end of the response body
    /// (default 60 s). One call may make up to three requests (challenge and retries).
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = timeout;
        self
    }

    /// The limit on establishing a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// The `User-Agent` header (default `dbcerts-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> ClientBuilder {
        self.user_agent = user_agent.into();
        self
    }

    /// Trusts the CA certificates of a PEM bundle as well as the system's roots, for servers
    /// whose certificate a private CA issued.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<ClientBuilder, ClientError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::InvalidInput(format!("CA bundle: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::InvalidInput(
                "CA bundle: no certificate found".into(),
            ));
        }
        self.root_certificates.extend(certs);
        Ok(self)
    }

    /// Starts a service-account client with a token an earlier client obtained
    /// ([`Client::cached_token`]), so that a short-lived process does not fetch a token on
    /// every run. Ignored when the token is already due for renewal, and for API keys.
    pub fn cached_token(mut self, token: CachedToken) -> ClientBuilder {
        self.cached_token = Some(token);
        self
    }

    /// On 429 (rate limited), waits as `Retry-After` says (1 s when it says nothing) and sends
    /// the call again, for up to `max_wait` in all per call; then the 429 is returned. A 429
    /// is answered before the request is acted on, so repeating it is safe, POST included.
    /// Off (zero) by default.
    pub fn retry_rate_limited(mut self, max_wait: Duration) -> ClientBuilder {
        self.rate_limit_wait = max_wait;
        self
    }

    /// Ignores proxy settings from the environment (`HTTPS_PROXY`, …).
    pub fn no_proxy(mut self) -> ClientBuilder {
        self.proxy = false;
        self
    }

    /// The client. Fails on a base URL that is not an absolute `http`/`https` URL, or one
    /// with credentials, a query or a fragment in it.
    pub fn build(self) -> Result<Client, ClientError> {
        let base = parse_base_url(&self.base_url)?;
        let token_url = Url::parse(&format!("{base}/api/oauth/token"))
            .map_err(|e| ClientError::InvalidInput(format!("base URL: {e}")))?;
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            // A redirect would change the Digest `uri` and could carry credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(self.root_certificates);
        if !self.proxy {
            http = http.no_proxy();
        }
        let http = http
            .build()
            .map_err(|e| ClientError::InvalidInput(format!("HTTP client: {e}")))?;
        let auth = match self.credentials {
            None => Scheme::Anonymous,
            Some(Credentials::ApiKey { public, private }) => {
                Scheme::Digest(DigestAuth::new(public, private))
            }
            Some(Credentials::ServiceAccount { client_id, secret }) => {
                Scheme::Bearer(TokenSource::new(client_id, secret, self.cached_token))
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token_url,
                auth,
                rate_limit_wait: self.rate_limit_wait,
            }),
        })
    }
}

fn parse_base_url(text: &str) -> Result<String, ClientError> {
    let bad = |why: &str| ClientError::InvalidInput(format!("base URL {text:?}: {why}"));
    let url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials do not belong in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A typed client of a dbcerts (or Atlas) server. Cheap to clone; clones share the connection
/// pool, the Digest nonce and the OAuth token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Scheme, host, port and any path prefix, without a trailing `/`.
    base: String,
    token_url: Url,
    auth: Scheme,
    /// How long one call may spend waiting out 429s.
    rate_limit_wait: Duration,
}

enum Scheme {
    Anonymous,
    Digest(DigestAuth),
    Bearer(TokenSource),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.inner.auth {
            Scheme::Anonymous => "anonymous",
            Scheme::Digest(_) => "api key (Digest)",
            Scheme::Bearer(_) => "service account (OAuth)",
        };
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("auth", &auth)
            .finish()
    }
}

/// A response, its body read (and wiped from memory when dropped: it may hold a private key).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Zeroizing<Vec<u8>>,
}

/// One API call, replayable: method, encoded path, query, media type and body bytes.
pub(crate) struct Call {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    accept: &'static str,
    media_type: &'static str,
    body: Option<Zeroizing<Vec<u8>>>,
}

impl Call {
    /// A v2 call of `method` on `/api/atlas/v2/<segments…>`, each segment percent-encoded.
    pub fn v2(method: Method, segments: &[&str]) -> Result<Call, ClientError> {
        Ok(Call::raw(
            method,
            format!("{API_V2}{}", encode_path(segments)?),
        ))
    }

    /// A call on an already encoded path.
    pub fn raw(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            query: Vec::new(),
            accept: MEDIA_TYPE_2023_01_01,
            media_type: MEDIA_TYPE_2023_01_01,
            body: None,
        }
    }

    /// Adds query parameters.
    pub fn query(mut self, pairs: Vec<(&'static str, String)>) -> Call {
        self.query.extend(pairs);
        self
    }

    /// Uses `media_type` for `Accept` and for the body's `Content-Type`.
    pub fn media(mut self, media_type: &'static str) -> Call {
        self.accept = media_type;
        self.media_type = media_type;
        self
    }

    /// Asks for `accept` (the body, if any, keeps the JSON media type).
    pub fn accept(mut self, accept: &'static str) -> Call {
        self.accept = accept;
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Call, ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ClientError::InvalidInput(format!("request body: {e}")))?;
        self.body = Some(Zeroizing::new(bytes));
        Ok(self)
    }
}

/// `/seg/seg/…`, each segment percent-encoded so that any character (`/`, `%`, `?`, `#`,
/// spaces, non-ASCII) stays inside its segment.
pub(crate) fn encode_path(segments: &[&str]) -> Result<String, ClientError> {
    let mut out = String::new();
    for s in segments {
        // An empty segment would route elsewhere; `.` and `..` (even encoded) are removed by
        // URL normalisation before the request is sent.
        if s.is_empty() || *s == "." || *s == ".." {
            return Err(ClientError::InvalidInput(format!(
                "{s:?} cannot be used as a path segment"
            )));
        }
        out.push('/');
        out.extend(utf8_percent_encode(s, SEGMENT));
    }
    Ok(out)
}

/// The request target as sent on the wire (path and query), which the Digest `uri` must equal.
fn request_target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Maps a failure to send or read a request.
pub(crate) fn send_error(e: reqwest::Error) -> ClientError {
    ClientError::Transport(e)
}

/// Reads a response body, refusing one larger than [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_body(
    mut res: reqwest::Response,
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let status = res.status();
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = res.chunk().await.map_err(send_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::UnexpectedBody {
                status: status.as_u16(),
                content_type: None,
                problem: format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Atlas's 401 codes for a caller that authenticated but lacks a role: a new token would not
/// change the answer.
const AUTHORIZATION_CODES: &[&str] =
    &["USER_UNAUTHORIZED", "NOT_IN_GROUP", "NOT_ORG_GROUP_CREATOR"];

/// Whether a 401 refuses an authenticated caller (no challenge, an authorization code) rather
/// than its credentials.
fn refuses_caller(reply: &Reply) -> bool {
    if reply
        .headers
        .contains_key(reqwest::header::WWW_AUTHENTICATE)
    {
        return false;
    }
    let code = reply
        .headers
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()?
                .get("errorCode")?
                .as_str()
                .map(str::to_owned)
        });
    code.is_some_and(|c| AUTHORIZATION_CODES.contains(&c.as_str()))
}

fn bearer(token: &Secret) -> Result<HeaderValue, ClientError> {
    sensitive(&Zeroizing::new(format!("Bearer {}", token.expose())))
}

fn sensitive(value: &str) -> Result<HeaderValue, ClientError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| ClientError::InvalidInput("unusable credentials".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

impl Client {
    /// A builder for a client of the server at `base_url` (e.g. `https://dbcerts.example.com`;
    /// a path prefix is kept).
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder::new(base_url)
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// A current OAuth access token (fetched or renewed if needed), for handing to another
    /// tool. Only for service-account clients.
    pub async fn access_token(&self) -> Result<Secret, ClientError> {
        match &self.inner.auth {
            Scheme::Bearer(t) => Ok(t
                .token(&self.inner.http, &self.inner.token_url)
                .await?
                .value),
            _ => Err(ClientError::InvalidInput(
                "only a service-account client has an access token".into(),
            )),
        }
    }

    /// The service account's current token and when it is due for renewal, for keeping it
    /// until the next run ([`ClientBuilder::cached_token`]). `None` for other clients and
    /// before the first request.
    pub async fn cached_token(&self) -> Option<CachedToken> {
        match &self.inner.auth {
            Scheme::Bearer(t) => t.cached().await,
            _ => None,
        }
    }

    /// Revokes the cached OAuth access token at `POST {base}/api/oauth/revoke` and forgets it;
    /// the next call fetches a new one. Does nothing for other clients or without a token.
    pub async fn revoke_access_token(&self) -> Result<(), ClientError> {
        let Scheme::Bearer(t) = &self.inner.auth else {
            return Ok(());
        };
        let Some(token) = t.take().await else {
            return Ok(());
        };
        let url = self.url(&Call::raw(Method::POST, "/api/oauth/revoke".into()))?;
        let body = Zeroizing::new(format!(
            "token={}&token_type_hint=access_token",
            utf8_percent_encode(token.expose(), NON_ALPHANUMERIC)
        ));
        let res = self
            .inner
            .http
            .post(url)
            .header(AUTHORIZATION, t.basic_authorization()?)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body.as_bytes().to_vec())
            .send()
            .await
            .map_err(send_error)?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = read_body(res).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(error::from_response(status, &headers, &body))
        }
    }

    fn url(&self, call: &Call) -> Result<Url, ClientError> {
        let mut url = Url::parse(&format!("{}{}", self.inner.base, call.path))
            .map_err(|e| ClientError::InvalidInput(format!("URL: {e}")))?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    /// Sends `call` once with `authorization`, and reads the whole response.
    async fn send_once(
        &self,
        call: &Call,
        url: &Url,
        authorization: Option<HeaderValue>,
    ) -> Result<Reply, ClientError> {
        let started = Instant::now();
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), url.clone())
            .header(ACCEPT, call.accept);
        if let Some(body) = &call.body {
            req = req
                .header(CONTENT_TYPE, call.media_type)
                .body(body.to_vec());
        }
        if let Some(a) = authorization {
            req = req.header(AUTHORIZATION, a);
        }
        let res = req.send().await.map_err(send_error)?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = read_body(res).await?;
        tracing::debug!(
            method = %call.method,
            path = url.path(),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "dbcerts-client request"
        );
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends `call`, authenticating as configured, and returns the successful response or the
    /// error the server answered with.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Reply, ClientError> {
        let url = self.url(call)?;
        let mut waited = Duration::ZERO;
        let reply = loop {
            let reply = match &self.inner.auth {
                Scheme::Anonymous => self.send_once(call, &url, None).await?,
                Scheme::Digest(d) => self.execute_digest(d, call, &url).await?,
                Scheme::Bearer(t) => self.execute_bearer(t, call, &url).await?,
            };
            if reply.status != StatusCode::TOO_MANY_REQUESTS {
                break reply;
            }
            let wait = retry_after(&reply.headers);
            if waited + wait > self.inner.rate_limit_wait {
                break reply;
            }
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "dbcerts-client: rate limited, waiting"
            );
            tokio::time::sleep(wait).await;
            waited += wait;
        };
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(error::from_response(
                reply.status,
                &reply.headers,
                &reply.body,
            ))
        }
    }

    /// Digest: answer a cached challenge checked out for this request; on a 401, take the new
    /// challenge and try again when the request had no answer yet, the server said
    /// `stale=true`, or the refused nonce was cached before this call. At most three requests.
    /// The last challenge goes back to the pool for later requests.
    async fn execute_digest(
        &self,
        d: &DigestAuth,
        call: &Call,
        url: &Url,
    ) -> Result<Reply, ClientError> {
        let target = request_target(url);
        let method = call.method.as_str();
        let mut current = d.checkout();
        // Whether `current` arrived during this call (so it is not a stale cache).
        let mut fresh = false;
        let mut retried = false;
        loop {
            let header = match current.as_mut() {
                Some(c) => Some(sensitive(&d.answer(c, method, &target)?)?),
                None => None,
            };
            let answered = header.is_some();
            let reply = match self.send_once(call, url, header).await {
                Ok(r) => r,
                Err(e) => {
                    if let Some(c) = current {
                        d.checkin(c);
                    }
                    return Err(e);
                }
            };
            let challenge = (reply.status == StatusCode::UNAUTHORIZED)
                .then(|| digest::challenge_of(&reply.headers))
                .flatten();
            let Some(challenge) = challenge else {
                if let Some(c) = current {
                    d.checkin(c);
                }
                return Ok(reply);
            };
            let retry = if answered {
                !retried && (challenge.stale() || !fresh)
            } else {
                !fresh
            };
            retried |= answered;
            fresh = true;
            if !retry {
                d.checkin(challenge);
                return Ok(reply);
            }
            current = Some(challenge);
        }
    }

    /// Bearer: use the cached token; on a 401 refusing a token cached before this call (not a
    /// missing role), fetch a new one and try once more.
    async fn execute_bearer(
        &self,
        t: &TokenSource,
        call: &Call,
        url: &Url,
    ) -> Result<Reply, ClientError> {
        let http = &self.inner.http;
        let token = t.token(http, &self.inner.token_url).await?;
        let header = bearer(&token.value)?;
        let reply = self.send_once(call, url, Some(header)).await?;
        if reply.status != StatusCode::UNAUTHORIZED || token.fresh || refuses_caller(&reply) {
            return Ok(reply);
        }
        t.invalidate(&token.value).await;
        let token = t.token(http, &self.inner.token_url).await?;
        let header = bearer(&token.value)?;
        self.send_once(call, url, Some(header)).await
    }

    /// Sends `call` and decodes the JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ClientError> {
        let reply = self.execute(call).await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| error::unreadable_success(reply.status, &reply.headers, &e))
    }

    /// Sends `call` and ignores the answer's body.
    pub(crate) async fn unit(&self, call: &Call) -> Result<(), ClientError> {
        self.execute(call).await.map(drop)
    }
}

/// The wait a 429's `Retry-After` asks for: delta-seconds (an HTTP date, or nothing, counts
/// as one second), at least 100 ms.
fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_any_character_inside() {
        assert_eq!(
            encode_path(&[
                "groups",
                "5f1e",
                "databaseUsers",
                "$external",
                "a/b%c d?#é名"
            ])
            .unwrap(),
            "/groups/5f1e/databaseUsers/$external/a%2Fb%25c%20d%3F%23%C3%A9%E5%90%8D"
        );
        assert_eq!(encode_path(&["10.0.0.0/8"]).unwrap(), "/10.0.0.0%2F8");
        assert_eq!(encode_path(&["..x"]).unwrap(), "/..x");
        for bad in ["", ".", ".."] {
            assert!(matches!(
                encode_path(&["a", bad]),
                Err(ClientError::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn the_url_keeps_encoded_segments_and_the_digest_uri_matches_it() {
        let client = Client::builder("http://127.0.0.1:8080/prefix/")
            .build()
            .unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:8080/prefix");
        let call = Call::v2(Method::GET, &["groups", "a/b c"])
            .unwrap()
            .query(vec![("pageNum", "2".into())]);
        let url = client.url(&call).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/prefix/api/atlas/v2/groups/a%2Fb%20c?pageNum=2"
        );
        assert_eq!(
            request_target(&url),
            "/prefix/api/atlas/v2/groups/a%2Fb%20c?pageNum=2"
        );
    }

    #[test]
    fn base_urls_are_checked() {
        for bad in [
            "ftp://x",
            "not a url",
            "http://user:pw@host",
            "http://host/?q=1",
            "/relative",
        ] {
            assert!(
                matches!(
                    Client::builder(bad).build(),
                    Err(ClientError::InvalidInput(_))
                ),
                "{bad}"
            );
        }
        let c = Client::builder("https://dbcerts.example.com")
            .credentials(Credentials::api_key("abcdefgh", "secret-private-key"))
            .build()
            .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("dbcerts.example.com") && !shown.contains("secret-private"));
    }
}
