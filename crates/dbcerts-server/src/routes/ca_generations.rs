//! CA rotation with overlap, dbcerts extensions under `/api/dbcerts/v1`:
//!
//! - `GET  .../groups/{groupId}/cas`: every generation of the project CA (Project Read Only).
//! - `POST .../groups/{groupId}/ca:rotate`: a new generation becomes active for new leaves; the
//!   previous one stays in the trust bundle (Project Owner).
//! - `POST .../groups/{groupId}/ca:retire` `{"generation": N}`: generation N leaves the trust
//!   bundle, so its leaves stop verifying; the active generation cannot be retired (Project
//!   Owner).
//!
//! The trust bundle itself is `GET .../groups/{groupId}/ca` ([`super::extension`]). Each change
//! is audited in its own transaction (`ca.rotated`, `ca.retired`) and counted in metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AtlasBody, AtlasPath, load_project};
use crate::AppState;
use crate::auth::{Caller, ProjectRole};
use crate::body::parse_json;
use crate::ca_service::{Generation, RetireError, RotationReason};
use crate::error::AtlasError;
use crate::format::atlas_time;

/// One generation of a project's managed CA.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CaGeneration)]
pub struct GenerationOut {
    /// 1 for the project's first CA (Atlas's issuer name), then 2, 3, ... one per rotation.
    /// Generations from 2 on carry `generationQualifier=<generation>` in their name.
    generation: u32,
    /// Whether new certificates are signed by this generation (exactly one is).
    active: bool,
    /// Whether the trust bundle holds it: the active generation, and every other one that is
    /// not retired and still has an unexpired certificate.
    in_bundle: bool,
    /// The CA certificate's subject.
    subject: String,
    #[schema(format = DateTime)]
    not_before: String,
    #[schema(format = DateTime)]
    not_after: String,
    /// When an operator retired it; absent while it is not retired.
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    retired_at: Option<String>,
    /// The CA certificate, PEM.
    certificate: String,
}

impl From<Generation> for GenerationOut {
    fn from(g: Generation) -> Self {
        GenerationOut {
            generation: g.generation,
            active: g.active,
            in_bundle: g.in_bundle,
            subject: g.subject,
            not_before: atlas_time(g.not_before),
            not_after: atlas_time(g.not_after),
            retired_at: g.retired_at.map(atlas_time),
            certificate: g.cert_pem,
        }
    }
}

/// The generations of a project CA, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CaGenerations)]
pub struct GenerationsOut {
    results: Vec<GenerationOut>,
    total_count: usize,
}

/// `ca:retire`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CaRetireRequest)]
pub struct RetireIn {
    /// The generation to retire; not the active one.
    #[serde(default, deserialize_with = "crate::body::integral")]
    #[schema(minimum = 1, value_type = i64)]
    generation: Option<i64>,
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let mut res = (
        status,
        serde_json::to_vec(value).expect("a generation serializes"),
    )
        .into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    res
}

/// Every generation of the project's managed CA, oldest first.
#[utoipa::path(
    get,
    path = "/api/dbcerts/v1/groups/{groupId}/cas",
    operation_id = "listProjectCaGenerations",
    tag = "dbcerts",
    params(crate::params::GroupPath),
    responses(
        (status = 200, description = "The generations, oldest first (none before the project's first certificate).", content_type = crate::openapi::JSON, body = GenerationsOut),
        (status = 404, description = "No such project.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn list_project_ca_generations(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath(group_id): AtlasPath<String>,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::ReadOnly]).await?;
    let results: Vec<GenerationOut> = state
        .inner
        .ca
        .generations(id.as_str())
        .await?
        .into_iter()
        .map(GenerationOut::from)
        .collect();
    let total_count = results.len();
    Ok(json(
        StatusCode::OK,
        &GenerationsOut {
            results,
            total_count,
        },
    ))
}

/// Makes a new generation of the project's CA active for new certificates. The previous one
/// stays in the trust bundle until its last certificate expires or it is retired.
#[utoipa::path(
    post,
    path = "/api/dbcerts/v1/groups/{groupId}/ca:rotate",
    operation_id = "rotateProjectCa",
    tag = "dbcerts",
    params(crate::params::GroupPath),
    responses(
        (status = 201, description = "The new, active generation.", content_type = crate::openapi::JSON, body = GenerationOut),
        (status = 404, description = "No such project.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 409, description = "CA_ROTATION_CONFLICT: another rotation of this project's CA happened at the same time; read the generations and retry if still needed.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn rotate_project_ca(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath(group_id): AtlasPath<String>,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let who = crate::ca_service::Who::of(&caller);
    let generation = state
        .inner
        .ca
        .rotate(id.as_str(), RotationReason::Manual, &who)
        .await?
        .ok_or_else(|| {
            AtlasError::new(
                StatusCode::CONFLICT,
                "CA_ROTATION_CONFLICT",
                "Another rotation of this project's CA happened at the same time.",
            )
        })?;
    let mut res = json(StatusCode::CREATED, &GenerationOut::from(generation));
    res.extensions_mut().insert(crate::auth::Audited);
    Ok(res)
}

/// Takes a generation of the project's CA out of the trust bundle: certificates it signed stop
/// verifying wherever the bundle is refreshed. Retiring a retired generation changes nothing
/// and keeps its first retirement time.
#[utoipa::path(
    post,
    path = "/api/dbcerts/v1/groups/{groupId}/ca:retire",
    operation_id = "retireProjectCaGeneration",
    tag = "dbcerts",
    params(crate::params::GroupPath),
    request_body(content = RetireIn, content_type = crate::openapi::JSON),
    responses(
        (status = 200, description = "The retired generation.", content_type = crate::openapi::JSON, body = GenerationOut),
        (status = 400, description = "A malformed body.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 404, description = "No such project, or CA_GENERATION_NOT_FOUND.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
        (status = 409, description = "CA_GENERATION_ACTIVE: the active generation cannot be retired; rotate first.", content_type = crate::openapi::JSON, body = crate::error::ApiErrorBody),
    ),
)]
pub async fn retire_project_ca_generation(
    State(state): State<AppState>,
    caller: Caller,
    AtlasPath(group_id): AtlasPath<String>,
    AtlasBody(bytes): AtlasBody,
) -> Result<Response, AtlasError> {
    let (id, _) = load_project(&state, &caller, &group_id, &[ProjectRole::Owner]).await?;
    let input: RetireIn = parse_json(&bytes)?;
    let requested = input
        .generation
        .ok_or_else(|| AtlasError::missing_attribute("generation"))?;
    if requested < 1 {
        return Err(AtlasError::attribute_negative_or_zero("generation"));
    }
    let who = crate::ca_service::Who::of(&caller);
    let generation = u32::try_from(requested).unwrap_or(u32::MAX);
    match state.inner.ca.retire(id.as_str(), generation, &who).await? {
        Ok(g) => {
            let mut res = json(StatusCode::OK, &GenerationOut::from(g));
            res.extensions_mut().insert(crate::auth::Audited);
            Ok(res)
        }
        Err(RetireError::NotFound) => Err(AtlasError::new(
            StatusCode::NOT_FOUND,
            "CA_GENERATION_NOT_FOUND",
            format!("The project CA has no generation {generation}."),
        )
        .with_params([serde_json::Value::from(generation)])),
        Err(RetireError::Active) => Err(AtlasError::new(
            StatusCode::CONFLICT,
            "CA_GENERATION_ACTIVE",
            format!(
                "Generation {generation} is the project's active CA and cannot be retired; rotate the CA first."
            ),
        )
        .with_params([serde_json::Value::from(generation)])),
    }
}
