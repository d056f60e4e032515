//! Operator endpoints and metrics: `GET /health/live`, `GET /health/ready` (on the API's
//! listener), `GET /metrics` (Prometheus text format, on a listener of its own:
//! [`crate::metrics_router`]), the middleware that counts every request, and the process-wide
//! Prometheus recorder.
//!
//! None of the three endpoints authenticates, so none may reveal more than it must: the health
//! checks answer only `{"status":"ok"}` or `{"status":"unavailable"}` (never a version, the kind of
//! database or an error), and failures are logged instead. `/metrics` carries project ids of
//! every organization as labels, so it is served only on `--metrics-listen` (loopback unless the
//! operator says otherwise), never on the API's address. Nothing here writes to the store.
//!
//! The `metrics` crate keeps one recorder per process: [`recorder`] installs it on first use
//! (every [`crate::AppState`] asks for it), so several states in one process share it.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dbcerts_store::Store;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::AppState;

/// Metric names, in one place.
pub mod names {
    /// Counter `{operation, status}`: every request answered.
    pub const HTTP_REQUESTS: &str = "dbcerts_http_requests_total";
    /// Histogram `{operation}`: seconds from the request to the response head.
    pub const HTTP_DURATION: &str = "dbcerts_http_request_duration_seconds";
    /// Counter `{group_id, algorithm}`: certificates durably recorded.
    pub const CERTIFICATES_ISSUED: &str = "dbcerts_certificates_issued_total";
    /// Counter `{group_id, reason}`: certificates durably revoked (each once).
    pub const CERTIFICATES_REVOKED: &str = "dbcerts_certificates_revoked_total";
    /// Group commits of the journal (issued certificates, request audit entries).
    pub const JOURNAL_COMMITS: &str = "dbcerts_journal_commits_total";
    /// Writes those commits carried.
    pub const JOURNAL_WRITES: &str = "dbcerts_journal_writes_total";
    /// Counter: SQLite reads meant for the calling thread that failed there and ran through
    /// sqlx (zero in normal operation).
    pub const STORE_THREAD_READ_FALLBACKS: &str = "dbcerts_store_thread_read_fallbacks_total";
    /// Counter: SQLite reads meant for the calling thread that were over their budget and ran
    /// through sqlx.
    pub const STORE_THREAD_READS_HANDED_OFF: &str = "dbcerts_store_thread_reads_handed_off_total";
    /// Counter: SQLite group commits the writer thread could not take, run through sqlx
    /// (zero in normal operation).
    pub const STORE_WRITER_FALLBACKS: &str = "dbcerts_store_writer_fallbacks_total";
    /// Gauge: leaf keys ready in the key pool, at scrape time.
    pub const KEY_POOL_KEYS: &str = "dbcerts_key_pool_keys";
    /// Histogram `{operation}`: seconds each `Store` method took.
    pub const STORE_DURATION: &str = "dbcerts_store_operation_duration_seconds";
    /// Gauge `{group_id, within}`: unexpired certificates expiring within 7 or 30 days.
    pub const CERTIFICATES_EXPIRING: &str = "dbcerts_certificates_expiring";
    /// Gauge: 1 when the store answered the last scrape's query, else 0.
    pub const STORE_UP: &str = "dbcerts_store_up";
    /// Counter `{group_id, reason}`: project CA rotations (`manual` or `automatic`).
    pub const CA_ROTATIONS: &str = "dbcerts_ca_rotations_total";
    /// Counter `{group_id}`: CA generations retired.
    pub const CA_RETIREMENTS: &str = "dbcerts_ca_retirements_total";
    /// Gauge `{group_id, generation}`: seconds until each CA generation not retired expires.
    pub const CA_EXPIRY: &str = "dbcerts_ca_expiry_seconds";
    /// Counter `{part}`: reads the read cache answered (`crate::cached_store`).
    pub const CACHE_HITS: &str = "dbcerts_cache_hits_total";
    /// Counter `{part}`: cached reads that asked the store.
    pub const CACHE_MISSES: &str = "dbcerts_cache_misses_total";
    /// Counter `{part, cause}`: times a part of the read cache was emptied (`write`,
    /// `notification` or `listener`).
    pub const CACHE_EVICTIONS: &str = "dbcerts_cache_evictions_total";
}

/// Histogram buckets, in seconds: from half a millisecond (a cached SQLite read) to ten seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long readiness and a scrape wait for the store.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

