//! Rate limits and failed-authentication throttling, kept in this node's memory.
//!
//! Rate limits are GCRA token buckets (the `governor` crate) keyed by caller and endpoint
//! group, refilled continuously at the per-minute rate with a burst of the full minute, as
//! Atlas's "N requests every 1 minutes" reads. Failed authentications are counted per address:
//! past a threshold each failure is answered more slowly, past a second one the address is
//! refused with 429 for a while. Both are per node (documented in docs/COMPATIBILITY.md).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::AccessConfig;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Endpoint groups with separate limits, as Atlas counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointGroup {
    Certs,
    DatabaseUsers,
    UserSecurity,
    Groups,
    Orgs,
}

impl EndpointGroup {
    /// The group of an `/api/atlas/<version>/...` path.
    pub fn of(path: &str) -> EndpointGroup {
        let mut segs = path.split('/').filter(|s| !s.is_empty()).skip(3);
        let top = segs.next().unwrap_or("");
        let rest: Vec<&str> = segs.collect();
        if top == "orgs" {
            EndpointGroup::Orgs
        } else if rest.get(1) == Some(&"databaseUsers") {
            if rest.last() == Some(&"certs") {
                EndpointGroup::Certs
            } else {
                EndpointGroup::DatabaseUsers
            }
        } else if rest.get(1) == Some(&"userSecurity") {
            EndpointGroup::UserSecurity
        } else {
            EndpointGroup::Groups
        }
    }
}

/// The outcome of a rate-limit check that passed: the figures for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: u32,
    pub remaining: u32,
}

/// A refusal: the limit and how long until the next request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub limit: u32,
    pub retry_after: Duration,
}

struct Failures {
    window_start: i64,
    count: u32,
    locked_until: i64,
}

