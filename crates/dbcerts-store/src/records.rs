//! The rows the store keeps. Times are Unix seconds, UTC.
//!
//! Records whose fields are their table's columns derive `sqlx::FromRow`; the others are read
//! through private row types in `src/sql/`.

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created: i64,
    pub with_default_alerts_settings: bool,
    /// `[{key, value}]` as JSON text.
    #[sqlx(rename = "tags")]
    pub tags_json: String,
}

/// A project's managed CA. The key is sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct CaRecord {
    /// The row id (`project_cas.id`): what a certificate's `ca_id` names. Ignored on insert
    /// (the store assigns it), filled on read.
    pub id: i64,
    pub project_id: String,
    pub algorithm: String,
    pub cert_der: Vec<u8>,
    pub sealed_key: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// 1 for the project's first CA, then one more per rotation (unique per project).
    pub generation: i64,
    /// Whether it signs new certificates (exactly one CA of a project does). Ignored on insert
    /// (an inserted CA is the active one), filled on read.
    pub active: bool,
    /// Unix seconds at which it was retired (left the trust bundle); `None` while it is not.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for CaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaRecord")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("algorithm", &self.algorithm)
            .field("not_after", &self.not_after)
            .field("generation", &self.generation)
            .field("active", &self.active)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// What [`crate::Store::retire_ca`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetireOutcome {
    /// The project has no CA of that generation.
    NotFound,
    /// That generation is the active one, which cannot be retired.
    Active,
    /// The generation is retired: by this call (`now`) or before (its first time kept).
    Retired { ca: CaRecord, now: bool },
}

/// A CA generation that is not retired, for the expiry gauge.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaExpiry {
    pub project_id: String,
    pub generation: i64,
    pub not_after: i64,
}

/// A database user. `doc` is the server's JSON for the fields the store does not index.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DatabaseUserRecord {
    pub project_id: String,
    pub database_name: String,
    pub username: String,
    pub x509_type: String,
    pub created: i64,
    pub doc: String,
}

/// What [`DatabaseUserRecord::doc`] holds: the fields of a database user the store does not
/// index, as JSON ([`DatabaseUserDoc::to_json`]). The one definition of that text for every
/// writer: the server's createDatabaseUser and updateDatabaseUser, and the benchmark seeder.
/// Keys are written in declaration order; changing a name or the order changes stored bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseUserDoc {
    pub aws_iam_type: String,
    pub ldap_auth_type: String,
    pub oidc_auth_type: String,
    pub roles: Vec<DatabaseUserRole>,
    pub scopes: Vec<DatabaseUserScope>,
    pub labels: Vec<DatabaseUserLabel>,
    pub description: Option<String>,
    /// Unix seconds.
    pub delete_after_date: Option<i64>,
}

/// A role of a [`DatabaseUserDoc`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseUserRole {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection_name: Option<String>,
    pub database_name: String,
    pub role_name: String,
}

/// A scope (cluster, data lake, stream) of a [`DatabaseUserDoc`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseUserScope {
    pub name: String,
    /// `CLUSTER`, `DATA_LAKE` or `STREAM`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A label of a [`DatabaseUserDoc`]; either member may be absent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseUserLabel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl DatabaseUserDoc {
    /// A user with `roles` and nothing else: AWS IAM, LDAP and OIDC types `NONE`, no scopes,
    /// labels, description or deletion date. With the record's `x509_type` `MANAGED` this is
    /// what createDatabaseUser stores for a managed X.509 user given only its roles.
    pub fn with_roles(roles: Vec<DatabaseUserRole>) -> DatabaseUserDoc {
        DatabaseUserDoc {
            aws_iam_type: "NONE".to_owned(),
            ldap_auth_type: "NONE".to_owned(),
            oidc_auth_type: "NONE".to_owned(),
            roles,
            scopes: Vec::new(),
            labels: Vec::new(),
            description: None,
            delete_after_date: None,
        }
    }

    /// The text [`DatabaseUserRecord::doc`] holds.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a user document serializes")
    }

    /// Reads [`DatabaseUserRecord::doc`].
    pub fn from_json(doc: &str) -> serde_json::Result<DatabaseUserDoc> {
        serde_json::from_str(doc)
    }
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
    /// The `project_cas.id` of the CA that signed it.
    pub ca_id: i64,
    /// Set once the certificate is revoked; never changes afterwards.
    pub revocation: Option<Revocation>,
}

/// When and why a certificate was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Unix seconds.
    pub at: i64,
    pub reason: RevocationReason,
}

