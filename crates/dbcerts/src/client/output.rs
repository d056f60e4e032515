//! Printing: tables (Go's tabwriter, as the atlas CLI's), JSON, one-line errors, exit codes,
//! confirmations, and files that hold private keys.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;

use dbcerts_client::{ClientError, ErrorClass};
use serde::Serialize;

/// The process exit codes of the client commands (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A local failure (a file could not be written), or some renewals failed.
    Failure = 1,
    /// The command line or the request is wrong: clap errors, missing IDs, 4xx other than
    /// 401/403/404, refusing to overwrite a file or to print a key to a terminal.
    Usage = 2,
    /// No credentials, or the server refused them (401, 403, token endpoint).
    Auth = 3,
    /// Something named does not exist (404).
    NotFound = 4,
    /// The server failed (5xx), is rate limiting (429), or answered unreadably.
    Server = 5,
    /// The server could not be reached or did not answer in time.
    Transport = 6,
}

/// A failed client command: its exit code and one line for stderr.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }

    pub fn local(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Failure, message)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        let exit = match e.class() {
            ErrorClass::Usage => Exit::Usage,
            ErrorClass::Auth => Exit::Auth,
            ErrorClass::NotFound => Exit::NotFound,
            ErrorClass::Server => Exit::Server,
            ErrorClass::Transport => Exit::Transport,
        };
        CliError::new(exit, describe(&e))
    }
}

/// One line for a client error. Atlas errors read as the atlas CLI prints them:
/// `HTTP 404 (Error code: "GROUP_NOT_FOUND") Detail: … Reason: Not Found.`
pub fn describe(e: &ClientError) -> String {
    let mut line = String::new();
    match e.api_error() {
        Some(api) => {
            let _ = write!(line, "HTTP {}", api.status);
            if !api.error_code.is_empty() {
                let _ = write!(line, " (Error code: \"{}\")", api.error_code);
            }
            if let Some(detail) = &api.detail {
                let _ = write!(line, " Detail: {detail}");
            }
            if let Some(reason) = &api.reason {
                let _ = write!(line, " Reason: {reason}.");
            }
            if let ClientError::Auth(_) = e {
                line.insert_str(0, "authentication failed: ");
            }
        }
        None => {
            // The source chain names the cause ("connection refused", "timed out").
            line = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let text = s.to_string();
                if !line.contains(&text) {
                    let _ = write!(line, ": {text}");
                }
                source = s.source();
            }
        }
    }
    one_line(&line)
}

/// `text` with every run of whitespace (newlines included) made one space, and other control
/// characters replaced, so that server-supplied text cannot break a line or drive the terminal.
pub fn one_line(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_control() && !c.is_whitespace() {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints `value` as indented JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::local(format!("cannot encode the output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Prints aligned columns under `headers` (cells are made single-line and control-free).
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(6).padding(3);
    let mut line = |cells: &mut dyn Iterator<Item = String>| {
        let joined: Vec<String> = cells.map(|c| one_line(&c).replace('\t', " ")).collect();
        writeln!(tw, "{}", joined.join("\t"))
    };
    let fail = |e: std::io::Error| CliError::local(format!("cannot print: {e}"));
    line(&mut headers.iter().map(|h| (*h).to_owned())).map_err(fail)?;
    for row in rows {
        line(&mut row.iter().cloned()).map_err(fail)?;
    }
    let bytes = tw
        .into_inner()
        .map_err(|e| CliError::local(format!("cannot print: {e}")))?;
    std::io::stdout().write_all(&bytes).map_err(fail)
}

/// A time as tables show it.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Asks before something destructive. `--force` skips the question; without a terminal on
/// stdin there is no one to ask, so the command is refused.
pub fn confirm(force: bool, question: &str) -> Result<(), CliError> {
    if force {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "{question} Pass --force to confirm when stdin is not a terminal."
        )));
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| CliError::usage(format!("no answer: {e}")))?;
    if yes {
        Ok(())
    } else {
        Err(CliError::usage("cancelled"))
    }
}

/// How a file holding a private key is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Refuse,
    Replace,
}

impl Overwrite {
    /// What `--force` asks for.
    pub fn forced(force: bool) -> Overwrite {
        if force {
            Overwrite::Replace
        } else {
            Overwrite::Refuse
        }
    }
}

