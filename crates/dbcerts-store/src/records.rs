//! The rows the store keeps. Times are Unix seconds, UTC.

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created: i64,
}

/// A programmatic API key. The private key is sealed; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub org_id: String,
    pub public_key: String,
    pub sealed_private_key: Vec<u8>,
    pub description: String,
    pub org_roles: Vec<String>,
    pub created: i64,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("public_key", &self.public_key)
            .field(
                "sealed_private_key",
                &format_args!("[{} sealed bytes]", self.sealed_private_key.len()),
            )
            .field("org_roles", &self.org_roles)
            .finish()
    }
}

/// A project (Atlas "group").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created: i64,
    pub with_default_alerts_settings: bool,
    /// `[{key, value}]` as JSON text.
    pub tags_json: String,
}

/// A project's managed CA. The key is sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct CaRecord {
    pub project_id: String,
    pub algorithm: String,
    pub cert_der: Vec<u8>,
    pub sealed_key: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

impl std::fmt::Debug for CaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaRecord")
            .field("project_id", &self.project_id)
            .field("algorithm", &self.algorithm)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A database user. `doc` is the server's JSON for the fields the store does not index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUserRecord {
    pub project_id: String,
    pub database_name: String,
    pub username: String,
    pub x509_type: String,
    pub created: i64,
    pub doc: String,
}

/// An issued certificate, as stored. There is no private key here, by design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    pub serial: i64,
    pub project_id: String,
    pub username: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    /// When the certificate was issued, in Unix milliseconds. Breaks ties between certificates
    /// whose `not_before` falls in the same second, so the list stays in issuance order.
    pub created_ms: i64,
    pub cert_der: Vec<u8>,
}

/// What the certificate list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub serial: i64,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// A project's user-security settings. `None` fields are unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSecurityRecord {
    pub customer_cas: Option<String>,
    pub ldap_json: Option<String>,
}
