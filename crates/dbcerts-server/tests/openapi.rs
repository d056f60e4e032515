//! dbcerts' OpenAPI document: what the server serves at `/api/dbcerts/v1/openapi.json` (without
//! credentials) is byte for byte the committed `docs/openapi.json`, and every operation it
//! documents is routed. Regenerate the copy with
//! `UPDATE_OPENAPI=1 cargo test -p dbcerts-server --test openapi`.

mod common;

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Harness;
use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// A documented path with made-up values for its parameters.
fn concrete(path: &str) -> String {
    let uri = path
        .replace("{groupId}", "0123456789abcdef01234567")
        .replace("{orgId}", "0123456789abcdef01234567")
        .replace("{databaseName}", "admin")
        .replace("{username}", "nobody")
        .replace("{apiUserId}", "0123456789abcdef01234567")
        .replace("{clientId}", "mdb_sa_id_0123456789abcdef01234567")
        .replace("{secretId}", "0123456789abcdef01234567")
        .replace("{ipAddress}", "192.0.2.1")
        .replace("{request}", "MAA")
        .replace("{serial}", "1")
        .replace("{token}", "t");
    assert!(!uri.contains('{'), "{uri}");
    uri
}

/// The route a documented path is served by: a parameter's custom-method suffix
/// (`{clientId}:invite`) is part of the parameter's value, not of the route.
fn route_of(path: &str) -> &str {
    let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
    match last.split_once("}:") {
        Some(_) if last.starts_with('{') => {
            &path[..parent.len() + 1 + last.find("}:").unwrap() + 1]
        }
        _ => path,
    }
}

/// The versioned Atlas media type an operation answers in, if any.
fn atlas_media(op: &Value) -> Option<String> {
    op["responses"]
        .as_object()?
        .values()
        .filter_map(|r| r["content"].as_object())
        .flat_map(|c| c.keys())
        .find(|k| k.starts_with("application/vnd.atlas"))
        .cloned()
}

async fn served(h: &Harness) -> String {
    let reply = h
        .raw(
            Request::get("/api/dbcerts/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.content_type, "application/json");
    reply.text
}

#[tokio::test]
async fn the_served_document_is_the_committed_copy() {
    let h = Harness::new().await;
    let text = served(&h).await;
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "docs/openapi.json differs from the document the server serves; regenerate it with \
         UPDATE_OPENAPI=1 cargo test -p dbcerts-server --test openapi and commit it"
    );
}

/// Every documented operation reaches a handler: with credentials and made-up ids, none is
/// answered by the router's fallbacks (405, or 404 RESOURCE_NOT_FOUND for the whole path).
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let h = Harness::new().await;
    let doc: Value = serde_json::from_str(&served(&h).await).unwrap();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let uri = concrete(path);
            if path == "/metrics" {
                // Served by the metrics listener (`--metrics-listen`), not the API's.
                let req = Request::get("/metrics").body(Body::empty()).unwrap();
                let res = tower::ServiceExt::oneshot(h.metrics.clone(), req)
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{method} {uri}");
                count += 1;
                continue;
            }
            let media = atlas_media(op);
            let body = op.get("requestBody").map(|_| "{}");
            let reply =
                if path.starts_with("/api/atlas/") || path.starts_with("/api/dbcerts/v1/groups") {
                    h.call(&method.to_uppercase(), &uri, media.as_deref(), body)
                        .await
                } else {
                    h.raw(
                        Request::builder()
                            .method(method.to_uppercase().as_str())
                            .uri(&uri)
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                };
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
            let fallback = reply.status == StatusCode::NOT_FOUND
                && reply.error_code.as_deref() == Some("RESOURCE_NOT_FOUND")
                && reply.text.contains(&uri);
            assert!(!fallback, "{method} {uri} is not routed: {}", reply.text);
            count += 1;
        }
    }
    assert!(count >= 85, "only {count} operations documented");
}

/// Every method a documented path does not document is Atlas's 405 in Atlas's JSON format
/// (errorCode UNEXPECTED_ERROR), on the Atlas paths and on the extension's alike, never a
/// framework's empty body. Not covered: the OCSP responder, which answers every request in
/// OCSP (an OCSP client cannot read JSON), the OAuth token endpoints, which answer in OAuth's
/// format, and `/metrics` (its own listener, tested in observe.rs).
#[tokio::test]
async fn every_undocumented_method_is_atlas_405() {
    let h = Harness::new().await;
    let doc: Value = serde_json::from_str(&served(&h).await).unwrap();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/metrics"
            || path.starts_with("/api/dbcerts/v1/ocsp/")
            || path.starts_with("/api/oauth/")
        {
            continue;
        }
        let uri = concrete(path);
        let documented = item.as_object().unwrap();
        // A v2 request names a version its path has (the version is checked first); a path
        // whose only operation answers 204 takes its nearest parent's.
        let media = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .max_by_key(|(p, i)| {
                (
                    i.as_object()
                        .unwrap()
                        .values()
                        .any(|op| atlas_media(op).is_some()),
                    p.len(),
                )
            })
            .and_then(|(_, i)| i.as_object().unwrap().values().find_map(atlas_media));
        for method in ["get", "post", "put", "patch", "delete"] {
            // `…/{clientId}:invite` and `…/{serial}:revoke` are the last segment's parameter
            // with a custom-method suffix: one route serves both paths, so a method of one is
            // routed on the other too (and its handler answers 404 for the wrong form).
            let custom_method_shares_the_route =
                doc["paths"].as_object().unwrap().iter().any(|(p, i)| {
                    p != path && route_of(p) == route_of(path) && i.get(method).is_some()
                });
            if documented.contains_key(method) || custom_method_shares_the_route {
                continue;
            }
            // The public paths (this document, the CRL distribution URL) answer without
            // credentials; the others are asked again with them after the 401.
            let mut anonymous = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri);
            if let Some(m) = &media {
                anonymous = anonymous.header("accept", m.as_str());
            }
            let mut reply = h.raw(anonymous.body(Body::empty()).unwrap()).await;
            if reply.status == StatusCode::UNAUTHORIZED {
                reply = h
                    .call(&method.to_uppercase(), &uri, media.as_deref(), None)
                    .await;
            }
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}: {}",
                reply.text
            );
            assert_eq!(
                reply.error_code.as_deref(),
                Some("UNEXPECTED_ERROR"),
                "{method} {uri}: {}",
                reply.text
            );
            count += 1;
        }
    }
    assert!(count >= 100, "only {count} undocumented methods tried");
}
