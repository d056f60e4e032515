//! Rate limits and failed-authentication throttling, kept in this node's memory.
//!
//! Rate limits are GCRA token buckets (the `governor` crate) keyed by caller and endpoint
//! group, refilled continuously at the per-minute rate with a burst of the full minute, as
//! Atlas's "N requests every 1 minutes" reads.
//!
//! Failed authentications are counted per address **and claimed principal** (the Digest
//! username, the OAuth `client_id`): past a threshold each failure is answered more slowly,
//! past a second one that principal is refused from that address with 429 for a while, while
//! the same address presenting another principal's credentials still gets in, so one client
//! behind a NAT or a proxy cannot lock out the others. A looser ceiling per address stops
//! spraying (one wrong guess each for many principals): past it the whole address is refused.
//! Failures that claim no principal (a malformed header, a bad bearer token) count toward the
//! address only. A claimed principal is kept only as a keyed hash of 16 bytes, never as the
//! text, and the tables hold a bounded number of entries. Everything is per node (documented in
//! docs/COMPATIBILITY.md).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::AccessConfig;
use crate::error::AtlasError;

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

/// Failed authentications of one key (an address, or an address and a claimed principal)
/// within the current window.
struct Failures {
    window_start: i64,
    count: u32,
    locked_until: i64,
}

impl Failures {
    fn new(now: i64) -> Failures {
        Failures {
            window_start: now,
            count: 0,
            locked_until: 0,
        }
    }

    /// Counts one failure; true when it locks the key.
    fn count(&mut self, now: i64, window_secs: i64, lock_at: u32, lockout_secs: i64) -> bool {
        if now - self.window_start >= window_secs {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        let locks = self.count >= lock_at && self.locked_until <= now;
        if self.count >= lock_at {
            self.locked_until = now + lockout_secs;
        }
        locks
    }

    fn live(&self, now: i64, window_secs: i64) -> bool {
        self.locked_until > now || now - self.window_start < window_secs
    }
}

/// A claimed principal as a map key: a hash, keyed with a secret of this process, of the
/// scheme and the claimed name. Fixed-size however long the claim, and not the claim itself:
/// a secret pasted into a username field is not kept in memory by the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimKey([u8; 16]);

/// Entries of each failure table at most: past this, new keys are not tracked until expired
/// ones are swept (an address's count still applies to a principal that could not be tracked).
/// About 100 bytes an entry: a few MB at most.
const MAX_TRACKED: usize = 65_536;

/// The failure counts, by address and by address and claimed principal.
#[derive(Default)]
struct FailureTables {
    by_address: HashMap<IpAddr, Failures>,
    by_claim: HashMap<(IpAddr, ClaimKey), Failures>,
    /// Size at which the next sweep of expired entries runs (doubles with live entries, so
    /// sweeping stays amortized constant per failure).
    sweep_at: usize,
    /// When the last sweep ran: a full table is swept at most once a second.
    swept_at: i64,
}

impl FailureTables {
    fn sweep(&mut self, now: i64, window_secs: i64) {
        let size = self.by_address.len() + self.by_claim.len();
        let full = self.by_address.len() >= MAX_TRACKED || self.by_claim.len() >= MAX_TRACKED;
        if size < self.sweep_at.max(SWEEP_AT) && !(full && now > self.swept_at) {
            return;
        }
        self.by_address.retain(|_, f| f.live(now, window_secs));
        self.by_claim.retain(|_, f| f.live(now, window_secs));
        self.swept_at = now;
        self.sweep_at = (self.by_address.len() + self.by_claim.len()) * 2;
    }
}

/// The failures of `key`, a new entry if the table has room for one.
fn tracked<K: Hash + Eq>(
    table: &mut HashMap<K, Failures>,
    key: K,
    now: i64,
) -> Option<&mut Failures> {
    let full = table.len() >= MAX_TRACKED;
    match table.entry(key) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(_) if full => None,
        Entry::Vacant(e) => Some(e.insert(Failures::new(now))),
    }
}

/// Why and for how long a request is refused after failed authentications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// The threshold that was crossed: failures per principal, or per address.
    pub limit: u32,
    /// The failure window, in minutes, as the 429's detail states it.
    pub minutes: u64,
    pub retry_after: Duration,
    /// Whether the whole address is refused (spraying), rather than one principal from it.
    pub whole_address: bool,
}

impl Lockout {
    /// The 429 in Atlas's format (`RATE_LIMITED`, counting failures over the window), as
    /// Atlas words its rate limits, `/api/oauth/token` included.
    pub fn error(&self, resource: &str) -> AtlasError {
        AtlasError::rate_limited(resource, self.limit, self.minutes, self.retry_after)
    }
}