/// The RFC 5280 CRLReason codes (section 5.3.1) that dbcerts accepts. The discriminant is the
/// code, as the store keeps it and as CRLs and OCSP answers carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    Unspecified = 0,
    KeyCompromise = 1,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 5] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
    ];

    /// The RFC 5280 CRLReason code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason with this code, if dbcerts accepts it.
    pub fn from_code(code: u8) -> Option<RevocationReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The RFC 5280 name (`keyCompromise`, ...), as the API and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
        }
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`RevocationReason::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown revocation reason {0:?}")]
pub struct UnknownReason(pub String);

impl std::str::FromStr for RevocationReason {
    type Err = UnknownReason;

    /// The exact RFC 5280 name; case matters, as in the RFC's ASN.1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

/// Which certificates of one user [`crate::Store::revoke_certificates`] revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeWhich {
    /// The one with this serial (expired or not).
    One(i64),
    /// Every one with `not_after > now`.
    AllUnexpired { now: i64 },
}

/// One write of a group commit ([`crate::Store::commit_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchWrite {
    /// An issued certificate and its audit entry: recorded only while its project has a
    /// `MANAGED` X.509 database user of its name (checked in the batch's transaction, under
    /// the project's lock, which deleting or changing a user takes too).
    Certificate(CertificateRecord, AuditEvent),
    /// An audit entry alone.
    Audit(AuditEvent),
    /// A Digest nonce count a node accepted (the server's `digest-replay-check = "store"`):
    /// recorded when it is higher than every count recorded for `nonce` so far
    /// ([`Recorded::Yes`]), else refused ([`Recorded::CountNotHigher`]: a replay). The record is
    /// kept until `expires` (Unix seconds); the batch removes records expired at `now` (those no
    /// other transaction holds at that moment; the next batch removes the rest).
    DigestNonceCount {
        nonce: String,
        nc: u32,
        expires: i64,
        now: i64,
    },
}

/// What became of one write of [`crate::Store::commit_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded (a certificate with its audit entry).
    Yes,
    /// Not recorded: a certificate with this serial exists already.
    SerialTaken,
    /// Not recorded: the project does not exist (it was deleted meanwhile).
    ProjectGone,
    /// Not recorded: the project has no database user of the certificate's name (on
    /// `$external` or `admin`, where the server looks for it): it was deleted meanwhile,
    /// perhaps through another node whose deletion this node's read cache had not seen yet.
    UserGone,
    /// Not recorded: the project has a database user of the certificate's name, but not a
    /// `MANAGED` X.509 one.
    UserNotManaged,
    /// Not recorded: a count at least as high is recorded for the nonce already.
    CountNotHigher,
}

impl Recorded {
    /// `Ok` when recorded; otherwise the error a single insert reports.
    pub fn into_result(self) -> crate::StoreResult<()> {
        match self {
            Recorded::Yes => Ok(()),
            Recorded::SerialTaken => Err(crate::StoreError::Conflict("certificate serial")),
            Recorded::ProjectGone | Recorded::UserGone | Recorded::UserNotManaged => {
                Err(crate::StoreError::Gone)
            }
            Recorded::CountNotHigher => Err(crate::StoreError::Conflict("digest nonce count")),
        }
    }
}

/// What the certificate list shows.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CertificateSummary {
    pub serial: i64,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// How many unexpired certificates of one project expire soon: within the nearer horizon
/// (`within_soon`) and within the farther one (`within_later`, which includes the former).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCount {
    pub project_id: String,
    pub within_soon: u64,
    pub within_later: u64,
}

/// A project's user-security settings. `None` fields are unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UserSecurityRecord {
    pub customer_cas: Option<String>,
    #[sqlx(rename = "ldap")]
    pub ldap_json: Option<String>,
}

/// Project roles a principal (API key id or service-account client id) holds in one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectGrant {
    pub principal_id: String,
    pub project_id: String,
    pub roles: Vec<String>,
}

/// One entry of a principal's IP access list.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccessListEntry {
    pub principal_id: String,
    /// Canonical CIDR block (`192.0.2.7/32`, `10.0.0.0/8`, `2001:db8::/32`).
    pub cidr_block: String,
    pub created: i64,
}

/// Everything authentication needs about an API key, read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyAuth {
    pub key: ApiKeyRecord,
    pub grants: Vec<ProjectGrant>,
    pub access_list: Vec<AccessListEntry>,
}

