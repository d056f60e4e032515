//! HTTP Digest authentication (RFC 7616) as Atlas speaks it: realm `MMS Public API`,
//! `qop="auth"`, MD5 advertised; MD5, SHA-256 and their `-sess` forms accepted.
//!
//! Nonces are stateless: `base64(issued_at (u32 seconds) || 6 random bytes || HMAC-SHA256(key,
//! issued_at || random)[..14])`, 32 characters like Atlas's. Every challenge gets a distinct
//! nonce; any node holding the shared key can check it; one older than its lifetime is
//! answered with `stale=true` and a fresh one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const REALM: &str = "MMS Public API";
/// Room for the `uri` parameter of the longest legal request: a path holding a 1,024-character
/// username of 4-byte UTF-8 characters, each byte percent-encoded (12 KiB), and the rest.
const MAX_HEADER_LEN: usize = 16 * 1024;
const MAX_PARAMS: usize = 16;
/// Nonce layout: 4 bytes of issue time and 6 random bytes, then a 14-byte MAC over both.
const HEAD_LEN: usize = 10;
const MAC_LEN: usize = 14;
const NONCE_LEN: usize = HEAD_LEN + MAC_LEN;

/// The Digest `algorithm` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                hex::encode(Sha256::digest(data.as_bytes()))
            }
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
}

/// The fields of an `Authorization: Digest ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: String,
    pub nc: String,
}

/// Why a Digest header was refused. Every variant ends in a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    NotDigest,
    Malformed(&'static str),
    Missing(&'static str),
    Duplicate,
    WrongRealm,
    UnsupportedAlgorithm,
    QopNotAuth,
}

/// Parses an `Authorization` header value of scheme Digest.
pub fn parse(header: &str) -> Result<Credentials, DigestError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(DigestError::Malformed("header too long"));
    }
    let (scheme, rest) = header
        .trim_start()
        .split_once(' ')
        .ok_or(DigestError::NotDigest)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(DigestError::NotDigest);
    }
    let params = parse_params(rest)?;
    let take = |name: &'static str| -> Result<String, DigestError> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or(DigestError::Missing(name))
    };
    let optional = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let realm = take("realm")?;
    if realm != REALM {
        return Err(DigestError::WrongRealm);
    }
    let algorithm = match optional("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::parse(&a).ok_or(DigestError::UnsupportedAlgorithm)?,
    };
    if optional("qop").as_deref() != Some("auth") {
        return Err(DigestError::QopNotAuth);
    }
    let nc = take("nc")?;
    if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DigestError::Malformed("nc"));
    }
    let cnonce = take("cnonce")?;
    if cnonce.is_empty() {
        return Err(DigestError::Malformed("cnonce"));
    }
    Ok(Credentials {
        username: take("username")?,
        realm,
        nonce: take("nonce")?,
        uri: take("uri")?,
        response: take("response")?.to_ascii_lowercase(),
        algorithm,
        cnonce,
        nc,
    })
}

/// Splits `k=v, k="quoted \"v\"", ...` into lower-cased names and unescaped values.
fn parse_params(input: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_ascii_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                name.push(c.to_ascii_lowercase());
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(DigestError::Malformed("parameter name"));
        }
        while matches!(chars.peek(), Some(c) if c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(DigestError::Malformed("expected '='"));
        }
        while matches!(chars.peek(), Some(c) if c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(DigestError::Malformed("unterminated quoted string")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(DigestError::Malformed("dangling escape")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                if c == '"' {
                    return Err(DigestError::Malformed("quote inside token"));
                }
                value.push(c);
                chars.next();
            }
        }
        if out.iter().any(|(k, _)| *k == name) {
            return Err(DigestError::Duplicate);
        }
        out.push((name, value));
        if out.len() > MAX_PARAMS {
            return Err(DigestError::Malformed("too many parameters"));
        }
        while matches!(chars.peek(), Some(c) if c.is_ascii_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return Err(DigestError::Malformed("expected ','")),
        }
    }
    Ok(out)
}

