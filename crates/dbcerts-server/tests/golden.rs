//! Golden snapshots of every success, list and error body, in-process (`Router::oneshot`)
//! against a real SQLite file (the body timeout over a real socket). Ids, dates, serials and
//! certificates are replaced by placeholders before snapshotting, so each snapshot pins the exact
//! shape, key order, wording, status and headers (`Content-Type`, `X-Error-Code`, and
//! `Retry-After` / `Connection` where sent) Atlas clients see.
//!
//! Every error comes from a real request that causes it, 5xx included (a damaged sealed key, a
//! closed store). [`every_error_code_has_a_snapshot`] reads `src/error.rs` and the codes built in
//! place under `src/`, and fails if any has no snapshot rendering its code and status.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, Reply};
use dbcerts_server::ServerConfig;
use dbcerts_store::Store;
use serde_json::Value;

/// Replaces run-specific values by placeholders: the ids given, dates, certificate serials and
/// PEM certificates (in JSON text, their line breaks are `\n` escapes).
fn normalize(text: &str, ids: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (value, placeholder) in ids {
        out = out.replace(value, placeholder);
    }
    let date = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
    let out = date.replace_all(&out, "[date]").into_owned();
    let serial = regex::Regex::new(r#""_id" ?: ?\d+"#).unwrap();
    let out = serial
        .replace_all(&out, "\"_id\":\"[serial]\"")
        .into_owned();
    let pem = regex::Regex::new(
        r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\\n]+-----END CERTIFICATE-----(\\n)?",
    )
    .unwrap();
    pem.replace_all(&out, "[certificate]").into_owned()
}

/// The response headers a snapshot records besides the content type and `X-Error-Code`, when
/// the response carries them.
const RECORDED_HEADERS: [&str; 2] = ["connection", "retry-after"];

/// What a snapshot records of `r`: status, content type, `X-Error-Code`, the headers of
/// [`RECORDED_HEADERS`] it carries, and the normalized body.
fn record(name: &str, r: &Reply, ids: &[(&str, &str)]) -> Value {
    let value: Value = serde_json::from_str(&normalize(&r.text, ids))
        .unwrap_or_else(|e| panic!("{name}: {e}: {}", r.text));
    let mut record = serde_json::json!({
        "status": r.status.as_u16(),
        "contentType": r.content_type,
        "xErrorCode": r.error_code,
        "body": value,
    });
    let headers: serde_json::Map<String, Value> = RECORDED_HEADERS
        .iter()
        .filter_map(|n| {
            let v = r.headers.get(*n)?.to_str().unwrap();
            Some(((*n).to_owned(), Value::from(v)))
        })
        .collect();
    if !headers.is_empty() {
        record["headers"] = Value::Object(headers);
    }
    record
}

/// Sorts the array at `pointer` in `record` by each element's `field`. For lists whose items
/// created in the same second come in the order of their random ids (API keys, service-account
/// secrets: `ORDER BY created, id`), so that a snapshot does not depend on the draw; the store
/// conformance suite pins that order.
fn sort_by(record: &mut Value, pointer: &str, field: &str) {
    let items = record.pointer_mut(pointer).unwrap().as_array_mut().unwrap();
    items.sort_by(|a, b| a[field].as_str().cmp(&b[field].as_str()));
}

fn snapshot_json(name: &str, r: &Reply, ids: &[(&str, &str)]) {
    insta::assert_json_snapshot!(name, record(name, r, ids));
}

