//! CA rotation with overlap (issue 17, section 4) through the router, on a real SQLite file:
//! `ca:rotate` makes a new generation sign new leaves, the trust bundle (`GET .../ca`) holds
//! every generation not retired that still has a leaf, `ca:retire` takes one out, a rotation by
//! another node is used at once, and a leaf that would outlive the active CA (with the
//! configured margin) comes from a new generation made first, never a 500. The same with real
//! `openssl verify` and TLS handshakes is `tests/blackbox/test_rotation.py`.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::Harness;
use dbcerts_ca::sealing::MasterKey;
use dbcerts_ca::{KeyAlgorithm, ManagedCa, ManagedCaParams};
use dbcerts_server::ServerConfig;
use dbcerts_store::{AuditEvent, AuditFilter, CaRecord, CertificateRecord, Store};
use serde_json::Value;
use x509_parser::pem::Pem;

const GENERATION_QUALIFIER: &str = "2.5.4.44";

/// The generation named in a certificate's issuer (1 when it has no generationQualifier).
fn issuer_generation(pem_text: &str) -> u32 {
    let block = pem_blocks(pem_text)
        .into_iter()
        .find(|p| p.label == "CERTIFICATE")
        .expect("a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
    generation_in(cert.issuer())
}

fn pem_blocks(text: &str) -> Vec<Pem> {
    Pem::iter_from_buffer(text.as_bytes())
        .map(Result::unwrap)
        .collect()
}

fn generation_in(name: &x509_parser::x509::X509Name<'_>) -> u32 {
    name.iter_attributes()
        .find(|a| a.attr_type().to_id_string() == GENERATION_QUALIFIER)
        .map_or(1, |a| a.as_str().unwrap().parse().unwrap())
}

/// The generations of the certificates in a PEM bundle, in order.
fn bundle_generations(pem_text: &str) -> Vec<u32> {
    pem_blocks(pem_text)
        .iter()
        .map(|p| {
            let (_, cert) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
            generation_in(cert.subject())
        })
        .collect()
}

async fn issue(h: &Harness, gid: &str, user: &str, months: u32) -> (StatusCode, String) {
    let r = h
        .v2(
            "POST",
            &format!("/groups/{gid}/databaseUsers/{user}/certs"),
            Some(&format!(r#"{{"monthsUntilExpiration":{months}}}"#)),
        )
        .await;
    (r.status, r.text)
}

async fn issued_generation(h: &Harness, gid: &str, user: &str, months: u32) -> u32 {
    let (status, text) = issue(h, gid, user, months).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    issuer_generation(&text)
}

async fn ext(
    h: &Harness,
    method: &str,
    gid: &str,
    tail: &str,
    body: Option<&str>,
) -> (u16, String) {
    let r = h
        .call(
            method,
            &format!("/api/dbcerts/v1/groups/{gid}/{tail}"),
            None,
            body,
        )
        .await;
    (r.status.as_u16(), r.text)
}

/// `(action, details)` of the project's CA audit entries, in log order.
async fn ca_audit(h: &Harness, gid: &str) -> Vec<(String, Value)> {
    let filter = AuditFilter {
        project_id: Some(gid.to_owned()),
        ..Default::default()
    };
    h.store
        .list_audit(&filter, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action.starts_with("ca."))
        .map(|e| {
            let details = serde_json::from_str(&e.event.details).unwrap();
            (e.event.action, details)
        })
        .collect()
}

#[tokio::test]
async fn rotation_switches_issuance_and_the_bundle_keeps_old_leaves_until_retirement() {
    let h = Harness::new().await;
    let gid = h.project("rotating").await;
    h.managed_user(&gid, "alice").await;

    assert_eq!(issued_generation(&h, &gid, "alice", 3).await, 1);
    let (status, one) = ext(&h, "GET", &gid, "ca", None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        bundle_generations(&one),
        [1],
        "one CA until the first rotation"
    );

    let (status, text) = ext(&h, "POST", &gid, "ca:rotate", None).await;
    assert_eq!(status, 201, "{text}");
    let rotated: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rotated["generation"], 2);
    assert_eq!(rotated["active"], true);
    assert!(
        rotated["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("CN={gid}")),
        "{rotated}"
    );
    assert_eq!(issued_generation(&h, &gid, "alice", 3).await, 2);
    let (_, both) = ext(&h, "GET", &gid, "ca", None).await;
    assert_eq!(bundle_generations(&both), [1, 2]);
    assert!(both.starts_with(&one), "the old CA is the same certificate");

    let (_, listed) = ext(&h, "GET", &gid, "cas", None).await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let rows: Vec<(u64, bool, bool)> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["generation"].as_u64().unwrap(),
                g["active"].as_bool().unwrap(),
                g["inBundle"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [(1, false, true), (2, true, true)]);
    assert_eq!(listed["totalCount"], 2);

    // The active generation cannot go; an unknown one is not found; a bad body is a 400.
    let (status, text) = ext(&h, "POST", &gid, "ca:retire", Some(r#"{"generation":2}"#)).await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("CA_GENERATION_ACTIVE"), "{text}");
    let (status, text) = ext(&h, "POST", &gid, "ca:retire", Some(r#"{"generation":9}"#)).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("CA_GENERATION_NOT_FOUND"), "{text}");
    let (status, text) = ext(&h, "POST", &gid, "ca:retire", Some(r#"{"generation":0}"#)).await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = ext(&h, "POST", &gid, "ca:retire", Some("{}")).await;
    assert_eq!(status, 400, "{text}");

    let (status, text) = ext(&h, "POST", &gid, "ca:retire", Some(r#"{"generation":1}"#)).await;
    assert_eq!(status, 200, "{text}");
    let first: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(first["inBundle"], false);
    let (status, text) = ext(&h, "POST", &gid, "ca:retire", Some(r#"{"generation":1}"#)).await;
    assert_eq!(status, 200, "{text}");
    let again: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        again["retiredAt"], first["retiredAt"],
        "the first time stays"
    );
    let (_, after) = ext(&h, "GET", &gid, "ca", None).await;
    assert_eq!(bundle_generations(&after), [2]);
    assert_eq!(issued_generation(&h, &gid, "alice", 3).await, 2);

    let audit = ca_audit(&h, &gid).await;
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["ca.rotated", "ca.retired"],
        "one entry per change"
    );
    assert_eq!(audit[0].1["reason"], "manual");
    assert_eq!(audit[0].1["generation"], 2);
    assert_eq!(audit[1].1["generation"], 1);
}

#[tokio::test]
async fn a_rotation_by_another_node_is_used_by_the_next_issuance() {
    let a = Harness::new().await;
    let b = Harness::node(Arc::clone(&a.dir), 300).await;
    let gid = a.project("two-nodes").await;
    a.managed_user(&gid, "bob").await;
    // Node A has generation 1 in its cache.
    assert_eq!(issued_generation(&a, &gid, "bob", 1).await, 1);
    let (status, text) = ext(&b, "POST", &gid, "ca:rotate", None).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(issued_generation(&a, &gid, "bob", 1).await, 2);
    let (_, bundle) = ext(&a, "GET", &gid, "ca", None).await;
    assert_eq!(bundle_generations(&bundle), [1, 2]);
}

/// Stores, as the project's first CA, one made `months_ago` months ago (so it ends
/// `120 - months_ago` months from now), sealed as the service seals generation 1.
async fn old_first_ca(h: &Harness, gid: &str, months_ago: u32) -> i64 {
    let key_text = std::fs::read_to_string(h.dir.path().join("master.key.b64")).unwrap();
    let master = MasterKey::from_base64(&key_text).unwrap();
    let then = chrono::Utc::now()
        .checked_sub_months(chrono::Months::new(months_ago))
        .unwrap();
    let ca = ManagedCa::create(
        gid,
        &ManagedCaParams::default(),
        KeyAlgorithm::EcdsaP256,
        then,
    )
    .unwrap();
    let rec = CaRecord {
        id: 0,
        project_id: gid.to_owned(),
        algorithm: ca.algorithm().as_str().to_owned(),
        cert_der: ca.cert_der().to_vec(),
        sealed_key: master.seal(&ca.key_pkcs8_der(), &format!("ca-key:{gid}")),
        not_before: ca.not_before().timestamp(),
        not_after: ca.not_after().timestamp(),
        generation: 1,
        active: true,
        retired_at: None,
    };
    let stored = h.store.insert_ca_if_absent(&rec).await.unwrap();
    assert_eq!(stored.cert_der, rec.cert_der, "the project had no CA yet");
    ca.not_after().timestamp()
}

#[tokio::test]
async fn a_certificate_that_would_outlive_the_ca_comes_from_a_new_generation() {
    let h = Harness::new().await;
    let gid = h.project("ageing").await;
    h.managed_user(&gid, "carol").await;
    // About three months left on the project's CA.
    let ends = old_first_ca(&h, &gid, 117).await;
    let left_days = (ends - chrono::Utc::now().timestamp()) / 86_400;
    assert!((80..100).contains(&left_days), "{left_days}");

    // A month fits with the default 30-day margin: the old CA signs it.
    assert_eq!(issued_generation(&h, &gid, "carol", 1).await, 1);
    // 24 months do not: a new generation first, then the certificate, never a 500.
    assert_eq!(issued_generation(&h, &gid, "carol", 24).await, 2);
    // And the new one serves what follows.
    assert_eq!(issued_generation(&h, &gid, "carol", 1).await, 2);
    let audit = ca_audit(&h, &gid).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "ca.rotated");
    assert_eq!(audit[0].1["reason"], "automatic");
    assert_eq!(audit[0].1["previousGeneration"], 1);
    let (_, bundle) = ext(&h, "GET", &gid, "ca", None).await;
    assert_eq!(
        bundle_generations(&bundle),
        [1, 2],
        "the old CA still has a leaf"
    );
}

#[tokio::test]
async fn the_rotation_margin_is_configurable() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (_, key_text) = MasterKey::generate();
    std::fs::write(dir.path().join("master.key.b64"), key_text.as_bytes()).unwrap();
    let config = ServerConfig {
        ca_rotation_margin_days: 120,
        ..ServerConfig::default()
    };
    let h = Harness::node_with(dir, 300, config).await;
    let gid = h.project("careful").await;
    h.managed_user(&gid, "dave").await;
    old_first_ca(&h, &gid, 117).await;
    // A one-month certificate would end less than 120 days before the CA: rotate first.
    assert_eq!(issued_generation(&h, &gid, "dave", 1).await, 2);
    let audit = ca_audit(&h, &gid).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].1["reason"], "automatic");
}

/// Records a certificate of CA row `ca_id` ending at `not_after`, through the store (the API
/// cannot issue one that has already expired).
async fn leaf_of(h: &Harness, gid: &str, ca_id: i64, serial: i64, not_after: i64) {
    let now = chrono::Utc::now();
    let cert = CertificateRecord {
        serial,
        project_id: gid.to_owned(),
        username: "erin".into(),
        subject: "CN=erin".into(),
        not_before: not_after - 86_400,
        not_after,
        created_ms: now.timestamp_millis(),
        cert_der: vec![0x30, 0x00],
        ca_id,
        revocation: None,
    };
    let audit = AuditEvent {
        at_ms: now.timestamp_millis(),
        actor: "test".into(),
        source_ip: None,
        action: "certificate.issued".into(),
        project_id: Some(gid.to_owned()),
        target: Some("erin".into()),
        status: Some(201),
        details: "{}".into(),
    };
    h.store.insert_certificate(&cert, &audit).await.unwrap();
}

#[tokio::test]
async fn an_old_generation_stays_in_the_bundle_exactly_while_it_has_an_unexpired_leaf() {
    let h = Harness::new().await;
    let gid = h.project("expiring").await;
    h.managed_user(&gid, "erin").await;
    let (status, text) = ext(&h, "GET", &gid, "ca", None).await;
    assert_eq!(status, 200, "the owner's read creates the CA: {text}");
    let first = h.store.get_active_ca(&gid).await.unwrap().unwrap().id;
    let now = chrono::Utc::now().timestamp();
    leaf_of(&h, &gid, first, 0x7e57_0000_0000_0101, now - 60).await;
    let (status, text) = ext(&h, "POST", &gid, "ca:rotate", None).await;
    assert_eq!(status, 201, "{text}");
    // Generation 1's only leaf has expired: nothing left to verify, so it is out.
    let (_, bundle) = ext(&h, "GET", &gid, "ca", None).await;
    assert_eq!(bundle_generations(&bundle), [2]);
    // One unexpired leaf brings it back (not retired, still needed).
    leaf_of(&h, &gid, first, 0x7e57_0000_0000_0102, now + 3_600).await;
    let (_, bundle) = ext(&h, "GET", &gid, "ca", None).await;
    assert_eq!(bundle_generations(&bundle), [1, 2]);
}
