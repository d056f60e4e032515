//! Properties of the query-string parser (`params::Query::parse`) and of path ids
//! (`params::GroupId::parse`, `params::is_object_id`).
//!
//! Shared by the `query_params` fuzz target and `crates/dbcerts-server/tests/parser_properties.rs`.

use dbcerts_server::params::{Accepts, GroupId, Query, is_object_id};

/// Everything this module checks, on one fuzz input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_query(&text);
    check_group_id(&text);
    // The first 12 bytes, hex-encoded, always make a valid id.
    if data.len() >= 12 {
        let hex: String = data[..12].iter().map(|b| format!("{b:02x}")).collect();
        assert!(is_object_id(&hex));
        assert_eq!(
            GroupId::parse(&hex).map(|g| g.as_str().to_owned()).ok(),
            Some(hex)
        );
    }
}

fn defaults() -> Query {
    Query::parse(None, Accepts::List).expect("no query is valid")
}

/// `Query::parse` on an arbitrary raw query string, for each kind of operation.
pub fn check_query(raw: &str) {
    let list = Query::parse(Some(raw), Accepts::List);
    let entity = Query::parse(Some(raw), Accepts::Entity);
    let envelope_only = Query::parse(Some(raw), Accepts::EnvelopeOnly);
    for result in [&list, &entity, &envelope_only] {
        if let Err(e) = result {
            assert_eq!(e.code, "INVALID_QUERY_PARAMETER");
            assert_eq!(e.status.as_u16(), 400);
        }
    }
    // An operation ignores the parameters it does not take, so it accepts whatever an operation
    // taking more parameters accepts, and reads the shared ones alike.
    if let Ok(q) = &list {
        let e = entity.as_ref().expect("List accepted, Entity refused");
        assert_eq!(e.format, q.format);
    }
    if let Ok(q) = &entity {
        let e = envelope_only
            .as_ref()
            .expect("Entity accepted, EnvelopeOnly refused");
        assert_eq!(e.format.envelope, q.format.envelope);
        assert_eq!(q.paging, defaults().paging, "Entity takes no paging");
    }
    if let Ok(q) = &envelope_only {
        assert!(!q.format.pretty, "EnvelopeOnly takes no pretty");
        assert_eq!(q.paging, defaults().paging);
    }

    if let Ok(q) = &list {
        check_accepted_list(raw, q);
    }

    // Unknown parameters around the query change nothing.
    for padded in [format!("{raw}&zzUnknown=1"), format!("zzUnknown=%ZZ&{raw}")] {
        for (accepts, before) in [
            (Accepts::List, &list),
            (Accepts::Entity, &entity),
            (Accepts::EnvelopeOnly, &envelope_only),
        ] {
            let after = Query::parse(Some(&padded), accepts);
            assert_eq!(
                after.as_ref().ok(),
                before.as_ref().ok(),
                "{padded:?} vs {raw:?}"
            );
        }
    }
}

/// An accepted `List` query: values in range, equal to what was sent, and stable when
/// rendered back; repeating any known parameter is refused.
fn check_accepted_list(raw: &str, q: &Query) {
    let p = q.paging;
    assert!(
        (1..=500).contains(&p.items_per_page),
        "itemsPerPage {} accepted",
        p.items_per_page
    );
    assert!(p.page_num >= 1, "pageNum 0 accepted");
    let page = p.page();
    assert_eq!(page.limit, p.items_per_page);
    assert_eq!(
        page.offset,
        u64::from(p.page_num - 1) * u64::from(p.items_per_page)
    );

    let pairs: Vec<(String, String)> = if raw.is_empty() {
        Vec::new()
    } else {
        serde_urlencoded::from_str(raw).expect("accepted query decodes")
    };
    let mut known = None;
    for (name, value) in &pairs {
        let matches = match name.as_str() {
            "envelope" => value == &q.format.envelope.to_string(),
            "pretty" => value == &q.format.pretty.to_string(),
            "includeCount" => value == &p.include_count.to_string(),
            "itemsPerPage" => value.parse::<u32>() == Ok(p.items_per_page),
            "pageNum" => value.parse::<u32>() == Ok(p.page_num),
            _ => continue,
        };
        assert!(matches, "{name}={value:?} read as {q:?}");
        assert!(
            value.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{name}={value:?} accepted"
        );
        known.get_or_insert((name.clone(), value.clone()));
    }

    let rendered = format!(
        "envelope={}&pretty={}&includeCount={}&itemsPerPage={}&pageNum={}",
        q.format.envelope, q.format.pretty, p.include_count, p.items_per_page, p.page_num
    );
    let reparsed = Query::parse(Some(&rendered), Accepts::List).expect("rendered query accepted");
    assert_eq!(reparsed.format, q.format);
    let numbers =
        |p: &dbcerts_server::params::Paging| (p.items_per_page, p.page_num, p.include_count);
    assert_eq!(numbers(&reparsed.paging), numbers(&p));

    // The links echo exactly the boolean list parameters given, in the order given.
    let given: Vec<(String, String)> = pairs
        .iter()
        .filter(|(name, _)| matches!(name.as_str(), "envelope" | "pretty" | "includeCount"))
        .cloned()
        .collect();
    let recorded: Vec<(String, String)> = p
        .given
        .iter()
        .map(|(name, value)| (name.to_owned(), value.to_string()))
        .collect();
    assert_eq!(recorded, given, "{raw:?}");

    if let Some((name, value)) = known {
        let twice = format!("{raw}&{name}={value}");
        let e = Query::parse(Some(&twice), Accepts::List).expect_err("a repeated parameter");
        assert_eq!(e.code, "INVALID_QUERY_PARAMETER");
    }
}

/// `GroupId::parse` accepts exactly 24 lowercase hex digits, and keeps them as given.
pub fn check_group_id(s: &str) {
    let want = s.len() == 24 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    assert_eq!(is_object_id(s), want, "{s:?}");
    match GroupId::parse(s) {
        Ok(id) => {
            assert!(want, "{s:?} accepted");
            assert_eq!(id.as_str(), s);
        }
        Err(e) => {
            assert!(!want, "{s:?} refused");
            assert_eq!(e.code, "INVALID_GROUP_ID");
            assert_eq!(e.status.as_u16(), 404);
        }
    }
}
