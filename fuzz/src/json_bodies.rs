//! Properties of the JSON body parser (`body::parse_json`, `body::parse_json_with`) with
//! `serde_json::Value` and with the request body types the routes use.
//!
//! The routes' request structs are private to `dbcerts_server::routes`, so the ones below are
//! copies of them, field for field and attribute for attribute (certs.rs `UserCertIn`,
//! database_users.rs `UserIn`, projects.rs `GroupIn`, user_security.rs `UserSecurityIn`,
//! api_keys.rs `KeyIn`, service_accounts.rs `AccountIn`, access.rs `EntryIn`). Keep them in step
//! when those change.
//!
//! Shared by the `json_bodies` fuzz target and `crates/dbcerts-server/tests/parser_properties.rs`.
#![allow(dead_code)]

use dbcerts_server::body::{ReadOnly, parse_json_with};
use dbcerts_server::error::AtlasError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

// ---- copies of the routes' request bodies ----

/// certs.rs
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCertIn {
    pub months_until_expiration: Option<i64>,
    #[serde(rename = "_id")]
    _id: Option<ReadOnly>,
    #[serde(rename = "createdAt")]
    _created_at: Option<ReadOnly>,
    #[serde(rename = "groupId")]
    _group_id: Option<ReadOnly>,
    #[serde(rename = "notAfter")]
    _not_after: Option<ReadOnly>,
    #[serde(rename = "subject")]
    _subject: Option<ReadOnly>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
}

/// database_users.rs
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleIn {
    pub collection_name: Option<String>,
    pub database_name: Option<String>,
    pub role_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ScopeIn {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LabelIn {
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIn {
    #[serde(rename = "awsIAMType")]
    pub aws_iam_type: Option<String>,
    pub database_name: Option<String>,
    pub delete_after_date: Option<String>,
    pub description: Option<String>,
    pub group_id: Option<String>,
    pub labels: Option<Vec<LabelIn>>,
    pub ldap_auth_type: Option<String>,
    pub oidc_auth_type: Option<String>,
    pub password: Option<String>,
    pub roles: Option<Vec<RoleIn>>,
    pub scopes: Option<Vec<ScopeIn>>,
    pub username: Option<String>,
    pub x509_type: Option<String>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
}

/// projects.rs
#[derive(Debug, Deserialize)]
pub struct ResourceTag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupIn {
    pub name: Option<String>,
    pub org_id: Option<String>,
    pub tags: Option<Vec<ResourceTag>>,
    pub with_default_alerts_settings: Option<bool>,
    #[serde(rename = "id")]
    _id: Option<ReadOnly>,
    #[serde(rename = "created")]
    _created: Option<ReadOnly>,
    #[serde(rename = "clusterCount")]
    _cluster_count: Option<ReadOnly>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
}

/// user_security.rs
#[derive(Debug, Deserialize)]
pub struct CustomerX509In {
    pub cas: Option<String>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
}

#[derive(Debug, Deserialize)]
pub struct MappingIn {
    #[serde(rename = "ldapQuery")]
    pub ldap_query: Option<String>,
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub substitution: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LdapIn {
    pub authentication_enabled: Option<bool>,
    pub authorization_enabled: Option<bool>,
    pub authz_query_template: Option<String>,
    pub bind_password: Option<String>,
    pub bind_username: Option<String>,
    pub ca_certificate: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<i32>,
    #[serde(rename = "userToDNMapping")]
    pub user_to_dn_mapping: Option<Vec<MappingIn>>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
}

#[derive(Debug, Deserialize)]
pub struct UserSecurityIn {
    #[serde(rename = "customerX509")]
    pub customer_x509: Option<CustomerX509In>,
    pub ldap: Option<LdapIn>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
}

/// api_keys.rs (parsed with `string_arrays = ["roles"]`)
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyIn {
    pub desc: Option<String>,
    pub roles: Option<Vec<String>>,
    #[serde(rename = "id")]
    _id: Option<ReadOnly>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
    #[serde(rename = "privateKey")]
    _private_key: Option<ReadOnly>,
    #[serde(rename = "publicKey")]
    _public_key: Option<ReadOnly>,
}

/// service_accounts.rs (parsed with `string_arrays = ["roles"]`)
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountIn {
    pub name: Option<String>,
    pub description: Option<String>,
    pub roles: Option<Vec<String>>,
    pub secret_expires_after_hours: Option<i64>,
}

/// access.rs, parsed per element of an array body (`parse_json_array`)
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryIn {
    pub ip_address: Option<String>,
    pub cidr_block: Option<String>,
    #[serde(rename = "created")]
    _created: Option<ReadOnly>,
    #[serde(rename = "createdAt")]
    _created_at: Option<ReadOnly>,
    #[serde(rename = "lastUsed")]
    _last_used: Option<ReadOnly>,
    #[serde(rename = "lastUsedAt")]
    _last_used_at: Option<ReadOnly>,
    #[serde(rename = "lastUsedAddress")]
    _last_used_address: Option<ReadOnly>,
    #[serde(rename = "count")]
    _count: Option<ReadOnly>,
    #[serde(rename = "requestCount")]
    _request_count: Option<ReadOnly>,
    #[serde(rename = "links")]
    _links: Option<ReadOnly>,
}

/// A copy of access.rs `parse_json_array`: an array body, each element parsed as an object body.
pub fn parse_json_array<T: DeserializeOwned>(
    bytes: &[u8],
    string_arrays: &[&str],
) -> Result<Vec<T>, AtlasError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| AtlasError::malformed_json())?;
    let Value::Array(items) = value else {
        return Err(AtlasError::invalid_json());
    };
    items
        .iter()
        .map(|item| parse_json_with(item.to_string().as_bytes(), string_arrays))
        .collect()
}

// ---- properties ----

/// The only members that may hold arrays (body.rs `ARRAY_MEMBERS`).
const ARRAY_MEMBERS: [&str; 6] = [
    "labels",
    "links",
    "roles",
    "scopes",
    "tags",
    "userToDNMapping",
];

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
