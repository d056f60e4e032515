//! Startup, serving and shutdown, as a builder tests can call. Serving speaks plain HTTP or,
//! with a certificate, HTTPS ([`tls`]); either way handlers see the peer address as
//! `ConnectInfo<SocketAddr>`.

pub mod connections;
pub mod data_dir;
pub mod tls;

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use anyhow::Context;
use axum_server::tls_rustls::RustlsAcceptor;
use dbcerts_ca::pool::KeyPool;
use std::path::Path;

use dbcerts_server::cached_store::{Coherence, StoreCache, follow_changes};
use dbcerts_server::head_limits;
use dbcerts_server::secrets::{MasterKeySource, load_master_key, nonce_key, verify_master_key};
use dbcerts_server::{AppState, SHUTDOWN_GRACE, ServerConfig};
use dbcerts_store::{Backend, redact_url};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Settings;
pub use connections::ConnectionLimits;
use connections::{ConnectionRouter, LimitedListener, Peer};
pub use tls::TlsCertificate;

/// An opened store and master key, ready to serve.
pub struct App {
    pub settings: Settings,
    pub store: Backend,
    pub state: AppState,
    /// The read cache's PostgreSQL change listener, stopped when the app is dropped.
    cache_listener: Option<AbortOnDrop>,
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The read cache for `store` (none when `cache-ttl-seconds` is 0), and on PostgreSQL the task
/// that keeps it true to the other nodes' writes (docs/ARCHITECTURE.md, "Read cache").
fn read_cache(settings: &Settings, store: &Backend) -> (Option<StoreCache>, Option<AbortOnDrop>) {
    if settings.cache.ttl.is_zero() {
        return (None, None);
    }
    let coherence = match store {
        Backend::Sqlite(s) => Coherence::Version(s.clone()),
        Backend::Postgres(_) => Coherence::Notified,
    };
    let cache = StoreCache::new(settings.cache, coherence);
    let listener = match store {
        Backend::Postgres(pg) => Some(AbortOnDrop(tokio::spawn(follow_changes(
            cache.clone(),
            pg.clone(),
        )))),
        Backend::Sqlite(_) => None,
    };
    (Some(cache), listener)
}

/// Opens the configured store. An unreachable database fails here, within the store's connect
/// timeout, with the URL (password hidden) in the message; there is no fallback.
async fn open_store(settings: &Settings) -> anyhow::Result<Backend> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    Backend::open(&settings.database_url)
        .await
        .with_context(|| format!("opening {}", redact_url(&settings.database_url)))
}

