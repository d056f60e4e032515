//! Operator commands that work on the store directly, for bootstrap and recovery: create an API
//! key with given roles, rotate the bootstrap key, read or verify the audit log, and back up or
//! restore a SQLite database, and write an exported CA certificate to a file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use dbcerts_server::bootstrap::new_api_key;
use dbcerts_server::secrets::{MASTER_KEY_CHECK, load_master_key, opens_check_value};
use dbcerts_store::{AuditEvent, AuditFilter, Backend, ProjectGrant, Store};
use serde::{Deserialize, Serialize};

use crate::app::{key_to_generate, open_checked_store};
use crate::config::Settings;

/// Entries read per store call while walking the log.
const BATCH: u32 = 1000;

/// One audit entry as `audit list --json` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut<'a> {
    seq: i64,
    at: String,
    actor: &'a str,
    source_ip: Option<&'a str>,
    action: &'a str,
    project_id: Option<&'a str>,
    target: Option<&'a str>,
    status: Option<u16>,
    details: serde_json::Value,
}

/// How `audit verify` names a chain.
pub fn chain_label(chain: &str) -> String {
    if chain.is_empty() {
        "store chain".to_owned()
    } else {
        format!("chain of project {chain}")
    }
}

fn at_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Writes entries matching `filter` to `out`, one line each (JSON lines with `json`).
pub async fn list_audit(
    store: &dyn Store,
    filter: &AuditFilter,
    limit: Option<u64>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut after = 0i64;
    let mut shown = 0u64;
    loop {
        let batch = store.list_audit(filter, after, BATCH).await?;
        if batch.is_empty() {
            return Ok(shown);
        }
        for e in &batch {
            if limit.is_some_and(|l| shown >= l) {
                return Ok(shown);
            }
            let ev = &e.event;
            if json {
                let line = EntryOut {
                    seq: e.seq,
                    at: at_text(ev.at_ms),
                    actor: &ev.actor,
                    source_ip: ev.source_ip.as_deref(),
                    action: &ev.action,
                    project_id: ev.project_id.as_deref(),
                    target: ev.target.as_deref(),
                    status: ev.status,
                    details: serde_json::from_str(&ev.details).unwrap_or_default(),
                };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            } else {
                writeln!(
                    out,
                    "{:>6}  {}  {:<40}  {:<16}  {}  {}{}{}",
                    e.seq,
                    at_text(ev.at_ms),
                    ev.actor,
                    ev.source_ip.as_deref().unwrap_or("-"),
                    ev.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    ev.action,
                    ev.project_id
                        .as_deref()
                        .map_or_else(String::new, |p| format!("  project={p}")),
                    ev.target
                        .as_deref()
                        .map_or_else(String::new, |t| format!("  target={t}")),
                )?;
            }
            shown += 1;
        }
        after = batch.last().map_or(after, |e| e.seq);
    }
}

/// Parses `--since`/`--until`: RFC 3339 or a date (`2026-11-24`, midnight UTC).
pub fn parse_time_ms(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("{text:?} is not a time like 2026-11-24T10:00:00Z or a date like 2026-11-24")
    })?;
    Ok(d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis())
}

/// A new API key's credentials, printed once.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub org_id: String,
    pub id: String,
    pub public_key: String,
    pub private_key: String,
}

async fn operator_audit(store: &dyn Store, action: &str, target: &str, details: serde_json::Value) {
    let event = AuditEvent {
        at_ms: chrono::Utc::now().timestamp_millis(),
        actor: "operator".into(),
        source_ip: None,
        action: action.into(),
        project_id: None,
        target: Some(target.into()),
        status: None,
        details: details.to_string(),
    };
    if let Err(e) = store.append_audit(&event).await {
        tracing::error!(error = %e, "could not append to the audit log");
    }
}

