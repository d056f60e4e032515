//! Absolute links, as Atlas emits them: `{href, rel}` with the scheme and host of the public URL
//! (or the request's `Host`), the API prefix of the version the request came in on, and, for
//! lists, the effective paging query.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;

use crate::AppState;
use crate::error::AtlasError;
use crate::format::ApiVersion;
use crate::params::Paging;

/// Characters escaped inside one path segment. `$` stays literal (`/databaseUsers/$external/..`).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Link {
    pub href: String,
    pub rel: String,
}

/// The absolute URL prefix of the API a request came in on, e.g.
/// `http://127.0.0.1:8080/api/atlas/v2`.
#[derive(Debug, Clone)]
pub struct Base {
    pub api: ApiVersion,
    root: String,
}

impl Base {
    pub fn new(root: &str, api: ApiVersion) -> Base {
        Base {
            api,
            root: format!("{}{}", root.trim_end_matches('/'), api.prefix()),
        }
    }

    /// The same scheme and host under another prefix (the extension's `/api/dbcerts/v1`).
    pub fn rebased(&self, prefix: &str) -> Base {
        let host = self
            .root
            .strip_suffix(self.api.prefix())
            .unwrap_or(&self.root);
        Base {
            api: self.api,
            root: format!("{host}{prefix}"),
        }
    }

    /// `root + /segment/segment...`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> String {
        let mut out = self.root.clone();
        for s in segments {
            out.push('/');
            out.extend(utf8_percent_encode(s, SEGMENT));
        }
        out
    }

    pub fn self_link(&self, segments: &[&str]) -> Vec<Link> {
        vec![Link {
            href: self.url(segments),
            rel: "self".into(),
        }]
    }

    /// `self`, and `next`/`previous` where those pages exist. The query echoes the list
    /// parameters the request gave (`envelope`, `pretty`, `includeCount`, in its order) and
    /// then the paging, as Atlas does: `self` ends `pageNum, itemsPerPage`, the others
    /// `itemsPerPage, pageNum`. On v2 `includeCount` is always there (its effective value, after
    /// the given ones when the request did not give it), as observed; v1.0 echoes only what was
    /// given, as the legacy documentation's example shows (docs/COMPATIBILITY.md).
    pub fn list_links(&self, segments: &[&str], paging: &Paging, total: u64) -> Vec<Link> {
        let url = self.url(segments);
        let mut echoed: String = paging
            .given
            .iter()
            .map(|(name, value)| format!("{name}={value}&"))
            .collect();
        if self.api == ApiVersion::V2 && !paging.given.has("includeCount") {
            echoed.push_str(&format!("includeCount={}&", paging.include_count));
        }
        let n = paging.items_per_page;
        let p = paging.page_num;
        let mut links = vec![Link {
            href: format!("{url}?{echoed}pageNum={p}&itemsPerPage={n}"),
            rel: "self".into(),
        }];
        let other = |page: u32, rel: &str| Link {
            href: format!("{url}?{echoed}itemsPerPage={n}&pageNum={page}"),
            rel: rel.into(),
        };
        if u64::from(p) * u64::from(n) < total {
            links.push(other(p + 1, "next"));
        }
        if p > 1 {
            links.push(other(p - 1, "previous"));
        }
        links
    }
}

impl Base {
    /// Answers with `value` in the media type of the API version this base belongs to.
    pub fn respond<T: Serialize>(
        &self,
        status: axum::http::StatusCode,
        value: &T,
        shape: crate::format::Shape,
        format: crate::format::Format,
    ) -> axum::response::Response {
        crate::format::json_response(status, value, shape, format, self.api)
    }

    /// [`Base::respond`] through [`crate::format::json_response_fields_sorted`].
    pub fn respond_fields_sorted<T: Serialize>(
        &self,
        status: axum::http::StatusCode,
        value: &T,
        shape: crate::format::Shape,
        format: crate::format::Format,
    ) -> axum::response::Response {
        crate::format::json_response_fields_sorted(status, value, shape, format, self.api)
    }
}

impl FromRequestParts<AppState> for Base {
    type Rejection = AtlasError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let api = *parts
            .extensions
            .get::<ApiVersion>()
            .ok_or_else(|| AtlasError::unexpected("route is missing its API version layer"))?;
        if let Some(public) = &state.inner.config.public_url {
            return Ok(Base::new(public, api));
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        let scheme = if state.inner.config.tls {
            "https"
        } else {
            "http"
        };
        Ok(Base::new(&format!("{scheme}://{host}"), api))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Accepts, Query};

