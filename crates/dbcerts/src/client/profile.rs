//! Profiles, the environment, and the service-account token cache.
//!
//! Settings come from flags, then the environment (`DBCERTS_*`, then the atlas CLI's
//! `MONGODB_ATLAS_*`), then the selected profile of `<config dir>/dbcerts/config.toml`, a TOML
//! table per profile with the atlas CLI's key names. The file and the token cache hold secrets:
//! both are written with mode 0600 in directories of mode 0700, atomically (a temporary file
//! renamed over the old one), and read into memory that is wiped afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use dbcerts_client::{CachedToken, Credentials, Secret};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::output::{CliError, Exit};

/// The base URL when nothing names one: `dbcerts serve`'s default address.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// One profile, with the atlas CLI's key names (plus `base_url`). The secrets are [`Secret`]s:
/// wiped from memory when dropped, `[redacted]` in `Debug`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// The keys `config set` accepts, and whether each is a secret.
pub const PROPERTIES: [(&str, bool); 8] = [
    ("base_url", false),
    ("public_api_key", false),
    ("private_api_key", true),
    ("client_id", false),
    ("client_secret", true),
    ("org_id", false),
    ("project_id", false),
    ("output", false),
];

impl Profile {
    /// Sets the setting named `property` (`config set`); `false` for an unknown name.
    pub fn set(&mut self, property: &str, value: String) -> bool {
        let plain = match property {
            "private_api_key" => {
                self.private_api_key = Some(Secret::new(value));
                return true;
            }
            "client_secret" => {
                self.client_secret = Some(Secret::new(value));
                return true;
            }
            "base_url" => &mut self.base_url,
            "public_api_key" => &mut self.public_api_key,
            "client_id" => &mut self.client_id,
            "org_id" => &mut self.org_id,
            "project_id" => &mut self.project_id,
            "output" => &mut self.output,
            _ => return false,
        };
        *plain = Some(value);
        true
    }

    /// `(key, shown value)` of every setting present, in `PROPERTIES` order; secrets masked.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        let mask = |s: &Option<Secret>| s.as_ref().map(|_| "********".to_owned());
        let values = [
            self.base_url.clone(),
            self.public_api_key.clone(),
            mask(&self.private_api_key),
            self.client_id.clone(),
            mask(&self.client_secret),
            self.org_id.clone(),
            self.project_id.clone(),
            self.output.clone(),
        ];
        PROPERTIES
            .iter()
            .zip(values)
            .filter_map(|(&(key, _), value)| Some((key, value?)))
            .collect()
    }
}

/// The profiles file.
#[derive(Debug, Default)]
pub struct ProfileFile {
    pub path: PathBuf,
    pub profiles: BTreeMap<String, Profile>,
}

/// `<config dir>/dbcerts/config.toml` (`$XDG_CONFIG_HOME`, else `~/.config`, on Linux).
pub fn profiles_path() -> Result<PathBuf, CliError> {
    dirs::config_dir()
        .map(|d| d.join("dbcerts").join("config.toml"))
        .ok_or_else(|| CliError::new(Exit::Usage, "cannot find the home directory; set HOME"))
}

impl ProfileFile {
    /// Reads the profiles file; a missing file is an empty one.
    pub fn load() -> Result<ProfileFile, CliError> {
        let path = profiles_path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProfileFile {
                    path,
                    profiles: BTreeMap::new(),
                });
            }
            Err(e) => return Err(CliError::local(format!("{}: {e}", path.display()))),
        };
        warn_if_readable_by_others(&path);
        // The error's Display quotes the offending line, which may hold a secret: report the
        // position and the message only.
        let profiles = toml::from_str(&text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map_or(String::new(), |l| format!(" line {l}:"));
            CliError::new(
                Exit::Usage,
                format!("{}:{at} {}", path.display(), one_line(e.message())),
            )
        })?;
        Ok(ProfileFile { path, profiles })
    }

    /// Writes the file: mode 0600, directory 0700, replaced atomically.
    pub fn save(&self) -> Result<(), CliError> {
        let text = Zeroizing::new(
            toml::to_string(&self.profiles)
                .map_err(|e| CliError::local(format!("cannot encode the profiles: {e}")))?,
        );
        write_private_atomically(&self.path, text.as_bytes())
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "Warning: {} holds credentials but other users can read it; run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left as they are).
pub fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::local(format!("cannot create {}: {e}", dir.display())))
}

/// Writes `bytes` to `path` through a 0600 temporary file in the same directory, renamed over
/// any old file once it is synced.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let fail = |e: std::io::Error| CliError::local(format!("cannot write {}: {e}", path.display()));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// What the environment says, looked up through a function so tests need not touch the real
/// environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment; empty values count as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The first of `DBCERTS_<name>`, `MONGODB_ATLAS_<name>` that is set.
fn lookup(env: Env, name: &str) -> Option<String> {
    env(&format!("DBCERTS_{name}")).or_else(|| env(&format!("MONGODB_ATLAS_{name}")))
}

