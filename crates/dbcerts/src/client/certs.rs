//! `dbusers certs list|create|expiring|renew|revoke|status`. Private keys go to 0600 files, or to stdout
//! when it is not a terminal; never into a table, JSON output, error or log.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dbcerts_client::{CertStatus, IssuedCertificate, ManagedUserCerts, expiring_before};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::args::CertsCommand;
use super::output::{
    CliError, Overwrite, SecretFile, one_line, print_json, print_table, protect_redirected_stdout,
    time,
};
use super::profile::create_private_dir;
use super::{Ctx, list_options};

/// What is printed about an issued certificate: never its key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Written {
    group_id: String,
    username: String,
    serial: String,
    not_after: DateTime<Utc>,
    subject: String,
    path: PathBuf,
}

/// Serial (decimal, as the API's `_id`), `notAfter` and subject of the issued certificate.
fn certificate_facts(
    issued: &IssuedCertificate,
) -> Result<(String, DateTime<Utc>, String), String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(issued.certificate_pem().as_bytes())
        .map_err(|e| format!("the certificate PEM does not parse: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or("the certificate's notAfter is out of range")?;
    Ok((
        cert.tbs_certificate.serial.to_string(),
        not_after,
        cert.subject().to_string(),
    ))
}

/// Issues a certificate for `username` and writes it to `path`.
async fn issue_to_file(
    ctx: &Ctx,
    group_id: &str,
    username: &str,
    months: Option<u32>,
    path: &Path,
    overwrite: Overwrite,
) -> Result<Written, CliError> {
    // The file is made ready first: nothing is issued for a file that cannot be written.
    let file = SecretFile::prepare(path, overwrite)?;
    let issued = ctx
        .client
        .create_database_user_cert(group_id, username, months)
        .await?;
    // The key is written before anything else can fail: the certificate is already on record.
    file.commit(issued.pem().as_bytes())?;
    let (serial, not_after, subject) = certificate_facts(&issued)
        .map_err(|e| CliError::local(format!("{}: {e}", path.display())))?;
    Ok(Written {
        group_id: group_id.to_owned(),
        username: username.to_owned(),
        serial,
        not_after,
        subject,
        path: path.to_owned(),
    })
}

pub async fn run(ctx: Ctx, command: CertsCommand) -> Result<(), CliError> {
    match command {
        CertsCommand::List {
            username,
            project,
            page,
        } => {
            let g = ctx.project(project.project_id)?;
            let page = ctx
                .client
                .list_database_user_certs(&g, &username, list_options(page))
                .await?;
            if ctx.json() {
                return print_json(&page);
            }
            let rows: Vec<Vec<String>> = page
                .results
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        time(&c.created_at),
                        time(&c.not_after),
                        c.subject.clone(),
                    ]
                })
                .collect();
            print_table(&["ID", "CREATED AT", "NOT AFTER", "SUBJECT"], &rows)
        }
        CertsCommand::Create {
            username,
            months,
            out,
            force,
            project,
        } => {
            let g = ctx.project(project.project_id)?;
            let overwrite = Overwrite::forced(force);
            match out {
                Some(path) => {
                    let w = issue_to_file(&ctx, &g, &username, months, &path, overwrite).await?;
                    if ctx.json() {
                        return print_json(&w);
                    }
                    println!(
                        "Certificate for '{}' (serial {}, expires {}) written to {}",
                        w.username,
                        w.serial,
                        w.not_after.format("%Y-%m-%d"),
                        w.path.display()
                    );
                    Ok(())
                }
                None => {
                    if std::io::stdout().is_terminal() {
                        return Err(CliError::usage(
                            "refusing to print a private key to the terminal: pass --out FILE, \
                             or redirect stdout",
                        ));
                    }
                    protect_redirected_stdout();
                    let issued = ctx
                        .client
                        .create_database_user_cert(&g, &username, months)
                        .await?;
                    let mut stdout = std::io::stdout().lock();
                    stdout
                        .write_all(issued.pem().as_bytes())
                        .and_then(|_| stdout.flush())
                        .map_err(|e| CliError::local(format!("cannot write to stdout: {e}")))
                }
            }
        }
        CertsCommand::Revoke {
            username,
            serial,
            all,
            reason,
            project,
        } => {
            let g = ctx.project(project.project_id)?;
            let reason = reason.as_deref();
            let certs = match (serial, all) {
                (Some(serial), false) => vec![
                    ctx.client
                        .revoke_database_user_cert(&g, &username, serial, reason)
                        .await?,
                ],
                (None, true) => {
                    ctx.client
                        .revoke_all_database_user_certs(&g, &username, reason)
                        .await?
                        .results
                }
                _ => return Err(CliError::usage("give either --serial SERIAL or --all")),
            };
            if ctx.json() {
                return if all {
                    print_json(&certs)
                } else {
                    print_json(&certs[0])
                };
            }
            if certs.is_empty() {
                println!("'{username}' has no unexpired certificate: nothing to revoke");
                return Ok(());
            }
            print_statuses(&certs)
        }
        CertsCommand::Status {
            username,
            project,
            page,
        } => {
            let g = ctx.project(project.project_id)?;
            let page = ctx
                .client
                .list_database_user_cert_statuses(&g, &username, list_options(page))
                .await?;
            if ctx.json() {
                return print_json(&page);
            }
            print_statuses(&page.results)
        }
        CertsCommand::Expiring { within, project } => {
            let now = Utc::now();
            let deadline = window_end(now, within)?;
            let users = ctx
                .client
                .managed_user_certificates(project.project_id.as_deref())
                .await?;
            let found = expiring_before(users, deadline);
            if ctx.json() {
                let items: Vec<serde_json::Value> = found
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "groupId": e.group_id,
                            "projectName": e.project_name,
                            "username": e.username,
                            "serial": e.certificate.id.to_string(),
                            "notAfter": e.certificate.not_after,
                            "subject": e.certificate.subject,
                        })
                    })
                    .collect();
                return print_json(&items);
            }
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|e| {
                    vec![
                        e.group_id.clone(),
                        e.username.clone(),
                        e.certificate.id.to_string(),
                        time(&e.certificate.not_after),
                        remaining(e.certificate.not_after - now),
                    ]
                })
                .collect();
            print_table(
                &[
                    "PROJECT ID",
                    "USERNAME",
                    "SERIAL",
                    "NOT AFTER",
                    "EXPIRES IN",
                ],
                &rows,
            )
        }
        CertsCommand::Renew {
            expiring_within,
            out_dir,
            months,
            force,
            parallel,
            project,
        } => {
            let overwrite = Overwrite::forced(force);
            let per_project_dirs = project.project_id.is_none();
            let now = Utc::now();
            let deadline = window_end(now, expiring_within)?;
            if let Some(warning) = renewal_churn(now, deadline, months) {
                eprintln!("Warning: {warning}");
            }
            let users = ctx
                .client
                .managed_user_certificates(project.project_id.as_deref())
                .await?;
            let without: Vec<Named> = users
                .iter()
                .filter(|u| u.certificates.is_empty())
                .map(|u| Named {
                    group_id: u.group_id.clone(),
                    username: u.username.clone(),
                })
                .collect();
            let due = due_for_renewal(users, deadline);
            let plan: Vec<Renewal> = due
                .into_iter()
                .map(|u| {
                    let path = renewal_path(&out_dir, &u.group_id, &u.username, per_project_dirs);
                    Renewal {
                        group_id: u.group_id,
                        username: u.username,
                        path,
                    }
                })
                .collect();
            renew(ctx, plan, without, months, overwrite, parallel as usize).await
        }
    }
}

