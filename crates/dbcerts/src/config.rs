//! One typed configuration, resolved in layers: defaults, then the TOML file, then `DBCERTS_*`
//! environment variables and flags (clap merges those two, flags winning). A bad value stops
//! startup with a message that names it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use dbcerts_ca::{KeyAlgorithm, ManagedCaParams};
use dbcerts_server::auth::digest::ReplayCheck;
use dbcerts_server::cached_store::CacheConfig;
use dbcerts_server::secrets::MasterKeySource;
use dbcerts_server::{AccessConfig, OcspConfig, RateLimits, RevocationConfig};
use serde::Deserialize;

use crate::app::ConnectionLimits;
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
    pub body_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub digest_nonce_lifetime_secs: Option<i64>,
    pub digest_replay_check: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_plaintext: Option<bool>,
    pub oauth_token_lifetime_secs: Option<i64>,
    pub oauth_token_requests_per_minute: Option<u32>,
    pub rate_limit_certs_per_minute: Option<u32>,
    pub rate_limit_database_users_per_minute: Option<u32>,
    pub rate_limit_user_security_per_minute: Option<u32>,
    pub rate_limit_groups_per_minute: Option<u32>,
    pub rate_limit_orgs_per_minute: Option<u32>,
    pub auth_failures_before_delay: Option<u32>,
    pub auth_failures_before_lockout: Option<u32>,
    pub auth_failures_per_address_before_lockout: Option<u32>,
    pub auth_failure_window_secs: Option<i64>,
    pub auth_lockout_secs: Option<i64>,
    pub metrics_listen: Option<String>,
    pub allow_readable_data_dir: Option<bool>,
    pub crl_validity_secs: Option<i64>,
    pub crl_refresh_secs: Option<i64>,
    pub crl_backdate_secs: Option<i64>,
    pub crl_distribution: Option<bool>,
    pub rate_limit_crl_distribution_per_minute: Option<u32>,
    pub revoke_on_user_delete: Option<bool>,
    pub cert_expiring_days: Option<u32>,
    pub ca_rotation_margin_days: Option<u32>,
    pub ocsp_url: Option<String>,
    pub ocsp_validity_secs: Option<i64>,
    pub rate_limit_ocsp_per_minute: Option<u32>,
    pub cache_ttl_seconds: Option<u64>,
    pub cache_capacity: Option<usize>,
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
    /// The longest a client may take to send a request body.
    pub body_timeout: Duration,
    /// Open connections at once, and the header (and idle) timeout.
    pub connections: ConnectionLimits,
    pub nonce_lifetime_secs: i64,
    /// Where Digest nonce counts are kept: each node's memory, or also the shared store.
    pub digest_replay_check: ReplayCheck,
    /// The API's own certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on a non-loopback address is allowed (a TLS-terminating proxy is in front).
    pub allow_plaintext: bool,
    /// Token lifetime, rate limits and failed-authentication throttling.
    pub access: AccessConfig,
    /// Where `GET /metrics` is served (never on `listen`).
    pub metrics_listen: SocketAddr,
    /// Serve from a data directory that group or others can enter.
    pub allow_readable_data_dir: bool,
    /// CRL validity (nextUpdate), refresh and thisUpdate backdating.
    pub crl: dbcerts_server::crl::CrlConfig,
    /// What deleting a user does to its certificates, and the status list's EXPIRING window.
    pub revocation: RevocationConfig,
    /// A project CA is rotated before issuing a leaf that would end less than this many days
    /// before the CA does.
    pub ca_rotation_margin_days: u32,
    /// The OCSP responder: the base URL put on leaves (only when configured), answer lifetime
    /// and per-address rate limit.
    pub ocsp: OcspConfig,
    /// The per-node read cache (`cache-ttl-seconds`, `cache-capacity`); a zero TTL turns it
    /// off.
    pub cache: CacheConfig,
}

/// The largest `cache-ttl-seconds`: how stale a node's answer may be when it cannot tell that
/// it is (docs/ARCHITECTURE.md, "Read cache"), so kept short.
pub const MAX_CACHE_TTL_SECS: u64 = 300;

