//! Digest authentication across nodes, nonce expiry, the algorithms accepted, and CA keys sealed
//! at rest — in-process, over real SQLite files.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Harness, V2, nonce_in};
use dbcerts_server::auth::digest::{self, Algorithm};
use dbcerts_store::Store;

const URI: &str = "/api/atlas/v2/groups";

fn authorization(
    h: &Harness,
    nonce: &str,
    uri: &str,
    alg: Algorithm,
    alg_name: &str,
    nc: &str,
) -> String {
    let creds = digest::Credentials {
        username: h.public_key.clone(),
        realm: digest::REALM.into(),
        nonce: nonce.into(),
        uri: uri.into(),
        response: String::new(),
        algorithm: alg,
        cnonce: "c0ffee".into(),
        nc: nc.into(),
    };
    let response = digest::expected_response(&creds, "GET", &h.private_key);
    format!(
        "Digest username=\"{}\", realm=\"MMS Public API\", nonce=\"{nonce}\", uri=\"{uri}\", cnonce=\"c0ffee\", nc={nc}, qop=auth, response=\"{response}\", algorithm={alg_name}",
        h.public_key
    )
}

async fn get(h: &Harness, uri: &str, auth: Option<String>) -> common::Reply {
    let mut req = Request::builder().uri(uri).header(header::ACCEPT, V2);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    h.raw(req.body(Body::empty()).unwrap()).await
}

async fn fresh_nonce(h: &Harness) -> String {
    nonce_in(&get(h, URI, None).await.www_authenticate.unwrap())
}