impl App {
    /// Opens the store, checks the master key, bootstraps an empty store, and starts the key pool.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let store = open_store(&settings).await?;
        // Decide before generating: a new key over a database sealed with a lost one would
        // be left on disk and turn "no master key" into "the key does not match" next time.
        if let Some(path) = key_to_generate(&settings.master_key)
            && !store.store().is_empty().await?
        {
            anyhow::bail!(
                "no master key at {} but the database already holds sealed secrets; restore the master key (see README) or set --master-key-file",
                path.display()
            );
        }
        let (master, generated) = load_master_key(&settings.master_key)?;
        if generated {
            tracing::info!(path = %settings.data_dir.join("master.key").display(), "generated a new master key (mode 0600); back it up with the database");
        }
        verify_master_key(store.store(), &master).await?;
        if let Some(path) = dbcerts_server::bootstrap::bootstrap_if_empty(
            store.store(),
            &master,
            &settings.data_dir,
        )
        .await?
        {
            tracing::info!(path = %path.display(), "created the organization and an Organization Owner API key; credentials written (mode 0600)");
        }
        let nonce = nonce_key(store.store(), &master, settings.nonce_lifetime_secs).await?;
        let pool = KeyPool::start(
            settings.key_algorithm,
            settings.key_pool_size,
            settings.key_pool_workers,
        );
        let config = ServerConfig {
            public_url: settings.public_url.clone(),
            key_algorithm: settings.key_algorithm,
            ca_names: settings.ca_names.clone(),
            max_database_users_per_project: settings.max_database_users_per_project,
            body_limit: settings.body_limit,
            body_timeout: settings.body_timeout,
            access: settings.access.clone(),
            tls: settings.tls.is_some(),
            digest_replay_check: settings.digest_replay_check,
            crl: settings.crl,
            revocation: settings.revocation.clone(),
            ca_rotation_margin_days: settings.ca_rotation_margin_days,
            ocsp: settings.ocsp.clone(),
        };
        let (cache, cache_listener) = read_cache(&settings, &store);
        let state =
            AppState::with_cache(store.shared(), Arc::new(master), nonce, pool, config, cache);
        Ok(App {
            settings,
            store,
            state,
            cache_listener,
        })
    }
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests, stops the key pool
/// and closes the database. With TLS, SIGHUP reloads the certificate and key files.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    settings.check_transport()?;
    data_dir::check(&settings.data_dir, settings.allow_readable_data_dir)?;
    // A bad certificate stops startup before anything is created on disk.
    let tls = settings
        .tls
        .as_ref()
        .map(TlsCertificate::load)
        .transpose()?;
    // Bind before anything is created on disk: a port already taken stops startup without
    // leaving a data directory, master key, organization or credentials file behind.
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("binding --metrics-listen {}", settings.metrics_listen))?;
    let metrics_addr = metrics_listener.local_addr()?;
    let app = App::build(settings).await?;
    // Take over the signals before announcing the address: a signal sent as soon as the line
    // below appears must not meet the default action (which ends the process on SIGHUP).
    let shutdown = ShutdownSignals::install()?;
    if let Some(tls) = &tls {
        reload_on_sighup(tls.clone())?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, tls = tls.is_some(), database = app.store.kind(), key_algorithm = %app.settings.key_algorithm, pool = app.settings.key_pool_size, "dbcerts listening");
    // Tests start the server on port 0 and read the bound address from this line.
    println!("dbcerts listening on {scheme}://{addr}");
    println!("dbcerts metrics on http://{metrics_addr}/metrics");
    let router = dbcerts_server::router(app.state.clone());
    let limits = app.settings.connections.fit_to_open_file_limit();
    let (stop_metrics, metrics_stop) = tokio::sync::oneshot::channel::<()>();
    let metrics = tokio::spawn(serve_router(
        metrics_listener,
        dbcerts_server::metrics_router(app.state.clone()),
        None,
        ConnectionLimits {
            max_connections: METRICS_CONNECTIONS,
            max_connections_per_address: METRICS_CONNECTIONS,
            ..limits
        },
        async {
            let _ = metrics_stop.await;
        },
    ));
    let crl_refresher = tokio::spawn(refresh_crls(app.state.clone()));
    serve_router(listener, router, tls, limits, shutdown.recv()).await?;
    crl_refresher.abort();
    let _ = stop_metrics.send(());
    metrics.await.context("the metrics listener")??;
    tracing::info!("shutting down: stopping the key pool and closing the database");
    let pool = Arc::clone(app.state.pool());
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .ok();
    drop(app.cache_listener);
    app.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How often each node looks for CRLs to rebuild (made stale by a revocation or due for their
/// refresh): at most this long before a CRL nobody asks for catches up.
const CRL_REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Rebuilds the CRLs that are due, every [`CRL_REFRESH_EVERY`], until aborted. Every node runs
/// it; publication by compare-and-set makes the nodes agree on each CRL number.
async fn refresh_crls(state: dbcerts_server::AppState) {
    let mut tick = tokio::time::interval(CRL_REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp();
        dbcerts_server::crl::refresh_due(&state, now).await;
    }
}

/// Connections the metrics listener serves at once (a Prometheus server needs one).
const METRICS_CONNECTIONS: usize = 16;

/// Serves `router` on `listener`, over TLS if `tls` is given, within `limits`, until `shutdown`
/// completes; then stops accepting, lets in-flight requests finish for up to [`SHUTDOWN_GRACE`]
/// and closes the remaining connections. Requests carry the peer's `ConnectInfo<SocketAddr>`.
pub async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsCertificate>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::<Peer>::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown.await;
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        }
    });
    let service = ConnectionRouter::new(router);
    let listener = LimitedListener::new(listener, limits);
    let mut server = axum_server::Server::<Peer>::from_listener(listener)
        .handle(handle)
        // A TLS handshake is bounded by the acceptor's own timeout; this bounds the rest of the
        // first request, and hyper's header timeout every later one.
        .first_request_timeout(limits.header_timeout)
        .accept_error_handler(|peer, e| match peer {
            // A client that does not trust the certificate, or speaks plain HTTP to the TLS port.
            Some(peer) => {
                tracing::debug!(peer = %peer.addr, error = %e, "connection failed before its first request");
            }
            // The listener itself, e.g. out of file descriptors; accepting resumes shortly.
            None => tracing::warn!(error = %e, "accepting a connection failed"),
        });
    // hyper's own head limits sit far above the head budget, so that a head over the budget is
    // read whole and refused in Atlas's format (dbcerts_server::head_limits).
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(head_limits::HYPER_MAX_HEAD_BYTES)
        .max_headers(head_limits::HYPER_MAX_HEADERS)
        .http2()
        .max_header_list_size(head_limits::HYPER_MAX_HEAD_BYTES as u32);
    let served = match tls {
        None => server.serve(service).await,
        Some(tls) => {
            server
                .acceptor(RustlsAcceptor::new(tls.rustls_config()))
                .serve(service)
                .await
        }
    };
    served.context("serving HTTP")
}

/// SIGINT and SIGTERM, registered when installed rather than when first awaited.
struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<ShutdownSignals> {
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("handling SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("handling SIGTERM")?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
        }
    }
}

