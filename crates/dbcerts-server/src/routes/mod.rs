//! One handler per Atlas operationId, grouped by resource, plus helpers they share.

pub(crate) mod access;
pub(crate) mod api_keys;
pub(crate) mod ca_generations;
pub(crate) mod certs;
pub(crate) mod crl;
pub(crate) mod database_users;
pub(crate) mod extension;
pub(crate) mod ocsp;
pub(crate) mod projects;
pub(crate) mod revocation;
pub(crate) mod service_accounts;
pub(crate) mod user_security;

// The request bodies, for `crate::request_bodies`.
pub use access::{EntryIn, parse_json_array};
pub use api_keys::KeyIn;
pub use certs::UserCertIn;
pub use database_users::{LabelIn, RoleIn, ScopeIn, UserIn};
pub use projects::{GroupIn, ResourceTag};
pub use revocation::RevokeIn;
pub use service_accounts::AccountIn;
pub use user_security::{CustomerX509In, LdapIn, MappingIn, UserSecurityIn};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{any, delete, get, post};
use dbcerts_store::Project;

use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::body::BodyFailure;
use crate::error::AtlasError;
use crate::params::GroupId;

/// The Atlas operations, mounted under both `/api/atlas/v2` and `/api/atlas/v1.0`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/groups",
            get(projects::list_groups).post(projects::create_group),
        )
        .route(
            "/groups/{groupId}",
            get(projects::get_group).delete(projects::delete_group),
        )
        .route(
            "/groups/{groupId}/databaseUsers",
            get(database_users::list_group_database_users)
                .post(database_users::create_group_database_user),
        )
        .route(
            "/groups/{groupId}/databaseUsers/{first}/{username}",
            get(database_users::get_group_database_user)
                .patch(database_users::update_group_database_user)
                .delete(database_users::delete_group_database_user),
        )
        .route(
            "/groups/{groupId}/databaseUsers/{first}/certs",
            get(certs::list_group_database_user_certs).post(certs::create_group_database_user_cert),
        )
        .route(
            "/groups/{groupId}/userSecurity",
            get(user_security::get_group_user_security)
                .patch(user_security::update_group_user_security),
        )
        .route(
            "/groups/{groupId}/userSecurity/customerX509",
            delete(user_security::disable_group_user_security_customer_x509),
        )
        .route(
            "/orgs/{orgId}/apiKeys",
            get(api_keys::list_org_api_keys).post(api_keys::create_org_api_key),
        )
        .route(
            "/orgs/{orgId}/apiKeys/{apiUserId}",
            get(api_keys::get_org_api_key)
                .patch(api_keys::update_org_api_key)
                .delete(api_keys::delete_org_api_key),
        )
        .route(
            "/orgs/{orgId}/apiKeys/{apiUserId}/accessList",
            get(api_keys::list_org_api_key_access_list_entries)
                .post(api_keys::create_org_api_key_access_list_entry),
        )
        .route(
            "/orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}",
            get(api_keys::get_org_api_key_access_list_entry)
                .delete(api_keys::delete_org_api_key_access_list_entry),
        )
        .route(
            "/groups/{groupId}/apiKeys",
            get(api_keys::list_group_api_keys).post(api_keys::create_group_api_key),
        )
        .route(
            "/groups/{groupId}/apiKeys/{apiUserId}",
            post(api_keys::add_group_api_key)
                .patch(api_keys::update_group_api_key_roles)
                .delete(api_keys::remove_group_api_key),
        )
}

/// Service-account operations: API version 2024-08-05, `/api/atlas/v2` only.
pub fn service_account_routes() -> Router<AppState> {
    use service_accounts as sa;
    Router::new()
        .route(
            "/orgs/{orgId}/serviceAccounts",
            get(sa::list_org_service_accounts).post(sa::create_org_service_account),
        )
        .route(
            "/orgs/{orgId}/serviceAccounts/{clientId}",
            get(sa::get_org_service_account)
                .patch(sa::update_org_service_account)
                .delete(sa::delete_org_service_account),
        )
        .route(
            "/orgs/{orgId}/serviceAccounts/{clientId}/groups",
            get(sa::get_org_service_account_groups),
        )
        .route(
            "/orgs/{orgId}/serviceAccounts/{clientId}/secrets",
            post(sa::create_service_account_secret),
        )
        .route(
            "/orgs/{orgId}/serviceAccounts/{clientId}/secrets/{secretId}",
            delete(sa::delete_service_account_secret),
        )
        .route(
            "/orgs/{orgId}/serviceAccounts/{clientId}/accessList",
            get(sa::list_service_account_access_list).post(sa::create_service_account_access_list),
        )
        .route(
            "/orgs/{orgId}/serviceAccounts/{clientId}/accessList/{ipAddress}",
            delete(sa::delete_service_account_access_list_entry),
        )
        .route(
            "/groups/{groupId}/serviceAccounts",
            get(sa::list_group_service_accounts).post(sa::create_group_service_account),
        )
        .route(
            "/groups/{groupId}/serviceAccounts/{clientId}/secrets",
            post(sa::create_service_account_secret),
        )
        .route(
            "/groups/{groupId}/serviceAccounts/{clientId}/secrets/{secretId}",
            delete(sa::delete_service_account_secret),
        )
        .route(
            "/groups/{groupId}/serviceAccounts/{clientId}/accessList",
            get(sa::list_service_account_access_list).post(sa::create_service_account_access_list),
        )
        .route(
            "/groups/{groupId}/serviceAccounts/{clientId}/accessList/{ipAddress}",
            delete(sa::delete_service_account_access_list_entry),
        )
        .route(
            "/groups/{groupId}/serviceAccounts/{clientId}",
            get(sa::get_group_service_account)
                .patch(sa::update_group_service_account)
                .delete(sa::delete_group_service_account)
                .post(sa::invite_group_service_account),
        )
}

