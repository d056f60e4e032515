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

/// A read-only field that clients (the Go SDK, the CLI, a GET body sent back as a PATCH) may
/// echo: accepted, whatever its value, and ignored.
pub type ReadOnly = Value;

/// The only members whose value may be a JSON array; every element must be an object.
/// Serde's derived structs also accept the sequence form (`[3, null]` for a two-field struct);
/// Atlas does not, so arrays anywhere else are refused before deserialization.
const ARRAY_MEMBERS: [&str; 6] = [
    "labels",
    "links",
    "roles",
    "scopes",
    "tags",
    "userToDNMapping",
];

fn check_arrays(value: &Value, path: &str) -> Result<(), AtlasError> {
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
            Value::Array(items) if ARRAY_MEMBERS.contains(&key.as_str()) => {
                for item in items {
                    if !item.is_object() {
                        return Err(AtlasError::invalid_json_attribute(&here));
                    }
                    check_arrays(item, &here)?;
                }
            }
            Value::Array(_) => return Err(AtlasError::invalid_json_attribute(&here)),
            Value::Object(_) => check_arrays(member, &here)?,
            _ => {}
        }
    }
    Ok(())
}

/// Parses `bytes` as `T`. An empty (or all-white-space) body parses as `{}` when
/// `empty_is_object` is true, and is `MALFORMED_JSON` otherwise.
pub fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    empty_is_object: bool,
) -> Result<T, AtlasError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        if !empty_is_object {
            return Err(AtlasError::malformed_json());
        }
        &b"{}"[..]
    } else {
        bytes
    };
    // Shape first: syntax errors, a non-object body, and arrays where Atlas has objects.
    let shape: Value = serde_json::from_slice(bytes).map_err(|_| AtlasError::malformed_json())?;
    if !shape.is_object() {
        return Err(AtlasError::invalid_json());
    }
    check_arrays(&shape, "")?;
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
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        months_until_expiration: Option<i64>,
        inner: Option<Inner>,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        cas: Option<String>,
    }

    fn code(bytes: &str) -> &'static str {
        parse_json::<Body>(bytes.as_bytes(), false)
            .unwrap_err()
            .code
    }

    #[test]
    fn classifies_bad_bodies() {
        assert_eq!(code("{"), "MALFORMED_JSON");
        assert_eq!(code("{} x"), "MALFORMED_JSON");
        assert_eq!(code(""), "MALFORMED_JSON");
        assert_eq!(code("[]"), "INVALID_JSON");
        assert_eq!(code("[3, null]"), "INVALID_JSON");
        let e = parse_json::<Body>(br#"{"inner":[null]}"#, false).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_JSON_ATTRIBUTE", "inner")
        );
        assert_eq!(code("3"), "INVALID_JSON");
        let e = parse_json::<Body>(br#"{"monthsUntilExpiration":"3"}"#, false).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_JSON_ATTRIBUTE", "monthsUntilExpiration")
        );
        let e = parse_json::<Body>(br#"{"monthsUntilExpiration":3,"bogus":1}"#, false).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_ATTRIBUTE", "bogus")
        );
        let e = parse_json::<Body>(br#"{"inner":{"cas":"x","extra":true}}"#, false).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_ATTRIBUTE", "inner.extra")
        );
        let e = parse_json::<Body>(br#"{"inner":{"cas":5}}"#, false).unwrap_err();
        assert_eq!(
            (e.code, e.parameters[0].as_str().unwrap()),
            ("INVALID_JSON_ATTRIBUTE", "inner.cas")
        );
    }

    #[test]
    fn accepts_good_bodies() {
        let b: Body = parse_json(br#" {"monthsUntilExpiration": 3} "#, false).unwrap();
        assert_eq!(b.months_until_expiration, Some(3));
        let b: Body = parse_json(b"", true).unwrap();
        assert_eq!(
            b,
            Body {
                months_until_expiration: None,
                inner: None
            }
        );
    }
}
