//! Database users: listDatabaseUsers, createDatabaseUser, getDatabaseUser, updateDatabaseUser,
//! deleteDatabaseUser.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::credentials::Secret;
use crate::error::ClientError;
use crate::http::{Call, Client};
use crate::paging::{Link, ListOptions, Page, list_all};

/// The authentication database of externally authenticated users (X.509, LDAP, AWS IAM).
pub const EXTERNAL: &str = "$external";
/// The authentication database of SCRAM users.
pub const ADMIN: &str = "admin";

/// How a database user authenticates with X.509.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum X509Type {
    /// No X.509.
    #[default]
    None,
    /// Self-managed X.509: certificates from the project's customer CA.
    Customer,
    /// Certificates issued by the server (dbcerts / Atlas).
    Managed,
}

impl X509Type {
    /// The wire name (`NONE`, `CUSTOMER`, `MANAGED`).
    pub fn as_str(self) -> &'static str {
        match self {
            X509Type::None => "NONE",
            X509Type::Customer => "CUSTOMER",
            X509Type::Managed => "MANAGED",
        }
    }
}

impl fmt::Display for X509Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for X509Type {
    type Err = ClientError;

    /// Parses `NONE`, `CUSTOMER` or `MANAGED` (any case), as the CLI's `--x509Type` takes them.
    fn from_str(s: &str) -> Result<X509Type, ClientError> {
        match s.to_ascii_uppercase().as_str() {
            "NONE" => Ok(X509Type::None),
            "CUSTOMER" => Ok(X509Type::Customer),
            "MANAGED" => Ok(X509Type::Managed),
            _ => Err(ClientError::InvalidInput(format!(
                "x509Type must be NONE, CUSTOMER or MANAGED, not {s:?}"
            ))),
        }
    }
}

/// A role granted to a database user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseUserRole {
    /// The collection the role is limited to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_name: Option<String>,
    /// The database the role applies to.
    pub database_name: String,
    /// The role (`atlasAdmin`, `readWrite`, …).
    pub role_name: String,
}

impl DatabaseUserRole {
    /// `role_name` on `database_name`.
    pub fn new(role_name: impl Into<String>, database_name: impl Into<String>) -> Self {
        DatabaseUserRole {
            collection_name: None,
            database_name: database_name.into(),
            role_name: role_name.into(),
        }
    }
}

/// A cluster or data lake the user is limited to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    /// The resource's name.
    pub name: String,
    /// `CLUSTER`, `DATA_LAKE` or `STREAM`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A `{key, value}` label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentLabel {
    /// 1 to 255 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// 1 to 255 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A database user (`CloudDatabaseUser`) as the server returns it; never with a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseUser {
    /// `NONE`, `USER` or `ROLE`.
    #[serde(rename = "awsIAMType", default)]
    pub aws_iam_type: String,
    /// `admin` or `$external`.
    pub database_name: String,
    /// When a temporary user is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_date: Option<DateTime<Utc>>,
    /// Up to 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The project.
    pub group_id: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<ComponentLabel>,
    /// `NONE`, `GROUP` or `USER`.
    #[serde(default)]
    pub ldap_auth_type: String,
    /// `self` link.
    #[serde(default)]
    pub links: Vec<Link>,
    /// `NONE`, `IDP_GROUP` or `USER`.
    #[serde(default)]
    pub oidc_auth_type: String,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<DatabaseUserRole>,
    /// Scopes.
    #[serde(default)]
    pub scopes: Vec<UserScope>,
    /// The user name (for X.509 users, the certificate's CN or DN).
    pub username: String,
    /// How the user authenticates with X.509.
    #[serde(default)]
    pub x509_type: X509Type,
}

/// The body of createDatabaseUser. `Debug` never shows the password.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewDatabaseUser {
    /// `NONE` (default), `USER` or `ROLE`.
    #[serde(rename = "awsIAMType", skip_serializing_if = "Option::is_none")]
    pub aws_iam_type: Option<String>,
    /// `admin` for SCRAM users, `$external` for X.509, LDAP and AWS IAM users.
    pub database_name: String,
    /// RFC 3339 time, at most a week ahead, for a temporary (non-X.509) user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_after_date: Option<DateTime<Utc>>,
    /// Up to 100 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The project; also the path of the request.
    pub group_id: String,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<ComponentLabel>>,
    /// `NONE` (default), `GROUP` or `USER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ldap_auth_type: Option<String>,
    /// `NONE` (default), `IDP_GROUP` or `USER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_auth_type: Option<String>,
    /// The SCRAM password (at least 8 characters); none for other users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Roles (required).
    pub roles: Vec<DatabaseUserRole>,
    /// Scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<UserScope>>,
    /// The user name.
    pub username: String,
    /// How the user authenticates with X.509 (server default `NONE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x509_type: Option<X509Type>,
}

impl NewDatabaseUser {
    /// An X.509 user of `x509_type` on `$external`.
    pub fn x509(
        group_id: impl Into<String>,
        username: impl Into<String>,
        x509_type: X509Type,
        roles: Vec<DatabaseUserRole>,
    ) -> NewDatabaseUser {
        NewDatabaseUser {
            x509_type: Some(x509_type),
            ..NewDatabaseUser::base(group_id.into(), username.into(), EXTERNAL, roles)
        }
    }

