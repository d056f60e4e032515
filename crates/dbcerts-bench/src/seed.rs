//! Seeding a dbcerts store for the listing benchmarks: benchmark projects, MANAGED X.509 users
//! and real certificates, written straight through the [`Store`] API instead of over HTTP.
//!
//! The store must be one a server has started on once (so it is bootstrapped and has a master
//! key), and, for SQLite, no server may have it open while seeding. The result is what the
//! server itself would have written had every certificate been requested over HTTP:
//!
//! * projects `bench-000`, `bench-001`, ... of the organization (24-hex ObjectId-like ids);
//! * in each, `users_per_project` MANAGED X.509 users on `$external` with role
//!   `readWriteAnyDatabase@admin`: the first slot of the first project is the hot user
//!   [`HOT_USER`], the others are `user-00000`, `user-00001`, ... numbered across projects (so
//!   the first project, too, stays within Atlas's limit of 100 users per project, and the
//!   default 100 x 100 makes exactly 10,000 users);
//! * certificates signed by each project's managed CA, obtained from
//!   [`dbcerts_server::CaService::get_or_create`] (which creates and stores the sealed CA just as
//!   the server does on first issue), each built with its `certificate.issued` audit entry by
//!   [`dbcerts_server::issuance::sign`], as the server builds them, in the same chained audit
//!   log.
//!
//! Seeding is idempotent and only ever adds: a rerun finds the benchmark projects and users by
//! name and adds certificates until the benchmark projects hold the requested total (counting
//! every user of those projects, including certificates issued over HTTP since), the hot user
//! first up to its own target, the rest to the other users, fewest first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use dbcerts::config::Settings;
use dbcerts_ca::{KeyAlgorithm, LeafKey, random_serial};
use dbcerts_server::ca_service::Who;
use dbcerts_server::issuance::{self, Leaf};
use dbcerts_server::{CaService, ProjectCa};
use dbcerts_store::{
    BatchWrite, DatabaseUserDoc, DatabaseUserRecord, DatabaseUserRole, Page, Project, Recorded,
    Store,
};

/// The hot user: the one that the W3/W4 listing benchmarks page through.
pub const HOT_USER: &str = "hot";
/// The database of X.509 users.
pub const EXTERNAL: &str = "$external";
/// Months of validity: the server's default `monthsUntilExpiration`.
const MONTHS: u32 = 3;
/// Certificates a signing thread signs before handing them to the writer.
const CHUNK: usize = 256;
/// Rows per store call when listing projects and users.
const LIST_PAGE: u32 = 500;
/// How often progress is reported while writing.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The role of every benchmark user: `readWriteAnyDatabase@admin`.
const ROLE: (&str, &str) = ("admin", "readWriteAnyDatabase");

/// What to seed. See [`seed`].
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// The organization; `None` reads `orgId` from `<data-dir>/bootstrap-credentials.json`.
    pub org_id: Option<String>,
    /// Benchmark projects (`bench-000` ...).
    pub projects: usize,
    /// Users in each benchmark project, the hot user included.
    pub users_per_project: usize,
    /// Unexpired certificates the benchmark projects should hold in total afterwards.
    pub certificates: u64,
    /// Certificates the hot user should hold (it is filled first).
    pub hot_user_certificates: u64,
    /// Certificates per transaction (`Store::commit_batch`).
    pub batch: usize,
    /// Signing threads.
    pub threads: usize,
    /// Distinct leaf keys, reused round-robin.
    pub key_ring: usize,
    /// Issuance times are spread uniformly over this many days before now.
    pub spread_days: u32,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            org_id: None,
            projects: 100,
            users_per_project: 100,
            certificates: 0,
            hot_user_certificates: 10_000,
            batch: 5_000,
            threads: 2,
            key_ring: 64,
            spread_days: 30,
        }
    }
}

