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
            let uri = path
                .replace("{groupId}", "0123456789abcdef01234567")
                .replace("{orgId}", "0123456789abcdef01234567")
                .replace("{databaseName}", "admin")
                .replace("{username}", "nobody")
                .replace("{apiUserId}", "0123456789abcdef01234567")
                .replace("{clientId}", "mdb_sa_id_0123456789abcdef01234567")
                .replace("{secretId}", "0123456789abcdef01234567")
                .replace("{ipAddress}", "192.0.2.1")
                .replace("{serial}", "1")
                .replace("{request}", "MAA");
            assert!(!uri.contains('{'), "{uri}");
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
            let media = op["responses"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|r| r["content"].as_object())
                .flat_map(|c| c.keys())
                .find(|k| k.starts_with("application/vnd.atlas"))
                .cloned();
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
