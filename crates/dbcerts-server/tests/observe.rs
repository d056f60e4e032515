//! The operator endpoints: `/health/live`, `/health/ready` (the API's router) and `/metrics`
//! (the metrics listener's router, never the API's), without credentials, over a real SQLite
//! file; every metric is read back by parsing the exposition text.
//!
//! The metrics recorder is process-wide, so the tests of this file take turns (`SERIAL`) and
//! compare counters before and after what they do.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::Harness;
use dbcerts_ca::KeyAlgorithm;
use dbcerts_ca::pool::KeyPool;
use dbcerts_server::{AppState, ServerConfig};
use dbcerts_store::{AuditEvent, AuditFilter, CertificateRecord, Page, Store};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CERTS_OP: &str = "POST /api/atlas/v2/groups/{groupId}/databaseUsers/{first}/certs";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

/// A request without credentials, from 127.0.0.1 as `serve` would see it.
async fn fetch(app: &axum::Router, method: &str, uri: &str) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// One exposition scrape, as `(name, labels) -> value`.
struct Scrape(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    async fn of(app: &axum::Router) -> Scrape {
        let a = fetch(app, "GET", "/metrics").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.headers["content-type"], "text/plain; version=0.0.4");
        Scrape::parse(&a.text)
    }

    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (
                    name.to_owned(),
                    parse_labels(rest.strip_suffix('}').expect("closing brace")),
                ),
            };
            let previous = samples.insert((name, labels), value);
            assert!(previous.is_none(), "series repeated: {line}");
        }
        Scrape(samples)
    }

    /// The value of one series, with exactly these labels; 0 when absent (a counter not yet
    /// incremented).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let labels: BTreeMap<_, _> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0.contains_key(&(name.to_owned(), labels))
    }
}

