//! Service accounts (OAuth 2.0 clients) of an organization, API version 2024-08-05: list,
//! create, get, update, delete, and their secrets.
//!
//! A secret's value is in the response that creates it only; it is a [`Secret`], so `Debug`
//! never shows it.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::api_keys::{AccessListEntry, AccessListRequest};
use crate::credentials::{Credentials, Secret};
use crate::error::ClientError;
use crate::http::{Call, Client, MEDIA_TYPE_2024_08_05};
use crate::paging::{ListOptions, Page, list_all};

/// A secret of a service account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSecret {
    /// When the secret was created.
    pub created_at: DateTime<Utc>,
    /// When the secret stops working.
    pub expires_at: DateTime<Utc>,
    /// The secret's id, used in paths.
    pub id: String,
    /// When a token was last obtained with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// The secret with all but its last characters hidden.
    pub masked_secret_value: String,
    /// The secret itself: only in the response that creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

/// A service account (`OrgServiceAccount`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    /// The OAuth client id (`mdb_sa_id_…`).
    pub client_id: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Description.
    pub description: String,
    /// Name.
    pub name: String,
    /// Organization roles (or project roles, on project paths).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Secrets (values masked, except in the create response).
    #[serde(default)]
    pub secrets: Vec<ServiceAccountSecret>,
}

impl ServiceAccount {
    /// Credentials with the secret shown in this response (the create response), if any.
    pub fn credentials(&self) -> Option<Credentials> {
        self.secrets
            .iter()
            .find_map(|s| s.secret.clone())
            .map(|secret| Credentials::ServiceAccount {
                client_id: self.client_id.clone(),
                secret,
            })
    }
}

/// The body of createOrgServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewServiceAccount {
    /// 1 to 64 letters, digits, spaces and `-_.,'`.
    pub name: String,
    /// 1 to 250 characters of the same.
    pub description: String,
    /// Organization roles (`ORG_OWNER`, `ORG_MEMBER`, …).
    pub roles: Vec<String>,
    /// Lifetime of the first secret, in hours (8 to 8760).
    pub secret_expires_after_hours: u32,
}

