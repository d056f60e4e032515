//! `ClientError`: everything a call can fail with, and how a caller (the CLI) classifies it.
//!
//! Error bodies are read in Atlas's format (`{detail, error, errorCode, parameters, reason}`)
//! or, from the token endpoint, OAuth's (`{error, error_description}`). This module never
//! includes the body of a *successful* response in an error: such bodies can carry private
//! keys, secrets or tokens.

use std::fmt;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

/// An error the server answered in Atlas's format (or OAuth's, for the token endpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Atlas's `errorCode` (`GROUP_NOT_FOUND`, …), or OAuth's `error` (`invalid_client`, …).
    /// Empty when the server sent neither.
    pub error_code: String,
    /// The human-readable `detail` (OAuth: `error_description`).
    pub detail: Option<String>,
    /// The HTTP reason phrase as the body states it (`Not Found`).
    pub reason: Option<String>,
    /// The values substituted into the message template, e.g. the group id.
    pub parameters: Vec<Value>,
    /// The server's `X-Request-Id`, to find the matching server log lines.
    pub request_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if !self.error_code.is_empty() {
            write!(f, " {}", self.error_code)?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused the request with an Atlas error (400, 409, 429, 5xx, …) other than
    /// the authentication and not-found cases below.
    #[error("{0}")]
    Atlas(Box<ApiError>),
    /// Authentication or authorization failed (401 or 403, or the token endpoint refused the
    /// service account's credentials).
    #[error("authentication failed: {0}")]
    Auth(Box<ApiError>),
    /// The resource, or a resource it lives under, does not exist (404).
    #[error("not found: {0}")]
    NotFound(Box<ApiError>),
    /// The server could not be reached, or the exchange broke off or timed out.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered with something this client cannot read.
    #[error("unexpected response (HTTP {status}): {problem}")]
    UnexpectedBody {
        /// The HTTP status.
        status: u16,
        /// The response's `Content-Type`, if any.
        content_type: Option<String>,
        /// What was wrong with it (never the body of a successful response).
        problem: String,
    },
    /// The caller's input cannot be sent (a malformed base URL, an empty path segment, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Broad classes of failure, for mapping to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request as given cannot succeed: invalid input, or a 4xx the caller must fix
    /// (validation errors, conflicts).
    Usage,
    /// Authentication or authorization failed.
    Auth,
    /// Something named does not exist.
    NotFound,
    /// The server failed, is rate limiting, or answered unreadably; trying later may help.
    Server,
    /// The server could not be reached or did not answer in time.
    Transport,
}

impl ClientError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ClientError::Auth(_) => ErrorClass::Auth,
            ClientError::NotFound(_) => ErrorClass::NotFound,
            ClientError::Atlas(e) if e.status == 429 || e.status >= 500 => ErrorClass::Server,
            ClientError::Atlas(_) | ClientError::InvalidInput(_) => ErrorClass::Usage,
            ClientError::UnexpectedBody { .. } => ErrorClass::Server,
            ClientError::Transport(_) => ErrorClass::Transport,
        }
    }

    /// The server's error, when it sent one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Atlas(e) | ClientError::Auth(e) | ClientError::NotFound(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::UnexpectedBody { status, .. } => Some(*status),
            ClientError::Transport(e) => e.status().map(|s| s.as_u16()),
            other => other.api_error().map(|e| e.status),
        }
    }

    /// Atlas's `errorCode` (or OAuth's `error`), if the server sent one.
    pub fn error_code(&self) -> Option<&str> {
        self.api_error()
            .map(|e| e.error_code.as_str())
            .filter(|c| !c.is_empty())
    }
}

/// Atlas's `ApiError` body; every member optional so that partial bodies still read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AtlasBody {
    detail: Option<String>,
    error_code: Option<String>,
    parameters: Option<Vec<Value>>,
    reason: Option<String>,
}

/// An OAuth 2.0 error body (RFC 6749 §5.2).
#[derive(Deserialize)]
struct OAuthBody {
    error: String,
    error_description: Option<String>,
}

