//! `AtlasError`: every error the API returns, in Atlas's wire format.
//!
//! Each constructor names an Atlas `errorCode`, its HTTP status and its message template (from
//! MongoDB's error-code table). The body is `{detail, error, errorCode, parameters, reason}`, keys
//! in alphabetical order, served as `application/json` with an `X-Error-Code` header. 5xx bodies
//! are opaque: the cause is kept out of the body and logged once, with the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// Whether `error` or anything in its chain of sources is an `E`.
pub fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<E>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// An error response in Atlas's format.
#[derive(Debug, Clone)]
pub struct AtlasError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub parameters: Vec<Value>,
    /// The real cause of a 5xx, for the log only.
    pub cause: Option<String>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

/// The error body. Field order is alphabetical, as Atlas emits it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiError)]
pub struct ApiErrorBody<'a> {
    /// The message, with the parameters substituted.
    #[schema(value_type = String)]
    pub detail: &'a str,
    /// The HTTP status.
    #[schema(value_type = i32)]
    pub error: u16,
    /// Atlas's error code, also sent as the `X-Error-Code` header.
    #[serde(rename = "errorCode")]
    #[schema(value_type = String)]
    pub error_code: &'a str,
    /// The values substituted into the message: strings and numbers (MongoDB's specification
    /// types them as objects; Atlas sends plain values).
    #[schema(schema_with = crate::openapi::error_parameters)]
    pub parameters: &'a [Value],
    /// The HTTP reason phrase.
    #[schema(value_type = String)]
    pub reason: &'a str,
}

/// Marks a response as carrying a 5xx cause that the logging middleware must record.
#[derive(Clone, Debug)]
pub struct LoggedCause(pub String);

