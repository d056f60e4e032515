//! dbcerts extensions, outside Atlas's paths: `GET /api/dbcerts/v1/groups/{groupId}/ca` returns
//! the project's trust bundle (PEM), for `net.tls.CAFile` of `mongod`: every CA generation that is
//! active, or not retired and still has an unexpired certificate ([`crate::ca_service`]); one CA
//! until the first rotation. Project Read Only may read an existing CA; when the project has none
//! yet, a Project Owner's request creates it (as the first certificate would) and anyone else
//! gets 404.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::error::AtlasError;

/// The project's trust bundle: the certificate of every CA generation in it, oldest first (one
/// until the first rotation), for `net.tls.CAFile` of `mongod`.
#[utoipa::path(
    get,
    path = "/api/dbcerts/v1/groups/{groupId}/ca",
    operation_id = "getProjectCa",
    tag = "dbcerts",
    params(crate::params::GroupPath),
    responses(
        (status = 200, description = "The CA certificates of the trust bundle, PEM, oldest generation first.", content_type = crate::openapi::PEM, body = String),
        (status = 401, description = "No valid credentials.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 403, description = "The caller's address is not on its access list.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 404, description = "No such project, or (for a caller who may not create it) no CA yet.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 429, description = "Too many requests.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 500, description = "An unexpected error.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn get_project_ca(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath(group_id): AtlasPath<String>,
) -> Result<Response, AtlasError> {
    let (id, project) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let may_create = caller.require(&project, &[ProjectRole::Owner]).is_ok();
    if !may_create && state.inner.ca.get(id.as_str()).await?.is_none() {
        let what = format!("managed CA of group {}", id.as_str());
        return Err(AtlasError::resource_not_found(&what));
    }
    let bundle = state.inner.ca.bundle_pem(id.as_str()).await?;
    let mut res = (StatusCode::OK, bundle).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    Ok(res)
}