/// Longest piece of an unreadable *error* body quoted in an [`ClientError::UnexpectedBody`].
const SNIPPET_CHARS: usize = 200;

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The error for a non-success response.
pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ClientError {
    let request_id = header_text(headers, "x-request-id");
    let content_type = header_text(headers, "content-type");
    let mut api = ApiError {
        status: status.as_u16(),
        error_code: String::new(),
        detail: None,
        reason: None,
        parameters: Vec::new(),
        request_id,
    };
    let parsed = if let Ok(b) = serde_json::from_slice::<AtlasBody>(body)
        && b.error_code.is_some()
    {
        api.error_code = b.error_code.unwrap_or_default();
        api.detail = b.detail;
        api.reason = b.reason;
        api.parameters = b.parameters.unwrap_or_default();
        true
    } else if let Ok(b) = serde_json::from_slice::<OAuthBody>(body) {
        api.error_code = b.error;
        api.detail = b.error_description;
        true
    } else {
        if let Some(code) = header_text(headers, "x-error-code") {
            api.error_code = code;
        }
        false
    };
    match status.as_u16() {
        401 | 403 => ClientError::Auth(Box::new(api)),
        404 => ClientError::NotFound(Box::new(api)),
        _ if parsed => ClientError::Atlas(Box::new(api)),
        code => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.chars().take(SNIPPET_CHARS).collect();
            ClientError::UnexpectedBody {
                status: code,
                content_type,
                problem: if snippet.trim().is_empty() {
                    "an error without a body".to_owned()
                } else {
                    format!("an error body that is not Atlas's format: {snippet}")
                },
            }
        }
    }
}

/// The error for a successful response whose body does not parse. Only serde's category and
/// position are kept (a message such as `invalid type: string "…"` would quote the body).
pub(crate) fn unreadable_success(
    status: StatusCode,
    headers: &HeaderMap,
    e: &serde_json::Error,
) -> ClientError {
    let text = e.to_string();
    let problem = if text.starts_with("missing field") || text.starts_with("unknown field") {
        text
    } else {
        format!(
            "the body does not match the expected shape ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    };
    ClientError::UnexpectedBody {
        status: status.as_u16(),
        content_type: header_text(headers, "content-type"),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, body: &str) -> ClientError {
        from_response(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn atlas_bodies_are_parsed_and_classified() {
        let e = error(
            404,
            r#"{"detail":"No group with ID 111111111111111111111111 exists.","error":404,"errorCode":"GROUP_NOT_FOUND","parameters":["111111111111111111111111"],"reason":"Not Found"}"#,
        );
        assert_eq!(e.class(), ErrorClass::NotFound);
        assert_eq!(e.error_code(), Some("GROUP_NOT_FOUND"));
        assert_eq!(
            e.api_error().unwrap().parameters,
            vec![Value::from("111111111111111111111111")]
        );
        let e = error(
            400,
            r#"{"detail":"x","error":400,"errorCode":"INVALID_ATTRIBUTE","parameters":["name"],"reason":"Bad Request"}"#,
        );
        assert_eq!(e.class(), ErrorClass::Usage);
        let e = error(
            429,
            r#"{"error":429,"errorCode":"RATE_LIMITED","parameters":null}"#,
        );
        assert_eq!(e.class(), ErrorClass::Server);
        assert!(e.api_error().unwrap().parameters.is_empty());
        let e = error(
            401,
            "{\n  \"error\" : 401,\n  \"reason\" : \"Unauthorized\",\n  \"detail\" : \"You are not authorized for this resource.\",\n  \"errorCode\" : \"UNEXPECTED_ERROR\"\n}",
        );
        assert_eq!(e.class(), ErrorClass::Auth);
        assert_eq!(e.status(), Some(401));
    }

    #[test]
    fn oauth_and_foreign_bodies() {
        let e = error(
            401,
            r#"{"error_description":"Invalid credentials provided.","error":"invalid_client"}"#,
        );
        assert_eq!(e.class(), ErrorClass::Auth);
        assert_eq!(e.error_code(), Some("invalid_client"));
        let e = error(502, "<html>Bad Gateway</html>");
        assert_eq!(e.class(), ErrorClass::Server);
        assert!(e.to_string().contains("Bad Gateway"));
        assert_eq!(error(403, "").class(), ErrorClass::Auth);
        assert_eq!(error(404, "").class(), ErrorClass::NotFound);
    }

    #[test]
    fn unreadable_success_bodies_are_not_quoted() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code, reason = "only parsed")]
        struct Key {
            private_key: u32,
        }
        let e = serde_json::from_str::<Key>(r#"{"private_key":"s3cr3t-value"}"#).unwrap_err();
        let err = unreadable_success(StatusCode::OK, &HeaderMap::new(), &e);
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert_eq!(err.class(), ErrorClass::Server);
    }
}
