//! Certificate revocation and status, a dbcerts extension outside Atlas's paths (issue 17):
//! revoke one certificate, revoke every unexpired certificate of a user, list a user's
//! certificates with their status.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::api::certs::UserCert;
use crate::error::ClientError;
use crate::http::{Call, Client, encode_path};
use crate::paging::{ListOptions, Page};

/// The extension's JSON media type.
const JSON: &str = "application/json";

/// A certificate with its status, as the revocation operations and the status list answer:
/// Atlas's certificate fields, then the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertStatus {
    /// The certificate, as Atlas's list shows it.
    #[serde(flatten)]
    pub certificate: UserCert,
    /// `VALID`, `EXPIRING`, `EXPIRED` or `REVOKED`.
    pub status: String,
    /// When it was revoked (REVOKED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The RFC 5280 reason (REVOKED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
}

/// What a revoke-all call covered: every unexpired certificate of the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedCerts {
    /// The certificates, each revoked (now or before, with its first time and reason).
    pub results: Vec<CertStatus>,
    /// How many.
    pub total_count: u64,
}

#[derive(Serialize)]
struct RevokeRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// `/api/dbcerts/v1/groups/{groupId}/databaseUsers/{username}/certs`, encoded.
fn user_certs_path(group_id: &str, username: &str) -> Result<String, ClientError> {
    Ok(format!(
        "/api/dbcerts/v1{}",
        encode_path(&["groups", group_id, "databaseUsers", username, "certs"])?
    ))
}

impl Client {
    /// `POST .../databaseUsers/{username}/certs/{serial}:revoke` (revokeDatabaseUserCert):
    /// revokes one certificate with an RFC 5280 reason (`keyCompromise`, `superseded`,
    /// `cessationOfOperation`, `affiliationChanged`, `unspecified`; the server's default,
    /// `unspecified`, when `None`). Revoking again answers the first time and reason.
    pub async fn revoke_database_user_cert(
        &self,
        group_id: &str,
        username: &str,
        serial: i64,
        reason: Option<&str>,
    ) -> Result<CertStatus, ClientError> {
        let path = format!("{}/{serial}:revoke", user_certs_path(group_id, username)?);
        let call = Call::raw(Method::POST, path)
            .media(JSON)
            .json(&RevokeRequest { reason })?;
        self.json(&call).await
    }

    /// `POST .../databaseUsers/{username}/certs:revoke` (revokeAllDatabaseUserCerts): revokes
    /// every unexpired certificate of the user.
    pub async fn revoke_all_database_user_certs(
        &self,
        group_id: &str,
        username: &str,
        reason: Option<&str>,
    ) -> Result<RevokedCerts, ClientError> {
        let path = format!("{}:revoke", user_certs_path(group_id, username)?);
        let call = Call::raw(Method::POST, path)
            .media(JSON)
            .json(&RevokeRequest { reason })?;
        self.json(&call).await
    }

    /// `GET .../databaseUsers/{username}/certs` (listDatabaseUserCertStatuses): one page of
    /// every certificate of the user, expired and revoked ones included, with its status.
    pub async fn list_database_user_cert_statuses(
        &self,
        group_id: &str,
        username: &str,
        options: ListOptions,
    ) -> Result<Page<CertStatus>, ClientError> {
        let call = Call::raw(Method::GET, user_certs_path(group_id, username)?)
            .media(JSON)
            .query(options.query());
        self.json(&call).await
    }
}
