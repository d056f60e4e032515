//! User security: getUserSecurity, updateUserSecurity (customer CA bundle and LDAP settings),
//! and disableSecurityCustomerX509.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dbcerts_ca::customer_ca::{BundleProblem, validate_bundle};
use dbcerts_store::UserSecurityRecord;
use serde::{Deserialize, Serialize};

use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::body::{ReadOnly, parse_json};
use crate::error::AtlasError;
use crate::format::Shape;
use crate::links::Base;
use crate::openapi::ATLAS_2023;
use crate::params::{EntityParams, EntityQuery, EnvelopeParams, EnvelopeQuery, GroupId, GroupPath};

static BIND_USERNAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^(?:(?<cn>CN=(?<name>[^,]*)),)?(?:(?<path>(?:(?:CN|OU)=[^,]+,?)+),)?(?<domain>(?:DC=[^,]+,?)+)$")
        .expect("valid regex")
});
/// The spec's hostname pattern, matched against the whole value as Atlas's Java validation
/// does (`String.matches`); read as an ECMA search, its alternatives are not anchored and it
/// would accept anything.
static HOSTNAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^(?:([0-9]{1,3}\.){3}[0-9]{1,3}|([0-9a-f]{1,4}:){7}([0-9a-f]{1,4})|(([a-z0-9]+\.){1,10}[a-z]+)?)$")
        .expect("valid regex")
});

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = UserToDNMapping)]
pub struct UserToDnMapping {
    #[serde(rename = "ldapQuery", skip_serializing_if = "Option::is_none")]
    ldap_query: Option<String>,
    #[serde(rename = "match")]
    pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    substitution: Option<String>,
}

/// Stored (and returned) LDAP settings. `bindPassword` is write-only and is not kept: dbcerts
/// never connects to an LDAP server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LDAPSecuritySettings)]
pub struct LdapOut {
    authentication_enabled: bool,
    authorization_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    authz_query_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bind_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<i32>,
    #[serde(rename = "userToDNMapping", skip_serializing_if = "Option::is_none")]
    user_to_dn_mapping: Option<Vec<UserToDnMapping>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DBUserTLSX509Settings)]
pub struct CustomerX509Out {
    #[serde(skip_serializing_if = "Option::is_none")]
    cas: Option<String>,
}

/// `UserSecurity` as Atlas returns it: `customerX509` is `{}` when no CA is set; no top-level
/// links.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserSecurity)]
pub struct UserSecurityOut {
    #[serde(rename = "customerX509")]
    customer_x509: CustomerX509Out,
    ldap: LdapOut,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = DBUserTLSX509SettingsRequest)]
pub struct CustomerX509In {
    /// PEM CA certificates to trust for CUSTOMER x.509 users (not expired); the empty string
    /// clears them.
    pub cas: Option<String>,
    #[serde(rename = "links")]
    #[schema(schema_with = crate::openapi::echoed)]
    _links: Option<ReadOnly>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UserToDNMappingRequest)]
pub struct MappingIn {
    #[serde(rename = "ldapQuery")]
    ldap_query: Option<String>,
    #[serde(rename = "match")]
    #[schema(required = true)]
    pattern: Option<String>,
    substitution: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LDAPSecuritySettingsRequest)]
pub struct LdapIn {
    authentication_enabled: Option<bool>,
    authorization_enabled: Option<bool>,
    authz_query_template: Option<String>,
    /// Write-only, and not kept: dbcerts never connects to an LDAP server.
    #[schema(write_only)]
    bind_password: Option<String>,
    #[schema(
        pattern = "^(?:(?<cn>CN=(?<name>[^,]*)),)?(?:(?<path>(?:(?:CN|OU)=[^,]+,?)+),)?(?<domain>(?:DC=[^,]+,?)+)$"
    )]
    bind_username: Option<String>,
    ca_certificate: Option<String>,
    /// Matched in full, as Atlas does.
    #[schema(
        pattern = "^(?:([0-9]{1,3}\\.){3}[0-9]{1,3}|([0-9a-f]{1,4}:){7}([0-9a-f]{1,4})|(([a-z0-9]+\\.){1,10}[a-z]+)?)$"
    )]
    hostname: Option<String>,
    #[serde(default, deserialize_with = "crate::body::integral")]
    #[schema(minimum = 1, maximum = 65535)]
    port: Option<i32>,
    #[serde(rename = "userToDNMapping")]
    user_to_dn_mapping: Option<Vec<MappingIn>>,
    #[serde(rename = "links")]
    #[schema(schema_with = crate::openapi::echoed)]
    _links: Option<ReadOnly>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UserSecurityRequest)]
