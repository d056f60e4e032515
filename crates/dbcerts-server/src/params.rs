//! Query parameters and path identifiers, parsed once into types that handlers trust, and the
//! extractors that hand a handler its parsed query ([`ListQuery`], [`EntityQuery`],
//! [`EnvelopeQuery`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::AtlasError;
use crate::format::Format;

/// A project id: 24 lowercase hex digits (`^([a-f0-9]{24})$`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId(String);

impl GroupId {
    /// Parses a path `groupId`. A malformed one is `INVALID_GROUP_ID` (404).
    pub fn parse(raw: &str) -> Result<GroupId, AtlasError> {
        if is_object_id(raw) {
            Ok(GroupId(raw.to_owned()))
        } else {
            Err(AtlasError::invalid_group_id(raw))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `s` has the shape of an Atlas id (24 lowercase hex digits).
pub fn is_object_id(s: &str) -> bool {
    s.len() == 24
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Pagination: `itemsPerPage` in 1..=500 (default 100), `pageNum` ≥ 1 (default 1), and
/// `includeCount` (default true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub items_per_page: u32,
    pub page_num: u32,
    pub include_count: bool,
    /// The other list parameters the request gave (`envelope`, `pretty`, `includeCount`), in
    /// its order, which a list's links echo (`links::Base::list_links`).
    pub given: Given,
}

/// Boolean query parameters as a request gave them, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Given([Option<(&'static str, bool)>; 3]);

impl Given {
    fn push(&mut self, name: &'static str, value: bool) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some((name, value));
        }
    }

    /// `(name, value)` pairs in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, bool)> + '_ {
        self.0.iter().flatten().copied()
    }

    pub fn has(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n == name)
    }
}

impl Paging {
    /// The items of this page, from a list held in memory (lists filtered by the caller's
    /// visibility, which the store cannot page).
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let page = self.page();
        let start = usize::try_from(page.offset)
            .unwrap_or(usize::MAX)
            .min(items.len());
        let end = start.saturating_add(page.limit as usize).min(items.len());
        &items[start..end]
    }

    pub fn page(&self) -> dbcerts_store::Page {
        dbcerts_store::Page {
            offset: u64::from(self.page_num - 1) * u64::from(self.items_per_page),
            limit: self.items_per_page,
        }
    }
}

/// The query parameters an operation accepts. Unknown parameters are ignored, as Atlas does;
/// a known one with a bad value, or given twice, is `INVALID_QUERY_PARAMETER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub format: Format,
    pub paging: Paging,
}

/// The `{groupId}` path parameter, for the OpenAPI document ([`GroupId::parse`] checks it; a
/// malformed one is 404).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct GroupPath {
    /// The project: 24 hexadecimal digits.
    #[param(pattern = "^([a-f0-9]{24})$")]
    group_id: String,
}

/// The `{orgId}` path parameter, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct OrgPath {
    /// The organization: 24 hexadecimal digits.
    #[param(pattern = "^([a-f0-9]{24})$")]
    org_id: String,
}

/// The query parameters of [`Accepts::Entity`], for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EntityParams {
    /// Wrap the body as `{"content": <body>, "status": <HTTP status>}` (errors are never wrapped).
    envelope: Option<bool>,
    /// Indent the JSON body the way Atlas does.
    pretty: Option<bool>,
}

/// The query parameters of [`Accepts::EnvelopeOnly`], for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EnvelopeParams {
    /// Wrap the body as `{"content": <body>, "status": <HTTP status>}` (errors are never wrapped).
    envelope: Option<bool>,
}

/// The query parameters of [`Accepts::List`], for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ListParams {
    /// Add `status` to the list object (errors are never wrapped).
    envelope: Option<bool>,
    /// Indent the JSON body the way Atlas does.
    pretty: Option<bool>,
    /// Count the whole list into `totalCount` (default true; 0 when false).
    include_count: Option<bool>,
    /// Items per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    items_per_page: Option<i32>,
    /// The page, from 1 (default 1); a 32-bit integer, as in Atlas.
    #[param(minimum = 1, maximum = 2147483647)]
    page_num: Option<i32>,
}

/// Which parameters an operation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// `envelope` and `pretty`.
    Entity,
    /// `envelope` only (`DELETE .../userSecurity/customerX509`).
    EnvelopeOnly,
    /// `envelope`, `pretty`, `includeCount`, `itemsPerPage`, `pageNum`.
    List,
}

