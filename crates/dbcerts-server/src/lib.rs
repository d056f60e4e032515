//! The Atlas wire layer of dbcerts: one handler per Atlas operationId, Atlas's errors, version
//! negotiation, envelope/pretty/pagination/links, and authentication.
//!
//! This crate never writes SQL (it talks to [`dbcerts_store::Store`]) and never builds
//! certificates by hand (it calls [`dbcerts_ca`]).

pub mod auth;
pub mod body;
pub mod bootstrap;
pub mod ca_service;
pub mod cached_store;
pub mod crl;
pub mod error;
pub mod format;
pub mod head_limits;
mod http;
pub mod issuance;
pub mod journal;
pub mod links;
pub mod metered_store;
pub mod observe;
pub mod openapi;
pub mod params;
pub(crate) mod routes;
pub mod secrets;
pub mod values;

/// The request body of each operation, exactly as its handler parses it (with
/// [`body::parse_json`], or [`request_bodies::parse_json_array`] for array bodies), for the fuzz
/// targets and property tests; fields the handlers alone use stay private.
pub mod request_bodies {
    pub use crate::routes::{
        AccountIn, CustomerX509In, EntryIn, GroupIn, KeyIn, LabelIn, LdapIn, MappingIn,
        ResourceTag, RevokeIn, RoleIn, ScopeIn, UserCertIn, UserIn, UserSecurityIn,
        parse_json_array,
    };
}

use std::sync::Arc;

use dbcerts_ca::pool::KeyPool;
use dbcerts_ca::sealing::MasterKey;
use dbcerts_ca::{KeyAlgorithm, ManagedCaParams};
use dbcerts_store::Store;

pub use auth::digest::NonceKey;
pub use auth::roles::{Caller, OrgNeed, ProjectRole};
pub use ca_service::{CaService, ProjectCa};
pub use http::{SHUTDOWN_GRACE, metrics_router, router};
pub use routes::ocsp::OcspConfig;

/// A CA generation as the API shows it (`GET .../cas`), for the CLI to print the same JSON.
pub fn generation_json(g: ca_service::Generation) -> serde_json::Value {
    serde_json::to_value(routes::ca_generations::GenerationOut::from(g))
        .expect("a generation serializes")
}

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base URL for absolute links (`https://dbcerts.example.com`); when unset, links are built
    /// from the request's `Host` header, over `https` when `tls` is set.
    pub public_url: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    pub ca_names: ManagedCaParams,
    /// Atlas allows 100 database users per project.
    pub max_database_users_per_project: u64,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The longest a client may take to send a request body; slower bodies get 408.
    pub body_timeout: std::time::Duration,
    /// Token lifetimes, rate limits and failed-authentication throttling.
    pub access: AccessConfig,
    /// Whether the API itself is served over TLS (links built from `Host` then use `https`).
    pub tls: bool,
    /// Where Digest nonce counts are kept to refuse replays: each node, or the shared store.
    pub digest_replay_check: auth::digest::ReplayCheck,
    /// CRL validity and refresh.
    pub crl: crl::CrlConfig,
    /// A project CA is rotated before signing a leaf that would end less than this many days
    /// before it (`ca-rotation-margin-days`).
    pub ca_rotation_margin_days: u32,
    /// Certificate revocation: what deleting a user does, and what "expiring" means.
    pub revocation: RevocationConfig,
    /// The OCSP responder: the URL put on leaves, answer lifetime, rate limit.
    pub ocsp: OcspConfig,
}

/// Revocation settings (`routes::revocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationConfig {
    /// Deleting a MANAGED x.509 user revokes its unexpired certificates
    /// (`cessationOfOperation`). Default true.
    pub revoke_on_user_delete: bool,
    /// The status list calls a valid certificate EXPIRING when it expires within this many
    /// seconds. Default 30 days.
    pub expiring_within_secs: i64,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            revoke_on_user_delete: true,
            expiring_within_secs: 30 * 86_400,
        }
    }
}

/// Limits of the access-control layer. The defaults are Atlas's figures
/// (`../shared/atlas/BEHAVIOUR.md` §1.6 and §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Lifetime of OAuth access tokens (Atlas: one hour).
    pub token_lifetime_secs: i64,
    /// `POST /api/oauth/token` requests per minute per client and address (Atlas: 50).
    pub token_requests_per_minute: u32,
    /// Requests per minute per caller to each endpoint group.
    pub rate_limits: RateLimits,
    /// Failed authentications from one address claiming one principal, within
    /// `auth_failure_window_secs`, after which each further failure is answered more slowly.
    pub auth_failures_before_delay: u32,
    /// Failed authentications from one address claiming one principal, within the window,
    /// after which that principal is refused from that address with 429 for
    /// `auth_lockout_secs`; other principals' credentials from the address still get in.
    pub auth_failures_before_lockout: u32,
    /// Failed authentications from one address whatever it claims, within the window, after
    /// which the whole address is refused with 429 for `auth_lockout_secs` (spraying).
    pub auth_failures_per_address_before_lockout: u32,
    pub auth_failure_window_secs: i64,
    pub auth_lockout_secs: i64,
}

