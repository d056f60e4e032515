//! Programmatic API keys: the organization's keys (list, create, get, update, delete), each
//! key's IP access list, and the keys' assignments to projects.
//!
//! The private key is in the create response only (afterwards the server masks it); it is a
//! [`Secret`], so `Debug` never shows it.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::credentials::{Credentials, Secret};
use crate::error::ClientError;
use crate::http::{Call, Client};
use crate::paging::{Link, ListOptions, Page, list_all};

/// A role of an API key: an organization role (`org_id` set) or a project role (`group_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRole {
    /// The project, for a project role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The organization, for an organization role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// `ORG_OWNER`, `GROUP_READ_ONLY`, …
    pub role_name: String,
}

/// An API key (`ApiKeyUserDetails`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Description.
    pub desc: String,
    /// The key's id (24 hex), used in paths.
    pub id: String,
    /// `self` link.
    #[serde(default)]
    pub links: Vec<Link>,
    /// The private key: in full in the create response, masked (`********-****-****-…`)
    /// afterwards.
    pub private_key: Secret,
    /// The public key, the Digest user name.
    pub public_key: String,
    /// Organization and project roles.
    #[serde(default)]
    pub roles: Vec<ApiKeyRole>,
}

impl ApiKey {
    /// Credentials for this key. Meaningful only on the create response, which carries the
    /// unmasked private key.
    pub fn credentials(&self) -> Credentials {
        Credentials::ApiKey {
            public: self.public_key.clone(),
            private: self.private_key.clone(),
        }
    }
}

/// The body of createOrgApiKey and createGroupApiKey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewApiKey {
    /// Description, 1 to 250 characters.
    pub desc: String,
    /// Organization roles (createOrgApiKey) or project roles (createGroupApiKey).
    pub roles: Vec<String>,
}

/// The body of updateOrgApiKey and updateGroupApiKey: only what is `Some` changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApiKeyUpdate {
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// New roles (replace the old ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// An IP access-list entry of an API key or service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessListEntry {
    /// The block (`192.0.2.7/32` for a single address).
    pub cidr_block: String,
    /// When the entry was added (`created` for API keys, `createdAt` for service accounts).
    #[serde(default, alias = "createdAt")]
    pub created: Option<DateTime<Utc>>,
    /// The address, for a single-address entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// `self` link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// An entry to add to an access list: one address or one CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessListRequest {
    /// A single address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// A block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
}

impl AccessListRequest {
    /// A single address (`192.0.2.7`, `2001:db8::1`).
    pub fn ip(address: impl Into<String>) -> AccessListRequest {
        AccessListRequest {
            ip_address: Some(address.into()),
            cidr_block: None,
        }
    }

    /// A block (`10.0.0.0/8`).
    pub fn cidr(block: impl Into<String>) -> AccessListRequest {
        AccessListRequest {
            ip_address: None,
            cidr_block: Some(block.into()),
        }
    }
}

#[derive(Serialize)]
struct Assignment<'a> {
    roles: &'a [String],
}

impl Client {
    /// `GET /orgs/{orgId}/apiKeys` (listOrgApiKeys): one page.
    pub async fn list_org_api_keys(
        &self,
        org_id: &str,
        options: ListOptions,
    ) -> Result<Page<ApiKey>, ClientError> {
        let call = Call::v2(Method::GET, &["orgs", org_id, "apiKeys"])?;
        self.json(&call.query(options.query())).await
    }

    /// Every API key of an organization, all pages.
    pub async fn list_all_org_api_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, ClientError> {
        list_all(|o| self.list_org_api_keys(org_id, o)).await
    }

    /// `POST /orgs/{orgId}/apiKeys` (createOrgApiKey). The answer holds the private key.
    pub async fn create_org_api_key(
        &self,
        org_id: &str,
        key: &NewApiKey,
    ) -> Result<ApiKey, ClientError> {
        let call = Call::v2(Method::POST, &["orgs", org_id, "apiKeys"])?;
        self.json(&call.json(key)?).await
    }

    /// `GET /orgs/{orgId}/apiKeys/{apiUserId}` (getOrgApiKey).
    pub async fn get_org_api_key(&self, org_id: &str, key_id: &str) -> Result<ApiKey, ClientError> {
        self.json(&Call::v2(
            Method::GET,
            &["orgs", org_id, "apiKeys", key_id],
        )?)
        .await
    }

    /// `PATCH /orgs/{orgId}/apiKeys/{apiUserId}` (updateOrgApiKey).
    pub async fn update_org_api_key(
        &self,
        org_id: &str,
        key_id: &str,
        update: &ApiKeyUpdate,
    ) -> Result<ApiKey, ClientError> {
        let call = Call::v2(Method::PATCH, &["orgs", org_id, "apiKeys", key_id])?;
        self.json(&call.json(update)?).await
    }

