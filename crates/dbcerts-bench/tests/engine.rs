//! The load engine against tiny in-process axum servers on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dbcerts_bench::{Auth, Expect, LoadSpec, Method, Target, run};
use digest_auth::{AuthContext, AuthorizationHeader, HttpMethod as DigestMethod};

const BODY_LEN: usize = 1234;

fn fixed_body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn spec_for(addr: SocketAddr, path: &str) -> LoadSpec {
    LoadSpec {
        concurrency: 4,
        requests: 200,
        warmup: 20,
        ..LoadSpec::new(
            Target::NginxStatic,
            Method::GET,
            format!("http://{addr}{path}"),
        )
    }
}

#[tokio::test]
async fn measures_a_fixed_body() {
    let app = Router::new()
        .route("/fixed", get(|| async { fixed_body() }))
        .route(
            "/close",
            get(|| async { ([(header::CONNECTION, "close")], fixed_body()) }),
        );
    let addr = serve(app).await;

    let spec = LoadSpec {
        server_pid: Some(std::process::id()),
        expect: Expect {
            body_equals: Some(fixed_body()),
            ..Expect::status(200)
        },
        ..spec_for(addr, "/fixed")
    };
    let r = run(&spec).await.unwrap();
    assert_eq!(r.requests, 200);
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.first_error, None);
    assert_eq!(r.bytes_received, 200 * BODY_LEN as u64);
    assert_eq!(r.status_counts.get(&200), Some(&200));
    assert_eq!(r.reconnects, 0);
    let l = r.latency_ms;
    assert!(0.0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    assert!(r.duration_s > 0.0 && r.throughput_rps > 0.0);
    let rss = r.server_rss_kib.unwrap();
    assert!(0 < rss.start && rss.start <= rss.peak);
    assert_eq!(r.method, "GET");
    assert_eq!(r.label, "nginx-static GET /fixed");
    chrono::DateTime::parse_from_rfc3339(&r.started_at).unwrap();
    // The JSON result round-trips (floats up to serde_json's last-digit rounding).
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"target\":\"nginx-static\""));
    let back: dbcerts_bench::LoadResult = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (back.requests, back.bytes_received, back.server_rss_kib),
        (r.requests, r.bytes_received, r.server_rss_kib)
    );
    assert!((back.throughput_rps - r.throughput_rps).abs() < 1e-6);
    assert_eq!(back.machine, r.machine);

    // A server that closes every connection: the workers reconnect and carry on.
    let r = run(&LoadSpec {
        requests: 40,
        warmup: 0,
        ..spec_for(addr, "/close")
    })
    .await
    .unwrap();
    assert_eq!((r.requests, r.errors), (40, 0), "{:?}", r.first_error);
    assert!(r.reconnects >= 30, "{} reconnects", r.reconnects);
}

#[tokio::test]
async fn counts_unexpected_statuses_and_bodies() {
    let app = Router::new()
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/ok", get(|| async { "other bytes" }));
    let addr = serve(app).await;

    let r = run(&spec_for(addr, "/fail")).await.unwrap();
    assert_eq!((r.requests, r.errors), (200, 200));
    assert_eq!(r.status_counts.get(&500), Some(&200));
    let first = r.first_error.unwrap();
    assert!(
        first.contains("status 500") && first.contains("boom"),
        "{first}"
    );

    let r = run(&LoadSpec {
        expect: Expect {
            body_equals: Some(fixed_body()),
            ..Expect::status(200)
        },
        ..spec_for(addr, "/ok")
    })
    .await
    .unwrap();
    assert_eq!(r.errors, 200);
}

#[tokio::test]
async fn refuses_bad_specs() {
    let mut s = LoadSpec::new(Target::Dbcerts, Method::GET, "http://10.1.2.3:8080/");
    assert!(run(&s).await.is_err());
    s.url = "http://127.0.0.1:1/".into();
    // Nothing listens on port 1: the run fails before measuring anything.
    assert!(run(&s).await.is_err());
    s.concurrency = 0;
    assert!(run(&s).await.is_err());
}

/// A Digest server that insists on nonce reuse: each nonce must be answered with counts 1, 2,
/// 3, ... in order, from the connection it was first used on; after `STALE_AFTER` uses it is
/// declared stale.
#[derive(Default)]
struct DigestServer {
    issued: u64,
    /// nonce -> (connection that uses it, last nc)
    nonces: HashMap<String, (Option<SocketAddr>, u32)>,
    successes: u64,
}