const DAY: i64 = 86_400;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed as the global `metrics` recorder on first call.
/// Should another recorder have been installed first, this one is kept apart (its `/metrics`
/// then shows only what is set at scrape time) and a warning says so.
pub fn recorder() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
        };
        let handle = builder().install_recorder().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a metrics recorder was installed already; /metrics will not show request, store or issuance metrics");
            builder().build_recorder().handle()
        });
        describe();
        let upkeep = handle.clone();
        // A plain thread, not a task: the recorder outlives any one async runtime.
        if let Err(e) = std::thread::Builder::new()
            .name("dbcerts-metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            })
        {
            tracing::warn!(error = %e, "could not start the metrics upkeep thread; histograms are folded at scrape time only");
        }
        handle
    })
}

fn describe() {
    describe_counter!(
        names::HTTP_REQUESTS,
        "HTTP requests answered, by operation (method and route template, or `unmatched`) and status code."
    );
    describe_histogram!(
        names::HTTP_DURATION,
        "Seconds from receiving a request to sending its response head, by operation."
    );
    describe_counter!(
        names::CERTIFICATES_ISSUED,
        "Client certificates issued and durably recorded, by project and key algorithm."
    );
    describe_counter!(
        names::CERTIFICATES_REVOKED,
        "Client certificates revoked and durably recorded, by project and RFC 5280 reason; a repeated revocation is not counted again."
    );
    describe_counter!(
        names::JOURNAL_COMMITS,
        "Transactions that recorded issued certificates and request audit entries; concurrent requests share one (group commit)."
    );
    describe_counter!(
        names::JOURNAL_WRITES,
        "Writes carried by those transactions (divide by dbcerts_journal_commits_total for the mean batch)."
    );
    describe_counter!(
        names::STORE_THREAD_READ_FALLBACKS,
        "SQLite reads meant for the calling thread that failed there and ran through sqlx instead (0 in normal operation; always 0 on PostgreSQL)."
    );
    describe_counter!(
        names::STORE_THREAD_READS_HANDED_OFF,
        "SQLite reads meant for the calling thread that went over their step budget and ran through sqlx instead (always 0 on PostgreSQL)."
    );
    describe_counter!(
        names::STORE_WRITER_FALLBACKS,
        "SQLite group commits the writer thread could not take, run through sqlx instead (0 in normal operation; always 0 on PostgreSQL)."
    );
    describe_gauge!(
        names::KEY_POOL_KEYS,
        "Pre-generated leaf keys ready in the key pool."
    );
    describe_histogram!(
        names::STORE_DURATION,
        "Seconds each store operation took, by operation (successful or not)."
    );
    describe_gauge!(
        names::CERTIFICATES_EXPIRING,
        "Unexpired certificates whose notAfter falls within 7d or 30d (30d includes 7d), by project."
    );
    describe_gauge!(
        names::STORE_UP,
        "1 when the store answered the last scrape, 0 when it did not."
    );
    describe_counter!(
        names::CA_ROTATIONS,
        "Project CA rotations made by this node, by project and reason (manual or automatic)."
    );
    describe_counter!(
        names::CA_RETIREMENTS,
        "Project CA generations retired through this node, by project."
    );
    describe_gauge!(
        names::CA_EXPIRY,
        "Seconds until each project CA generation that is not retired expires (negative once expired), by project and generation."
    );
    describe_counter!(
        names::CACHE_HITS,
        "Reads the node's read cache answered without the store, by part (api_key, service_account, project, database_user, user_security)."
    );
    describe_counter!(
        names::CACHE_MISSES,
        "Reads of cached kinds that asked the store, by part."
    );
    describe_counter!(
        names::CACHE_EVICTIONS,
        "Times a part of the read cache was emptied, by part and cause (write on this node, notification from the database, listener connected or lost)."
    );
}

/// Records one read the cache answered.
pub fn cache_hit(part: &'static str) {
    counter!(names::CACHE_HITS, "part" => part).increment(1);
}

/// Records one cached read that asked the store.
pub fn cache_miss(part: &'static str) {
    counter!(names::CACHE_MISSES, "part" => part).increment(1);
}

/// Records one part of the cache emptied.
pub fn cache_drop(part: &'static str, cause: &'static str) {
    counter!(names::CACHE_EVICTIONS, "part" => part, "cause" => cause).increment(1);
}

