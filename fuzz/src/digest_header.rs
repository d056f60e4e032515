//! Properties of the Digest `Authorization` header parser (`auth::digest::parse`) and of nonce
//! checking (`NonceKey::check`, `NonceKey::check_issued`).
//!
//! Shared by the `digest_header` fuzz target and `crates/dbcerts-server/tests/parser_properties.rs`.

use dbcerts_server::auth::digest::{
    self, Algorithm, Credentials, DigestError, NonceCheck, NonceKey, REALM,
};

/// The parser's length limit (`MAX_HEADER_LEN` in digest.rs, private), found once by bisection:
/// the longest well-formed header that is not refused as too long.
pub fn max_header_len() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let too_long = |len: usize| {
            let head = format!("Digest realm=\"{REALM}\", username=\"");
            let header = format!("{head}{}\"", "u".repeat(len.saturating_sub(head.len() + 1)));
            digest::parse(&header) == Err(DigestError::Malformed("header too long"))
        };
        let (mut ok, mut bad) = (64, 1 << 20);
        assert!(!too_long(ok) && too_long(bad), "no length limit found");
        while bad - ok > 1 {
            let mid = ok + (bad - ok) / 2;
            if too_long(mid) {
                bad = mid;
            } else {
                ok = mid;
            }
        }
        ok
    })
}

/// Nonce lifetime used by the checks (the server's default is 300 s).
const LIFETIME: i64 = 300;

/// Everything this module checks, on one fuzz input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_header(&text);
    check_fields(data);
    check_nonce(data);
}

/// `parse` on arbitrary text: a credential it returns is well formed, and rendering it back
/// into a header (quoted, escaped, in either order) parses to the same credential.
pub fn check_header(header: &str) {
    let parsed = digest::parse(header);
    if header.len() > max_header_len() {
        assert_eq!(parsed, Err(DigestError::Malformed("header too long")));
        return;
    }
    // Leading whitespace before the scheme is ignored.
    if header.len() + 2 <= max_header_len() {
        assert_eq!(digest::parse(&format!(" \t{header}")), parsed);
    }
    if let Ok(creds) = &parsed {
        assert_well_formed(creds);
        for reversed in [false, true] {
            let rendered = render(creds, reversed);
            if rendered.len() <= max_header_len() {
                assert_eq!(
                    digest::parse(&rendered).as_ref(),
                    Ok(creds),
                    "re-rendered header {rendered:?} parses differently"
                );
            }
        }
    }
}

/// What every accepted credential satisfies.
pub fn assert_well_formed(c: &Credentials) {
    assert_eq!(c.realm, REALM);
    assert_eq!(c.nc.len(), 8, "nc {:?}", c.nc);
    assert!(c.nc.bytes().all(|b| b.is_ascii_hexdigit()), "nc {:?}", c.nc);
    assert!(!c.cnonce.is_empty());
    assert_eq!(c.response, c.response.to_ascii_lowercase());
}

/// A header as a client would send it: every value quoted and escaped (`nc`, `qop` and
/// `algorithm` as tokens).
pub fn render(c: &Credentials, reversed: bool) -> String {
    let mut params = vec![
        format!("username={}", quote(&c.username)),
        format!("realm={}", quote(&c.realm)),
        format!("nonce={}", quote(&c.nonce)),
        format!("uri={}", quote(&c.uri)),
        format!("response={}", quote(&c.response)),
        format!("algorithm={}", algorithm_name(c.algorithm)),
        format!("cnonce={}", quote(&c.cnonce)),
        format!("nc={}", c.nc),
        "qop=auth".to_owned(),
    ];
    if reversed {
        params.reverse();
    }
    format!("Digest {}", params.join(", "))
}

/// The same header with every value as a bare token, when every value can be one.
pub fn render_tokens(c: &Credentials) -> Option<String> {
    let fields = [&c.username, &c.nonce, &c.uri, &c.response, &c.cnonce];
    let token_safe = |v: &str| {
        !v.starts_with('"')
            && !v
                .chars()
                .any(|ch| ch == ',' || ch == '"' || ch.is_ascii_whitespace())
    };
    if !fields.iter().all(|v| token_safe(v)) {
        return None;
    }
    Some(format!(
        "Digest username={}, realm=\"{REALM}\", nonce={}, uri={}, response={}, algorithm={}, cnonce={}, nc={}, qop=auth",
        c.username,
        c.nonce,
        c.uri,
        c.response,
        algorithm_name(c.algorithm),
        c.cnonce,
        c.nc
    ))
}

pub fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for ch in v.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

pub fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Md5 => "MD5",
        Algorithm::Md5Sess => "MD5-sess",
        Algorithm::Sha256 => "SHA-256",
        Algorithm::Sha256Sess => "SHA-256-sess",
    }
}