#[tokio::test]
async fn success_bodies() {
    let h = Harness::new().await;
    let gid = h.project("golden-project").await;
    let ids = [(gid.as_str(), "[groupId]"), (h.org_id.as_str(), "[orgId]")];
    snapshot_json(
        "get_group",
        &h.v2("GET", &format!("/groups/{gid}"), None).await,
        &ids,
    );
    snapshot_json("list_groups", &h.v2("GET", "/groups", None).await, &ids);
    let created = h
        .v2(
            "POST",
            "/groups",
            Some(&format!(
                r#"{{"name":"second","orgId":"{}","tags":[{{"key":"env","value":"test"}}]}}"#,
                h.org_id
            )),
        )
        .await;
    let second: Value = serde_json::from_str(&created.text).unwrap();
    let second = second["id"].as_str().unwrap().to_owned();
    let ids2 = [
        (gid.as_str(), "[groupId]"),
        (h.org_id.as_str(), "[orgId]"),
        (second.as_str(), "[groupId2]"),
    ];
    snapshot_json("create_group", &created, &ids2);
    snapshot_json(
        "delete_group",
        &h.v2("DELETE", &format!("/groups/{second}"), None).await,
        &ids2,
    );

    let user = h
        .v2(
            "POST",
            &format!("/groups/{gid}/databaseUsers"),
            Some(&format!(r#"{{"databaseName":"$external","groupId":"{gid}","x509Type":"MANAGED","username":"user389","roles":[{{"databaseName":"admin","roleName":"atlasAdmin"}}],"labels":[{{"key":"team","value":"db"}}],"scopes":[{{"name":"Cluster0","type":"CLUSTER"}}],"description":"managed x509"}}"#)),
        )
        .await;
    snapshot_json("create_database_user", &user, &ids);
    snapshot_json(
        "get_database_user",
        &h.v2(
            "GET",
            &format!("/groups/{gid}/databaseUsers/$external/user389"),
            None,
        )
        .await,
        &ids,
    );
    snapshot_json(
        "update_database_user",
        &h.v2("PATCH", &format!("/groups/{gid}/databaseUsers/$external/user389"), Some(r#"{"roles":[{"databaseName":"sales","roleName":"read","collectionName":"orders"}]}"#)).await,
        &ids,
    );
    snapshot_json(
        "list_database_users",
        &h.v2(
            "GET",
            &format!("/groups/{gid}/databaseUsers?itemsPerPage=1"),
            None,
        )
        .await,
        &ids,
    );

    let cert = h
        .v2(
            "POST",
            &format!("/groups/{gid}/databaseUsers/user389/certs"),
            Some(r#"{"monthsUntilExpiration":3}"#),
        )
        .await;
    assert_eq!(cert.status, StatusCode::CREATED);
    assert_eq!(
        cert.content_type,
        "application/vnd.atlas.2023-01-01+json;charset=utf-8"
    );
    assert!(cert.text.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(
        cert.text
            .contains("-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n")
    );
    assert!(cert.text.ends_with("-----END PRIVATE KEY-----\n"));
    snapshot_json(
        "list_database_user_certs",
        &h.v2(
            "GET",
            &format!("/groups/{gid}/databaseUsers/user389/certs"),
            None,
        )
        .await,
        &ids,
    );
    snapshot_json(
        "list_database_user_certs_envelope",
        &h.v2(
            "GET",
            &format!("/groups/{gid}/databaseUsers/user389/certs?envelope=true&includeCount=false"),
            None,
        )
        .await,
        &ids,
    );
    let pretty = h
        .v2(
            "GET",
            &format!("/groups/{gid}/databaseUsers/user389/certs?pretty=true"),
            None,
        )
        .await;
    insta::assert_snapshot!(
        "list_database_user_certs_pretty",
        normalize(&pretty.text, &ids)
    );

    snapshot_json(
        "get_user_security",
        &h.v2("GET", &format!("/groups/{gid}/userSecurity"), None)
            .await,
        &ids,
    );
    snapshot_json(
        "update_user_security_ldap",
        &h.v2("PATCH", &format!("/groups/{gid}/userSecurity"), Some(r#"{"ldap":{"hostname":"ldap.example.com","port":636,"bindUsername":"CN=BindUser,CN=Users,DC=example,DC=com","bindPassword":"not-kept"}}"#)).await,
        &ids,
    );
    snapshot_json(
        "disable_customer_x509",
        &h.v2(
            "DELETE",
            &format!("/groups/{gid}/userSecurity/customerX509"),
            None,
        )
        .await,
        &ids,
    );
    let deleted = h
        .v2(
            "DELETE",
            &format!("/groups/{gid}/databaseUsers/$external/user389"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    assert_eq!(
        deleted.content_type,
        "application/vnd.atlas.2023-01-01+json;charset=utf-8"
    );
}

#[tokio::test]
async fn error_bodies() {
    let h = Harness::new().await;
    let gid = h.project("errors").await;
    h.managed_user(&gid, "user389").await;
    let scram = format!(
        r#"{{"databaseName":"admin","groupId":"{gid}","username":"alice","password":"changeme123","roles":[{{"databaseName":"admin","roleName":"read"}}]}}"#
    );
    assert_eq!(
        h.v2(
            "POST",
            &format!("/groups/{gid}/databaseUsers"),
            Some(&scram)
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let ids = [(gid.as_str(), "[groupId]"), (h.org_id.as_str(), "[orgId]")];
    let certs = format!("/groups/{gid}/databaseUsers/user389/certs");
    let users = format!("/groups/{gid}/databaseUsers");
    let cases: Vec<(&str, &str, String, Option<String>)> = vec![
        ("malformed_json", "POST", certs.clone(), Some("{".into())),
        ("invalid_json", "POST", certs.clone(), Some("[]".into())),
        ("invalid_json_attribute", "POST", certs.clone(), Some(r#"{"monthsUntilExpiration":"3"}"#.into())),
        ("invalid_attribute", "POST", certs.clone(), Some(r#"{"monthsUntilExpiration":3,"foo":1}"#.into())),
        ("attribute_negative_or_zero", "POST", certs.clone(), Some(r#"{"monthsUntilExpiration":0}"#.into())),
        ("cert_expiry_cannot_exceed_two_years", "POST", certs.clone(), Some(r#"{"monthsUntilExpiration":25}"#.into())),
        ("user_not_managed_x509", "POST", format!("/groups/{gid}/databaseUsers/alice/certs"), Some("{}".into())),
        ("username_not_found", "GET", format!("/groups/{gid}/databaseUsers/nobody/certs"), None),
        ("invalid_query_parameter", "GET", format!("{certs}?itemsPerPage=501"), None),
        ("invalid_group_id", "GET", "/groups/not-a-group".into(), None),
        ("group_not_found", "GET", "/groups/111111111111111111111111".into(), None),
        ("resource_not_found", "GET", "/nothing/here".into(), None),
        ("method_not_allowed", "PUT", "/groups".into(), None),
        ("missing_attribute", "POST", "/groups".into(), Some(format!(r#"{{"orgId":"{}"}}"#, h.org_id))),
        ("invalid_group_name", "POST", "/groups".into(), Some(format!(r#"{{"name":"a/b","orgId":"{}"}}"#, h.org_id))),
        ("group_already_exists", "POST", "/groups".into(), Some(format!(r#"{{"name":"errors","orgId":"{}"}}"#, h.org_id))),
        ("org_not_found", "POST", "/groups".into(), Some(r#"{"name":"x","orgId":"222222222222222222222222"}"#.into())),
        ("user_already_exists", "POST", users.clone(), Some(format!(r#"{{"databaseName":"$external","groupId":"{gid}","x509Type":"MANAGED","username":"user389","roles":[]}}"#))),
        ("database_name_invalid_external", "POST", users.clone(), Some(r#"{"databaseName":"admin","x509Type":"MANAGED","username":"bob","roles":[]}"#.into())),
        ("database_name_invalid_admin", "POST", users.clone(), Some(r#"{"databaseName":"$external","username":"bob","password":"changeme123","roles":[]}"#.into())),
        ("x509_user_cannot_use_scram", "POST", users.clone(), Some(r#"{"databaseName":"$external","x509Type":"MANAGED","username":"bob","password":"changeme123","roles":[]}"#.into())),
        ("x509_user_cannot_use_ldap", "POST", users.clone(), Some(r#"{"databaseName":"$external","x509Type":"MANAGED","ldapAuthType":"USER","username":"bob","roles":[]}"#.into())),
        ("x509_user_cannot_be_temporary", "POST", users.clone(), Some(r#"{"databaseName":"$external","x509Type":"MANAGED","username":"bob","roles":[],"deleteAfterDate":"2099-01-01T00:00:00Z"}"#.into())),
        ("managed_x509_name_invalid", "POST", users.clone(), Some(r#"{"databaseName":"$external","x509Type":"MANAGED","username":"alice,OU=admin","roles":[]}"#.into())),
        ("invalid_ldap_name", "POST", users.clone(), Some(r#"{"databaseName":"$external","x509Type":"CUSTOMER","username":"alice","roles":[]}"#.into())),
        ("invalid_enum_value", "POST", users.clone(), Some(r#"{"databaseName":"$external","x509Type":"BOGUS","username":"bob","roles":[]}"#.into())),
        ("group_mismatch", "POST", users.clone(), Some(r#"{"databaseName":"$external","x509Type":"MANAGED","username":"bob","roles":[],"groupId":"333333333333333333333333"}"#.into())),
        ("auth_type_cannot_be_changed", "PATCH", format!("{users}/$external/user389"), Some(r#"{"x509Type":"CUSTOMER"}"#.into())),
        ("username_cannot_be_changed", "PATCH", format!("{users}/$external/user389"), Some(r#"{"username":"other"}"#.into())),
        ("validation_error_customer_ca", "PATCH", format!("/groups/{gid}/userSecurity"), Some(r#"{"customerX509":{"cas":"garbage"}}"#.into())),
    ];
    for (name, method, path, body) in cases {
        let r = h.v2(method, &path, body.as_deref()).await;
        assert!(
            r.status.is_client_error(),
            "{name}: {} {}",
            r.status,
            r.text
        );
        snapshot_atlas_error(name, &r, &ids);
    }
    // Version negotiation and the Digest challenge.
    let r = h.call("GET", "/api/atlas/v2/groups", None, None).await;
    snapshot_json("error_invalid_version_date", &r, &ids);
    let r = h
        .raw(
            Request::builder()
                .uri("/api/atlas/v2/groups")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    insta::assert_snapshot!("unauthorized_body", r.text);
}

/// The access-control bodies: API keys (private key shown, then masked), access lists,
/// service accounts (secret shown, then masked), OAuth answers, and their errors.
#[tokio::test]
async fn access_control_bodies() {
    let h = Harness::new().await;
    let gid = h.project("golden-access").await;
    let org = h.org_id.clone();
    let created = h
        .v2(
            "POST",
            &format!("/orgs/{org}/apiKeys"),
            Some(r#"{"desc":"golden key","roles":["ORG_MEMBER"]}"#),
        )
        .await;
    let key: Value = serde_json::from_str(&created.text).unwrap();
    let key_id = key["id"].as_str().unwrap().to_owned();
    let public = key["publicKey"].as_str().unwrap().to_owned();
    let private = key["privateKey"].as_str().unwrap().to_owned();
    let tail = private[private.len() - 12..].to_owned();
    let ids = [
        (gid.as_str(), "[groupId]"),
        (org.as_str(), "[orgId]"),
        (key_id.as_str(), "[apiUserId]"),
        (public.as_str(), "[publicKey]"),
        (private.as_str(), "[privateKey]"),
        (tail.as_str(), "[last12]"),
    ];
    snapshot_json("create_org_api_key", &created, &ids);
    let assign = h
        .v2(
            "POST",
            &format!("/groups/{gid}/apiKeys/{key_id}"),
            Some(r#"[{"roles":["GROUP_READ_ONLY"]}]"#),
        )
        .await;
    assert_eq!(assign.status, StatusCode::NO_CONTENT, "{}", assign.text);
    snapshot_json(
        "get_org_api_key",
        &h.v2("GET", &format!("/orgs/{org}/apiKeys/{key_id}"), None)
            .await,
        &ids,
    );
    snapshot_json(
        "create_access_list",
        &h.v2(
            "POST",
            &format!("/orgs/{org}/apiKeys/{key_id}/accessList"),
            Some(r#"[{"ipAddress":"192.0.2.7"},{"cidrBlock":"10.1.2.3/16"}]"#),
        )
        .await,
        &ids,
    );
    snapshot_json(
        "error_invalid_enum_value_role",
        &h.v2(
            "POST",
            &format!("/orgs/{org}/apiKeys"),
            Some(r#"{"desc":"x","roles":["ORG_SUPERUSER"]}"#),
        )
        .await,
        &ids,
    );

    let uri = format!("/api/atlas/v2/orgs/{org}/serviceAccounts");
    let Account {
        reply: sa,
        client,
        secret,
        secret_id,
        masked,
    } = service_account(&h, "golden", r#"["ORG_READ_ONLY"]"#).await;
    let sa_ids = [
        (org.as_str(), "[orgId]"),
        (client.as_str(), "[clientId]"),
        (secret.as_str(), "[secret]"),
        (secret_id.as_str(), "[secretId]"),
        (masked.as_str(), "[maskedSecret]"),
    ];
    snapshot_json("create_org_service_account", &sa, &sa_ids);
    snapshot_json(
        "get_org_service_account",
        &h.call("GET", &format!("{uri}/{client}"), Some(SA_V), None)
            .await,
        &sa_ids,
    );
    snapshot_json(
        "error_service_account_old_version",
        &h.call("GET", &format!("{uri}/{client}"), Some(common::V2), None)
            .await,
        &sa_ids,
    );

    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:wrong"));
    let bad = h
        .raw(
            Request::builder()
                .method("POST")
                .uri("/api/oauth/token")
                .header("authorization", format!("Basic {basic}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await;
    snapshot_json("oauth_invalid_client", &bad, &sa_ids);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}"));
    let grant = h
        .raw(
            Request::builder()
                .method("POST")
                .uri("/api/oauth/token")
                .header("authorization", format!("Basic {basic}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("grant_type=password"))
                .unwrap(),
        )
        .await;
    snapshot_json("oauth_unsupported_grant_type", &grant, &sa_ids);
}

/// The API version of the service-account operations.
const SA_V: &str = "application/vnd.atlas.2024-08-05+json";

/// A service account made through the API: the reply, and what it shows once.
struct Account {
    reply: Reply,
    client: String,
    secret: String,
    secret_id: String,
    masked: String,
}

/// Creates organization service account `name` with `roles` (a JSON list) and a secret.
async fn service_account(h: &Harness, name: &str, roles: &str) -> Account {
    let body = format!(
        r#"{{"name":"{name}","description":"{name} account","roles":{roles},"secretExpiresAfterHours":8}}"#
    );
    let uri = format!("/api/atlas/v2/orgs/{}/serviceAccounts", h.org_id);
    let reply = h.call("POST", &uri, Some(SA_V), Some(&body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let v = json(&reply);
    let text = |pointer: &str| v.pointer(pointer).unwrap().as_str().unwrap().to_owned();
    Account {
        client: text("/clientId"),
        secret: text("/secrets/0/secret"),
        secret_id: text("/secrets/0/id"),
        masked: text("/secrets/0/maskedSecretValue"),
        reply,
    }
}

/// The body of `r` as JSON.
fn json(r: &Reply) -> Value {
    serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.text))
}

/// An API key made through the API: its id, public key and private key.
struct Key {
    id: String,
    public: String,
    private: String,
}

/// Creates an organization API key with `org_roles`, then grants it `project_roles` in `gid`.
async fn api_key(h: &Harness, desc: &str, org_roles: &str, grant: Option<(&str, &str)>) -> Key {
    let r = h
        .v2(
            "POST",
            &format!("/orgs/{}/apiKeys", h.org_id),
            Some(&format!(r#"{{"desc":"{desc}","roles":{org_roles}}}"#)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = json(&r);
    let key = Key {
        id: v["id"].as_str().unwrap().to_owned(),
        public: v["publicKey"].as_str().unwrap().to_owned(),
        private: v["privateKey"].as_str().unwrap().to_owned(),
    };
    if let Some((gid, roles)) = grant {
        let r = h
            .v2(
                "POST",
                &format!("/groups/{gid}/apiKeys/{}", key.id),
                Some(&format!(r#"[{{"roles":{roles}}}]"#)),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    key
}

/// A request as `key` to the Atlas API (`/api/atlas/v2`).
async fn v2_as(h: &Harness, key: &Key, method: &str, path: &str, body: Option<&str>) -> Reply {
    let uri = format!("/api/atlas/v2{path}");
    h.call_as(
        &key.public,
        &key.private,
        method,
        &uri,
        Some(common::V2),
        body,
    )
    .await
}

/// Issues a certificate to `user389` of `gid` with `body`.
async fn issue(h: &Harness, gid: &str, body: &str) {
    let path = format!("/groups/{gid}/databaseUsers/user389/certs");
    let r = h.v2("POST", &path, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// A request to the dbcerts extension API (`/api/dbcerts/v1`).
async fn ext(h: &Harness, method: &str, path: &str, body: Option<&str>) -> Reply {
    h.call(method, &format!("/api/dbcerts/v1{path}"), None, body)
        .await
}

/// Asserts that `r` is the Atlas error `code` with `status`, then snapshots it as
/// [`snapshot_atlas_error`] does.
#[track_caller]
fn snapshot_error(name: &str, r: &Reply, status: u16, code: &str, ids: &[(&str, &str)]) {
    assert_eq!(
        (r.status.as_u16(), r.error_code.as_deref()),
        (status, Some(code)),
        "{name}: {}",
        r.text
    );
    snapshot_atlas_error(name, r, ids);
}

/// Asserts that `r` is an error in Atlas's format (JSON, its code also in `X-Error-Code`, the
/// five keys in order), then snapshots it as `error_<name>`.
#[track_caller]
fn snapshot_atlas_error(name: &str, r: &Reply, ids: &[(&str, &str)]) {
    assert_eq!(r.content_type, "application/json", "{name}");
    let parsed = json(r);
    assert_eq!(
        r.error_code.as_deref(),
        parsed["errorCode"].as_str(),
        "{name}"
    );
    let keys: Vec<_> = parsed.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["detail", "error", "errorCode", "parameters", "reason"],
        "{name}"
    );
    snapshot_json(&format!("error_{name}"), r, ids);
}

/// Every list body not snapshotted above: an organization's API keys, a key's access list, a
/// project's API keys, service accounts (organization and project, with their secrets), a
/// service account's projects and access lists, and the extension's certificate-status and
/// CA-generation lists.
#[tokio::test]
async fn list_bodies() {
    let h = Harness::new().await;
    let gid = h.project("golden-lists").await;
    let org = h.org_id.clone();
    let key = api_key(
        &h,
        "listed key",
        r#"["ORG_MEMBER"]"#,
        Some((&gid, r#"["GROUP_READ_ONLY","GROUP_DATA_ACCESS_READ_ONLY"]"#)),
    )
    .await;
    let r = h
        .v2(
            "POST",
            &format!("/orgs/{org}/apiKeys/{}/accessList", key.id),
            Some(r#"[{"ipAddress":"192.0.2.7"},{"cidrBlock":"10.1.0.0/16"}]"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let keys = h.v2("GET", &format!("/orgs/{org}/apiKeys"), None).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.text);
    // The bootstrap key's id is known only from the list.
    let listed = json(&keys);
    let bootstrap = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["publicKey"] == h.public_key.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tail = &key.private[key.private.len() - 12..];
    let bootstrap_tail = &h.private_key[h.private_key.len() - 12..];
    let ids = [
        (gid.as_str(), "[groupId]"),
        (org.as_str(), "[orgId]"),
        (key.id.as_str(), "[apiUserId]"),
        (key.public.as_str(), "[publicKey]"),
        (tail, "[last12]"),
        (bootstrap.as_str(), "[bootstrapApiUserId]"),
        (h.public_key.as_str(), "[bootstrapPublicKey]"),
        (bootstrap_tail, "[bootstrapLast12]"),
    ];
    let mut listed = record("list_org_api_keys", &keys, &ids);
    sort_by(&mut listed, "/body/results", "desc");
    insta::assert_json_snapshot!("list_org_api_keys", listed);
    snapshot_json(
        "list_access_list",
        &h.v2(
            "GET",
            &format!("/orgs/{org}/apiKeys/{}/accessList", key.id),
            None,
        )
        .await,
        &ids,
    );
    snapshot_json(
        "list_group_api_keys",
        &h.v2("GET", &format!("/groups/{gid}/apiKeys"), None).await,
        &ids,
    );

    // A service account with two secrets, invited to the project, with an access list.
    let base = format!("/api/atlas/v2/orgs/{org}/serviceAccounts");
    let Account {
        client,
        secret_id: first_secret,
        masked: first_masked,
        ..
    } = service_account(&h, "listed", r#"["ORG_MEMBER"]"#).await;
    let second = h
        .call(
            "POST",
            &format!("{base}/{client}/secrets"),
            Some(SA_V),
            Some(r#"{"secretExpiresAfterHours":24}"#),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    let v = json(&second);
    let second_secret = v["id"].as_str().unwrap().to_owned();
    let second_masked = v["maskedSecretValue"].as_str().unwrap().to_owned();
    let invite = h
        .call(
            "POST",
            &format!("/api/atlas/v2/groups/{gid}/serviceAccounts/{client}:invite"),
            Some(SA_V),
            Some(r#"{"roles":["GROUP_READ_ONLY"]}"#),
        )
        .await;
    assert!(invite.status.is_success(), "{}", invite.text);
    let r = h
        .call(
            "POST",
            &format!("{base}/{client}/accessList"),
            Some(SA_V),
            Some(r#"[{"ipAddress":"198.51.100.4"},{"cidrBlock":"203.0.113.0/24"}]"#),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let sa_ids = [
        (gid.as_str(), "[groupId]"),
        (org.as_str(), "[orgId]"),
        (client.as_str(), "[clientId]"),
        (first_secret.as_str(), "[secretId]"),
        (first_masked.as_str(), "[maskedSecret]"),
        (second_secret.as_str(), "[secretId2]"),
        (second_masked.as_str(), "[maskedSecret2]"),
    ];
    let harness = &h;
    let sa_get = |path: String| async move { harness.call("GET", &path, Some(SA_V), None).await };
    for (name, path) in [
        ("list_org_service_accounts", base.clone()),
        (
            "list_group_service_accounts",
            format!("/api/atlas/v2/groups/{gid}/serviceAccounts"),
        ),
    ] {
        let mut listed = record(name, &sa_get(path).await, &sa_ids);
        sort_by(&mut listed, "/body/results/0/secrets", "id");
        insta::assert_json_snapshot!(name, listed);
    }
    snapshot_json(
        "list_service_account_groups",
        &sa_get(format!("{base}/{client}/groups")).await,
        &sa_ids,
    );
    snapshot_json(
        "list_service_account_access_list",
        &sa_get(format!("{base}/{client}/accessList")).await,
        &sa_ids,
    );
    snapshot_json(
        "list_group_service_account_access_list",
        &sa_get(format!(
            "/api/atlas/v2/groups/{gid}/serviceAccounts/{client}/accessList"
        ))
        .await,
        &sa_ids,
    );

    // The extension's lists: one certificate revoked, one valid; two CA generations.
    h.managed_user(&gid, "user389").await;
    for _ in 0..2 {
        issue(&h, &gid, r#"{"monthsUntilExpiration":3}"#).await;
    }
    // The list's order is the store's (creation, then serial): revoke the first one listed, so
    // that the snapshot does not depend on which serial came out larger.
    let statuses = format!("/groups/{gid}/databaseUsers/user389/certs");
    let listed = json(&ext(&h, "GET", &statuses, None).await);
    let revoked = listed["results"][0]["_id"].as_i64().unwrap();
    let r = ext(
        &h,
        "POST",
        &format!("{statuses}/{revoked}:revoke"),
        Some(r#"{"reason":"keyCompromise"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ext_ids = [(gid.as_str(), "[groupId]"), (org.as_str(), "[orgId]")];
    let r = ext(&h, "GET", &statuses, None).await;
    assert_eq!(json(&r)["results"][0]["status"], "REVOKED", "{}", r.text);
    snapshot_json("list_database_user_cert_statuses", &r, &ext_ids);
    let r = ext(&h, "POST", &format!("/groups/{gid}/ca:rotate"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    snapshot_json(
        "list_project_ca_generations",
        &ext(&h, "GET", &format!("/groups/{gid}/cas"), None).await,
        &ext_ids,
    );
}

/// The errors of roles and access lists, each from a real request by an API key that lacks
/// what the request needs.
#[tokio::test]
async fn error_bodies_of_roles_and_access_lists() {
    let h = Harness::new().await;
    let gid = h.project("golden-roles").await;
    let mut keys = Vec::new();
    for (desc, org_roles, project_roles) in [
        ("reader", r#"["ORG_MEMBER"]"#, r#"["GROUP_READ_ONLY"]"#),
        ("project owner", r#"["ORG_MEMBER"]"#, r#"["GROUP_OWNER"]"#),
        ("org owner", r#"["ORG_OWNER"]"#, r#"["GROUP_READ_ONLY"]"#),
    ] {
        keys.push(api_key(&h, desc, org_roles, Some((&gid, project_roles))).await);
    }
    let [reader, owner, org_owner]: [Key; 3] = keys.try_into().unwrap_or_else(|_| unreachable!());
    let fenced = api_key(&h, "fenced", r#"["ORG_OWNER"]"#, None).await;
    let r = h
        .v2(
            "POST",
            &format!("/orgs/{}/apiKeys/{}/accessList", h.org_id, fenced.id),
            Some(r#"[{"ipAddress":"192.0.2.7"}]"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ids = [
        (gid.as_str(), "[groupId]"),
        (h.org_id.as_str(), "[orgId]"),
        (org_owner.id.as_str(), "[apiUserId]"),
    ];
    // A project Read Only key may not create a database user.
    let user = format!(
        r#"{{"databaseName":"$external","groupId":"{gid}","x509Type":"MANAGED","username":"bob","roles":[]}}"#
    );
    let r = v2_as(
        &h,
        &reader,
        "POST",
        &format!("/groups/{gid}/databaseUsers"),
        Some(&user),
    )
    .await;
    snapshot_error("user_unauthorized", &r, 401, "USER_UNAUTHORIZED", &ids);
    // An Organization Member may not create projects.
    let r = v2_as(
        &h,
        &reader,
        "POST",
        "/groups",
        Some(&format!(r#"{{"name":"not-mine","orgId":"{}"}}"#, h.org_id)),
    )
    .await;
    snapshot_error(
        "not_org_group_creator",
        &r,
        401,
        "NOT_ORG_GROUP_CREATOR",
        &ids,
    );
    // A project owner may not alter the roles of a key that holds more than the project.
    let r = v2_as(
        &h,
        &owner,
        "PATCH",
        &format!("/groups/{gid}/apiKeys/{}", org_owner.id),
        Some(r#"{"roles":["GROUP_READ_ONLY","GROUP_OWNER"]}"#),
    )
    .await;
    snapshot_error("access_forbidden", &r, 403, "ACCESS_FORBIDDEN", &ids);
    // A key with an access list, from an address not on it (the harness's peer, 127.0.0.1).
    let r = v2_as(&h, &fenced, "GET", "/groups", None).await;
    snapshot_error(
        "ip_address_not_on_whitelist",
        &r,
        403,
        "IP_ADDRESS_NOT_ON_WHITELIST",
        &ids,
    );
}

/// The errors of limits: the request rate, users per project, the body size, the request
/// head, and the body timeout (over a real socket: a body that stops arriving).
#[tokio::test]
async fn error_bodies_of_limits() {
    let mut config = ServerConfig {
        max_database_users_per_project: 1,
        body_limit: 512,
        body_timeout: std::time::Duration::from_secs(1),
        ..ServerConfig::default()
    };
    config.access.rate_limits.orgs = 1;
    let h = Harness::with_config(config).await;
    let gid = h.project("golden-limits").await;
    let ids = [(gid.as_str(), "[groupId]"), (h.org_id.as_str(), "[orgId]")];

    let keys = format!("/orgs/{}/apiKeys", h.org_id);
    assert_eq!(h.v2("GET", &keys, None).await.status, StatusCode::OK);
    let r = h.v2("GET", &keys, None).await;
    // The wait is governor's, counted from the first request: at most the minute.
    let mut limited = record("error_rate_limited", &r, &ids);
    let wait: u64 = limited["headers"]["retry-after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    limited["headers"]["retry-after"] = Value::from("[seconds]");
    assert_eq!(r.error_code.as_deref(), Some("RATE_LIMITED"), "{}", r.text);
    insta::assert_json_snapshot!("error_rate_limited", limited);

    h.managed_user(&gid, "user389").await;
    let users = format!("/groups/{gid}/databaseUsers");
    let second = format!(
        r#"{{"databaseName":"$external","groupId":"{gid}","x509Type":"MANAGED","username":"second","roles":[]}}"#
    );
    let r = h.v2("POST", &users, Some(&second)).await;
    snapshot_error(
        "group_users_limit_exceeded",
        &r,
        403,
        "GROUP_USERS_LIMIT_EXCEEDED",
        &ids,
    );

    let big = format!(
        r#"{{"databaseName":"$external","groupId":"{gid}","x509Type":"MANAGED","username":"big","roles":[],"description":"{}"}}"#,
        "x".repeat(600)
    );
    let r = h.v2("POST", &users, Some(&big)).await;
    snapshot_error("payload_too_large", &r, 413, "VALIDATION_ERROR", &ids);

    let mut req = Request::builder().uri("/api/atlas/v2/groups");
    for n in 0..=dbcerts_server::head_limits::MAX_HEADER_FIELDS {
        req = req.header(format!("x-filler-{n}"), "1");
    }
    let r = h.raw(req.body(Body::empty()).unwrap()).await;
    snapshot_error(
        "request_headers_too_large",
        &r,
        431,
        "REQUEST_HEADERS_TOO_LARGE",
        &ids,
    );

    let r = stalled_body(&h, &users).await;
    snapshot_error("request_timeout", &r, 408, "REQUEST_TIMEOUT", &ids);
}

/// A POST to `path` (under `/api/atlas/v2`) over a real socket on 127.0.0.1, authenticated,
/// whose body stops after 10 of its 100 bytes: the server's answer once its body timeout ends.
async fn stalled_body(h: &Harness, path: &str) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, server) = h.serve_on_loopback().await;
    let uri = format!("/api/atlas/v2{path}");
    let auth = h
        .authorization(&h.public_key, &h.private_key, "POST", &uri)
        .await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {uri} HTTP/1.1\r\nHost: localhost\r\nAccept: {}\r\nContent-Type: application/json\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n{{\"databas",
        common::V2
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server answers and closes; the rest of the body never comes.
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    server.abort();
    let raw = String::from_utf8(raw).unwrap();
    let (head, text) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = axum::http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(": ").unwrap();
        headers.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let header_text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: header_text("content-type").unwrap_or_default(),
        error_code: header_text("x-error-code"),
        www_authenticate: header_text("www-authenticate"),
        text: text.to_owned(),
        headers,
    }
}

/// The errors of database users, customer CAs, and the extension's CA generations, revocation
/// and CRLs.
#[tokio::test]
async fn error_bodies_of_users_cas_and_revocation() {
    use dbcerts_ca::{KeyAlgorithm, ManagedCa, ManagedCaParams};
    let h = Harness::new().await;
    let gid = h.project("golden-cas").await;
    h.managed_user(&gid, "user389").await;
    let ids = [(gid.as_str(), "[groupId]"), (h.org_id.as_str(), "[orgId]")];
    let r = h
        .v2(
            "PATCH",
            &format!("/groups/{gid}/databaseUsers/$external/user389"),
            Some(r#"{"databaseName":"admin"}"#),
        )
        .await;
    snapshot_error(
        "database_name_cannot_be_changed",
        &r,
        409,
        "DATABASE_NAME_CANNOT_BE_CHANGED",
        &ids,
    );

    // A customer CA that expired a year ago, then one valid for ten years.
    let customer_ca = |now| {
        ManagedCa::create(
            "golden customer CA",
            &ManagedCaParams::default(),
            KeyAlgorithm::EcdsaP256,
            now,
        )
        .unwrap()
        .cert_pem()
    };
    let security = format!("/groups/{gid}/userSecurity");
    let cas = |pem: String| serde_json::json!({ "customerX509": { "cas": pem } }).to_string();
    let expired = customer_ca(chrono::Utc::now() - chrono::Duration::days(11 * 366));
    let r = h.v2("PATCH", &security, Some(&cas(expired))).await;
    snapshot_error(
        "expired_x509_ca_certificate",
        &r,
        400,
        "EXPIRED_X509_CA_CERTIFICATE",
        &ids,
    );
    let second = h.project("golden-cas-customer").await;
    h.managed_user(&second, "user389").await;
    let valid = customer_ca(chrono::Utc::now());
    let r = h
        .v2(
            "PATCH",
            &format!("/groups/{second}/userSecurity"),
            Some(&cas(valid)),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = h
        .v2(
            "POST",
            &format!("/groups/{second}/databaseUsers/user389/certs"),
            Some("{}"),
        )
        .await;
    snapshot_error(
        "cannot_generate_cert_if_advanced_x509",
        &r,
        400,
        "CANNOT_GENERATE_CERT_IF_ADVANCED_X509",
        &ids,
    );

    // Revocation: an unknown reason, an unknown serial.
    issue(&h, &gid, "{}").await;
    let statuses = format!("/groups/{gid}/databaseUsers/user389/certs");
    let serial = json(&ext(&h, "GET", &statuses, None).await)["results"][0]["_id"]
        .as_i64()
        .unwrap();
    let r = ext(
        &h,
        "POST",
        &format!("{statuses}/{serial}:revoke"),
        Some(r#"{"reason":"lostIt"}"#),
    )
    .await;
    snapshot_error(
        "invalid_revocation_reason",
        &r,
        400,
        "INVALID_REVOCATION_REASON",
        &ids,
    );
    let r = ext(&h, "POST", &format!("{statuses}/12345:revoke"), None).await;
    snapshot_error(
        "certificate_not_found",
        &r,
        404,
        "CERTIFICATE_NOT_FOUND",
        &ids,
    );

    // CA generations: the active one cannot be retired, an unknown one is not found; after a
    // rotation both publish CRLs, which DER cannot hold in one body.
    let retire = format!("/groups/{gid}/ca:retire");
    let r = ext(&h, "POST", &retire, Some(r#"{"generation":1}"#)).await;
    snapshot_error(
        "ca_generation_active",
        &r,
        409,
        "CA_GENERATION_ACTIVE",
        &ids,
    );
    let r = ext(&h, "POST", &retire, Some(r#"{"generation":99}"#)).await;
    snapshot_error(
        "ca_generation_not_found",
        &r,
        404,
        "CA_GENERATION_NOT_FOUND",
        &ids,
    );
    let r = ext(&h, "POST", &format!("/groups/{gid}/ca:rotate"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .call(
            "GET",
            &format!("/api/dbcerts/v1/groups/{gid}/crl"),
            Some("application/pkix-crl"),
            None,
        )
        .await;
    snapshot_error("crl_several_issuers", &r, 406, "CRL_SEVERAL_ISSUERS", &ids);
}

/// The 5xx bodies, from real faults: an API key whose sealed private key in the database is
/// damaged (500), and a store that has been closed (503, `Retry-After: 1`). Both are opaque.
#[tokio::test]
async fn error_bodies_of_faults() {
    let h = Harness::new().await;
    let ids = [(h.org_id.as_str(), "[orgId]")];
    let damaged = dbcerts_store::ApiKeyRecord {
        id: "5f0000000000000000000001".into(),
        org_id: h.org_id.clone(),
        public_key: "damagedk".into(),
        sealed_private_key: vec![0xde, 0xad, 0xbe, 0xef],
        description: "a key whose sealed private key is damaged".into(),
        org_roles: vec!["ORG_OWNER".into()],
        created: chrono::Utc::now().timestamp(),
    };
    h.store.create_api_key(&damaged, &[]).await.unwrap();
    let r = groups_as(&h, "damagedk", "any").await;
    snapshot_error("unexpected_error_500", &r, 500, "UNEXPECTED_ERROR", &ids);

    // The bootstrap key, valid, once the store is closed.
    h.store.close().await;
    let r = groups_as(&h, &h.public_key, &h.private_key).await;
    snapshot_error("unexpected_error_503", &r, 503, "UNEXPECTED_ERROR", &ids);
}

/// `GET /groups` as the API key `public`/`private`.
async fn groups_as(h: &Harness, public: &str, private: &str) -> Reply {
    let uri = "/api/atlas/v2/groups";
    h.call_as(public, private, "GET", uri, Some(common::V2), None)
        .await
}

/// `CA_ROTATION_CONFLICT`: two rotations of one project at once, through the router. Each reads
/// the active generation, makes the next one, and commits only if the active one is still the
/// one it read; one of two concurrent rotations usually finds the other's commit first. The
/// race is real, so it is run until it is lost (a round where both commit one after the other
/// is not an error: each rotated from the generation it saw).
#[tokio::test]
async fn error_body_of_a_lost_rotation_race() {
    let h = Harness::new().await;
    let gid = h.project("golden-race").await;
    h.managed_user(&gid, "user389").await;
    issue(&h, &gid, "{}").await;
    let ids = [(gid.as_str(), "[groupId]"), (h.org_id.as_str(), "[orgId]")];
    let rotate = format!("/groups/{gid}/ca:rotate");
    for _ in 0..50 {
        let (a, b) = tokio::join!(
            ext(&h, "POST", &rotate, None),
            ext(&h, "POST", &rotate, None)
        );
        for r in [&a, &b] {
            assert!(
                [StatusCode::CREATED, StatusCode::CONFLICT].contains(&r.status),
                "{} {}",
                r.status,
                r.text
            );
        }
        if let Some(lost) = [a, b]
            .into_iter()
            .find(|r| r.status == StatusCode::CONFLICT)
        {
            snapshot_error(
                "ca_rotation_conflict",
                &lost,
                409,
                "CA_ROTATION_CONFLICT",
                &ids,
            );
            return;
        }
    }
    panic!("no rotation lost the race in 50 rounds of two");
}

/// The constructors of `AtlasError` in `src/error.rs`, each with the snapshot of the real
/// response that renders it. [`every_error_code_has_a_snapshot`] reads `error.rs` and fails
/// if a constructor is missing here, so that no error can be added without a snapshot.
const CONSTRUCTOR_SNAPSHOTS: &[(&str, &str)] = &[
    ("malformed_json", "error_malformed_json"),
    ("invalid_json", "error_invalid_json"),
    ("invalid_json_attribute", "error_invalid_json_attribute"),
    ("invalid_attribute", "error_invalid_attribute"),
    ("missing_attribute", "error_missing_attribute"),
    ("invalid_enum_value", "error_invalid_enum_value"),
    ("validation_error", "error_validation_error_customer_ca"),
    ("invalid_query_parameter", "error_invalid_query_parameter"),
    (
        "attribute_negative_or_zero",
        "error_attribute_negative_or_zero",
    ),
    (
        "cert_expiry_too_long",
        "error_cert_expiry_cannot_exceed_two_years",
    ),
    ("user_not_managed_x509", "error_user_not_managed_x509"),
    (
        "advanced_x509",
        "error_cannot_generate_cert_if_advanced_x509",
    ),
    (
        "managed_x509_name_invalid",
        "error_managed_x509_name_invalid",
    ),
    ("invalid_ldap_name", "error_invalid_ldap_name"),
    (
        "x509_cannot_be_temporary",
        "error_x509_user_cannot_be_temporary",
    ),
    ("x509_cannot_use_ldap", "error_x509_user_cannot_use_ldap"),
    ("x509_cannot_use_scram", "error_x509_user_cannot_use_scram"),
    (
        "database_name_invalid_external",
        "error_database_name_invalid_external",
    ),
    (
        "database_name_invalid_admin",
        "error_database_name_invalid_admin",
    ),
    ("expired_ca", "error_expired_x509_ca_certificate"),
    ("invalid_group_name", "error_invalid_group_name"),
    ("user_unauthorized", "error_user_unauthorized"),
    ("ip_not_on_access_list", "error_ip_address_not_on_whitelist"),
    ("access_forbidden", "error_access_forbidden"),
    ("rate_limited", "error_rate_limited"),
    ("group_users_limit", "error_group_users_limit_exceeded"),
    ("group_not_found", "error_group_not_found"),
    ("invalid_group_id", "error_invalid_group_id"),
    ("org_not_found", "error_org_not_found"),
    ("username_not_found", "error_username_not_found"),
    ("resource_not_found", "error_resource_not_found"),
    ("method_not_allowed", "error_method_not_allowed"),
    ("invalid_version_date", "error_invalid_version_date"),
    ("user_already_exists", "error_user_already_exists"),
    ("group_already_exists", "error_group_already_exists"),
    ("username_cannot_change", "error_username_cannot_be_changed"),
    (
        "database_name_cannot_change",
        "error_database_name_cannot_be_changed",
    ),
    (
        "auth_type_cannot_change",
        "error_auth_type_cannot_be_changed",
    ),
    ("request_timeout", "error_request_timeout"),
    ("headers_too_large", "error_request_headers_too_large"),
    ("payload_too_large", "error_payload_too_large"),
    ("unexpected", "error_unexpected_error_500"),
    ("unavailable", "error_unexpected_error_503"),
];

/// The codes built in place (`AtlasError::new(StatusCode::…, "CODE", …)`) outside `error.rs`,
/// each with its snapshot; [`every_error_code_has_a_snapshot`] finds them in `src/`.
const IN_PLACE_SNAPSHOTS: &[(&str, &str)] = &[
    ("GROUP_MISMATCH", "error_group_mismatch"),
    ("NOT_ORG_GROUP_CREATOR", "error_not_org_group_creator"),
    ("CRL_SEVERAL_ISSUERS", "error_crl_several_issuers"),
    ("CA_ROTATION_CONFLICT", "error_ca_rotation_conflict"),
    ("CA_GENERATION_NOT_FOUND", "error_ca_generation_not_found"),
    ("CA_GENERATION_ACTIVE", "error_ca_generation_active"),
    (
        "INVALID_REVOCATION_REASON",
        "error_invalid_revocation_reason",
    ),
    ("CERTIFICATE_NOT_FOUND", "error_certificate_not_found"),
];

/// One error as its source defines it: code and HTTP status (the `StatusCode` constant's name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Defined {
    code: String,
    status: String,
}

/// The constructors of `AtlasError` in `error.rs`'s source: every `pub fn` of `impl AtlasError`
/// that returns `Self` without taking `self`, except the generic `new`. A constructor that
/// names no code itself (`payload_too_large`) takes the code of the one it calls and the
/// last status it names.
fn constructors(source: &str) -> std::collections::BTreeMap<String, Defined> {
    let start = source.find("\nimpl AtlasError {").expect("impl AtlasError");
    let end = start
        + source[start..]
            .find("\n}\n")
            .expect("end of impl AtlasError");
    let block = &source[start..end];
    let fns = regex::Regex::new(r"\n    (pub )?fn (\w+)").unwrap();
    let code = regex::Regex::new(r#""([A-Z][A-Z0-9_]+)""#).unwrap();
    let status = regex::Regex::new(r"StatusCode::([A-Z_]+)").unwrap();
    let delegate = regex::Regex::new(r"Self::(\w+)\(").unwrap();
    let starts: Vec<_> = fns.captures_iter(block).collect();
    let mut raw = Vec::new();
    for (i, f) in starts.iter().enumerate() {
        let from = f.get(0).unwrap().start();
        let to = starts
            .get(i + 1)
            .map_or(block.len(), |n| n.get(0).unwrap().start());
        let text = &block[from..to];
        let signature = &text[..text.find('{').unwrap()];
        let name = f[2].to_owned();
        if f.get(1).is_none()
            || name == "new"
            || !signature.contains("-> Self")
            || signature.contains("self")
        {
            continue;
        }
        raw.push((name, text.to_owned()));
    }
    let mut out = std::collections::BTreeMap::new();
    for (name, text) in &raw {
        let own_code = code.captures(text).map(|c| c[1].to_owned());
        let own_status = status.captures_iter(text).last().map(|c| c[1].to_owned());
        let called = delegate
            .captures_iter(text)
            .map(|c| c[1].to_owned())
            .find(|n| raw.iter().any(|(other, _)| other == n));
        let from_delegate = |pick: fn(&str, &regex::Regex) -> Option<String>, re| {
            let called = called.as_ref().unwrap_or_else(|| panic!("{name}: no code"));
            let body = &raw.iter().find(|(n, _)| n == called).unwrap().1;
            pick(body, re).unwrap()
        };
        let first = |t: &str, re: &regex::Regex| re.captures(t).map(|c| c[1].to_owned());
        let last = |t: &str, re: &regex::Regex| re.captures_iter(t).last().map(|c| c[1].to_owned());
        out.insert(
            name.clone(),
            Defined {
                code: own_code.unwrap_or_else(|| from_delegate(first, &code)),
                status: own_status.unwrap_or_else(|| from_delegate(last, &status)),
            },
        );
    }
    out
}

/// The codes built in place with `AtlasError::new` in the Rust files under `dir`.
fn in_place_codes(dir: &std::path::Path, out: &mut Vec<Defined>) {
    let built =
        regex::Regex::new(r#"AtlasError::new\(\s*StatusCode::([A-Z_]+),\s*"([A-Z][A-Z0-9_]+)""#)
            .unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            in_place_codes(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for c in built.captures_iter(&text) {
                out.push(Defined {
                    code: c[2].to_owned(),
                    status: c[1].to_owned(),
                });
            }
        }
    }
}

/// Checks that snapshot `name` renders `defined`: its body's and header's code, its status.
fn assert_snapshot_renders(name: &str, defined: &Defined) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/snapshots/golden__{name}.snap"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The insta header is `---`, metadata lines, `---`; the JSON record follows.
    let json_text = text.splitn(3, "---\n").nth(2).expect("insta header");
    let record: Value = serde_json::from_str(json_text).unwrap();
    let status = StatusCode::from_u16(record["status"].as_u64().unwrap() as u16).unwrap();
    let status_name = status
        .canonical_reason()
        .unwrap()
        .to_ascii_uppercase()
        .replace(' ', "_");
    assert_eq!(
        (
            record["body"]["errorCode"].as_str(),
            record["xErrorCode"].as_str(),
            status_name.as_str(),
            record["body"]["error"].as_u64(),
        ),
        (
            Some(defined.code.as_str()),
            Some(defined.code.as_str()),
            defined.status.as_str(),
            Some(u64::from(status.as_u16())),
        ),
        "{name}"
    );
}

/// Fails, naming the difference, unless `found` and `listed` hold the same names.
fn assert_same(found_what: &str, found: &[&str], listed_what: &str, listed: &[&str]) {
    let unlisted: Vec<_> = found.iter().filter(|n| !listed.contains(n)).collect();
    let stale: Vec<_> = listed.iter().filter(|n| !found.contains(n)).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "in {found_what} but not in {listed_what} (add a snapshot of a real response): \
         {unlisted:?}; in {listed_what} but not in {found_what}: {stale:?}"
    );
}

/// Every error the server can answer has a snapshot of a real response: each constructor in
/// `error.rs` (read from its source) and each code built in place elsewhere in `src/`.
#[test]
fn every_error_code_has_a_snapshot() {
    let source = include_str!("../src/error.rs");
    let defined = constructors(source);
    let listed: Vec<_> = CONSTRUCTOR_SNAPSHOTS.iter().map(|(c, _)| *c).collect();
    let found: Vec<_> = defined.keys().map(String::as_str).collect();
    assert_same(
        "error.rs's constructors",
        &found,
        "CONSTRUCTOR_SNAPSHOTS",
        &listed,
    );
    for (constructor, snapshot) in CONSTRUCTOR_SNAPSHOTS {
        assert_snapshot_renders(snapshot, &defined[*constructor]);
    }
    // Every code error.rs spells out is one of its constructors' codes.
    let codes = regex::Regex::new(r#""([A-Z][A-Z0-9_]{3,})""#).unwrap();
    for c in codes.captures_iter(source) {
        assert!(
            defined.values().any(|d| d.code == c[1]),
            "{} in error.rs is no constructor's code",
            &c[1]
        );
    }

    let mut in_place = Vec::new();
    in_place_codes(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut in_place,
    );
    let found: Vec<_> = in_place.iter().map(|d| d.code.as_str()).collect();
    let listed: Vec<_> = IN_PLACE_SNAPSHOTS.iter().map(|(c, _)| *c).collect();
    assert_same(
        "the codes built in place in src/",
        &found,
        "IN_PLACE_SNAPSHOTS",
        &listed,
    );
    for d in &in_place {
        let (_, snapshot) = IN_PLACE_SNAPSHOTS
            .iter()
            .find(|(c, _)| *c == d.code)
            .unwrap();
        assert_snapshot_renders(snapshot, d);
    }
}
