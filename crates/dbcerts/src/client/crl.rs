//! `dbcerts ca crl` and `dbcerts ca crl sync`: the project's CRLs from the server, written where
//! `mongod`'s `net.tls.CRLFile` points.
//!
//! Both talk to a dbcerts server over HTTP with the client profile (`GET
//! /api/dbcerts/v1/groups/{groupId}/crl`, Project Read Only), so they run next to `mongod` with
//! a read-only key, far from the database and the master key.
//!
//! The file is always replaced atomically: the new text goes to a temporary file in the same
//! directory, is flushed to disk, and is renamed over the file, so `mongod` (which reads the
//! same path again on `rotateCertificates`) sees the old file or the new one, never a part.
//!
//! `sync` fetches every `--every`. The file *changed* when the server's PEM differs byte for
//! byte from what the file holds: the server serves its stored CRLs unchanged until it
//! publishes new ones (a revocation, or the periodic refresh well before nextUpdate), so equal
//! bytes mean nothing new. Only then is `--exec` run (and again on the next rounds until it
//! succeeds once). Failures to reach the server are retried with exponential backoff (1 s
//! doubling up to `--every`, at most 5 minutes) while the old file stays in place; SIGTERM or
//! SIGINT ends the loop between rounds with exit status 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use dbcerts_client::ErrorClass;

use super::Ctx;
use super::args::{Opts, ProjectArg};
use super::output::CliError;

/// `dbcerts ca crl`: the flags of the one-shot form, or the `sync` subcommand.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  dbcerts ca crl --projectId 5efda6aea3f2ed2e7dd6ce05 --out /etc/mongodb/dbcerts-crl.pem
  dbcerts ca crl sync --projectId 5efda6aea3f2ed2e7dd6ce05 --out /etc/mongodb/dbcerts-crl.pem \\
      --every 1h --exec 'mongosh --quiet --eval \"db.adminCommand({rotateCertificates: 1})\"'"
)]
pub struct CrlArgs {
    #[command(flatten)]
    pub opts: Opts,
    #[command(flatten)]
    pub project: ProjectArg,
    /// Write the CRLs (PEM) to FILE, atomically (temporary file, fsync, rename over FILE),
    /// instead of printing them
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<CrlCommand>,
}

#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Keep FILE up to date: fetch the CRLs every --every, replace FILE atomically when they
    /// changed and then run --exec. Runs until SIGTERM or SIGINT.
    Sync {
        #[command(flatten)]
        project: ProjectArg,
        /// The CRL file mongod's net.tls.CRLFile names
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// How often to fetch, e.g. 1h, 15m. Keep it well under the server's
        /// crl-refresh-secs, so a new CRL reaches mongod long before the old one's nextUpdate
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        every: humantime::Duration,
        /// Shell command run (sh -c) after each change of FILE, e.g. a mongosh call of
        /// db.adminCommand({rotateCertificates: 1})
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
    },
}

/// The longest wait between retries after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// `dbcerts ca crl [--out FILE]`.
pub async fn once(ctx: Ctx, project: Option<String>, out: Option<PathBuf>) -> Result<(), CliError> {
    let g = ctx.project(project)?;
    let pem = ctx.client.get_project_crl(&g).await?;
    match out {
        Some(path) => write_atomically(&path, pem.as_bytes())
            .map_err(|e| CliError::local(format!("cannot write {}: {e}", path.display()))),
        None => {
            print!("{pem}");
            Ok(())
        }
    }
}

/// `dbcerts ca crl sync`.
pub async fn sync(
    ctx: Ctx,
    project: Option<String>,
    out: PathBuf,
    every: Duration,
    exec: Option<String>,
) -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let g = ctx.project(project)?;
    if every.is_zero() {
        return Err(CliError::usage("--every must be longer than 0s"));
    }
    let signal_err = |e: std::io::Error| CliError::local(format!("cannot watch signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let log = |text: String| eprintln!("dbcerts ca crl sync: {text}");
    let mut backoff = Duration::from_secs(1);
    let mut exec_pending = false;
    let mut succeeded_once = false;
    loop {
        let wait = match ctx.client.get_project_crl(&g).await {
            Ok(pem) => {
                succeeded_once = true;
                backoff = Duration::from_secs(1);
                let current = std::fs::read(&out).ok();
                if current.as_deref() != Some(pem.as_bytes()) {
                    write_atomically(&out, pem.as_bytes()).map_err(|e| {
                        CliError::local(format!("cannot write {}: {e}", out.display()))
                    })?;
                    log(format!(
                        "wrote {} ({} CRL(s))",
                        out.display(),
                        pem.matches("-----BEGIN X509 CRL-----").count()
                    ));
                    exec_pending = exec.is_some();
                }
                if let (true, Some(cmd)) = (exec_pending, &exec) {
                    match run_shell(cmd).await {
                        Ok(()) => exec_pending = false,
                        Err(e) => log(format!("--exec failed, retried next round: {e}")),
                    }
                }
                every
            }
            Err(e) => {
                // A first answer that can never succeed (bad credentials, no such project) is a
                // configuration error: stop at once. After that, keep the old file and retry.
                if !succeeded_once
                    && !matches!(e.class(), ErrorClass::Server | ErrorClass::Transport)
                {
                    return Err(e.into());
                }
                let wait = backoff;
                log(format!(
                    "fetching the CRLs failed ({e}); retrying in {wait:?}"
                ));
                backoff = (backoff * 2).min(every).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    log("stopping".into());
    Ok(())
}

/// Runs `cmd` with `sh -c`; an exit status other than 0 is an error.
async fn run_shell(cmd: &str) -> Result<(), String> {
    let cmd = cmd.to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{status}"))
    }
}

/// Replaces `path` with `bytes` so that readers see either the old file or the whole new one:
/// a temporary file in the same directory (same file system, so the rename is atomic), written
/// and fsynced, mode 0644 (CRLs are public), renamed over `path`; then the directory is fsynced
/// so the rename survives a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crl.pem");
        std::fs::write(&path, "old").unwrap();
        // A reader holding the old file keeps reading the old text: the path now names a new
        // inode, as a rename (never a rewrite in place) gives.
        let before = std::fs::metadata(&path).unwrap().ino();
        let held = std::fs::File::open(&path).unwrap();
        write_atomically(&path, b"new text").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new text");
        let meta = std::fs::metadata(&path).unwrap();
        assert_ne!(meta.ino(), before);
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(held.metadata().unwrap().len(), 3);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("crl.pem")]);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("crl.pem");
        assert!(write_atomically(&path, b"x").is_err());
        assert!(!dir.path().join("absent").exists());
    }
}
