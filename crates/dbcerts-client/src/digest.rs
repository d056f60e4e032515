//! HTTP Digest (RFC 7616) for API keys, computed by the `digest_auth` crate.
//!
//! Challenges are kept and reused for later requests with an increasing nonce count (`nc`), as
//! Python `requests` does, so that a run of calls costs one challenge round trip instead of one
//! per call. Servers refuse a count that is not higher than one already seen for the nonce, so
//! two requests in flight must not share a nonce (they could arrive out of order): each request
//! checks a challenge out of a small pool and returns it when its answer is in, which makes
//! `requests`' one-nonce-per-thread rule work for concurrent async calls. The caller
//! re-authenticates once when the server answers `stale=true` or refuses a cached nonce.
//!
//! This module owns the private key while it is in use; it never logs a header it builds.

use std::sync::Mutex;

use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

use crate::credentials::Secret;
use crate::error::ClientError;

/// Idle challenges kept for reuse: enough for the concurrency a CLI or service uses.
const MAX_IDLE: usize = 32;

/// An API key and the challenges it can answer.
pub(crate) struct DigestAuth {
    public: String,
    private: Secret,
    /// Challenges not in use by a request, most recently returned last; `digest_auth` counts
    /// `nc` inside each.
    idle: Mutex<Vec<WwwAuthenticateHeader>>,
}

/// A challenge read from a 401, or checked out of the pool for one request.
pub(crate) struct Challenge {
    header: WwwAuthenticateHeader,
}

impl Challenge {
    /// Whether the server said the nonce had gone stale (the credentials were right).
    pub fn stale(&self) -> bool {
        self.header.stale
    }
}

impl DigestAuth {
    pub fn new(public: String, private: Secret) -> DigestAuth {
        DigestAuth {
            public,
            private,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<WwwAuthenticateHeader>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A challenge for one request's exclusive use (the most recently used one, which is the
    /// least likely to have gone stale), or `None` when every known one is in use.
    pub fn checkout(&self) -> Option<Challenge> {
        self.idle().pop().map(|header| Challenge { header })
    }

    /// Returns a challenge after its request's answer has arrived.
    pub fn checkin(&self, challenge: Challenge) {
        let mut idle = self.idle();
        idle.push(challenge.header);
        if idle.len() > MAX_IDLE {
            idle.remove(0);
        }
    }

    /// The `Authorization` header answering `challenge` for `method` on `uri` (path and
    /// query, exactly as sent); the challenge's nonce count goes up by one.
    pub fn answer(
        &self,
        challenge: &mut Challenge,
        method: &str,
        uri: &str,
    ) -> Result<String, ClientError> {
        let context = AuthContext::new_with_method(
            self.public.as_str(),
            self.private.expose(),
            uri,
            Option::<&[u8]>::None,
            HttpMethod::from(method),
        );
        let answer = challenge.header.respond(&context).map_err(|e| {
            ClientError::InvalidInput(format!("cannot answer the Digest challenge: {e}"))
        })?;
        Ok(answer.to_header_string())
    }
}

/// The Digest challenge of a 401 response, if it carries one this client can answer.
pub(crate) fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    answerable_challenge(headers).map(|header| Challenge { header })
}

/// The first Digest challenge among `headers`' `WWW-Authenticate` values, if it can be answered
/// with `qop=auth` (or without qop, RFC 2069), restricted to `qop=auth`. Shared with the
/// benchmark load generator, so both Digest clients read challenges alike.
pub fn answerable_challenge(headers: &HeaderMap) -> Option<WwwAuthenticateHeader> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| {
            v.trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
        })
        .find_map(|v| digest_auth::parse(v).ok())
        .filter(|h| {
            // Only `auth` is implemented here (no body hashing for `auth-int`); a challenge
            // without qop is RFC 2069 and also works.
            h.qop
                .as_ref()
                .is_none_or(|q| q.contains(&digest_auth::Qop::AUTH))
        })
        .map(|mut header| {
            // digest_auth prefers auth-int when offered; restrict it to what is implemented.
            if header.qop.is_some() {
                header.qop = Some(vec![digest_auth::Qop::AUTH]);
            }
            header
        })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const ATLAS_CHALLENGE: &str = "Digest realm=\"MMS Public API\", domain=\"\", nonce=\"+4YICU5YLx6mQEzmVhx1G5ySQVrufjv6\", algorithm=MD5, qop=\"auth\", stale=false";

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
        h
    }

    fn param<'a>(header: &'a str, name: &str) -> &'a str {
        let start = header.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = &header[start..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ',']).unwrap_or(rest.len());
        &rest[..end]
    }

    #[test]
    fn answers_atlas_challenges_with_increasing_counts() {
        let auth = DigestAuth::new("abcdefgh".into(), Secret::new("private"));
        assert!(auth.checkout().is_none());
        let mut c = challenge_of(&headers(ATLAS_CHALLENGE)).unwrap();
        assert!(!c.stale());
        let first = auth
            .answer(&mut c, "GET", "/api/atlas/v2/groups?a=1")
            .unwrap();
        auth.checkin(c);
        let mut c = auth.checkout().unwrap();
        let second = auth.answer(&mut c, "POST", "/api/atlas/v2/groups").unwrap();
        assert_eq!(param(&first, "nc"), "00000001");
        assert_eq!(param(&second, "nc"), "00000002");
        assert_eq!(param(&first, "uri"), "/api/atlas/v2/groups?a=1");
        assert_eq!(param(&first, "username"), "abcdefgh");
        assert_eq!(param(&first, "qop"), "auth");
        assert!(!first.contains("private"));
        // A new challenge starts its own count.
        let mut fresh = challenge_of(&headers(&ATLAS_CHALLENGE.replace("false", "true"))).unwrap();
        assert!(fresh.stale());
        assert_eq!(
            param(&auth.answer(&mut fresh, "GET", "/").unwrap(), "nc"),
            "00000001"
        );
    }

    #[test]
    fn requests_in_flight_never_share_a_nonce() {
        let auth = DigestAuth::new("u".into(), Secret::new("p"));
        auth.checkin(challenge_of(&headers(ATLAS_CHALLENGE)).unwrap());
        let held = auth.checkout().unwrap();
        assert!(auth.checkout().is_none(), "the only challenge is in use");
        auth.checkin(held);
        for _ in 0..MAX_IDLE + 5 {
            auth.checkin(challenge_of(&headers(ATLAS_CHALLENGE)).unwrap());
        }
        assert_eq!(auth.idle().len(), MAX_IDLE);
    }

    #[test]
    fn the_response_matches_rfc_2617() {
        // RFC 2617 §3.5, with the RFC's client nonce.
        let mut prompt = digest_auth::parse(
            r#"Digest realm="testrealm@host.com", qop="auth", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        let mut ctx = AuthContext::new("Mufasa", "Circle Of Life", "/dir/index.html");
        ctx.set_custom_cnonce("0a4f113b");
        let answer = prompt.respond(&ctx).unwrap();
        assert_eq!(answer.response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn ignores_other_schemes_and_auth_int_only_challenges() {
        assert!(challenge_of(&headers("Bearer realm=\"x\"")).is_none());
        assert!(challenge_of(&HeaderMap::new()).is_none());
        assert!(
            challenge_of(&headers(
                "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""
            ))
            .is_none()
        );
        let mut both = challenge_of(&headers(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth,auth-int\"",
        ))
        .unwrap();
        let auth = DigestAuth::new("u".into(), Secret::new("p"));
        let h = auth.answer(&mut both, "GET", "/").unwrap();
        assert_eq!(param(&h, "qop"), "auth");
    }
}