/// This node's limiters.
pub struct Limits {
    config: AccessConfig,
    groups: HashMap<EndpointGroup, (u32, Keyed<String>)>,
    tokens: Keyed<(ClaimKey, IpAddr)>,
    failures: Mutex<FailureTables>,
    claim_secret: [u8; 32],
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
            failures: Mutex::new(FailureTables::default()),
            claim_secret: {
                let mut secret = [0u8; 32];
                dbcerts_ca::fill_random(&mut secret);
                secret
            },
        }
    }

    /// The key a claimed principal is counted under.
    pub fn claim_key(&self, scheme: &str, claimed: &str) -> ClaimKey {
        let mut h = Sha256::new();
        h.update(self.claim_secret);
        h.update(scheme.as_bytes());
        h.update([0]);
        h.update(claimed.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&h.finalize()[..16]);
        ClaimKey(key)
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
            .check_key(&(self.claim_key("oauth", client_id), ip))
            .map(|_| ())
            .map_err(|n| n.wait_time_from(DefaultClock::default().now()))
    }

    fn lockout(&self, limit: u32, whole_address: bool, until: i64, now: i64) -> Lockout {
        Lockout {
            limit,
            minutes: (self.config.auth_failure_window_secs as u64).div_ceil(60),
            retry_after: Duration::from_secs((until - now).max(1) as u64),
            whole_address,
        }
    }

    /// Whether `ip` as a whole is refused after too many failures (spraying).
    pub fn address_locked_out(&self, ip: IpAddr, now: i64) -> Option<Lockout> {
        let tables = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let until = tables.by_address.get(&ip)?.locked_until;
        (until > now).then(|| {
            let limit = self.config.auth_failures_per_address_before_lockout;
            self.lockout(limit, true, until, now)
        })
    }

    /// Whether `claimed` (under `scheme`) is refused from `ip`, or `ip` as a whole.
    pub fn locked_out(&self, ip: IpAddr, scheme: &str, claimed: &str, now: i64) -> Option<Lockout> {
        if let Some(lockout) = self.address_locked_out(ip, now) {
            return Some(lockout);
        }
        let key = (ip, self.claim_key(scheme, claimed));
        let tables = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let until = tables.by_claim.get(&key)?.locked_until;
        (until > now).then(|| {
            let limit = self.config.auth_failures_before_lockout;
            self.lockout(limit, false, until, now)
        })
    }

    /// Records a failed authentication from `ip` claiming to be `claimed` under `scheme` (empty
    /// when it claimed no one) and returns how long to hold the answer back.
    pub fn record_failure(&self, ip: IpAddr, scheme: &str, claimed: &str, now: i64) -> Duration {
        let c = &self.config;
        let window = c.auth_failure_window_secs;
        let claim = (!claimed.is_empty()).then(|| self.claim_key(scheme, claimed));
        let mut tables = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        tables.sweep(now, window);
        let mut counted = None;
        if let Some(claim) = claim
            && let Some(f) = tracked(&mut tables.by_claim, (ip, claim), now)
        {
            if f.count(
                now,
                window,
                c.auth_failures_before_lockout,
                c.auth_lockout_secs,
            ) {
                tracing::warn!(%ip, scheme, failures = f.count, lockout_secs = c.auth_lockout_secs, "a principal is locked out from an address after repeated failed authentications");
            }
            counted = Some(f.count);
        }
        if let Some(f) = tracked(&mut tables.by_address, ip, now) {
            let lock_at = c.auth_failures_per_address_before_lockout;
            if f.count(now, window, lock_at, c.auth_lockout_secs) {
                tracing::warn!(%ip, failures = f.count, lockout_secs = c.auth_lockout_secs, "an address is locked out after repeated failed authentications for many principals");
            }
            // A failure that names no principal is slowed down by its address's count.
            counted = counted.or(Some(f.count));
        }
        let excess = counted
            .unwrap_or(0)
            .saturating_sub(c.auth_failures_before_delay);
        Duration::from_millis(u64::from(excess.min(20)) * 100)
    }
}

/// Requests per minute from one client address, for the endpoints served without credentials
/// (the OCSP responder, the CRL distribution URL), where there is no principal to count: a
/// GCRA bucket per address with a burst of the full minute. A request whose address is not
/// known (no peer address, as in in-process tests) is admitted.
pub struct AddressLimiter {
    per_minute: u32,
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
}

