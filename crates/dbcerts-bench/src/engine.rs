//! The load engine: workers on persistent connections taking request numbers from one counter.
//!
//! `run` opens `concurrency` connections first (failing fast when the server is not there),
//! then starts one task per connection. Each task takes the next request number from a shared
//! atomic counter, sends the request, reads the whole response and checks it, until
//! `warmup + requests` numbers are handed out; the first `warmup` numbers are not measured.
//! Each task keeps its own latency histogram, merged at the end. The tasks run on whatever
//! tokio runtime calls `run`: a current-thread runtime keeps the generator on one core.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, HOST, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use tokio::task::JoinSet;

use crate::conn::{Connection, Response};
use crate::digest::DigestSession;
use crate::machine::Machine;
use crate::result::{LoadResult, RssKib};
use crate::rss::{RssSampler, rss_kib};
use crate::spec::{Auth, Expect, LoadSpec};
use crate::stats::{self, LatencyMs};
use crate::url::parse_loopback;

/// Runs `spec` to completion and reports what it measured.
///
/// Fails (before sending anything) on a non-loopback URL, an invalid header, zero workers or
/// requests, a server pid whose memory cannot be read, or when a connection cannot be opened;
/// failures of single requests are counted in [`LoadResult::errors`] instead.
pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    ensure!(spec.concurrency > 0, "concurrency must be at least 1");
    ensure!(spec.requests > 0, "requests must be at least 1");
    let plan = Arc::new(Plan::new(spec)?);
    if let Some(pid) = spec.server_pid {
        ensure!(
            rss_kib(pid).is_some(),
            "cannot read the memory of server pid {pid} (/proc/{pid}/status)"
        );
    }

    let started_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let sampler = spec.server_pid.map(RssSampler::start);
    let mut connections = Vec::with_capacity(spec.concurrency);
    for _ in 0..spec.concurrency {
        let conn = Connection::connect(&plan.addrs)
            .await
            .with_context(|| format!("cannot connect to {}", spec.url))?;
        connections.push(conn);
    }

    let shared = Arc::new(Shared::default());
    let mut workers = JoinSet::new();
    for conn in connections {
        workers.spawn(worker(Arc::clone(&plan), Arc::clone(&shared), conn));
    }
    let mut total = WorkerStats::new();
    while let Some(stats) = workers.join_next().await {
        total.merge(stats.context("a load worker panicked")?)?;
    }
    let end = Instant::now();
    let rss = sampler.map(RssSampler::stop);

    let duration = shared
        .measure_start
        .get()
        .map_or(Duration::ZERO, |start| end.duration_since(*start));
    let duration_s = duration.as_secs_f64();
    Ok(LoadResult {
        target: spec.target,
        label: spec.label.clone(),
        url: spec.url.clone(),
        method: spec.method.to_string(),
        concurrency: spec.concurrency,
        requests: total.requests,
        warmup: spec.warmup,
        errors: total.errors,
        first_error: total.first_error.map(|(_, e)| e),
        duration_s,
        throughput_rps: if duration_s > 0.0 {
            total.requests as f64 / duration_s
        } else {
            0.0
        },
        latency_ms: LatencyMs::from_histogram(&total.histogram),
        status_counts: total.status_counts,
        reconnects: total.reconnects,
        auth_challenges: total.auth_challenges,
        server_rss_kib: rss.and_then(|r| {
            Some(RssKib {
                start: r.start?,
                peak: r.peak?,
            })
        }),
        bytes_received: total.bytes_received,
        started_at,
        machine: Machine::detect(),
    })
}

/// Everything a worker needs to build and judge requests, prepared once.
struct Plan {
    addrs: Vec<SocketAddr>,
    method: Method,
    /// Path and query, as sent and as the Digest `uri`.
    path_and_query: String,
    target: Uri,
    headers: HeaderMap,
    body: Bytes,
    bearer: Option<HeaderValue>,
    digest: Option<(String, String)>,
    expect: Expect,
    warmup: u64,
    total: u64,
    timeout: Duration,
}

impl Plan {
    fn new(spec: &LoadSpec) -> anyhow::Result<Plan> {
        let url = parse_loopback(&spec.url)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value.trim())
                .with_context(|| format!("invalid value for header {name}"))?;
            headers.append(name, value);
        }
        if !headers.contains_key(HOST) {
            headers.insert(HOST, HeaderValue::from_str(&url.authority)?);
        }
        let (bearer, digest) = match &spec.auth {
            Auth::None => (None, None),
            Auth::Bearer { token } => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("the bearer token is not a valid header value")?;
                value.set_sensitive(true);
                (Some(value), None)
            }
            Auth::Digest { username, password } => {
                (None, Some((username.clone(), password.clone())))
            }
        };
        if bearer.is_some() || digest.is_some() {
            ensure!(
                !headers.contains_key(AUTHORIZATION),
                "an Authorization header cannot be combined with --auth"
            );
        }
        Ok(Plan {
            addrs: url.addrs,
            method: spec.method.clone(),
            target: url.path_and_query.parse().context("request target")?,
            path_and_query: url.path_and_query,
            headers,
            body: spec.body.clone().map(Bytes::from).unwrap_or_default(),
            bearer,
            digest,
            expect: spec.expect.clone(),
            warmup: spec.warmup,
            total: spec
                .warmup
                .checked_add(spec.requests)
                .context("warmup + requests overflows")?,
            timeout: spec.timeout,
        })
    }

    /// One request, with `authorization` when Digest gave one.
    fn request(&self, authorization: Option<String>) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.target.clone();
        *request.headers_mut() = self.headers.clone();
        let authorization = match authorization {
            Some(a) => Some(HeaderValue::try_from(a).context("Digest answer header")?),
            None => self.bearer.clone(),
        };
        if let Some(a) = authorization {
            request.headers_mut().insert(AUTHORIZATION, a);
        }
        Ok(request)
    }
}

