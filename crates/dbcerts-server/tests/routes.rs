//! Every Atlas operation dbcerts implements is routed with MongoDB's method and path: under
//! `/api/atlas/v2` with its API version's media type, and under `/api/atlas/v1.0` where dbcerts
//! mounts it (every operation but the service-account ones, which MongoDB versions
//! 2024-08-05). The operations are the repository's own tables of facts about MongoDB's API,
//! `tests/fidelity/atlas-operations.json` (the X.509 authentication resource) and
//! `tests/fidelity/atlas-credential-operations.json` (API keys, their access lists, project API
//! keys, service accounts).
//!
//! "Routed" means a handler answered: with credentials, the answer is neither the router's
//! 405 nor its 404 for a path it does not know (`RESOURCE_NOT_FOUND` naming the whole path),
//! which two control requests show it gives for what is not routed.

mod common;

use std::path::PathBuf;

use axum::http::StatusCode;
use common::{Harness, Reply};
use serde::Deserialize;

const V2: &str = "/api/atlas/v2";
const V1: &str = "/api/atlas/v1.0";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    operation: String,
    method: String,
    path: String,
    /// The media type's version; absent from atlas-operations.json, whose operations are all
    /// 2023-01-01.
    #[serde(default = "api_2023")]
    api_version: String,
}

fn api_2023() -> String {
    "2023-01-01".to_owned()
}

#[derive(Deserialize)]
struct Table {
    operations: Vec<Operation>,
}

fn table(name: &str) -> Vec<Operation> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fidelity")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str::<Table>(&text)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .operations
}

fn operations() -> Vec<Operation> {
    let mut all = table("atlas-operations.json");
    all.extend(table("atlas-credential-operations.json"));
    all
}

/// `path` with real ids where the harness has them (its organization, a project of it) and
/// made-up ones elsewhere; `:invite` stays on the client id, as clients send it.
fn concrete(path: &str, org_id: &str, group_id: &str) -> String {
    let uri = path
        .replace("{orgId}", org_id)
        .replace("{groupId}", group_id)
        .replace("{databaseName}", "admin")
        .replace("{username}", "nobody")
        .replace("{apiUserId}", "0123456789abcdef01234567")
        .replace("{clientId}", "mdb_sa_id_0123456789abcdef01234567")
        .replace("{secretId}", "0123456789abcdef01234567")
        .replace("{ipAddress}", "192.0.2.1");
    assert!(
        !uri.contains('{'),
        "a parameter this test does not know: {uri}"
    );
    uri
}

/// Whether the router answered `reply` itself: 405 for a method it does not route, or 404
/// `RESOURCE_NOT_FOUND` naming the whole path for a path it does not know.
fn router_fallback(reply: &Reply, uri: &str) -> bool {
    if reply.status == StatusCode::METHOD_NOT_ALLOWED {
        return true;
    }
    if reply.status != StatusCode::NOT_FOUND
        || reply.error_code.as_deref() != Some("RESOURCE_NOT_FOUND")
    {
        return false;
    }
    let body: serde_json::Value = serde_json::from_str(&reply.text).unwrap();
    body["parameters"] == serde_json::json!([uri])
}

async fn send(h: &Harness, op: &Operation, uri: &str, media: Option<&str>) -> Reply {
    let body = matches!(op.method.as_str(), "POST" | "PATCH" | "PUT").then_some("{}");
    h.call(&op.method, uri, media, body).await
}

#[tokio::test]
async fn every_atlas_operation_is_routed_with_its_method_and_path() {
    let h = Harness::new().await;
    let group_id = h.project("routes").await;
    let ops = operations();
    // 14 X.509-resource operations and 36 credential ones.
    assert_eq!(
        ops.len(),
        50,
        "the tables changed: check this test still covers them"
    );
    let mut seen = std::collections::HashSet::new();
    for op in &ops {
        assert!(seen.insert(&op.operation), "{} listed twice", op.operation);
        let rest = op
            .path
            .strip_prefix(V2)
            .unwrap_or_else(|| panic!("{}: not a v2 path: {}", op.operation, op.path));
        let media = format!("application/vnd.atlas.{}+json", op.api_version);
        let uri = concrete(&op.path, &h.org_id, &group_id);
        let reply = send(&h, op, &uri, Some(&media)).await;
        assert!(
            !router_fallback(&reply, &uri),
            "{} ({} {uri}) is not routed: {} {}",
            op.operation,
            op.method,
            reply.status,
            reply.text
        );
        assert!(
            reply.status != StatusCode::NOT_ACCEPTABLE,
            "{} ({} {uri}) refuses its own media type {media}: {}",
            op.operation,
            op.method,
            reply.text
        );

        // `/api/atlas/v1.0` serves the 2023-01-01 operations (in application/json) and not
        // the service-account ones, which only ever had version 2024-08-05.
        let v1 = concrete(&format!("{V1}{rest}"), &h.org_id, &group_id);
        let reply = send(&h, op, &v1, None).await;
        match op.api_version.as_str() {
            "2023-01-01" => assert!(
                !router_fallback(&reply, &v1),
                "{} ({} {v1}) is not routed: {} {}",
                op.operation,
                op.method,
                reply.status,
                reply.text
            ),
            "2024-08-05" => assert!(
                router_fallback(&reply, &v1) && reply.status == StatusCode::NOT_FOUND,
                "{} is served under /api/atlas/v1.0: {} {}",
                op.operation,
                reply.status,
                reply.text
            ),
            other => panic!(
                "{}: API version {other} is not one dbcerts serves",
                op.operation
            ),
        }
    }
}

/// The two answers `router_fallback` recognises are what the router gives for what it does not
/// route, with credentials, so the test above would see an operation that is not routed.
#[tokio::test]
async fn the_router_fallbacks_are_recognised() {
    let h = Harness::new().await;
    let group_id = h.project("routes").await;
    let unknown_path = format!("{V2}/groups/{group_id}/nothingHere");
    let reply = h.call("GET", &unknown_path, Some(common::V2), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert!(router_fallback(&reply, &unknown_path), "{}", reply.text);

    let unrouted_method = format!("{V2}/groups/{group_id}/userSecurity");
    let reply = h
        .call("PUT", &unrouted_method, Some(common::V2), Some("{}"))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        reply.text
    );
    assert!(router_fallback(&reply, &unrouted_method));

    // A handler's own 404 (an unknown service account) is not taken for the router's.
    let account = format!(
        "{V2}/orgs/{}/serviceAccounts/mdb_sa_id_0123456789abcdef01234567",
        h.org_id
    );
    let reply = h
        .call(
            "GET",
            &account,
            Some("application/vnd.atlas.2024-08-05+json"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert!(!router_fallback(&reply, &account), "{}", reply.text);
}
