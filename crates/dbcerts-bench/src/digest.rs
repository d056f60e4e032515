//! HTTP Digest answers with nonce reuse, as Python `requests` does.
//!
//! A [`DigestSession`] belongs to one worker: its first request goes out without credentials
//! and gets the server's 401 challenge; every later request answers that same challenge with
//! the nonce count (`nc`) one higher and a fresh client nonce, until the server refuses it (a
//! 401, usually with `stale=true`), when the new challenge replaces the old one. One worker has
//! one request in flight at a time, so its counts reach the server in order.

use anyhow::Context;
use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use hyper::HeaderMap;

/// One worker's credentials and the challenge it is answering.
pub(crate) struct DigestSession {
    username: String,
    password: String,
    /// The current challenge; `digest_auth` counts `nc` inside it.
    challenge: Option<WwwAuthenticateHeader>,
}

impl DigestSession {
    pub fn new(username: &str, password: &str) -> DigestSession {
        DigestSession {
            username: username.to_owned(),
            password: password.to_owned(),
            challenge: None,
        }
    }

    /// Whether a challenge is known (so requests carry credentials).
    pub fn has_challenge(&self) -> bool {
        self.challenge.is_some()
    }

    /// The `Authorization` header for `method` on `uri` (path and query, as sent), answering the
    /// current challenge with the next nonce count; `None` before the first challenge.
    pub fn authorization(&mut self, method: &str, uri: &str) -> anyhow::Result<Option<String>> {
        let Some(challenge) = &mut self.challenge else {
            return Ok(None);
        };
        let context = AuthContext::new_with_method(
            self.username.as_str(),
            self.password.as_str(),
            uri,
            Option::<&[u8]>::None,
            HttpMethod::from(method),
        );
        let answer = challenge
            .respond(&context)
            .context("cannot answer the Digest challenge")?;
        Ok(Some(answer.to_header_string()))
    }

    /// Takes the Digest challenge of a 401 response's headers, replacing the current one (and
    /// so restarting `nc` at 1); `false` when the response carries none this client can answer.
    pub fn accept_challenge(&mut self, headers: &HeaderMap) -> bool {
        match dbcerts_client::answerable_challenge(headers) {
            Some(challenge) => {
                self.challenge = Some(challenge);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use digest_auth::{AuthorizationHeader, Qop};
    use hyper::header::{HeaderValue, WWW_AUTHENTICATE};

    use super::*;

    fn challenge(nonce: &str, stale: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"x\""),
        );
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!(
                "Digest realm=\"dbcerts\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5, \
                 stale={stale}"
            ))
            .unwrap(),
        );
        h
    }

    /// Recomputes the expected `response` of `answer` for `password`.
    fn valid(answer: &AuthorizationHeader, password: &str, method: &str) -> bool {
        let mut prompt = digest_auth::parse(&format!(
            "Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
            answer.realm, answer.nonce
        ))
        .unwrap();
        prompt.nc = answer.nc - 1;
        let mut context = AuthContext::new_with_method(
            answer.username.as_str(),
            password,
            answer.uri.as_str(),
            Option::<&[u8]>::None,
            HttpMethod::from(method),
        );
        context.set_custom_cnonce(answer.cnonce.clone().unwrap());
        prompt.respond(&context).unwrap().response == answer.response
    }

    #[test]
    fn reuses_the_nonce_with_increasing_counts() {
        let mut s = DigestSession::new("pubkey", "secret");
        assert!(!s.has_challenge());
        assert_eq!(s.authorization("GET", "/x").unwrap(), None);
        assert!(s.accept_challenge(&challenge("n1", false)));

        let mut cnonces = Vec::new();
        for expected_nc in 1..=3u32 {
            let header = s
                .authorization("POST", "/api/atlas/v2/groups/g/databaseUsers/u/certs?a=1")
                .unwrap()
                .unwrap();
            assert!(
                header.contains(&format!("nc={expected_nc:08x}")),
                "{header}"
            );
            let answer = AuthorizationHeader::parse(&header).unwrap();
            assert_eq!(answer.nonce, "n1");
            assert_eq!(answer.nc, expected_nc);
            assert_eq!(answer.username, "pubkey");
            assert_eq!(
                answer.uri,
                "/api/atlas/v2/groups/g/databaseUsers/u/certs?a=1"
            );
            assert_eq!(answer.qop, Some(Qop::AUTH));
            assert!(valid(&answer, "secret", "POST"));
            assert!(!valid(&answer, "wrong", "POST"));
            cnonces.push(answer.cnonce.unwrap());
        }
        cnonces.dedup();
        assert_eq!(cnonces.len(), 3, "each request has a fresh cnonce");

        // A stale nonce: the new challenge restarts the count.
        assert!(s.accept_challenge(&challenge("n2", true)));
        let header = s.authorization("GET", "/y").unwrap().unwrap();
        let answer = AuthorizationHeader::parse(&header).unwrap();
        assert_eq!((answer.nonce.as_str(), answer.nc), ("n2", 1));
    }

    #[test]
    fn ignores_responses_without_a_usable_challenge() {
        let mut s = DigestSession::new("u", "p");
        assert!(!s.accept_challenge(&HeaderMap::new()));
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
        );
        assert!(!s.accept_challenge(&h));
        assert!(!s.has_challenge());
    }
}
