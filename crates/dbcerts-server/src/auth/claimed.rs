//! How a failed authentication names who the client claimed to be, in the log and the audit
//! log. A known principal (an API key's public key, a service account's client id) is recorded
//! as it is. Anything else may be a secret typed into the wrong field (an API private key as
//! the Digest username, a service-account secret as `client_id`), so it is recorded only as its
//! length and a short keyed hash, `unknown:len=36:h=3fa2c1d0`. Every node of a deployment
//! derives the same hash key from the shared nonce key, so repeated attempts with the same text
//! can be told apart and correlated across nodes; without the key the hash says nothing about
//! the text, and its 32 bits could not confirm a guessed secret even with it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::AppState;
use crate::auth::digest::NonceKey;
use crate::error::AtlasError;

/// The label under which the hash key is derived from the nonce key.
const KEY_LABEL: &[u8] = b"dbcerts claimed-identity hash key v1";
/// Hex digits of the keyed hash that are recorded.
const HASH_HEX: usize = 8;

/// How `claimed` is recorded: as it is when it names a `known` principal (or is empty: nothing
/// was claimed), else as `unknown:len=<characters>:h=<keyed hash>`.
pub fn recorded(state: &AppState, claimed: &str, known: bool) -> String {
    if known || claimed.is_empty() {
        claimed.to_owned()
    } else {
        unknown(&state.inner.nonce_key, claimed)
    }
}

/// How a Digest username is recorded: it is known when an API key has it as its public key.
pub async fn api_key_username(state: &AppState, username: &str) -> Result<String, AtlasError> {
    let known = !username.is_empty() && state.inner.store.get_api_key(username).await?.is_some();
    Ok(recorded(state, username, known))
}

fn unknown(key: &NonceKey, claimed: &str) -> String {
    let hash_key = key.derive(KEY_LABEL);
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(hash_key.as_ref()).expect("HMAC takes any key");
    mac.update(claimed.as_bytes());
    let hash = hex::encode(mac.finalize().into_bytes());
    format!(
        "unknown:len={}:h={}",
        claimed.chars().count(),
        &hash[..HASH_HEX]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_claims_keep_only_a_length_and_a_keyed_hash() {
        let key = NonceKey::new([3; 32], 300);
        let secret = "0f3c2b1a-9d8e-4f70-a1b2-c3d4e5f60718";
        let shown = unknown(&key, secret);
        assert!(shown.starts_with("unknown:len=36:h="), "{shown}");
        assert_eq!(shown.len(), "unknown:len=36:h=".len() + HASH_HEX);
        assert!(shown[17..].bytes().all(|b| b.is_ascii_hexdigit()));
        for part in [&secret[..8], &secret[9..13], &secret[24..]] {
            assert!(!shown.contains(part), "{shown} holds {part}");
        }
        // Stable for one deployment (every node derives the same key), so attempts correlate;
        // another deployment's key gives another hash.
        assert_eq!(unknown(&NonceKey::new([3; 32], 60), secret), shown);
        assert_ne!(unknown(&NonceKey::new([4; 32], 300), secret), shown);
        assert_ne!(unknown(&key, "0f3c2b1a-9d8e-4f70-a1b2-c3d4e5f60719"), shown);
        // Length in characters, not bytes.
        assert!(unknown(&key, "é").starts_with("unknown:len=1:h="));
    }
}
