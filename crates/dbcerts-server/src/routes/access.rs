//! What the API-key and service-account operations share: loading an organization for a
//! caller, the gate to managing a principal, checking role names, IP access-list entries, and
//! JSON array bodies.

use dbcerts_store::{AccessListEntry, Org};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::auth::roles::{ORG_ROLE_NAMES, PROJECT_ROLE_NAMES};
use crate::auth::{Caller, Holdings, OrgNeed, Via};
use crate::body::parse_json_with;
use crate::error::AtlasError;
use crate::params::is_object_id;

/// Loads organization `raw_id` for a caller who needs `need` in it. An organization the caller
/// does not belong to answers exactly like one that does not exist.
pub async fn load_org(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    need: OrgNeed,
) -> Result<Org, AtlasError> {
    if !is_object_id(raw_id) || !caller.in_org(raw_id) {
        return Err(AtlasError::org_not_found(raw_id));
    }
    let org = state
        .inner
        .store
        .get_org(raw_id)
        .await?
        .ok_or_else(|| AtlasError::org_not_found(raw_id))?;
    caller.require_org(&org.id, need)?;
    Ok(org)
}

/// The gate every path that reveals or alters an existing principal's credentials passes
/// (`auth::authority`): loads the project grants of `principal_id` (of organization `org_id`,
/// holding `org_roles`) and fails with 403 `ACCESS_FORBIDDEN`, before anything changes, unless
/// `caller` may manage it through a path addressed `via`. Returns the principal's holdings, to
/// check a change of its roles against ([`Caller::may_manage`] on the result).
pub async fn manage(
    state: &AppState,
    caller: &Caller,
    via: Via<'_>,
    principal_id: &str,
    org_id: &str,
    org_roles: &[String],
) -> Result<Holdings, AtlasError> {
    let grants = state.inner.store.list_grants(principal_id).await?;
    let held = Holdings::new(org_id, org_roles.to_vec(), grants);
    caller.may_manage(via, &held)?;
    Ok(held)
}

/// Checks organization role names against the spec's enum; `min_one` for creates.
pub fn org_roles(roles: Vec<String>, min_one: bool) -> Result<Vec<String>, AtlasError> {
    check_roles(roles, &ORG_ROLE_NAMES, min_one)
}

/// Checks project role names against the Atlas project roles.
pub fn project_roles(roles: Vec<String>, min_one: bool) -> Result<Vec<String>, AtlasError> {
    check_roles(roles, &PROJECT_ROLE_NAMES, min_one)
}

fn check_roles(
    roles: Vec<String>,
    known: &[&str],
    min_one: bool,
) -> Result<Vec<String>, AtlasError> {
    if min_one && roles.is_empty() {
        return Err(AtlasError::missing_attribute("roles"));
    }
    if let Some(bad) = roles.iter().find(|r| !known.contains(&r.as_str())) {
        return Err(AtlasError::invalid_enum_value(bad));
    }
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for r in roles {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Parses a body that must be a JSON array of objects, each parsed like an object body whose
/// `string_arrays` members are arrays of strings.
pub fn parse_json_array<T: DeserializeOwned>(
    bytes: &[u8],
    string_arrays: &[&str],
) -> Result<Vec<T>, AtlasError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| AtlasError::malformed_json())?;
    let serde_json::Value::Array(items) = value else {
        return Err(AtlasError::invalid_json());
    };
    items
        .iter()
        .map(|item| parse_json_with(item.to_string().as_bytes(), string_arrays))
        .collect()
}

