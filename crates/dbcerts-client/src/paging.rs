//! Atlas list pages (`{links, results, totalCount}`), the paging query parameters, and a pager
//! that follows `pageNum`/`itemsPerPage` until every item has been read.

use std::future::Future;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// Atlas's default page size.
pub const DEFAULT_ITEMS_PER_PAGE: u32 = 100;
/// The largest page Atlas serves.
pub const MAX_ITEMS_PER_PAGE: u32 = 500;

/// A `{href, rel}` link, as Atlas attaches them to entities and pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// An absolute URL.
    pub href: String,
    /// `self`, `next`, `previous`, or a URL naming the relation.
    pub rel: String,
}

/// Paging parameters of a list operation; `None` leaves the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// 1-based page number (server default 1).
    pub page_num: Option<u32>,
    /// Items per page, 1 to 500 (server default 100).
    pub items_per_page: Option<u32>,
    /// Whether the server counts the items (server default true).
    pub include_count: Option<bool>,
}

impl ListOptions {
    /// Page `page_num` of pages of `items_per_page` items, counted.
    pub fn page(page_num: u32, items_per_page: u32) -> ListOptions {
        ListOptions {
            page_num: Some(page_num),
            items_per_page: Some(items_per_page),
            include_count: Some(true),
        }
    }

    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(c) = self.include_count {
            q.push(("includeCount", c.to_string()));
        }
        if let Some(p) = self.page_num {
            q.push(("pageNum", p.to_string()));
        }
        if let Some(n) = self.items_per_page {
            q.push(("itemsPerPage", n.to_string()));
        }
        q
    }
}

/// One page of a list. Serializes back to Atlas's shape (what `atlas … list -o json` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// `self`, and `next`/`previous` where those pages exist.
    #[serde(default)]
    pub links: Vec<Link>,
    /// The items of this page.
    pub results: Vec<T>,
    /// How many items the whole list has (an estimate; 0 with `includeCount=false`).
    #[serde(default)]
    pub total_count: u64,
}

impl<T> Page<T> {
    /// Whether the server linked a next page.
    pub fn has_next(&self) -> bool {
        self.links.iter().any(|l| l.rel == "next")
    }
}

/// Reads a list page by page: `fetch` is called with [`ListOptions`] for pages 1, 2, … until
/// `totalCount` items have been read, or a page comes back empty, or (when the server does not
/// count) a page is short and links no next page.
pub struct Pages<T, F> {
    fetch: F,
    items_per_page: u32,
    next_page: Option<u32>,
    fetched: u64,
    _items: PhantomData<fn() -> T>,
}

impl<T, F, Fut> Pages<T, F>
where
    F: FnMut(ListOptions) -> Fut,
    Fut: Future<Output = Result<Page<T>, ClientError>>,
{
    /// A pager asking for `items_per_page` items a page (clamped to 1..=500).
    pub fn new(items_per_page: u32, fetch: F) -> Pages<T, F> {
        Pages {
            fetch,
            items_per_page: items_per_page.clamp(1, MAX_ITEMS_PER_PAGE),
            next_page: Some(1),
            fetched: 0,
            _items: PhantomData,
        }
    }

    /// The next page's items, or `None` after the last page.
    pub async fn next_page(&mut self) -> Option<Result<Vec<T>, ClientError>> {
        let page_num = self.next_page?;
        let page = match (self.fetch)(ListOptions::page(page_num, self.items_per_page)).await {
            Ok(p) => p,
            Err(e) => {
                self.next_page = None;
                return Some(Err(e));
            }
        };
        let n = page.results.len() as u64;
        self.fetched += n;
        let more = if n == 0 {
            false
        } else if page.total_count > 0 {
            self.fetched < page.total_count
        } else {
            page.has_next() || (page.links.is_empty() && n >= u64::from(self.items_per_page))
        };
        self.next_page = if more { page_num.checked_add(1) } else { None };
        Some(Ok(page.results))
    }

    /// Every remaining item, in order.
    pub async fn collect_all(mut self) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await {
            all.extend(page?);
        }
        Ok(all)
    }
}

/// Every item of a list, read [`DEFAULT_ITEMS_PER_PAGE`] at a time with `fetch`.
///
/// ```no_run
/// # async fn f(client: &dbcerts_client::Client) -> Result<(), dbcerts_client::ClientError> {
/// let projects = dbcerts_client::list_all(|o| client.list_groups(o)).await?;
/// # Ok(()) }
/// ```
pub async fn list_all<T, F, Fut>(fetch: F) -> Result<Vec<T>, ClientError>
where
    F: FnMut(ListOptions) -> Fut,
    Fut: Future<Output = Result<Page<T>, ClientError>>,
{
    Pages::new(DEFAULT_ITEMS_PER_PAGE, fetch)
        .collect_all()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(results: Vec<u32>, total: u64, next: bool) -> Page<u32> {
        let mut links = vec![Link {
            href: "self".into(),
            rel: "self".into(),
        }];
        if next {
            links.push(Link {
                href: "next".into(),
                rel: "next".into(),
            });
        }
        Page {
            links,
            results,
            total_count: total,
        }
    }

    /// A list of `len` items served in pages, counted or not.
    async fn serve(len: u32, counted: bool, per_page: u32) -> (Vec<u32>, Vec<ListOptions>) {
        let items: Vec<u32> = (1..=len).collect();
        let mut asked = Vec::new();
        let got = Pages::new(per_page, |o: ListOptions| {
            asked.push(o);
            let n = o.items_per_page.unwrap() as usize;
            let start = (o.page_num.unwrap() as usize - 1) * n;
            let slice: Vec<u32> = items.iter().skip(start).take(n).copied().collect();
            let next = start + n < items.len();
            let total = if counted { items.len() as u64 } else { 0 };
            std::future::ready(Ok(page(slice, total, next)))
        })
        .collect_all()
        .await
        .unwrap();
        (got, asked)
    }

    #[tokio::test]
    async fn follows_pages_until_the_total() {
        let (got, asked) = serve(7, true, 3).await;
        assert_eq!(got, (1..=7).collect::<Vec<_>>());
        assert_eq!(asked.len(), 3);
        assert_eq!(asked[2], ListOptions::page(3, 3));
        let (got, asked) = serve(6, true, 3).await;
        assert_eq!(got.len(), 6);
        assert_eq!(asked.len(), 2, "no extra request after the last full page");
        let (got, asked) = serve(0, true, 3).await;
        assert!(got.is_empty());
        assert_eq!(asked.len(), 1);
    }

    #[tokio::test]
    async fn uncounted_lists_follow_next_links() {
        let (got, asked) = serve(7, false, 3).await;
        assert_eq!(got.len(), 7);
        assert_eq!(asked.len(), 3);
    }

    #[tokio::test]
    async fn errors_end_the_pages() {
        let mut pages = Pages::new(10, |_: ListOptions| {
            std::future::ready(Err::<Page<u32>, _>(ClientError::InvalidInput("x".into())))
        });
        assert!(matches!(pages.next_page().await, Some(Err(_))));
        assert!(pages.next_page().await.is_none());
    }

    #[test]
    fn query_parameters() {
        assert!(ListOptions::default().query().is_empty());
        let q = ListOptions::page(2, 50).query();
        assert_eq!(
            q,
            vec![
                ("includeCount", "true".to_owned()),
                ("pageNum", "2".to_owned()),
                ("itemsPerPage", "50".to_owned())
            ]
        );
    }
}
