//! The request-head budget: how many header fields, and how many bytes of request line and
//! header fields, one request may bring. A request over it gets 431
//! `REQUEST_HEADERS_TOO_LARGE` in Atlas's format with `Connection: close`.
//!
//! hyper enforces limits of its own while it reads a head, and answers a head over them with
//! an empty 431 (and closes the connection, often with the client still sending, so the client
//! may see only a reset). `serve` sets hyper's limits ([`HYPER_MAX_HEADERS`],
//! [`HYPER_MAX_HEAD_BYTES`]) well above this budget, so that every head up to them is read whole
//! and answered here; only a head over hyper's limits still gets hyper's own answer.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AtlasError;

/// Header fields one request may carry (hyper's own default limit before this budget).
pub const MAX_HEADER_FIELDS: usize = 100;
/// Bytes of request line and header fields one request may carry, counted as on the wire.
/// Far above any real client's (the Digest `Authorization` limit is 16 KiB); below hyper's
/// former read buffer (~408 KB), so nothing accepted before is refused now.
pub const MAX_HEAD_BYTES: usize = 256 * 1024;
/// hyper's limit on header fields, over which it answers the empty 431 itself.
pub const HYPER_MAX_HEADERS: usize = 1_000;
/// hyper's read buffer (HTTP/1.1) and header-list size (HTTP/2), over which it answers the
/// empty 431 itself. A connection holds at most this much of an unfinished head, for at most
/// the header timeout.
pub const HYPER_MAX_HEAD_BYTES: usize = 3 * 1024 * 1024;

/// Answers 431 in Atlas's format to a request over the budget; passes the others on.
pub async fn enforce(req: Request, next: Next) -> Response {
    let fields = req.headers().len();
    if fields > MAX_HEADER_FIELDS || head_bytes(&req) > MAX_HEAD_BYTES {
        let mut res =
            AtlasError::headers_too_large(MAX_HEADER_FIELDS, MAX_HEAD_BYTES).into_response();
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    next.run(req).await
}

/// The request's head as HTTP/1.1 would carry it: `METHOD target HTTP/1.1\r\n`, then
/// `name: value\r\n` per field.
fn head_bytes(req: &Request) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    req.headers().iter().fold(line, |n, (name, value)| {
        n + name.as_str().len() + 2 + value.len() + 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[test]
    fn counts_the_head_as_sent() {
        let req = Request::builder()
            .method("GET")
            .uri("/a?b=c")
            .header("host", "x")
            .body(Body::empty())
            .unwrap();
        // "GET /a?b=c HTTP/1.1\r\n" + "host: x\r\n"
        assert_eq!(head_bytes(&req), 21 + 9);
    }
}