/// `cache-ttl-seconds` (0 to [`MAX_CACHE_TTL_SECS`], 0 turning the cache off) and
/// `cache-capacity` (positive).
fn cache_config(serve: &ServeArgs, file: &FileConfig) -> anyhow::Result<CacheConfig> {
    let d = CacheConfig::default();
    let ttl = serve
        .cache_ttl_seconds
        .or(file.cache_ttl_seconds)
        .map_or(d.ttl, Duration::from_secs);
    if ttl.as_secs() > MAX_CACHE_TTL_SECS {
        anyhow::bail!(
            "--cache-ttl-seconds {} is too large: at most {MAX_CACHE_TTL_SECS} (it bounds how long a revoked key may still work on a node that lost its database notifications)",
            ttl.as_secs()
        );
    }
    let capacity = file.cache_capacity.unwrap_or(d.capacity);
    if capacity == 0 {
        anyhow::bail!(
            "cache-capacity must be positive (set cache-ttl-seconds = 0 to turn the cache off)"
        );
    }
    Ok(CacheConfig { ttl, capacity })
}

/// The OCSP settings: `--ocsp-url` (`DBCERTS_OCSP_URL`, `ocsp-url`), `ocsp-validity-secs`
/// (60 s to 7 days) and `rate-limit-ocsp-per-minute` (positive).
fn ocsp_config(serve: &ServeArgs, file: &FileConfig) -> anyhow::Result<OcspConfig> {
    let d = OcspConfig::default();
    let responder_url = serve.ocsp_url.clone().or_else(|| file.ocsp_url.clone());
    if let Some(u) = &responder_url {
        let ok_scheme = u.starts_with("http://") || u.starts_with("https://");
        let printable = u.bytes().all(|b| b.is_ascii_graphic());
        if !ok_scheme || !printable || u.contains(['?', '#']) {
            anyhow::bail!(
                "--ocsp-url {u:?} must be an http:// or https:// base URL (printable ASCII, no query or fragment); leaves then carry <url>/api/dbcerts/v1/ocsp/<groupId>"
            );
        }
    }
    let validity_secs = file.ocsp_validity_secs.unwrap_or(d.validity_secs);
    if !(60..=7 * 24 * 3600).contains(&validity_secs) {
        anyhow::bail!("ocsp-validity-secs = {validity_secs} must be 60 to 604800 (7 days)");
    }
    let requests_per_minute = file
        .rate_limit_ocsp_per_minute
        .unwrap_or(d.requests_per_minute);
    if requests_per_minute == 0 {
        anyhow::bail!("rate-limit-ocsp-per-minute must be positive");
    }
    Ok(OcspConfig {
        responder_url,
        validity_secs,
        requests_per_minute,
    })
}

/// The default `ca-rotation-margin-days`.
pub const DEFAULT_CA_ROTATION_MARGIN_DAYS: u32 =
    dbcerts_server::ca_service::DEFAULT_ROTATION_MARGIN_DAYS;
/// The largest: a new CA (ten years) must cover the longest leaf (24 months) with this margin to
/// spare, or every issuance would rotate again.
pub const MAX_CA_ROTATION_MARGIN_DAYS: u32 = 5 * 365;