/// Structure-aware: the input, split at NUL characters, supplies the five free-form values
/// of a credential; rendered as a client would, any such credential must parse back exactly
/// (or be refused for a too-long header or an empty cnonce, and for nothing else).
pub fn check_fields(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0').map(str::to_owned);
    let mut next = || parts.next().unwrap_or_default();
    let algorithm = match data.first().map(|b| b % 4) {
        Some(1) => Algorithm::Md5Sess,
        Some(2) => Algorithm::Sha256,
        Some(3) => Algorithm::Sha256Sess,
        _ => Algorithm::Md5,
    };
    let creds = Credentials {
        username: next(),
        realm: REALM.to_owned(),
        nonce: next(),
        uri: next(),
        response: next(),
        algorithm,
        cnonce: next(),
        nc: format!("{:08x}", data.len() as u32),
    };
    check_credentials(&creds);
}

/// Rendering `creds` and parsing the header gives `creds` back (the response lower-cased).
pub fn check_credentials(creds: &Credentials) {
    let mut want = creds.clone();
    want.response = want.response.to_ascii_lowercase();
    for reversed in [false, true] {
        let header = render(creds, reversed);
        let got = digest::parse(&header);
        if header.len() > max_header_len() {
            assert_eq!(got, Err(DigestError::Malformed("header too long")));
        } else if creds.cnonce.is_empty() {
            assert_eq!(got, Err(DigestError::Malformed("cnonce")));
        } else {
            assert_eq!(got.as_ref(), Ok(&want), "header {header:?}");
        }
    }
    let tokens = render_tokens(creds)
        .filter(|header| header.len() <= max_header_len() && !creds.cnonce.is_empty());
    if let Some(header) = tokens {
        assert_eq!(digest::parse(&header).as_ref(), Ok(&want), "{header:?}");
    }
}

/// Nonces: arbitrary strings are never valid, an issued nonce is valid until its lifetime
/// ends, and any change to an issued nonce makes it invalid.
pub fn check_nonce(data: &[u8]) {
    // A process that started before any nonce could have been issued, so that only the
    // lifetime makes a nonce stale here (the start-time rule is checked below).
    let key = NonceKey::started_at([0x5a; 32], LIFETIME, -1);
    // The server's clock: any Unix time a u32 can hold (nonces carry a u32 issue time).
    let now = i64::from(u32::from_be_bytes([
        byte(data, 0),
        byte(data, 1),
        byte(data, 2),
        byte(data, 3),
    ]));
    let text = String::from_utf8_lossy(data);
    let (check, issued) = key.check_issued(&text, now);
    assert_eq!(key.check(&text, now), check);
    match check {
        NonceCheck::Invalid => {}
        NonceCheck::Valid | NonceCheck::Stale => {
            // Only a 24-byte MAC'd value in canonical base64 gets this far.
            assert_eq!(text.len(), 32, "{text:?} accepted as a nonce");
            assert!(issued <= now + 5);
            assert_eq!(check == NonceCheck::Stale, now - issued > LIFETIME);
        }
    }

    let nonce = key.issue(now);
    assert_eq!(nonce.len(), 32);
    assert_eq!(key.check_issued(&nonce, now), (NonceCheck::Valid, now));
    // A process of the same deployment that started after the nonce was issued (a restart)
    // finds it stale, and its own nonces valid, from its first millisecond.
    let restarted = NonceKey::started_at([0x5a; 32], LIFETIME, now * 1000 + 999);
    assert_eq!(
        restarted.check_issued(&nonce, now),
        (NonceCheck::Stale, now)
    );
    let own = restarted.issue_ms(now * 1000 + 999);
    assert_eq!(restarted.check_issued(&own, now), (NonceCheck::Valid, now));
    assert_eq!(key.check(&nonce, now + LIFETIME), NonceCheck::Valid);
    assert_eq!(key.check(&nonce, now + LIFETIME + 1), NonceCheck::Stale);
    assert_eq!(
        NonceKey::new([0xa5; 32], LIFETIME).check(&nonce, now),
        NonceCheck::Invalid
    );
    // One character replaced by another base64 character.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = usize::from(byte(data, 4)) % nonce.len();
    let replacement = ALPHABET[usize::from(byte(data, 5)) % ALPHABET.len()];
    let mut bytes = nonce.clone().into_bytes();
    if bytes[pos] != replacement {
        bytes[pos] = replacement;
        let forged = String::from_utf8(bytes).expect("ASCII");
        assert_eq!(key.check(&forged, now), NonceCheck::Invalid, "{forged}");
    }
    // Anything appended.
    if !text.is_empty() {
        assert_eq!(
            key.check(&format!("{nonce}{text}"), now),
            NonceCheck::Invalid
        );
    }
}

fn byte(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}