/// Requests per minute per caller, by endpoint group (observed Atlas limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub certs: u32,
    pub database_users: u32,
    pub user_security: u32,
    pub groups: u32,
    pub orgs: u32,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            token_lifetime_secs: 3600,
            token_requests_per_minute: 50,
            rate_limits: RateLimits {
                certs: 1200,
                database_users: 10_000,
                user_security: 1200,
                groups: 1200,
                orgs: 1200,
            },
            auth_failures_before_delay: 10,
            auth_failures_before_lockout: 100,
            auth_failures_per_address_before_lockout: 1000,
            auth_failure_window_secs: 300,
            auth_lockout_secs: 600,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: None,
            key_algorithm: KeyAlgorithm::Rsa4096,
            ca_names: ManagedCaParams::default(),
            max_database_users_per_project: 100,
            body_limit: 1024 * 1024,
            body_timeout: std::time::Duration::from_secs(30),
            access: AccessConfig::default(),
            tls: false,
            digest_replay_check: auth::digest::ReplayCheck::Node,
            crl: crl::CrlConfig::default(),
            ca_rotation_margin_days: ca_service::DEFAULT_ROTATION_MARGIN_DAYS,
            revocation: RevocationConfig::default(),
            ocsp: OcspConfig::default(),
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
    /// The CAs opened for signing CRLs.
    pub crl: crl::CrlSigners,
    pub journal: journal::Journal,
    pub config: ServerConfig,
    /// A sealed throw-away secret, opened for unknown API keys so that they take as long as
    /// known ones.
    pub dummy_sealed_key: Vec<u8>,
    pub tokens: auth::oauth::TokenKey,
    pub limits: auth::throttle::Limits,
    pub observer: observe::Observer,
    pub ocsp: routes::ocsp::Responder,
    /// Requests per address to the CRL distribution URL.
    pub crl_distribution_limiter: auth::throttle::AddressLimiter,
}

impl AppState {
    /// The state of one server. `store` is wrapped in a [`metered_store::MeteredStore`], so every
    /// store call a handler makes is timed; the process's metrics recorder is installed on first
    /// use. No read cache: every read asks the store (see [`AppState::with_cache`]).
    pub fn new(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        nonce_key: NonceKey,
        pool: Arc<KeyPool>,
        config: ServerConfig,
    ) -> AppState {
        Self::with_cache(store, master, nonce_key, pool, config, None)
    }

    /// As [`AppState::new`], and with `cache`, the metered store is wrapped once more in a
    /// [`cached_store::CachedStore`] that serves the per-request reads from it.
    pub fn with_cache(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        nonce_key: NonceKey,
        pool: Arc<KeyPool>,
        config: ServerConfig,
        cache: Option<cached_store::StoreCache>,
    ) -> AppState {
        let observer = observe::Observer::new();
        let mut store: Arc<dyn Store> = Arc::new(metered_store::MeteredStore::new(store));
        if let Some(cache) = cache {
            store = Arc::new(cached_store::CachedStore::new(store, cache));
        }
        let ca = CaService::new(
            Arc::clone(&store),
            Arc::clone(&master),
            config.ca_names.clone(),
            config.key_algorithm,
        )
        .with_rotation_margin_days(config.ca_rotation_margin_days);
        let dummy_sealed_key =
            master.seal(b"00000000-0000-0000-0000-000000000000", "api-key:dummy");
        let tokens = auth::oauth::TokenKey::new(
            &nonce_key.derive(b"dbcerts oauth access-token signing key v1"),
            config.access.token_lifetime_secs,
        );
        let limits = auth::throttle::Limits::new(&config.access);
        let journal = journal::Journal::new(Arc::clone(&store));
        let ocsp = routes::ocsp::Responder::new(&config.ocsp);
        let config_crl_rate = config.crl.distribution_requests_per_minute;
        let nonce_counts = match config.digest_replay_check {
            auth::digest::ReplayCheck::Node => {
                auth::digest::NonceCounts::new(nonce_key.lifetime_secs())
            }
            auth::digest::ReplayCheck::Store => {
                auth::digest::NonceCounts::shared(nonce_key.lifetime_secs(), journal.clone())
            }
        };
        AppState {
            inner: Arc::new(Inner {
                store,
                master,
                nonce_counts,
                nonce_key,
                pool,
                ca,
                crl: crl::CrlSigners::default(),
                journal,
                config,
                dummy_sealed_key,
                tokens,
                limits,
                observer,
                ocsp,
                crl_distribution_limiter: auth::throttle::AddressLimiter::new(config_crl_rate),
            }),
        }
    }

    pub fn pool(&self) -> &Arc<KeyPool> {
        &self.inner.pool
    }
}
