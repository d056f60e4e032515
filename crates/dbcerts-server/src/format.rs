//! Wire formatting shared by every operation: API version and media types, `pretty` (Jackson's
//! default pretty printer, which Atlas uses), `envelope`, and Atlas's date format.

use std::io;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// Which URL family a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/api/atlas/v1.0`: unversioned, `application/json`.
    V1,
    /// `/api/atlas/v2`: media-type versioned; every operation here resolves to 2023-01-01.
    V2,
}

pub const V2_CONTENT_TYPE: &str = "application/vnd.atlas.2023-01-01+json;charset=utf-8";
pub const V1_CONTENT_TYPE: &str = "application/json";

impl ApiVersion {
    pub fn prefix(self) -> &'static str {
        match self {
            ApiVersion::V1 => "/api/atlas/v1.0",
            ApiVersion::V2 => "/api/atlas/v2",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ApiVersion::V1 => V1_CONTENT_TYPE,
            ApiVersion::V2 => V2_CONTENT_TYPE,
        }
    }
}

/// `pretty` and `envelope`, as requested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format {
    pub pretty: bool,
    pub envelope: bool,
}

/// Whether a body is one entity or a list (they are enveloped differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Entity,
    List,
}

/// Formats a Unix time the way Atlas does: RFC 3339, UTC, no fractional seconds.
///
/// A list page formats two of these per certificate, so the digits are written directly from
/// the date's fields: chrono's `format` interprets its pattern on every call, which the W3
/// profile found at ~5% of the server's CPU (docs/BENCHMARKS.md).
pub fn atlas_time(secs: i64) -> String {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let Ok(year) = u32::try_from(t.year()) else {
        return t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    };
    if year > 9999 {
        return t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    fn digits(out: &mut String, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
    }
    let mut out = String::with_capacity(20);
    digits(&mut out, year, 4);
    let fields = [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ];
    for (separator, value) in fields {
        out.push(separator);
        digits(&mut out, value, 2);
    }
    out.push('Z');
    out
}

/// Serializes `value` with keys in alphabetical order (serde_json's map is ordered), enveloped
/// and pretty-printed as requested, and answers with the version's media type.
pub fn json_response<T: Serialize>(
    status: StatusCode,
    value: &T,
    shape: Shape,
    format: Format,
    api: ApiVersion,
) -> Response {
    let mut value = serde_json::to_value(value).expect("response bodies serialize");
    if format.envelope {
        value = envelope(value, status, shape);
    }
    let body = if format.pretty {
        to_jackson_pretty(&value)
    } else {
        serde_json::to_vec(&value).expect("serializes")
    };
    with_content_type(status, body, api)
}

/// [`json_response`] for a body whose every struct declares its fields in the byte order of
/// their JSON names, the order serde_json's sorted map writes: then, neither enveloped nor
/// pretty-printed, it is serialized straight from the structs, without first building a
/// `Value` (a tree of maps: for a page of 100 certificates, ~10% of a request's CPU). The bytes
/// are the same; debug builds (every test) check that they are.
pub fn json_response_fields_sorted<T: Serialize>(
    status: StatusCode,
    value: &T,
    shape: Shape,
    format: Format,
    api: ApiVersion,
) -> Response {
    if format.envelope || format.pretty {
        return json_response(status, value, shape, format, api);
    }
    let body = serde_json::to_vec(value).expect("response bodies serialize");
    debug_assert_eq!(
        body,
        serde_json::to_vec(&serde_json::to_value(value).expect("serializes")).expect("serializes"),
        "a struct of this body declares its fields out of their JSON names' order"
    );
    with_content_type(status, body, api)
}

/// Wraps a body the way Atlas's `envelope=true` does: `{content, status}` for an entity, the
/// list object plus `status` for a list.
pub fn envelope(value: Value, status: StatusCode, shape: Shape) -> Value {
    match (shape, value) {
        (Shape::List, Value::Object(mut map)) => {
            map.insert("status".into(), Value::from(status.as_u16()));
            Value::Object(map)
        }
        (_, content) => {
            let mut map = serde_json::Map::new();
            map.insert("content".into(), content);
            map.insert("status".into(), Value::from(status.as_u16()));
            Value::Object(map)
        }
    }
}

pub fn with_content_type(status: StatusCode, body: Vec<u8>, api: ApiVersion) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(api.content_type()),
    );
    res
}

/// Jackson's `DefaultPrettyPrinter`: two-space object indentation, `" : "` between key and
/// value, arrays on one line as `[ a, b ]`, and empty containers as `{ }` and `[ ]`.
pub fn to_jackson_pretty(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, JacksonFormatter::default());
    value
        .serialize(&mut ser)
        .expect("serializing into a Vec cannot fail");
    out
}

#[derive(Default)]
struct JacksonFormatter {
    depth: usize,
    has_value: bool,
}

impl JacksonFormatter {
    fn newline_indent<W: ?Sized + io::Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for JacksonFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.has_value = false;
        w.write_all(b"[")
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b" ]")?;
        self.has_value = true;
        Ok(())
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        w.write_all(if first { b" " } else { b", " })
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(b"{")
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline_indent(w)?;
            w.write_all(b"}")?;
        } else {
            w.write_all(b" }")?;
        }
        self.has_value = true;
        Ok(())
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.newline_indent(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b" : ")
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_matches_jacksons_default_printer() {
        let v = json!({"links": [{"href": "h", "rel": "self"}], "results": [], "totalCount": 0, "x": {}});
        let text = String::from_utf8(to_jackson_pretty(&v)).unwrap();
        assert_eq!(
            text,
            "{\n  \"links\" : [ {\n    \"href\" : \"h\",\n    \"rel\" : \"self\"\n  } ],\n  \"results\" : [ ],\n  \"totalCount\" : 0,\n  \"x\" : { }\n}"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn pretty_scalar_arrays_stay_on_one_line() {
        let text = String::from_utf8(to_jackson_pretty(&json!({"a": [1, "b"]}))).unwrap();
        assert_eq!(text, "{\n  \"a\" : [ 1, \"b\" ]\n}");
    }

    #[test]
    fn envelope_shapes() {
        let e = envelope(json!({"a": 1}), StatusCode::OK, Shape::Entity);
        assert_eq!(e, json!({"content": {"a": 1}, "status": 200}));
        let l = envelope(json!({"results": []}), StatusCode::OK, Shape::List);
        assert_eq!(l, json!({"results": [], "status": 200}));
    }

    #[test]
    fn atlas_time_has_no_fraction() {
        assert_eq!(atlas_time(1_786_331_195), "2026-08-10T03:06:35Z");
    }

    /// The direct formatter writes what chrono's pattern writes, across leap days, month and
    /// year ends, the epoch, the last second of 9999, and the pattern's fallback past it.
    #[test]
    fn atlas_time_matches_the_pattern_it_replaces() {
        let by_pattern = |secs: i64| {
            chrono::DateTime::from_timestamp(secs, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        let edges = [
            0,
            951_782_400,
            1_709_164_799,
            1_835_395_199,
            253_402_300_799,
            253_402_300_800,
            -1,
        ];
        let hourly = (0..200_000).map(|h| 1_700_000_000 + h * 3_607);
        for secs in edges.into_iter().chain(hourly) {
            assert_eq!(atlas_time(secs), by_pattern(secs), "{secs}");
        }
    }
}
