//! The routers: the API's (both API prefixes, `/health/*`, authentication and version
//! negotiation, Atlas-format fallbacks, request ids, head and body limits, request metrics,
//! and logging of 5xx causes) and the metrics listener's (`/metrics` only).

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::AppState;
use crate::error::{AtlasError, LoggedCause};
use crate::format::ApiVersion;
use crate::routes;

/// Header carrying the request id that ties a response to its log lines.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let api = |version: ApiVersion| {
        let mut r = routes::api_routes();
        if version == ApiVersion::V2 {
            r = r.merge(
                routes::service_account_routes()
                    .route_layer(middleware::from_fn(negotiate_2024_08_05)),
            );
        }
        let mut r = r.method_not_allowed_fallback(method_not_allowed);
        if version == ApiVersion::V2 {
            r = r.route_layer(middleware::from_fn(negotiate_version));
        }
        r.layer(middleware::from_fn(move |mut req: Request, next: Next| {
            req.extensions_mut().insert(version);
            next.run(req)
        }))
    };
    let body_limit = state.inner.config.body_limit;
    Router::new()
        .nest("/api/atlas/v2", api(ApiVersion::V2))
        .nest("/api/atlas/v1.0", api(ApiVersion::V1))
        .merge(routes::extension_routes().method_not_allowed_fallback(method_not_allowed))
        .merge(routes::oauth_routes())
        .merge(crate::observe::routes().method_not_allowed_fallback(method_not_allowed))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate_api,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(
            state.inner.config.body_timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                AtlasError::unexpected("a request handler panicked").into_response()
            },
        ))
        .layer(middleware::from_fn(crate::head_limits::enforce))
        .layer(middleware::from_fn(crate::observe::count_requests))
        .layer(middleware::from_fn(log_requests))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// The metrics listener's application: `GET /metrics` (Prometheus text), counted like every
/// request; any other path is Atlas's 404, any other method Atlas's 405.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .merge(crate::observe::metrics_routes().method_not_allowed_fallback(method_not_allowed))
        .fallback(not_found)
        .layer(middleware::from_fn(crate::head_limits::enforce))
        .layer(middleware::from_fn(crate::observe::count_requests))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

/// v2 requests must ask for `application/vnd.atlas.<date>+json` with a real date on or after
/// 2023-01-01; every operation here resolves to 2023-01-01. Anything else is 406
/// `INVALID_VERSION_DATE`.
async fn negotiate_version(req: Request, next: Next) -> Response {
    if !accepts_at_least(&req, V2023_01_01) {
        return AtlasError::invalid_version_date().into_response();
    }
    next.run(req).await
}

const V2023_01_01: chrono::NaiveDate =
    chrono::NaiveDate::from_ymd_opt(2023, 1, 1).expect("valid date");
const V2024_08_05: chrono::NaiveDate =
    chrono::NaiveDate::from_ymd_opt(2024, 8, 5).expect("valid date");

/// Service-account operations exist from version 2024-08-05 on: an earlier Accept date is 406,
/// and answers carry the 2024-08-05 media type.
async fn negotiate_2024_08_05(req: Request, next: Next) -> Response {
    if !accepts_at_least(&req, V2024_08_05) {
        return AtlasError::invalid_version_date().into_response();
    }
    let mut res = next.run(req).await;
    let versioned = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/vnd.atlas.2023-01-01")
    });
    if versioned {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.atlas.2024-08-05+json;charset=utf-8"),
        );
    }
    res
}

/// Whether any `Accept` media range asks for an Atlas version dated `min` or later.
fn accepts_at_least(req: &Request, min: chrono::NaiveDate) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| accepts_version(m, min))
}

fn accepts_version(media_range: &str, min: chrono::NaiveDate) -> bool {
    let essence = media_range
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some(date) = essence
        .strip_prefix("application/vnd.atlas.")
        .and_then(|rest| rest.strip_suffix("+json"))
    else {
        return false;
    };
    date.len() == 10 && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok_and(|d| d >= min)
}

async fn not_found(req: Request) -> AtlasError {
    AtlasError::resource_not_found(req.uri().path())
}

async fn method_not_allowed(method: Method) -> AtlasError {
    AtlasError::method_not_allowed(method.as_str())
}

/// Logs each request once, and the hidden cause of every 5xx with the request id. (Over-limit
/// bodies become Atlas's 413 in `AtlasBody`, panics an opaque 500 in `CatchPanicLayer`.)
async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let started = std::time::Instant::now();
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0");
    let mut res = next.run(req).await;
    // A middleware answer (401 challenge, 406, 404/405 fallback, 413, 408) leaves the request body
    // unread, and hyper then closes the connection. Saying so lets a Digest client send its
    // authenticated retry on a new connection instead of failing on a dead one.
    if has_body
        && matches!(
            res.status(),
            StatusCode::UNAUTHORIZED
                | StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::NOT_ACCEPTABLE
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::REQUEST_TIMEOUT
        )
    {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = res.status();
    if let Some(LoggedCause(cause)) = res.extensions().get::<LoggedCause>() {
        tracing::error!(request_id = %id, %method, %path, status = status.as_u16(), %cause, "request failed");
    }
    tracing::debug!(
        request_id = %id,
        %method,
        %path,
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    res
}

/// How long a graceful shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_dates() {
        for ok in [
            "application/vnd.atlas.2023-01-01+json",
            "application/vnd.atlas.2025-03-12+json",
            "application/vnd.atlas.2024-08-05+json; charset=utf-8",
            " APPLICATION/VND.ATLAS.2023-01-01+JSON",
        ] {
            assert!(accepts_version(ok, V2023_01_01), "{ok}");
        }
        for bad in [
            "application/json",
            "*/*",
            "application/vnd.atlas.2022-12-31+json",
            "application/vnd.atlas.2023-02-30+json",
            "application/vnd.atlas.preview+json",
            "application/vnd.atlas.2023-01-01+csv",
            "application/vnd.atlas.2023-1-1+json",
        ] {
            assert!(!accepts_version(bad, V2023_01_01), "{bad}");
        }
    }
}
