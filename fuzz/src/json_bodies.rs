//! Properties of the JSON body parser (`body::parse_json`, `body::parse_json_with`) with
//! `serde_json::Value` and with the routes' own request body types
//! (`dbcerts_server::request_bodies`), so what is fuzzed is what the handlers parse.
//!
//! Shared by the `json_bodies` fuzz target and `crates/dbcerts-server/tests/parser_properties.rs`.
#![allow(dead_code)]

use dbcerts_server::body::{ARRAY_MEMBERS, parse_json_with};
use dbcerts_server::error::AtlasError;
use dbcerts_server::request_bodies::{
    AccountIn, EntryIn, GroupIn, KeyIn, UserCertIn, UserIn, UserSecurityIn, parse_json_array,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

// ---- properties ----

const CODES: [&str; 4] = [
    "MALFORMED_JSON",
    "INVALID_JSON",
    "INVALID_JSON_ATTRIBUTE",
    "INVALID_ATTRIBUTE",
];

/// Everything this module checks, on one fuzz input.
pub fn check(data: &[u8]) {
    let plain = check_value(data, &[]);
    let roles = check_value(data, &["roles"]);

    if let Some(t) = check_typed::<UserCertIn>(data, &[], plain.as_ref()) {
        let v = plain.as_ref().expect("checked by check_typed");
        assert_eq!(
            t.months_until_expiration,
            v.get("monthsUntilExpiration")
                .map(|n| n.as_i64().expect("an i64"))
        );
    }
    if let Some(t) = check_typed::<UserIn>(data, &[], plain.as_ref()) {
        let v = plain.as_ref().expect("checked by check_typed");
        assert_eq!(
            t.username.as_deref(),
            v.get("username").and_then(Value::as_str)
        );
        assert_eq!(
            t.roles.as_ref().map(Vec::len),
            v.get("roles").and_then(Value::as_array).map(Vec::len)
        );
    }
    if let Some(t) = check_typed::<GroupIn>(data, &[], plain.as_ref()) {
        let v = plain.as_ref().expect("checked by check_typed");
        assert_eq!(t.name.as_deref(), v.get("name").and_then(Value::as_str));
        assert_eq!(
            t.tags.as_ref().map(Vec::len),
            v.get("tags").and_then(Value::as_array).map(Vec::len)
        );
    }
    if let Some(t) = check_typed::<UserSecurityIn>(data, &[], plain.as_ref()) {
        let v = plain.as_ref().expect("checked by check_typed");
        assert_eq!(
            t.customer_x509.as_ref().and_then(|c| c.cas.as_deref()),
            v.pointer("/customerX509/cas").and_then(Value::as_str)
        );
    }
    if let Some(t) = check_typed::<KeyIn>(data, &["roles"], roles.as_ref()) {
        let v = roles.as_ref().expect("checked by check_typed");
        let want: Option<Vec<&str>> = v
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|r| r.as_str().expect("a string")).collect());
        assert_eq!(
            t.roles
                .as_ref()
                .map(|r| r.iter().map(String::as_str).collect::<Vec<_>>()),
            want
        );
    }
    check_typed::<AccountIn>(data, &["roles"], roles.as_ref());

    // Array bodies: each element goes through the object parser; the whole is accepted only
    // when every element is, and never holds a non-object.
    if let Ok(entries) = parse_json_array::<EntryIn>(data, &[]) {
        let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(data) else {
            panic!("accepted array body that is not an array");
        };
        assert_eq!(entries.len(), items.len());
        for item in &items {
            assert!(item.is_object());
            assert_shape(item, &[]);
        }
    }
}

/// `parse_json_with::<Value>`: what it accepts is an object, the same value `serde_json`
/// reads, shaped as the API allows (no null, no NUL character, arrays only where the schema
/// has them), and still accepted when re-serialized compactly or pretty-printed.
pub fn check_value(data: &[u8], string_arrays: &[&str]) -> Option<Value> {
    let parsed = parse_json_with::<Value>(data, string_arrays);
    check_error(data, parsed.as_ref().err());
    let value = parsed.ok()?;
    assert!(value.is_object(), "non-object body accepted");
    assert_eq!(
        serde_json::from_slice::<Value>(data).ok().as_ref(),
        Some(&value),
        "parse_json read another value than serde_json"
    );
    assert_shape(&value, string_arrays);
    for again in [
        serde_json::to_vec(&value).expect("serializes"),
        serde_json::to_vec_pretty(&value).expect("serializes"),
    ] {
        assert!(
            parse_json_with::<Value>(&again, string_arrays).is_ok(),
            "re-serialized body refused: {}",
            String::from_utf8_lossy(&again)
        );
    }
    // Never an array at the top.
    let mut wrapped = b"[".to_vec();
    wrapped.extend_from_slice(data);
    wrapped.push(b']');
    assert!(parse_json_with::<Value>(&wrapped, string_arrays).is_err());
    Some(value)
}

/// A typed parse: accepted only if the untyped parse (same `string_arrays`) accepted too.
pub fn check_typed<T: DeserializeOwned>(
    data: &[u8],
    string_arrays: &[&str],
    untyped: Option<&Value>,
) -> Option<T> {
    let parsed = parse_json_with::<T>(data, string_arrays);
    check_error(data, parsed.as_ref().err());
    let typed = parsed.ok()?;
    assert!(
        untyped.is_some(),
        "{} accepted a body that Value refused",
        std::any::type_name::<T>()
    );
    Some(typed)
}

fn check_error(data: &[u8], error: Option<&AtlasError>) {
    if data.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(error.map(|e| e.code), Some("MALFORMED_JSON"));
    }
    if let Some(e) = error {
        assert!(CODES.contains(&e.code), "unexpected error code {}", e.code);
        assert_eq!(e.status.as_u16(), 400);
        if matches!(e.code, "INVALID_ATTRIBUTE" | "INVALID_JSON_ATTRIBUTE") {
            assert_eq!(e.parameters.len(), 1, "{e:?}");
            assert!(e.parameters[0].is_string());
        }
    }
}

/// What an accepted body looks like anywhere inside.
pub fn assert_shape(value: &Value, string_arrays: &[&str]) {
    match value {
        Value::Object(map) => {
            for (key, member) in map {
                assert!(!key.contains('\0'), "NUL in key accepted");
                match member {
                    Value::Null => panic!("null member {key:?} accepted"),
                    Value::Array(items) if string_arrays.contains(&key.as_str()) => {
                        for item in items {
                            let s = item.as_str().expect("string array holds strings");
                            assert!(!s.contains('\0'), "NUL in string accepted");
                        }
                    }
                    Value::Array(items) => {
                        assert!(
                            ARRAY_MEMBERS.contains(&key.as_str()),
                            "array member {key:?} accepted"
                        );
                        for item in items {
                            assert!(item.is_object(), "non-object in {key:?} accepted");
                            assert_shape(item, string_arrays);
                        }
                    }
                    other => assert_shape(other, string_arrays),
                }
            }
        }
        Value::String(s) => assert!(!s.contains('\0'), "NUL in string accepted"),
        Value::Null => panic!("null accepted"),
        Value::Array(_) => panic!("array accepted outside an array member"),
        Value::Bool(_) | Value::Number(_) => {}
    }
}