/// The PEM files `serve` reads its HTTPS certificate chain and private key from, at startup and
/// on every SIGHUP. Only ever both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The access-control limits: Atlas's figures, overridden by the file's keys. Every figure must
/// be positive.
fn access_config(file: &FileConfig) -> anyhow::Result<AccessConfig> {
    let d = AccessConfig::default();
    let r = d.rate_limits;
    let c = AccessConfig {
        token_lifetime_secs: file
            .oauth_token_lifetime_secs
            .unwrap_or(d.token_lifetime_secs),
        token_requests_per_minute: file
            .oauth_token_requests_per_minute
            .unwrap_or(d.token_requests_per_minute),
        rate_limits: RateLimits {
            certs: file.rate_limit_certs_per_minute.unwrap_or(r.certs),
            database_users: file
                .rate_limit_database_users_per_minute
                .unwrap_or(r.database_users),
            user_security: file
                .rate_limit_user_security_per_minute
                .unwrap_or(r.user_security),
            groups: file.rate_limit_groups_per_minute.unwrap_or(r.groups),
            orgs: file.rate_limit_orgs_per_minute.unwrap_or(r.orgs),
        },
        auth_failures_before_delay: file
            .auth_failures_before_delay
            .unwrap_or(d.auth_failures_before_delay),
        auth_failures_before_lockout: file
            .auth_failures_before_lockout
            .unwrap_or(d.auth_failures_before_lockout),
        auth_failures_per_address_before_lockout: file
            .auth_failures_per_address_before_lockout
            .unwrap_or(d.auth_failures_per_address_before_lockout),
        auth_failure_window_secs: file
            .auth_failure_window_secs
            .unwrap_or(d.auth_failure_window_secs),
        auth_lockout_secs: file.auth_lockout_secs.unwrap_or(d.auth_lockout_secs),
    };
    let r = c.rate_limits;
    let counts = [
        (
            "oauth-token-requests-per-minute",
            c.token_requests_per_minute,
        ),
        ("rate-limit-certs-per-minute", r.certs),
        ("rate-limit-database-users-per-minute", r.database_users),
        ("rate-limit-user-security-per-minute", r.user_security),
        ("rate-limit-groups-per-minute", r.groups),
        ("rate-limit-orgs-per-minute", r.orgs),
        (
            "auth-failures-before-lockout",
            c.auth_failures_before_lockout,
        ),
        (
            "auth-failures-per-address-before-lockout",
            c.auth_failures_per_address_before_lockout,
        ),
    ];
    for (key, value) in counts {
        anyhow::ensure!(value > 0, "{key} must be at least 1");
    }
    let secs = [
        ("oauth-token-lifetime-secs", c.token_lifetime_secs),
        ("auth-failure-window-secs", c.auth_failure_window_secs),
        ("auth-lockout-secs", c.auth_lockout_secs),
    ];
    for (key, value) in secs {
        anyhow::ensure!(value > 0, "{key} must be at least 1");
    }
    Ok(c)
}

/// CRL timing: flags and `DBCERTS_CRL_*` over the file's `crl-*-secs` keys over the defaults.
/// A CRL must be rebuilt before it expires: refresh < validity.
fn crl_config(
    file: &FileConfig,
    serve: &ServeArgs,
) -> anyhow::Result<dbcerts_server::crl::CrlConfig> {
    let d = dbcerts_server::crl::CrlConfig::default();
    let c = dbcerts_server::crl::CrlConfig {
        validity_secs: serve
            .crl_validity_secs
            .or(file.crl_validity_secs)
            .unwrap_or(d.validity_secs),
        refresh_secs: serve
            .crl_refresh_secs
            .or(file.crl_refresh_secs)
            .unwrap_or(d.refresh_secs),
        backdate_secs: serve
            .crl_backdate_secs
            .or(file.crl_backdate_secs)
            .unwrap_or(d.backdate_secs),
        distribution: serve
            .crl_distribution
            .or(file.crl_distribution)
            .unwrap_or(d.distribution),
        distribution_requests_per_minute: file
            .rate_limit_crl_distribution_per_minute
            .unwrap_or(d.distribution_requests_per_minute),
    };
    anyhow::ensure!(
        c.distribution_requests_per_minute > 0,
        "rate-limit-crl-distribution-per-minute must be positive"
    );
    anyhow::ensure!(c.validity_secs > 0, "crl-validity-secs must be at least 1");
    anyhow::ensure!(c.refresh_secs > 0, "crl-refresh-secs must be at least 1");
    anyhow::ensure!(
        c.backdate_secs >= 0,
        "crl-backdate-secs must not be negative"
    );
    anyhow::ensure!(
        c.refresh_secs < c.validity_secs,
        "crl-refresh-secs ({}) must be less than crl-validity-secs ({}): a CRL must be rebuilt before its nextUpdate, or mongod refuses every client",
        c.refresh_secs,
        c.validity_secs
    );
    Ok(c)
}

