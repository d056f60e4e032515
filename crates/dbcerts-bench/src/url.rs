//! Target URLs, restricted to plain HTTP on the loopback interface.
//!
//! The load generator must never send traffic off this machine, so every URL it is given goes
//! through [`parse_loopback`], which accepts only `http://` URLs whose host is a loopback IP
//! literal (`127.0.0.0/8`, `[::1]`) or `localhost`. `localhost` is not looked up in DNS or
//! `/etc/hosts`: it means `127.0.0.1`, then `[::1]`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context, bail};
use hyper::Uri;

/// A URL that passed the loopback check, split the way the client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackUrl {
    /// `host[:port]` as written in the URL, for the `Host` header.
    pub authority: String,
    /// The origin-form request target: path and query (`/` when the URL has no path).
    pub path_and_query: String,
    /// The addresses to connect to, in order of preference; all loopback.
    pub addrs: Vec<SocketAddr>,
}

/// Parses `url` and refuses anything but `http://` to a loopback host.
pub fn parse_loopback(url: &str) -> anyhow::Result<LoopbackUrl> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => bail!("refusing {url:?}: only plain http:// is supported, not {other}://"),
        None => bail!("refusing {url:?}: an absolute http:// URL is required"),
    }
    let authority = uri
        .authority()
        .with_context(|| format!("refusing {url:?}: no host"))?;
    if authority.as_str().contains('@') {
        bail!("refusing {url:?}: credentials in the URL are not supported (use --auth)");
    }
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs = if bare.eq_ignore_ascii_case("localhost") {
        vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]
    } else {
        match bare.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => vec![SocketAddr::new(ip, port)],
            Ok(ip) => bail!("refusing {url:?}: {ip} is not a loopback address"),
            Err(_) => bail!(
                "refusing {url:?}: the host must be a loopback IP literal (127.0.0.0/8, [::1]) \
                 or localhost, not {host:?}"
            ),
        }
    };
    let path_and_query = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .filter(|pq| !pq.is_empty())
        .unwrap_or("/");
    // `Uri` accepts `http://h?x` with an empty path; the request target must start with `/`.
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    Ok(LoopbackUrl {
        authority: authority.as_str().to_owned(),
        path_and_query,
        addrs,
    })
}

/// The path of `url` (without the query), or the whole string when it does not parse; for
/// labels.
pub fn path_of(url: &str) -> String {
    url.parse::<Uri>()
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_hosts() {
        let u = parse_loopback("http://127.0.0.1:8080/api/x?a=1&b=2").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path_and_query, "/api/x?a=1&b=2");
        assert_eq!(u.addrs, vec!["127.0.0.1:8080".parse().unwrap()]);

        let u = parse_loopback("http://127.45.6.7").unwrap();
        assert_eq!(u.path_and_query, "/");
        assert_eq!(u.addrs, vec!["127.45.6.7:80".parse().unwrap()]);

        let u = parse_loopback("http://[::1]:9000/p").unwrap();
        assert_eq!(u.authority, "[::1]:9000");
        assert_eq!(u.addrs, vec!["[::1]:9000".parse().unwrap()]);

        let u = parse_loopback("http://LocalHost:81/").unwrap();
        assert_eq!(
            u.addrs,
            vec!["127.0.0.1:81".parse().unwrap(), "[::1]:81".parse().unwrap()]
        );
    }

    #[test]
    fn refuses_anything_else() {
        for url in [
            "http://10.0.0.1/",
            "http://192.168.1.10:8080/",
            "http://8.8.8.8/",
            "http://[2001:db8::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0:8080/",
            "http://example.com/",
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
            "https://127.0.0.1/",
            "ftp://127.0.0.1/",
            "127.0.0.1:8080/x",
            "/relative",
            "http://user:pw@127.0.0.1/",
            "not a url",
        ] {
            assert!(parse_loopback(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn path_for_labels() {
        assert_eq!(path_of("http://127.0.0.1:1/a/b?c=d"), "/a/b");
        assert_eq!(path_of("::bad::"), "::bad::");
    }
}
