//! The order in which a request's parts are refused, now that handlers take their query
//! (`params::ListQuery`, `EntityQuery`, `EnvelopeQuery`) and their organization-or-project
//! scope (`routes::Scope`) from extractors: a body over the limit is answered before a bad
//! query, a bad query before the project is looked up, and a malformed path before either.

mod common;

use axum::http::StatusCode;
use common::{Harness, V2};

const SA: &str = "application/vnd.atlas.2024-08-05+json";

#[tokio::test]
async fn a_body_over_the_limit_is_answered_before_a_bad_query() {
    let h = Harness::new().await;
    let gid = h.project("order").await;
    let big = format!(
        "{{\"monthsUntilExpiration\": 3, \"pad\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    for uri in [
        format!("/api/atlas/v2/groups/{gid}/databaseUsers/alice/certs?pretty=maybe"),
        format!("/api/atlas/v2/groups/{gid}/databaseUsers?envelope=1"),
    ] {
        let reply = h.call("POST", &uri, Some(V2), Some(&big)).await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{uri}: {}",
            reply.text
        );
    }
    // The same bad query with a body within the limit is the query's error.
    let uri = format!("/api/atlas/v2/groups/{gid}/databaseUsers/alice/certs?pretty=maybe");
    let reply = h.call("POST", &uri, Some(V2), Some("{}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code.as_deref(), Some("INVALID_QUERY_PARAMETER"));
    let body: serde_json::Value = serde_json::from_str(&reply.text).unwrap();
    assert_eq!(body["parameters"], serde_json::json!(["pretty"]));
}

#[tokio::test]
async fn a_bad_query_is_answered_before_the_project_is_looked_up() {
    let h = Harness::new().await;
    for (uri, media, name) in [
        (
            "/api/atlas/v2/groups/not-a-project/databaseUsers?pageNum=0".to_owned(),
            V2,
            "pageNum",
        ),
        (
            "/api/atlas/v2/groups/0123456789abcdef01234567/userSecurity?pretty=1".to_owned(),
            V2,
            "pretty",
        ),
        (
            format!("/api/atlas/v2/orgs/{}/serviceAccounts/nobody/accessList?itemsPerPage=501", h.org_id),
            SA,
            "itemsPerPage",
        ),
        (
            "/api/atlas/v2/groups/0123456789abcdef01234567/serviceAccounts/nobody/accessList?includeCount=no"
                .to_owned(),
            SA,
            "includeCount",
        ),
    ] {
        let reply = h.call("GET", &uri, Some(media), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}: {}", reply.text);
        assert_eq!(reply.error_code.as_deref(), Some("INVALID_QUERY_PARAMETER"), "{uri}");
        let body: serde_json::Value = serde_json::from_str(&reply.text).unwrap();
        assert_eq!(body["parameters"], serde_json::json!([name]), "{uri}");
    }
    // Without the bad parameter, the same calls get as far as the project.
    for (uri, media, code) in [
        (
            "/api/atlas/v2/groups/not-a-project/databaseUsers",
            V2,
            "INVALID_GROUP_ID",
        ),
        (
            "/api/atlas/v2/groups/0123456789abcdef01234567/serviceAccounts/nobody/accessList",
            SA,
            "GROUP_NOT_FOUND",
        ),
    ] {
        let reply = h.call("GET", uri, Some(media), None).await;
        assert_eq!(
            reply.error_code.as_deref(),
            Some(code),
            "{uri}: {}",
            reply.text
        );
    }
}

/// `routes::Scope` reads `{orgId}` or `{groupId}` as `AtlasPath` does: a NUL in either is the
/// 404 naming the path, before the query is looked at.
#[tokio::test]
async fn a_malformed_scope_is_the_path_not_found_before_a_bad_query() {
    let h = Harness::new().await;
    for path in [
        "/api/atlas/v2/orgs/0123456789abcdef0123456%00/serviceAccounts/x/accessList",
        "/api/atlas/v2/groups/0123456789abcdef0123456%00/serviceAccounts/x/accessList",
    ] {
        let uri = format!("{path}?pageNum=0");
        let reply = h.call("GET", &uri, Some(SA), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}: {}", reply.text);
        assert_eq!(
            reply.error_code.as_deref(),
            Some("RESOURCE_NOT_FOUND"),
            "{uri}"
        );
        let body: serde_json::Value = serde_json::from_str(&reply.text).unwrap();
        assert_eq!(body["parameters"], serde_json::json!([path]), "{uri}");
    }
}
