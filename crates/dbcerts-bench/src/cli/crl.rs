//! `dbcerts-bench crl`: how long publishing one CA's CRL takes when it lists many revoked
//! certificates, end to end as a node does it (`dbcerts_server::crl::project_crls`): read the
//! CA's revoked, unexpired certificates from the store, sign the CRL, publish it by
//! compare-and-set. The PKI part alone is the criterion bench `dbcerts-ca --bench crl`.
//!
//! It fills project `bench-000` with `--revoked` certificates ([`crate::seed`]), revokes them
//! all through the Store API, then builds the CRL `--runs` times (each run at a later `now`,
//! past the previous CRL's refresh time, so each run builds a new one). The last line on
//! stdout is one JSON object; progress goes to stderr.

use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use dbcerts_store::{AuditEvent, Revocation, RevocationReason, RevokeWhich};

use crate::seed::{SeedOptions, seed, user_name};

/// Arguments of `crl`.
#[derive(Debug, Args)]
#[command(
    after_help = "The data directory is created and bootstrapped if empty; for SQLite, no server \
may run on it. Pass --key-algorithm as the server would (its CA signs the CRL).

Example: dbcerts-bench crl --data-dir /tmp/crl-bench --key-algorithm ecdsa-p256 --revoked 100000"
)]
pub struct CrlArgs {
    /// The store: the same flags (and DBCERTS_* variables, and config file) as `dbcerts serve`.
    #[command(flatten)]
    pub store: dbcerts::cli::GlobalArgs,
    /// Revoked certificates the CRL lists.
    #[arg(long, default_value_t = 100_000)]
    pub revoked: u64,
    /// Users they are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub users: u32,
    /// CRLs built and timed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
}

/// Runs `crl`.
pub fn main(args: CrlArgs) -> anyhow::Result<()> {
    let settings =
        dbcerts::config::Settings::resolve(&args.store, &dbcerts::cli::ServeArgs::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(settings, &args))
}

async fn run(settings: dbcerts::config::Settings, args: &CrlArgs) -> anyhow::Result<()> {
    let say = |line: &str| eprintln!("{line}");
    let refresh = settings.crl.refresh_secs;
    // Bootstrap the store if empty, then close it: seeding wants it to itself.
    let app = dbcerts::app::App::build(settings.clone()).await?;
    app.store.close().await;
    drop(app);
    let opts = SeedOptions {
        projects: 1,
        users_per_project: args.users as usize,
        certificates: args.revoked,
        hot_user_certificates: 0,
        ..SeedOptions::default()
    };
    let seeded = seed(&settings, &opts, &say).await?;
    let project = seeded.hot_project.clone();
    let app = dbcerts::app::App::build(settings.clone()).await?;
    let store = app.store.store();

    let started = Instant::now();
    let now = chrono::Utc::now().timestamp();
    for slot in 0..args.users as usize {
        let user = user_name(0, slot, args.users as usize);
        let audit = AuditEvent {
            at_ms: now * 1000,
            actor: "operator".into(),
            source_ip: None,
            action: "certificate.revoked".into(),
            project_id: Some(project.clone()),
            target: Some(user.clone()),
            status: None,
            details: "{}".into(),
        };
        let revocation = Revocation {
            at: now,
            reason: RevocationReason::KeyCompromise,
        };
        store
            .revoke_certificates(
                &project,
                &user,
                RevokeWhich::AllUnexpired { now },
                revocation,
                &audit,
            )
            .await
            .with_context(|| format!("revoking the certificates of {user}"))?;
    }
    let revoke_seconds = started.elapsed().as_secs_f64();
    say(&format!(
        "revoked every certificate of {project} in {revoke_seconds:.1} s"
    ));

    let mut seconds = Vec::new();
    let mut at = now;
    let mut crl_bytes = 0;
    for run in 0..args.runs {
        at += refresh + 1;
        let t = Instant::now();
        let crls = dbcerts_server::crl::project_crls(&app.state, &project, at)
            .await
            .map_err(|e| anyhow::anyhow!("building the CRL: {e:?}"))?;
        let s = t.elapsed().as_secs_f64();
        crl_bytes = crls.iter().map(Vec::len).sum::<usize>();
        say(&format!("run {run}: CRL of {crl_bytes} bytes in {s:.3} s"));
        seconds.push(s);
    }
    let cas = store.list_project_cas(&project).await?;
    let listed = match cas.first() {
        Some(ca) => store.list_revoked_unexpired(ca.id, at).await?.len(),
        None => 0,
    };
    anyhow::ensure!(
        listed as u64 >= args.revoked,
        "the CRL lists {listed} certificates, fewer than --revoked {}",
        args.revoked
    );
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "revoked": listed,
            "crlBytes": crl_bytes,
            "runs": seconds,
            "medianSeconds": median,
            "revokeSeconds": revoke_seconds,
            "keyAlgorithm": settings.key_algorithm.as_str(),
        })
    );
    Ok(())
}
