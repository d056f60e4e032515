//! HTTP Digest authentication (RFC 7616) as Atlas speaks it: realm `MMS Public API`,
//! `qop="auth"`, MD5 advertised; MD5, SHA-256 and their `-sess` forms accepted.
//!
//! Nonces are stateless: `base64(issued_at (u32 seconds) || origin (6 bytes) || HMAC-SHA256(key,
//! issued_at || origin)[..14])`, 32 characters like Atlas's. The origin names the process that
//! issued the nonce (a random 24-bit tag drawn at startup), the millisecond within the second,
//! and a per-process sequence number, so every challenge gets a distinct nonce. Any node
//! holding the shared key can check a nonce; one older than its lifetime is answered with
//! `stale=true` and a fresh one.
//!
//! Replays. Each process remembers the highest `nc` it accepted per live nonce
//! ([`NonceCounts`]), in memory. So that a restarted process, which has forgotten them, cannot
//! be replayed a request its previous run accepted, a process accepts a nonce issued by another
//! process only if it was issued after this process started ([`NonceKey::check_issued`]):
//! earlier nonces (its previous run's among them) are answered `stale=true`, which clients
//! answer with the fresh nonce in the same 401. Nonces of other live nodes, issued after this
//! one started, stay valid here.

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
/// Nonce layout: 4 bytes of issue time and 6 bytes of origin, then a 14-byte MAC over both.
/// (The layout and MAC of the releases whose 6 bytes were random: nodes of either release
/// verify each other's nonces during a rolling upgrade.)
const HEAD_LEN: usize = 10;
const MAC_LEN: usize = 14;
const NONCE_LEN: usize = HEAD_LEN + MAC_LEN;
/// The origin's 48 bits: the issuing process's tag, the millisecond within the second, and a
/// sequence number that makes nonces issued in the same millisecond distinct.
const PROCESS_BITS: u32 = 24;
const MILLI_BITS: u32 = 10;
const SEQ_BITS: u32 = 14;
/// How far ahead of this node's clock a nonce's issue time may be (clock skew between nodes).
const FUTURE_SKEW_SECS: i64 = 5;

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

/// Issues and checks stateless nonces, on behalf of one process. Clones share the process.
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
    lifetime_secs: i64,
    process: std::sync::Arc<Process>,
}

/// What a nonce says about the process that issued it.
struct Process {
    /// A random tag, drawn when the process starts.
    tag: u32,
    /// When the process started (Unix milliseconds, this node's clock).
    started_ms: i64,
    /// The sequence number of the next nonce (only its low [`SEQ_BITS`] bits are used).
    seq: std::sync::atomic::AtomicU32,
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
    /// Issued by this server, but past its lifetime, or issued by another process before this
    /// one started: the client is to retry with a fresh nonce.
    Stale,
    Invalid,
}

impl NonceKey {
    /// The key of a process starting now.
    pub fn new(key: [u8; 32], lifetime_secs: i64) -> NonceKey {
        NonceKey::started_at(key, lifetime_secs, chrono::Utc::now().timestamp_millis())
    }

