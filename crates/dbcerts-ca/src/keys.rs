//! Key algorithms and single-use leaf keys.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, RsaKeySize, SignatureAlgorithm};

use crate::CaError;

/// The key algorithm a server issues with. Atlas uses RSA-4096; the others trade compatibility
/// with Atlas's exact profile for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa4096,
    Rsa2048,
    EcdsaP256,
    EcdsaP384,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 4] = [
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ];

    /// The name used on the command line, in config and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        }
    }

    /// Whether generating a key of this kind, and signing with one, is cheap enough (tens of
    /// microseconds: ECDSA) to do on an async worker thread. Handing such work to a blocking
    /// thread costs more in wake-ups than it saves; RSA (milliseconds to sign, up to a second to
    /// generate) must not block the runtime.
    pub fn is_cheap(self) -> bool {
        matches!(self, KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384)
    }

    /// The signature algorithm a key of this kind signs with: sha256WithRSAEncryption for RSA
    /// (the Atlas profile), ecdsa-with-SHA256 for P-256 and ecdsa-with-SHA384 for P-384.
    pub(crate) fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::Rsa4096 | KeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// Generates a fresh single-use leaf key. RSA-4096 takes the better part of a second of one
    /// core.
    pub fn generate(self) -> Result<LeafKey, CaError> {
        Ok(LeafKey {
            pair: self.generate_pair()?,
            algorithm: self,
        })
    }

    /// Generates a key pair (for a leaf or a CA).
    pub(crate) fn generate_pair(self) -> Result<KeyPair, CaError> {
        let alg = self.signature_algorithm();
        match self {
            KeyAlgorithm::Rsa4096 => KeyPair::generate_rsa_for(alg, RsaKeySize::_4096),
            KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(alg, RsaKeySize::_2048),
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(alg),
        }
        .map_err(|e| CaError::KeyGeneration(e.to_string()))
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown key algorithm {s:?}; expected one of rsa-4096, rsa-2048, ecdsa-p256, ecdsa-p384")
            })
    }
}

/// A private key that is used for exactly one certificate and then handed to the client. It is
/// never stored or logged: its `Debug` output is elided, and its PKCS#8 bytes are wiped on drop
/// (aws-lc wipes its own copy when it frees the key).
pub struct LeafKey {
    pub(crate) pair: KeyPair,
    pub(crate) algorithm: KeyAlgorithm,
}

impl Drop for LeafKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pair);
    }
}

impl LeafKey {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

impl fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafKey")
            .field("algorithm", &self.algorithm)
            .field("key", &"[secret key elided]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.as_str().parse::<KeyAlgorithm>().unwrap(), alg);
        }
        assert!("rsa-1024".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn debug_never_prints_key_material() {
        let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
        let printed = format!("{key:?}");
        assert!(printed.contains("elided"));
        assert!(!printed.contains("PRIVATE"));
    }
}
