//! User security: getUserSecurity, updateUserSecurity (the customer CA bundle and LDAP
//! settings) and disableCustomerX509.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::credentials::Secret;
use crate::error::ClientError;
use crate::http::{Call, Client};
use crate::paging::Link;

/// Self-managed X.509 settings (`DBUserTLSX509Settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerX509 {
    /// The customer CA certificates (concatenated PEM, as uploaded); `None` when self-managed
    /// X.509 is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<String>,
    /// Links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// One LDAP user-to-DN mapping rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToDnMapping {
    /// An LDAP query template.
    #[serde(rename = "ldapQuery", default, skip_serializing_if = "Option::is_none")]
    pub ldap_query: Option<String>,
    /// The regular expression the user name must match.
    #[serde(rename = "match")]
    pub pattern: String,
    /// A DN template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitution: Option<String>,
}

/// LDAP settings (`LDAPSecuritySettings`). In an update, only the fields that are `Some`
/// change. `Debug` never shows the bind password.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LdapSettings {
    /// Whether LDAP authentication is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_enabled: Option<bool>,
    /// Whether LDAP authorization is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_enabled: Option<bool>,
    /// The authorization query template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz_query_template: Option<String>,
    /// The bind password (write-only: never returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_password: Option<Secret>,
    /// The bind DN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_username: Option<String>,
    /// The LDAP server's CA (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    /// The LDAP server's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The LDAP server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// User-to-DN mapping rules.
    #[serde(
        rename = "userToDNMapping",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_to_dn_mapping: Option<Vec<UserToDnMapping>>,
}

/// A project's user security settings (`UserSecurity`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserSecurity {
    /// Self-managed X.509 (`{}` when off).
    #[serde(rename = "customerX509", default)]
    pub customer_x509: CustomerX509,
    /// LDAP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapSettings>,
    /// Links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// The body of updateUserSecurity: only what is `Some` changes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserSecurityUpdate {
    /// New self-managed X.509 settings (`cas: ""` turns them off).
    #[serde(rename = "customerX509", skip_serializing_if = "Option::is_none")]
    pub customer_x509: Option<CustomerX509>,
    /// LDAP fields to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapSettings>,
}

impl Client {
    /// `GET /groups/{groupId}/userSecurity` (getUserSecurity).
    pub async fn get_user_security(&self, group_id: &str) -> Result<UserSecurity, ClientError> {
        self.json(&Call::v2(
            Method::GET,
            &["groups", group_id, "userSecurity"],
        )?)
        .await
    }

    /// `PATCH /groups/{groupId}/userSecurity` (updateUserSecurity).
    pub async fn update_user_security(
        &self,
        group_id: &str,
        update: &UserSecurityUpdate,
    ) -> Result<UserSecurity, ClientError> {
        let call = Call::v2(Method::PATCH, &["groups", group_id, "userSecurity"])?;
        self.json(&call.json(update)?).await
    }

    /// Turns on self-managed X.509 with the CA bundle `cas` (PEM, sent verbatim), as
    /// `atlas security customerCerts create --casFile` does.
    pub async fn set_customer_cas(
        &self,
        group_id: &str,
        cas: &str,
    ) -> Result<UserSecurity, ClientError> {
        let update = UserSecurityUpdate {
            customer_x509: Some(CustomerX509 {
                cas: Some(cas.to_owned()),
                links: Vec::new(),
            }),
            ldap: None,
        };
        self.update_user_security(group_id, &update).await
    }

    /// `DELETE /groups/{groupId}/userSecurity/customerX509` (disableCustomerX509): turns
    /// self-managed X.509 off and forgets the customer CA.
    pub async fn disable_customer_x509(&self, group_id: &str) -> Result<UserSecurity, ClientError> {
        let call = Call::v2(
            Method::DELETE,
            &["groups", group_id, "userSecurity", "customerX509"],
        )?;
        self.json(&call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_send_only_what_changes() {
        let u = UserSecurityUpdate {
            customer_x509: Some(CustomerX509 {
                cas: Some("PEM".into()),
                links: Vec::new(),
            }),
            ldap: Some(LdapSettings {
                bind_password: Some(Secret::new("ldap-pass")),
                ..LdapSettings::default()
            }),
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!({"customerX509": {"cas": "PEM"}, "ldap": {"bindPassword": "ldap-pass"}})
        );
        assert!(!format!("{u:?}").contains("ldap-pass"));
        let read: UserSecurity = serde_json::from_str(r#"{"customerX509":{},"ldap":{"authenticationEnabled":false,"authorizationEnabled":false}}"#).unwrap();
        assert_eq!(read.customer_x509.cas, None);
    }
}