    /// The key of a process that started at `started_ms` (Unix milliseconds).
    pub fn started_at(key: [u8; 32], lifetime_secs: i64, started_ms: i64) -> NonceKey {
        let mut random = [0u8; 8];
        dbcerts_ca::fill_random(&mut random);
        let tag =
            u32::from_be_bytes(random[..4].try_into().expect("4 bytes")) >> (32 - PROCESS_BITS);
        let seq = u32::from_be_bytes(random[4..].try_into().expect("4 bytes"));
        NonceKey {
            key,
            lifetime_secs,
            process: std::sync::Arc::new(Process {
                tag,
                started_ms,
                seq: seq.into(),
            }),
        }
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

    /// A fresh nonce, issued in second `now` (Unix seconds): at the clock's millisecond when
    /// `now` is the current second, else at the first millisecond of `now`. (So a nonce never
    /// claims to be younger than it is, which [`NonceKey::check_issued`] relies on.)
    pub fn issue(&self, now: i64) -> String {
        let clock_ms = chrono::Utc::now().timestamp_millis();
        self.issue_ms(if clock_ms.div_euclid(1000) == now {
            clock_ms
        } else {
            now * 1000
        })
    }

    /// A fresh nonce, issued at `now_ms` (Unix milliseconds).
    pub fn issue_ms(&self, now_ms: i64) -> String {
        let seq = self
            .process
            .seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let origin = (u64::from(self.process.tag) << (MILLI_BITS + SEQ_BITS))
            | ((now_ms.rem_euclid(1000) as u64) << SEQ_BITS)
            | u64::from(seq & ((1 << SEQ_BITS) - 1));
        let mut raw = [0u8; NONCE_LEN];
        raw[..4].copy_from_slice(&(now_ms.div_euclid(1000) as u32).to_be_bytes());
        raw[4..HEAD_LEN].copy_from_slice(&origin.to_be_bytes()[2..]);
        let mac = self.mac(&raw[..HEAD_LEN]);
        raw[HEAD_LEN..].copy_from_slice(&mac);
        STANDARD.encode(raw)
    }

    pub fn check(&self, nonce: &str, now: i64) -> NonceCheck {
        self.check_issued(nonce, now).0
    }

    /// Like [`NonceKey::check`] (`now` in Unix seconds), also returning when the nonce was
    /// issued (Unix seconds).
    ///
    /// A nonce issued by another process at or before the millisecond this one started is
    /// `Stale`: it may be this node's own from before a restart, whose accepted `nc` values
    /// this process does not know. This process's own nonces are recognised by their tag.
    pub fn check_issued(&self, nonce: &str, now: i64) -> (NonceCheck, i64) {
        let Ok(raw) = STANDARD.decode(nonce) else {
            return (NonceCheck::Invalid, 0);
        };
        if raw.len() != NONCE_LEN {
            return (NonceCheck::Invalid, 0);
        }
        let issued = i64::from(u32::from_be_bytes(raw[..4].try_into().expect("4 bytes")));
        if !bool::from(self.mac(&raw[..HEAD_LEN]).ct_eq(&raw[HEAD_LEN..]))
            || issued > now + FUTURE_SKEW_SECS
        {
            return (NonceCheck::Invalid, issued);
        }
        if now - issued > self.lifetime_secs {
            return (NonceCheck::Stale, issued);
        }
        let mut origin = [0u8; 8];
        origin[2..].copy_from_slice(&raw[4..HEAD_LEN]);
        let origin = u64::from_be_bytes(origin);
        let tag = (origin >> (MILLI_BITS + SEQ_BITS)) as u32;
        // Nonces of releases before the origin field carry random bits here: up to 1023.
        let millis = ((origin >> SEQ_BITS) & ((1 << MILLI_BITS) - 1)).min(999) as i64;
        if tag != self.process.tag && issued * 1000 + millis <= self.process.started_ms {
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

/// Where the nonce counts that refuse replays are kept (`digest-replay-check`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplayCheck {
    /// In each node's memory: a node refuses what it accepted itself (and, by the start-time
    /// rule of [`NonceKey::check_issued`], what its previous run accepted). A request captured
    /// on its way to one node can be replayed once to another within the nonce's lifetime.
    #[default]
    Node,
    /// Also in the store, shared by every node: one write per Digest request (in the node's
    /// group commit), and no node accepts a count another node accepted.
    Store,
}

/// Replay protection: the highest `nc` seen for each live nonce. A request whose `nc` is not
/// higher than one already accepted with the same nonce is a replay. The record lives in this
/// process, so it protects a single node; entries are dropped when their nonce expires. A
/// restart loses nothing: the new process finds every nonce issued before it started stale.
/// With [`ReplayCheck::Store`], a count this process accepts is also recorded in the store,
/// and refused there when another node accepted it (or a higher one) first.
pub struct NonceCounts {
    seen: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
    lifetime_secs: i64,
    shared: Option<crate::journal::Journal>,
}

/// Entries kept before expired ones are pruned, and the most kept at all.
const PRUNE_AT: usize = 50_000;
const MAX_TRACKED: usize = 200_000;

impl NonceCounts {
    /// Counts kept in this process only ([`ReplayCheck::Node`]).
    pub fn new(lifetime_secs: i64) -> NonceCounts {
        NonceCounts {
            seen: Default::default(),
            lifetime_secs,
            shared: None,
        }
    }

    /// Counts also recorded through `journal`, for every node ([`ReplayCheck::Store`]).
    pub fn shared(lifetime_secs: i64, journal: crate::journal::Journal) -> NonceCounts {
        NonceCounts {
            shared: Some(journal),
            ..NonceCounts::new(lifetime_secs)
        }
    }

    /// Accepts `nc` for `nonce` (issued at `issued`) if no count as high was accepted before:
    /// by this process, and with [`ReplayCheck::Store`] by any node. False for a replay.
    pub async fn accept(
        &self,
        nonce: &str,
        issued: i64,
        nc: u32,
        now: i64,
    ) -> dbcerts_store::StoreResult<bool> {
        if !self.advance(nonce, issued, nc, now) {
            return Ok(false);
        }
        let Some(journal) = &self.shared else {
            return Ok(true);
        };
        // Kept while any node, its clock up to the tolerated skew behind, may take the nonce.
        let expires = issued + self.lifetime_secs + FUTURE_SKEW_SECS;
        journal.advance_nonce_count(nonce, nc, expires, now).await
    }

    /// Records `nc` for `nonce` (issued at `issued`). Returns false for a replay, or when too
    /// many nonces are live to track another (the client then gets a fresh nonce).
    fn advance(&self, nonce: &str, issued: i64, nc: u32, now: i64) -> bool {
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

    /// A nonce with the given issue time and origin bits, MACed under `k`, as a node of any
    /// release would issue it.
    fn nonce_with_origin(k: &NonceKey, secs: u32, origin: u64) -> String {
        let mut raw = [0u8; NONCE_LEN];
        raw[..4].copy_from_slice(&secs.to_be_bytes());
        raw[4..HEAD_LEN].copy_from_slice(&origin.to_be_bytes()[2..]);
        let mac = k.mac(&raw[..HEAD_LEN]);
        raw[HEAD_LEN..].copy_from_slice(&mac);
        STANDARD.encode(raw)
    }

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn a_restarted_process_finds_every_earlier_nonce_stale() {
        let key = [9; 32];
        let before = NonceKey::started_at(key, 300, T0);
        let early = before.issue_ms(T0 + 10_000);
        let last = before.issue_ms(T0 + 19_999);
        let same_ms = before.issue_ms(T0 + 20_000);
        let after = NonceKey::started_at(key, 300, T0 + 20_000);
        let now = (T0 + 21_000) / 1000;
        for n in [&early, &last, &same_ms] {
            assert_eq!(
                before.check(n, now),
                NonceCheck::Valid,
                "its issuer still takes it"
            );
            assert_eq!(after.check(n, now), NonceCheck::Stale, "{n}");
        }
        // Its own nonces are good from its first millisecond on.
        assert_eq!(
            after.check(&after.issue_ms(T0 + 20_000), now),
            NonceCheck::Valid
        );
        assert_eq!(
            after.check(&after.issue_ms(T0 + 20_001), now),
            NonceCheck::Valid
        );
        // A forgery is still no nonce at all, whenever it claims to be from.
        let forged = NonceKey::started_at([1; 32], 300, T0).issue_ms(T0 + 30_000);
        assert_eq!(after.check(&forged, now + 10), NonceCheck::Invalid);
    }

    #[test]
    fn nonces_of_other_live_nodes_are_valid_from_after_this_node_started() {
        let key = [9; 32];
        let a = NonceKey::started_at(key, 300, T0);
        let b = NonceKey::started_at(key, 300, T0 + 5_000);
        let now = (T0 + 6_000) / 1000;
        assert_eq!(b.check(&a.issue_ms(T0 + 5_001), now), NonceCheck::Valid);
        assert_eq!(a.check(&b.issue_ms(T0 + 5_001), now), NonceCheck::Valid);
        assert_eq!(a.check(&b.issue_ms(T0 + 5_000), now), NonceCheck::Valid);
        // Issued by A before B started: B cannot tell it from its own previous run's.
        assert_eq!(b.check(&a.issue_ms(T0 + 5_000), now), NonceCheck::Stale);
        assert_eq!(b.check(&a.issue_ms(T0 + 4_999), now), NonceCheck::Stale);
        // Expiry still applies to everyone's nonces.
        let later = (T0 + 5_001) / 1000 + 301;
        assert_eq!(b.check(&a.issue_ms(T0 + 5_001), later), NonceCheck::Stale);
        assert_eq!(a.check(&a.issue_ms(T0 + 5_001), later), NonceCheck::Stale);
    }

    #[test]
    fn nonces_of_the_release_with_random_origin_bytes_still_verify() {
        let key = [9; 32];
        let k = NonceKey::started_at(key, 300, T0);
        let other_tag = u64::from(k.process.tag ^ 1);
        // Random bytes may spell a millisecond above 999; they count as 999.
        let origin = (other_tag << (MILLI_BITS + SEQ_BITS)) | (1023 << SEQ_BITS) | 77;
        // (Read as 1023, the second before T0 would end after T0.)
        let secs = (T0 / 1000) as u32 - 1;
        let now = T0 / 1000 + 1;
        assert_eq!(
            k.check(&nonce_with_origin(&k, secs, origin), now),
            NonceCheck::Stale
        );
        assert_eq!(
            k.check(&nonce_with_origin(&k, secs + 1, origin), now),
            NonceCheck::Valid
        );
    }

    #[test]
    fn nonces_issued_in_one_millisecond_are_distinct_and_say_when() {
        let k = NonceKey::started_at([9; 32], 300, T0);
        let all: std::collections::HashSet<String> =
            (0..1 << SEQ_BITS).map(|_| k.issue_ms(T0 + 123)).collect();
        assert_eq!(all.len(), 1 << SEQ_BITS);
        let raw = STANDARD.decode(all.iter().next().unwrap()).unwrap();
        assert_eq!(
            i64::from(u32::from_be_bytes(raw[..4].try_into().unwrap())),
            T0 / 1000
        );
        let mut origin = [0u8; 8];
        origin[2..].copy_from_slice(&raw[4..HEAD_LEN]);
        let origin = u64::from_be_bytes(origin);
        assert_eq!((origin >> SEQ_BITS) & 1023, 123);
        assert_eq!(origin >> (MILLI_BITS + SEQ_BITS), u64::from(k.process.tag));
    }

    #[test]
    fn issue_never_stamps_a_nonce_later_than_the_clock() {
        let k = NonceKey::new([9; 32], 300);
        let before = chrono::Utc::now().timestamp_millis();
        let n = k.issue(before / 1000);
        let after = chrono::Utc::now().timestamp_millis();
        let raw = STANDARD.decode(&n).unwrap();
        let secs = i64::from(u32::from_be_bytes(raw[..4].try_into().unwrap()));
        let mut origin = [0u8; 8];
        origin[2..].copy_from_slice(&raw[4..HEAD_LEN]);
        let millis = ((u64::from_be_bytes(origin) >> SEQ_BITS) & 1023) as i64;
        let stamped = secs * 1000 + millis;
        assert!(
            stamped >= before / 1000 * 1000 && stamped <= after,
            "{before} {stamped} {after}"
        );
        // A second that is already over is stamped at its first millisecond.
        let old = STANDARD.decode(k.issue(before / 1000 - 1)).unwrap();
        let mut origin = [0u8; 8];
        origin[2..].copy_from_slice(&old[4..HEAD_LEN]);
        assert_eq!((u64::from_be_bytes(origin) >> SEQ_BITS) & 1023, 0);
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