impl Settings {
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &global.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let access = access_config(&file)?;
        let crl = crl_config(&file, serve)?;
        let ocsp = ocsp_config(serve, &file)?;
        let cache = cache_config(serve, &file)?;
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
        dbcerts_store::Backend::check_url(&database_url)
            .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
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
        let tls = match (
            serve.tls_cert.clone().or(file.tls_cert),
            serve.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!(
                "--tls-cert is set but --tls-key is not; HTTPS needs both the certificate and its private key (flags, DBCERTS_TLS_CERT/DBCERTS_TLS_KEY, or tls-cert/tls-key in the config file)"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--tls-key is set but --tls-cert is not; HTTPS needs both the certificate and its private key (flags, DBCERTS_TLS_CERT/DBCERTS_TLS_KEY, or tls-cert/tls-key in the config file)"
            ),
        };
        let digest_replay_check = match file.digest_replay_check.as_deref() {
            None | Some("node") => ReplayCheck::Node,
            Some("store") => ReplayCheck::Store,
            Some(other) => anyhow::bail!(
                "digest-replay-check must be \"node\" (each node refuses replays of what it accepted) or \"store\" (every node refuses them, one database write per Digest request), not {other:?}"
            ),
        };
        let allow_plaintext = serve
            .allow_plaintext
            .or(file.allow_plaintext)
            .unwrap_or(false);
        let metrics_text = serve
            .metrics_listen
            .clone()
            .or(file.metrics_listen)
            .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_owned());
        let metrics_listen = metrics_text.parse().with_context(|| {
            format!(
                "--metrics-listen {metrics_text:?} is not an address like {DEFAULT_METRICS_LISTEN}"
            )
        })?;
        let allow_readable_data_dir = serve
            .allow_readable_data_dir
            .or(file.allow_readable_data_dir)
            .unwrap_or(false);
        let default_revocation = RevocationConfig::default();
        let expiring_days = serve.cert_expiring_days.or(file.cert_expiring_days);
        if expiring_days == Some(0) {
            anyhow::bail!("--cert-expiring-days must be at least 1");
        }
        let revocation = RevocationConfig {
            revoke_on_user_delete: serve
                .revoke_on_user_delete
                .or(file.revoke_on_user_delete)
                .unwrap_or(default_revocation.revoke_on_user_delete),
            expiring_within_secs: expiring_days
                .map_or(default_revocation.expiring_within_secs, |d| {
                    i64::from(d) * 86_400
                }),
        };
        let ca_rotation_margin_days = serve
            .ca_rotation_margin_days
            .or(file.ca_rotation_margin_days)
            .unwrap_or(DEFAULT_CA_ROTATION_MARGIN_DAYS);
        if ca_rotation_margin_days > MAX_CA_ROTATION_MARGIN_DAYS {
            anyhow::bail!(
                "--ca-rotation-margin-days {ca_rotation_margin_days} is too large: at most {MAX_CA_ROTATION_MARGIN_DAYS} (a new ten-year CA must cover a 24-month certificate with the margin to spare)"
            );
        }
        let defaults = ManagedCaParams::default();
        let default_connections = ConnectionLimits::default();
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
            body_timeout: Duration::from_secs(file.body_timeout_secs.unwrap_or(30).max(1)),
            connections: ConnectionLimits {
                max_connections: file
                    .max_connections
                    .unwrap_or(default_connections.max_connections)
                    .max(1),
                max_connections_per_address: file
                    .max_connections_per_address
                    .unwrap_or(default_connections.max_connections_per_address)
                    .max(1),
                header_timeout: file
                    .header_timeout_secs
                    .map(|s| Duration::from_secs(s.max(1)))
                    .unwrap_or(default_connections.header_timeout),
            },
            nonce_lifetime_secs: file.digest_nonce_lifetime_secs.unwrap_or(300),
            digest_replay_check,
            access,
            tls,
            allow_plaintext,
            metrics_listen,
            allow_readable_data_dir,
            crl,
            revocation,
            ca_rotation_margin_days,
            ocsp,
            cache,
        })
    }

    /// Refuses to serve plain HTTP where other machines can reach it, unless
    /// `--allow-plaintext` says that a TLS-terminating proxy is in front. Only `serve` asks:
    /// commands that never listen do not care.
    pub fn check_transport(&self) -> anyhow::Result<()> {
        if self.tls.is_some() || self.allow_plaintext || is_loopback(self.listen.ip()) {
            return Ok(());
        }
        anyhow::bail!(
            "refusing to serve plain HTTP on {}, which is not a loopback address: the API returns private keys and bearer tokens, which must not cross a network in clear text. \
             Serve HTTPS with --tls-cert FILE --tls-key FILE, or, if dbcerts sits behind a TLS-terminating proxy, pass --allow-plaintext (DBCERTS_ALLOW_PLAINTEXT=true, allow-plaintext = true)",
            self.listen
        )
    }
}