/// The body of updateOrgServiceAccount: only what is `Some` changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceAccountUpdate {
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New organization roles (replace the old ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewSecret {
    secret_expires_after_hours: u32,
}

fn sa_call(method: Method, segments: &[&str]) -> Result<Call, ClientError> {
    Ok(Call::v2(method, segments)?.media(MEDIA_TYPE_2024_08_05))
}

impl Client {
    /// `GET /orgs/{orgId}/serviceAccounts` (listOrgServiceAccounts): one page.
    pub async fn list_org_service_accounts(
        &self,
        org_id: &str,
        options: ListOptions,
    ) -> Result<Page<ServiceAccount>, ClientError> {
        let call = sa_call(Method::GET, &["orgs", org_id, "serviceAccounts"])?;
        self.json(&call.query(options.query())).await
    }

    /// Every service account of an organization, all pages.
    pub async fn list_all_org_service_accounts(
        &self,
        org_id: &str,
    ) -> Result<Vec<ServiceAccount>, ClientError> {
        list_all(|o| self.list_org_service_accounts(org_id, o)).await
    }

    /// `POST /orgs/{orgId}/serviceAccounts` (createOrgServiceAccount). The answer holds the
    /// first secret's value; see [`ServiceAccount::credentials`].
    pub async fn create_org_service_account(
        &self,
        org_id: &str,
        account: &NewServiceAccount,
    ) -> Result<ServiceAccount, ClientError> {
        let call = sa_call(Method::POST, &["orgs", org_id, "serviceAccounts"])?;
        self.json(&call.json(account)?).await
    }

    /// `GET /orgs/{orgId}/serviceAccounts/{clientId}` (getOrgServiceAccount).
    pub async fn get_org_service_account(
        &self,
        org_id: &str,
        client_id: &str,
    ) -> Result<ServiceAccount, ClientError> {
        let call = sa_call(Method::GET, &["orgs", org_id, "serviceAccounts", client_id])?;
        self.json(&call).await
    }

    /// `PATCH /orgs/{orgId}/serviceAccounts/{clientId}` (updateOrgServiceAccount).
    pub async fn update_org_service_account(
        &self,
        org_id: &str,
        client_id: &str,
        update: &ServiceAccountUpdate,
    ) -> Result<ServiceAccount, ClientError> {
        let call = sa_call(
            Method::PATCH,
            &["orgs", org_id, "serviceAccounts", client_id],
        )?;
        self.json(&call.json(update)?).await
    }

    /// `DELETE /orgs/{orgId}/serviceAccounts/{clientId}` (deleteOrgServiceAccount): the
    /// account, its secrets (its tokens stop working), project assignments and access list.
    pub async fn delete_org_service_account(
        &self,
        org_id: &str,
        client_id: &str,
    ) -> Result<(), ClientError> {
        let call = sa_call(
            Method::DELETE,
            &["orgs", org_id, "serviceAccounts", client_id],
        )?;
        self.unit(&call).await
    }

    /// `POST /orgs/{orgId}/serviceAccounts/{clientId}/secrets` (createServiceAccountSecret):
    /// a new secret valid for `expires_after_hours` (8 to 8760); the answer holds its value.
    pub async fn create_service_account_secret(
        &self,
        org_id: &str,
        client_id: &str,
        expires_after_hours: u32,
    ) -> Result<ServiceAccountSecret, ClientError> {
        let call = sa_call(
            Method::POST,
            &["orgs", org_id, "serviceAccounts", client_id, "secrets"],
        )?;
        let body = NewSecret {
            secret_expires_after_hours: expires_after_hours,
        };
        self.json(&call.json(&body)?).await
    }

    /// `DELETE /orgs/{orgId}/serviceAccounts/{clientId}/secrets/{secretId}`
    /// (deleteServiceAccountSecret): tokens obtained with the secret stop working.
    pub async fn delete_service_account_secret(
        &self,
        org_id: &str,
        client_id: &str,
        secret_id: &str,
    ) -> Result<(), ClientError> {
        let call = sa_call(
            Method::DELETE,
            &[
                "orgs",
                org_id,
                "serviceAccounts",
                client_id,
                "secrets",
                secret_id,
            ],
        )?;
        self.unit(&call).await
    }

    /// `GET /orgs/{orgId}/serviceAccounts/{clientId}/accessList`: one page of the account's
    /// IP access list.
    pub async fn list_service_account_access_list(
        &self,
        org_id: &str,
        client_id: &str,
        options: ListOptions,
    ) -> Result<Page<AccessListEntry>, ClientError> {
        let call = sa_call(
            Method::GET,
            &["orgs", org_id, "serviceAccounts", client_id, "accessList"],
        )?;
        self.json(&call.query(options.query())).await
    }

    /// `POST /orgs/{orgId}/serviceAccounts/{clientId}/accessList`: adds entries; answers with
    /// the first page of the whole list.
    pub async fn create_service_account_access_list(
        &self,
        org_id: &str,
        client_id: &str,
        entries: &[AccessListRequest],
    ) -> Result<Page<AccessListEntry>, ClientError> {
        let call = sa_call(
            Method::POST,
            &["orgs", org_id, "serviceAccounts", client_id, "accessList"],
        )?;
        self.json(&call.json(entries)?).await
    }

    /// `DELETE /orgs/{orgId}/serviceAccounts/{clientId}/accessList/{ipAddress}`.
    pub async fn delete_service_account_access_list_entry(
        &self,
        org_id: &str,
        client_id: &str,
        address_or_block: &str,
    ) -> Result<(), ClientError> {
        let call = sa_call(
            Method::DELETE,
            &[
                "orgs",
                org_id,
                "serviceAccounts",
                client_id,
                "accessList",
                address_or_block,
            ],
        )?;
        self.unit(&call).await
    }
}