/// The OAuth 2.0 token endpoints, outside the versioned API; they authenticate their clients.
pub fn oauth_routes() -> Router<AppState> {
    Router::new()
        .route("/api/oauth/token", post(crate::auth::oauth::token))
        .route("/api/oauth/revoke", post(crate::auth::oauth::revoke))
}

/// Non-Atlas extensions, under a path Atlas does not use.
pub fn extension_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/dbcerts/v1/groups/{groupId}/ca",
            get(extension::get_project_ca),
        )
        .route(
            "/api/dbcerts/v1/groups/{groupId}/crl",
            get(crl::get_project_crl),
        )
        .route("/api/dbcerts/v1/crl/{token}", get(crl::get_distributed_crl))
        .merge(revocation::routes())
        .route(
            "/api/dbcerts/v1/groups/{groupId}/cas",
            get(ca_generations::list_project_ca_generations),
        )
        .route(
            "/api/dbcerts/v1/groups/{groupId}/ca:rotate",
            post(ca_generations::rotate_project_ca),
        )
        .route(
            "/api/dbcerts/v1/groups/{groupId}/ca:retire",
            post(ca_generations::retire_project_ca_generation),
        )
        .route(crate::openapi::PATH, get(crate::openapi::serve))
        .route(
            "/api/dbcerts/v1/ocsp/{groupId}",
            any(ocsp::post_ocsp_request),
        )
        .route(
            "/api/dbcerts/v1/ocsp/{groupId}/{*request}",
            any(ocsp::get_ocsp_request),
        )
}

/// Path parameters, with a malformed path (for example invalid UTF-8 after percent-decoding)
/// answered in Atlas's format.
pub struct AtlasPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AtlasPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AtlasError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Inside a nested router `parts.uri` lacks the API prefix; name the path as sent.
        let not_found = |parts: &Parts| {
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
            AtlasError::resource_not_found(&path)
        };
        // A NUL character (`%00`) names nothing that can exist (no stored name holds one, and
        // PostgreSQL text cannot): not found, on every backend alike.
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found(parts))?;
        if raw.iter().any(|(_, value)| value.contains('\0')) {
            return Err(not_found(parts));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| AtlasPath(p.0))
            .map_err(|_| not_found(parts))
    }
}

/// Where an operation that Atlas offers on both an organization's path and a project's was
/// addressed: `/orgs/{orgId}/...` or `/groups/{groupId}/...`, read from the route's path
/// parameters, so that one handler serves both routes. The ids are as given: the handler
/// loads the organization or the project (and answers for a malformed or unknown one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Org(String),
    Group(String),
}

impl Scope {
    /// `["orgs", orgId]` or `["groups", groupId]`: the first segments of the path.
    pub fn segments(&self) -> [&str; 2] {
        match self {
            Scope::Org(id) => ["orgs", id],
            Scope::Group(id) => ["groups", id],
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = AtlasError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Ids {
            org_id: Option<String>,
            group_id: Option<String>,
        }
        let AtlasPath(ids) = AtlasPath::<Ids>::from_request_parts(parts, state).await?;
        match (ids.org_id, ids.group_id) {
            (Some(org_id), None) => Ok(Scope::Org(org_id)),
            (None, Some(group_id)) => Ok(Scope::Group(group_id)),
            _ => Err(AtlasError::unexpected(
                "a scoped handler is routed on a path without exactly one of {orgId}, {groupId}",
            )),
        }
    }
}

/// The raw request body, with an over-limit body answered as Atlas-format 413 and one not
/// received within the body timeout as 408.
pub struct AtlasBody(pub Bytes);

impl FromRequest<AppState> for AtlasBody {
    type Rejection = AtlasError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        crate::body::read_body(req, state)
            .await
            .map(AtlasBody)
            .map_err(|failure| match failure {
                BodyFailure::TooLarge => {
                    AtlasError::payload_too_large(state.inner.config.body_limit)
                }
                BodyFailure::TimedOut => {
                    AtlasError::request_timeout(state.inner.config.body_timeout)
                }
                BodyFailure::Unreadable => AtlasError::malformed_json(),
            })
    }
}

/// Loads the project `raw_id` for a caller who needs one of `any_of` in it. A project that does
/// not exist and one the caller cannot see both answer `GROUP_NOT_FOUND`.
pub async fn load_project(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    any_of: &[ProjectRole],
) -> Result<(GroupId, Project), AtlasError> {
    let id = GroupId::parse(raw_id)?;
    let project = state
        .inner
        .store
        .get_project(id.as_str())
        .await?
        .filter(|p| caller.can_see(p))
        .ok_or_else(|| AtlasError::group_not_found(id.as_str()))?;
    caller.require(&project, any_of)?;
    Ok((id, project))
}