    /// `DELETE /orgs/{orgId}/apiKeys/{apiUserId}` (deleteOrgApiKey).
    pub async fn delete_org_api_key(&self, org_id: &str, key_id: &str) -> Result<(), ClientError> {
        self.unit(&Call::v2(
            Method::DELETE,
            &["orgs", org_id, "apiKeys", key_id],
        )?)
        .await
    }

    /// `GET /orgs/{orgId}/apiKeys/{apiUserId}/accessList`: one page of the key's access list.
    pub async fn list_api_key_access_list(
        &self,
        org_id: &str,
        key_id: &str,
        options: ListOptions,
    ) -> Result<Page<AccessListEntry>, ClientError> {
        let call = Call::v2(
            Method::GET,
            &["orgs", org_id, "apiKeys", key_id, "accessList"],
        )?;
        self.json(&call.query(options.query())).await
    }

    /// `POST /orgs/{orgId}/apiKeys/{apiUserId}/accessList`: adds entries; answers with the
    /// first page of the whole list.
    pub async fn create_api_key_access_list(
        &self,
        org_id: &str,
        key_id: &str,
        entries: &[AccessListRequest],
    ) -> Result<Page<AccessListEntry>, ClientError> {
        let call = Call::v2(
            Method::POST,
            &["orgs", org_id, "apiKeys", key_id, "accessList"],
        )?;
        self.json(&call.json(entries)?).await
    }

    /// `GET /orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}`: one entry, by address
    /// or CIDR block.
    pub async fn get_api_key_access_list_entry(
        &self,
        org_id: &str,
        key_id: &str,
        address_or_block: &str,
    ) -> Result<AccessListEntry, ClientError> {
        let call = Call::v2(
            Method::GET,
            &[
                "orgs",
                org_id,
                "apiKeys",
                key_id,
                "accessList",
                address_or_block,
            ],
        )?;
        self.json(&call).await
    }

    /// `DELETE /orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}`: removes the entry
    /// naming an address or CIDR block.
    pub async fn delete_api_key_access_list_entry(
        &self,
        org_id: &str,
        key_id: &str,
        address_or_block: &str,
    ) -> Result<(), ClientError> {
        let call = Call::v2(
            Method::DELETE,
            &[
                "orgs",
                org_id,
                "apiKeys",
                key_id,
                "accessList",
                address_or_block,
            ],
        )?;
        self.unit(&call).await
    }

    /// `GET /groups/{groupId}/apiKeys` (listGroupApiKeys): one page of the keys assigned to a
    /// project.
    pub async fn list_group_api_keys(
        &self,
        group_id: &str,
        options: ListOptions,
    ) -> Result<Page<ApiKey>, ClientError> {
        let call = Call::v2(Method::GET, &["groups", group_id, "apiKeys"])?;
        self.json(&call.query(options.query())).await
    }

    /// `POST /groups/{groupId}/apiKeys` (createGroupApiKey): a new organization key with
    /// project roles in this project. The answer holds the private key.
    pub async fn create_group_api_key(
        &self,
        group_id: &str,
        key: &NewApiKey,
    ) -> Result<ApiKey, ClientError> {
        let call = Call::v2(Method::POST, &["groups", group_id, "apiKeys"])?;
        self.json(&call.json(key)?).await
    }

    /// `POST /groups/{groupId}/apiKeys/{apiUserId}` (addGroupApiKey): assigns an organization
    /// key to a project with `roles` there.
    pub async fn add_group_api_key(
        &self,
        group_id: &str,
        key_id: &str,
        roles: &[String],
    ) -> Result<(), ClientError> {
        let call = Call::v2(Method::POST, &["groups", group_id, "apiKeys", key_id])?;
        self.unit(&call.json(&[Assignment { roles }])?).await
    }

    /// `PATCH /groups/{groupId}/apiKeys/{apiUserId}` (updateGroupApiKeyRoles): replaces the
    /// key's roles in a project (and optionally its description).
    pub async fn update_group_api_key(
        &self,
        group_id: &str,
        key_id: &str,
        update: &ApiKeyUpdate,
    ) -> Result<ApiKey, ClientError> {
        let call = Call::v2(Method::PATCH, &["groups", group_id, "apiKeys", key_id])?;
        self.json(&call.json(update)?).await
    }

    /// `DELETE /groups/{groupId}/apiKeys/{apiUserId}` (removeGroupApiKey): unassigns the key
    /// from a project; the key stays in the organization.
    pub async fn remove_group_api_key(
        &self,
        group_id: &str,
        key_id: &str,
    ) -> Result<(), ClientError> {
        self.unit(&Call::v2(
            Method::DELETE,
            &["groups", group_id, "apiKeys", key_id],
        )?)
        .await
    }
}
