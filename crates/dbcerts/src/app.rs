//! Startup, serving and shutdown, as a builder tests can call.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use anyhow::Context;
use dbcerts_ca::pool::KeyPool;
use std::path::Path;

use dbcerts_server::secrets::{MasterKeySource, load_master_key, nonce_key, verify_master_key};
use dbcerts_server::{AppState, ServerConfig};
use dbcerts_store::{SqliteStore, Store};
use tokio::net::TcpListener;

use crate::config::Settings;

/// An opened store and master key, ready to serve.
pub struct App {
    pub settings: Settings,
    pub store: SqliteStore,
    pub state: AppState,
}

async fn open_store(settings: &Settings) -> anyhow::Result<SqliteStore> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    SqliteStore::open_url(&settings.database_url)
        .await
        .with_context(|| format!("opening {}", settings.database_url))
}

impl App {
    /// Opens the store, checks the master key, bootstraps an empty store, and starts the key pool.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let store = open_store(&settings).await?;
        // Decide before generating: a new key over a database sealed with a lost one would
        // be left on disk and turn "no master key" into "the key does not match" next time.
        if let Some(path) = key_to_generate(&settings.master_key)
            && !store.is_empty().await?
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
        verify_master_key(&store, &master).await?;
        if let Some(path) =
            dbcerts_server::bootstrap::bootstrap_if_empty(&store, &master, &settings.data_dir)
                .await?
        {
            tracing::info!(path = %path.display(), "created the organization and an Organization Owner API key; credentials written (mode 0600)");
        }
        let nonce = nonce_key(&store, &master, settings.nonce_lifetime_secs).await?;
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
        };
        let shared: Arc<dyn Store> = Arc::new(store.clone());
        let state = AppState::new(shared, Arc::new(master), nonce, pool, config);
        Ok(App {
            settings,
            store,
            state,
        })
    }
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests, stops the key pool
/// and closes the database.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = App::build(settings).await?;
    let listener = TcpListener::bind(app.settings.listen)
        .await
        .with_context(|| format!("binding {}", app.settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, key_algorithm = %app.settings.key_algorithm, pool = app.settings.key_pool_size, "dbcerts listening");
    // Tests start the server on port 0 and read the bound address from this line.
    println!("dbcerts listening on http://{addr}");
    let router = dbcerts_server::router(app.state.clone());
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown_signal());
    server.await.context("serving HTTP")?;
    tracing::info!("shutting down: stopping the key pool and closing the database");
    let pool = Arc::clone(app.state.pool());
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .ok();
    app.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// The path of the master-key file that loading would generate (default location, not there).
fn key_to_generate(source: &MasterKeySource) -> Option<&Path> {
    match source {
        MasterKeySource::Generated(path) if !path.exists() => Some(path),
        _ => None,
    }
}

/// The PEM of `project`'s managed CA, creating the CA if the project has none yet.
pub async fn export_ca(settings: &Settings, project: &str) -> anyhow::Result<String> {
    dbcerts_server::params::GroupId::parse(project).map_err(|_| {
        anyhow::anyhow!("{project:?} is not a project id (24 lowercase hex digits)")
    })?;
    if let Some(path) = key_to_generate(&settings.master_key) {
        anyhow::bail!(
            "no master key at {}; run `dbcerts serve` first or pass --master-key-file",
            path.display()
        );
    }
    let store = open_store(settings).await?;
    let (master, _) = load_master_key(&settings.master_key)?;
    verify_master_key(&store, &master).await?;
    if store.get_project(project).await?.is_none() {
        anyhow::bail!("no project with id {project} exists");
    }
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let ca = dbcerts_server::CaService::new(
        shared,
        Arc::new(master),
        settings.ca_names.clone(),
        settings.key_algorithm,
    );
    let pem = ca
        .get_or_create(project)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.detail))?
        .cert_pem();
    store.close().await;
    Ok(pem)
}
