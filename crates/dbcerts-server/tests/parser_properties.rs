//! Property tests for the server's input parsers: the Digest `Authorization` header (and nonce
//! checking), query parameters and path ids, and JSON request bodies.
//!
//! The properties live in `fuzz/src/` and are shared with the cargo-fuzz targets (see
//! `fuzz/README.md`); here proptest drives them on the stable toolchain, and every file of the
//! committed fuzz corpus and seeds is replayed through them as a regression check.

#[path = "../../../fuzz/src/digest_header.rs"]
mod digest_header;
#[path = "../../../fuzz/src/json_bodies.rs"]
mod json_bodies;
#[path = "../../../fuzz/src/query_params.rs"]
mod query_params;

use std::path::PathBuf;

use dbcerts_server::auth::digest::{self, Algorithm, Credentials, DigestError, REALM};
use dbcerts_server::body::parse_json;
use dbcerts_server::params::{Accepts, GroupId, Query};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

// ---- strategies ----

/// Any text, newlines and control characters included.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("(?s).{{0,{max}}}")).expect("valid regex")
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Md5),
        Just(Algorithm::Md5Sess),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha256Sess),
    ]
}

/// Credentials with arbitrary free-form values (quotes, backslashes, commas, any Unicode).
fn credentials() -> impl Strategy<Value = Credentials> {
    (
        (text(40), text(40), text(60)),
        (text(70), algorithm(), text(20), "[0-9a-fA-F]{8}"),
    )
        .prop_map(
            |((username, nonce, uri), (response, algorithm, cnonce, nc))| Credentials {
                username,
                realm: REALM.to_owned(),
                nonce,
                uri,
                response,
                algorithm,
                cnonce,
                nc,
            },
        )
}

/// Header-shaped text: a scheme, then `name=value` pairs with real and made-up names, quoted
/// or not, joined by the separators clients use (and some they should not).
fn header_like() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("username".to_owned()),
        Just("realm".to_owned()),
        Just("nonce".to_owned()),
        Just("uri".to_owned()),
        Just("response".to_owned()),
        Just("algorithm".to_owned()),
        Just("cnonce".to_owned()),
        Just("nc".to_owned()),
        Just("qop".to_owned()),
        Just("opaque".to_owned()),
        Just("Username".to_owned()),
        "[a-zA-Z_=\" -]{0,6}",
    ];
    let value = prop_oneof![
        Just(REALM.to_owned()),
        Just("MD5".to_owned()),
        Just("sha-256-SESS".to_owned()),
        Just("auth".to_owned()),
        "[0-9a-fA-F]{7,9}",
        r#"[a-z"\\ ,=\t]{0,8}"#,
        text(12),
    ];
    let pair = (name, value, any::<bool>()).prop_map(|(n, v, quoted)| {
        if quoted {
            format!("{n}={}", digest_header::quote(&v))
        } else {
            format!("{n}={v}")
        }
    });
    let scheme = prop_oneof![
        Just("Digest "),
        Just("digest "),
        Just("DIGEST\t"),
        Just("  Digest "),
        Just("Basic "),
        Just(""),
    ];
    let sep = prop_oneof![Just(", "), Just(","), Just(" , "), Just(",,"), Just(" ")];
    (scheme, prop::collection::vec((pair, sep), 0..12)).prop_map(|(scheme, pairs)| {
        let mut out = scheme.to_owned();
        for (pair, sep) in pairs {
            out.push_str(&pair);
            out.push_str(sep);
        }
        out
    })
}