/// The response a client holding `password` computes for `method` and the credentials' fields.
pub fn expected_response(creds: &Credentials, method: &str, password: &str) -> String {
    let alg = creds.algorithm;
    let mut ha1 = alg.hash(&format!("{}:{}:{}", creds.username, creds.realm, password));
    if alg.is_sess() {
        ha1 = alg.hash(&format!("{ha1}:{}:{}", creds.nonce, creds.cnonce));
    }
    let ha2 = alg.hash(&format!("{method}:{}", creds.uri));
    alg.hash(&format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        creds.nonce, creds.nc, creds.cnonce
    ))
}

/// Compares two response strings in constant time.
pub fn responses_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Issues and checks stateless nonces.
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
    lifetime_secs: i64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey([secret elided])")
    }
}

/// The outcome of checking a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    Stale,
    Invalid,
}

impl NonceKey {
    pub fn new(key: [u8; 32], lifetime_secs: i64) -> NonceKey {
        NonceKey { key, lifetime_secs }
    }

    fn mac(&self, head: &[u8]) -> [u8; MAC_LEN] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"dbcerts-digest-nonce-v2");
        mac.update(head);
        let full = mac.finalize().into_bytes();
        full[..MAC_LEN]
            .try_into()
            .expect("SHA-256 output is 32 bytes")
    }

    pub fn issue(&self, now: i64) -> String {
        let mut raw = [0u8; NONCE_LEN];
        raw[..4].copy_from_slice(&(now as u32).to_be_bytes());
        dbcerts_ca::fill_random(&mut raw[4..HEAD_LEN]);
        let mac = self.mac(&raw[..HEAD_LEN]);
        raw[HEAD_LEN..].copy_from_slice(&mac);
        STANDARD.encode(raw)
    }

    pub fn check(&self, nonce: &str, now: i64) -> NonceCheck {
        self.check_issued(nonce, now).0
    }

    /// Like [`NonceKey::check`], also returning when the nonce was issued.
    pub fn check_issued(&self, nonce: &str, now: i64) -> (NonceCheck, i64) {
        let Ok(raw) = STANDARD.decode(nonce) else {
            return (NonceCheck::Invalid, 0);
        };
        if raw.len() != NONCE_LEN {
            return (NonceCheck::Invalid, 0);
        }
        let issued = i64::from(u32::from_be_bytes(raw[..4].try_into().expect("4 bytes")));
        if !bool::from(self.mac(&raw[..HEAD_LEN]).ct_eq(&raw[HEAD_LEN..])) || issued > now + 5 {
            return (NonceCheck::Invalid, issued);
        }
        if now - issued > self.lifetime_secs {
            return (NonceCheck::Stale, issued);
        }
        (NonceCheck::Valid, issued)
    }

    /// A key for another purpose, derived from this one (HMAC-SHA-256 over `label`), so that
    /// every node sharing the store derives the same key without storing another secret.
    pub fn derive(&self, label: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(label);
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }
}

/// Replay protection: the highest `nc` seen for each live nonce. A request whose `nc` is not
/// higher than one already accepted with the same nonce is a replay. The record lives in this
/// process, so it protects a single node; entries are dropped when their nonce expires.
pub struct NonceCounts {
    seen: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
    lifetime_secs: i64,
}

/// Entries kept before expired ones are pruned, and the most kept at all.
const PRUNE_AT: usize = 50_000;
const MAX_TRACKED: usize = 200_000;

impl NonceCounts {
    pub fn new(lifetime_secs: i64) -> NonceCounts {
        NonceCounts {
            seen: Default::default(),
            lifetime_secs,
        }
    }

