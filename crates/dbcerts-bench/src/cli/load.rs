//! `dbcerts-bench load`: one load run from the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::spec::{Auth, Expect, LoadSpec, Target};
use crate::{LoadResult, Method, fetch_bearer_token, run};

/// How `load` authenticates (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    None,
    Digest,
    Bearer,
}

/// Arguments of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The kind of server under test (decides the default expectation).
    #[arg(long, value_enum)]
    pub target: Target,
    /// Full URL with path and query; http:// and a loopback host only.
    #[arg(long)]
    pub url: String,
    /// Request method (case-insensitive).
    #[arg(long, default_value = "GET", value_parser = parse_method)]
    pub method: Method,
    /// Request body (sent with every request).
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Request body read from a file.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Workers, each with one keep-alive connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Measured requests.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: u64,
    /// Unmeasured requests sent first.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// How requests authenticate.
    #[arg(long, value_enum, default_value = "none")]
    pub auth: AuthKind,
    /// Digest username (API public key).
    #[arg(long)]
    pub user: Option<String>,
    /// Digest password (API private key).
    #[arg(long, env = "DBCERTS_BENCH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Bearer token.
    #[arg(long, env = "DBCERTS_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// OAuth client id: fetch a bearer token from the target's /api/oauth/token.
    #[arg(long, requires = "client_secret")]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[arg(long, env = "DBCERTS_BENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The server's pid, to sample its resident memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Expected status (overrides the target's default, and drops its body checks).
    #[arg(long)]
    pub expect_status: Option<u16>,
    /// The body every response must equal exactly.
    #[arg(long, value_name = "FILE")]
    pub expect_body_file: Option<PathBuf>,
    /// Name of this run in results (default: target, method and path).
    #[arg(long)]
    pub label: Option<String>,
    /// Write the JSON result here.
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// Runtime threads for the generator: 1 = tokio current-thread (one core), N > 1 = a
    /// multi-thread runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Seconds one request may take before it counts as an error.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Exit 0 even when some requests failed (by default a run with errors exits 1).
    #[arg(long)]
    pub allow_errors: bool,
}

/// A method name, upper-cased (`Method` keeps the case it is given, and servers do not).
fn parse_method(s: &str) -> Result<Method, String> {
    Method::from_bytes(s.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {s:?}"))
}

/// `Name: value` (or `Name:value`).
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected NAME:VALUE, got {s:?}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("empty header name in {s:?}"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Runs `load`: builds the runtime, runs the spec, prints the summary, writes the JSON.
pub fn main(args: LoadArgs) -> anyhow::Result<()> {
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::try_from(args.threads)?)
            .enable_all()
            .build()?
    };
    let allow_errors = args.allow_errors;
    let out = args.out.clone();
    let result = runtime.block_on(async move {
        let spec = spec_from(args).await?;
        run(&spec).await
    })?;
    report(&result, out.as_deref())?;
    if result.errors > 0 && !allow_errors {
        bail!(
            "{} of {} requests failed; first: {}",
            result.errors,
            result.requests,
            result.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// The [`LoadSpec`] the arguments describe (fetching a bearer token when asked to).
pub async fn spec_from(args: LoadArgs) -> anyhow::Result<LoadSpec> {
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => Some(b.clone().into_bytes()),
        (None, Some(f)) => {
            Some(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?)
        }
        (None, None) => None,
    };
    let auth = auth_from(&args).await?;
    let mut spec = LoadSpec::new(args.target, args.method, args.url);
    if let Some(status) = args.expect_status {
        spec.expect = Expect::status(status);
    }
    if let Some(file) = &args.expect_body_file {
        spec.expect.body_equals =
            Some(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    }
    if !args.timeout.is_finite() || args.timeout <= 0.0 {
        bail!("--timeout must be a positive number of seconds");
    }
    Ok(LoadSpec {
        body,
        headers: args.headers,
        concurrency: usize::try_from(args.concurrency)?,
        requests: args.requests,
        warmup: args.warmup,
        auth,
        server_pid: args.server_pid,
        label: args.label.unwrap_or(spec.label.clone()),
        timeout: Duration::from_secs_f64(args.timeout),
        ..spec
    })
}

async fn auth_from(args: &LoadArgs) -> anyhow::Result<Auth> {
    Ok(match args.auth {
        AuthKind::None => Auth::None,
        AuthKind::Digest => Auth::Digest {
            username: args.user.clone().context("--auth digest needs --user")?,
            password: args
                .password
                .clone()
                .context("--auth digest needs --password or DBCERTS_BENCH_PASSWORD")?,
        },
        AuthKind::Bearer => match (&args.token, &args.client_id, &args.client_secret) {
            (Some(token), _, _) => Auth::Bearer {
                token: token.clone(),
            },
            (None, Some(id), Some(secret)) => Auth::Bearer {
                token: fetch_bearer_token(&base_url(&args.url)?, id, secret).await?,
            },
            _ => bail!("--auth bearer needs --token, or --client-id and --client-secret"),
        },
    })
}

/// `http://host:port` of a URL.
fn base_url(url: &str) -> anyhow::Result<String> {
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    let authority = uri
        .authority()
        .with_context(|| format!("no host in {url:?}"))?;
    Ok(format!(
        "{}://{authority}",
        uri.scheme_str().unwrap_or("http")
    ))
}

/// Prints the summary and writes the JSON result.
fn report(result: &LoadResult, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    println!("{}", result.summary());
    if let Some(e) = &result.first_error {
        eprintln!("first error: {e}");
    }
    if let Some(path) = out {
        let mut json = serde_json::to_vec_pretty(result)?;
        json.push(b'\n');
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_base_urls() {
        assert_eq!(
            parse_header("Content-Type: application/json").unwrap(),
            ("Content-Type".into(), "application/json".into())
        );
        assert_eq!(
            parse_header("X-A:b:c").unwrap(),
            ("X-A".into(), "b:c".into())
        );
        assert!(parse_header("nocolon").is_err());
        assert!(parse_header(": v").is_err());
        assert_eq!(parse_method("post").unwrap(), Method::POST);
        assert!(parse_method("GE T").is_err());
        assert_eq!(
            base_url("http://127.0.0.1:8080/api/x?y=1").unwrap(),
            "http://127.0.0.1:8080"
        );
    }
}
