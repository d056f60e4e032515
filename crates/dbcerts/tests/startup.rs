//! Startup safety: the master key, the bootstrap credentials and the data directory, against a
//! real SQLite file in a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dbcerts::app::App;
use dbcerts::cli::{GlobalArgs, ServeArgs};
use dbcerts::config::Settings;
use dbcerts_server::secrets::MasterKeySource;

fn settings(dir: &Path) -> Settings {
    let global = GlobalArgs {
        data_dir: Some(dir.to_path_buf()),
        key_algorithm: Some("ecdsa-p256".into()),
        ..Default::default()
    };
    let serve = ServeArgs {
        key_pool_size: Some(0),
        ..Default::default()
    };
    let mut s = Settings::resolve(&global, &serve).unwrap();
    // Do not depend on the environment of the test process.
    s.master_key = MasterKeySource::Generated(dir.join("master.key"));
    s
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn build(s: Settings) -> anyhow::Result<App> {
    let app = App::build(s).await?;
    app.state.pool().shutdown();
    Ok(app)
}

#[tokio::test]
async fn first_start_bootstraps_once_with_private_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = build(settings(&data)).await.unwrap();
    let creds = data.join("bootstrap-credentials.json");
    assert_eq!(mode(&creds), 0o600);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(
        mode(&data),
        0o700,
        "a data directory dbcerts creates is private"
    );
    // The database and the files SQLite and dbcerts put beside it are private too, whatever
    // the umask (the black-box test_files_and_metrics.py sets umask 022 explicitly).
    for name in [
        "dbcerts.db",
        "dbcerts.db-wal",
        "dbcerts.db-shm",
        "dbcerts.db.serve.lock",
        "dbcerts.db.migrate.lock",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let first: serde_json::Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    for field in ["orgId", "publicKey", "privateKey"] {
        assert!(
            first[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    app.store.close().await;
    let app = build(settings(&data)).await.unwrap();
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    assert_eq!(first, second, "a second start must not bootstrap again");
    app.store.close().await;
}

#[tokio::test]
async fn a_different_master_key_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    build(settings(dir.path()))
        .await
        .unwrap()
        .store
        .close()
        .await;
    let (_, other) = dbcerts_ca::sealing::MasterKey::generate();
    let mut s = settings(dir.path());
    s.master_key = MasterKeySource::Inline(other);
    let err = build(s).await.err().expect("must refuse").to_string();
    assert!(err.contains("does not match"), "{err}");
}

#[tokio::test]
async fn a_lost_master_key_is_not_silently_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    build(settings(dir.path()))
        .await
        .unwrap()
        .store
        .close()
        .await;
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let err = build(settings(dir.path()))
        .await
        .err()
        .expect("must refuse")
        .to_string();
    assert!(err.contains("no master key"), "{err}");
    assert!(
        !dir.path().join("master.key").exists(),
        "no new key may be left beside a database sealed with the lost one"
    );
}

#[tokio::test]
async fn a_master_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    build(settings(dir.path()))
        .await
        .unwrap()
        .store
        .close()
        .await;
    let key = dir.path().join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut s = settings(dir.path());
    s.master_key = MasterKeySource::File(key);
    let err = build(s).await.err().expect("must refuse").to_string();
    assert!(err.contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn ca_export_refuses_bad_or_unknown_projects() {
    let dir = tempfile::tempdir().unwrap();
    build(settings(dir.path()))
        .await
        .unwrap()
        .store
        .close()
        .await;
    let s = settings(dir.path());
    let err = dbcerts::app::export_ca(&s, "nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a project id"), "{err}");
    let err = dbcerts::app::export_ca(&s, "111111111111111111111111")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no project"), "{err}");
}

/// An unreachable PostgreSQL stops startup within the connect timeout, with the URL in the
/// message but not its password, and nothing is created in the data directory.
#[tokio::test]
async fn an_unreachable_database_stops_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = settings(dir.path());
    s.database_url = format!("postgres://dbcerts:hunter2secret@127.0.0.1:{port}/dbcerts");
    let started = std::time::Instant::now();
    let err = format!("{:#}", build(s).await.err().expect("must refuse"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        err.contains(&format!(
            "opening postgres://dbcerts:***@127.0.0.1:{port}/dbcerts"
        )),
        "{err}"
    );
    assert!(err.contains("unavailable"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
    assert!(!dir.path().join("master.key").exists());
    assert!(!dir.path().join("bootstrap-credentials.json").exists());
}

/// Any scheme but sqlite: and postgres(ql): is refused before anything is opened.
#[test]
fn an_unknown_database_scheme_is_refused() {
    for url in ["mysql://h/db", "redis://h", "dbcerts.db", "file:///x.db"] {
        let global = GlobalArgs {
            database_url: Some(url.into()),
            ..Default::default()
        };
        let err = Settings::resolve(&global, &ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsupported database URL scheme"),
            "{url}: {err}"
        );
    }
}

/// Pending credentials (`.bootstrap-credentials.json.tmp`, left by a crash between commit and
/// rename) are put in place only if their key was committed; credentials of a key that is not
/// in the store (another node bootstrapped while this one waited) are removed.
#[tokio::test]
async fn pending_bootstrap_credentials_are_kept_only_if_committed() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("bootstrap-credentials.json");
    let tmp = dir.path().join(".bootstrap-credentials.json.tmp");
    build(settings(dir.path()))
        .await
        .unwrap()
        .store
        .close()
        .await;
    let committed = std::fs::read(&creds).unwrap();

    std::fs::rename(&creds, &tmp).unwrap();
    build(settings(dir.path()))
        .await
        .unwrap()
        .store
        .close()
        .await;
    assert_eq!(
        std::fs::read(&creds).unwrap(),
        committed,
        "committed: put in place"
    );
    assert!(!tmp.exists());

    let mut other: serde_json::Value = serde_json::from_slice(&committed).unwrap();
    other["publicKey"] = "neverkey".into();
    std::fs::remove_file(&creds).unwrap();
    std::fs::write(&tmp, serde_json::to_vec(&other).unwrap()).unwrap();
    build(settings(dir.path()))
        .await
        .unwrap()
        .store
        .close()
        .await;
    assert!(
        !creds.exists(),
        "uncommitted credentials must not be installed"
    );
    assert!(!tmp.exists(), "and are removed");
}
