//! First start: create the organization and an Organization Owner API key, and hand the key to
//! the operator in `<data-dir>/bootstrap-credentials.json` (mode 0600). The secret is never
//! logged; only the file's path is.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use dbcerts_ca::sealing::MasterKey;
use dbcerts_store::{ApiKeyRecord, Org, Store};
use serde::Serialize;

/// A new 24-hex id: 4 bytes of seconds since the epoch and 8 random bytes, like a MongoDB
/// ObjectId, so ids sort roughly by creation time.
pub fn new_object_id() -> String {
    let mut raw = [0u8; 12];
    let secs = chrono::Utc::now().timestamp() as u32;
    raw[..4].copy_from_slice(&secs.to_be_bytes());
    dbcerts_ca::fill_random(&mut raw[4..]);
    hex::encode(raw)
}

/// A new programmatic API key pair in Atlas's shapes: an 8-letter lowercase public key and a
/// UUID private key.
pub fn new_api_key_pair() -> (String, zeroize::Zeroizing<String>) {
    let mut raw = [0u8; 8];
    dbcerts_ca::fill_random(&mut raw);
    let public: String = raw.iter().map(|b| char::from(b'a' + b % 26)).collect();
    let mut uuid_bytes = [0u8; 16];
    dbcerts_ca::fill_random(&mut uuid_bytes);
    let private = uuid::Builder::from_random_bytes(uuid_bytes)
        .into_uuid()
        .to_string();
    (public, zeroize::Zeroizing::new(private))
}

/// A new API key of organization `org_id`, its private key sealed under `master`. Returns the
/// record and the private key, which the caller shows once and drops.
pub fn new_api_key(
    master: &MasterKey,
    org_id: &str,
    description: &str,
    org_roles: Vec<String>,
) -> (ApiKeyRecord, zeroize::Zeroizing<String>) {
    let (public_key, private_key) = new_api_key_pair();
    let record = ApiKeyRecord {
        id: new_object_id(),
        org_id: org_id.to_owned(),
        sealed_private_key: master.seal(private_key.as_bytes(), &api_key_purpose(&public_key)),
        public_key,
        description: description.to_owned(),
        org_roles,
        created: chrono::Utc::now().timestamp(),
    };
    (record, private_key)
}

/// The sealing purpose of an API key's private key.
pub fn api_key_purpose(public_key: &str) -> String {
    format!("api-key:{public_key}")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapFile<'a> {
    org_id: &'a str,
    public_key: &'a str,
    private_key: &'a str,
}

/// Bootstraps an empty store. Returns the credentials file's path when it did.
pub async fn bootstrap_if_empty(
    store: &dyn Store,
    master: &MasterKey,
    data_dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let path = data_dir.join("bootstrap-credentials.json");
    let tmp = data_dir.join(".bootstrap-credentials.json.tmp");
    if !store.is_empty().await? {
        // A crash (or a lost commit acknowledgement) after the commit but before the rename left
        // the credentials in `tmp`. They are ours only if their key is in the store: with
        // several nodes, another node may have bootstrapped while this one waited.
        if tmp.exists() && !path.exists() {
            if pending_key_committed(store, &tmp).await? {
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(data_dir)?.sync_all()?;
                return Ok(Some(path));
            }
            std::fs::remove_file(&tmp)?;
        }
        return Ok(None);
    }
    let now = chrono::Utc::now().timestamp();
    let org = Org {
        id: new_object_id(),
        name: "dbcerts".to_owned(),
        created: now,
    };
    let (key, private_key) = new_api_key(
        master,
        &org.id,
        "bootstrap Organization Owner key",
        vec!["ORG_OWNER".to_owned()],
    );
    let public_key = key.public_key.clone();
    // The file is written and synced before the key is committed, and renamed into place
    // after: a crash in between leaves either no key (bootstrap runs again) or a file that the
    // next start moves into place.
    let body = zeroize::Zeroizing::new(serde_json::to_vec_pretty(&BootstrapFile {
        org_id: &org.id,
        public_key: &public_key,
        private_key: &private_key,
    })?);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&body)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    match store.bootstrap_first_org(&org, &key).await {
        Ok(true) => {}
        // Another node sharing the database bootstrapped it a moment ago; its operator has
        // the credentials.
        Ok(false) => {
            let _ = std::fs::remove_file(&tmp);
            return Ok(None);
        }
        // The commit may have happened even so (an acknowledgement lost with the connection):
        // `tmp` stays, and the next start keeps it if its key is in the store.
        Err(e) => return Err(e.into()),
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(Some(path))
}

/// Whether the key in a pending credentials file was committed.
async fn pending_key_committed(store: &dyn Store, tmp: &Path) -> anyhow::Result<bool> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Pending {
        public_key: String,
    }
    let text = zeroize::Zeroizing::new(std::fs::read(tmp)?);
    let Ok(pending) = serde_json::from_slice::<Pending>(&text) else {
        return Ok(false);
    };
    Ok(store.get_api_key(&pending.public_key).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_and_key_shapes() {
        let id = new_object_id();
        assert!(crate::params::is_object_id(&id));
        let (public, private) = new_api_key_pair();
        assert_eq!(public.len(), 8);
        assert!(public.bytes().all(|b| b.is_ascii_lowercase()));
        assert_eq!(
            uuid::Uuid::parse_str(&private).unwrap().get_version_num(),
            4
        );
    }
}
