//! JSON request bodies: one parser that turns every way a body can be wrong into the Atlas error
//! a client would get, before any handler logic runs.
//!
//! - not JSON, truncated, or trailing garbage: `MALFORMED_JSON`
//! - a field Atlas does not define: `INVALID_ATTRIBUTE` naming it
//! - a field of the wrong type (`"monthsUntilExpiration": "3"`): `INVALID_JSON_ATTRIBUTE`
//! - a body that is not an object: `INVALID_JSON`

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::AtlasError;

/// Why a request body could not be read. Each surface answers these in its own format
/// (Atlas's for the API, OAuth's for `/api/oauth/*`).
pub(crate) enum BodyFailure {
    /// Over the body limit (`DefaultBodyLimit`).
    TooLarge,
    /// Not received within the body timeout (tower-http's `RequestBodyTimeoutLayer`).
    TimedOut,
    /// Anything else: the client went away, a broken chunked encoding.
    Unreadable,
}

/// Reads a whole request body, classifying a failure.
pub(crate) async fn read_body<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<axum::body::Bytes, BodyFailure> {
    use axum::extract::FromRequest;
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                BodyFailure::TooLarge
            } else if crate::error::caused_by::<tower_http::timeout::TimeoutError>(&e) {
                BodyFailure::TimedOut
            } else {
                BodyFailure::Unreadable
            }
        })
}

/// A read-only field that clients (the Go SDK, the CLI, a GET body sent back as a PATCH) may
/// echo: accepted, whatever its value, and ignored.
pub type ReadOnly = Value;

/// The only members whose value may be a JSON array; every element must be an object.
/// Serde's derived structs also accept the sequence form (`[3, null]` for a two-field struct);
/// Atlas does not, so arrays anywhere else are refused.
pub const ARRAY_MEMBERS: [&str; 6] = [
    "labels",
    "links",
    "roles",
    "scopes",
    "tags",
    "userToDNMapping",
];

/// Checks what serde cannot: arrays only where the schema has arrays, and no `null` (no request
/// attribute in the spec is nullable).
fn check_shape(value: &Value, path: &str, string_arrays: &[&str]) -> Result<(), AtlasError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    for (key, member) in map {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match member {
            Value::Null => return Err(AtlasError::invalid_json_attribute(&here)),
            Value::Array(items)
                if string_arrays.contains(&key.as_str()) && items.iter().all(Value::is_string) => {}
            Value::Array(_) if string_arrays.contains(&key.as_str()) => {
                return Err(AtlasError::invalid_json_attribute(&here));
            }
            Value::Array(items) if ARRAY_MEMBERS.contains(&key.as_str()) => {
                for item in items {
                    if !item.is_object() {
                        return Err(AtlasError::invalid_json_attribute(&here));
                    }
                    check_shape(item, &here, string_arrays)?;
                }
            }
            Value::Array(_) => return Err(AtlasError::invalid_json_attribute(&here)),
            Value::Object(_) => check_shape(member, &here, string_arrays)?,
            _ => {}
        }
    }
    Ok(())
}

/// Whether JSON text holds the escape `\u0000` (a raw NUL is not valid JSON anyway). Escaped
/// backslashes are skipped, so the six characters `\\u0000` (a backslash, then `u0000`) are not
/// a NUL.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Parses `bytes` as `T`, in the order a client's mistakes are reported: syntax, then unknown
/// attributes, then types and shapes. Every operation with a body requires one (the spec marks
/// each request body required), so an empty body is `MALFORMED_JSON`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AtlasError> {
    parse_json_with(bytes, &[])
}

/// [`parse_json`] for schemas whose `string_arrays` members are arrays of strings (role names
/// of API keys and service accounts).
pub fn parse_json_with<T: DeserializeOwned>(
    bytes: &[u8],
    string_arrays: &[&str],
) -> Result<T, AtlasError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AtlasError::malformed_json());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut unknown: Option<String> = None;
    let mut track = serde_path_to_error::Track::new();
    let parsed = {
        let tracked = serde_path_to_error::Deserializer::new(&mut de, &mut track);
        serde_ignored::deserialize(tracked, |path| {
            // serde_ignored renders an `Option` layer as `?`; Atlas names fields plainly.
            unknown.get_or_insert_with(|| {
                path.to_string()
                    .split('.')
                    .filter(|seg| *seg != "?")
                    .collect::<Vec<_>>()
                    .join(".")
            });
        })
    };
    let value: T = match parsed {
        Ok(v) => v,
        Err(e) => {
            return Err(match e.classify() {
                serde_json::error::Category::Data => {
                    if let Some(field) = unknown {
                        return Err(AtlasError::invalid_attribute(&field));
                    }
                    let path = track.path().to_string();
                    if path == "." || path.is_empty() {
                        AtlasError::invalid_json()
                    } else {
                        AtlasError::invalid_json_attribute(&path)
                    }
                }
                _ => AtlasError::malformed_json(),
            });
        }
    };
    de.end().map_err(|_| AtlasError::malformed_json())?;
    if let Some(field) = unknown {
        return Err(AtlasError::invalid_attribute(&field));
    }
    let shape: Value = serde_json::from_slice(bytes).map_err(|_| AtlasError::malformed_json())?;
    if !shape.is_object() {
        return Err(AtlasError::invalid_json());
    }
    check_shape(&shape, "", string_arrays)?;
    // Last, after every error Atlas would report: no stored text may hold a NUL character
    // (PostgreSQL's cannot); refuse it here, the same on every backend, rather than let one
    // database take it and the other fail.
    if has_escaped_nul(bytes) {
        return Err(AtlasError::invalid_json());
    }
    Ok(value)
}