/// State shared by the workers.
#[derive(Default)]
struct Shared {
    /// The next request number to hand out.
    next: AtomicU64,
    /// When the first measured request started.
    measure_start: OnceLock<Instant>,
}

/// What one worker measured.
struct WorkerStats {
    histogram: Histogram<u64>,
    requests: u64,
    errors: u64,
    /// The failed request with the lowest number, and what went wrong.
    first_error: Option<(u64, String)>,
    status_counts: BTreeMap<u16, u64>,
    bytes_received: u64,
    reconnects: u64,
    auth_challenges: u64,
}

impl WorkerStats {
    fn new() -> WorkerStats {
        WorkerStats {
            histogram: stats::new_histogram(),
            requests: 0,
            errors: 0,
            first_error: None,
            status_counts: BTreeMap::new(),
            bytes_received: 0,
            reconnects: 0,
            auth_challenges: 0,
        }
    }

    fn error(&mut self, number: u64, message: String) {
        self.errors += 1;
        self.keep_earliest_error(number, message);
    }

    fn keep_earliest_error(&mut self, number: u64, message: String) {
        if self.first_error.as_ref().is_none_or(|(n, _)| number < *n) {
            self.first_error = Some((number, message));
        }
    }

    fn merge(&mut self, other: WorkerStats) -> anyhow::Result<()> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| anyhow!("merging latency histograms: {e:?}"))?;
        self.requests += other.requests;
        if let Some((n, e)) = other.first_error {
            self.keep_earliest_error(n, e);
        }
        self.errors += other.errors;
        for (status, count) in other.status_counts {
            *self.status_counts.entry(status).or_default() += count;
        }
        self.bytes_received += other.bytes_received;
        self.reconnects += other.reconnects;
        self.auth_challenges += other.auth_challenges;
        Ok(())
    }
}

/// One worker: requests one after another on its connection until the counter runs out.
async fn worker(plan: Arc<Plan>, shared: Arc<Shared>, conn: Connection) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let mut conn = Some(conn);
    let mut digest = plan
        .digest
        .as_ref()
        .map(|(user, password)| DigestSession::new(user, password));
    loop {
        let number = shared.next.fetch_add(1, Ordering::Relaxed);
        if number >= plan.total {
            return stats;
        }
        let measured = number >= plan.warmup;
        if measured {
            shared.measure_start.get_or_init(Instant::now);
        }
        let outcome = exchange(&plan, &mut conn, digest.as_mut(), &mut stats).await;
        if !measured {
            continue;
        }
        stats.requests += 1;
        match outcome {
            Ok((latency, response)) => {
                stats::record(&mut stats.histogram, latency);
                stats.bytes_received += response.body.len() as u64;
                *stats
                    .status_counts
                    .entry(response.status.as_u16())
                    .or_default() += 1;
                if let Err(e) = plan.expect.check(response.status.as_u16(), &response.body) {
                    stats.error(number, e);
                }
            }
            Err(e) => stats.error(number, format!("{e:#}")),
        }
    }
}

/// One request and its response, with the latency to record.
///
/// Opens a new connection first when there is none or the server closed it. A request that
/// fails on the connection (e.g. the server closed it as the request went out) is retried once
/// on a new connection. With Digest, a 401 carrying a challenge is answered: the first one of
/// a worker without restarting the clock (the challenge round trip is not the request's
/// latency), later ones (stale nonce) once, within the request's time.
async fn exchange(
    plan: &Plan,
    slot: &mut Option<Connection>,
    mut digest: Option<&mut DigestSession>,
    stats: &mut WorkerStats,
) -> anyhow::Result<(Duration, Response)> {
    let mut start = None;
    let mut transport_retry = true;
    let mut auth_retry = true;
    loop {
        let conn = usable_connection(slot, &plan.addrs, stats).await?;
        let authorization = match digest.as_deref_mut() {
            Some(d) => d.authorization(plan.method.as_str(), &plan.path_and_query)?,
            None => None,
        };
        let request = plan.request(authorization)?;
        let began = *start.get_or_insert_with(Instant::now);
        let response = match tokio::time::timeout(plan.timeout, conn.send(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                *slot = None;
                if transport_retry {
                    transport_retry = false;
                    continue;
                }
                return Err(e);
            }
            Err(_) => {
                *slot = None;
                bail!("no complete response within {:?}", plan.timeout);
            }
        };
        let unauthorized = response.status == StatusCode::UNAUTHORIZED;
        if let Some(d) = digest.as_deref_mut().filter(|_| unauthorized) {
            let first = !d.has_challenge();
            if (first || auth_retry) && d.accept_challenge(&response.headers) {
                stats.auth_challenges += 1;
                if first {
                    start = None;
                } else {
                    auth_retry = false;
                }
                continue;
            }
        }
        return Ok((began.elapsed(), response));
    }
}

/// The slot's connection if it can take a request, else a new one (counted as a reconnect).
async fn usable_connection<'a>(
    slot: &'a mut Option<Connection>,
    addrs: &[SocketAddr],
    stats: &mut WorkerStats,
) -> anyhow::Result<&'a mut Connection> {
    let usable = match slot.as_mut() {
        Some(conn) => conn.ready().await.is_ok(),
        None => false,
    };
    if !usable {
        *slot = None;
        let conn = Connection::connect(addrs).await.context("reconnecting")?;
        stats.reconnects += 1;
        *slot = Some(conn);
    }
    slot.as_mut().context("no connection")
}
