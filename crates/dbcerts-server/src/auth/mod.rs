//! Who is calling, and what they may do.
//!
//! The middleware authenticates every `/api/atlas/...` request before its body is read (curl's
//! first Digest POST carries an empty body) and puts a [`Caller`] into the request extensions.
//! Handlers ask the caller for the project roles an operation needs; a project the caller
//! cannot see answers exactly like one that does not exist.

pub mod digest;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::AtlasError;
use digest::{NonceCheck, REALM};

/// An organization role (Atlas names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    Owner,
    GroupCreator,
    ReadOnly,
    Member,
}

impl OrgRole {
    pub fn parse(name: &str) -> Option<OrgRole> {
        match name {
            "ORG_OWNER" => Some(OrgRole::Owner),
            "ORG_GROUP_CREATOR" => Some(OrgRole::GroupCreator),
            "ORG_READ_ONLY" => Some(OrgRole::ReadOnly),
            "ORG_MEMBER" => Some(OrgRole::Member),
            _ => None,
        }
    }
}

/// A project role, as named in the spec's `x-rolesRequirements`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectRole {
    Owner,
    ReadOnly,
    DatabaseAccessAdmin,
    StreamProcessingOwner,
}

impl ProjectRole {
    /// Whether holding `self` grants `needed`. Project Owner implies every project role.
    pub fn implies(self, needed: ProjectRole) -> bool {
        self == needed || self == ProjectRole::Owner || needed == ProjectRole::ReadOnly
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    ApiKey { public_key: String },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub org_id: String,
    pub org_roles: Vec<OrgRole>,
}

impl Caller {
    /// Whether the caller can see anything of organization `org_id`.
    pub fn in_org(&self, org_id: &str) -> bool {
        self.org_id == org_id
    }

    /// The project roles the caller holds in a project of organization `org_id`.
    pub fn project_roles(&self, org_id: &str) -> Vec<ProjectRole> {
        if !self.in_org(org_id) {
            return Vec::new();
        }
        let mut roles = Vec::new();
        for r in &self.org_roles {
            match r {
                OrgRole::Owner => roles.push(ProjectRole::Owner),
                OrgRole::ReadOnly => roles.push(ProjectRole::ReadOnly),
                OrgRole::GroupCreator | OrgRole::Member => {}
            }
        }
        roles
    }

    /// Fails with `USER_UNAUTHORIZED` unless the caller holds one of `any_of` in a project of
    /// organization `org_id`.
    pub fn require(&self, org_id: &str, any_of: &[ProjectRole]) -> Result<(), AtlasError> {
        let held = self.project_roles(org_id);
        if any_of
            .iter()
            .any(|need| held.iter().any(|h| h.implies(*need)))
        {
            Ok(())
        } else {
            Err(AtlasError::user_unauthorized())
        }
    }

    pub fn can_create_projects(&self, org_id: &str) -> bool {
        self.in_org(org_id)
            && self
                .org_roles
                .iter()
                .any(|r| matches!(r, OrgRole::Owner | OrgRole::GroupCreator))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AtlasError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| AtlasError::unexpected("route is missing the authentication layer"))
    }
}