/// Query strings built from the real parameter names and values around their limits.
fn query_like() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("itemsPerPage"),
        Just("pageNum"),
        Just("includeCount"),
        Just("envelope"),
        Just("pretty"),
        Just("items%50erPage"),
        Just("other"),
        Just(""),
    ];
    let value = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u32..600).prop_map(|n| n.to_string()),
        (0u32..600).prop_map(|n| format!("00{n}")),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("TRUE".to_owned()),
        Just("%74rue".to_owned()),
        Just("+5".to_owned()),
        Just("-1".to_owned()),
        "[0-9a-z%+&=]{0,6}",
    ];
    prop::collection::vec((name, value), 0..7).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// Arbitrary JSON values, with the member names the request bodies use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text(12).prop_map(Value::String),
        Just(Value::String("a\0b".to_owned())),
    ];
    let key = prop_oneof![
        Just("monthsUntilExpiration".to_owned()),
        Just("username".to_owned()),
        Just("databaseName".to_owned()),
        Just("roles".to_owned()),
        Just("roleName".to_owned()),
        Just("scopes".to_owned()),
        Just("labels".to_owned()),
        Just("links".to_owned()),
        Just("name".to_owned()),
        Just("tags".to_owned()),
        Just("key".to_owned()),
        Just("value".to_owned()),
        Just("customerX509".to_owned()),
        Just("cas".to_owned()),
        Just("ldap".to_owned()),
        Just("userToDNMapping".to_owned()),
        Just("desc".to_owned()),
        text(6),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---- Digest ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn digest_arbitrary_text(header in text(300)) {
        digest_header::check_header(&header);
    }

    #[test]
    fn digest_arbitrary_bytes(data in bytes(300)) {
        digest_header::check(&data);
    }

    #[test]
    fn digest_header_shaped_text(header in header_like()) {
        digest_header::check_header(&header);
    }

    /// A client's rendering of any credential parses back to exactly that credential.
    #[test]
    fn digest_rendered_credentials_round_trip(creds in credentials()) {
        digest_header::check_credentials(&creds);
    }

    /// `nc` must be exactly eight hex digits.
    #[test]
    fn digest_refuses_malformed_nc(
        creds in credentials(),
        nc in "[0-9a-fA-F]{0,7}|[0-9a-fA-F]{9,12}|[0-9a-f]{7}[g-z ]",
    ) {
        let mut creds = creds;
        creds.cnonce.push('c');
        creds.nc = nc;
        prop_assert_eq!(
            digest::parse(&digest_header::render(&creds, false)),
            Err(DigestError::Malformed("nc"))
        );
    }

    /// Every parameter appearing twice is refused, whatever the case of its name.
    #[test]
    fn digest_refuses_duplicates(creds in credentials(), which in 0usize..9, upper in any::<bool>()) {
        let mut creds = creds;
        creds.cnonce.push('c');
        let header = digest_header::render(&creds, false);
        let name = ["username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "nc", "qop"][which];
        let extra = if upper { name.to_ascii_uppercase() } else { name.to_owned() };
        let dup = format!("{header}, {extra}=x");
        prop_assert_eq!(digest::parse(&dup), Err(DigestError::Duplicate));
    }

    /// Nonce checking on arbitrary strings and on mutations of issued nonces.
    #[test]
    fn nonces(data in bytes(64)) {
        digest_header::check_nonce(&data);
    }
}

#[test]
fn digest_length_limit() {
    let limit = digest_header::max_header_len();
    assert!(limit >= 4096, "limit {limit}");
    let creds = |len: usize| Credentials {
        username: "u".repeat(len),
        realm: REALM.to_owned(),
        nonce: "n".into(),
        uri: "/api/atlas/v2/groups".into(),
        response: "r".into(),
        algorithm: Algorithm::Md5,
        cnonce: "c".into(),
        nc: "00000001".into(),
    };
    let short = digest_header::render(&creds(1), false);
    let fill = limit - short.len() + 1;
    let at_limit = digest_header::render(&creds(fill), false);
    assert_eq!(at_limit.len(), limit);
    assert_eq!(digest::parse(&at_limit).unwrap().username.len(), fill);
    let over = digest_header::render(&creds(fill + 1), false);
    assert_eq!(
        digest::parse(&over),
        Err(DigestError::Malformed("header too long"))
    );
    digest_header::check_header(&at_limit);
    digest_header::check_header(&over);
}

// ---- query parameters and path ids ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn query_arbitrary_text(data in bytes(200)) {
        query_params::check(&data);
    }

    #[test]
    fn query_parameter_shaped_text(raw in query_like()) {
        query_params::check_query(&raw);
    }

    /// `itemsPerPage` is accepted exactly in 1..=500, `pageNum` exactly in 1..=u32::MAX.
    #[test]
    fn query_pagination_ranges(n in prop_oneof![0u64..1000, any::<u64>()], zeros in 0usize..3) {
        let digits = format!("{}{n}", "0".repeat(zeros));
        let items = Query::parse(Some(&format!("itemsPerPage={digits}")), Accepts::List);
        match items {
            Ok(q) => {
                prop_assert!((1..=500).contains(&n));
                prop_assert_eq!(u64::from(q.paging.items_per_page), n);
            }
            Err(e) => {
                // At most ten digits are read, so a padded in-range value may be refused.
                prop_assert!(!(1..=500).contains(&n) || digits.len() > 10);
                prop_assert_eq!(e.code, "INVALID_QUERY_PARAMETER");
            }
        }
        let page = Query::parse(Some(&format!("pageNum={digits}")), Accepts::List);
        match page {
            Ok(q) => {
                prop_assert!(n >= 1 && n <= u64::from(u32::MAX));
                prop_assert_eq!(u64::from(q.paging.page_num), n);
            }
            Err(_) => prop_assert!(n == 0 || n > u64::from(u32::MAX) || digits.len() > 10),
        }
        // Operations without paging ignore the parameters entirely.
        let entity = Query::parse(Some(&format!("itemsPerPage={digits}")), Accepts::Entity);
        prop_assert!(entity.is_ok());
    }

    #[test]
    fn group_ids_any_text(s in text(30)) {
        query_params::check_group_id(&s);
    }

    #[test]
    fn group_ids_of_the_right_shape(s in "[0-9a-f]{24}", upper in "[0-9a-fA-F]{23}[A-F]") {
        let id = GroupId::parse(&s).unwrap();
        prop_assert_eq!(id.as_str(), s.as_str());
        prop_assert_eq!(GroupId::parse(&upper).unwrap_err().code, "INVALID_GROUP_ID");
        query_params::check_group_id(&s);
        query_params::check_group_id(&upper);
    }
}