/// What [`seed`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedReport {
    /// Benchmark projects (all of them, found or created).
    pub projects: usize,
    pub projects_created: usize,
    /// Benchmark users (all of them, the hot user included).
    pub users: usize,
    pub users_created: usize,
    /// Unexpired certificates in the benchmark projects before and after.
    pub certificates_before: u64,
    pub certificates: u64,
    /// Certificates added by this run.
    pub added: u64,
    /// The hot user's unexpired certificates afterwards.
    pub hot_user_certificates: u64,
    pub hot_user: String,
    pub hot_project: String,
    /// Wall time of the whole run, and of signing and writing alone.
    pub seconds: f64,
    pub write_seconds: f64,
}

impl SeedReport {
    /// Certificates added per second of signing and writing.
    pub fn rate(&self) -> f64 {
        if self.write_seconds > 0.0 {
            self.added as f64 / self.write_seconds
        } else {
            0.0
        }
    }

    /// The one JSON line scripts read, keys in this order: `projects`, `users`,
    /// `certificates`, `hot_user`, `hot_project`, `seconds`, `added`.
    pub fn json_line(&self) -> String {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            projects: usize,
            users: usize,
            certificates: u64,
            hot_user: &'a str,
            hot_project: &'a str,
            seconds: f64,
            added: u64,
        }
        serde_json::to_string(&Line {
            projects: self.projects,
            users: self.users,
            certificates: self.certificates,
            hot_user: &self.hot_user,
            hot_project: &self.hot_project,
            seconds: (self.seconds * 1000.0).round() / 1000.0,
            added: self.added,
        })
        .expect("a seed report serializes")
    }
}

/// The name of benchmark project `index`.
pub fn project_name(index: usize) -> String {
    format!("bench-{index:03}")
}

/// The name of the user in `slot` of `project`: [`HOT_USER`] for the very first slot, then
/// `user-00000`, `user-00001`, ... across projects.
pub fn user_name(project: usize, slot: usize, users_per_project: usize) -> String {
    match project * users_per_project + slot {
        0 => HOT_USER.to_owned(),
        n => format!("user-{:05}", n - 1),
    }
}

/// How many certificates each user gets when `total` are added to users holding `counts`:
/// fewest first, so that the counts end as even as possible (water-filling); of users that
/// tie, the earlier ones get the extra one.
pub fn spread(counts: &[u64], total: u64) -> Vec<u64> {
    let Some(&min) = counts.iter().min() else {
        return Vec::new();
    };
    if total == 0 {
        return vec![0; counts.len()];
    }
    let fill = |level: u64| -> u64 { counts.iter().map(|&c| level.saturating_sub(c)).sum() };
    // The lowest level whose filling takes `total`: above `min`, at most `min + total`.
    let (mut lo, mut hi) = (min + 1, min + total);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fill(mid) >= total {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut adds: Vec<u64> = counts.iter().map(|&c| (lo - 1).saturating_sub(c)).collect();
    let mut left = total - adds.iter().sum::<u64>();
    for (add, &c) in adds.iter_mut().zip(counts) {
        if left == 0 {
            break;
        }
        if c < lo {
            *add += 1;
            left -= 1;
        }
    }
    adds
}

/// The order certificates are issued in, as user indices: round-robin over the users with
/// certificates to add (index 0, the hot user, interleaved evenly with the others, so that its
/// rows are spread through the table as they would be in a store that grew over time).
fn issue_order(adds: &[u64]) -> Vec<u32> {
    let hot = adds.first().copied().unwrap_or(0);
    let mut others: Vec<(u32, u64)> = adds
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (i as u32, *n))
        .collect();
    let rest: u64 = others.iter().map(|(_, n)| n).sum();
    let mut round_robin = Vec::with_capacity(rest as usize);
    while !others.is_empty() {
        for (user, left) in &mut others {
            round_robin.push(*user);
            *left -= 1;
        }
        others.retain(|(_, left)| *left > 0);
    }
    let total = hot + rest;
    let mut order = Vec::with_capacity(total as usize);
    let (mut hot_done, mut next_other) = (0u64, round_robin.into_iter());
    for k in 0..total {
        if hot_done < (k + 1) * hot / total {
            order.push(0);
            hot_done += 1;
        } else {
            order.push(
                next_other
                    .next()
                    .expect("the others fill every other place"),
            );
        }
    }
    order
}

