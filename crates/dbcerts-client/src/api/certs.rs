//! X.509 certificates of managed users: listDatabaseUserCerts, createDatabaseUserCert, and a
//! sweep over every project for certificates about to expire.
//!
//! A created certificate comes back with its private key; [`IssuedCertificate`] holds both,
//! wipes them when dropped, and never shows the key in `Debug`.

use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::database_users::X509Type;
use crate::error::ClientError;
use crate::http::{Call, Client};
use crate::paging::{ListOptions, Page, list_all};

/// An issued certificate as listed (`UserCert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCert {
    /// The certificate's serial number (a positive 63-bit integer).
    #[serde(rename = "_id")]
    pub id: i64,
    /// The certificate's `notBefore` (an hour before it was issued).
    pub created_at: DateTime<Utc>,
    /// The project.
    pub group_id: String,
    /// When the certificate expires.
    pub not_after: DateTime<Utc>,
    /// The certificate's subject, `CN=<username>`.
    pub subject: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserCertRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    months_until_expiration: Option<u32>,
}

/// A certificate and its private key, as createDatabaseUserCert returns them: the certificate
/// PEM, then the unencrypted PKCS#8 `PRIVATE KEY` PEM. Wiped from memory when dropped; `Debug`
/// shows the certificate only.
pub struct IssuedCertificate {
    pem: Zeroizing<String>,
    key_start: usize,
}

impl IssuedCertificate {
    /// Reads the body of createDatabaseUserCert: raw PEM (Atlas and dbcerts), or the same as a
    /// JSON string.
    pub fn from_response_body(body: &[u8]) -> Result<IssuedCertificate, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the PEM is not UTF-8".to_owned())?;
        let pem = if text.trim_start().starts_with('"') {
            Zeroizing::new(
                serde_json::from_str::<String>(text)
                    .map_err(|_| "the body is neither PEM nor a JSON string".to_owned())?,
            )
        } else {
            Zeroizing::new(text.to_owned())
        };
        let key_label = pem
            .find("PRIVATE KEY-----")
            .ok_or("the response has no private key")?;
        let key_start = pem[..key_label]
            .rfind("-----BEGIN ")
            .ok_or("the private key block has no BEGIN line")?;
        let cert = &pem[..key_start];
        if !cert.contains("-----BEGIN CERTIFICATE-----")
            || !cert.contains("-----END CERTIFICATE-----")
        {
            return Err("the response does not start with a certificate".to_owned());
        }
        if !pem[key_start..].contains("-----END ") {
            return Err("the private key block is not terminated".to_owned());
        }
        Ok(IssuedCertificate { pem, key_start })
    }

    /// The whole bundle as the server sent it (certificate, then key): what `atlas dbusers
    /// certs create` prints.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The certificate PEM block(s).
    pub fn certificate_pem(&self) -> &str {
        &self.pem[..self.key_start]
    }

    /// The private key PEM block (`-----BEGIN PRIVATE KEY-----`, PKCS#8).
    pub fn private_key_pem(&self) -> &str {
        &self.pem[self.key_start..]
    }
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("certificate_pem", &self.certificate_pem())
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// A certificate found by [`Client::certificates_expiring_before`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCertificate {
    /// The project.
    pub group_id: String,
    /// The project's name.
    pub project_name: String,
    /// The database user the certificate was issued to.
    pub username: String,
    /// The certificate.
    pub certificate: UserCert,
}

/// A `MANAGED` user and its unexpired certificates, found by
/// [`Client::managed_user_certificates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedUserCerts {
    /// The project.
    pub group_id: String,
    /// The project's name.
    pub project_name: String,
    /// The user.
    pub username: String,
    /// Its unexpired certificates, oldest first.
    pub certificates: Vec<UserCert>,
}

impl Client {
    /// `GET /groups/{groupId}/databaseUsers/{username}/certs` (listDatabaseUserCerts): one
    /// page of the user's unexpired certificates, oldest first.
    pub async fn list_database_user_certs(
        &self,
        group_id: &str,
        username: &str,
        options: ListOptions,
    ) -> Result<Page<UserCert>, ClientError> {
        let call = certs_call(Method::GET, group_id, username)?;
        self.json(&call.query(options.query())).await
    }

    /// Every unexpired certificate of a user, all pages.
    pub async fn list_all_database_user_certs(
        &self,
        group_id: &str,
        username: &str,
    ) -> Result<Vec<UserCert>, ClientError> {
        list_all(|o| self.list_database_user_certs(group_id, username, o)).await
    }