#[test]
fn query_absent_or_empty_is_the_default() {
    for accepts in [Accepts::List, Accepts::Entity, Accepts::EnvelopeOnly] {
        let none = Query::parse(None, accepts).unwrap();
        assert_eq!(Query::parse(Some(""), accepts).unwrap(), none);
        assert_eq!(none.paging.items_per_page, 100);
        assert_eq!(none.paging.page_num, 1);
        assert!(none.paging.include_count);
        assert!(!none.format.pretty && !none.format.envelope);
    }
}

// ---- JSON bodies ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn json_arbitrary_bytes(data in bytes(200)) {
        json_bodies::check(&data);
    }

    #[test]
    fn json_arbitrary_values(value in json_value(), pretty in any::<bool>()) {
        let data = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        json_bodies::check(&data);
    }

    /// A `null` member is refused as INVALID_JSON_ATTRIBUTE naming it.
    #[test]
    fn json_null_member_is_refused(key in text(12)) {
        let body = serde_json::json!({ key.clone(): null }).to_string();
        let e = parse_json::<Value>(body.as_bytes()).unwrap_err();
        prop_assert_eq!(e.code, "INVALID_JSON_ATTRIBUTE");
        prop_assert_eq!(e.parameters, vec![Value::String(key)]);
    }

    /// A NUL character anywhere in a string is refused (PostgreSQL cannot store it).
    #[test]
    fn json_nul_is_refused(before in text(8), after in text(8), in_key in any::<bool>()) {
        let s = format!("{before}\0{after}");
        let body = if in_key {
            serde_json::json!({ s: "x" })
        } else {
            serde_json::json!({ "description": s })
        };
        let e = parse_json::<Value>(body.to_string().as_bytes()).unwrap_err();
        prop_assert_eq!(e.code, "INVALID_JSON");
    }

    /// Whitespace alone is MALFORMED_JSON.
    #[test]
    fn json_whitespace_is_malformed(ws in "[ \t\r\n]{0,8}") {
        prop_assert_eq!(parse_json::<Value>(ws.as_bytes()).unwrap_err().code, "MALFORMED_JSON");
    }
}

/// Every strict prefix of a real request body is MALFORMED_JSON.
#[test]
fn json_truncated_bodies_are_malformed() {
    let mut checked = 0;
    for (name, data) in corpus_files("seeds/json_bodies") {
        let Ok(Value::Object(_)) = serde_json::from_slice::<Value>(&data) else {
            continue;
        };
        let data = String::from_utf8(data).unwrap();
        let data = data.trim_end();
        for end in (0..data.len()).filter(|&i| data.is_char_boundary(i)) {
            let prefix = &data.as_bytes()[..end];
            let e = parse_json::<Value>(prefix).unwrap_err();
            assert_eq!(e.code, "MALFORMED_JSON", "{name} cut at {end}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} prefixes");
}

// ---- the fuzz corpus as a regression suite ----

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file under `fuzz/<dir>`, sorted by name.
fn corpus_files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(dir);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path.display().to_string(), data)
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    let mut count = 0;
    for dir in [format!("corpus/{target}"), format!("seeds/{target}")] {
        for (name, data) in corpus_files(&dir) {
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{name} fails the {target} properties");
            count += 1;
        }
    }
    assert!(count > 0, "no corpus for {target}");
}

#[test]
fn fuzz_corpus_digest_header() {
    replay("digest_header", digest_header::check);
}

#[test]
fn fuzz_corpus_query_params() {
    replay("query_params", query_params::check);
}

#[test]
fn fuzz_corpus_json_bodies() {
    replay("json_bodies", json_bodies::check);
}

#[test]
fn seeds_parse_as_expected() {
    // The real clients' headers among the seeds are accepted.
    for seed in [
        "curl_md5",
        "python_requests",
        "go_sha256",
        "md5_sess_lowercase_scheme",
    ] {
        let data =
            std::fs::read(fuzz_dir().join(format!("seeds/digest_header/{seed}.txt"))).unwrap();
        let creds = digest::parse(std::str::from_utf8(&data).unwrap())
            .unwrap_or_else(|e| panic!("{seed}: {e:?}"));
        assert_eq!(creds.username, "abcdefgh", "{seed}");
    }
    let data = std::fs::read(fuzz_dir().join("seeds/query_params/all_list_params.txt")).unwrap();
    let q = Query::parse(Some(std::str::from_utf8(&data).unwrap()), Accepts::List).unwrap();
    assert_eq!(
        (q.paging.items_per_page, q.paging.page_num, q.format.pretty),
        (100, 2, true)
    );
}
