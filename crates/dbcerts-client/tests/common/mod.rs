//! A real dbcerts server for the client tests: `dbcerts_server::router` over a SQLite file in
//! a temp dir, bootstrapped the way `dbcerts serve` does it, served with `axum::serve` on
//! 127.0.0.1:0 with connect info. A counting layer outside the router records what the client
//! made the server do (401 challenges, stale ones, token requests), per server.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Request;
use axum::middleware::Next;
use dbcerts_ca::KeyAlgorithm;
use dbcerts_ca::pool::KeyPool;
use dbcerts_client::{Client, Credentials, NewServiceAccount};
use dbcerts_server::{AccessConfig, AppState, ServerConfig};
use dbcerts_store::{SqliteStore, Store};
use serde_json::Value;

/// What the server was asked to do, counted at the socket's edge.
#[derive(Default, Debug)]
pub struct Counters {
    pub requests: AtomicUsize,
    /// Every 401 answer.
    pub unauthorized: AtomicUsize,
    /// 401 answers carrying a Digest challenge (`WWW-Authenticate`).
    pub challenges: AtomicUsize,
    /// 401 answers whose challenge says `stale=true`.
    pub stale: AtomicUsize,
    /// `POST /api/oauth/token` requests.
    pub token_requests: AtomicUsize,
}

impl Counters {
    pub fn unauthorized(&self) -> usize {
        self.unauthorized.load(Ordering::SeqCst)
    }
    pub fn challenges(&self) -> usize {
        self.challenges.load(Ordering::SeqCst)
    }
    pub fn stale(&self) -> usize {
        self.stale.load(Ordering::SeqCst)
    }
    pub fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Server settings the tests vary.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub nonce_lifetime_secs: i64,
    pub token_lifetime_secs: i64,
    /// Certificate requests per minute per caller (Atlas's figure when `None`).
    pub certs_per_minute: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nonce_lifetime_secs: 300,
            token_lifetime_secs: 3600,
            certs_per_minute: None,
        }
    }
}

pub struct TestServer {
    pub base_url: String,
    pub org_id: String,
    pub public_key: String,
    pub private_key: String,
    pub counters: Arc<Counters>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pool: Arc<KeyPool>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (master, _) = dbcerts_ca::sealing::MasterKey::generate();
        let store = SqliteStore::open(&dir.path().join("dbcerts.db"))
            .await
            .expect("open SQLite");
        dbcerts_server::secrets::verify_master_key(&store, &master)
            .await
            .expect("master key");
        dbcerts_server::bootstrap::bootstrap_if_empty(&store, &master, dir.path())
            .await
            .expect("bootstrap");
        let creds: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("bootstrap-credentials.json")).expect("credentials"),
        )
        .expect("credentials JSON");
        let nonce =
            dbcerts_server::secrets::nonce_key(&store, &master, options.nonce_lifetime_secs)
                .await
                .expect("nonce key");
        let pool = KeyPool::start(KeyAlgorithm::EcdsaP256, 0, 1);
        let config = ServerConfig {
            key_algorithm: KeyAlgorithm::EcdsaP256,
            access: {
                let mut access = AccessConfig {
                    token_lifetime_secs: options.token_lifetime_secs,
                    ..AccessConfig::default()
                };
                if let Some(n) = options.certs_per_minute {
                    access.rate_limits.certs = n;
                }
                access
            },
            ..ServerConfig::default()
        };
        let shared: Arc<dyn Store> = Arc::new(store);
        let state = AppState::new(shared, Arc::new(master), nonce, Arc::clone(&pool), config);
        let counters = Arc::new(Counters::default());
        let counting = Arc::clone(&counters);
        let app = dbcerts_server::router(state).layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let counters = Arc::clone(&counting);
                async move {
                    let token = req.uri().path() == "/api/oauth/token";
                    let res = next.run(req).await;
                    counters.requests.fetch_add(1, Ordering::SeqCst);
                    if token {
                        counters.token_requests.fetch_add(1, Ordering::SeqCst);
                    }
                    if res.status() == axum::http::StatusCode::UNAUTHORIZED {
                        counters.unauthorized.fetch_add(1, Ordering::SeqCst);
                        let challenge = res
                            .headers()
                            .get(axum::http::header::WWW_AUTHENTICATE)
                            .and_then(|v| v.to_str().ok());
                        if challenge.is_some() {
                            counters.challenges.fetch_add(1, Ordering::SeqCst);
                        }
                        if challenge.is_some_and(|v| v.contains("stale=true")) {
                            counters.stale.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    res
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        let text = |k: &str| creds[k].as_str().expect("credential field").to_owned();
        TestServer {
            base_url: format!("http://{addr}"),
            org_id: text("orgId"),
            public_key: text("publicKey"),
            private_key: text("privateKey"),
            counters,
            shutdown: Some(tx),
            pool,
            _dir: dir,
        }
    }

    /// A client authenticating with the bootstrap Organization Owner API key.
    pub fn digest_client(&self) -> Client {
        self.client(Credentials::api_key(
            self.public_key.clone(),
            self.private_key.clone(),
        ))
    }

    pub fn client(&self, credentials: Credentials) -> Client {
        Client::builder(&self.base_url)
            .credentials(credentials)
            .no_proxy()
            .build()
            .expect("client")
    }

    /// A new Organization Owner service account (created over Digest) and a client using it.
    pub async fn service_account_client(&self) -> (Client, Credentials) {
        self.service_account_with_role("ORG_OWNER").await
    }

    /// A new service account with organization role `role`, its credentials and a client.
    pub async fn service_account_with_role(&self, role: &str) -> (Client, Credentials) {
        let account = self
            .digest_client()
            .create_org_service_account(
                &self.org_id,
                &NewServiceAccount {
                    name: "ci robot".into(),
                    description: "client tests".into(),
                    roles: vec![role.into()],
                    secret_expires_after_hours: 24,
                },
            )
            .await
            .expect("create service account");
        let creds = account
            .credentials()
            .expect("the create response shows the secret");
        (self.client(creds.clone()), creds)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.pool.shutdown();
    }
}