/// An optional integer attribute that also takes an integral number written with a fraction
/// (`14.0`): JSON Schema counts it as an integer, and Atlas's Jackson accepts it. Anything else
/// that is not an integer of `T`'s range is the attribute's type error.
pub fn integral<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::Deserialize;
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    // 2^53: every integer up to it is exactly an f64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
                .map(|f| f as i64)
        })
        .and_then(|v| T::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom("not an integer in range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        #[serde(default, deserialize_with = "integral")]
        months_until_expiration: Option<i64>,
        inner: Option<Inner>,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        cas: Option<String>,
    }

    fn code(bytes: &str) -> &'static str {
        parse_json::<Body>(bytes.as_bytes()).unwrap_err().code
    }

    #[test]
    fn classifies_bad_bodies() {
        assert_eq!(code("{"), "MALFORMED_JSON");
        assert_eq!(code("{} x"), "MALFORMED_JSON");
        assert_eq!(code(""), "MALFORMED_JSON");
        assert_eq!(code("[]"), "INVALID_JSON");
        assert_eq!(code("[3, null]"), "INVALID_JSON");
        let e = parse_json::<Body>(br#"{"monthsUntilExpiration":1,"inner":{"cas":"a\u0000b"}}"#)
            .unwrap_err();
        assert_eq!(e.code, "INVALID_JSON", "an escaped NUL is refused");
        assert!(has_escaped_nul(br#"{"\u0000":1}"#), "in a key too");
        assert!(
            !has_escaped_nul(br#"{"a":"\\u0000"}"#),
            "an escaped backslash is not a NUL"
        );
        let e = parse_json::<Body>(br#"{"x":[]}"#).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_ATTRIBUTE", "x"),
            "unknown before shape"
        );
        let e = parse_json::<Body>(br#"{"monthsUntilExpiration":null}"#).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_JSON_ATTRIBUTE", "monthsUntilExpiration")
        );
        let e = parse_json::<Body>(br#"{"inner":[null]}"#).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_JSON_ATTRIBUTE", "inner")
        );
        assert_eq!(code("3"), "INVALID_JSON");
        let e = parse_json::<Body>(br#"{"monthsUntilExpiration":"3"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_JSON_ATTRIBUTE", "monthsUntilExpiration")
        );
        let e = parse_json::<Body>(br#"{"monthsUntilExpiration":3,"bogus":1}"#).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_ATTRIBUTE", "bogus")
        );
        let e = parse_json::<Body>(br#"{"inner":{"cas":"x","extra":true}}"#).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_ATTRIBUTE", "inner.extra")
        );
        let e = parse_json::<Body>(br#"{"inner":{"cas":5}}"#).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_JSON_ATTRIBUTE", "inner.cas")
        );
    }

    #[test]
    fn accepts_good_bodies() {
        let b: Body = parse_json(br#" {"monthsUntilExpiration": 3} "#).unwrap();
        assert_eq!(b.months_until_expiration, Some(3));
        let b: Body = parse_json(b"{}").unwrap();
        assert_eq!(
            b,
            Body {
                months_until_expiration: None,
                inner: None
            }
        );
        assert_eq!(code(""), "MALFORMED_JSON");
        assert_eq!(code(" \n"), "MALFORMED_JSON");
    }

    #[test]
    fn integral_numbers_with_a_fraction_are_integers() {
        let months =
            |text: &str| parse_json::<Body>(text.as_bytes()).map(|b| b.months_until_expiration);
        assert_eq!(
            months(r#"{"monthsUntilExpiration": 14.0}"#).unwrap(),
            Some(14)
        );
        assert_eq!(months(r#"{"monthsUntilExpiration": 3}"#).unwrap(), Some(3));
        assert_eq!(months("{}").unwrap(), None);
        for bad in [
            r#"{"monthsUntilExpiration": 14.5}"#,
            r#"{"monthsUntilExpiration": "3"}"#,
        ] {
            assert_eq!(
                parse_json::<Body>(bad.as_bytes()).unwrap_err().code,
                "INVALID_JSON_ATTRIBUTE",
                "{bad}"
            );
        }
    }
}