/// Where metrics are served unless configured: loopback, as Prometheus exporters do.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:8081";

/// 127.0.0.0/8 and ::1, also written as an IPv4-mapped IPv6 address.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from a configuration file holding `text`, and `serve`'s flags.
    fn resolve_file(text: &str, serve: &ServeArgs) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbcerts.toml");
        std::fs::write(&path, text).unwrap();
        let global = GlobalArgs {
            config: Some(path),
            ..Default::default()
        };
        Settings::resolve(&global, serve)
    }

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
    fn cache_ttl_from_file_then_flag_and_bounded() {
        let resolve = |toml: &str, flag: Option<u64>| {
            let flags = ServeArgs {
                cache_ttl_seconds: flag,
                ..Default::default()
            };
            resolve_file(toml, &flags).map(|s| s.cache)
        };
        assert_eq!(resolve("", None).unwrap(), CacheConfig::default());
        assert_eq!(CacheConfig::default().ttl, Duration::from_secs(5));
        let c = resolve("cache-ttl-seconds = 0\ncache-capacity = 50\n", None).unwrap();
        assert_eq!((c.ttl, c.capacity), (Duration::ZERO, 50));
        let c = resolve("cache-ttl-seconds = 0\n", Some(20)).unwrap();
        assert_eq!(
            c.ttl,
            Duration::from_secs(20),
            "flags (and DBCERTS_*) beat the file"
        );
        let err = resolve("", Some(MAX_CACHE_TTL_SECS + 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--cache-ttl-seconds"), "{err}");
        let err = resolve("cache-capacity = 0\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cache-capacity"), "{err}");
    }

    #[test]
    fn ca_rotation_margin_from_file_then_flag_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbcerts.toml");
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        std::fs::write(&path, "").unwrap();
        let s = Settings::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(s.ca_rotation_margin_days, DEFAULT_CA_ROTATION_MARGIN_DAYS);
        std::fs::write(&path, "ca-rotation-margin-days = 90\n").unwrap();
        let s = Settings::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(s.ca_rotation_margin_days, 90);
        let flags = ServeArgs {
            ca_rotation_margin_days: Some(7),
            ..Default::default()
        };
        let s = Settings::resolve(&global, &flags).unwrap();
        assert_eq!(
            s.ca_rotation_margin_days, 7,
            "flags (and DBCERTS_*) beat the file"
        );
        let flags = ServeArgs {
            ca_rotation_margin_days: Some(MAX_CA_ROTATION_MARGIN_DAYS + 1),
            ..Default::default()
        };
        let err = Settings::resolve(&global, &flags).unwrap_err().to_string();
        assert!(err.contains("ca-rotation-margin-days"), "{err}");
    }

    #[test]
    fn ocsp_url_only_when_configured_and_checked() {
        let resolve = |text: &str, flag: Option<&str>| {
            let serve = ServeArgs {
                ocsp_url: flag.map(str::to_owned),
                ..Default::default()
            };
            resolve_file(text, &serve)
        };
        let s = resolve("", None).unwrap();
        assert_eq!(s.ocsp, OcspConfig::default());
        assert_eq!(s.ocsp.leaf_url("5efda6aea3f2ed2e7dd6ce05"), None);
        let s = resolve(
            "ocsp-url = \"http://ocsp.example:8080/\"\nocsp-validity-secs = 600\nrate-limit-ocsp-per-minute = 5\n",
            None,
        )
        .unwrap();
        assert_eq!(
            s.ocsp.leaf_url("5efda6aea3f2ed2e7dd6ce05").as_deref(),
            Some("http://ocsp.example:8080/api/dbcerts/v1/ocsp/5efda6aea3f2ed2e7dd6ce05")
        );
        assert_eq!((s.ocsp.validity_secs, s.ocsp.requests_per_minute), (600, 5));
        let s = resolve(
            "ocsp-url = \"http://file.example\"\n",
            Some("https://flag.example"),
        )
        .unwrap();
        assert_eq!(
            s.ocsp.responder_url.as_deref(),
            Some("https://flag.example"),
            "flags beat the file"
        );
        for bad in [
            "ocsp-url = \"ftp://x\"\n",
            "ocsp-url = \"http://x/a b\"\n",
            "ocsp-url = \"http://x/?q=1\"\n",
            "ocsp-validity-secs = 59\n",
            "ocsp-validity-secs = 604801\n",
            "rate-limit-ocsp-per-minute = 0\n",
        ] {
            assert!(resolve(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_listen_on_loopback_unless_configured() {
        let s = Settings::resolve(&GlobalArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(s.metrics_listen, DEFAULT_METRICS_LISTEN.parse().unwrap());
        assert!(s.metrics_listen.ip().is_loopback());
        assert!(!s.allow_readable_data_dir);
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

    #[test]
    fn crl_timing_from_flags_over_file_and_refresh_before_expiry() {
        let resolve = |text: &str, serve: ServeArgs| resolve_file(text, &serve);
        let d = resolve("", ServeArgs::default()).unwrap().crl;
        assert_eq!(d, dbcerts_server::crl::CrlConfig::default());
        assert_eq!(
            (
                d.validity_secs,
                d.refresh_secs,
                d.backdate_secs,
                d.distribution
            ),
            (604_800, 86_400, 300, false)
        );
        let file = "crl-validity-secs = 7200\ncrl-refresh-secs = 600\ncrl-backdate-secs = 0\ncrl-distribution = true\n";
        let f = resolve(file, ServeArgs::default()).unwrap().crl;
        assert_eq!(
            (
                f.validity_secs,
                f.refresh_secs,
                f.backdate_secs,
                f.distribution
            ),
            (7200, 600, 0, true)
        );
        let flags = ServeArgs {
            crl_refresh_secs: Some(900),
            crl_distribution: Some(false),
            ..Default::default()
        };
        let both = resolve(file, flags).unwrap().crl;
        assert_eq!((both.refresh_secs, both.distribution), (900, false));
        // The distribution URL's allowance per address: 60 a minute, or the file's; never 0.
        assert_eq!(d.distribution_requests_per_minute, 60);
        let limited = resolve(
            "rate-limit-crl-distribution-per-minute = 5\n",
            ServeArgs::default(),
        )
        .unwrap()
        .crl;
        assert_eq!(limited.distribution_requests_per_minute, 5);
        let err = resolve(
            "rate-limit-crl-distribution-per-minute = 0\n",
            ServeArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rate-limit-crl-distribution-per-minute must be positive"),
            "{err}"
        );
        // A CRL rebuilt only after it expired would lock every client out of mongod.
        let err = resolve(
            "crl-validity-secs = 600\ncrl-refresh-secs = 600\n",
            ServeArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("crl-refresh-secs"), "{err}");
        for bad in [
            "crl-validity-secs = 0\n",
            "crl-refresh-secs = -1\n",
            "crl-backdate-secs = -5\n",
        ] {
            assert!(resolve(bad, ServeArgs::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn revocation_keys_from_file_and_flags() {
        let resolve = |text: &str, serve: ServeArgs| resolve_file(text, &serve);
        let default = resolve("", ServeArgs::default()).unwrap().revocation;
        assert_eq!(default, RevocationConfig::default());
        assert!(default.revoke_on_user_delete);
        assert_eq!(default.expiring_within_secs, 30 * 86_400);
        let file = "revoke-on-user-delete = false\ncert-expiring-days = 7\n";
        let from_file = resolve(file, ServeArgs::default()).unwrap().revocation;
        assert!(!from_file.revoke_on_user_delete);
        assert_eq!(from_file.expiring_within_secs, 7 * 86_400);
        // Flags (and so DBCERTS_* variables) win over the file.
        let serve = ServeArgs {
            revoke_on_user_delete: Some(true),
            cert_expiring_days: Some(60),
            ..Default::default()
        };
        let flags = resolve(file, serve).unwrap().revocation;
        assert!(flags.revoke_on_user_delete);
        assert_eq!(flags.expiring_within_secs, 60 * 86_400);
        let err = resolve("cert-expiring-days = 0\n", ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cert-expiring-days"), "{err}");
    }

    #[test]
    fn digest_replay_check_is_node_or_store() {
        let resolve = |text: &str| resolve_file(text, &ServeArgs::default());
        assert_eq!(resolve("").unwrap().digest_replay_check, ReplayCheck::Node);
        let store = resolve("digest-replay-check = \"store\"\n").unwrap();
        assert_eq!(store.digest_replay_check, ReplayCheck::Store);
        let node = resolve("digest-replay-check = \"node\"\n").unwrap();
        assert_eq!(node.digest_replay_check, ReplayCheck::Node);
        let err = resolve("digest-replay-check = \"cluster\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("digest-replay-check") && err.contains("cluster"),
            "{err}"
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let only_cert = ServeArgs {
            tls_cert: Some("cert.pem".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&GlobalArgs::default(), &only_cert)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-key is not"), "{err}");
        let only_key = ServeArgs {
            tls_key: Some("key.pem".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&GlobalArgs::default(), &only_key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cert is not"), "{err}");
    }

    #[test]
    fn tls_and_plaintext_keys_layer_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbcerts.toml");
        std::fs::write(
            &path,
            "tls-cert = \"/etc/dbcerts/cert.pem\"\ntls-key = \"/etc/dbcerts/key.pem\"\nallow-plaintext = true\n",
        )
        .unwrap();
        let global = GlobalArgs {
            config: Some(path),
            ..Default::default()
        };
        let s = Settings::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: "/etc/dbcerts/cert.pem".into(),
                key: "/etc/dbcerts/key.pem".into(),
            })
        );
        assert!(s.allow_plaintext);
        let flags = ServeArgs {
            tls_key: Some("other-key.pem".into()),
            allow_plaintext: Some(false),
            ..Default::default()
        };
        let s = Settings::resolve(&global, &flags).unwrap();
        assert_eq!(s.tls.unwrap().key, PathBuf::from("other-key.pem"));
        assert!(
            !s.allow_plaintext,
            "a flag (or env) of false beats the file"
        );
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let resolve = |listen: &str, tls: bool, allow: Option<bool>| {
            let serve = ServeArgs {
                listen: Some(listen.into()),
                tls_cert: tls.then(|| "cert.pem".into()),
                tls_key: tls.then(|| "key.pem".into()),
                allow_plaintext: allow,
                ..Default::default()
            };
            Settings::resolve(&GlobalArgs::default(), &serve)
                .unwrap()
                .check_transport()
        };
        for loopback in [
            "127.0.0.1:8080",
            "127.1.2.3:0",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            resolve(loopback, false, None).unwrap();
        }
        for network in [
            "0.0.0.0:0",
            "[::]:8080",
            "192.0.2.7:443",
            "[2001:db8::1]:443",
        ] {
            let err = resolve(network, false, None).unwrap_err().to_string();
            assert!(err.contains("private keys and bearer tokens"), "{err}");
            assert!(err.contains("--tls-cert"), "{err}");
            assert!(err.contains("--allow-plaintext"), "{err}");
            resolve(network, false, Some(true)).unwrap();
            resolve(network, true, None).unwrap();
            assert!(resolve(network, false, Some(false)).is_err());
        }
    }
}
