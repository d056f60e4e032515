//! Serving over real sockets, in-process: HTTPS with a reloadable certificate, the peer address
//! handlers see in both modes, idle connections making room at the limit, and the graceful
//! drain. A rustls client speaks to the server;
//! the black-box suite (tests/blackbox/test_tls.py) adds curl, Python and SIGHUP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use dbcerts::app::{ConnectionLimits, TlsCertificate, serve_router};
use dbcerts::config::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost.
struct Pki {
    ca_der: CertificateDer<'static>,
    server_cert_pem: String,
    server_key_pem: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_der: ca_cert.der().clone(),
        server_cert_pem: leaf.pem() + &ca_cert.pem(),
        server_key_pem: key.serialize_pem(),
    }
}

fn install(pki: &Pki, dir: &Path) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.cert, &pki.server_cert_pem).unwrap();
    std::fs::write(&files.key, &pki.server_key_pem).unwrap();
    files
}

fn trusting(ca: &CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A router whose handlers need what the real one will: the peer address.
fn router() -> Router {
    Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "done"
            }),
        )
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start(tls: Option<TlsCertificate>) -> Running {
    start_with(tls, ConnectionLimits::default()).await
}

async fn start_with(tls: Option<TlsCertificate>, limits: ConnectionLimits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_router(listener, router(), tls, limits, async {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

impl Running {
    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

/// Sends one keep-alive HTTP/1.1 GET and returns the status line and the body.
async fn get_on<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut S, path: &str) -> (String, String) {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "connection closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, String::from_utf8(body).unwrap())
}

async fn handshake(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn plain_http_gives_handlers_the_peer_address() {
    let server = start(None).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    let me = conn.local_addr().unwrap();
    let (status, body) = get_on(&mut conn, "/peer").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, me.to_string());
    drop(conn);
    server.shut_down().await;
}

#[tokio::test]
async fn https_gives_handlers_the_peer_address_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki("first");
    let tls = TlsCertificate::load(&install(&ca, dir.path())).unwrap();
    let server = start(Some(tls)).await;

    let mut conn = handshake(&trusting(&ca.ca_der), server.addr).await.unwrap();
    let me = conn.get_ref().0.local_addr().unwrap();
    let (status, body) = get_on(&mut conn, "/peer").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, me.to_string());

    let stranger = pki("stranger");
    let err = handshake(&trusting(&stranger.ca_der), server.addr)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    drop(conn);
    server.shut_down().await;
}

#[tokio::test]
async fn reload_changes_new_handshakes_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki("first");
    let files = install(&first, dir.path());
    let tls = TlsCertificate::load(&files).unwrap();
    let server = start(Some(tls.clone())).await;

    let mut old = handshake(&trusting(&first.ca_der), server.addr)
        .await
        .unwrap();
    assert_eq!(get_on(&mut old, "/peer").await.0, "HTTP/1.1 200 OK");

    let second = pki("second");
    install(&second, dir.path());
    tls.reload().unwrap();

    assert_eq!(
        get_on(&mut old, "/peer").await.0,
        "HTTP/1.1 200 OK",
        "the connection made before the reload still works"
    );
    let mut new = handshake(&trusting(&second.ca_der), server.addr)
        .await
        .expect("a client trusting the new CA connects");
    assert_eq!(get_on(&mut new, "/peer").await.0, "HTTP/1.1 200 OK");
    assert!(
        handshake(&trusting(&first.ca_der), server.addr)
            .await
            .is_err(),
        "new handshakes no longer get the old certificate"
    );

    // A broken file: the reload fails and the current certificate stays.
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
    assert!(tls.reload().is_err());
    let mut after = handshake(&trusting(&second.ca_der), server.addr)
        .await
        .expect("the certificate from before the failed reload is still served");
    assert_eq!(get_on(&mut after, "/peer").await.0, "HTTP/1.1 200 OK");

    drop((old, new, after));
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki("drain");
    let tls = TlsCertificate::load(&install(&ca, dir.path())).unwrap();
    let server = start(Some(tls)).await;
    let mut conn = handshake(&trusting(&ca.ca_der), server.addr).await.unwrap();
    let request = tokio::spawn(async move { get_on(&mut conn, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = server.addr;
    server.shut_down().await;
    assert_eq!(
        request.await.unwrap(),
        ("HTTP/1.1 200 OK".to_owned(), "done".to_owned())
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// Whether the server has closed `conn` (end of stream, or an error for a TLS stream ended
/// without close_notify).
async fn closed<S: AsyncRead + Unpin>(conn: &mut S) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), conn.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// `what`, which must not wait for a slot to be freed by a timeout.
async fn let_in<F: std::future::Future>(what: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), what)
        .await
        .expect("the newcomer is let in")
}

/// At the connection limit, the idle keep-alive connection makes room for a new client, over
/// TLS and plain HTTP alike, and the connection serving a request is left to finish it.
#[tokio::test]
async fn at_the_limit_an_idle_connection_makes_room_and_a_busy_one_finishes() {
    // No timeout frees a slot within the test: only making room can let the newcomer in.
    let limits = ConnectionLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(600),
        ..ConnectionLimits::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = pki("room");
    let tls = TlsCertificate::load(&install(&ca, dir.path())).unwrap();
    let connector = trusting(&ca.ca_der);

    let server = start_with(Some(tls), limits).await;
    let mut idle = handshake(&connector, server.addr).await.unwrap();
    assert_eq!(get_on(&mut idle, "/peer").await.0, "HTTP/1.1 200 OK");
    let mut busy = handshake(&connector, server.addr).await.unwrap();
    // The busy connection stays open after its request.
    let slow = tokio::spawn(async move { (get_on(&mut busy, "/slow").await, busy) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut newcomer = let_in(handshake(&connector, server.addr)).await.unwrap();
    assert_eq!(get_on(&mut newcomer, "/peer").await.0, "HTTP/1.1 200 OK");
    assert!(closed(&mut idle).await, "the idle connection made room");
    let (answer, busy) = slow.await.unwrap();
    assert_eq!(answer, ("HTTP/1.1 200 OK".to_owned(), "done".to_owned()));
    drop((newcomer, busy));
    server.shut_down().await;

    let server = start_with(None, limits).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get_on(&mut idle, "/peer").await.0, "HTTP/1.1 200 OK");
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    // The busy connection stays open after its request.
    let slow = tokio::spawn(async move { (get_on(&mut busy, "/slow").await, busy) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut newcomer = TcpStream::connect(server.addr).await.unwrap();
    let me = newcomer.local_addr().unwrap();
    assert_eq!(
        let_in(get_on(&mut newcomer, "/peer")).await,
        ("HTTP/1.1 200 OK".to_owned(), me.to_string())
    );
    assert!(closed(&mut idle).await, "the idle connection made room");
    let (answer, busy) = slow.await.unwrap();
    assert_eq!(answer, ("HTTP/1.1 200 OK".to_owned(), "done".to_owned()));
    drop((newcomer, busy));
    server.shut_down().await;
}