/// `dbcerts apikey create`: an API key with the given organization roles and project grants.
pub async fn create_api_key(
    settings: &Settings,
    org: Option<&str>,
    description: &str,
    org_roles: &[String],
    project_roles: &[String],
) -> anyhow::Result<Credentials> {
    let (backend, master) = open_checked_store(settings).await?;
    let store = backend.store();
    let org_id = match org {
        Some(o) => o.to_owned(),
        None => bootstrap_org(&settings.data_dir)?,
    };
    store
        .get_org(&org_id)
        .await?
        .with_context(|| format!("no organization with id {org_id}"))?;
    for r in org_roles {
        anyhow::ensure!(
            dbcerts_server::auth::OrgRole::parse(r).is_some(),
            "{r:?} is not an organization role (one of {})",
            dbcerts_server::auth::roles::ORG_ROLE_NAMES.join(", ")
        );
    }
    let mut grants = Vec::new();
    let (key, private_key) = new_api_key(&master, &org_id, description, org_roles.to_vec());
    for spec in project_roles {
        let (project, role) = spec
            .split_once(':')
            .with_context(|| format!("--project-role {spec:?} is not PROJECT_ID:ROLE"))?;
        anyhow::ensure!(
            dbcerts_server::auth::ProjectRole::parse(role).is_some(),
            "{role:?} is not a project role (one of {})",
            dbcerts_server::auth::roles::PROJECT_ROLE_NAMES.join(", ")
        );
        let p = store
            .get_project(project)
            .await?
            .with_context(|| format!("no project with id {project}"))?;
        anyhow::ensure!(
            p.org_id == org_id,
            "project {project} is in another organization"
        );
        match grants
            .iter_mut()
            .find(|g: &&mut ProjectGrant| g.project_id == project)
        {
            Some(g) => g.roles.push(role.to_owned()),
            None => grants.push(ProjectGrant {
                principal_id: key.id.clone(),
                project_id: project.to_owned(),
                roles: vec![role.to_owned()],
            }),
        }
    }
    store.create_api_key(&key, &grants).await?;
    operator_audit(
        store,
        "operator.api_key.created",
        &key.public_key,
        serde_json::json!({ "orgRoles": org_roles, "projectRoles": project_roles }),
    )
    .await;
    store.close().await;
    Ok(Credentials {
        org_id,
        id: key.id,
        public_key: key.public_key,
        private_key: private_key.to_string(),
    })
}

fn bootstrap_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("bootstrap-credentials.json")
}

fn bootstrap_org(data_dir: &Path) -> anyhow::Result<String> {
    let path = bootstrap_file(data_dir);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (or pass --org)", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["orgId"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{} has no orgId", path.display()))
}

/// `dbcerts apikey rotate-bootstrap`: replaces the bootstrap key with a new one holding the
/// same roles, writes the new credentials file (mode 0600) and then deletes the old key.
pub async fn rotate_bootstrap(settings: &Settings) -> anyhow::Result<Credentials> {
    let path = bootstrap_file(&settings.data_dir);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let old: serde_json::Value = serde_json::from_str(&text)?;
    let old_public = old["publicKey"]
        .as_str()
        .with_context(|| format!("{} has no publicKey", path.display()))?;
    let (backend, master) = open_checked_store(settings).await?;
    let store = backend.store();
    let old_key = store
        .get_api_key(old_public)
        .await?
        .with_context(|| format!("the bootstrap key {old_public} no longer exists"))?;
    let grants = store.list_grants(&old_key.id).await?;
    let (key, private_key) = new_api_key(
        &master,
        &old_key.org_id,
        &old_key.description,
        old_key.org_roles.clone(),
    );
    let grants: Vec<ProjectGrant> = grants
        .into_iter()
        .map(|g| ProjectGrant {
            principal_id: key.id.clone(),
            ..g
        })
        .collect();
    store.create_api_key(&key, &grants).await?;
    let creds = Credentials {
        org_id: key.org_id.clone(),
        id: key.id.clone(),
        public_key: key.public_key.clone(),
        private_key: private_key.to_string(),
    };
    // The new file is in place before the old key goes: a crash in between leaves two working
    // keys, never none.
    write_private_file(&path, &serde_json::to_vec_pretty(&creds)?)?;
    store.delete_api_key(&old_key.id).await?;
    operator_audit(
        store,
        "operator.api_key.rotated",
        &key.public_key,
        serde_json::json!({ "replaced": old_key.public_key }),
    )
    .await;
    store.close().await;
    Ok(creds)
}