    #[test]
    fn list_links_follow_atlas_order() {
        let base = Base::new("http://localhost:8080/", ApiVersion::V2);
        let paging = Paging {
            items_per_page: 100,
            page_num: 1,
            include_count: true,
            given: Default::default(),
        };
        let links = base.list_links(
            &[
                "groups",
                "b0123456789abcdef0123456",
                "databaseUsers",
                "user389",
                "certs",
            ],
            &paging,
            2,
        );
        assert_eq!(links.len(), 1);
        assert_eq!(
            links[0].href,
            "http://localhost:8080/api/atlas/v2/groups/b0123456789abcdef0123456/databaseUsers/user389/certs?includeCount=true&pageNum=1&itemsPerPage=100"
        );
        let paging = Paging {
            items_per_page: 1,
            page_num: 2,
            include_count: false,
            given: Default::default(),
        };
        let links = base.list_links(&["groups"], &paging, 3);
        let rels: Vec<_> = links.iter().map(|l| l.rel.as_str()).collect();
        assert_eq!(rels, ["self", "next", "previous"]);
        assert!(
            links[1]
                .href
                .ends_with("/groups?includeCount=false&itemsPerPage=1&pageNum=3")
        );
    }

    #[test]
    fn links_echo_the_given_parameters_as_each_version_does() {
        let certs = ["groups", "b0123456789abcdef0123456", "certs"];
        let pretty = Query::parse(Some("pretty=true"), Accepts::List)
            .unwrap()
            .paging;
        // The legacy documentation's example: `?pretty=true&pageNum=1&itemsPerPage=100`.
        let v1 = Base::new("http://h", ApiVersion::V1).list_links(&certs, &pretty, 1);
        assert!(
            v1[0]
                .href
                .ends_with("/certs?pretty=true&pageNum=1&itemsPerPage=100")
        );
        let v2 = Base::new("http://h", ApiVersion::V2).list_links(&certs, &pretty, 1);
        assert!(
            v2[0]
                .href
                .ends_with("/certs?pretty=true&includeCount=true&pageNum=1&itemsPerPage=100")
        );
        let q = "includeCount=false&itemsPerPage=1&envelope=true&pageNum=2";
        let paging = Query::parse(Some(q), Accepts::List).unwrap().paging;
        for api in [ApiVersion::V1, ApiVersion::V2] {
            let links = Base::new("http://h", api).list_links(&certs, &paging, 5);
            let tails: Vec<_> = links
                .iter()
                .map(|l| l.href.split_once('?').unwrap().1)
                .collect();
            assert_eq!(
                tails,
                [
                    "includeCount=false&envelope=true&pageNum=2&itemsPerPage=1",
                    "includeCount=false&envelope=true&itemsPerPage=1&pageNum=3",
                    "includeCount=false&envelope=true&itemsPerPage=1&pageNum=1",
                ]
            );
        }
        let none = Query::parse(None, Accepts::List).unwrap().paging;
        let v1 = Base::new("http://h", ApiVersion::V1).list_links(&certs, &none, 1);
        assert!(v1[0].href.ends_with("/certs?pageNum=1&itemsPerPage=100"));
    }

    #[test]
    fn segments_are_escaped_but_dollar_is_not() {
        let base = Base::new("http://h", ApiVersion::V1);
        assert_eq!(
            base.url(&["databaseUsers", "$external", "CN=a b/c"]),
            "http://h/api/atlas/v1.0/databaseUsers/$external/CN=a%20b%2Fc"
        );
    }
}

/// A page of a list, as every Atlas list returns it: `links`, `results`, `totalCount`.
/// With `includeCount=false`, `totalCount` is 0, as observed on Atlas lists.
// Its fields, and `Link`'s, stay in their JSON names' byte order (`Base::respond_fields_sorted`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    links: Vec<Link>,
    results: Vec<T>,
    /// The number of items in the whole list; 0 with `includeCount=false`.
    #[serde(rename = "totalCount")]
    #[schema(value_type = i64, minimum = 0)]
    total_count: u64,
}

impl<T> Paginated<T> {
    pub fn new(
        base: &Base,
        segments: &[&str],
        paging: &Paging,
        total: u64,
        results: Vec<T>,
    ) -> Self {
        Paginated {
            links: base.list_links(segments, paging, total),
            results,
            total_count: if paging.include_count { total } else { 0 },
        }
    }
}