impl Query {
    pub fn parse(raw: Option<&str>, accepts: Accepts) -> Result<Query, AtlasError> {
        let pairs: Vec<(String, String)> = match raw {
            None | Some("") => Vec::new(),
            Some(q) => {
                serde_urlencoded::from_str(q).map_err(|_| AtlasError::invalid_query_parameter(q))?
            }
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut query = Query {
            format: Format::default(),
            paging: Paging {
                items_per_page: 100,
                page_num: 1,
                include_count: true,
                given: Given::default(),
            },
        };
        for (name, value) in &pairs {
            let known = matches!(
                (name.as_str(), accepts),
                ("envelope", _)
                    | ("pretty", Accepts::Entity | Accepts::List)
                    | ("includeCount" | "itemsPerPage" | "pageNum", Accepts::List)
            );
            if !known {
                continue;
            }
            if seen.contains(&name.as_str()) {
                return Err(AtlasError::invalid_query_parameter(name));
            }
            seen.push(name);
            let bad = || AtlasError::invalid_query_parameter(name);
            // Only a list echoes its parameters (in its links); elsewhere paging stays default.
            let mut flag = |name: &'static str| {
                let value = parse_bool(value).ok_or_else(bad)?;
                if accepts == Accepts::List {
                    query.paging.given.push(name, value);
                }
                Ok::<bool, AtlasError>(value)
            };
            match name.as_str() {
                "envelope" => query.format.envelope = flag("envelope")?,
                "pretty" => query.format.pretty = flag("pretty")?,
                "includeCount" => query.paging.include_count = flag("includeCount")?,
                "itemsPerPage" => {
                    query.paging.items_per_page = parse_int(value)
                        .filter(|n| (1..=500).contains(n))
                        .ok_or_else(bad)?
                }
                "pageNum" => {
                    // A 32-bit integer, as Atlas (Java) reads it.
                    query.paging.page_num = parse_int(value)
                        .filter(|n| (1..=i32::MAX as u32).contains(n))
                        .ok_or_else(bad)?
                }
                _ => unreachable!("filtered above"),
            }
        }
        Ok(query)
    }
}

/// The query of a list operation ([`Accepts::List`]), parsed before the handler runs; a bad one
/// is answered `INVALID_QUERY_PARAMETER` without calling it.
///
/// The query extractors come after the caller and the path in a handler's arguments, so those
/// are checked first. A handler that also reads a body takes its query as
/// `Result<ListQuery, AtlasError>` and applies it once the body is read: a body over the limit
/// or too slow is answered first whatever the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery(pub Query);

/// The format of an entity operation ([`Accepts::Entity`]: `envelope`, `pretty`), parsed
/// before the handler runs (see [`ListQuery`] on order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityQuery(pub Format);

/// The format of an operation that takes `envelope` only ([`Accepts::EnvelopeOnly`]), parsed
/// before the handler runs (see [`ListQuery`] on order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeQuery(pub Format);

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = AtlasError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Query::parse(parts.uri.query(), Accepts::List).map(ListQuery)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for EntityQuery {
    type Rejection = AtlasError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Query::parse(parts.uri.query(), Accepts::Entity).map(|q| EntityQuery(q.format))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for EnvelopeQuery {
    type Rejection = AtlasError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Query::parse(parts.uri.query(), Accepts::EnvelopeOnly).map(|q| EnvelopeQuery(q.format))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn parse_int(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids() {
        assert!(GroupId::parse("5efda6aea3f2ed2e7dd6ce05").is_ok());
        for bad in [
            "5EFDA6AEA3F2ED2E7DD6CE05",
            "5efda6aea3f2ed2e7dd6ce0",
            "5efda6aea3f2ed2e7dd6ce0g",
            "",
            "../../etc",
        ] {
            let e = GroupId::parse(bad).unwrap_err();
            assert_eq!(e.code, "INVALID_GROUP_ID");
        }
    }

    #[test]
    fn in_memory_pages_match_store_pages() {
        let items: Vec<u32> = (1..=7).collect();
        let paging = |n, p| Paging {
            items_per_page: n,
            page_num: p,
            include_count: true,
            given: Given::default(),
        };
        assert_eq!(paging(3, 1).slice(&items), &[1, 2, 3]);
        assert_eq!(paging(3, 3).slice(&items), &[7]);
        assert!(paging(3, 4).slice(&items).is_empty());
        assert!(paging(500, u32::MAX).slice(&items).is_empty());
    }

    #[test]
    fn defaults_and_ranges() {
        let q = Query::parse(None, Accepts::List).unwrap();
        assert_eq!(
            q.paging,
            Paging {
                items_per_page: 100,
                page_num: 1,
                include_count: true,
                given: Given::default(),
            }
        );
        let q = Query::parse(
            Some("itemsPerPage=500&pageNum=3&includeCount=false&pretty=true&envelope=true"),
            Accepts::List,
        )
        .unwrap();
        assert_eq!(q.paging.page().offset, 1000);
        assert!(q.format.pretty && q.format.envelope && !q.paging.include_count);
        let given: Vec<_> = q.paging.given.iter().collect();
        assert_eq!(
            given,
            [
                ("includeCount", false),
                ("pretty", true),
                ("envelope", true)
            ]
        );
        for bad in [
            "itemsPerPage=0",
            "itemsPerPage=501",
            "pageNum=0",
            "pageNum=-1",
            "itemsPerPage=abc",
            "pretty=yes",
            "envelope=1",
            "pageNum=99999999999",
            "pageNum=1&pageNum=2",
            "itemsPerPage=%2B5",
        ] {
            let e = Query::parse(Some(bad), Accepts::List).unwrap_err();
            assert_eq!(e.code, "INVALID_QUERY_PARAMETER", "{bad}");
        }
    }

    #[test]
    fn parameters_outside_the_operation_are_ignored() {
        let q = Query::parse(
            Some("itemsPerPage=0&pretty=maybe&other=1"),
            Accepts::EnvelopeOnly,
        )
        .unwrap();
        assert_eq!(q.format, Format::default());
    }
}
