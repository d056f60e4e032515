//! Revocation through the HTTP application (in process, real SQLite file): revoke one, revoke
//! all, idempotence (also under concurrent revocations), errors in Atlas's format,
//! cross-project and cross-user serials, the issuing CA recorded at issuance, the Atlas list
//! leaving revoked certificates out, the status list, the audit entries, and revocation on user
//! deletion (on by default, off by configuration), through both Atlas delete paths.

mod common;

use axum::http::StatusCode;
use common::{Harness, Reply, V2};
use dbcerts_server::{RevocationConfig, ServerConfig};
use dbcerts_store::{AuditFilter, Page, Revocation, RevocationReason, Store};
use serde_json::Value;

const EXT: &str = "/api/dbcerts/v1";
const ALL: Page = Page {
    offset: 0,
    limit: 1000,
};

/// Issues a certificate to `user` in `gid`; returns its serial.
async fn issue(h: &Harness, gid: &str, user: &str) -> i64 {
    let r = h
        .v2(
            "POST",
            &format!("/groups/{gid}/databaseUsers/{user}/certs"),
            Some("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (certs, _) = h
        .store
        .list_user_certificates(gid, user, ALL)
        .await
        .unwrap();
    certs.last().unwrap().serial
}

/// A fresh server with these revocation settings.
async fn node_with(revocation: RevocationConfig) -> Harness {
    Harness::with_config(ServerConfig {
        revocation,
        ..Default::default()
    })
    .await
}

async fn get(h: &Harness, path: &str) -> Reply {
    h.call("GET", &format!("{EXT}{path}"), None, None).await
}

async fn post(h: &Harness, path: &str, body: Option<&str>) -> Reply {
    h.call("POST", &format!("{EXT}{path}"), None, body).await
}

fn json(r: &Reply) -> Value {
    serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{e}: {}", r.text))
}

/// Atlas's error format, with `code`.
fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    let v = json(r);
    assert_eq!(v["errorCode"], code, "{v}");
    assert_eq!(v["error"], status);
    for field in ["detail", "parameters", "reason"] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    assert_eq!(r.error_code.as_deref(), Some(code));
}

/// The stored revocation of one of the project's certificates (`None`: not revoked).
async fn revocation(h: &Harness, gid: &str, serial: i64) -> Option<Revocation> {
    let stored = h.store.get_certificate(gid, serial).await.unwrap();
    stored.expect("the certificate is stored").revocation
}

async fn revocation_audits(h: &Harness, gid: &str) -> Vec<Value> {
    let filter = AuditFilter {
        project_id: Some(gid.to_owned()),
        ..Default::default()
    };
    h.store
        .list_audit(&filter, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action.starts_with("certificate.revoked"))
        .map(|e| {
            let mut d: Value = serde_json::from_str(&e.event.details).unwrap();
            d["action"] = e.event.action.clone().into();
            d["target"] = e.event.target.clone().into();
            d["actor"] = e.event.actor.clone().into();
            d["status"] = e.event.status.into();
            d
        })
        .collect()
}

#[tokio::test]
async fn revoke_one_is_durable_idempotent_audited_and_scoped() {
    let h = Harness::new().await;
    let gid = h.project("revoking").await;
    let other = h.project("other").await;
    for (g, u) in [(&gid, "alice"), (&gid, "bob"), (&other, "alice")] {
        h.managed_user(g, u).await;
    }
    let a1 = issue(&h, &gid, "alice").await;
    let a2 = issue(&h, &gid, "alice").await;
    let b1 = issue(&h, &gid, "bob").await;
    let o1 = issue(&h, &other, "alice").await;

    // Issuance recorded the CA that signed it.
    let ca = h.store.get_active_ca(&gid).await.unwrap().unwrap();
    assert_eq!(
        h.store
            .get_certificate(&gid, a1)
            .await
            .unwrap()
            .unwrap()
            .ca_id,
        ca.id
    );

    let path = |u: &str, s: &str| format!("/groups/{gid}/databaseUsers/{u}/certs/{s}:revoke");
    let r = post(
        &h,
        &path("alice", &a1.to_string()),
        Some(r#"{"reason":"keyCompromise"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, "application/json");
    let first = json(&r);
    assert_eq!(first["_id"], a1);
    assert_eq!(first["status"], "REVOKED");
    assert_eq!(first["revocationReason"], "keyCompromise");
    assert_eq!(first["groupId"], gid.as_str());
    assert_eq!(first["subject"], "CN=alice");
    // Committed before the answer: the store has it.
    let rev = revocation(&h, &gid, a1)
        .await
        .expect("revoked in the store");
    assert_eq!(rev.reason, RevocationReason::KeyCompromise);

    // Again, with another reason: the first time and reason, no new audit entry.
    let r = post(
        &h,
        &path("alice", &a1.to_string()),
        Some(r#"{"reason":"superseded"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(json(&r), first);
    let audits = revocation_audits(&h, &gid).await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["serial"], a1);
    assert_eq!(audits[0]["reason"], "keyCompromise");
    assert_eq!(audits[0]["target"], "alice");
    assert_eq!(audits[0]["status"], 200);
    assert_eq!(audits[0]["actor"], format!("api-key:{}", h.public_key));

    // Default reason, empty body.
    let r = post(&h, &path("alice", &a2.to_string()), None).await;
    assert_eq!(json(&r)["revocationReason"], "unspecified", "{}", r.text);

    // Bob's serial through alice, the other project's serial through this project, a serial
    // of nobody, and garbage: all the same 404, and nothing revoked.
    for (user, serial) in [
        ("alice", b1.to_string()),
        ("alice", o1.to_string()),
        ("bob", a1.to_string()),
        ("alice", "12345".to_owned()),
        ("alice", "-5".to_owned()),
        ("alice", "+12".to_owned()),
        ("alice", "abc".to_owned()),
        ("alice", "99999999999999999999999".to_owned()),
    ] {
        let r = post(
            &h,
            &path(user, &serial),
            Some(r#"{"reason":"keyCompromise"}"#),
        )
        .await;
        assert_error(&r, 404, "CERTIFICATE_NOT_FOUND");
    }
    assert!(revocation(&h, &gid, b1).await.is_none());
    assert!(revocation(&h, &other, o1).await.is_none());

    // Unknown reasons and bad bodies: 400, nothing revoked.
    for body in [
        r#"{"reason":"KeyCompromise"}"#,
        r#"{"reason":"cACompromise"}"#,
        r#"{"reason":1}"#,
        r#"{"reason":"removeFromCRL"}"#,
    ] {
        let r = post(&h, &path("bob", &b1.to_string()), Some(body)).await;
        assert_error(&r, 400, "INVALID_REVOCATION_REASON");
    }
    let r = post(
        &h,
        &path("bob", &b1.to_string()),
        Some(r#"{"reason":"unspecified","why":1}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = post(&h, &path("bob", &b1.to_string()), Some("{")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(revocation(&h, &gid, b1).await.is_none());

    // Another method: Atlas's 405 (errorCode UNEXPECTED_ERROR, as the Atlas paths answer).
    for (method, path) in [
        (
            "GET",
            format!("/groups/{gid}/databaseUsers/bob/certs/{b1}:revoke"),
        ),
        ("DELETE", format!("/groups/{gid}/databaseUsers/bob/certs")),
        (
            "PUT",
            format!("/groups/{gid}/databaseUsers/bob/certs:revoke"),
        ),
    ] {
        let r = h.call(method, &format!("{EXT}{path}"), None, None).await;
        assert_error(&r, 405, "UNEXPECTED_ERROR");
    }

    // Not `:revoke`: not found.
    let r = post(
        &h,
        &format!("/groups/{gid}/databaseUsers/bob/certs/{b1}:unrevoke"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn revoke_all_atlas_list_and_status_list() {
    let h = Harness::new().await;
    let gid = h.project("all").await;
    h.managed_user(&gid, "carol").await;
    let serials = [
        issue(&h, &gid, "carol").await,
        issue(&h, &gid, "carol").await,
        issue(&h, &gid, "carol").await,
    ];
    let atlas = format!("/groups/{gid}/databaseUsers/carol/certs");
    let listed = |r: &Reply| -> (Vec<i64>, i64) {
        let v = json(r);
        let ids = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["_id"].as_i64().unwrap())
            .collect();
        (ids, v["totalCount"].as_i64().unwrap())
    };
    let r = post(
        &h,
        &format!(
            "/groups/{gid}/databaseUsers/carol/certs/{}:revoke",
            serials[1]
        ),
        Some(r#"{"reason":"superseded"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The Atlas list (both versions) leaves the revoked one out; its shape is unchanged.
    let v2 = h.v2("GET", &atlas, None).await;
    assert_eq!(listed(&v2), (vec![serials[0], serials[2]], 2));
    let v1 = h
        .call("GET", &format!("/api/atlas/v1.0{atlas}"), None, None)
        .await;
    assert_eq!(listed(&v1), (vec![serials[0], serials[2]], 2));
    let keys: Vec<String> = json(&v2)["results"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["_id", "createdAt", "groupId", "notAfter", "subject"]);

    // Revoke all: the three, the earlier one keeping its reason.
    let r = post(
        &h,
        &format!("/groups/{gid}/databaseUsers/carol/certs:revoke"),
        Some(r#"{"reason":"affiliationChanged"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = json(&r);
    assert_eq!(v["totalCount"], 3);
    let reasons: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revocationReason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["affiliationChanged", "superseded", "affiliationChanged"]
    );
    assert_eq!(listed(&h.v2("GET", &atlas, None).await), (vec![], 0));
    assert_eq!(revocation_audits(&h, &gid).await.len(), 3);

    // The status list shows all three, revoked with time and reason, paginated.
    let r = get(&h, &format!("{atlas}?itemsPerPage=2&pageNum=1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = json(&r);
    assert_eq!(v["totalCount"], 3);
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    assert_eq!(v["results"][0]["status"], "REVOKED");
    assert!(
        v["results"][0]["revokedAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let links = v["links"].to_string();
    assert!(
        links.contains(&format!("{EXT}/groups/{gid}/databaseUsers/carol/certs?")),
        "{links}"
    );
    assert!(links.contains("\"next\""), "{links}");

    // A new certificate is VALID (3 months), or EXPIRING with a window longer than that.
    issue(&h, &gid, "carol").await;
    let r = get(&h, &format!("{atlas}?pageNum=2&itemsPerPage=3")).await;
    assert_eq!(json(&r)["results"][0]["status"], "VALID", "{}", r.text);
    assert!(json(&r)["results"][0].get("revokedAt").is_none());

    // Unknown user: 404 on both.
    let r = post(
        &h,
        &format!("/groups/{gid}/databaseUsers/nobody/certs:revoke"),
        None,
    )
    .await;
    assert_error(&r, 404, "USERNAME_NOT_FOUND");
    let r = get(&h, &format!("/groups/{gid}/databaseUsers/nobody/certs")).await;
    assert_error(&r, 404, "USERNAME_NOT_FOUND");
}

#[tokio::test]
async fn expiring_window_is_configurable() {
    let h = node_with(RevocationConfig {
        expiring_within_secs: 400 * 86_400,
        ..Default::default()
    })
    .await;
    let gid = h.project("expiring").await;
    h.managed_user(&gid, "dan").await;
    issue(&h, &gid, "dan").await;
    let r = get(&h, &format!("/groups/{gid}/databaseUsers/dan/certs")).await;
    assert_eq!(json(&r)["results"][0]["status"], "EXPIRING", "{}", r.text);
}

/// Deleting a MANAGED user revokes its unexpired certificates, through v2 and v1.0; a SCRAM
/// user's deletion revokes nothing; the switch turns it off.
#[tokio::test]
async fn deleting_a_managed_user_revokes_its_certificates_unless_switched_off() {
    for (revoke_on_delete, api) in [
        (true, "/api/atlas/v2"),
        (true, "/api/atlas/v1.0"),
        (false, "/api/atlas/v2"),
    ] {
        let h = node_with(RevocationConfig {
            revoke_on_user_delete: revoke_on_delete,
            ..Default::default()
        })
        .await;
        let gid = h.project("deleting").await;
        h.managed_user(&gid, "erin").await;
        h.managed_user(&gid, "frank").await;
        let e = [issue(&h, &gid, "erin").await, issue(&h, &gid, "erin").await];
        let f = issue(&h, &gid, "frank").await;
        let accept = (api == "/api/atlas/v2").then_some(V2);
        let r = h
            .call(
                "DELETE",
                &format!("{api}/groups/{gid}/databaseUsers/$external/erin"),
                accept,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        for s in e {
            match revocation(&h, &gid, s).await {
                Some(r) => {
                    assert!(revoke_on_delete, "{api}: revoked although switched off");
                    assert_eq!(r.reason, RevocationReason::CessationOfOperation);
                }
                None => assert!(!revoke_on_delete, "{api}: not revoked"),
            }
        }
        assert!(revocation(&h, &gid, f).await.is_none());
        let audits = revocation_audits(&h, &gid).await;
        assert_eq!(
            audits.len(),
            if revoke_on_delete { 2 } else { 0 },
            "{audits:?}"
        );
        for a in audits {
            assert_eq!(a["action"], "certificate.revoked.user_deleted");
            assert_eq!(a["status"], 204);
        }
        // The status list still shows the deleted user's certificates.
        let r = get(&h, &format!("/groups/{gid}/databaseUsers/erin/certs")).await;
        assert_eq!(json(&r)["totalCount"], 2, "{}", r.text);
    }
}

/// Concurrent revocations of one certificate with different reasons: exactly one wins, every
/// answer is the winner's time and reason, and one audit entry is written.
#[tokio::test]
async fn concurrent_revocations_of_one_certificate_agree() {
    let h = Harness::new().await;
    let gid = h.project("racing").await;
    h.managed_user(&gid, "gus").await;
    let serial = issue(&h, &gid, "gus").await;
    let path = format!("/groups/{gid}/databaseUsers/gus/certs/{serial}:revoke");
    let body = |reason: &str| format!(r#"{{"reason":"{reason}"}}"#);
    let bodies = [
        body("keyCompromise"),
        body("superseded"),
        body("affiliationChanged"),
        body("cessationOfOperation"),
    ];
    let (a, b, c, d) = tokio::join!(
        post(&h, &path, Some(&bodies[0])),
        post(&h, &path, Some(&bodies[1])),
        post(&h, &path, Some(&bodies[2])),
        post(&h, &path, Some(&bodies[3])),
    );
    let answers: Vec<Value> = [a, b, c, d]
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            json(r)
        })
        .collect();
    assert!(answers.iter().all(|v| *v == answers[0]), "{answers:?}");
    let stored = revocation(&h, &gid, serial).await.expect("revoked");
    assert_eq!(answers[0]["revocationReason"], stored.reason.as_str());
    let audits = revocation_audits(&h, &gid).await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["reason"], answers[0]["revocationReason"]);
}

/// An expired certificate is EXPIRED in the status list, left alone by revoke-all, and can
/// still be revoked by serial (then REVOKED).
#[tokio::test]
async fn expired_certificates_in_the_status_list() {
    let h = Harness::new().await;
    let gid = h.project("expired").await;
    h.managed_user(&gid, "hana").await;
    let live = issue(&h, &gid, "hana").await;
    // A certificate that expired a minute ago, recorded as issuance records one.
    let now = chrono::Utc::now().timestamp();
    let template = h.store.get_certificate(&gid, live).await.unwrap().unwrap();
    let expired = dbcerts_store::CertificateRecord {
        serial: live ^ 0x5555,
        not_before: now - 86_400,
        not_after: now - 60,
        created_ms: (now - 86_400) * 1000,
        ..template
    };
    let event = dbcerts_store::AuditEvent {
        at_ms: expired.created_ms,
        actor: "test".into(),
        source_ip: None,
        action: "certificate.issued".into(),
        project_id: Some(gid.clone()),
        target: Some("hana".into()),
        status: Some(201),
        details: "{}".into(),
    };
    h.store.insert_certificate(&expired, &event).await.unwrap();
    let list_path = format!("{EXT}/groups/{gid}/databaseUsers/hana/certs");
    let list = || h.call("GET", &list_path, None, None);
    let status_of = |v: &Value, serial: i64| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["_id"] == serial)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let v = json(&list().await);
    assert_eq!(v["totalCount"], 2, "{v}");
    assert_eq!(status_of(&v, expired.serial), "EXPIRED");
    assert_eq!(status_of(&v, live), "VALID");

    let r = post(
        &h,
        &format!("/groups/{gid}/databaseUsers/hana/certs:revoke"),
        Some(r#"{"reason":"superseded"}"#),
    )
    .await;
    let ids: Vec<i64> = json(&r)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [live], "{}", r.text);
    assert_eq!(status_of(&json(&list().await), expired.serial), "EXPIRED");

    let r = post(
        &h,
        &format!(
            "/groups/{gid}/databaseUsers/hana/certs/{}:revoke",
            expired.serial
        ),
        Some(r#"{"reason":"keyCompromise"}"#),
    )
    .await;
    assert_eq!(json(&r)["status"], "REVOKED", "{}", r.text);
}