/// `k="v",k2="v2"` with the exposition format's escapes (`\\`, `\"`, `\n`).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {key} opens with a quote");
        let mut value = String::new();
        loop {
            match chars.next().expect("label value closes") {
                '"' => break,
                '\\' => match chars.next().expect("escape") {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

fn count(s: &Scrape, op: &str, status: &str) -> f64 {
    s.get(
        "dbcerts_http_requests_total",
        &[("operation", op), ("status", status)],
    )
}

async fn audit_len(h: &Harness) -> usize {
    h.store
        .list_audit(&AuditFilter::default(), 0, 10_000)
        .await
        .unwrap()
        .len()
}

/// The notAfter (Unix seconds) of the certificate that opens an issuing response's PEM.
fn not_after_of(response_pem: &str) -> i64 {
    let (_, pem) = x509_parser::pem::parse_x509_pem(response_pem.as_bytes()).expect("a PEM block");
    assert_eq!(pem.label, "CERTIFICATE");
    let cert = pem.parse_x509().expect("an X.509 certificate");
    cert.validity().not_after.timestamp()
}

/// What `dbcerts_certificates_expiring` says, `(7d, 30d)`, for certificates expiring at
/// `not_afters` when the scrape's clock reads `now`: as the store counts, a certificate
/// expiring at `now` is gone and one expiring at `now + window` is within it.
fn expected_expiring(not_afters: &[i64], now: i64) -> (f64, f64) {
    let within = |days: i64| {
        not_afters
            .iter()
            .filter(|&&na| na > now && na <= now + days * 86_400)
            .count() as f64
    };
    (within(7), within(30))
}

#[tokio::test]
async fn health_answers_without_credentials_and_reveals_nothing() {
    let _turn = SERIAL.lock().await;
    let h = Harness::new().await;
    let audited = audit_len(&h).await;
    for path in ["/health/live", "/health/ready"] {
        let a = fetch(&h.app, "GET", path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        assert_eq!(a.text, r#"{"status":"ok"}"#, "{path}");
        assert_eq!(a.headers["content-type"], "application/json", "{path}");
        assert_eq!(a.headers["cache-control"], "no-store", "{path}");
        // Not authenticated, not rate limited.
        assert!(!a.headers.contains_key("www-authenticate"), "{path}");
        assert!(!a.headers.contains_key("ratelimit-limit"), "{path}");
    }
    let m = fetch(&h.metrics, "GET", "/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(m.headers["cache-control"], "no-store");
    assert!(!m.headers.contains_key("ratelimit-limit"));
    // The API's address does not serve metrics (they name every organization's projects): it is
    // Atlas's 404 there. The metrics listener serves nothing else.
    let on_api = fetch(&h.app, "GET", "/metrics").await;
    assert_eq!(on_api.status, StatusCode::NOT_FOUND);
    assert_eq!(on_api.headers["x-error-code"], "RESOURCE_NOT_FOUND");
    assert!(!on_api.text.contains("dbcerts_"), "{}", on_api.text);
    for path in ["/health/live", "/api/atlas/v2/groups", "/"] {
        let a = fetch(&h.metrics, "GET", path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.headers["x-error-code"], "RESOURCE_NOT_FOUND", "{path}");
    }
    let post = fetch(&h.metrics, "POST", "/metrics").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    // Another method is Atlas's 405, not a framework body.
    let post = fetch(&h.app, "POST", "/health/live").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers["x-error-code"], "UNEXPECTED_ERROR");
    // Nothing was audited.
    assert_eq!(audit_len(&h).await, audited);
}

#[tokio::test]
async fn ready_turns_unavailable_when_the_store_is_closed() {
    let _turn = SERIAL.lock().await;
    let h = Harness::new().await;
    assert_eq!(
        fetch(&h.app, "GET", "/health/ready").await.status,
        StatusCode::OK
    );
    let before = Scrape::of(&h.metrics).await;
    assert_eq!(before.get("dbcerts_store_up", &[]), 1.0);

    h.store.close().await;
    assert!(
        h.store.ping().await.is_err(),
        "a closed store fails its ping"
    );
    // Within a second the earlier answer is reused (one ping per second, whatever the load);
    // after that the closed store shows.
    assert_eq!(
        fetch(&h.app, "GET", "/health/ready").await.status,
        StatusCode::OK,
        "the answer of a moment ago is reused"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ready = fetch(&h.app, "GET", "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text, r#"{"status":"unavailable"}"#);
    assert_eq!(ready.headers["cache-control"], "no-store");
    let live = fetch(&h.app, "GET", "/health/live").await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.text, r#"{"status":"ok"}"#);

    // /metrics still answers, and says the store is down.
    let after = Scrape::of(&h.metrics).await;
    assert_eq!(after.get("dbcerts_store_up", &[]), 0.0);
    let delta = |op: &str, status: &str| count(&after, op, status) - count(&before, op, status);
    assert_eq!(delta("GET /health/ready", "503"), 1.0);
    assert_eq!(delta("GET /health/ready", "200"), 1.0, "the reused answer");
    assert_eq!(delta("GET /health/live", "200"), 1.0);
}

#[tokio::test]
async fn metrics_count_requests_issuance_store_latency_and_expiry() {
    let _turn = SERIAL.lock().await;
    let h = Harness::new().await;
    let gid = h.project("observed").await;
    h.managed_user(&gid, "alice").await;
    let before = Scrape::of(&h.metrics).await;

    let certs = format!("/groups/{gid}/databaseUsers/alice/certs");
    // Each certificate's own notAfter, read from the PEM the server answered.
    let mut not_afters = Vec::new();
    for _ in 0..2 {
        let r = h
            .v2("POST", &certs, Some(r#"{"monthsUntilExpiration":1}"#))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        not_afters.push(not_after_of(&r.text));
    }
    // A certificate expiring in three days, written through the store directly (not metered).
    let now = chrono::Utc::now();
    let soon = CertificateRecord {
        serial: 0x7e57_0000_0000_0001,
        project_id: gid.clone(),
        username: "alice".into(),
        subject: "CN=alice".into(),
        not_before: now.timestamp() - 86_400,
        not_after: now.timestamp() + 3 * 86_400,
        created_ms: now.timestamp_millis(),
        cert_der: vec![0x30, 0x00],
        ca_id: h.store.get_active_ca(&gid).await.unwrap().unwrap().id,
        revocation: None,
    };
    let audit = AuditEvent {
        at_ms: now.timestamp_millis(),
        actor: "test".into(),
        source_ip: None,
        action: "certificate.issued".into(),
        project_id: Some(gid.clone()),
        target: Some("alice".into()),
        status: Some(201),
        details: "{}".into(),
    };
    h.store.insert_certificate(&soon, &audit).await.unwrap();
    not_afters.push(soon.not_after);
    assert_eq!(
        fetch(&h.app, "GET", "/health/live").await.status,
        StatusCode::OK
    );
    assert_eq!(
        fetch(&h.app, "GET", "/no/such/path").await.status,
        StatusCode::NOT_FOUND
    );
    // The expiry gauges count from the scrape's "now", which lies between these two.
    let scraped_from = chrono::Utc::now().timestamp();
    let after = Scrape::of(&h.metrics).await;
    let scraped_to = chrono::Utc::now().timestamp();
    let delta = |op: &str, status: &str| count(&after, op, status) - count(&before, op, status);

    // Requests, by route template and status: each Digest call is two 401s (challenge, nonce)
    // and the authenticated request.
    assert_eq!(delta(CERTS_OP, "201"), 2.0);
    assert_eq!(delta(CERTS_OP, "401"), 4.0);
    assert_eq!(delta("GET /health/live", "200"), 1.0);
    assert_eq!(delta("GET /metrics", "200"), 1.0, "the scrape before");
    assert_eq!(delta("unmatched", "404"), 1.0);
    let op_count = |s: &Scrape, op: &str| {
        s.get(
            "dbcerts_http_request_duration_seconds_count",
            &[("operation", op)],
        )
    };
    assert_eq!(
        op_count(&after, CERTS_OP) - op_count(&before, CERTS_OP),
        6.0
    );

    // Issuance, by project and algorithm (the harness issues ECDSA P-256 keys).
    let issued = [("group_id", gid.as_str()), ("algorithm", "ecdsa-p256")];
    assert_eq!(after.get("dbcerts_certificates_issued_total", &issued), 2.0);

    // The harness's pool holds no keys.
    assert_eq!(after.get("dbcerts_key_pool_keys", &[]), 0.0);

    // Store latency: the two certificates went through the metered store; the direct insert
    // did not. The expiry query ran once, for the second scrape.
    let store_count = |s: &Scrape, op: &str| {
        s.get(
            "dbcerts_store_operation_duration_seconds_count",
            &[("operation", op)],
        )
    };
    assert_eq!(
        store_count(&after, "commit_batch") - store_count(&before, "commit_batch"),
        2.0,
        "two certificates, each its call's only audit entry"
    );
    // Each POST made one journal write (the certificate with its audit entry), one after the
    // other, so each was a group commit of its own.
    let counter = |s: &Scrape, name: &str| s.get(name, &[]);
    for name in [
        "dbcerts_journal_commits_total",
        "dbcerts_journal_writes_total",
    ] {
        assert_eq!(
            counter(&after, name) - counter(&before, name),
            2.0,
            "{name}"
        );
    }
    assert_eq!(
        store_count(&after, "expiring_certificates")
            - store_count(&before, "expiring_certificates"),
        1.0
    );
    assert_eq!(
        after.get(
            "dbcerts_store_operation_duration_seconds_bucket",
            &[("operation", "commit_batch"), ("le", "+Inf")]
        ),
        store_count(&after, "commit_batch")
    );
    assert!(
        after.get(
            "dbcerts_store_operation_duration_seconds_sum",
            &[("operation", "commit_batch")]
        ) > 0.0
    );

    // Expiry: the three-day certificate is in both windows. A one-month certificate lives 28
    // to 31 days, so whether it is within 30 days depends on the month it was issued in
    // (issued on 7 December it expires on 7 January, 31 days later): the expected counts
    // come from the certificates' real notAfter, at every second the scrape may have read.
    let within = |s: &Scrape, w: &str| {
        s.get(
            "dbcerts_certificates_expiring",
            &[("group_id", gid.as_str()), ("within", w)],
        )
    };
    let got = (within(&after, "7d"), within(&after, "30d"));
    let allowed: Vec<(f64, f64)> = (scraped_from..=scraped_to)
        .map(|now| expected_expiring(&not_afters, now))
        .collect();
    assert!(
        allowed.contains(&got),
        "{got:?}, expected one of {allowed:?}"
    );
    assert_eq!(got.0, 1.0, "the three-day certificate, and only it");
    assert_eq!(after.get("dbcerts_store_up", &[]), 1.0);

    // A project that disappears is set to zero, not left at its last value.
    assert!(h.store.delete_project(&gid).await.unwrap());
    let gone = Scrape::of(&h.metrics).await;
    assert!(gone.has(
        "dbcerts_certificates_expiring",
        &[("group_id", gid.as_str()), ("within", "7d")]
    ));
    assert_eq!(within(&gone, "7d"), 0.0);
    assert_eq!(within(&gone, "30d"), 0.0);
}

#[tokio::test]
async fn the_pool_gauge_shows_the_keys_ready() {
    let _turn = SERIAL.lock().await;
    let h = Harness::new().await;
    let key_text = std::fs::read_to_string(h.dir.path().join("master.key.b64")).unwrap();
    let master = dbcerts_ca::sealing::MasterKey::from_base64(&key_text).unwrap();
    let nonce = dbcerts_server::secrets::nonce_key(&h.store, &master, 300)
        .await
        .unwrap();
    let pool = KeyPool::start(KeyAlgorithm::EcdsaP256, 3, 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pool.stats().depth < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool fills in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let config = ServerConfig {
        key_algorithm: KeyAlgorithm::EcdsaP256,
        ..ServerConfig::default()
    };
    let store: Arc<dyn Store> = Arc::new(h.store.clone());
    let app = dbcerts_server::metrics_router(AppState::new(
        store,
        Arc::new(master),
        nonce,
        Arc::clone(&pool),
        config,
    ));
    assert_eq!(
        Scrape::of(&app).await.get("dbcerts_key_pool_keys", &[]),
        3.0
    );
    // Read at every scrape: a stopped pool drops its keys.
    pool.shutdown();
    assert_eq!(
        Scrape::of(&app).await.get("dbcerts_key_pool_keys", &[]),
        0.0
    );
}

/// The same endpoints over a real socket on 127.0.0.1, through `axum::serve`.
#[tokio::test]
async fn live_over_real_http() {
    let _turn = SERIAL.lock().await;
    let h = Harness::new().await;
    let (addr, server) = h.serve_on_loopback().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    server.abort();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\ncache-control: no-store"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    assert_eq!(body, r#"{"status":"ok"}"#);
}

/// The SQLite store's reads on the calling thread that went to sqlx instead are counted on
/// `/metrics`: a page deep enough to go over its step budget (20,000 certificates, the last
/// page) is handed off, and the scrape shows it.
#[tokio::test]
async fn thread_side_reads_handed_to_sqlx_are_counted() {
    let _turn = SERIAL.lock().await;
    let h = Harness::new().await;
    let gid = h.project("deep").await;
    h.managed_user(&gid, "alice").await;
    let url = format!("sqlite://{}", h.dir.path().join("dbcerts.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after,
                                   created_ms, cert)
         SELECT 1000000 + i, $1, 'alice', 'CN=alice', $2, $3, i, x'3000' FROM n",
    )
    .bind(&gid)
    .bind(now - 60)
    .bind(now + 86_400)
    .execute(&db)
    .await
    .unwrap();
    db.close().await;

    let metric = "dbcerts_store_thread_reads_handed_off_total";
    let before = Scrape::of(&h.metrics).await.get(metric, &[]);
    let last_page = Page {
        offset: 19_900,
        limit: 100,
    };
    let (page, total) = h
        .store
        .list_unexpired_certificates(&gid, "alice", now, last_page)
        .await
        .unwrap();
    assert_eq!((page.len(), total), (100, 20_000));
    assert_eq!(page[99].serial, 1_020_000);
    let after = Scrape::of(&h.metrics).await;
    assert_eq!(after.get(metric, &[]), before + 1.0);
    for zero in [
        "dbcerts_store_thread_read_fallbacks_total",
        "dbcerts_store_writer_fallbacks_total",
    ] {
        assert_eq!(after.get(zero, &[]), 0.0, "{zero}");
    }
}
