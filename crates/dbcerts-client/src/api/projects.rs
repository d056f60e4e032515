//! Projects (`/groups`): listGroups, createGroup, getGroup, deleteGroup.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::http::{Call, Client};
use crate::paging::{Link, ListOptions, Page, list_all};

/// A `{key, value}` tag on a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTag {
    /// 1 to 255 characters.
    pub key: String,
    /// 1 to 255 characters.
    pub value: String,
}

/// A project (Atlas `Group`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Always 0 on dbcerts, which runs no clusters.
    #[serde(default)]
    pub cluster_count: i64,
    /// When the project was created.
    pub created: DateTime<Utc>,
    /// The 24-hex project id (`groupId`).
    pub id: String,
    /// `self` and related links.
    #[serde(default)]
    pub links: Vec<Link>,
    /// The project's name, unique in its organization.
    pub name: String,
    /// The organization the project belongs to.
    pub org_id: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<ResourceTag>,
    /// Whether Atlas's default alert settings apply.
    #[serde(default)]
    pub with_default_alerts_settings: bool,
}

/// The body of createGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewProject {
    /// 1 to 64 letters, digits and `-_.(),:&@+'`.
    pub name: String,
    /// The organization to create the project in.
    pub org_id: String,
    /// Tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<ResourceTag>>,
    /// Whether default alert settings apply (server default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_default_alerts_settings: Option<bool>,
}

impl NewProject {
    /// A project named `name` in organization `org_id`.
    pub fn new(name: impl Into<String>, org_id: impl Into<String>) -> NewProject {
        NewProject {
            name: name.into(),
            org_id: org_id.into(),
            tags: None,
            with_default_alerts_settings: None,
        }
    }
}

impl Client {
    /// `GET /groups` (listGroups): one page of the projects the caller can see.
    pub async fn list_groups(&self, options: ListOptions) -> Result<Page<Project>, ClientError> {
        self.json(&Call::v2(Method::GET, &["groups"])?.query(options.query()))
            .await
    }

    /// Every project the caller can see, all pages.
    pub async fn list_all_groups(&self) -> Result<Vec<Project>, ClientError> {
        list_all(|o| self.list_groups(o)).await
    }

    /// `POST /groups` (createGroup).
    pub async fn create_group(&self, project: &NewProject) -> Result<Project, ClientError> {
        self.json(&Call::v2(Method::POST, &["groups"])?.json(project)?)
            .await
    }

    /// `GET /groups/{groupId}` (getGroup).
    pub async fn get_group(&self, group_id: &str) -> Result<Project, ClientError> {
        self.json(&Call::v2(Method::GET, &["groups", group_id])?)
            .await
    }

    /// `DELETE /groups/{groupId}` (deleteGroup).
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ClientError> {
        self.unit(&Call::v2(Method::DELETE, &["groups", group_id])?)
            .await
    }
}