/// Records one project CA rotation (call once it is committed).
pub fn ca_rotated(group_id: &str, reason: crate::ca_service::RotationReason) {
    counter!(
        names::CA_ROTATIONS,
        "group_id" => group_id.to_owned(),
        "reason" => reason.as_str(),
    )
    .increment(1);
}

/// Records one CA generation retired (call once it is committed).
pub fn ca_retired(group_id: &str) {
    counter!(names::CA_RETIREMENTS, "group_id" => group_id.to_owned()).increment(1);
}

/// Records one certificate issued (call once it is durably recorded).
pub fn certificate_issued(group_id: &str, algorithm: dbcerts_ca::KeyAlgorithm) {
    counter!(
        names::CERTIFICATES_ISSUED,
        "group_id" => group_id.to_owned(),
        "algorithm" => algorithm.as_str(),
    )
    .increment(1);
}

/// Records one certificate revoked (call once it is durably recorded, once per certificate).
pub fn certificate_revoked(group_id: &str, reason: &'static str) {
    counter!(
        names::CERTIFICATES_REVOKED,
        "group_id" => group_id.to_owned(),
        "reason" => reason,
    )
    .increment(1);
}

/// Records one group commit of `writes` writes (call as it starts).
pub fn journal_commit(writes: usize) {
    counter!(names::JOURNAL_COMMITS).increment(1);
    counter!(names::JOURNAL_WRITES).increment(writes as u64);
}

/// Records how long one store operation took.
pub fn store_operation(operation: &'static str, started: Instant) {
    histogram!(names::STORE_DURATION, "operation" => operation).record(started.elapsed());
}

/// What `/metrics` remembers between scrapes of one server.
pub(crate) struct Observer {
    handle: &'static PrometheusHandle,
    /// Projects given an expiry gauge at the last scrape; taken for the whole refresh so that
    /// concurrent scrapes cannot interleave an older answer over a newer one.
    expiring: tokio::sync::Mutex<BTreeSet<String>>,
    /// The last readiness answer and when it was found. Checks within [`READY_CACHE`] of it
    /// reuse it, and one check runs at a time, so that a flood of unauthenticated probes costs
    /// the store at most one ping per interval instead of taking every pooled connection.
    readiness: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// How long a readiness answer is reused.
const READY_CACHE: Duration = Duration::from_secs(1);

impl Observer {
    pub(crate) fn new() -> Observer {
        Observer {
            handle: recorder(),
            expiring: tokio::sync::Mutex::new(BTreeSet::new()),
            readiness: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether the store answers a ping, asked at most once per [`READY_CACHE`].
    async fn store_ready(&self, store: &dyn Store) -> bool {
        let mut last = self.readiness.lock().await;
        if let Some((at, ready)) = *last
            && at.elapsed() < READY_CACHE
        {
            return ready;
        }
        let ready = bounded("not ready: the store ping", store.ping())
            .await
            .is_some();
        *last = Some((Instant::now(), ready));
        ready
    }

    /// Sets the expiry gauges (and `dbcerts_store_up`) from the store. Projects that had gauges
    /// and no longer appear are set to zero. When the store does not answer, the gauges keep
    /// their last values and `dbcerts_store_up` says they are stale.
    async fn refresh_expiring(&self, store: &dyn Store) {
        let mut reported = self.expiring.lock().await;
        let now = chrono::Utc::now().timestamp();
        let query = store.expiring_certificates(now, now + 7 * DAY, now + 30 * DAY);
        let Some(counts) = bounded("metrics: the expiry query", query).await else {
            gauge!(names::STORE_UP).set(0.0);
            return;
        };
        gauge!(names::STORE_UP).set(1.0);
        let mut seen = BTreeSet::new();
        for c in counts {
            expiring(&c.project_id, "7d").set(c.within_soon as f64);
            expiring(&c.project_id, "30d").set(c.within_later as f64);
            seen.insert(c.project_id);
        }
        for gone in reported.difference(&seen) {
            expiring(gone, "7d").set(0.0);
            expiring(gone, "30d").set(0.0);
        }
        *reported = seen;
    }
}

/// A store call's answer within [`STORE_TIMEOUT`], or `None` (logged as `what` failed or timed
/// out).
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = dbcerts_store::StoreResult<T>>,
) -> Option<T> {
    match tokio::time::timeout(STORE_TIMEOUT, call).await {
        Ok(Ok(answer)) => Some(answer),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "{what} failed");
            None
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = STORE_TIMEOUT.as_millis() as u64,
                "{what} timed out"
            );
            None
        }
    }
}