    /// Records `nc` for `nonce` (issued at `issued`). Returns false for a replay, or when too
    /// many nonces are live to track another (the client then gets a fresh nonce).
    pub fn advance(&self, nonce: &str, issued: i64, nc: u32, now: i64) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= PRUNE_AT {
            let lifetime = self.lifetime_secs;
            seen.retain(|_, (at, _)| now - *at <= lifetime);
        }
        let full = seen.len() >= MAX_TRACKED;
        match seen.get_mut(nonce) {
            Some((_, highest)) if nc <= *highest => false,
            Some((_, highest)) => {
                *highest = nc;
                true
            }
            None if full => false,
            None => {
                seen.insert(nonce.to_owned(), (issued, nc));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURL_LIKE: &str = r#"Digest username="abcdefgh", realm="MMS Public API", nonce="NONCE", uri="/api/atlas/v2/groups?pretty=true", cnonce="ZmY0", nc=00000001, qop=auth, response="RESP", algorithm=MD5"#;

    #[test]
    fn parses_curl_style_headers() {
        let c = parse(CURL_LIKE).unwrap();
        assert_eq!(c.username, "abcdefgh");
        assert_eq!(c.uri, "/api/atlas/v2/groups?pretty=true");
        assert_eq!(c.nc, "00000001");
        assert_eq!(c.algorithm, Algorithm::Md5);
    }

    #[test]
    fn rfc7616_md5_example_matches() {
        // RFC 2617 section 3.5 example (MD5, qop=auth).
        let c = Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: String::new(),
            algorithm: Algorithm::Md5,
            cnonce: "0a4f113b".into(),
            nc: "00000001".into(),
        };
        assert_eq!(
            expected_response(&c, "GET", "Circle Of Life"),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        let cases = [
            ("Basic abc", DigestError::NotDigest),
            ("Digest", DigestError::NotDigest),
            (
                r#"Digest username="a", username="b""#,
                DigestError::Duplicate,
            ),
            (
                r#"Digest username="a"#,
                DigestError::Malformed("unterminated quoted string"),
            ),
            (
                r#"Digest realm="other", username="a""#,
                DigestError::WrongRealm,
            ),
            (
                r#"Digest realm="MMS Public API", algorithm=SHA-512"#,
                DigestError::UnsupportedAlgorithm,
            ),
            (
                r#"Digest realm="MMS Public API", username="a""#,
                DigestError::QopNotAuth,
            ),
            (
                r#"Digest realm="MMS Public API", qop=auth, username="a""#,
                DigestError::Missing("nc"),
            ),
            (r#"Digest =x"#, DigestError::Malformed("parameter name")),
        ];
        for (h, want) in cases {
            assert_eq!(parse(h).unwrap_err(), want, "{h}");
        }
        assert!(parse(&format!("Digest username=\"{}\"", "a".repeat(5000))).is_err());
    }

    #[test]
    fn nonce_counts_refuse_replays_and_forget_expired_nonces() {
        let counts = NonceCounts::new(300);
        assert!(counts.advance("n1", 1000, 1, 1000));
        assert!(
            !counts.advance("n1", 1000, 1, 1001),
            "same nc again is a replay"
        );
        assert!(counts.advance("n1", 1000, 2, 1002));
        assert!(
            !counts.advance("n1", 1000, 1, 1003),
            "a lower nc is a replay"
        );
        assert!(
            counts.advance("n2", 1000, 1, 1003),
            "nonces are independent"
        );
        for i in 0..PRUNE_AT {
            assert!(counts.advance(&format!("old{i}"), 0, 1, 10));
        }
        assert!(
            counts.advance("fresh", 5000, 1, 5000),
            "expired entries are pruned"
        );
        assert!(counts.seen.lock().unwrap().len() < PRUNE_AT);
    }

    #[test]
    fn nonces_round_trip_expire_and_resist_forgery() {
        let k = NonceKey::new([7; 32], 300);
        let n = k.issue(1_000_000);
        assert_eq!(n.len(), 32);
        assert_eq!(k.check(&n, 1_000_100), NonceCheck::Valid);
        assert_eq!(k.check(&n, 1_000_301), NonceCheck::Stale);
        assert_eq!(
            NonceKey::new([8; 32], 300).check(&n, 1_000_100),
            NonceCheck::Invalid
        );
        assert_eq!(k.check("garbage", 1_000_000), NonceCheck::Invalid);
        assert_eq!(k.check(&k.issue(2_000_000), 1_000_000), NonceCheck::Invalid);
        assert_ne!(
            k.issue(1_000_000),
            k.issue(1_000_000),
            "every challenge gets its own nonce"
        );
    }
}
