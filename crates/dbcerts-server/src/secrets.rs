//! The master key and the secrets every node shares through the store.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use dbcerts_ca::sealing::MasterKey;
use dbcerts_store::Store;
use zeroize::Zeroizing;

use crate::auth::digest::NonceKey;

const CHECK_NAME: &str = "master-key-check";
const CHECK_PLAINTEXT: &[u8] = b"dbcerts master key check v1";
const NONCE_KEY_NAME: &str = "digest-nonce-key";

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Base64 text given directly (the `DBCERTS_MASTER_KEY` environment variable).
    Inline(Zeroizing<String>),
    /// A file holding the base64 text; it must not be readable by group or others.
    File(std::path::PathBuf),
    /// A file in the data directory, generated (mode 0600) on first start.
    Generated(std::path::PathBuf),
}

/// Loads the master key, generating it into the data directory on first start.
/// Returns the key and whether it was newly generated.
pub fn load_master_key(source: &MasterKeySource) -> anyhow::Result<(MasterKey, bool)> {
    match source {
        MasterKeySource::Inline(text) => Ok((MasterKey::from_base64(text)?, false)),
        MasterKeySource::File(path) => Ok((read_key_file(path)?, false)),
        MasterKeySource::Generated(path) => {
            if path.exists() {
                return Ok((read_key_file(path)?, false));
            }
            let (key, text) = MasterKey::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| anyhow::anyhow!("creating master key file {}: {e}", path.display()))?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            Ok((key, true))
        }
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("reading master key file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "master key file {} is readable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    MasterKey::from_base64(&text)
        .map_err(|e| anyhow::anyhow!("master key file {}: {e}", path.display()))
}

/// Checks that `master` is the key this store's secrets were sealed with (recording a check
/// value on first use), so that a wrong key stops startup instead of failing later.
pub async fn verify_master_key(store: &dyn Store, master: &MasterKey) -> anyhow::Result<()> {
    let sealed = store
        .get_or_insert_secret(CHECK_NAME, &master.seal(CHECK_PLAINTEXT, CHECK_NAME))
        .await?;
    if opens_check_value(master, &sealed) {
        Ok(())
    } else {
        anyhow::bail!(
            "the master key does not match this database (it was sealed with another key)"
        )
    }
}

/// The name under which a store keeps its master-key check value.
pub const MASTER_KEY_CHECK: &str = CHECK_NAME;

/// Whether `sealed` is a master-key check value sealed under `master`. A store that has no check
/// value was never used by dbcerts; one whose value does not open was sealed with another key.
pub fn opens_check_value(master: &MasterKey, sealed: &[u8]) -> bool {
    master
        .open(sealed, CHECK_NAME)
        .is_ok_and(|p| p.as_slice() == CHECK_PLAINTEXT)
}

/// The Digest nonce key shared by every node of this store.
pub async fn nonce_key(
    store: &dyn Store,
    master: &MasterKey,
    lifetime_secs: i64,
) -> anyhow::Result<NonceKey> {
    let mut fresh = Zeroizing::new([0u8; 32]);
    dbcerts_ca::fill_random(fresh.as_mut());
    let sealed = store
        .get_or_insert_secret(NONCE_KEY_NAME, &master.seal(fresh.as_ref(), NONCE_KEY_NAME))
        .await?;
    let key = master.open(&sealed, NONCE_KEY_NAME)?;
    let key: [u8; 32] = key
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("stored nonce key has the wrong length"))?;
    Ok(NonceKey::new(key, lifetime_secs))
}