/// `<data-dir>/bootstrap-credentials.json`: the organization, and the public key the seeded
/// audit entries name as their actor. The private key is not read.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapFile {
    org_id: String,
    public_key: String,
}

fn read_bootstrap(settings: &Settings) -> anyhow::Result<Option<BootstrapFile>> {
    let path = settings.data_dir.join("bootstrap-credentials.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Refuses a SQLite database that another process (a running server) has open: the seed's
/// large write transactions would hold SQLite's single write lock for seconds at a time, and
/// the counts it plans from would go stale. The check is the shared `<db>.serve.lock` that
/// every open store holds.
fn refuse_if_in_use(settings: &Settings) -> anyhow::Result<()> {
    let Some(db) = dbcerts_store::sqlite_file(&settings.database_url)? else {
        return Ok(());
    };
    if !db.exists() {
        bail!(
            "no database at {}: start `dbcerts serve` on this data directory once (it creates and bootstraps the store), stop it, then seed",
            db.display()
        );
    }
    match dbcerts_store::try_lock_unused(&db)
        .with_context(|| format!("checking whether {} is in use", db.display()))?
    {
        // Released at once: opening the store below takes the lock shared again.
        Some(lock) => drop(lock),
        None => bail!(
            "{} is open in another process (a running `dbcerts serve`?); stop the server before seeding a SQLite store",
            db.display()
        ),
    }
    Ok(())
}

/// Seeds the store `settings` name (see the module documentation). `say` receives one line
/// per step and progress report.
pub async fn seed(
    settings: &Settings,
    opts: &SeedOptions,
    say: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    if opts.projects == 0 || opts.users_per_project == 0 {
        bail!("--projects and --users-per-project must be at least 1");
    }
    if opts.batch == 0 || opts.threads == 0 || opts.key_ring == 0 || opts.spread_days == 0 {
        bail!("--batch, --threads, --key-ring and --spread-days must be at least 1");
    }
    refuse_if_in_use(settings)?;
    let (backend, master) = dbcerts::app::open_checked_store(settings).await?;
    let result = seed_open(settings, opts, &backend, master, say, started).await;
    backend.close().await;
    result
}

/// The benchmark users: `(project index, username)`, the hot user first.
struct Users {
    slots: Vec<(usize, String)>,
    created: usize,
}

async fn seed_open(
    settings: &Settings,
    opts: &SeedOptions,
    backend: &dbcerts_store::Backend,
    master: dbcerts_ca::sealing::MasterKey,
    say: &(dyn Fn(&str) + Sync),
    started: Instant,
) -> anyhow::Result<SeedReport> {
    let store = backend.store();
    if store.is_empty().await? {
        bail!("the store has no organization yet: start `dbcerts serve` on it once first");
    }
    let bootstrap = read_bootstrap(settings)?;
    let org_id = match (&opts.org_id, &bootstrap) {
        (Some(org), _) => org.clone(),
        (None, Some(b)) => b.org_id.clone(),
        (None, None) => bail!(
            "no {} to read orgId from; pass --org-id",
            settings
                .data_dir
                .join("bootstrap-credentials.json")
                .display()
        ),
    };
    if store.get_org(&org_id).await?.is_none() {
        bail!("no organization with id {org_id} in this store");
    }
    // The server writes the caller as the actor; these certificates stand for ones the
    // benchmark's (bootstrap) key would have requested from the loopback address.
    let actor = match &bootstrap {
        Some(b) => format!("api-key:{}", b.public_key),
        None => "operator".to_owned(),
    };
    say(&format!(
        "store {} ({}), organization {org_id}",
        dbcerts_store::redact_url(&settings.database_url),
        backend.kind()
    ));

    let (projects, projects_created) = ensure_projects(store, &org_id, opts.projects).await?;
    say(&format!(
        "projects: {} bench projects ({} found, {projects_created} created)",
        projects.len(),
        projects.len() - projects_created
    ));
    let users = ensure_users(store, &projects, opts.users_per_project).await?;
    say(&format!(
        "users: {} MANAGED X.509 users on $external ({} found, {} created); hot user {HOT_USER:?} in {} ({})",
        users.slots.len(),
        users.slots.len() - users.created,
        users.created,
        projects[0].name,
        projects[0].id
    ));

    let now = chrono::Utc::now();
    let (counts, before) = count_certificates(store, &projects, &users, now.timestamp()).await?;
    let hot_before = counts[0];
    say(&format!(
        "certificates: {before} unexpired in the bench projects, {hot_before} of them the hot user's"
    ));

    let need = opts.certificates.saturating_sub(before);
    let mut report = SeedReport {
        projects: projects.len(),
        projects_created,
        users: users.slots.len(),
        users_created: users.created,
        certificates_before: before,
        certificates: before,
        added: 0,
        hot_user_certificates: hot_before,
        hot_user: HOT_USER.to_owned(),
        hot_project: projects[0].id.clone(),
        seconds: 0.0,
        write_seconds: 0.0,
    };
    if need == 0 {
        say(&format!(
            "nothing to add: the bench projects already hold {before} >= {} certificates",
            opts.certificates
        ));
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let mut adds = vec![0u64; users.slots.len()];
    adds[0] = opts
        .hot_user_certificates
        .saturating_sub(hot_before)
        .min(need);
    if users.slots.len() == 1 {
        adds[0] = need;
    } else {
        let rest = spread(&counts[1..], need - adds[0]);
        adds[1..].copy_from_slice(&rest);
    }
    let others = adds[1..].iter().filter(|n| **n > 0).count();
    say(&format!(
        "adding {need} certificates: {} to the hot user, {} to {others} other users ({} to {} each)",
        adds[0],
        need - adds[0],
        adds[1..].iter().filter(|n| **n > 0).min().unwrap_or(&0),
        adds[1..].iter().max().unwrap_or(&0),
    ));

    // Every project that gets a certificate needs its CA, created as on the first issue.
    let ca = Arc::new(CaService::new(
        backend.shared(),
        Arc::new(master),
        settings.ca_names.clone(),
        settings.key_algorithm,
    ));
    let mut wanted = vec![false; projects.len()];
    for (slot, n) in users.slots.iter().zip(&adds) {
        wanted[slot.0] |= *n > 0;
    }
    let cas = project_cas(&ca, &projects, &wanted).await?;
    let ca_algorithms: HashSet<KeyAlgorithm> =
        cas.iter().flatten().map(|c| c.algorithm()).collect();
    say(&format!(
        "managed CAs: {} ({})",
        cas.iter().flatten().count(),
        ca_algorithms
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let (alg, ring_size, threads) = (settings.key_algorithm, opts.key_ring, opts.threads);
    say(&format!(
        "generating {ring_size} {alg} leaf keys on {threads} threads"
    ));
    let ring = tokio::task::spawn_blocking(move || key_ring(alg, ring_size, threads))
        .await
        .map_err(|e| anyhow!("key generation task: {e}"))??;

    let order = issue_order(&adds);
    let signer = Signer {
        slots: users.slots,
        project_ids: projects.iter().map(|p| p.id.clone()).collect(),
        ocsp_urls: projects
            .iter()
            .map(|p| settings.ocsp.leaf_url(&p.id))
            .collect(),
        project_index: projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect(),
        cas,
        ring,
        actor,
        now_ms: now.timestamp_millis(),
        spread_ms: u64::from(opts.spread_days) * 24 * 3600 * 1000,
    };
    say(&format!(
        "signing on {threads} threads, writing {} per transaction",
        opts.batch
    ));
    let write_started = Instant::now();
    let added = pipeline(store, Arc::new(signer), order, opts, say).await?;
    report.write_seconds = write_started.elapsed().as_secs_f64();
    report.added = added;
    report.certificates = before + added;
    report.hot_user_certificates = hot_before + adds[0];
    report.seconds = started.elapsed().as_secs_f64();
    say(&format!(
        "added {added} certificates in {:.1} s ({:.0}/s); the bench projects hold {} (hot user {}); {:.1} s in all",
        report.write_seconds,
        report.rate(),
        report.certificates,
        report.hot_user_certificates,
        report.seconds
    ));
    Ok(report)
}

/// Finds the benchmark projects of `org_id` by name, creating the missing ones.
async fn ensure_projects(
    store: &dyn Store,
    org_id: &str,
    count: usize,
) -> anyhow::Result<(Vec<Project>, usize)> {
    let orgs = [org_id.to_owned()];
    let mut by_name: HashMap<String, Project> = HashMap::new();
    let mut offset = 0u64;
    loop {
        let (page, total) = store
            .list_projects(
                &orgs,
                Page {
                    offset,
                    limit: LIST_PAGE,
                },
            )
            .await?;
        offset += page.len() as u64;
        let last = page.is_empty() || offset >= total;
        by_name.extend(page.into_iter().map(|p| (p.name.clone(), p)));
        if last {
            break;
        }
    }
    let mut projects = Vec::with_capacity(count);
    let mut created = 0;
    for i in 0..count {
        let name = project_name(i);
        let project = match by_name.remove(&name) {
            Some(p) => p,
            None => {
                let p = Project {
                    id: dbcerts_server::bootstrap::new_object_id(),
                    org_id: org_id.to_owned(),
                    name: name.clone(),
                    created: chrono::Utc::now().timestamp(),
                    with_default_alerts_settings: true,
                    tags_json: "[]".to_owned(),
                };
                store
                    .create_project(&p)
                    .await
                    .with_context(|| format!("creating project {name}"))?;
                created += 1;
                p
            }
        };
        projects.push(project);
    }
    Ok((projects, created))
}

/// All users of a project, by username (a name may exist on both databases).
async fn project_users(
    store: &dyn Store,
    project_id: &str,
) -> anyhow::Result<Vec<DatabaseUserRecord>> {
    let mut users = Vec::new();
    loop {
        let (page, total) = store
            .list_database_users(
                project_id,
                Page {
                    offset: users.len() as u64,
                    limit: LIST_PAGE,
                },
            )
            .await?;
        let last = page.is_empty();
        users.extend(page);
        if last || users.len() as u64 >= total {
            return Ok(users);
        }
    }
}

/// Finds the benchmark users by name, creating the missing ones as the server's
/// createDatabaseUser would.
async fn ensure_users(
    store: &dyn Store,
    projects: &[Project],
    per_project: usize,
) -> anyhow::Result<Users> {
    let mut slots = Vec::with_capacity(projects.len() * per_project);
    let mut created = 0;
    // What createDatabaseUser stores for `{x509Type: MANAGED, roles: [ROLE]}`.
    let doc = DatabaseUserDoc::with_roles(vec![DatabaseUserRole {
        collection_name: None,
        database_name: ROLE.0.to_owned(),
        role_name: ROLE.1.to_owned(),
    }])
    .to_json();
    for (p, project) in projects.iter().enumerate() {
        let existing: HashMap<String, DatabaseUserRecord> = project_users(store, &project.id)
            .await?
            .into_iter()
            .filter(|u| u.database_name == EXTERNAL)
            .map(|u| (u.username.clone(), u))
            .collect();
        for slot in 0..per_project {
            let name = user_name(p, slot, per_project);
            match existing.get(&name) {
                Some(u) if u.x509_type == "MANAGED" => {}
                Some(u) => bail!(
                    "user {name} of project {} is {} X.509, not MANAGED: it cannot hold managed certificates",
                    project.name,
                    u.x509_type
                ),
                None => {
                    let user = DatabaseUserRecord {
                        project_id: project.id.clone(),
                        database_name: EXTERNAL.to_owned(),
                        username: name.clone(),
                        x509_type: "MANAGED".to_owned(),
                        created: chrono::Utc::now().timestamp(),
                        doc: doc.clone(),
                    };
                    store
                        .create_database_user(&user)
                        .await
                        .with_context(|| format!("creating user {name} in {}", project.name))?;
                    created += 1;
                }
            }
            slots.push((p, name));
        }
    }
    Ok(Users { slots, created })
}

/// Unexpired certificates of each benchmark user (in slot order), and of every user of the
/// benchmark projects together.
async fn count_certificates(
    store: &dyn Store,
    projects: &[Project],
    users: &Users,
    now: i64,
) -> anyhow::Result<(Vec<u64>, u64)> {
    let one = Page {
        offset: 0,
        limit: 1,
    };
    let index: HashMap<(usize, &str), usize> = users
        .slots
        .iter()
        .enumerate()
        .map(|(i, (p, name))| ((*p, name.as_str()), i))
        .collect();
    let mut counts = vec![0; users.slots.len()];
    let mut total = 0;
    for (p, project) in projects.iter().enumerate() {
        let names: HashSet<String> = project_users(store, &project.id)
            .await?
            .into_iter()
            .map(|u| u.username)
            .collect();
        for name in names {
            let (_, n) = store
                .list_unexpired_certificates(&project.id, &name, now, one)
                .await?;
            total += n;
            if let Some(&i) = index.get(&(p, name.as_str())) {
                counts[i] = n;
            }
        }
    }
    Ok((counts, total))
}

/// The managed CA of every project marked in `wanted` (created if the project has none yet).
async fn project_cas(
    ca: &Arc<CaService>,
    projects: &[Project],
    wanted: &[bool],
) -> anyhow::Result<Vec<Option<Arc<ProjectCa>>>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, project) in projects.iter().enumerate() {
        if wanted[i] {
            let (ca, id) = (Arc::clone(ca), project.id.clone());
            tasks.spawn(async move { (i, ca.get_or_create(&id).await) });
        }
    }
    let mut cas = vec![None; projects.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.map_err(|e| anyhow!("CA task: {e}"))?;
        let managed = result.map_err(|e| {
            anyhow!(
                "the managed CA of {}: {}: {}",
                projects[i].name,
                e.code,
                e.detail
            )
        })?;
        cas[i] = Some(managed);
    }
    Ok(cas)
}

/// `size` leaf keys of `alg`, generated on `threads` threads.
///
/// The keys are reused round-robin for all certificates. A real issue uses a fresh key for
/// each certificate, but private keys are never stored (only the certificate, whose public-key
/// field has the same size whichever key it holds), so reuse changes no stored byte and no row
/// count; it only spares generating a million keys.
fn key_ring(alg: KeyAlgorithm, size: usize, threads: usize) -> anyhow::Result<Vec<LeafKey>> {
    let per_thread = size.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = per_thread.min(size.saturating_sub(t * per_thread));
                s.spawn(move || {
                    (0..n)
                        .map(|_| alg.generate())
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut ring = Vec::with_capacity(size);
        for h in handles {
            let keys = h
                .join()
                .map_err(|_| anyhow!("a key generation thread panicked"))?
                .map_err(|e| anyhow!("generating a {alg} key: {e}"))?;
            ring.extend(keys);
        }
        Ok(ring)
    })
}

/// Everything a signing thread needs.
struct Signer {
    /// `(project index, username)` per user index.
    slots: Vec<(usize, String)>,
    project_ids: Vec<String>,
    /// The AIA OCSP URL of each project's leaves, when the settings configure a responder.
    ocsp_urls: Vec<Option<String>>,
    project_index: HashMap<String, usize>,
    cas: Vec<Option<Arc<ProjectCa>>>,
    ring: Vec<LeafKey>,
    actor: String,
    now_ms: i64,
    spread_ms: u64,
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    dbcerts_ca::fill_random(&mut bytes);
    u64::from_le_bytes(bytes)
}

impl Signer {
    /// Certificate number `job` (of the issue order) for user `user`: issued at a random moment
    /// of the spread window, with a random serial and the ring's next key.
    fn sign_job(&self, job: usize, user: u32) -> anyhow::Result<BatchWrite> {
        let (project, username) = &self.slots[user as usize];
        let back = (random_u64() % self.spread_ms) as i64;
        let key = &self.ring[job % self.ring.len()];
        self.sign(*project, username, key, self.now_ms - back, random_serial())
    }

    /// The same certificate as `write` with a new serial (after `Recorded::SerialTaken`).
    fn resign(&self, write: &BatchWrite, job: usize) -> anyhow::Result<BatchWrite> {
        let BatchWrite::Certificate(rec, _) = write else {
            bail!("only certificates are seeded");
        };
        let project = self.project_index[&rec.project_id];
        let key = &self.ring[job % self.ring.len()];
        self.sign(project, &rec.username, key, rec.created_ms, random_serial())
    }

    /// A certificate and its audit entry exactly as createDatabaseUserCert builds them
    /// ([`dbcerts_server::issuance::sign`]), with `created_ms` as the issue time.
    fn sign(
        &self,
        project: usize,
        username: &str,
        key: &LeafKey,
        created_ms: i64,
        serial: i64,
    ) -> anyhow::Result<BatchWrite> {
        let ca = self.cas[project]
            .as_ref()
            .ok_or_else(|| anyhow!("no CA loaded for project {project}"))?;
        let leaf = Leaf {
            project_id: &self.project_ids[project],
            username,
            at: chrono::DateTime::from_timestamp_millis(created_ms)
                .ok_or_else(|| anyhow!("issue time {created_ms} out of range"))?,
            months: MONTHS,
            serial,
            ocsp_url: self.ocsp_urls[project].as_deref(),
        };
        let who = Who {
            actor: self.actor.clone(),
            source_ip: Some("127.0.0.1".to_owned()),
        };
        let (rec, audit) = issuance::sign(ca, key, &leaf, who)?;
        Ok(BatchWrite::Certificate(rec, audit))
    }
}

type Chunk = anyhow::Result<Vec<BatchWrite>>;

/// Signs the certificates of `order` on `opts.threads` OS threads and writes them in
/// transactions of about `opts.batch`; returns how many were recorded.
async fn pipeline(
    store: &dyn Store,
    signer: Arc<Signer>,
    order: Vec<u32>,
    opts: &SeedOptions,
    say: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<u64> {
    let total = order.len() as u64;
    let order = Arc::new(order);
    let next = Arc::new(AtomicUsize::new(0));
    // Room for two transactions' worth: signing goes on while one commits.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>((2 * opts.batch).div_ceil(CHUNK) + 1);
    let mut handles = Vec::with_capacity(opts.threads);
    for t in 0..opts.threads {
        let (signer, order, next, tx) = (
            Arc::clone(&signer),
            Arc::clone(&order),
            Arc::clone(&next),
            tx.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("seed-sign-{t}"))
            .spawn(move || {
                loop {
                    let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if start >= order.len() {
                        return;
                    }
                    let end = (start + CHUNK).min(order.len());
                    let chunk: Chunk = (start..end)
                        .map(|job| signer.sign_job(job, order[job]))
                        .collect();
                    let failed = chunk.is_err();
                    // A closed channel: the writer gave up.
                    if tx.blocking_send(chunk).is_err() || failed {
                        return;
                    }
                }
            })
            .context("starting a signing thread")?;
        handles.push(handle);
    }
    drop(tx);
    let written = write_all(store, &signer, &mut rx, total, opts.batch, say).await;
    drop(rx);
    let joined = tokio::task::spawn_blocking(move || {
        // Joins every thread, even after one that panicked.
        let joined: Vec<bool> = handles.into_iter().map(|h| h.join().is_ok()).collect();
        joined.into_iter().all(|ok| ok)
    })
    .await
    .unwrap_or(false);
    let written = written?;
    if !joined {
        bail!("a signing thread panicked");
    }
    if written != total {
        bail!("recorded {written} certificates of {total}");
    }
    Ok(written)
}

/// The writer: receives signed chunks and commits them in batches; a certificate whose serial
/// was taken is signed again with a new serial and goes into the next batch.
async fn write_all(
    store: &dyn Store,
    signer: &Signer,
    rx: &mut tokio::sync::mpsc::Receiver<Chunk>,
    total: u64,
    batch: usize,
    say: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut last_report = started;
    let mut pending: Vec<BatchWrite> = Vec::with_capacity(batch + CHUNK);
    let mut written = 0u64;
    let mut open = true;
    while open || !pending.is_empty() {
        if open {
            match rx.recv().await {
                Some(chunk) => pending.extend(chunk?),
                None => open = false,
            }
        }
        if pending.is_empty() || (pending.len() < batch && open) {
            continue;
        }
        let outcomes = store.commit_batch(&pending).await?;
        if outcomes.len() != pending.len() {
            bail!(
                "commit_batch answered {} outcomes for {} writes",
                outcomes.len(),
                pending.len()
            );
        }
        let mut retry = Vec::new();
        for (i, (write, outcome)) in pending.iter().zip(outcomes).enumerate() {
            match outcome {
                Recorded::Yes => written += 1,
                Recorded::SerialTaken => retry.push(signer.resign(write, i)?),
                Recorded::ProjectGone => {
                    bail!("a benchmark project was deleted while seeding")
                }
                Recorded::UserGone | Recorded::UserNotManaged => {
                    bail!("a benchmark user was deleted or changed while seeding")
                }
                Recorded::CountNotHigher => {
                    bail!("commit_batch answered a nonce count for a certificate")
                }
            }
        }
        pending = retry;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            say(&format!(
                "  {written}/{total} certificates, {secs:.0} s, {:.0}/s",
                written as f64 / secs
            ));
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(project_name(0), "bench-000");
        assert_eq!(project_name(99), "bench-099");
        assert_eq!(user_name(0, 0, 100), HOT_USER);
        assert_eq!(user_name(0, 1, 100), "user-00000");
        assert_eq!(user_name(1, 0, 100), "user-00099");
        assert_eq!(user_name(99, 99, 100), "user-09998");
    }

    #[test]
    fn spread_fills_the_fewest_first() {
        assert_eq!(spread(&[0, 0, 0], 7), vec![3, 2, 2]);
        assert_eq!(spread(&[5, 0, 2], 4), vec![0, 3, 1]);
        assert_eq!(spread(&[5, 0, 2], 10), vec![1, 6, 3]);
        assert_eq!(spread(&[1, 1], 0), vec![0, 0]);
        assert_eq!(spread(&[], 5), Vec::<u64>::new());
        let adds = spread(&[3, 9, 0, 4, 4], 1000);
        assert_eq!(adds.iter().sum::<u64>(), 1000);
    }

    #[test]
    fn issue_order_interleaves_the_hot_user() {
        let order = issue_order(&[4, 2, 0, 2]);
        assert_eq!(order.len(), 8);
        assert_eq!(order.iter().filter(|u| **u == 0).count(), 4);
        assert_eq!(order.iter().filter(|u| **u == 1).count(), 2);
        assert_eq!(order.iter().filter(|u| **u == 3).count(), 2);
        assert_eq!(order, vec![1, 0, 3, 0, 1, 0, 3, 0]);
        assert_eq!(issue_order(&[3, 0]), vec![0, 0, 0]);
        assert_eq!(issue_order(&[0, 1, 2]), vec![1, 2, 2]);
        assert!(issue_order(&[0, 0]).is_empty());
    }
}