/// Settings after flags, environment and profile are combined.
#[derive(Debug)]
pub struct Resolved {
    pub profile: String,
    pub base_url: String,
    pub credentials: Option<Credentials>,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub output: Option<String>,
}

/// The profile name: the flag, else `DBCERTS_PROFILE`, else `default`.
pub fn profile_name(flag: Option<&str>, env: Env) -> String {
    flag.map(str::to_owned)
        .or_else(|| env("DBCERTS_PROFILE"))
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned())
}

/// Combines the environment and `profile` (flags are applied by the commands).
pub fn resolve(name: String, profile: Option<&Profile>, env: Env) -> Result<Resolved, CliError> {
    let empty = Profile::default();
    let p = profile.unwrap_or(&empty);
    let from_env = credentials_from(
        lookup(env, "PUBLIC_API_KEY"),
        lookup(env, "PRIVATE_API_KEY").map(Secret::new),
        lookup(env, "CLIENT_ID"),
        lookup(env, "CLIENT_SECRET").map(Secret::new),
        "the environment (DBCERTS_* / MONGODB_ATLAS_*)",
    )?;
    let env_base_url = lookup(env, "BASE_URL");
    // Credentials from the environment go only to a server the environment names: the atlas
    // CLI's variables often hold real Atlas keys, which must not be sent to the profile's
    // server (or to the local default).
    let from_env = match (from_env, &env_base_url) {
        (Some(_), None) => {
            eprintln!(
                "Warning: ignoring API credentials in the environment because \
                 MONGODB_ATLAS_BASE_URL (or DBCERTS_BASE_URL) is not set"
            );
            None
        }
        (c, _) => c,
    };
    let credentials = match from_env {
        Some(c) => Some(c),
        None => credentials_from(
            p.public_api_key.clone(),
            p.private_api_key.clone(),
            p.client_id.clone(),
            p.client_secret.clone(),
            &format!("profile {name:?}"),
        )?,
    };
    Ok(Resolved {
        base_url: env_base_url
            .or_else(|| p.base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
        credentials,
        org_id: lookup(env, "ORG_ID").or_else(|| p.org_id.clone()),
        project_id: lookup(env, "PROJECT_ID").or_else(|| p.project_id.clone()),
        output: lookup(env, "OUTPUT").or_else(|| p.output.clone()),
        profile: name,
    })
}

/// An API key pair, else a service account, else nothing; half a pair is an error.
fn credentials_from(
    public: Option<String>,
    private: Option<Secret>,
    client_id: Option<String>,
    secret: Option<Secret>,
    source: &str,
) -> Result<Option<Credentials>, CliError> {
    let half = |have: &str, missing: &str| {
        CliError::new(
            Exit::Usage,
            format!("{source} has a {have} but no {missing}"),
        )
    };
    match (public, private, client_id, secret) {
        (Some(p), Some(k), _, _) => Ok(Some(Credentials::api_key(p, k))),
        (Some(_), None, _, _) => Err(half("public API key", "private API key")),
        (None, Some(_), _, _) => Err(half("private API key", "public API key")),
        (None, None, Some(id), Some(s)) => Ok(Some(Credentials::service_account(id, s))),
        (None, None, Some(_), None) => Err(half("client ID", "client secret")),
        (None, None, None, Some(_)) => Err(half("client secret", "client ID")),
        (None, None, None, None) => Ok(None),
    }
}

/// Where a service account's token is kept between runs:
/// `<cache dir>/dbcerts/tokens/<hash of base URL and client ID>.json`, mode 0600.
#[derive(Debug, Clone)]
pub struct TokenCache {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct StoredToken {
    access_token: Secret,
    /// Unix seconds from which the token is renewed before use.
    renew_at: u64,
}

impl TokenCache {
    /// The cache of `client_id` at `base_url`; `None` without a cache directory.
    pub fn new(base_url: &str, client_id: &str) -> Option<TokenCache> {
        let mut h = Sha256::new();
        h.update(base_url.trim_end_matches('/').as_bytes());
        h.update(b"\n");
        h.update(client_id.as_bytes());
        let name = format!("{}.json", &hex::encode(h.finalize())[..32]);
        Some(TokenCache {
            path: dirs::cache_dir()?.join("dbcerts").join("tokens").join(name),
        })
    }

    /// The cached token, if readable (anything else counts as no token).
    pub fn load(&self) -> Option<CachedToken> {
        let text = Zeroizing::new(std::fs::read_to_string(&self.path).ok()?);
        let stored: StoredToken = serde_json::from_str(&text).ok()?;
        Some(CachedToken {
            token: stored.access_token,
            renew_at: SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(stored.renew_at))?,
        })
    }

    /// Keeps `token` for the next run.
    pub fn store(&self, token: &CachedToken) -> Result<(), CliError> {
        let renew_at = token
            .renew_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let text = Zeroizing::new(
            serde_json::to_string(&StoredToken {
                access_token: token.token.clone(),
                renew_at,
            })
            .map_err(|e| CliError::local(format!("cannot encode the token: {e}")))?,
        );
        write_private_atomically(&self.path, text.as_bytes())
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn profile() -> Profile {
        Profile {
            base_url: Some("http://profile.invalid".into()),
            public_api_key: Some("profilekey".into()),
            private_api_key: Some(Secret::new("profile-secret")),
            project_id: Some("p-profile".into()),
            ..Profile::default()
        }
    }

    fn api_key_of(c: &Option<Credentials>) -> Option<&str> {
        match c {
            Some(Credentials::ApiKey { public, .. }) => Some(public),
            _ => None,
        }
    }

    #[test]
    fn the_profile_applies_without_environment() {
        let env = env_of(&[]);
        let r = resolve("default".into(), Some(&profile()), &env).unwrap();
        assert_eq!(r.base_url, "http://profile.invalid");
        assert_eq!(api_key_of(&r.credentials), Some("profilekey"));
        assert_eq!(r.project_id.as_deref(), Some("p-profile"));
    }

    #[test]
    fn atlas_variables_override_the_profile_and_dbcerts_ones_override_atlas() {
        let env = env_of(&[
            ("MONGODB_ATLAS_BASE_URL", "http://atlas.invalid"),
            ("MONGODB_ATLAS_PUBLIC_API_KEY", "atlaskey"),
            ("MONGODB_ATLAS_PRIVATE_API_KEY", "atlas-secret"),
            ("MONGODB_ATLAS_PROJECT_ID", "p-atlas"),
            ("DBCERTS_PROJECT_ID", "p-dbcerts"),
        ]);
        let r = resolve("default".into(), Some(&profile()), &env).unwrap();
        assert_eq!(r.base_url, "http://atlas.invalid");
        assert_eq!(api_key_of(&r.credentials), Some("atlaskey"));
        assert_eq!(r.project_id.as_deref(), Some("p-dbcerts"));
    }

    #[test]
    fn environment_credentials_without_an_environment_base_url_are_not_used() {
        let env = env_of(&[
            ("MONGODB_ATLAS_PUBLIC_API_KEY", "realatlaskey"),
            ("MONGODB_ATLAS_PRIVATE_API_KEY", "real-atlas-secret"),
        ]);
        let r = resolve("default".into(), Some(&profile()), &env).unwrap();
        assert_eq!(r.base_url, "http://profile.invalid");
        assert_eq!(api_key_of(&r.credentials), Some("profilekey"));
        let r = resolve("default".into(), None, &env).unwrap();
        assert!(r.credentials.is_none(), "never sent to the default URL");
    }

    #[test]
    fn a_service_account_in_the_environment_replaces_the_profiles_api_key() {
        let env = env_of(&[
            ("MONGODB_ATLAS_BASE_URL", "http://atlas.invalid"),
            ("MONGODB_ATLAS_CLIENT_ID", "mdb_sa_id_x"),
            ("MONGODB_ATLAS_CLIENT_SECRET", "mdb_sa_sk_y"),
        ]);
        let r = resolve("default".into(), Some(&profile()), &env).unwrap();
        assert!(
            matches!(&r.credentials, Some(Credentials::ServiceAccount { client_id, .. }) if client_id == "mdb_sa_id_x")
        );
    }

    #[test]
    fn half_a_pair_is_a_usage_error_naming_what_is_missing() {
        let env = env_of(&[("MONGODB_ATLAS_PUBLIC_API_KEY", "atlaskey")]);
        let e = resolve("default".into(), Some(&profile()), &env).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("no private API key"), "{}", e.message);
        let env = env_of(&[("DBCERTS_CLIENT_SECRET", "s")]);
        let e = resolve("default".into(), None, &env).unwrap_err();
        assert!(e.message.contains("no client ID"), "{}", e.message);
    }

    #[test]
    fn nothing_configured_means_the_local_default_and_no_credentials() {
        let env = env_of(&[]);
        let r = resolve("default".into(), None, &env).unwrap();
        assert_eq!(r.base_url, DEFAULT_BASE_URL);
        assert!(r.credentials.is_none());
    }

    #[test]
    fn shown_settings_mask_secrets() {
        let shown = profile().shown();
        assert!(shown.contains(&("private_api_key", "********".into())));
        assert!(shown.contains(&("public_api_key", "profilekey".into())));
        assert!(!format!("{shown:?}").contains("profile-secret"));
    }

    #[test]
    fn profile_names_come_from_the_flag_then_the_environment() {
        let env = env_of(&[("DBCERTS_PROFILE", "ci")]);
        assert_eq!(profile_name(Some("dev"), &env), "dev");
        assert_eq!(profile_name(None, &env), "ci");
        assert_eq!(profile_name(None, &env_of(&[])), DEFAULT_PROFILE);
    }
}