impl AtlasError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        AtlasError {
            status,
            code,
            detail: detail.into(),
            parameters: Vec::new(),
            cause: None,
            retry_after: None,
        }
    }

    pub fn with_params(mut self, params: impl IntoIterator<Item = Value>) -> Self {
        self.parameters = params.into_iter().collect();
        self
    }

    fn one(status: StatusCode, code: &'static str, template: &str, param: &str) -> Self {
        Self::new(status, code, template.replacen("%s", param, 1))
            .with_params([Value::String(param.to_owned())])
    }

    // ---- 400 ----
    pub fn malformed_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
            "Received JSON is malformed.",
        )
    }
    pub fn invalid_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "Received JSON does not match expected format.",
        )
    }
    pub fn invalid_json_attribute(attr: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON_ATTRIBUTE",
            "Received JSON for the %s attribute does not match expected format.",
            attr,
        )
    }
    pub fn invalid_attribute(attr: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "INVALID_ATTRIBUTE",
            "Invalid attribute %s specified.",
            attr,
        )
    }
    pub fn missing_attribute(attr: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "MISSING_ATTRIBUTE",
            "The required attribute %s was not specified.",
            attr,
        )
    }
    pub fn invalid_enum_value(value: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "INVALID_ENUM_VALUE",
            "An invalid enumeration value %s was specified.",
            value,
        )
    }
    pub fn validation_error(what: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "The request content produced the validation error: %s.",
            what,
        )
    }
    pub fn invalid_query_parameter(name: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_PARAMETER",
            "Invalid query parameter %s specified.",
            name,
        )
    }
    pub fn attribute_negative_or_zero(attr: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "ATTRIBUTE_NEGATIVE_OR_ZERO",
            "The attribute %s cannot be negative or zero.",
            attr,
        )
    }
    pub fn cert_expiry_too_long() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS",
            "Atlas-generated X.509 certificates have a maximum expiration of 24 months.",
        )
    }
    pub fn user_not_managed_x509() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "USER_NOT_MANAGED_X509",
            "The user does not have managed mode X.509 enabled.",
        )
    }
    pub fn advanced_x509() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "CANNOT_GENERATE_CERT_IF_ADVANCED_X509",
            "The user cannot create managed X.509 certs if advanced mode is on.",
        )
    }
    pub fn managed_x509_name_invalid(username: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "ATLAS_MANAGED_X509_NAME_INVALID",
            "The username %s is invalid for Atlas-managed X.509 user auth. These usernames must take the form CN=<username> with no additional OIDs.",
            username,
        )
    }
    pub fn invalid_ldap_name(username: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "ATLAS_INVALID_LDAP_NAME",
            "The distinguished name specified in the username field, %s, is not valid according to RFC 2253.",
            username,
        )
    }
    pub fn x509_cannot_be_temporary() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ATLAS_X509_USER_CANNOT_BE_TEMPORARY",
            "X.509 users cannot be temporary.",
        )
    }
    pub fn x509_cannot_use_ldap() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ATLAS_X509_USER_CANNOT_USE_LDAP",
            "Users cannot be configured for X.509 and LDAP authentication.",
        )
    }
    pub fn x509_cannot_use_scram() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ATLAS_X509_USER_CANNOT_USE_SCRAM",
            "Users cannot be configured for SCRAM and X.509 authentication.",
        )
    }
    pub fn database_name_invalid_external() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "DATABASE_NAME_INVALID_EXTERNAL",
            "Database name invalid. Externally authenticated users can only be created on the $external database.",
        )
    }
    pub fn database_name_invalid_admin(kind: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "DATABASE_NAME_INVALID_ADMIN",
            "Database name invalid. %s can only be created on the admin database.",
            kind,
        )
    }
    pub fn expired_ca() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "EXPIRED_X509_CA_CERTIFICATE",
            "The X.509 CA certificate has expired.",
        )
    }
    pub fn invalid_group_name(name: &str) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "INVALID_GROUP_NAME",
            "An invalid group name \"%s\" was specified.",
            name,
        )
    }
    // ---- 401 / 403 ----
    pub fn user_unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "USER_UNAUTHORIZED",
            "Current user is not authorized to perform this action.",
        )
    }
    pub fn ip_not_on_access_list(ip: &str) -> Self {
        Self::one(
            StatusCode::FORBIDDEN,
            "IP_ADDRESS_NOT_ON_WHITELIST",
            "IP address %s is not allowed to access this resource.",
            ip,
        )
    }
    pub fn access_forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ACCESS_FORBIDDEN",
            "Access to this resource is forbidden for current user.",
        )
    }
    /// 429 with `Retry-After`, as Atlas words it: "Resource %s is limited to %s requests every
    /// %s minutes."
    pub fn rate_limited(
        resource: &str,
        limit: u32,
        minutes: u64,
        retry_after: std::time::Duration,
    ) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("Resource {resource} is limited to {limit} requests every {minutes} minutes."),
        )
        .with_params([
            Value::from(resource),
            Value::from(limit),
            Value::from(minutes),
        ]);
        e.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
        e
    }
    pub fn group_users_limit(limit: u64) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "GROUP_USERS_LIMIT_EXCEEDED",
            format!("Groups can contain at most {limit} database users."),
        )
        .with_params([Value::from(limit)])
    }
    // ---- 404 ----
    pub fn group_not_found(id: &str) -> Self {
        Self::one(
            StatusCode::NOT_FOUND,
            "GROUP_NOT_FOUND",
            "No group with ID %s exists.",
            id,
        )
    }
    pub fn invalid_group_id(id: &str) -> Self {
        Self::one(
            StatusCode::NOT_FOUND,
            "INVALID_GROUP_ID",
            "An invalid group ID %s was specified.",
            id,
        )
    }
    pub fn org_not_found(id: &str) -> Self {
        Self::one(
            StatusCode::NOT_FOUND,
            "ORG_NOT_FOUND",
            "No organization with ID %s exists.",
            id,
        )
    }
    pub fn username_not_found(username: &str) -> Self {
        Self::one(
            StatusCode::NOT_FOUND,
            "USERNAME_NOT_FOUND",
            "No user with username %s exists.",
            username,
        )
    }
    pub fn resource_not_found(what: &str) -> Self {
        Self::one(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "Cannot find resource %s.",
            what,
        )
    }
    // ---- 405 / 406 / 409 / 413 ----
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNEXPECTED_ERROR",
            format!("The HTTP method {method} is not supported on this resource."),
        )
    }
    pub fn invalid_version_date() -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "INVALID_VERSION_DATE",
            "Invalid accept header or version date.",
        )
    }
    pub fn user_already_exists(username: &str) -> Self {
        Self::one(
            StatusCode::CONFLICT,
            "USER_ALREADY_EXISTS",
            "A user with username %s already exists.",
            username,
        )
    }
    pub fn group_already_exists(name: &str) -> Self {
        Self::one(
            StatusCode::CONFLICT,
            "GROUP_ALREADY_EXISTS",
            "A group with name \"%s\" already exists.",
            name,
        )
    }
    pub fn username_cannot_change() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "DATABASE_USERNAME_CANNOT_BE_CHANGED",
            "Cannot modify the username of an existing database user.",
        )
    }
    pub fn database_name_cannot_change() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "DATABASE_NAME_CANNOT_BE_CHANGED",
            "Cannot modify the authentication database of an existing database user.",
        )
    }
    pub fn auth_type_cannot_change() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AUTH_TYPE_CANNOT_BE_CHANGED",
            "Cannot modify the authentication type of an existing database user.",
        )
    }
    /// A request body not received in time (dbcerts' own: Atlas's figure is not known).
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!(
                "The request body was not received within {} seconds.",
                limit.as_secs()
            ),
        )
    }
    /// A request head over the budget of `head_limits` (dbcerts' own: Atlas's proxies answer
    /// before Atlas does, and what they answer is not known).
    pub fn headers_too_large(max_fields: usize, max_bytes: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "REQUEST_HEADERS_TOO_LARGE",
            format!(
                "The request headers are too large: at most {max_fields} header fields and {max_bytes} bytes of request line and headers are accepted."
            ),
        )
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::validation_error(&format!("the request body is larger than {limit} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    }
    // ---- 5xx ----
    pub fn unexpected(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNEXPECTED_ERROR",
            "Unexpected error.",
        );
        e.cause = Some(cause.into());
        e
    }
    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNEXPECTED_ERROR",
            "Unexpected error.",
        );
        e.cause = Some(cause.into());
        e
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn body(&self) -> ApiErrorBody<'_> {
        ApiErrorBody {
            detail: &self.detail,
            error: self.status.as_u16(),
            error_code: self.code,
            parameters: &self.parameters,
            reason: self.status.canonical_reason().unwrap_or(""),
        }
    }
}

impl From<dbcerts_store::StoreError> for AtlasError {
    fn from(e: dbcerts_store::StoreError) -> Self {
        match e {
            dbcerts_store::StoreError::Unavailable(m) => AtlasError::unavailable(m),
            // What the write referred to was deleted concurrently (for example the project).
            dbcerts_store::StoreError::Gone => {
                AtlasError::resource_not_found("the referenced resource")
            }
            other => AtlasError::unexpected(other.to_string()),
        }
    }
}

impl IntoResponse for AtlasError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).expect("error bodies serialize");
        let mut res = (self.status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-error-code", HeaderValue::from_static(self.code));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = self.cause {
            res.extensions_mut().insert(LoggedCause(cause));
        }
        res
    }
}