/// Writes `bytes` to `path` atomically, mode 0600.
fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `dbcerts backup --to FILE`: a consistent online copy of the SQLite database (`VACUUM INTO`),
/// mode 0600, synced. Returns the line to print.
pub async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<String> {
    if let Some(db) = dbcerts_store::sqlite_file(&settings.database_url)?
        && !db.exists()
    {
        anyhow::bail!("there is no database at {} to back up", db.display());
    }
    let (backend, _master) = open_checked_store(settings).await?;
    let Backend::Sqlite(store) = &backend else {
        backend.close().await;
        anyhow::bail!(
            "dbcerts backup copies SQLite databases; back up PostgreSQL with its own tools (pg_dump or a base backup, see README), and keep the master key safe, apart from the backups"
        );
    };
    // VACUUM INTO writes into an empty file; creating it first sets the mode and refuses to
    // overwrite anything.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    let result = store.backup_to(to).await;
    let counts = match &result {
        Ok(()) => Some(count_rows(to).await),
        Err(_) => None,
    };
    backend.close().await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(to);
        return Err(e).with_context(|| format!("backing up to {}", to.display()));
    }
    let counts = counts.expect("counted after a successful backup")?;
    Ok(format!(
        "backed up {counts} to {}; it needs the master key to be restored: keep that safe too, apart from the backups",
        to.display()
    ))
}

/// `dbcerts restore --from FILE`: checks the backup (SQLite integrity, and the master key opens
/// it), then replaces the database file, keeping the replaced one (with its WAL) beside it.
/// Refuses while any process has the database open.
pub async fn restore(settings: &Settings, from: &Path) -> anyhow::Result<String> {
    let db = dbcerts_store::sqlite_file(&settings.database_url)?.ok_or_else(|| {
        anyhow::anyhow!(
            "dbcerts restore restores SQLite databases; restore PostgreSQL with its own tools (pg_restore, see README)"
        )
    })?;
    if !from.is_file() {
        anyhow::bail!("{} is not a file", from.display());
    }
    if let Some(path) = key_to_generate(&settings.master_key) {
        anyhow::bail!(
            "no master key at {}; put back the master key kept with the backup (or pass --master-key-file) before restoring",
            path.display()
        );
    }
    let (master, _) = load_master_key(&settings.master_key)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let Some(_exclusive) = dbcerts_store::try_lock_unused(&db)? else {
        anyhow::bail!(
            "{} is in use (a dbcerts server or command has it open); stop it before restoring",
            db.display()
        );
    };
    // Check a copy, so that neither the backup nor the current database is touched until the
    // copy is known to be good; opening it applies any newer migrations.
    let staged = sibling(&db, ".restoring");
    remove_database_files(&staged)?;
    std::fs::copy(from, &staged).with_context(|| format!("copying {}", from.display()))?;
    // `copy` gives the copy the backup's mode; the restored database is private whatever that is.
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", staged.display()))?;
    let checked = async {
        let store = dbcerts_store::SqliteStore::open(&staged).await?;
        let integrity = store.integrity_check().await?;
        let check = store.server_secret(MASTER_KEY_CHECK).await;
        store.close().await;
        if integrity != "ok" {
            anyhow::bail!("the backup fails SQLite's integrity check: {integrity}");
        }
        // Read, never created: a database without the check value is not a dbcerts backup
        // (an empty file opens as an empty store, which must not replace a real one).
        match check? {
            None => anyhow::bail!(
                "{} is not a dbcerts backup (it has no master-key check value)",
                from.display()
            ),
            Some(sealed) if !opens_check_value(&master, &sealed) => anyhow::bail!(
                "the master key does not open this backup (it was sealed with another key)"
            ),
            Some(_) => Ok(()),
        }
    }
    .await;
    let _ = std::fs::remove_file(dbcerts_store::lock_path(&staged, "serve"));
    let _ = std::fs::remove_file(dbcerts_store::lock_path(&staged, "migrate"));
    if let Err(e) = checked {
        remove_database_files(&staged)?;
        return Err(e);
    }
    // The checked store is closed, but sqlx closes a pool's SQLite connections on their worker
    // threads, so their last close (which folds the WAL in and removes the -wal and -shm files)
    // may still be under way: fold the WAL in here, then remove the two files, so that only the
    // database file is renamed and nothing is left beside it.
    dbcerts_store::checkpoint_file(&staged)
        .await
        .with_context(|| format!("checkpointing {}", staged.display()))?;
    remove_siblings(&staged, &["-wal", "-shm"])?;
    let counts = count_rows(&staged).await?;
    std::fs::File::open(&staged)?.sync_all()?;
    // The swap: at every moment `db` is a complete database, the old one or the restored one.
    // The old one's WAL is folded into it first, so that the file alone is complete, then the
    // file is kept under another name (a hard link) and the restored file renamed over it.
    let kept = if db.exists() {
        dbcerts_store::checkpoint_file(&db)
            .await
            .with_context(|| format!("checkpointing {}", db.display()))?;
        let kept = unused_sibling(
            &db,
            &format!(
                ".pre-restore-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            ),
        );
        std::fs::hard_link(&db, &kept)
            .or_else(|_| std::fs::copy(&db, &kept).map(|_| ()))
            .with_context(|| format!("keeping {} as {}", db.display(), kept.display()))?;
        remove_siblings(&db, &["-wal", "-shm"])?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&staged, &db)
        .with_context(|| format!("moving the backup to {}", db.display()))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(match kept {
        Some(kept) => format!(
            "restored {counts} from {} into {}; the replaced database is at {}",
            from.display(),
            db.display(),
            kept.display()
        ),
        None => format!(
            "restored {counts} from {} into {}",
            from.display(),
            db.display()
        ),
    })
}

/// `<path><suffix>`.
fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// `<path><suffix>`, or `<path><suffix>.N` with the first N for which no such database file
/// (nor its WAL or shared-memory file) exists: a kept database is never overwritten.
fn unused_sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let taken = |p: &Path| ["", "-wal", "-shm"].iter().any(|s| sibling(p, s).exists());
    let first = sibling(path, suffix);
    if !taken(&first) {
        return first;
    }
    (1..)
        .map(|n| sibling(path, &format!("{suffix}.{n}")))
        .find(|p| !taken(p))
        .expect("some suffix is free")
}