/// Reloads the certificate on every SIGHUP. New handshakes get the new certificate; established
/// connections keep theirs. A reload that fails is logged and changes nothing.
fn reload_on_sighup(tls: TlsCertificate) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let files = tls.files().clone();
            let attempt = tls.clone();
            match tokio::task::spawn_blocking(move || attempt.reload()).await {
                Ok(Ok(())) => tracing::info!(
                    cert = %files.cert.display(),
                    key = %files.key.display(),
                    "SIGHUP: reloaded the TLS certificate; new connections use it"
                ),
                Ok(Err(e)) => tracing::error!(
                    error = format!("{e:#}"),
                    "SIGHUP: TLS certificate reload failed; still serving the previous certificate"
                ),
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS certificate reload panicked"),
            }
        }
    });
    Ok(())
}

/// The path of the master-key file that loading would generate (default location, not there).
pub(crate) fn key_to_generate(source: &MasterKeySource) -> Option<&Path> {
    match source {
        MasterKeySource::Generated(path) if !path.exists() => Some(path),
        _ => None,
    }
}

/// Opens an existing store with its master key, for the commands that work on the store
/// directly. Never generates a key: without one there is nothing to open.
pub async fn open_checked_store(
    settings: &Settings,
) -> anyhow::Result<(Backend, dbcerts_ca::sealing::MasterKey)> {
    if let Some(path) = key_to_generate(&settings.master_key) {
        anyhow::bail!(
            "no master key at {}, so {} is not the data directory of a dbcerts server: pass \
             the --data-dir (or DBCERTS_DATA_DIR) that `dbcerts serve` uses, --master-key-file \
             if the key is kept elsewhere, or run `dbcerts serve` first",
            path.display(),
            settings.data_dir.display()
        );
    }
    let store = open_store(settings).await?;
    let (master, _) = load_master_key(&settings.master_key)?;
    verify_master_key(store.store(), &master).await?;
    Ok((store, master))
}

/// The trust bundle of `project` (the PEM of every CA generation in it; the one CA until the
/// first rotation), creating the project's CA if it has none yet.
pub async fn export_ca(settings: &Settings, project: &str) -> anyhow::Result<String> {
    let (store, ca) = project_ca_service(settings, project).await?;
    let pem = ca.bundle_pem(project).await.map_err(atlas_error);
    store.close().await;
    pem
}

/// `dbcerts ca rotate`: a new generation of `project`'s CA, as JSON.
pub async fn rotate_ca(settings: &Settings, project: &str) -> anyhow::Result<serde_json::Value> {
    let (store, ca) = project_ca_service(settings, project).await?;
    let who = dbcerts_server::ca_service::Who::operator();
    let result = ca
        .rotate(
            project,
            dbcerts_server::ca_service::RotationReason::Manual,
            &who,
        )
        .await
        .map_err(atlas_error);
    store.close().await;
    match result? {
        Some(g) => Ok(dbcerts_server::generation_json(g)),
        None => anyhow::bail!(
            "another rotation of project {project}'s CA happened at the same time; see GET /api/dbcerts/v1/groups/{project}/cas"
        ),
    }
}

/// `dbcerts ca retire`: takes generation `generation` of `project`'s CA out of the bundle.
pub async fn retire_ca(
    settings: &Settings,
    project: &str,
    generation: u32,
) -> anyhow::Result<serde_json::Value> {
    let (store, ca) = project_ca_service(settings, project).await?;
    let who = dbcerts_server::ca_service::Who::operator();
    let result = ca
        .retire(project, generation, &who)
        .await
        .map_err(atlas_error);
    store.close().await;
    match result? {
        Ok(g) => Ok(dbcerts_server::generation_json(g)),
        Err(dbcerts_server::ca_service::RetireError::NotFound) => {
            anyhow::bail!("project {project}'s CA has no generation {generation}")
        }
        Err(dbcerts_server::ca_service::RetireError::Active) => anyhow::bail!(
            "generation {generation} is project {project}'s active CA and cannot be retired; run `dbcerts ca rotate` first"
        ),
    }
}

fn atlas_error(e: dbcerts_server::error::AtlasError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", e.code, e.detail)
}

/// The store and a CA service on it, for an existing project.
async fn project_ca_service(
    settings: &Settings,
    project: &str,
) -> anyhow::Result<(Backend, dbcerts_server::CaService)> {
    dbcerts_server::params::GroupId::parse(project).map_err(|_| {
        anyhow::anyhow!("{project:?} is not a project id (24 lowercase hex digits)")
    })?;
    let (store, master) = open_checked_store(settings).await?;
    if store.store().get_project(project).await?.is_none() {
        store.close().await;
        anyhow::bail!("no project with id {project} exists");
    }
    let ca = dbcerts_server::CaService::new(
        store.shared(),
        Arc::new(master),
        settings.ca_names.clone(),
        settings.key_algorithm,
    )
    .with_rotation_margin_days(settings.ca_rotation_margin_days);
    Ok((store, ca))
}