/// One access-list entry as requested: exactly one of `ipAddress` and `cidrBlock`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryIn {
    pub ip_address: Option<String>,
    pub cidr_block: Option<String>,
    // Read-only fields a client may echo back from a GET.
    #[serde(rename = "created")]
    _created: Option<crate::body::ReadOnly>,
    #[serde(rename = "createdAt")]
    _created_at: Option<crate::body::ReadOnly>,
    #[serde(rename = "lastUsed")]
    _last_used: Option<crate::body::ReadOnly>,
    #[serde(rename = "lastUsedAt")]
    _last_used_at: Option<crate::body::ReadOnly>,
    #[serde(rename = "lastUsedAddress")]
    _last_used_address: Option<crate::body::ReadOnly>,
    #[serde(rename = "count")]
    _count: Option<crate::body::ReadOnly>,
    #[serde(rename = "requestCount")]
    _request_count: Option<crate::body::ReadOnly>,
    #[serde(rename = "links")]
    _links: Option<crate::body::ReadOnly>,
}

/// The canonical CIDR block of an address (`/32` or `/128`) or a block (host bits cleared).
pub fn canonical_cidr(text: &str) -> Option<String> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some(ipnet::IpNet::from(crate::auth::canonical_ip(ip)).to_string());
    }
    text.parse::<ipnet::IpNet>()
        .ok()
        .map(|n| n.trunc().to_string())
}

/// Turns requested entries into canonical rows for `principal_id`.
pub fn entries(
    principal_id: &str,
    input: Vec<EntryIn>,
    max: usize,
) -> Result<Vec<AccessListEntry>, AtlasError> {
    if input.is_empty() {
        return Err(AtlasError::missing_attribute("ipAddress"));
    }
    if input.len() > max {
        return Err(AtlasError::validation_error(&format!(
            "at most {max} access list entries may be added at once"
        )));
    }
    let now = chrono::Utc::now().timestamp();
    input
        .into_iter()
        .map(|e| {
            let (attr, text) = match (e.ip_address, e.cidr_block) {
                (Some(ip), None) => ("ipAddress", ip),
                (None, Some(cidr)) => ("cidrBlock", cidr),
                (None, None) => return Err(AtlasError::missing_attribute("ipAddress")),
                (Some(_), Some(_)) => return Err(AtlasError::invalid_attribute("cidrBlock")),
            };
            let parsed = if attr == "ipAddress" {
                text.parse::<std::net::IpAddr>()
                    .ok()
                    .and_then(|_| canonical_cidr(&text))
            } else {
                text.contains('/').then(|| canonical_cidr(&text)).flatten()
            };
            let cidr = parsed.ok_or_else(|| AtlasError::invalid_attribute(attr))?;
            Ok(AccessListEntry {
                principal_id: principal_id.to_owned(),
                cidr_block: cidr,
                created: now,
            })
        })
        .collect()
}

/// The single address of a `/32` or `/128` block, as Atlas reports it in `ipAddress`.
pub fn single_address(cidr: &str) -> Option<String> {
    let net: ipnet::IpNet = cidr.parse().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr().to_string())
}

/// Whether removing `entry` would cut the caller off: the caller is the entry's owner and its
/// own address is in the block. Atlas refuses that.
pub fn removes_own_address(caller: &Caller, principal_id: &str, cidr: &str) -> bool {
    caller.principal_id() == principal_id
        && caller.ip.is_some_and(|ip| {
            cidr.parse::<ipnet::IpNet>()
                .is_ok_and(|net| net.contains(&ip))
        })
}

/// The stored entry that `raw` (an address or a CIDR block, `%2F`-decoded) names.
pub async fn find_entry(
    state: &AppState,
    principal_id: &str,
    raw: &str,
) -> Result<AccessListEntry, AtlasError> {
    let not_found = || AtlasError::resource_not_found(&format!("access list entry {raw}"));
    let cidr = canonical_cidr(raw).ok_or_else(not_found)?;
    state
        .inner
        .store
        .list_access_list(principal_id)
        .await?
        .into_iter()
        .find(|e| e.cidr_block == cidr)
        .ok_or_else(not_found)
}

/// Parses an access-list POST body (at most `max` entries), adds the entries to
/// `principal_id`'s list, and returns the whole list.
pub async fn add_entries(
    state: &AppState,
    principal_id: &str,
    bytes: &[u8],
    max: usize,
) -> Result<Vec<AccessListEntry>, AtlasError> {
    let input: Vec<EntryIn> = parse_json_array(bytes, &[])?;
    let rows = entries(principal_id, input, max)?;
    state.inner.store.add_access_list_entries(&rows).await?;
    Ok(state.inner.store.list_access_list(principal_id).await?)
}

