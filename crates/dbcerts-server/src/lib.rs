//! The Atlas wire layer of dbcerts: one handler per Atlas operationId, Atlas's errors, version
//! negotiation, envelope/pretty/pagination/links, and authentication.
//!
//! This crate never writes SQL (it talks to [`dbcerts_store::Store`]) and never builds
//! certificates by hand (it calls [`dbcerts_ca`]).

pub mod auth;
pub mod body;
pub mod bootstrap;
pub mod ca_service;
pub mod error;
pub mod format;
mod http;
pub mod links;
pub mod params;
mod routes;
pub mod secrets;

use std::sync::Arc;

use dbcerts_ca::pool::KeyPool;
use dbcerts_ca::sealing::MasterKey;
use dbcerts_ca::{KeyAlgorithm, ManagedCaParams};
use dbcerts_store::Store;

pub use auth::digest::NonceKey;
pub use ca_service::CaService;
pub use http::{SHUTDOWN_GRACE, router};

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base URL for absolute links (`https://dbcerts.example.com`); when unset, links are built
    /// from the request's `Host` header over `http`.
    pub public_url: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    pub ca_names: ManagedCaParams,
    /// Atlas allows 100 database users per project.
    pub max_database_users_per_project: u64,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: None,
            key_algorithm: KeyAlgorithm::Rsa4096,
            ca_names: ManagedCaParams::default(),
            max_database_users_per_project: 100,
            body_limit: 1024 * 1024,
        }
    }
}

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub master: Arc<MasterKey>,
    pub nonce_key: NonceKey,
    pub nonce_counts: auth::digest::NonceCounts,
    pub pool: Arc<KeyPool>,
    pub ca: CaService,
    pub config: ServerConfig,
    /// A sealed throw-away secret, opened for unknown API keys so that they take as long as
    /// known ones.
    pub dummy_sealed_key: Vec<u8>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        nonce_key: NonceKey,
        pool: Arc<KeyPool>,
        config: ServerConfig,
    ) -> AppState {
        let ca = CaService::new(
            Arc::clone(&store),
            Arc::clone(&master),
            config.ca_names.clone(),
            config.key_algorithm,
        );
        let dummy_sealed_key =
            master.seal(b"00000000-0000-0000-0000-000000000000", "api-key:dummy");
        AppState {
            inner: Arc::new(Inner {
                store,
                master,
                nonce_counts: auth::digest::NonceCounts::new(nonce_key.lifetime_secs()),
                nonce_key,
                pool,
                ca,
                config,
                dummy_sealed_key,
            }),
        }
    }

    pub fn pool(&self) -> &Arc<KeyPool> {
        &self.inner.pool
    }
}