/// Authenticates every request under `/api/` or answers 401 with a Digest challenge. Other
/// paths (health checks, later) pass through.
pub async fn authenticate_api(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let now = chrono::Utc::now().timestamp();
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let Some(header) = header else {
        return challenge(&state, now, false);
    };
    let creds = match digest::parse(&header) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = ?e, "refused Digest header");
            return challenge(&state, now, false);
        }
    };
    let target = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    if creds.uri != target {
        tracing::info!("Digest uri does not match the request target");
        return challenge(&state, now, false);
    }
    let (nonce, issued) = state.inner.nonce_key.check_issued(&creds.nonce, now);
    if nonce == NonceCheck::Invalid {
        return challenge(&state, now, false);
    }
    let method = req.method().as_str().to_owned();
    let key = match state.inner.store.get_api_key(&creds.username).await {
        Ok(k) => k,
        Err(e) => return AtlasError::from(e).into_response(),
    };
    // Unknown keys take the same path (unseal, hash, compare) as known ones.
    let (sealed, purpose) = match &key {
        Some(k) => (
            k.sealed_private_key.as_slice(),
            format!("api-key:{}", k.public_key),
        ),
        None => (
            state.inner.dummy_sealed_key.as_slice(),
            "api-key:dummy".to_owned(),
        ),
    };
    let secret = match state.inner.master.open(sealed, &purpose) {
        Ok(s) => s,
        Err(e) => {
            return AtlasError::unexpected(format!("unsealing an API key: {e}")).into_response();
        }
    };
    let password = String::from_utf8_lossy(&secret);
    let expected = digest::expected_response(&creds, &method, &password);
    let matched = digest::responses_match(&expected, &creds.response);
    let Some(key) = key.filter(|_| matched) else {
        tracing::info!(public_key = %creds.username, "Digest authentication failed");
        return challenge(&state, now, false);
    };
    if nonce == NonceCheck::Stale {
        return challenge(&state, now, true);
    }
    let nc = u32::from_str_radix(&creds.nc, 16).unwrap_or(0);
    if !state
        .inner
        .nonce_counts
        .advance(&creds.nonce, issued, nc, now)
    {
        tracing::warn!(public_key = %key.public_key, "Digest nonce count reused (replay); answering stale=true");
        return challenge(&state, now, true);
    }
    req.extensions_mut().insert(Caller {
        principal: Principal::ApiKey {
            public_key: key.public_key.clone(),
        },
        org_id: key.org_id.clone(),
        org_roles: key
            .org_roles
            .iter()
            .filter_map(|r| OrgRole::parse(r))
            .collect(),
    });
    next.run(req).await
}

/// Atlas's exact 401: a Digest challenge and a Jackson-pretty JSON body whose keys are in
/// Atlas's order (error, reason, detail, errorCode), as recorded from Atlas.
fn challenge(state: &AppState, now: i64, stale: bool) -> Response {
    let nonce = state.inner.nonce_key.issue(now);
    let www = format!(
        "Digest realm=\"{REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
    );
    let body = "{\n  \"error\" : 401,\n  \"reason\" : \"Unauthorized\",\n  \"detail\" : \"You are not authorized for this resource.\",\n  \"errorCode\" : \"UNEXPECTED_ERROR\"\n}";
    let mut res = (StatusCode::UNAUTHORIZED, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-error-code", HeaderValue::from_static("UNEXPECTED_ERROR"));
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&www).expect("challenge is ASCII"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[OrgRole]) -> Caller {
        Caller {
            principal: Principal::ApiKey {
                public_key: "abcdefgh".into(),
            },
            org_id: "a".repeat(24),
            org_roles: roles.to_vec(),
        }
    }

    #[test]
    fn org_owner_implies_every_project_role() {
        let c = caller(&[OrgRole::Owner]);
        let org = "a".repeat(24);
        for r in [
            ProjectRole::Owner,
            ProjectRole::ReadOnly,
            ProjectRole::DatabaseAccessAdmin,
        ] {
            assert!(c.require(&org, &[r]).is_ok());
        }
        assert!(
            c.require(&"b".repeat(24), &[ProjectRole::ReadOnly])
                .is_err()
        );
    }

    #[test]
    fn read_only_cannot_write() {
        let c = caller(&[OrgRole::ReadOnly]);
        let org = "a".repeat(24);
        assert!(c.require(&org, &[ProjectRole::ReadOnly]).is_ok());
        let e = c.require(&org, &[ProjectRole::Owner]).unwrap_err();
        assert_eq!(e.code, "USER_UNAUTHORIZED");
        assert!(
            c.require(
                &org,
                &[
                    ProjectRole::DatabaseAccessAdmin,
                    ProjectRole::StreamProcessingOwner
                ]
            )
            .is_err()
        );
        assert!(!c.can_create_projects(&org));
    }
}