/// A service account (OAuth 2.0 client). Its secrets are separate rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRecord {
    /// `mdb_sa_id_<24 hex>`; also the principal id of grants and access-list entries.
    pub client_id: String,
    pub org_id: String,
    pub name: String,
    pub description: String,
    pub org_roles: Vec<String>,
    pub created: i64,
}

/// A service-account secret. Only the secret's SHA-256 is kept.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceAccountSecretRecord {
    pub id: String,
    pub client_id: String,
    pub secret_hash: Vec<u8>,
    /// What the API shows after creation, e.g. `mdb_sa_sk_...nMYa`.
    pub masked: String,
    pub created: i64,
    pub expires: i64,
    pub last_used: Option<i64>,
}

impl std::fmt::Debug for ServiceAccountSecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountSecretRecord")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("masked", &self.masked)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Everything authentication needs about a service account, read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountAuth {
    pub account: ServiceAccountRecord,
    pub secrets: Vec<ServiceAccountSecretRecord>,
    pub grants: Vec<ProjectGrant>,
    pub access_list: Vec<AccessListEntry>,
}

/// What happened, as the audit log records it. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `api-key:<public key>`, `service-account:<client id>`, `anonymous` or `operator`.
    pub actor: String,
    pub source_ip: Option<String>,
    /// For example `POST /api/atlas/v2/groups/{groupId}/databaseUsers`, `certificate.issued`,
    /// `authentication.failed`.
    pub action: String,
    pub project_id: Option<String>,
    pub target: Option<String>,
    pub status: Option<u16>,
    /// A JSON object with action-specific facts.
    pub details: String,
}

/// A stored audit entry: the event, its place in the log and in its chain, and the chain
/// hashes.
///
/// The log is several hash chains (docs/ARCHITECTURE.md, "Audit chains and PostgreSQL write
/// locks"): an entry with a project is in that project's chain, one without in the store chain
/// (`chain` empty), which also holds every entry written before chains existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The entry's place in the whole log: unique and increasing, the order listings use. On
    /// PostgreSQL it may skip a number (an append rolled back).
    pub seq: i64,
    /// The chain: a project id, or empty for the store chain.
    pub chain: String,
    /// The entry's place in its chain: 1, 2, 3, … with no gaps. The hash covers it.
    pub chain_seq: i64,
    /// The `seq` of the chain's previous entry (0 for a chain's first).
    pub prev_seq: i64,
    pub event: AuditEvent,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl AuditEntry {
    /// The hash of the store chain's first entry's predecessor.
    pub const GENESIS: [u8; 32] = [0; 32];

    /// The action of the entry a store appends to a chain before the next one when the
    /// chain's recorded head and its last entry in the log differ (someone changed either
    /// outside dbcerts); its details say what was found and what the append chained onto.
    pub const CHAIN_MISMATCH: &'static str = "audit.chain.mismatch";

    /// The action of a store-chain entry that `dbcerts audit verify --checkpoint` appends: its
    /// details record where every chain ended at a verified moment
    /// ([`crate::audit_check::Checkpoint`]), which later verifications hold the chains to.
    pub const CHECKPOINT: &'static str = "audit.checkpoint";

    /// Lowercase hex of a hash, as audit details and `audit verify` show it.
    pub fn hex(hash: &[u8]) -> String {
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The chain an event belongs to: its project's, or the store chain (empty).
    pub fn chain_of(event: &AuditEvent) -> &str {
        event.project_id.as_deref().unwrap_or("")
    }

    /// The hash a chain's first entry chains to: [`Self::GENESIS`] for the store chain (so the
    /// log written before chains existed is that chain), a hash of the chain's name for any
    /// other, so that an entry moved from one chain to another no longer links.
    pub fn genesis(chain: &str) -> Vec<u8> {
        if chain.is_empty() {
            return Self::GENESIS.to_vec();
        }
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"dbcerts-audit-chain-v1\0");
        h.update(chain.as_bytes());
        h.finalize().to_vec()
    }

    /// SHA-256 over the previous hash and a canonical encoding of the entry's place in its
    /// chain (`chain_seq`, which is `seq` for entries written before chains) and `event`. Every
    /// store computes it with this function, and `dbcerts audit verify` recomputes it.
    pub fn chain_hash(prev_hash: &[u8], seq: i64, event: &AuditEvent) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"dbcerts-audit-v1\0");
        h.update(prev_hash);
        h.update(seq.to_be_bytes());
        // serde_json writes struct fields in declaration order: a stable encoding.
        h.update(serde_json::to_vec(event).expect("an audit event serializes"));
        h.finalize().to_vec()
    }

    /// Whether this entry's own hash matches its contents, its place in its chain and
    /// `prev_hash`.
    pub fn is_intact(&self) -> bool {
        Self::chain_hash(&self.prev_hash, self.chain_seq, &self.event) == self.hash
    }
}

