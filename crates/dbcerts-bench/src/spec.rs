//! What to run: the target, the request, the load shape and what a good answer looks like.

use std::fmt;
use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};

/// The kind of server under test; it decides the default [`Expect`]ation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// A dbcerts server (Atlas Admin API X.509 resource).
    Dbcerts,
    /// CloudFlare's cfssl API server (`/api/v1/cfssl/newcert` and friends).
    Cfssl,
    /// nginx serving static files, the floor to compare against.
    NginxStatic,
}

impl Target {
    /// The name used on the command line and in JSON results.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Dbcerts => "dbcerts",
            Target::Cfssl => "cfssl",
            Target::NginxStatic => "nginx-static",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How each request authenticates.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP Digest (RFC 7616, MD5, `qop=auth`), reusing each worker's nonce with an increasing
    /// `nc` as Python `requests` does, so only a worker's first request (and any stale nonce)
    /// costs a challenge round trip.
    Digest { username: String, password: String },
    /// `Authorization: Bearer <token>`, e.g. from [`crate::fetch_bearer_token`].
    Bearer { token: String },
}

impl fmt::Debug for Auth {
    // Never prints a password or token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Digest { username, .. } => f
                .debug_struct("Digest")
                .field("username", username)
                .finish_non_exhaustive(),
            Auth::Bearer { .. } => f.debug_struct("Bearer").finish_non_exhaustive(),
        }
    }
}

/// What a response must look like to count as a success; anything else counts as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The status code.
    pub status: u16,
    /// Byte strings the body must contain, each somewhere.
    pub body_contains: Vec<Vec<u8>>,
    /// The body must be a JSON object whose `success` member is `true` (cfssl's envelope).
    pub json_success: bool,
    /// The body must equal these bytes exactly (e.g. to prove two servers serve identical bytes).
    pub body_equals: Option<Vec<u8>>,
}

impl Expect {
    /// Just a status code.
    pub fn status(status: u16) -> Expect {
        Expect {
            status,
            body_contains: Vec::new(),
            json_success: false,
            body_equals: None,
        }
    }

    /// The default expectation for `method` on `target`:
    /// - dbcerts `POST` (issuing a certificate): 201 with a PEM certificate and a PKCS#8 key;
    /// - dbcerts, any other method: 200;
    /// - cfssl: 200 with a JSON body whose `success` is `true`;
    /// - nginx-static: 200.
    pub fn for_target(target: Target, method: &Method) -> Expect {
        match target {
            Target::Dbcerts if method == Method::POST => Expect {
                body_contains: vec![
                    b"-----BEGIN CERTIFICATE-----".to_vec(),
                    b"-----BEGIN PRIVATE KEY-----".to_vec(),
                ],
                ..Expect::status(201)
            },
            Target::Dbcerts | Target::NginxStatic => Expect::status(200),
            Target::Cfssl => Expect {
                json_success: true,
                ..Expect::status(200)
            },
        }
    }

    /// Checks one response; the error says what was wrong, for [`crate::LoadResult::first_error`].
    pub fn check(&self, status: u16, body: &[u8]) -> Result<(), String> {
        if status != self.status {
            return Err(format!(
                "status {status} (expected {}); body: {}",
                self.status,
                excerpt(body)
            ));
        }
        if let Some(expected) = self.body_equals.as_ref().filter(|e| body != e.as_slice()) {
            return Err(format!(
                "body of {} bytes differs from the expected {} bytes; body: {}",
                body.len(),
                expected.len(),
                excerpt(body)
            ));
        }
        for needle in &self.body_contains {
            if !contains(body, needle) {
                return Err(format!(
                    "body lacks {:?}; body: {}",
                    String::from_utf8_lossy(needle),
                    excerpt(body)
                ));
            }
        }
        if self.json_success && !json_success(body) {
            return Err(format!(
                "body is not JSON with \"success\": true; body: {}",
                excerpt(body)
            ));
        }
        Ok(())
    }
}

/// Whether `haystack` contains `needle` (bodies are a few KiB: a plain scan is fine).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `body` is a JSON object with `"success": true`; other members are skipped unparsed.
fn json_success(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Envelope {
        success: bool,
    }
    serde_json::from_slice::<Envelope>(body).is_ok_and(|e| e.success)
}

