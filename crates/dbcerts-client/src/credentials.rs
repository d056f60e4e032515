//! Credentials and secret strings.
//!
//! Owns the types that hold secret material: [`Secret`] (a string that is zeroized when dropped
//! and never shown by `Debug`) and [`Credentials`]. Nothing here may print, log or compare a
//! secret; code that needs the value calls [`Secret::expose`] at the point of use.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A secret string (private key, client secret, access token, password): wiped from memory
/// when dropped, and shown as `[redacted]` by `Debug`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret value. Call this only where the value is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

/// How the client authenticates.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A programmatic API key, sent with HTTP Digest (RFC 7616): the public key is the user
    /// name, the private key the password.
    ApiKey {
        /// The public key (8 lowercase letters on Atlas and dbcerts).
        public: String,
        /// The private key (a UUID).
        private: Secret,
    },
    /// A service account, which exchanges its client id and secret for OAuth 2.0 bearer
    /// tokens at `POST {base}/api/oauth/token` (client-credentials grant).
    ServiceAccount {
        /// The client id (`mdb_sa_id_…`).
        client_id: String,
        /// The client secret (`mdb_sa_sk_…`).
        secret: Secret,
    },
}

impl Credentials {
    /// API key credentials.
    pub fn api_key(public: impl Into<String>, private: impl Into<Secret>) -> Credentials {
        Credentials::ApiKey {
            public: public.into(),
            private: private.into(),
        }
    }

    /// Service account credentials.
    pub fn service_account(client_id: impl Into<String>, secret: impl Into<Secret>) -> Credentials {
        Credentials::ServiceAccount {
            client_id: client_id.into(),
            secret: secret.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let key = Credentials::api_key("abcdefgh", "0d9c6a4e-7f1b-4c8e-9a4f-1e2d3c4b5a69");
        let sa = Credentials::service_account("mdb_sa_id_1", "mdb_sa_sk_topsecretvalue");
        let shown = format!("{key:?} {sa:?} {:?}", Secret::new("hunter22"));
        assert!(shown.contains("abcdefgh") && shown.contains("mdb_sa_id_1"));
        for secret in ["0d9c6a4e", "topsecret", "hunter22"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn secrets_round_trip_through_serde() {
        let s: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"abc\"");
    }
}