/// Removes the entry `raw` names from `principal_id`'s list, unless it admits the caller's
/// own request (Atlas refuses that).
pub async fn remove_entry(
    state: &AppState,
    caller: &Caller,
    principal_id: &str,
    raw: &str,
) -> Result<(), AtlasError> {
    let entry = find_entry(state, principal_id, raw).await?;
    if removes_own_address(caller, principal_id, &entry.cidr_block) {
        return Err(AtlasError::validation_error(
            "the access list entry that admits the requesting address cannot be removed by the caller it admits",
        ));
    }
    state
        .inner
        .store
        .delete_access_list_entry(principal_id, &entry.cidr_block)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks_are_canonical() {
        assert_eq!(canonical_cidr("192.0.2.7").as_deref(), Some("192.0.2.7/32"));
        assert_eq!(
            canonical_cidr("192.0.2.7/24").as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(
            canonical_cidr("2001:db8::1").as_deref(),
            Some("2001:db8::1/128")
        );
        assert_eq!(
            canonical_cidr("::ffff:10.0.0.1").as_deref(),
            Some("10.0.0.1/32")
        );
        assert_eq!(canonical_cidr("10.0.0.0/33"), None);
        assert_eq!(canonical_cidr("example.com"), None);
        assert_eq!(single_address("192.0.2.7/32").as_deref(), Some("192.0.2.7"));
        assert_eq!(single_address("192.0.2.0/24"), None);
    }

    #[test]
    fn an_entry_is_an_address_or_a_block_never_both() {
        let e = |ip: Option<&str>, cidr: Option<&str>| EntryIn {
            ip_address: ip.map(str::to_owned),
            cidr_block: cidr.map(str::to_owned),
            _created: None,
            _created_at: None,
            _last_used: None,
            _last_used_at: None,
            _last_used_address: None,
            _count: None,
            _request_count: None,
            _links: None,
        };
        let ok = entries(
            "k",
            vec![e(Some("127.0.0.2"), None), e(None, Some("10.0.0.0/8"))],
            10,
        )
        .unwrap();
        assert_eq!(ok[0].cidr_block, "127.0.0.2/32");
        assert_eq!(ok[1].cidr_block, "10.0.0.0/8");
        let code = |v| entries("k", v, 10).unwrap_err().code;
        assert_eq!(
            code(vec![e(Some("1.2.3.4"), Some("1.2.3.0/24"))]),
            "INVALID_ATTRIBUTE"
        );
        assert_eq!(code(vec![e(Some("1.2.3.0/24"), None)]), "INVALID_ATTRIBUTE");
        assert_eq!(code(vec![e(None, Some("1.2.3.4"))]), "INVALID_ATTRIBUTE");
        assert_eq!(code(vec![e(None, None)]), "MISSING_ATTRIBUTE");
        assert_eq!(code(vec![]), "MISSING_ATTRIBUTE");
    }

    #[test]
    fn role_names_are_checked_and_deduplicated() {
        assert_eq!(
            org_roles(vec!["ORG_OWNER".into(), "ORG_OWNER".into()], true).unwrap(),
            vec!["ORG_OWNER".to_owned()]
        );
        assert_eq!(
            org_roles(vec![], true).unwrap_err().code,
            "MISSING_ATTRIBUTE"
        );
        assert_eq!(
            org_roles(vec!["GROUP_OWNER".into()], true)
                .unwrap_err()
                .code,
            "INVALID_ENUM_VALUE"
        );
        assert!(project_roles(vec!["GROUP_READ_ONLY".into()], true).is_ok());
        assert_eq!(
            project_roles(vec!["ORG_OWNER".into()], true)
                .unwrap_err()
                .code,
            "INVALID_ENUM_VALUE"
        );
    }
}
