//! An in-process dbcerts (router over a real SQLite file in a temp dir) and a Digest client
//! that answers challenges the way curl does.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dbcerts_ca::KeyAlgorithm;
use dbcerts_ca::pool::KeyPool;
use dbcerts_server::auth::digest;
use dbcerts_server::{AppState, ServerConfig};
use dbcerts_store::{SqliteStore, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const V2: &str = "application/vnd.atlas.2023-01-01+json";

pub struct Harness {
    pub app: Router,
    /// The metrics listener's application (`GET /metrics`), on the same state.
    pub metrics: Router,
    pub public_key: String,
    pub private_key: String,
    pub org_id: String,
    pub store: SqliteStore,
    pub dir: Arc<tempfile::TempDir>,
    /// The node's state, for what runs outside requests (CRL refresh).
    pub state: AppState,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub error_code: Option<String>,
    pub www_authenticate: Option<String>,
    /// Every response header (the golden snapshots record `Retry-After` and `Connection`).
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Harness {
    pub async fn new() -> Harness {
        Self::with_config(ServerConfig::default()).await
    }

    /// A fresh node (new database, new master key) with `config`.
    pub async fn with_config(config: ServerConfig) -> Harness {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let (_, key_text) = dbcerts_ca::sealing::MasterKey::generate();
        std::fs::write(dir.path().join("master.key.b64"), key_text.as_bytes()).unwrap();
        Self::node_with(dir, 300, config).await
    }

    /// A node on the database and master key in `dir` (the first one bootstraps it).
    pub async fn node(dir: Arc<tempfile::TempDir>, nonce_lifetime: i64) -> Harness {
        Self::node_with(dir, nonce_lifetime, ServerConfig::default()).await
    }

    /// Like [`Harness::node`], with `config` (its public URL and key algorithm are the
    /// harness's).
    pub async fn node_with(
        dir: Arc<tempfile::TempDir>,
        nonce_lifetime: i64,
        config: ServerConfig,
    ) -> Harness {
        let key_text = std::fs::read_to_string(dir.path().join("master.key.b64")).unwrap();
        let master = dbcerts_ca::sealing::MasterKey::from_base64(&key_text).unwrap();
        let store = SqliteStore::open(&dir.path().join("dbcerts.db"))
            .await
            .unwrap();
        dbcerts_server::secrets::verify_master_key(&store, &master)
            .await
            .unwrap();
        dbcerts_server::bootstrap::bootstrap_if_empty(&store, &master, dir.path())
            .await
            .unwrap();
        let creds: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("bootstrap-credentials.json")).unwrap(),
        )
        .unwrap();
        let nonce = dbcerts_server::secrets::nonce_key(&store, &master, nonce_lifetime)
            .await
            .unwrap();
        let pool = KeyPool::start(KeyAlgorithm::EcdsaP256, 0, 1);
        let config = ServerConfig {
            public_url: Some("https://dbcerts.example".into()),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            ..config
        };
        let shared: Arc<dyn Store> = Arc::new(store.clone());
        let state = AppState::new(shared, Arc::new(master), nonce, pool, config);
        Harness {
            metrics: dbcerts_server::metrics_router(state.clone()),
            app: dbcerts_server::router(state.clone()),
            public_key: creds["publicKey"].as_str().unwrap().into(),
            private_key: creds["privateKey"].as_str().unwrap().into(),
            org_id: creds["orgId"].as_str().unwrap().into(),
            store,
            dir,
            state,
        }
    }

    pub async fn raw(&self, mut req: Request<Body>) -> Reply {
        // As `serve` does, hand the router the peer address (access lists and throttling).
        let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let header_text = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let content_type = header_text("content-type").unwrap_or_default();
        let error_code = header_text("x-error-code");
        let www_authenticate = header_text("www-authenticate");
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            error_code,
            www_authenticate,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// One Digest-authenticated request: fetch a challenge, answer it as curl would.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        accept: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let challenge = self
            .raw(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
        self.call_as(
            &self.public_key,
            &self.private_key,
            method,
            uri,
            accept,
            body,
        )
        .await
    }

    /// Serves this node's application over a real socket on 127.0.0.1 (an ephemeral port), as
    /// `serve` does: its address, and the task to abort when done.
    pub async fn serve_on_loopback(
        &self,
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self
            .app
            .clone()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        (
            addr,
            tokio::spawn(async move { axum::serve(listener, app).await }),
        )
    }

    pub async fn nonce_of(&self, method: &str, uri: &str) -> String {
        let res = self
            .app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let www = res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        www.split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    }

    pub async fn v2(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.call(method, &format!("/api/atlas/v2{path}"), Some(V2), body)
            .await
    }

    pub async fn project(&self, name: &str) -> String {
        let r = self
            .v2(
                "POST",
                "/groups",
                Some(&format!(r#"{{"name":"{name}","orgId":"{}"}}"#, self.org_id)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        serde_json::from_str::<Value>(&r.text).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn managed_user(&self, gid: &str, username: &str) {
        let body = format!(
            r#"{{"databaseName":"$external","groupId":"{gid}","x509Type":"MANAGED","username":"{username}","roles":[{{"databaseName":"admin","roleName":"atlasAdmin"}}]}}"#
        );
        let r = self
            .v2("POST", &format!("/groups/{gid}/databaseUsers"), Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
}

/// The `nonce` parameter of a `WWW-Authenticate: Digest` challenge.
pub fn nonce_in(www: &str) -> String {
    www.split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

pub fn dir_of(h: &Harness) -> &Path {
    h.dir.path()
}

impl Harness {
    /// One Digest-authenticated request as the API key `public`/`private` (not necessarily the
    /// bootstrap key), answered the way curl answers the challenge.
    pub async fn call_as(
        &self,
        public: &str,
        private: &str,
        method: &str,
        uri: &str,
        accept: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let auth = self.authorization(public, private, method, uri).await;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, auth);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
        self.raw(req.body(body).unwrap()).await
    }

    /// The `Authorization` header with which the API key `public`/`private` answers a fresh
    /// Digest challenge for `method` `uri`, as curl answers it.
    pub async fn authorization(
        &self,
        public: &str,
        private: &str,
        method: &str,
        uri: &str,
    ) -> String {
        let nonce = self.nonce_of(method, uri).await;
        let creds = digest::Credentials {
            username: public.to_owned(),
            realm: digest::REALM.into(),
            nonce: nonce.clone(),
            uri: uri.into(),
            response: String::new(),
            algorithm: digest::Algorithm::Md5,
            cnonce: "0a4f113b".into(),
            nc: "00000001".into(),
        };
        let response = digest::expected_response(&creds, method, private);
        format!(
            "Digest username=\"{public}\", realm=\"{}\", nonce=\"{nonce}\", uri=\"{uri}\", cnonce=\"0a4f113b\", nc=00000001, qop=auth, response=\"{response}\", algorithm=MD5",
            digest::REALM
        )
    }
}