impl AddressLimiter {
    pub fn new(per_minute: u32) -> AddressLimiter {
        let n = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        AddressLimiter {
            per_minute: n.get(),
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    /// The allowance of one minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Counts one request from `ip`; past the allowance, how long until the next is admitted.
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        if self.limiter.len() > SWEEP_AT {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&ip)
            .map_err(|n| n.wait_time_from(DefaultClock::default().now()))
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

    fn with_ceiling(failures_per_address: u32) -> Limits {
        Limits::new(&AccessConfig {
            auth_failures_per_address_before_lockout: failures_per_address,
            ..config()
        })
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
        let fail = |t| l.record_failure(ip, "digest", "alice", t);
        assert_eq!(fail(100), Duration::ZERO);
        assert_eq!(fail(101), Duration::ZERO);
        assert_eq!(fail(102), Duration::from_millis(100));
        assert_eq!(l.locked_out(ip, "digest", "alice", 102), None);
        fail(103);
        let locked = l.locked_out(ip, "digest", "alice", 103).unwrap();
        assert_eq!(locked.retry_after, Duration::from_secs(30));
        assert_eq!((locked.limit, locked.minutes), (4, 1));
        assert!(!locked.whole_address);
        assert_eq!(l.locked_out(ip, "digest", "alice", 133), None);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.locked_out(other, "digest", "alice", 103), None);
    }

    #[test]
    fn a_locked_principal_does_not_lock_others_from_the_same_address() {
        let l = Limits::new(&config());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for t in 0..4 {
            l.record_failure(ip, "digest", "alice", t);
        }
        assert!(l.locked_out(ip, "digest", "alice", 4).is_some());
        assert_eq!(l.locked_out(ip, "digest", "bob", 4), None);
        assert_eq!(l.address_locked_out(ip, 4), None);
        // The same name under another scheme is another principal.
        assert_eq!(l.locked_out(ip, "oauth", "alice", 4), None);
        // Bob's first failures are not slowed down by Alice's.
        assert_eq!(l.record_failure(ip, "digest", "bob", 5), Duration::ZERO);
    }

    #[test]
    fn spraying_many_principals_locks_the_whole_address() {
        let l = with_ceiling(10);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..9 {
            l.record_failure(ip, "digest", &format!("key{i}"), i);
            assert_eq!(
                l.address_locked_out(ip, i),
                None,
                "after {} failures",
                i + 1
            );
        }
        l.record_failure(ip, "digest", "key9", 9);
        let locked = l.address_locked_out(ip, 9).unwrap();
        assert!(locked.whole_address);
        assert_eq!(locked.limit, 10);
        // Every principal is refused from it, one that never failed included.
        assert_eq!(l.locked_out(ip, "digest", "never-failed", 9), Some(locked));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.locked_out(other, "digest", "never-failed", 9), None);
        assert_eq!(l.address_locked_out(ip, 9 + 30), None);
    }

    #[test]
    fn failures_claiming_no_one_count_for_the_address() {
        let l = with_ceiling(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(l.record_failure(ip, "bearer", "", 0), Duration::ZERO);
        assert_eq!(l.record_failure(ip, "bearer", "", 0), Duration::ZERO);
        assert_eq!(l.address_locked_out(ip, 0), None);
        assert_eq!(
            l.record_failure(ip, "bearer", "", 0),
            Duration::from_millis(100)
        );
        assert!(l.address_locked_out(ip, 0).is_some());
    }

    #[test]
    fn claimed_principals_cannot_grow_the_tables_without_bound() {
        let l = with_ceiling(u32::MAX);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // Each claim is long; none is kept as text.
        let long = "k".repeat(200);
        for i in 0..MAX_TRACKED + 1000 {
            l.record_failure(ip, "digest", &format!("{long}{i}"), 0);
        }
        let tables = l.failures.lock().unwrap();
        assert_eq!(tables.by_claim.len(), MAX_TRACKED);
        assert_eq!(tables.by_address.len(), 1);
        drop(tables);
        // Once their window is over, entries are swept and new principals are tracked again.
        for t in [100, 101] {
            l.record_failure(ip, "digest", "fresh", t);
        }
        let tables = l.failures.lock().unwrap();
        assert!(
            tables.by_claim.len() < SWEEP_AT,
            "{}",
            tables.by_claim.len()
        );
        assert_eq!(
            tables.by_claim[&(ip, l.claim_key("digest", "fresh"))].count,
            2
        );
    }

    #[test]
    fn claim_keys_are_keyed_hashes() {
        let a = Limits::new(&config());
        let b = Limits::new(&config());
        assert_eq!(
            a.claim_key("digest", "alice"),
            a.claim_key("digest", "alice")
        );
        assert_ne!(a.claim_key("digest", "alice"), a.claim_key("digest", "bob"));
        assert_ne!(
            a.claim_key("digest", "alice"),
            a.claim_key("oauth", "alice")
        );
        // No separator confusion between scheme and claim.
        assert_ne!(a.claim_key("digest", "x"), a.claim_key("digestx", ""));
        // Another process (another secret) hashes differently.
        assert_ne!(
            a.claim_key("digest", "alice"),
            b.claim_key("digest", "alice")
        );
    }

    #[test]
    fn the_failure_window_restarts() {
        let l = Limits::new(&config());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for t in 0..3 {
            l.record_failure(ip, "digest", "alice", t);
        }
        assert_eq!(l.record_failure(ip, "digest", "alice", 100), Duration::ZERO);
        assert_eq!(l.locked_out(ip, "digest", "alice", 100), None);
    }
}
