//! `GET /api/dbcerts/v1/groups/{groupId}/crl` over a real SQLite file: the CRL lists exactly the
//! revoked, unexpired certificates with their reasons, is signed by the project CA, is served
//! again as stored until something changes, gets a new number after every revocation (made on
//! any node of the database) and after its refresh time, and comes as PEM or, on request, DER.
//! Revocations are made through the revocation API, on either node.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use common::Harness;
use dbcerts_server::ServerConfig;
use dbcerts_server::auth::digest;
use dbcerts_server::crl::CrlConfig;
use dbcerts_store::{RevocationReason, RevokeWhich, Store as _};
use http_body_util::BodyExt;
use tower::ServiceExt;
use x509_parser::prelude::*;

/// What one CRL says, read back with x509-parser.
#[derive(Debug)]
struct Seen {
    issuer: String,
    number: u64,
    this_update: i64,
    next_update: i64,
    /// (serial, reason code: 0 when the entry has none), by serial.
    entries: Vec<(i64, u8)>,
    aki: Vec<u8>,
}

fn read_crl(der: &[u8]) -> Seen {
    let (rest, crl) = parse_x509_crl(der).expect("a DER CRL");
    assert!(rest.is_empty(), "bytes after the CRL");
    assert_eq!(crl.version(), Some(X509Version::V2));
    let mut entries: Vec<(i64, u8)> = crl
        .iter_revoked_certificates()
        .map(|e| {
            let serial = i64::try_from(e.serial()).expect("a positive i64 serial");
            let reason = e.reason_code().map_or(0, |(_, r)| r.0);
            (serial, reason)
        })
        .collect();
    entries.sort_unstable();
    let aki = crl
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("an authority key identifier");
    Seen {
        issuer: crl.issuer().to_string(),
        number: crl
            .crl_number()
            .expect("a CRL number")
            .to_u64_digits()
            .first()
            .copied()
            .unwrap_or(0),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().expect("a nextUpdate").timestamp(),
        entries,
        aki,
    }
}

/// The DER blocks of a PEM file of `X509 CRL` blocks (nothing else allowed).
fn pem_crls(text: &str) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(text.as_bytes())
        .map(|p| {
            let p = p.expect("well-formed PEM");
            assert_eq!(p.label, "X509 CRL");
            p.contents
        })
        .collect()
}

/// GET .../crl as the bootstrap key with `accept`, answered with raw bytes (DER is not text).
async fn get_raw(h: &Harness, gid: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let uri = format!("/api/dbcerts/v1/groups/{gid}/crl");
    let nonce = h.nonce_of("GET", &uri).await;
    let creds = digest::Credentials {
        username: h.public_key.clone(),
        realm: digest::REALM.into(),
        nonce: nonce.clone(),
        uri: uri.clone(),
        response: String::new(),
        algorithm: digest::Algorithm::Md5,
        cnonce: "5ccc069c".into(),
        nc: "00000001".into(),
    };
    let response = digest::expected_response(&creds, "GET", &h.private_key);
    let auth = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{nonce}\", uri=\"{uri}\", cnonce=\"5ccc069c\", nc=00000001, qop=auth, response=\"{response}\", algorithm=MD5",
        h.public_key,
        digest::REALM
    );
    let mut req = Request::builder()
        .uri(&uri)
        .header(header::AUTHORIZATION, auth);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let res = h.app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, ct, body)
}

/// The project's one CRL, fetched as PEM.
async fn crl(h: &Harness, gid: &str) -> (Vec<u8>, Seen) {
    let (status, ct, body) = get_raw(h, gid, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct, "application/x-pem-file");
    let mut ders = pem_crls(std::str::from_utf8(&body).unwrap());
    assert_eq!(ders.len(), 1, "one issuer, one CRL");
    let der = ders.remove(0);
    let seen = read_crl(&der);
    (der, seen)
}