/// This node's limiters.
pub struct Limits {
    config: AccessConfig,
    groups: HashMap<EndpointGroup, (u32, Keyed<String>)>,
    tokens: Keyed<(String, IpAddr)>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

fn per_minute<K: Hash + Eq + Clone>(n: u32) -> Keyed<K> {
    let n = NonZeroU32::new(n.max(1)).expect("at least one");
    RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>()
}

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

impl Limits {
    pub fn new(config: &AccessConfig) -> Limits {
        let r = config.rate_limits;
        let groups = [
            (EndpointGroup::Certs, r.certs),
            (EndpointGroup::DatabaseUsers, r.database_users),
            (EndpointGroup::UserSecurity, r.user_security),
            (EndpointGroup::Groups, r.groups),
            (EndpointGroup::Orgs, r.orgs),
        ]
        .into_iter()
        .map(|(g, n)| (g, (n, per_minute(n))))
        .collect();
        Limits {
            config: config.clone(),
            groups,
            tokens: per_minute(config.token_requests_per_minute),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request by `actor` to `group`.
    pub fn request(&self, actor: &str, group: EndpointGroup) -> Result<Allowance, Refusal> {
        let (limit, limiter) = &self.groups[&group];
        if limiter.len() > SWEEP_AT {
            limiter.retain_recent();
        }
        match limiter.check_key(&actor.to_owned()) {
            Ok(snapshot) => Ok(Allowance {
                limit: *limit,
                remaining: snapshot.remaining_burst_capacity(),
            }),
            Err(not_until) => Err(Refusal {
                limit: *limit,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }),
        }
    }

    /// Counts one token request by `client_id` from `ip`; `Err` holds the wait.
    pub fn token_request(&self, client_id: &str, ip: IpAddr) -> Result<(), Duration> {
        if self.tokens.len() > SWEEP_AT {
            self.tokens.retain_recent();
        }
        self.tokens
            .check_key(&(client_id.to_owned(), ip))
            .map(|_| ())
            .map_err(|n| n.wait_time_from(DefaultClock::default().now()))
    }

    /// Seconds until `ip` may try again, if it is locked out.
    pub fn locked_out(&self, ip: IpAddr, now: i64) -> Option<i64> {
        let failures = self.failures.lock().expect("failure table");
        failures
            .get(&ip)
            .filter(|f| f.locked_until > now)
            .map(|f| f.locked_until - now)
    }

    /// Records a failed authentication from `ip` and returns how long to hold the answer back.
    pub fn record_failure(&self, ip: IpAddr, now: i64) -> Duration {
        let c = &self.config;
        let mut failures = self.failures.lock().expect("failure table");
        if failures.len() > SWEEP_AT {
            failures.retain(|_, f| {
                f.locked_until > now || now - f.window_start < c.auth_failure_window_secs
            });
        }
        let f = failures.entry(ip).or_insert(Failures {
            window_start: now,
            count: 0,
            locked_until: 0,
        });
        if now - f.window_start >= c.auth_failure_window_secs {
            f.window_start = now;
            f.count = 0;
        }
        f.count += 1;
        if f.count >= c.auth_failures_before_lockout {
            f.locked_until = now + c.auth_lockout_secs;
        }
        let excess = f.count.saturating_sub(c.auth_failures_before_delay);
        Duration::from_millis(u64::from(excess.min(20)) * 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RateLimits;

    fn config() -> AccessConfig {
        AccessConfig {
            rate_limits: RateLimits {
                certs: 3,
                database_users: 5,
                user_security: 3,
                groups: 3,
                orgs: 3,
            },
            token_requests_per_minute: 2,
            auth_failures_before_delay: 2,
            auth_failures_before_lockout: 4,
            auth_failure_window_secs: 60,
            auth_lockout_secs: 30,
            ..AccessConfig::default()
        }
    }

    #[test]
    fn paths_map_to_atlas_endpoint_groups() {
        let g = EndpointGroup::of;
        let p = "/api/atlas/v2/groups/5f0000000000000000000000";
        assert_eq!(
            g(&format!("{p}/databaseUsers/$external/CN=a/certs")),
            EndpointGroup::Certs
        );
        assert_eq!(
            g(&format!("{p}/databaseUsers/admin/bob")),
            EndpointGroup::DatabaseUsers
        );
        assert_eq!(
            g(&format!("{p}/databaseUsers")),
            EndpointGroup::DatabaseUsers
        );
        assert_eq!(
            g(&format!("{p}/userSecurity/customerX509")),
            EndpointGroup::UserSecurity
        );
        assert_eq!(g(p), EndpointGroup::Groups);
        assert_eq!(g("/api/atlas/v2/groups"), EndpointGroup::Groups);
        assert_eq!(g("/api/atlas/v1.0/orgs/x/apiKeys"), EndpointGroup::Orgs);
    }

    #[test]
    fn each_caller_and_group_has_its_own_bucket() {
        let l = Limits::new(&config());
        for expected in [2, 1, 0] {
            let a = l.request("alice", EndpointGroup::Certs).unwrap();
            assert_eq!((a.limit, a.remaining), (3, expected));
        }
        let refused = l.request("alice", EndpointGroup::Certs).unwrap_err();
        assert_eq!(refused.limit, 3);
        assert!(refused.retry_after > Duration::ZERO);
        assert!(refused.retry_after <= Duration::from_secs(20));
        assert!(l.request("bob", EndpointGroup::Certs).is_ok());
        assert_eq!(
            l.request("alice", EndpointGroup::DatabaseUsers)
                .unwrap()
                .limit,
            5
        );
    }

    #[test]
    fn token_requests_are_limited_per_client_and_address() {
        let l = Limits::new(&config());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.token_request("c", a).is_ok());
        assert!(l.token_request("c", a).is_ok());
        assert!(l.token_request("c", a).is_err());
        assert!(l.token_request("c", b).is_ok());
        assert!(l.token_request("d", a).is_ok());
    }

    #[test]
    fn failures_slow_down_then_lock_out_then_expire() {
        let l = Limits::new(&config());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(l.record_failure(ip, 100), Duration::ZERO);
        assert_eq!(l.record_failure(ip, 101), Duration::ZERO);
        assert_eq!(l.record_failure(ip, 102), Duration::from_millis(100));
        assert_eq!(l.locked_out(ip, 102), None);
        l.record_failure(ip, 103);
        assert_eq!(l.locked_out(ip, 103), Some(30));
        assert_eq!(l.locked_out(ip, 133), None);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.locked_out(other, 103), None);
    }

    #[test]
    fn the_failure_window_restarts() {
        let l = Limits::new(&config());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for t in 0..3 {
            l.record_failure(ip, t);
        }
        assert_eq!(l.record_failure(ip, 100), Duration::ZERO);
        assert_eq!(l.locked_out(ip, 100), None);
    }
}