/// Certificates with their status, one row each.
fn print_statuses(certs: &[CertStatus]) -> Result<(), CliError> {
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            vec![
                c.certificate.id.to_string(),
                c.status.clone(),
                time(&c.certificate.not_after),
                c.revoked_at.as_ref().map(time).unwrap_or_default(),
                c.revocation_reason.clone().unwrap_or_default(),
                c.certificate.subject.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "SERIAL",
            "STATUS",
            "NOT AFTER",
            "REVOKED AT",
            "REASON",
            "SUBJECT",
        ],
        &rows,
    )
}

/// `now + window`, refused when beyond the calendar.
fn window_end(now: DateTime<Utc>, window: Duration) -> Result<DateTime<Utc>, CliError> {
    chrono::TimeDelta::from_std(window)
        .ok()
        .and_then(|w| now.checked_add_signed(w))
        .ok_or_else(|| CliError::usage("the window is too long"))
}

/// The life of a certificate when `--monthsUntilExpiration` is not given: the server's
/// default, Atlas's.
const DEFAULT_MONTHS: u32 = 3;

/// Why a renewal with this window cannot settle, if it cannot: the certificates it issues
/// (valid `months` from `now`) would themselves expire by `deadline`, so every later run with
/// the same window finds the same users due again, and stops at their existing files unless
/// `--force` (which issues yet another certificate each time).
fn renewal_churn(
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
    months: Option<u32>,
) -> Option<String> {
    let months = months.unwrap_or(DEFAULT_MONTHS);
    let new_not_after = dbcerts_ca::add_months(now, months).ok()?;
    (new_not_after <= deadline).then(|| {
        format!(
            "the window reaches past the new certificates' own expiry ({months} months, \
             {}), so they are due again at once: the next run with this window renews the \
             same users again and stops at their existing files unless --force. Use a window \
             shorter than {months} months, or a longer --monthsUntilExpiration.",
            new_not_after.format("%Y-%m-%d")
        )
    })
}

