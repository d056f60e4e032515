//! Sealing secrets at rest under the master key.
//!
//! Sealed blobs are `version (1 byte) || nonce (12 bytes) || AES-256-GCM ciphertext || tag`.
//! The associated data names what the blob is for (for example `ca-key:<groupId>`), so a sealed
//! CA key copied onto another project's row does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::CaError;

const VERSION: u8 = 1;
/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// The key that seals CA keys and API-key secrets at rest. It never prints itself.
pub struct MasterKey {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([secret elided])")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, CaError> {
        if bytes.len() != MASTER_KEY_LEN {
            return Err(CaError::MasterKey(format!(
                "expected {MASTER_KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| CaError::MasterKey("rejected by AES-256-GCM".into()))?;
        Ok(MasterKey { key })
    }

    /// Parses the text form: base64 of 32 bytes, surrounding white space ignored.
    pub fn from_base64(text: &str) -> Result<MasterKey, CaError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CaError::MasterKey("not valid base64".into()))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Generates a new random key and returns it with its text form (for writing to a file).
    pub fn generate() -> (MasterKey, Zeroizing<String>) {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        crate::fill_random(bytes.as_mut());
        let text = Zeroizing::new(STANDARD.encode(bytes.as_ref()));
        let key = MasterKey::from_bytes(bytes.as_ref()).expect("32 random bytes are a valid key");
        (key, text)
    }

    pub fn seal(&self, plaintext: &[u8], purpose: &str) -> Vec<u8> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(purpose.as_bytes()), &mut in_out)
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&in_out);
        in_out.fill(0);
        out
    }

    pub fn open(&self, sealed: &[u8], purpose: &str) -> Result<Zeroizing<Vec<u8>>, CaError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(CaError::Unseal);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| CaError::Unseal)?;
        let mut in_out = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::from(&nonce),
                Aad::from(purpose.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| CaError::Unseal)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_purpose_binding() {
        let (key, text) = MasterKey::generate();
        let sealed = key.seal(b"secret", "ca-key:aaa");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*key.open(&sealed, "ca-key:aaa").unwrap(), b"secret");
        assert!(key.open(&sealed, "ca-key:bbb").is_err());
        let same = MasterKey::from_base64(&text).unwrap();
        assert_eq!(&*same.open(&sealed, "ca-key:aaa").unwrap(), b"secret");
        let (other, _) = MasterKey::generate();
        assert!(other.open(&sealed, "ca-key:aaa").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(&tampered, "ca-key:aaa").is_err());
    }

    #[test]
    fn rejects_bad_master_keys() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64("AAAA").is_err());
        assert!(format!("{:?}", MasterKey::generate().0).contains("elided"));
    }
}