/// The last entry of one audit chain as the store records it beside the log
/// (`audit_chain_heads`, written in the appending transaction).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditChainHead {
    /// A project id, or empty for the store chain.
    pub chain: String,
    pub chain_seq: i64,
    pub seq: i64,
    pub hash: Vec<u8>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// One chain only (a project id, or empty for the store chain).
    pub chain: Option<String>,
    pub project_id: Option<String>,
    pub actor: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// One issuing CA's CRL state (`crl_state`): the revocation revision the store is at, and the
/// last CRL published with the revision it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlState {
    pub ca_id: i64,
    /// Moves (in the revoking transaction) whenever the CA's set of revoked certificates
    /// changes.
    pub revision: i64,
    /// The last CRL published, if any.
    pub published: Option<PublishedCrl>,
}

/// A CRL as published: its number, the revision it covers, its dates and its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCrl {
    /// The CRL number: 1 for a CA's first CRL, then one more each time.
    pub number: i64,
    /// Every revocation up to this revision is in the CRL.
    pub built_revision: i64,
    pub this_update: i64,
    pub next_update: i64,
    /// When the CRL is rebuilt even if nothing was revoked (well before `next_update`).
    pub refresh_at: i64,
    pub der: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_documents_keep_their_stored_bytes() {
        let doc = DatabaseUserDoc::with_roles(vec![DatabaseUserRole {
            collection_name: None,
            database_name: "admin".into(),
            role_name: "readWriteAnyDatabase".into(),
        }]);
        let text = r#"{"awsIamType":"NONE","ldapAuthType":"NONE","oidcAuthType":"NONE","roles":[{"databaseName":"admin","roleName":"readWriteAnyDatabase"}],"scopes":[],"labels":[],"description":null,"deleteAfterDate":null}"#;
        assert_eq!(doc.to_json(), text);
        assert_eq!(DatabaseUserDoc::from_json(text).unwrap(), doc);

        let full = DatabaseUserDoc {
            aws_iam_type: "NONE".into(),
            ldap_auth_type: "GROUP".into(),
            oidc_auth_type: "NONE".into(),
            roles: vec![DatabaseUserRole {
                collection_name: Some("orders".into()),
                database_name: "shop".into(),
                role_name: "read".into(),
            }],
            scopes: vec![DatabaseUserScope {
                name: "Cluster0".into(),
                kind: "CLUSTER".into(),
            }],
            labels: vec![
                DatabaseUserLabel {
                    key: Some("team".into()),
                    value: None,
                },
                DatabaseUserLabel {
                    key: None,
                    value: Some("x".into()),
                },
            ],
            description: Some("d".into()),
            delete_after_date: Some(1_700_000_000),
        };
        let text = r#"{"awsIamType":"NONE","ldapAuthType":"GROUP","oidcAuthType":"NONE","roles":[{"collectionName":"orders","databaseName":"shop","roleName":"read"}],"scopes":[{"name":"Cluster0","type":"CLUSTER"}],"labels":[{"key":"team"},{"value":"x"}],"description":"d","deleteAfterDate":1700000000}"#;
        assert_eq!(full.to_json(), text);
        assert_eq!(DatabaseUserDoc::from_json(text).unwrap(), full);
        // Every key is required, as it always was: a document missing one is damaged.
        assert!(DatabaseUserDoc::from_json(r#"{"roles":[]}"#).is_err());
    }

    #[test]
    fn reasons_round_trip_by_code_and_name() {
        let names: Vec<_> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "unspecified",
                "keyCompromise",
                "affiliationChanged",
                "superseded",
                "cessationOfOperation"
            ]
        );
        let codes: Vec<_> = RevocationReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, [0, 1, 3, 4, 5], "RFC 5280 section 5.3.1");
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
            assert_eq!(r.as_str().parse::<RevocationReason>(), Ok(r));
        }
        // cACompromise (2), removeFromCRL (8), ... are not accepted; names are exact.
        for code in [2, 6, 8, 9, 10, 255] {
            assert_eq!(RevocationReason::from_code(code), None);
        }
        for name in [
            "KeyCompromise",
            "key_compromise",
            "",
            "cACompromise",
            "removeFromCRL",
        ] {
            assert_eq!(
                name.parse::<RevocationReason>(),
                Err(UnknownReason(name.to_owned()))
            );
        }
    }
}
