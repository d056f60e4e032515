//! OAuth 2.0 client-credentials tokens for bearer-authenticated runs.

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use serde::Deserialize;

use crate::conn::Connection;
use crate::url::parse_loopback;

/// Fetches an access token: `POST {base_url}/api/oauth/token` with HTTP Basic
/// `client_id:client_secret` and the form body `grant_type=client_credentials`, answered by JSON
/// with an `access_token`. `base_url` is the server's `http://host:port` (loopback only).
pub async fn fetch_bearer_token(
    base_url: &str,
    client_id: &str,
    client_secret: &str,
) -> anyhow::Result<String> {
    let url = format!("{}/api/oauth/token", base_url.trim_end_matches('/'));
    let target = parse_loopback(&url)?;
    let mut conn = Connection::connect(&target.addrs).await?;
    let basic = STANDARD.encode(format!("{client_id}:{client_secret}"));
    let request = Request::builder()
        .method(Method::POST)
        .uri(target.path_and_query.as_str())
        .header(HOST, target.authority.as_str())
        .header(AUTHORIZATION, format!("Basic {basic}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))
        .context("building the token request")?;
    let response = conn
        .send(request)
        .await
        .with_context(|| format!("POST {url}"))?;
    if !response.status.is_success() {
        bail!(
            "POST {url} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
        );
    }
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
    }
    let token: TokenResponse = serde_json::from_slice(&response.body)
        .with_context(|| format!("POST {url} answered no JSON access_token"))?;
    Ok(token.access_token)
}
