//! Golden snapshots of every success and error body, in-process (`Router::oneshot`) against a
//! real SQLite file. Ids, dates and serials are replaced by placeholders before snapshotting,
//! so each snapshot pins the exact shape, key order and wording Atlas clients see.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, Reply};
use serde_json::Value;

/// Replaces run-specific values by placeholders: the ids given, dates, and certificate serials.
fn normalize(text: &str, ids: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (value, placeholder) in ids {
        out = out.replace(value, placeholder);
    }
    let date = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
    let out = date.replace_all(&out, "[date]").into_owned();
    let serial = regex::Regex::new(r#""_id" ?: ?\d+"#).unwrap();
    serial
        .replace_all(&out, "\"_id\":\"[serial]\"")
        .into_owned()
}

fn snapshot_json(name: &str, r: &Reply, ids: &[(&str, &str)]) {
    let value: Value = serde_json::from_str(&normalize(&r.text, ids))
        .unwrap_or_else(|e| panic!("{name}: {e}: {}", r.text));
    let record = serde_json::json!({
        "status": r.status.as_u16(),
        "contentType": r.content_type,
        "xErrorCode": r.error_code,
        "body": value,
    });
    insta::assert_json_snapshot!(name, record);
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
        assert_eq!(r.content_type, "application/json", "{name}");
        let parsed: Value = serde_json::from_str(&r.text).unwrap();
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
        snapshot_json(&format!("error_{name}"), &r, &ids);
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
    const SA_V: &str = "application/vnd.atlas.2024-08-05+json";
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
    let sa = h
        .call(
            "POST",
            &uri,
            Some(SA_V),
            Some(r#"{"name":"golden","description":"golden account","roles":["ORG_READ_ONLY"],"secretExpiresAfterHours":8}"#),
        )
        .await;
    let v: Value = serde_json::from_str(&sa.text).unwrap();
    let client = v["clientId"].as_str().unwrap().to_owned();
    let secret = v["secrets"][0]["secret"].as_str().unwrap().to_owned();
    let secret_id = v["secrets"][0]["id"].as_str().unwrap().to_owned();
    let masked = v["secrets"][0]["maskedSecretValue"]
        .as_str()
        .unwrap()
        .to_owned();
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