    /// A SCRAM (password) user on `admin`.
    pub fn scram(
        group_id: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<Secret>,
        roles: Vec<DatabaseUserRole>,
    ) -> NewDatabaseUser {
        NewDatabaseUser {
            password: Some(password.into()),
            ..NewDatabaseUser::base(group_id.into(), username.into(), ADMIN, roles)
        }
    }

    fn base(
        group_id: String,
        username: String,
        database_name: &str,
        roles: Vec<DatabaseUserRole>,
    ) -> NewDatabaseUser {
        NewDatabaseUser {
            aws_iam_type: None,
            database_name: database_name.to_owned(),
            delete_after_date: None,
            description: None,
            group_id,
            labels: None,
            ldap_auth_type: None,
            oidc_auth_type: None,
            password: None,
            roles,
            scopes: None,
            username,
            x509_type: None,
        }
    }
}

/// The body of updateDatabaseUser: only the fields that are `Some` change. The user name,
/// database and authentication type cannot change (the server answers 409); sending the
/// current `x509_type` is allowed, as the Atlas CLI does.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseUserUpdate {
    /// A new expiry for a temporary user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_after_date: Option<DateTime<Utc>>,
    /// A new description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New labels (replace the old ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<ComponentLabel>>,
    /// A new SCRAM password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// New roles (replace the old ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DatabaseUserRole>>,
    /// New scopes (replace the old ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<UserScope>>,
    /// The user's current X.509 type, sent explicitly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x509_type: Option<X509Type>,
}

impl Client {
    /// `GET /groups/{groupId}/databaseUsers` (listDatabaseUsers): one page.
    pub async fn list_database_users(
        &self,
        group_id: &str,
        options: ListOptions,
    ) -> Result<Page<DatabaseUser>, ClientError> {
        let call = Call::v2(Method::GET, &["groups", group_id, "databaseUsers"])?;
        self.json(&call.query(options.query())).await
    }

    /// Every database user of a project, all pages.
    pub async fn list_all_database_users(
        &self,
        group_id: &str,
    ) -> Result<Vec<DatabaseUser>, ClientError> {
        list_all(|o| self.list_database_users(group_id, o)).await
    }

    /// `POST /groups/{groupId}/databaseUsers` (createDatabaseUser), in `user.group_id`.
    pub async fn create_database_user(
        &self,
        user: &NewDatabaseUser,
    ) -> Result<DatabaseUser, ClientError> {
        let call = Call::v2(Method::POST, &["groups", &user.group_id, "databaseUsers"])?;
        self.json(&call.json(user)?).await
    }

    /// `GET /groups/{groupId}/databaseUsers/{databaseName}/{username}` (getDatabaseUser).
    pub async fn get_database_user(
        &self,
        group_id: &str,
        database_name: &str,
        username: &str,
    ) -> Result<DatabaseUser, ClientError> {
        self.json(&user_call(Method::GET, group_id, database_name, username)?)
            .await
    }

    /// `PATCH /groups/{groupId}/databaseUsers/{databaseName}/{username}` (updateDatabaseUser).
    pub async fn update_database_user(
        &self,
        group_id: &str,
        database_name: &str,
        username: &str,
        update: &DatabaseUserUpdate,
    ) -> Result<DatabaseUser, ClientError> {
        let call = user_call(Method::PATCH, group_id, database_name, username)?;
        self.json(&call.json(update)?).await
    }

    /// `DELETE /groups/{groupId}/databaseUsers/{databaseName}/{username}`
    /// (deleteDatabaseUser). The user's certificates stay listed until they expire.
    pub async fn delete_database_user(
        &self,
        group_id: &str,
        database_name: &str,
        username: &str,
    ) -> Result<(), ClientError> {
        self.unit(&user_call(
            Method::DELETE,
            group_id,
            database_name,
            username,
        )?)
        .await
    }
}

fn user_call(
    method: Method,
    group_id: &str,
    database_name: &str,
    username: &str,
) -> Result<Call, ClientError> {
    Call::v2(
        method,
        &["groups", group_id, "databaseUsers", database_name, username],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x509_types_parse_and_print() {
        for t in [X509Type::None, X509Type::Customer, X509Type::Managed] {
            assert_eq!(t.as_str().parse::<X509Type>().unwrap(), t);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
        assert_eq!("managed".parse::<X509Type>().unwrap(), X509Type::Managed);
        assert!("LDAP".parse::<X509Type>().is_err());
    }

    #[test]
    fn bodies_carry_only_what_was_set() {
        let u = NewDatabaseUser::x509(
            "5f1e2d3c4b5a69788796a5b4",
            "alice",
            X509Type::Managed,
            vec![DatabaseUserRole::new("atlasAdmin", "admin")],
        );
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!({
                "databaseName": "$external",
                "groupId": "5f1e2d3c4b5a69788796a5b4",
                "roles": [{"databaseName": "admin", "roleName": "atlasAdmin"}],
                "username": "alice",
                "x509Type": "MANAGED"
            })
        );
        let s = NewDatabaseUser::scram("g", "bob", "correct horse", vec![]);
        assert!(!format!("{s:?}").contains("correct horse"));
        assert_eq!(
            serde_json::to_value(&s).unwrap()["password"],
            "correct horse"
        );
        assert_eq!(
            serde_json::to_string(&DatabaseUserUpdate::default()).unwrap(),
            "{}"
        );
    }
}