/// A file for a private key, made ready before the key exists: a 0600 temporary file in the
/// target's directory, so that a missing or unwritable directory or an existing target is
/// found before a certificate is issued. [`SecretFile::commit`] writes, syncs and links it
/// into place.
pub struct SecretFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
    overwrite: Overwrite,
}

impl SecretFile {
    pub fn prepare(path: &Path, overwrite: Overwrite) -> Result<SecretFile, CliError> {
        if overwrite == Overwrite::Refuse && std::fs::symlink_metadata(path).is_ok() {
            return Err(exists(path));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".dbcerts-")
            .tempfile_in(dir)
            .map_err(|e| CliError::local(format!("cannot write {}: {e}", path.display())))?;
        Ok(SecretFile {
            tmp,
            path: path.to_owned(),
            overwrite,
        })
    }

    /// Writes `bytes` and links the file into place. No reader ever sees a partial key, and
    /// with [`Overwrite::Refuse`] an existing file is never replaced, not even one created
    /// since [`SecretFile::prepare`]. If this fails the temporary file is kept (the key in it
    /// may be the only copy) and the error names it.
    pub fn commit(self, bytes: &[u8]) -> Result<(), CliError> {
        let SecretFile {
            mut tmp,
            path,
            overwrite,
        } = self;
        let written = tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all());
        let result = match written {
            Err(e) => Err((e, tmp)),
            Ok(()) => match overwrite {
                Overwrite::Replace => tmp
                    .persist(&path)
                    .map(|_| ())
                    .map_err(|e| (e.error, e.file)),
                Overwrite::Refuse => tmp
                    .persist_noclobber(&path)
                    .map(|_| ())
                    .map_err(|e| (e.error, e.file)),
            },
        };
        result.map_err(|(error, tmp)| {
            let kept = tmp
                .keep()
                .map(|(_, p)| format!("; the certificate and key are in {}", p.display()))
                .unwrap_or_default();
            let why = if error.kind() == std::io::ErrorKind::AlreadyExists {
                exists(&path).message
            } else {
                format!("cannot write {}: {error}", path.display())
            };
            CliError::local(format!("{why}{kept}"))
        })
    }
}

/// The refusal to replace `path` without `--force`.
pub fn exists(path: &Path) -> CliError {
    CliError::usage(format!(
        "{} exists; pass --force to replace it",
        path.display()
    ))
}

/// When stdout is a regular file (`> alice.pem`) that others could read, makes it 0600 before
/// a private key is written to it.
pub fn protect_redirected_stdout() {
    use std::os::unix::fs::PermissionsExt;
    let stdout = Path::new("/dev/stdout");
    if let Ok(meta) = std::fs::metadata(stdout)
        && meta.is_file()
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = std::fs::set_permissions(stdout, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn one_line_flattens_newlines_and_neutralises_escapes() {
        assert_eq!(one_line("a\nb\r\n c"), "a b c");
        assert_eq!(one_line("x\u{1b}[31my"), "x\u{fffd}[31my");
    }

    fn write(path: &Path, bytes: &[u8], overwrite: Overwrite) -> Result<(), CliError> {
        SecretFile::prepare(path, overwrite)?.commit(bytes)
    }

    #[test]
    fn secret_files_are_0600_and_never_clobbered_without_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.pem");
        write(&path, b"first", Overwrite::Refuse).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = write(&path, b"second", Overwrite::Refuse).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // A file that appears between prepare and commit is not replaced either, and the
        // key is kept where the error says.
        let late = dir.path().join("late.pem");
        let prepared = SecretFile::prepare(&late, Overwrite::Refuse).unwrap();
        std::fs::write(&late, b"someone else's").unwrap();
        let e = prepared.commit(b"key").unwrap_err();
        assert_eq!(std::fs::read(&late).unwrap(), b"someone else's");
        let kept = e.message.rsplit("are in ").next().unwrap();
        assert_eq!(std::fs::read(kept).unwrap(), b"key", "{}", e.message);
        std::fs::remove_file(kept).unwrap();
        // A directory that does not exist is found before anything is issued.
        assert!(SecretFile::prepare(&dir.path().join("no/such.pem"), Overwrite::Replace).is_err());
        write(&path, b"third", Overwrite::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary file is left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["alice.pem", "late.pem"]);
    }
}
