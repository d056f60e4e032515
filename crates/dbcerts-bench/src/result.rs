//! The outcome of one load run, as written to JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::spec::Target;
use crate::stats::LatencyMs;

/// The server's resident memory during a run, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssKib {
    /// When the run started (before the warm-up).
    pub start: u64,
    /// The largest sample, one every 20 ms.
    pub peak: u64,
}

/// What one run measured. Counts and latencies cover the measured requests only, not the
/// warm-up nor Digest challenge round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    pub target: Target,
    pub label: String,
    pub url: String,
    pub method: String,
    pub concurrency: usize,
    /// Measured requests (each either answered or failed).
    pub requests: u64,
    /// Warm-up requests sent before measuring.
    pub warmup: u64,
    /// Measured requests that failed: an unexpected status or body, a timeout or a broken
    /// connection.
    pub errors: u64,
    /// What went wrong with the earliest failed request.
    pub first_error: Option<String>,
    /// From the first measured request's start to the last one's end.
    pub duration_s: f64,
    /// `requests / duration_s`, errors included.
    pub throughput_rps: f64,
    /// From writing a request to having its whole response body, for every answered request
    /// (whatever its status); a Digest retry after a stale nonce is part of its request's time.
    pub latency_ms: LatencyMs,
    /// Measured responses by status code.
    pub status_counts: BTreeMap<u16, u64>,
    /// Connections opened again during the run (warm-up included) after the server closed one
    /// or a request on it failed.
    pub reconnects: u64,
    /// Digest 401 challenges taken (warm-up included): one per worker, plus stale nonces.
    pub auth_challenges: u64,
    /// The server's memory, when its pid was given.
    pub server_rss_kib: Option<RssKib>,
    /// Response body bytes of the measured requests (headers not counted).
    pub bytes_received: u64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub machine: Machine,
}

impl LoadResult {
    /// One human-readable line.
    pub fn summary(&self) -> String {
        let l = &self.latency_ms;
        let mut s = format!(
            "{}: {} requests, {} errors, c={}, {:.2} s, {:.1} req/s; latency ms p50 {:.3} \
             p90 {:.3} p99 {:.3} max {:.3} mean {:.3}",
            self.label,
            self.requests,
            self.errors,
            self.concurrency,
            self.duration_s,
            self.throughput_rps,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            l.mean,
        );
        if let Some(rss) = self.server_rss_kib {
            let _ = write!(s, "; server RSS {} -> peak {} KiB", rss.start, rss.peak);
        }
        if self.reconnects > 0 {
            let _ = write!(s, "; {} reconnects", self.reconnects);
        }
        s
    }
}