async fn issue(h: &Harness, gid: &str, user: &str) -> i64 {
    let r = h
        .v2(
            "POST",
            &format!("/groups/{gid}/databaseUsers/{user}/certs"),
            Some("{}"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    // The serial of the certificate in the answer (serials are random, not ordered).
    let pem = Pem::iter_from_buffer(r.text.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(pem.label, "CERTIFICATE");
    let (_, cert) = parse_x509_certificate(&pem.contents).unwrap();
    i64::try_from(cert.serial.clone()).unwrap()
}

/// Revokes through the API (`.../certs/{serial}:revoke`, or `.../certs:revoke` for all of the
/// user's); its 200 means committed.
async fn revoke(h: &Harness, gid: &str, user: &str, which: RevokeWhich, reason: RevocationReason) {
    let certs = format!("/api/dbcerts/v1/groups/{gid}/databaseUsers/{user}/certs");
    let uri = match which {
        RevokeWhich::One(serial) => format!("{certs}/{serial}:revoke"),
        RevokeWhich::AllUnexpired { .. } => format!("{certs}:revoke"),
    };
    let body = format!(r#"{{"reason":"{}"}}"#, reason.as_str());
    let r = h.call("POST", &uri, None, Some(&body)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
}

#[tokio::test]
async fn the_crl_follows_every_revocation_on_any_node_and_its_refresh_time() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (_, key_text) = dbcerts_ca::sealing::MasterKey::generate();
    std::fs::write(dir.path().join("master.key.b64"), key_text.as_bytes()).unwrap();
    let cfg = CrlConfig {
        validity_secs: 3 * 86_400,
        refresh_secs: 3600,
        backdate_secs: 120,
        distribution: false,
        ..CrlConfig::default()
    };
    let config = || ServerConfig {
        crl: cfg,
        ..ServerConfig::default()
    };
    let a = Harness::node_with(Arc::clone(&dir), 300, config()).await;
    let b = Harness::node_with(Arc::clone(&dir), 300, config()).await;
    let gid = a.project("crl-project").await;

    // No CA yet: no CRL.
    let (status, _, body) = get_raw(&a, &gid, None).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));

    a.managed_user(&gid, "alice").await;
    a.managed_user(&gid, "bob").await;
    let a1 = issue(&a, &gid, "alice").await;
    let a2 = issue(&a, &gid, "alice").await;
    let b1 = issue(&a, &gid, "bob").await;
    let ca = a.store.list_project_cas(&gid).await.unwrap().remove(0);
    let (_, ca_cert) = parse_x509_certificate(&ca.cert_der).unwrap();
    let ski = ca_cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .unwrap();

    // Nothing revoked: an empty CRL number 1, signed by the project CA, dated by the config.
    let before = chrono::Utc::now().timestamp();
    let (der1, s1) = crl(&a, &gid).await;
    let after = chrono::Utc::now().timestamp();
    assert_eq!(s1.number, 1);
    assert!(s1.entries.is_empty(), "{s1:?}");
    assert_eq!(s1.issuer, ca_cert.subject().to_string());
    assert_eq!(s1.aki, ski);
    assert!(
        (before - cfg.backdate_secs..=after - cfg.backdate_secs).contains(&s1.this_update),
        "{s1:?}"
    );
    assert_eq!(
        s1.next_update - s1.this_update,
        cfg.validity_secs + cfg.backdate_secs
    );
    // Served again as stored, by either node.
    assert_eq!(crl(&a, &gid).await.0, der1);
    assert_eq!(crl(&b, &gid).await.0, der1);

    // A revocation through node A's database is in the very next CRL node B serves.
    revoke(
        &a,
        &gid,
        "alice",
        RevokeWhich::One(a2),
        RevocationReason::KeyCompromise,
    )
    .await;
    let (der2, s2) = crl(&b, &gid).await;
    assert_eq!(s2.number, 2);
    assert_eq!(s2.entries, vec![(a2, 1)]);
    // Node A serves B's, not one of its own.
    assert_eq!(crl(&a, &gid).await.0, der2);

    // Revoking again changes nothing; revoking all of bob's adds his, with its reason.
    revoke(
        &a,
        &gid,
        "alice",
        RevokeWhich::One(a2),
        RevocationReason::Superseded,
    )
    .await;
    assert_eq!(crl(&a, &gid).await.0, der2);
    let now = chrono::Utc::now().timestamp();
    revoke(
        &b,
        &gid,
        "bob",
        RevokeWhich::AllUnexpired { now },
        RevocationReason::CessationOfOperation,
    )
    .await;
    let (der3, s3) = crl(&a, &gid).await;
    assert_eq!(s3.number, 3);
    let mut want = vec![(a2, 1), (b1, 5)];
    want.sort_unstable();
    assert_eq!(s3.entries, want);
    assert!(!s3.entries.iter().any(|(s, _)| *s == a1));

    // DER on request: the same CRL.
    let (status, ct, body) = get_raw(&b, &gid, Some("application/pkix-crl")).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/pkix-crl");
    assert_eq!(body, der3);

    // The background refresh: nothing due now; at the refresh time, every node would rebuild,
    // and the first to publish wins: one new number, the same entries.
    assert_eq!(dbcerts_server::crl::refresh_due(&a.state, now).await, 0);
    let later = now + cfg.refresh_secs + 5;
    assert_eq!(dbcerts_server::crl::refresh_due(&a.state, later).await, 1);
    assert_eq!(dbcerts_server::crl::refresh_due(&b.state, later).await, 0);
    let st = a.store.get_crl_state(ca.id).await.unwrap();
    let p = st.published.unwrap();
    assert_eq!(p.number, 4);
    let s4 = read_crl(&p.der);
    assert_eq!(s4.number, 4);
    assert_eq!(s4.entries, want);
    assert_eq!(s4.this_update, later - cfg.backdate_secs);
    assert_eq!(s4.next_update, later + cfg.validity_secs);
    // The refresh comes well before nextUpdate of the CRL it replaces.
    assert!(later < s3.next_update - cfg.validity_secs / 2);
}

#[tokio::test]
async fn bad_requests_get_atlas_errors_and_accept_lists_pick_der() {
    let h = Harness::new().await;
    let gid = h.project("crl-roles").await;
    h.managed_user(&gid, "carol").await;
    issue(&h, &gid, "carol").await;
    // Unauthenticated: 401, no CRL.
    let r = h
        .raw(
            Request::builder()
                .uri(format!("/api/dbcerts/v1/groups/{gid}/crl"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status.as_u16(), 401);
    assert!(!r.text.contains("X509 CRL"));
    // Bad group id: Atlas's error, as for every path with a group id.
    let r = h
        .call("GET", "/api/dbcerts/v1/groups/not-an-id/crl", None, None)
        .await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    assert_eq!(r.error_code.as_deref(), Some("INVALID_GROUP_ID"));
    let v: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    for k in ["detail", "error", "errorCode", "parameters", "reason"] {
        assert!(v.get(k).is_some(), "{k} missing in {}", r.text);
    }
    // Accept lists with DER anywhere pick DER.
    let (status, ct, body) =
        get_raw(&h, &gid, Some("text/plain, application/pkix-crl;q=0.9")).await;
    assert_eq!((status, ct.as_str()), (200, "application/pkix-crl"));
    read_crl(&body);
}