const STALE_AFTER: u32 = 30;
const PASSWORD: &str = "private-key";

fn challenge(state: &mut DigestServer, stale: bool) -> Response {
    state.issued += 1;
    let nonce = format!("nonce-{}", state.issued);
    state.nonces.insert(nonce.clone(), (None, 0));
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            format!(
                "Digest realm=\"test\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", \
                 stale={stale}"
            ),
        )],
    )
        .into_response()
}

async fn digest_handler(
    State(state): State<Arc<Mutex<DigestServer>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: HttpMethod,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return challenge(&mut state, false);
    };
    let answer = AuthorizationHeader::parse(value.to_str().unwrap()).unwrap();
    let refuse = |why: String| (StatusCode::FORBIDDEN, why).into_response();
    if answer.uri != uri.to_string() {
        return refuse(format!("uri {} for {uri}", answer.uri));
    }
    let Some((owner, last_nc)) = state.nonces.get_mut(&answer.nonce) else {
        return refuse(format!("unknown nonce {}", answer.nonce));
    };
    if *owner.get_or_insert(peer) != peer {
        return refuse(format!(
            "nonce {} moved to another connection",
            answer.nonce
        ));
    }
    if answer.nc != *last_nc + 1 {
        return refuse(format!("nc {} after {last_nc}", answer.nc));
    }
    *last_nc = answer.nc;
    // Recompute the response.
    let mut prompt = digest_auth::parse(&format!(
        "Digest realm=\"test\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
        answer.nonce
    ))
    .unwrap();
    prompt.nc = answer.nc - 1;
    let mut context = AuthContext::new_with_method(
        answer.username.as_str(),
        PASSWORD,
        answer.uri.as_str(),
        Option::<&[u8]>::None,
        DigestMethod::from(method.as_str()),
    );
    context.set_custom_cnonce(answer.cnonce.clone().unwrap());
    if answer.username != "public-key"
        || prompt.respond(&context).unwrap().response != answer.response
    {
        return refuse("wrong credentials".into());
    }
    if answer.nc > STALE_AFTER {
        return challenge(&mut state, true);
    }
    state.successes += 1;
    (
        StatusCode::CREATED,
        "-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n",
    )
        .into_response()
}

#[tokio::test]
async fn digest_reuses_nonces_per_connection() {
    let state = Arc::new(Mutex::new(DigestServer::default()));
    let app = Router::new()
        .route("/api/certs", post(digest_handler))
        .with_state(Arc::clone(&state));
    let addr = serve(app).await;

    let spec = LoadSpec {
        concurrency: 4,
        requests: 200,
        warmup: 8,
        auth: Auth::Digest {
            username: "public-key".into(),
            password: PASSWORD.into(),
        },
        body: Some(b"{}".to_vec()),
        headers: vec![("Content-Type".into(), "application/json".into())],
        ..LoadSpec::new(
            Target::Dbcerts,
            Method::POST,
            format!("http://{addr}/api/certs?pretty=false"),
        )
    };
    let r = run(&spec).await.unwrap();
    assert_eq!((r.requests, r.errors), (200, 0), "{:?}", r.first_error);
    let server = state.lock().unwrap();
    assert_eq!(server.successes, 208);
    // One challenge per worker, then one per STALE_AFTER requests on each worker's nonce.
    assert_eq!(r.auth_challenges, server.issued);
    // 208 requests on 4 workers: one worker sent more than STALE_AFTER, so the stale path ran.
    assert!(
        (5..=4 + 208 / u64::from(STALE_AFTER) + 4).contains(&server.issued),
        "{} challenges for 208 requests",
        server.issued
    );
    // Nonces were reused up to the stale limit.
    assert!(server.nonces.values().any(|(_, nc)| *nc > STALE_AFTER / 2));
}

#[tokio::test]
async fn wrong_digest_password_is_an_error_not_a_loop() {
    let state = Arc::new(Mutex::new(DigestServer::default()));
    let app = Router::new()
        .route("/api/certs", post(digest_handler))
        .with_state(Arc::clone(&state));
    let addr = serve(app).await;
    let r = run(&LoadSpec {
        concurrency: 2,
        requests: 10,
        auth: Auth::Digest {
            username: "public-key".into(),
            password: "wrong".into(),
        },
        ..LoadSpec::new(
            Target::Dbcerts,
            Method::POST,
            format!("http://{addr}/api/certs"),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.errors, 10);
    assert_eq!(r.status_counts.get(&403), Some(&10));
}
