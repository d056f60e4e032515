//! dbcerts extensions, outside Atlas's paths: `GET /api/dbcerts/v1/groups/{groupId}/ca` returns
//! the project's managed CA certificate (PEM), for `net.tls.CAFile` of `mongod`. It creates the
//! CA if the project has none yet, exactly as the first certificate would.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::error::AtlasError;

pub async fn get_project_ca(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath(group_id): AtlasPath<String>,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let ca = state.inner.ca.get_or_create(id.as_str()).await?;
    let mut res = (StatusCode::OK, ca.cert_pem()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    Ok(res)
}