/// Removes a database file and its WAL and shared-memory files, if there.
fn remove_database_files(db: &Path) -> anyhow::Result<()> {
    remove_siblings(db, &["", "-wal", "-shm"])
}

/// Removes `<db><suffix>` for each suffix, where there.
fn remove_siblings(db: &Path, suffixes: &[&str]) -> anyhow::Result<()> {
    for suffix in suffixes {
        match std::fs::remove_file(sibling(db, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}{suffix}", db.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// "N projects, N database users, N certificates" in the database file at `db`, read only.
async fn count_rows(db: &Path) -> anyhow::Result<String> {
    let c = dbcerts_store::row_counts(db).await?;
    Ok(format!(
        "{} projects, {} database users, {} certificates",
        c.projects, c.database_users, c.certificates
    ))
}

/// Refuses an existing `path` unless `force`: checked before anything is done for it.
pub fn check_replaceable(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(exists(path));
    }
    Ok(())
}

fn exists(path: &Path) -> anyhow::Error {
    anyhow::anyhow!("{} exists; pass --force to replace it", path.display())
}

/// Writes a certificate `pem` to `path` with mode 0644 (a certificate is public, and the
/// `mongod` that reads it may run as another user), all or nothing: a temporary file in the
/// same directory is written, synced and then linked into place, so `path` never holds a
/// partial or empty certificate. Without `force` an existing file is never replaced.
pub fn write_certificate_file(path: &Path, pem: &str, force: bool) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let cannot = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".dbcerts-")
        .tempfile_in(dir)
        .with_context(cannot)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|_| tmp.write_all(pem.as_bytes()))
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(cannot)?;
    let placed = if force {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    placed.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            anyhow::Error::new(e.error).context(cannot())
        }
    })
}