/// Sets `dbcerts_ca_expiry_seconds` for every CA generation not retired. A store that does not
/// answer leaves the last values (and `dbcerts_store_up`, set by the expiry query, says so).
async fn refresh_ca_expiry(store: &dyn Store) {
    let Some(cas) = bounded(
        "metrics: the CA expiry query",
        store.unretired_ca_expiries(),
    )
    .await
    else {
        return;
    };
    let now = chrono::Utc::now().timestamp();
    for ca in cas {
        gauge!(
            names::CA_EXPIRY,
            "group_id" => ca.project_id,
            "generation" => ca.generation.to_string(),
        )
        .set((ca.not_after - now) as f64);
    }
}

fn expiring(group_id: &str, within: &'static str) -> metrics::Gauge {
    gauge!(
        names::CERTIFICATES_EXPIRING,
        "group_id" => group_id.to_owned(),
        "within" => within,
    )
}

/// The health checks, outside `/api` (so outside authentication, rate limits and audit).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// The Prometheus scrape, for the metrics listener only.
pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The whole body of both health checks.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    #[schema(value_type = String)]
    status: &'static str,
}

fn health(status: StatusCode, word: &'static str) -> Response {
    let body = serde_json::to_vec(&Health { status: word }).expect("a health body serializes");
    uncached(status, "application/json", body)
}

/// A response of `content_type` that no cache may keep (health and metrics are of the moment).
fn uncached(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut res = (status, body.into()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Liveness: the process can answer requests.
#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "getHealthLive",
    tag = "Operations",
    security(()),
    responses((status = 200, description = "The process answers.", content_type = "application/json", body = Health)),
)]
pub async fn live() -> Response {
    health(StatusCode::OK, "ok")
}

/// Readiness: the store answers a ping within [`STORE_TIMEOUT`].
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "getHealthReady",
    tag = "Operations",
    security(()),
    responses(
        (status = 200, description = "The store answers.", content_type = "application/json", body = Health),
        (status = 503, description = "The store does not answer in time.", content_type = "application/json", body = Health),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.inner.observer.store_ready(&*state.inner.store).await {
        health(StatusCode::OK, "ok")
    } else {
        health(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    }
}

/// Prometheus text exposition, on the metrics listener (`--metrics-listen`, loopback by
/// default), not on the API's address. Scrape-time gauges are set first; a store that does not
/// answer leaves the other metrics served and `dbcerts_store_up` at 0.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "Operations",
    security(()),
    responses((status = 200, description = "Prometheus text exposition.", content_type = "text/plain; version=0.0.4", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let inner = &state.inner;
    gauge!(names::KEY_POOL_KEYS).set(inner.pool.stats().depth as f64);
    let thread_side = inner.store.thread_side_stats().await;
    counter!(names::STORE_THREAD_READ_FALLBACKS).absolute(thread_side.read_fallbacks);
    counter!(names::STORE_THREAD_READS_HANDED_OFF).absolute(thread_side.reads_handed_off);
    counter!(names::STORE_WRITER_FALLBACKS).absolute(thread_side.batch_fallbacks);
    inner.observer.refresh_expiring(&*inner.store).await;
    refresh_ca_expiry(&*inner.store).await;
    let body = inner.observer.handle.render();
    uncached(StatusCode::OK, "text/plain; version=0.0.4", body)
}

/// Counts and times every request by operation (`GET /api/atlas/v2/groups/{groupId}`: the method
/// and the matched route template, or `unmatched`) and status. Layered outside the panic
/// catcher and the authentication, so refusals and panics are counted too.
pub async fn count_requests(req: Request, next: Next) -> Response {
    let operation = match req.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", method_label(req.method()), path.as_str()),
        None => "unmatched".to_owned(),
    };
    let started = Instant::now();
    let res = next.run(req).await;
    counter!(
        names::HTTP_REQUESTS,
        "operation" => operation.clone(),
        "status" => res.status().as_u16().to_string(),
    )
    .increment(1);
    histogram!(names::HTTP_DURATION, "operation" => operation).record(started.elapsed());
    res
}

/// The method as a label: the standard ones by name, any other as `OTHER` (a client must not be
/// able to mint new series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::CONNECT), "CONNECT");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_label(&custom), "OTHER");
    }

    #[test]
    fn health_bodies_are_exact() {
        let res = health(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            serde_json::to_string(&Health { status: "ok" }).unwrap(),
            r#"{"status":"ok"}"#
        );
    }
}