    /// `POST /groups/{groupId}/databaseUsers/{username}/certs` (createDatabaseUserCert): a new
    /// certificate for a `MANAGED` user, valid for `months_until_expiration` months (1 to 24;
    /// the server's default, 3, when `None`).
    pub async fn create_database_user_cert(
        &self,
        group_id: &str,
        username: &str,
        months_until_expiration: Option<u32>,
    ) -> Result<IssuedCertificate, ClientError> {
        let call = certs_call(Method::POST, group_id, username)?.json(&UserCertRequest {
            months_until_expiration,
        })?;
        let reply = self.execute(&call).await?;
        IssuedCertificate::from_response_body(&reply.body).map_err(|problem| {
            ClientError::UnexpectedBody {
                status: reply.status.as_u16(),
                content_type: reply
                    .headers
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                problem,
            }
        })
    }

    /// Every `MANAGED` user, with its unexpired certificates, of project `group_id`, or of
    /// every project the caller can see when `None`; in listing order. Projects and users
    /// deleted during the sweep are skipped. (Certificates of deleted users cannot be listed
    /// through the API.)
    pub async fn managed_user_certificates(
        &self,
        group_id: Option<&str>,
    ) -> Result<Vec<ManagedUserCerts>, ClientError> {
        let projects = match group_id {
            Some(id) => vec![self.get_group(id).await?],
            None => self.list_all_groups().await?,
        };
        let mut found = Vec::new();
        for project in projects {
            let users = match self.list_all_database_users(&project.id).await {
                Err(ClientError::NotFound(_)) if group_id.is_none() => continue,
                other => other?,
            };
            for user in users
                .into_iter()
                .filter(|u| u.x509_type == X509Type::Managed)
            {
                let certificates = match self
                    .list_all_database_user_certs(&project.id, &user.username)
                    .await
                {
                    Err(ClientError::NotFound(_)) => continue,
                    other => other?,
                };
                found.push(ManagedUserCerts {
                    group_id: project.id.clone(),
                    project_name: project.name.clone(),
                    username: user.username,
                    certificates,
                });
            }
        }
        Ok(found)
    }

    /// Every unexpired certificate, in every project the caller can see, of every `MANAGED`
    /// user that still exists, whose `notAfter` is at or before `deadline`; soonest first.
    pub async fn certificates_expiring_before(
        &self,
        deadline: DateTime<Utc>,
    ) -> Result<Vec<ExpiringCertificate>, ClientError> {
        Ok(expiring_before(
            self.managed_user_certificates(None).await?,
            deadline,
        ))
    }
}

/// The certificates of `users` whose `notAfter` is at or before `deadline`, soonest first.
pub fn expiring_before(
    users: Vec<ManagedUserCerts>,
    deadline: DateTime<Utc>,
) -> Vec<ExpiringCertificate> {
    let mut found: Vec<ExpiringCertificate> = users
        .into_iter()
        .flat_map(|u| {
            let ManagedUserCerts {
                group_id,
                project_name,
                username,
                certificates,
            } = u;
            certificates
                .into_iter()
                .filter(move |c| c.not_after <= deadline)
                .map(move |c| ExpiringCertificate {
                    group_id: group_id.clone(),
                    project_name: project_name.clone(),
                    username: username.clone(),
                    certificate: c,
                })
        })
        .collect();
    found.sort_by(|a, b| {
        (a.certificate.not_after, &a.group_id, a.certificate.id).cmp(&(
            b.certificate.not_after,
            &b.group_id,
            b.certificate.id,
        ))
    });
    found
}

fn certs_call(method: Method, group_id: &str, username: &str) -> Result<Call, ClientError> {
    Call::v2(
        method,
        &["groups", group_id, "databaseUsers", username, "certs"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nS0VZU0VDUkVU\n-----END PRIVATE KEY-----\n";

    #[test]
    fn splits_certificate_and_key_and_hides_the_key() {
        let c = IssuedCertificate::from_response_body(BUNDLE.as_bytes()).unwrap();
        assert!(c.certificate_pem().ends_with("-----END CERTIFICATE-----\n"));
        assert!(
            c.private_key_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert_eq!(c.pem(), BUNDLE);
        let shown = format!("{c:?}");
        assert!(
            shown.contains("Q0VSVA==") && !shown.contains("S0VZU0VDUkVU"),
            "{shown}"
        );
        let json = serde_json::to_string(BUNDLE).unwrap();
        let c = IssuedCertificate::from_response_body(json.as_bytes()).unwrap();
        assert_eq!(c.pem(), BUNDLE);
    }

    #[test]
    fn refuses_bodies_without_both_parts() {
        for bad in [
            "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n",
            "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n",
            "{\"detail\":\"x\"}",
        ] {
            assert!(IssuedCertificate::from_response_body(bad.as_bytes()).is_err());
        }
    }
}