#[tokio::test]
async fn a_nonce_from_one_node_is_valid_on_another() {
    let a = Harness::new().await;
    let b = Harness::node(a.dir.clone(), 300).await;
    assert_eq!(
        a.public_key, b.public_key,
        "same database, same bootstrap key"
    );
    // A nonce issued in the very millisecond B started would be stale on B (B cannot tell it
    // from one of its own previous run's): B has been up a little while, as nodes are.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let nonce = fresh_nonce(&a).await;
    let r = get(
        &b,
        URI,
        Some(authorization(
            &b,
            &nonce,
            URI,
            Algorithm::Md5,
            "MD5",
            "00000001",
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn every_accepted_algorithm_authenticates() {
    let h = Harness::new().await;
    for (alg, name) in [
        (Algorithm::Md5, "MD5"),
        (Algorithm::Md5Sess, "MD5-sess"),
        (Algorithm::Sha256, "SHA-256"),
        (Algorithm::Sha256Sess, "SHA-256-sess"),
    ] {
        let nonce = fresh_nonce(&h).await;
        let r = get(
            &h,
            URI,
            Some(authorization(&h, &nonce, URI, alg, name, "00000001")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
    }
}

#[tokio::test]
async fn refusals_are_401_challenges() {
    let h = Harness::new().await;
    let nonce = fresh_nonce(&h).await;
    let good = authorization(&h, &nonce, URI, Algorithm::Md5, "MD5", "00000001");
    let cases = [
        (
            "uri of another resource",
            authorization(
                &h,
                &nonce,
                "/api/atlas/v2/groups?pretty=true",
                Algorithm::Md5,
                "MD5",
                "00000001",
            ),
        ),
        (
            "forged nonce",
            good.replace(&nonce, "AAAAAGsFRBVNvgEKQfo827AIqU/MjaFf"),
        ),
        (
            "wrong response",
            good.replace("response=\"", "response=\"0"),
        ),
        ("no qop", good.replace(", qop=auth", "")),
        ("other realm", good.replace("MMS Public API", "Other")),
        (
            "unknown key",
            good.replace(
                &format!("username=\"{}\"", h.public_key),
                "username=\"zzzzzzzz\"",
            ),
        ),
        ("basic", "Basic YTpi".to_owned()),
        ("garbage", "Digest ,,,=,".to_owned()),
    ];
    for (name, auth) in cases {
        let r = get(&h, URI, Some(auth)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        let www = r.www_authenticate.unwrap();
        assert!(
            www.starts_with("Digest realm=\"MMS Public API\""),
            "{name}: {www}"
        );
        assert!(www.ends_with("stale=false"), "{name}: {www}");
    }
}

#[tokio::test]
async fn an_expired_nonce_is_stale_and_replaced() {
    let first = Harness::new().await;
    let h = Harness::node(first.dir.clone(), 0).await;
    let nonce = fresh_nonce(&h).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = get(
        &h,
        URI,
        Some(authorization(
            &h,
            &nonce,
            URI,
            Algorithm::Md5,
            "MD5",
            "00000001",
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let www = r.www_authenticate.unwrap();
    assert!(www.ends_with("stale=true"), "{www}");
    assert_ne!(nonce_in(&www), nonce);
}

#[tokio::test]
async fn ca_keys_are_sealed_at_rest() {
    let h = Harness::new().await;
    let gid = h.project("sealed").await;
    h.managed_user(&gid, "alice").await;
    let r = h
        .v2(
            "POST",
            &format!("/groups/{gid}/databaseUsers/alice/certs"),
            Some("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let rec = h
        .store
        .get_active_ca(&gid)
        .await
        .unwrap()
        .expect("the CA exists after the first certificate");
    let key_text = std::fs::read_to_string(h.dir.path().join("master.key.b64")).unwrap();
    let master = dbcerts_ca::sealing::MasterKey::from_base64(&key_text).unwrap();
    let plain = master
        .open(&rec.sealed_key, &format!("ca-key:{gid}"))
        .expect("sealed under the master key");
    assert!(plain.len() > 100, "a PKCS#8 key");
    assert!(
        master
            .open(&rec.sealed_key, "ca-key:000000000000000000000000")
            .is_err(),
        "bound to its project"
    );
    assert!(
        !rec.sealed_key
            .windows(32)
            .any(|w| plain.windows(32).any(|p| p == w))
    );
    h.store.close().await;
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(h.dir.path()).unwrap() {
        on_disk.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        !on_disk.windows(plain.len()).any(|w| w == plain.as_slice()),
        "no plaintext CA key on disk"
    );
}

#[tokio::test]
async fn a_replayed_request_is_refused_but_increasing_nc_is_fine() {
    let h = Harness::new().await;
    let nonce = fresh_nonce(&h).await;
    let first = authorization(&h, &nonce, URI, Algorithm::Md5, "MD5", "00000001");
    assert_eq!(
        get(&h, URI, Some(first.clone())).await.status,
        StatusCode::OK
    );
    let replay = get(&h, URI, Some(first)).await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "the same header twice is a replay"
    );
    assert!(
        replay.www_authenticate.unwrap().ends_with("stale=true"),
        "the client is told to retry"
    );
    // As Python requests does: one nonce, nc counting up.
    for nc in ["00000002", "00000003", "0000000a"] {
        let r = get(
            &h,
            URI,
            Some(authorization(&h, &nonce, URI, Algorithm::Md5, "MD5", nc)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "nc={nc}");
    }
    let lower = authorization(&h, &nonce, URI, Algorithm::Md5, "MD5", "00000004");
    assert_eq!(
        get(&h, URI, Some(lower)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// A restarted node has forgotten the `nc` values it accepted, but not that it accepted them:
/// every nonce issued before it started is stale there, so a header its previous run accepted
/// is answered with a fresh challenge, and that challenge works.
#[tokio::test]
async fn a_header_accepted_before_a_restart_is_stale_after_it() {
    let before = Harness::new().await;
    let nonce = fresh_nonce(&before).await;
    let header = authorization(&before, &nonce, URI, Algorithm::Md5, "MD5", "00000001");
    assert_eq!(
        get(&before, URI, Some(header.clone())).await.status,
        StatusCode::OK
    );
    let dir = before.dir.clone();
    before.store.close().await;
    drop(before);

    let after = Harness::node(dir, 300).await;
    let replay = get(&after, URI, Some(header)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.text);
    let www = replay.www_authenticate.unwrap();
    assert!(www.ends_with("stale=true"), "{www}");
    // The same nonce with a count never used is no better: the nonce is from before the start.
    let next = authorization(&after, &nonce, URI, Algorithm::Md5, "MD5", "00000002");
    let r = get(&after, URI, Some(next)).await;
    assert!(r.www_authenticate.unwrap().ends_with("stale=true"));
    // The challenge answered with the same key is accepted: no failure was counted.
    let fresh = nonce_in(&www);
    let retry = authorization(&after, &fresh, URI, Algorithm::Md5, "MD5", "00000001");
    assert_eq!(get(&after, URI, Some(retry)).await.status, StatusCode::OK);
    let failures = after
        .store
        .list_audit(&Default::default(), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "authentication.failed")
        .count();
    assert_eq!(failures, 0, "a stale nonce is not a failed attempt");
}

/// With `digest-replay-check = "store"`, a header one node accepted is a replay on every node,
/// while nonces still cross nodes with a rising count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_store_replay_checks_no_node_accepts_what_another_accepted() {
    let config = || dbcerts_server::ServerConfig {
        digest_replay_check: digest::ReplayCheck::Store,
        ..Default::default()
    };
    let first = Harness::new().await;
    let a = Harness::node_with(first.dir.clone(), 300, config()).await;
    let b = Harness::node_with(first.dir.clone(), 300, config()).await;
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let nonce = fresh_nonce(&a).await;
    let header = |nc| authorization(&a, &nonce, URI, Algorithm::Md5, "MD5", nc);
    assert_eq!(
        get(&a, URI, Some(header("00000001"))).await.status,
        StatusCode::OK
    );
    for node in [&b, &a] {
        let replay = get(node, URI, Some(header("00000001"))).await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.text);
        assert!(replay.www_authenticate.unwrap().ends_with("stale=true"));
    }
    // The client's next counts are good wherever they land; a lower one is not.
    assert_eq!(
        get(&b, URI, Some(header("00000002"))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&a, URI, Some(header("00000003"))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&b, URI, Some(header("00000005"))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&a, URI, Some(header("00000004"))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

const SA_V: &str = "application/vnd.atlas.2024-08-05+json";

/// A service account of the harness's organization; returns (client id, secret).
async fn service_account(h: &Harness) -> (String, String) {
    let body = r#"{"name":"ci","description":"multi node","roles":["ORG_OWNER"],"secretExpiresAfterHours":8}"#;
    let uri = format!("/api/atlas/v2/orgs/{}/serviceAccounts", h.org_id);
    let r = h.call("POST", &uri, Some(SA_V), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let v: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    (
        v["clientId"].as_str().unwrap().to_owned(),
        v["secrets"][0]["secret"].as_str().unwrap().to_owned(),
    )
}

fn form_post(path: &str, client: &str, secret: &str, form: &str) -> Request<Body> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}"));
    Request::builder()
        .method("POST")
        .uri(path)
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

async fn bearer_get(h: &Harness, uri: &str, token: &str) -> common::Reply {
    h.raw(
        Request::builder()
            .uri(uri)
            .header(header::ACCEPT, V2)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// A token one node issues is accepted by another node on the same database, and revoking it
/// on either node refuses it on both: nothing about tokens lives only in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_on_every_node_and_revocation_reaches_all() {
    let a = Harness::new().await;
    let b = Harness::node(a.dir.clone(), 300).await;
    let (client, secret) = service_account(&a).await;
    let issued = a
        .raw(form_post(
            "/api/oauth/token",
            &client,
            &secret,
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    let v: serde_json::Value = serde_json::from_str(&issued.text).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let token = v["access_token"].as_str().unwrap().to_owned();

    for node in [&a, &b] {
        let r = bearer_get(node, "/api/atlas/v2/groups", &token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let revoked = b
        .raw(form_post(
            "/api/oauth/revoke",
            &client,
            &secret,
            &format!("token={token}&token_type_hint=access_token"),
        ))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    for node in [&a, &b] {
        let r = bearer_get(node, "/api/atlas/v2/groups", &token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    // The revocation is in the audit log, by token id, with no token in it.
    let log = a
        .store
        .list_audit(&Default::default(), 0, 1000)
        .await
        .unwrap();
    assert!(log.iter().any(|e| e.event.action == "oauth.token.revoked"));
    assert!(log.iter().all(|e| !format!("{e:?}").contains(&token)));
    assert!(log.iter().all(|e| !format!("{e:?}").contains(&secret)));
}

/// A token from one client cannot be revoked by another, and a forged one is ignored.
#[tokio::test]
async fn only_the_owner_revokes_a_token() {
    let h = Harness::new().await;
    let (c1, s1) = service_account(&h).await;
    let (c2, s2) = service_account(&h).await;
    let t = h
        .raw(form_post(
            "/api/oauth/token",
            &c1,
            &s1,
            "grant_type=client_credentials",
        ))
        .await;
    let token = serde_json::from_str::<serde_json::Value>(&t.text).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .raw(form_post(
            "/api/oauth/revoke",
            &c2,
            &s2,
            &format!("token={token}"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        bearer_get(&h, "/api/atlas/v2/groups", &token).await.status,
        StatusCode::OK
    );
    let wrong = h
        .raw(form_post(
            "/api/oauth/revoke",
            &c1,
            "mdb_sa_sk_wrong",
            &format!("token={token}"),
        ))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("invalid_client"));
}

/// A project-scoped key with `role` in `project`: (public, private).
async fn project_key(h: &Harness, project: &str, role: &str) -> (String, String) {
    let text = std::fs::read_to_string(h.dir.path().join("master.key.b64")).unwrap();
    let master = dbcerts_ca::sealing::MasterKey::from_base64(&text).unwrap();
    let (key, private) = dbcerts_server::bootstrap::new_api_key(
        &master,
        &h.org_id,
        "project key",
        vec!["ORG_MEMBER".into()],
    );
    let grant = dbcerts_store::ProjectGrant {
        principal_id: key.id.clone(),
        project_id: project.to_owned(),
        roles: vec![role.to_owned()],
    };
    h.store.create_api_key(&key, &[grant]).await.unwrap();
    (key.public_key, private.to_string())
}

/// The project paths of a service account's secrets and access list: the account must be in
/// the project, and the project roles of the spec apply (Owner for secrets, Access Manager for
/// access-list changes, Read Only to list). The account is an Organization Member, so a
/// Project Owner may manage it (an Organization Owner account is beyond it: see the end, and
/// tests/escalation.rs).
#[tokio::test]
async fn project_paths_manage_secrets_and_access_lists_of_assigned_accounts() {
    let h = Harness::new().await;
    let p1 = h.project("sa-home").await;
    let p2 = h.project("sa-elsewhere").await;
    let body = r#"{"name":"member","description":"member","roles":["ORG_MEMBER"],"secretExpiresAfterHours":8}"#;
    let uri = format!("/api/atlas/v2/orgs/{}/serviceAccounts", h.org_id);
    let r = h.call("POST", &uri, Some(SA_V), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let client = serde_json::from_str::<serde_json::Value>(&r.text).unwrap()["clientId"]
        .as_str()
        .unwrap()
        .to_owned();
    let invite = format!("/api/atlas/v2/groups/{p1}/serviceAccounts/{client}:invite");
    let r = h
        .call(
            "POST",
            &invite,
            Some(SA_V),
            Some(r#"{"roles":["GROUP_READ_ONLY"]}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (owner_pub, owner_priv) = project_key(&h, &p1, "GROUP_OWNER").await;
    let (ro_pub, ro_priv) = project_key(&h, &p1, "GROUP_READ_ONLY").await;
    let as_owner = |m: &'static str, uri: String, body: Option<&'static str>| {
        let (p, k) = (owner_pub.clone(), owner_priv.clone());
        let h = &h;
        async move { h.call_as(&p, &k, m, &uri, Some(SA_V), body).await }
    };
    let base = format!("/api/atlas/v2/groups/{p1}/serviceAccounts/{client}");

    let created = as_owner(
        "POST",
        format!("{base}/secrets"),
        Some(r#"{"secretExpiresAfterHours":8}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret: serde_json::Value = serde_json::from_str(&created.text).unwrap();
    assert!(secret["secret"].as_str().unwrap().starts_with("mdb_sa_sk_"));
    assert!(
        created
            .content_type
            .starts_with("application/vnd.atlas.2024-08-05+json")
    );

    let list = as_owner(
        "POST",
        format!("{base}/accessList"),
        Some(r#"[{"cidrBlock":"10.1.0.0/16"}]"#),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains(r#""cidrBlock":"10.1.0.0/16""#));
    let read = h
        .call_as(
            &ro_pub,
            &ro_priv,
            "GET",
            &format!("{base}/accessList"),
            Some(SA_V),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.text.contains("10.1.0.0/16"));
    let denied = h
        .call_as(
            &ro_pub,
            &ro_priv,
            "POST",
            &format!("{base}/accessList"),
            Some(SA_V),
            Some(r#"[{"ipAddress":"10.9.9.9"}]"#),
        )
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.error_code.as_deref(), Some("USER_UNAUTHORIZED"));

    let gone = as_owner("DELETE", format!("{base}/accessList/10.1.0.0%2F16"), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    let id = secret["id"].as_str().unwrap();
    let dropped = as_owner("DELETE", format!("{base}/secrets/{id}"), None).await;
    assert_eq!(dropped.status, StatusCode::NO_CONTENT, "{}", dropped.text);

    // The account is not in p2: its secrets are not reachable through p2's path, even for the
    // Organization Owner.
    let elsewhere = format!("/api/atlas/v2/groups/{p2}/serviceAccounts/{client}/secrets");
    let r = h
        .call(
            "POST",
            &elsewhere,
            Some(SA_V),
            Some(r#"{"secretExpiresAfterHours":8}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.error_code.as_deref(), Some("RESOURCE_NOT_FOUND"));

    // An Organization Owner account assigned to p1 is beyond p1's Project Owner.
    let (owner_client, _) = service_account(&h).await;
    let invite = format!("/api/atlas/v2/groups/{p1}/serviceAccounts/{owner_client}:invite");
    let body = Some(r#"{"roles":["GROUP_READ_ONLY"]}"#);
    assert_eq!(
        h.call("POST", &invite, Some(SA_V), body).await.status,
        StatusCode::OK
    );
    let path = format!("/api/atlas/v2/groups/{p1}/serviceAccounts/{owner_client}/secrets");
    let refused = as_owner("POST", path, Some(r#"{"secretExpiresAfterHours":8}"#)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.error_code.as_deref(), Some("ACCESS_FORBIDDEN"));
}