/// The start of a body, printable, for error messages.
fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let more = if body.len() > MAX { "…" } else { "" };
    format!("{:?}{more}", text)
}

/// One load run: which server, which request, how many, how hard.
///
/// Build one with [`LoadSpec::new`] and struct update syntax for the fields you change.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The kind of server, for the default expectation and the results.
    pub target: Target,
    /// The full URL, path and query included: `http://` and a loopback host only.
    pub url: String,
    /// The request method.
    pub method: Method,
    /// The request body, sent with every request (`Content-Length` is set from it).
    pub body: Option<Vec<u8>>,
    /// Extra request headers (e.g. `Content-Type`); `Host` defaults to the URL's authority.
    pub headers: Vec<(String, String)>,
    /// Workers, each with one keep-alive connection and one request in flight at a time.
    pub concurrency: usize,
    /// Requests measured (after the warm-up).
    pub requests: u64,
    /// Requests sent first and not measured.
    pub warmup: u64,
    /// How requests authenticate.
    pub auth: Auth,
    /// What a good answer looks like.
    pub expect: Expect,
    /// The server's process, whose resident memory is sampled during the run.
    pub server_pid: Option<u32>,
    /// A name for this run in results and charts.
    pub label: String,
    /// The longest one request may take before it counts as an error (and its connection is
    /// replaced).
    pub timeout: Duration,
}

impl LoadSpec {
    /// A spec with defaults: 1 worker, 1000 requests, no warm-up, no auth, the target's default
    /// expectation, a 30 s request timeout and a label made of target, method and URL path.
    pub fn new(target: Target, method: Method, url: impl Into<String>) -> LoadSpec {
        let url = url.into();
        let path = crate::url::path_of(&url);
        LoadSpec {
            label: format!("{target} {method} {path}"),
            expect: Expect::for_target(target, &method),
            target,
            url,
            method,
            body: None,
            headers: Vec::new(),
            concurrency: 1,
            requests: 1000,
            warmup: 0,
            auth: Auth::None,
            server_pid: None,
            timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_expectations_follow_target_and_method() {
        let post = Expect::for_target(Target::Dbcerts, &Method::POST);
        assert_eq!(post.status, 201);
        let pem = b"x\n-----BEGIN CERTIFICATE-----\n..\n-----BEGIN PRIVATE KEY-----\n..";
        assert_eq!(post.check(201, pem), Ok(()));
        assert!(post.check(201, b"-----BEGIN CERTIFICATE-----").is_err());
        assert!(post.check(200, pem).is_err());

        assert_eq!(
            Expect::for_target(Target::Dbcerts, &Method::GET),
            Expect::status(200)
        );
        assert_eq!(
            Expect::for_target(Target::NginxStatic, &Method::GET),
            Expect::status(200)
        );

        let cfssl = Expect::for_target(Target::Cfssl, &Method::POST);
        let ok = br#"{"success": true, "result": {"certificate": "x", "private_key": "y"}}"#;
        assert_eq!(cfssl.check(200, ok), Ok(()));
        assert!(
            cfssl
                .check(200, br#"{"success":false,"errors":[]}"#)
                .is_err()
        );
        assert!(cfssl.check(200, b"not json").is_err());
    }

    #[test]
    fn exact_body_is_checked() {
        let e = Expect {
            body_equals: Some(b"abc".to_vec()),
            ..Expect::status(200)
        };
        assert_eq!(e.check(200, b"abc"), Ok(()));
        let err = e.check(200, b"abd").unwrap_err();
        assert!(err.contains("differs"), "{err}");
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let d = Auth::Digest {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{d:?}").contains("hunter2"));
        let b = Auth::Bearer {
            token: "tok123".into(),
        };
        assert!(!format!("{b:?}").contains("tok123"));
    }

    #[test]
    fn default_label() {
        let s = LoadSpec::new(
            Target::Cfssl,
            Method::POST,
            "http://127.0.0.1:8888/api/v1/cfssl/newcert",
        );
        assert_eq!(s.label, "cfssl POST /api/v1/cfssl/newcert");
    }
}
