//! One typed configuration, resolved in layers: defaults, then the TOML file, then `DBCERTS_*`
//! environment variables and flags (clap merges those two, flags winning). A bad value stops
//! startup with a message that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dbcerts_ca::{KeyAlgorithm, ManagedCaParams};
use dbcerts_server::secrets::MasterKeySource;
use serde::Deserialize;

use crate::cli::{GlobalArgs, ServeArgs};

/// The TOML file. Every key is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub key_algorithm: Option<String>,
    pub key_pool_size: Option<usize>,
    pub key_pool_workers: Option<usize>,
    pub master_key_file: Option<PathBuf>,
    pub log_format: Option<String>,
    pub ca_organization: Option<String>,
    pub ca_organizational_unit: Option<String>,
    pub max_database_users_per_project: Option<u64>,
    pub body_limit_bytes: Option<usize>,
    pub digest_nonce_lifetime_secs: Option<i64>,
}

/// Everything `serve` and the store-opening commands need, fully resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    pub key_pool_size: usize,
    pub key_pool_workers: usize,
    pub master_key: MasterKeySource,
    pub log_format: String,
    pub ca_names: ManagedCaParams,
    pub max_database_users_per_project: u64,
    pub body_limit: usize,
    pub nonce_lifetime_secs: i64,
}

impl Settings {
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &global.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = global
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./dbcerts-data"));
        let listen_text = serve
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_text.parse().with_context(|| {
            format!("--listen {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        let database_url = global
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("dbcerts.db").display()));
        if !database_url.starts_with("sqlite:") {
            let scheme = database_url.split(':').next().unwrap_or("");
            anyhow::bail!(
                "--database-url scheme {scheme:?} is not supported by this build; use a sqlite: URL (PostgreSQL support is planned)"
            );
        }
        let public_url = serve.public_url.clone().or(file.public_url);
        if let Some(u) = &public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            anyhow::bail!("--public-url {u:?} must start with http:// or https://");
        }
        let alg_text = global
            .key_algorithm
            .clone()
            .or(file.key_algorithm)
            .unwrap_or_else(|| "rsa-4096".to_owned());
        let key_algorithm = alg_text
            .parse::<KeyAlgorithm>()
            .map_err(|e| anyhow::anyhow!("--key-algorithm: {e}"))?;
        let master_key = if let Ok(inline) = std::env::var("DBCERTS_MASTER_KEY") {
            MasterKeySource::Inline(zeroize::Zeroizing::new(inline))
        } else if let Some(path) = global.master_key_file.clone().or(file.master_key_file) {
            MasterKeySource::File(path)
        } else {
            MasterKeySource::Generated(data_dir.join("master.key"))
        };
        let log_format = serve
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".to_owned());
        if !matches!(log_format.as_str(), "text" | "json") {
            anyhow::bail!("--log-format must be text or json, not {log_format:?}");
        }
        let defaults = ManagedCaParams::default();
        Ok(Settings {
            listen,
            data_dir,
            database_url,
            public_url,
            key_algorithm,
            key_pool_size: serve.key_pool_size.or(file.key_pool_size).unwrap_or(16),
            key_pool_workers: serve
                .key_pool_workers
                .or(file.key_pool_workers)
                .unwrap_or(1)
                .max(1),
            master_key,
            log_format,
            ca_names: ManagedCaParams {
                organization: file.ca_organization.unwrap_or(defaults.organization),
                organizational_unit: file
                    .ca_organizational_unit
                    .unwrap_or(defaults.organizational_unit),
            },
            max_database_users_per_project: file.max_database_users_per_project.unwrap_or(100),
            body_limit: file.body_limit_bytes.unwrap_or(1024 * 1024),
            nonce_lifetime_secs: file.digest_nonce_lifetime_secs.unwrap_or(300),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbcerts.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nkey-algorithm = \"ecdsa-p256\"\nkey-pool-size = 4\n",
        )
        .unwrap();
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        let s = Settings::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(s.key_pool_size, 4);
        let flags = ServeArgs {
            listen: Some("127.0.0.1:9001".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&global, &flags).unwrap();
        assert_eq!(s.listen.port(), 9001, "flags beat the file");
        assert!(s.database_url.ends_with("dbcerts.db"));
    }

    #[test]
    fn bad_values_stop_startup() {
        let global = GlobalArgs {
            key_algorithm: Some("rsa-1024".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&global, &ServeArgs::default()).is_err());
        let global = GlobalArgs {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&global, &ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "no-such-key = 1\n").unwrap();
        let global = GlobalArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(Settings::resolve(&global, &ServeArgs::default()).is_err());
    }
}