pub struct UserSecurityIn {
    #[serde(rename = "customerX509")]
    pub customer_x509: Option<CustomerX509In>,
    ldap: Option<LdapIn>,
    #[serde(rename = "links")]
    #[schema(schema_with = crate::openapi::echoed)]
    _links: Option<ReadOnly>,
}

fn ldap_of(rec: &UserSecurityRecord) -> Result<LdapOut, AtlasError> {
    match &rec.ldap_json {
        None => Ok(LdapOut::default()),
        Some(j) => serde_json::from_str(j)
            .map_err(|e| AtlasError::unexpected(format!("user_security.ldap: {e}"))),
    }
}

fn out(rec: &UserSecurityRecord) -> Result<UserSecurityOut, AtlasError> {
    Ok(UserSecurityOut {
        customer_x509: CustomerX509Out {
            cas: rec.customer_cas.clone(),
        },
        ldap: ldap_of(rec)?,
    })
}

/// Merges a PATCH's LDAP fields into the stored settings.
fn merge_ldap(mut cur: LdapOut, input: LdapIn) -> Result<LdapOut, AtlasError> {
    let _write_only_not_kept = input.bind_password;
    if let Some(v) = input.authentication_enabled {
        cur.authentication_enabled = v;
    }
    if let Some(v) = input.authorization_enabled {
        cur.authorization_enabled = v;
    }
    if let Some(v) = input.authz_query_template {
        cur.authz_query_template = Some(v);
    }
    if let Some(v) = input.bind_username {
        if !BIND_USERNAME.is_match(&v) {
            return Err(AtlasError::invalid_attribute("ldap.bindUsername"));
        }
        cur.bind_username = Some(v);
    }
    if let Some(v) = input.ca_certificate {
        cur.ca_certificate = (!v.is_empty()).then_some(v);
    }
    if let Some(v) = input.hostname {
        if !HOSTNAME.is_match(&v) {
            return Err(AtlasError::invalid_attribute("ldap.hostname"));
        }
        cur.hostname = Some(v);
    }
    if let Some(p) = input.port {
        if !(1..=65535).contains(&p) {
            return Err(AtlasError::invalid_attribute("ldap.port"));
        }
        cur.port = Some(p);
    }
    if let Some(maps) = input.user_to_dn_mapping {
        cur.user_to_dn_mapping = Some(
            maps.into_iter()
                .map(|m| {
                    Ok(UserToDnMapping {
                        ldap_query: m.ldap_query,
                        pattern: m.pattern.ok_or_else(|| {
                            AtlasError::missing_attribute("ldap.userToDNMapping.match")
                        })?,
                        substitution: m.substitution,
                    })
                })
                .collect::<Result<_, AtlasError>>()?,
        );
    }
    Ok(cur)
}

/// Checks a customer CA bundle; an expired CA is `EXPIRED_X509_CA_CERTIFICATE`, anything else
/// wrong a `VALIDATION_ERROR` saying what.
fn check_bundle(cas: &str) -> Result<(), AtlasError> {
    match validate_bundle(cas, chrono::Utc::now()) {
        Ok(_) => Ok(()),
        Err(BundleProblem::Expired { .. }) => Err(AtlasError::expired_ca()),
        Err(p) => Err(AtlasError::validation_error(&format!(
            "customerX509.cas: {p}"
        ))),
    }
}