/// `29d 23h`, or `expired` for a past moment.
fn remaining(left: chrono::TimeDelta) -> String {
    if left <= chrono::TimeDelta::zero() {
        return "expired".into();
    }
    let hours = left.num_hours();
    format!("{}d {}h", hours / 24, hours % 24)
}

/// The users whose certificates all expire by `deadline` (a user who already holds one that
/// outlives it was renewed before, and is left alone).
pub fn due_for_renewal(
    users: Vec<ManagedUserCerts>,
    deadline: DateTime<Utc>,
) -> Vec<ManagedUserCerts> {
    users
        .into_iter()
        .filter(|u| {
            u.certificates
                .iter()
                .map(|c| c.not_after)
                .max()
                .is_some_and(|last| last <= deadline)
        })
        .collect()
}

/// `DIR/<username>.pem` for one project, `DIR/<groupId>/<username>.pem` across projects.
/// Names from the server each become exactly one path component inside `DIR`.
fn renewal_path(dir: &Path, group_id: &str, username: &str, per_project: bool) -> PathBuf {
    let name = format!("{}.pem", path_component(username));
    if per_project {
        dir.join(path_component(group_id)).join(name)
    } else {
        dir.join(name)
    }
}

/// `text` as one file name: `/`, `%`, NUL and a leading `.` percent-encoded (so no `..`, no
/// absolute path, no hidden file).
fn path_component(text: &str) -> String {
    let mut out = String::new();
    for (i, ch) in text.chars().enumerate() {
        match ch {
            '/' | '%' | '\0' => out.push_str(&format!("%{:02X}", ch as u32)),
            '.' if i == 0 => out.push_str("%2E"),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

struct Renewal {
    group_id: String,
    username: String,
    path: PathBuf,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    group_id: String,
    username: String,
    error: String,
}

/// A MANAGED user without an unexpired certificate: not renewed (there is nothing to renew;
/// `dbusers certs create` issues its first), but reported.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Named {
    group_id: String,
    username: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    renewed: Vec<Written>,
    failed: Vec<Failure>,
    without_certificate: Vec<Named>,
}

async fn renew(
    ctx: Ctx,
    plan: Vec<Renewal>,
    without_certificate: Vec<Named>,
    months: Option<u32>,
    overwrite: Overwrite,
    parallel: usize,
) -> Result<(), CliError> {
    let total = plan.len();
    for dir in plan.iter().filter_map(|r| r.path.parent()) {
        create_private_dir(dir)?;
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} renewing [{bar:30}] {pos}/{len} certificates, ETA {eta} {msg}",
        )
        .map_err(|e| CliError::local(format!("progress bar: {e}")))?
        .progress_chars("=> "),
    );
    if total > 0 {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let ctx = Arc::new(ctx);
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for r in plan {
        let (ctx, gate, bar) = (ctx.clone(), gate.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            bar.set_message(one_line(&r.username));
            let result =
                issue_to_file(&ctx, &r.group_id, &r.username, months, &r.path, overwrite).await;
            bar.inc(1);
            result.map_err(|e| Failure {
                group_id: r.group_id,
                username: r.username,
                error: one_line(&e.message),
            })
        });
    }
    let mut summary = Summary {
        renewed: Vec::new(),
        failed: Vec::new(),
        without_certificate,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(w)) => summary.renewed.push(w),
            Ok(Err(f)) => summary.failed.push(f),
            Err(e) => {
                return Err(CliError::local(format!("a renewal task failed: {e}")));
            }
        }
    }
    bar.finish_and_clear();
    summary
        .renewed
        .sort_by(|a, b| (&a.group_id, &a.username).cmp(&(&b.group_id, &b.username)));
    summary
        .failed
        .sort_by(|a, b| (&a.group_id, &a.username).cmp(&(&b.group_id, &b.username)));
    if ctx.json() {
        print_json(&summary)?;
    } else {
        println!(
            "Renewed {} of {} certificates",
            summary.renewed.len(),
            total
        );
        for w in &summary.renewed {
            println!(
                "  {}/{}: serial {}, expires {}, {}",
                one_line(&w.group_id),
                one_line(&w.username),
                w.serial,
                w.not_after.format("%Y-%m-%d"),
                w.path.display()
            );
        }
        for f in &summary.failed {
            println!(
                "  FAILED {}/{}: {}",
                one_line(&f.group_id),
                one_line(&f.username),
                f.error
            );
        }
        if !summary.without_certificate.is_empty() {
            println!(
                "{} MANAGED users hold no unexpired certificate (not renewed; issue one with \
                 `dbcerts dbusers certs create`):",
                summary.without_certificate.len()
            );
            for n in &summary.without_certificate {
                println!("  {}/{}", one_line(&n.group_id), one_line(&n.username));
            }
        }
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::local(format!(
            "{} of {} renewals failed",
            summary.failed.len(),
            total
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbcerts_client::UserCert;

    use chrono::TimeZone;

    /// The clock these tests read: a leap day, late in the day (the commands take "now" as an
    /// argument, so nothing here depends on today).
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2028, 2, 29, 23, 30, 0).unwrap()
    }

    fn user_expiring_at(name: &str, not_afters: &[DateTime<Utc>]) -> ManagedUserCerts {
        ManagedUserCerts {
            group_id: "g".into(),
            project_name: "p".into(),
            username: name.into(),
            certificates: not_afters
                .iter()
                .enumerate()
                .map(|(i, &not_after)| UserCert {
                    id: i as i64 + 1,
                    created_at: now() - chrono::TimeDelta::hours(1),
                    group_id: "g".into(),
                    not_after,
                    subject: format!("CN={name}"),
                })
                .collect(),
        }
    }

    fn user(name: &str, days: &[i64]) -> ManagedUserCerts {
        let not_afters: Vec<_> = days
            .iter()
            .map(|&d| now() + chrono::TimeDelta::days(d))
            .collect();
        user_expiring_at(name, &not_afters)
    }

    #[test]
    fn only_users_without_a_certificate_beyond_the_window_are_due() {
        let deadline = window_end(now(), Duration::from_secs(30 * 86_400)).unwrap();
        let due = due_for_renewal(
            vec![
                user("soon", &[10]),
                user("renewed-already", &[10, 90]),
                user("fine", &[90]),
                user("none", &[]),
                user("two-soon", &[5, 20]),
            ],
            deadline,
        );
        let names: Vec<&str> = due.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["soon", "two-soon"]);
    }

    /// `--within 30d` is 30 days of 24 hours from now, whatever the months: a one-month
    /// certificate (the same day next month, clamped to the month's end) is inside it when its
    /// month has 30 days or fewer, outside when it has 31. A certificate expiring at the end
    /// of the window is inside, one a second later is not.
    #[test]
    fn the_window_counts_days_not_calendar_months() {
        let at = |y, m, d, h, min| Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
        let thirty = Duration::from_secs(30 * 86_400);
        for (issued, one_month_later, inside) in [
            (at(2026, 12, 7, 3, 0), at(2027, 1, 7, 3, 0), false), // 31 days
            (at(2026, 11, 24, 12, 0), at(2026, 12, 24, 12, 0), true), // 30 days
            (at(2027, 1, 31, 12, 0), at(2027, 2, 28, 12, 0), true), // 28 days
            (at(2028, 1, 31, 12, 0), at(2028, 2, 29, 12, 0), true), // 29 days
            (at(2028, 2, 29, 23, 30), at(2028, 3, 29, 23, 30), true), // 29 days
            (at(2028, 12, 31, 12, 0), at(2029, 1, 31, 12, 0), false), // 31 days, a new year
            (at(2027, 6, 30, 23, 30), at(2027, 7, 30, 23, 30), true), // 30 days
        ] {
            assert_eq!(
                dbcerts_ca::add_months(issued, 1).unwrap(),
                one_month_later,
                "{issued}"
            );
            let deadline = window_end(issued, thirty).unwrap();
            assert_eq!(deadline, issued + chrono::TimeDelta::days(30));
            let users = vec![user_expiring_at("m", &[one_month_later])];
            assert_eq!(
                expiring_before(users.clone(), deadline).len(),
                usize::from(inside),
                "{issued}"
            );
            assert_eq!(
                due_for_renewal(users, deadline).len(),
                usize::from(inside),
                "{issued}"
            );
        }
        let edge = window_end(now(), thirty).unwrap();
        let second = chrono::TimeDelta::seconds(1);
        let users = vec![
            user_expiring_at("edge", &[edge]),
            user_expiring_at("past", &[edge + second]),
        ];
        let found: Vec<_> = expiring_before(users.clone(), edge)
            .into_iter()
            .map(|e| e.username)
            .collect();
        assert_eq!(found, ["edge"]);
        let due: Vec<_> = due_for_renewal(users, edge)
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(due, ["edge"]);
    }

    #[test]
    fn renewal_paths_are_one_component_per_user() {
        let d = Path::new("/out");
        assert_eq!(
            renewal_path(d, "g1", "alice", false),
            Path::new("/out/alice.pem")
        );
        assert_eq!(
            renewal_path(d, "g1", "alice", true),
            Path::new("/out/g1/alice.pem")
        );
        assert_eq!(
            renewal_path(d, "g1", "../etc/x", false),
            Path::new("/out/%2E.%2Fetc%2Fx.pem")
        );
        assert_eq!(
            renewal_path(d, "/etc", "x", true),
            Path::new("/out/%2Fetc/x.pem")
        );
        assert_eq!(
            renewal_path(d, "..", "x", true),
            Path::new("/out/%2E./x.pem")
        );
    }

    #[test]
    fn a_window_reaching_past_the_new_certificates_life_is_warned_about() {
        use chrono::TimeZone;
        let window = |now, days: u64| window_end(now, Duration::from_secs(days * 86_400)).unwrap();
        // 31 January + 3 months is 30 April: 89 days.
        let now = Utc.with_ymd_and_hms(2027, 1, 31, 23, 30, 0).unwrap();
        assert_eq!(renewal_churn(now, window(now, 88), None), None);
        let warning = renewal_churn(now, window(now, 89), None).expect("89 days reach it");
        assert!(warning.contains("3 months, 2027-04-30"), "{warning}");
        assert!(renewal_churn(now, window(now, 120), None).is_some());
        assert_eq!(renewal_churn(now, window(now, 120), Some(6)), None);
        assert!(renewal_churn(now, window(now, 31), Some(1)).is_some());
        // 29 February + 12 months is 28 February.
        let leap = Utc.with_ymd_and_hms(2028, 2, 29, 12, 0, 0).unwrap();
        assert_eq!(renewal_churn(leap, window(leap, 364), Some(12)), None);
        assert!(renewal_churn(leap, window(leap, 365), Some(12)).is_some());
    }

    #[test]
    fn remaining_time_reads_in_days_and_hours() {
        assert_eq!(remaining(chrono::TimeDelta::hours(49)), "2d 1h");
        assert_eq!(remaining(chrono::TimeDelta::seconds(-1)), "expired");
    }
}
