//! The data directory's permissions. It holds the SQLite database, the generated master key and
//! the bootstrap API key, so `serve` refuses one that group or others can enter, unless the
//! operator says another layer protects it (`--allow-readable-data-dir`). What dbcerts creates
//! in it is created 0600 (the directory itself 0700) whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;

/// Refuses `dir` when group or others have any permission on it, unless `allow` is set (then
/// a warning says so). A directory that does not exist yet passes: `serve` creates it 0700.
pub fn check(dir: &Path, allow: bool) -> anyhow::Result<()> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("reading data directory {}", dir.display()));
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if allow {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:o}"),
            "the data directory is open to group or others (--allow-readable-data-dir)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve from data directory {dir}: its mode is {mode:o}, which lets group or others into it, and it holds the database, the master key and the bootstrap API key. \
         Run `chmod 700 {dir}`, or, if another layer protects it, pass --allow-readable-data-dir (DBCERTS_ALLOW_READABLE_DATA_DIR=true, allow-readable-data-dir = true)",
        dir = dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_mode(mode: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn private_or_missing_directories_pass() {
        check(dir_with_mode(0o700).path(), false).unwrap();
        let parent = dir_with_mode(0o700);
        check(&parent.path().join("not-yet"), false).unwrap();
    }

    #[test]
    fn any_group_or_other_bit_is_refused_unless_allowed() {
        for mode in [0o755, 0o750, 0o711, 0o701, 0o770, 0o704] {
            let dir = dir_with_mode(mode);
            let err = check(dir.path(), false).unwrap_err().to_string();
            assert!(err.contains(&format!("{mode:o}")), "{err}");
            assert!(
                err.contains(&format!("chmod 700 {}", dir.path().display())),
                "{err}"
            );
            assert!(err.contains("--allow-readable-data-dir"), "{err}");
            check(dir.path(), true).unwrap();
        }
    }
}