async fn load(
    state: &AppState,
    caller: &Caller,
    group_id: &str,
) -> Result<(GroupId, UserSecurityRecord), AtlasError> {
    let (id, _) = load_project(state, caller, group_id, &[ProjectRole::Owner]).await?;
    let rec = state.inner.store.get_user_security(id.as_str()).await?;
    Ok((id, rec))
}

/// The project's customer CA and LDAP settings.
///
/// Atlas operation `getGroupUserSecurity`.
#[utoipa::path(
    get,
    path = "/api/atlas/v2/groups/{groupId}/userSecurity",
    operation_id = "getGroupUserSecurity",
    tag = "LDAP Configuration",
    params(GroupPath, EntityParams),
    responses((status = 200, description = "The settings; customerX509 is {} when no CA is set.", content_type = ATLAS_2023, body = UserSecurityOut)),
)]
pub async fn get_group_user_security(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    EntityQuery(format): EntityQuery,
) -> Result<Response, AtlasError> {
    let (_, rec) = load(&state, &caller, &group_id).await?;
    Ok(base.respond(StatusCode::OK, &out(&rec)?, Shape::Entity, format))
}

/// Sets the customer CA (Self-Managed X.509) and LDAP settings given; the rest stay.
///
/// Atlas operation `updateGroupUserSecurity`.
#[utoipa::path(
    patch,
    path = "/api/atlas/v2/groups/{groupId}/userSecurity",
    operation_id = "updateGroupUserSecurity",
    tag = "LDAP Configuration",
    params(GroupPath, EntityParams),
    request_body(content = UserSecurityIn, content_type = ATLAS_2023),
    responses((status = 202, description = "The settings as changed.", content_type = ATLAS_2023, body = UserSecurityOut)),
)]
pub async fn update_group_user_security(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    query: Result<EntityQuery, AtlasError>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let EntityQuery(format) = query?;
    let (id, mut rec) = load(&state, &caller, &group_id).await?;
    let input: UserSecurityIn = parse_json(&bytes)?;
    if let Some(x509) = input.customer_x509
        && let Some(cas) = x509.cas
    {
        if cas.is_empty() {
            rec.customer_cas = None;
        } else {
            check_bundle(&cas)?;
            rec.customer_cas = Some(cas);
        }
    }
    if let Some(ldap) = input.ldap {
        let merged = merge_ldap(ldap_of(&rec)?, ldap)?;
        rec.ldap_json = Some(serde_json::to_string(&merged).expect("ldap settings serialize"));
    }
    state
        .inner
        .store
        .put_user_security(id.as_str(), &rec)
        .await?;
    tracing::info!(
        project = id.as_str(),
        customer_ca = rec.customer_cas.is_some(),
        "updated user security"
    );
    Ok(base.respond(StatusCode::ACCEPTED, &out(&rec)?, Shape::Entity, format))
}

/// Clears the customer CA, so the project's users authenticate with dbcerts' managed CA again.
///
/// Atlas operation `disableGroupUserSecurityCustomerX509`.
#[utoipa::path(
    delete,
    path = "/api/atlas/v2/groups/{groupId}/userSecurity/customerX509",
    operation_id = "disableGroupUserSecurityCustomerX509",
    tag = "X.509 Authentication",
    params(GroupPath, EnvelopeParams),
    responses((status = 202, description = "The settings as changed.", content_type = ATLAS_2023, body = UserSecurityOut)),
)]
pub async fn disable_group_user_security_customer_x509(
    State(state): State<AppState>,
    caller: Caller,
    base: Base,
    AtlasPath(group_id): AtlasPath<String>,
    EnvelopeQuery(format): EnvelopeQuery,
) -> Result<Response, AtlasError> {
    let (id, mut rec) = load(&state, &caller, &group_id).await?;
    rec.customer_cas = None;
    state
        .inner
        .store
        .put_user_security(id.as_str(), &rec)
        .await?;
    tracing::info!(project = id.as_str(), "disabled customer-managed X.509");
    Ok(base.respond(StatusCode::ACCEPTED, &out(&rec)?, Shape::Entity, format))
}
