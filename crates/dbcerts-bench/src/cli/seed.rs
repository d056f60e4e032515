//! `dbcerts-bench seed`: fills a dbcerts store with benchmark projects, users and certificates
//! directly through the Store API (see [`crate::seed`]). Progress goes to stderr; the last line
//! on stdout is one JSON object for scripts.

use clap::Args;

use crate::seed::{SeedOptions, seed};

/// Arguments of `seed`.
#[derive(Debug, Args)]
#[command(
    after_help = "The data directory must belong to a server that has been started once \
(bootstrapped store, master key, bootstrap-credentials.json) and, for SQLite, is stopped now. \
Pass the server's --key-algorithm (the benchmarks use ecdsa-p256): leaf keys, and the CAs of \
projects that have none yet, are made with it.

Example: dbcerts-bench seed --data-dir /tmp/bench --key-algorithm ecdsa-p256 --certificates 1000000"
)]
pub struct SeedArgs {
    /// The store: the same flags (and DBCERTS_* variables, and config file) as `dbcerts serve`.
    #[command(flatten)]
    pub store: dbcerts::cli::GlobalArgs,
    /// Organization of the benchmark projects [default: orgId of
    /// <data-dir>/bootstrap-credentials.json]
    #[arg(long)]
    pub org_id: Option<String>,
    /// Benchmark projects, named bench-000, bench-001, ...
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub projects: u32,
    /// Users per project, the hot user included (Atlas allows 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub users_per_project: u32,
    /// Unexpired certificates the benchmark projects should hold in total afterwards; only the
    /// missing ones are added.
    #[arg(long)]
    pub certificates: u64,
    /// Certificates the hot user (`hot`, in bench-000) should hold; it is filled first.
    #[arg(long, default_value_t = 10_000)]
    pub hot_user_certificates: u64,
    /// Certificates per write transaction.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch: u32,
    /// Signing threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Distinct leaf keys, reused round-robin (private keys are never stored, so reuse changes
    /// nothing stored).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub key_ring: u32,
    /// Issue times are spread uniformly over this many days before now (at most 60, so that
    /// every certificate, valid for 3 months, is unexpired for a while yet).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub spread_days: u32,
}

/// Runs `seed`.
pub fn main(args: SeedArgs) -> anyhow::Result<()> {
    let settings =
        dbcerts::config::Settings::resolve(&args.store, &dbcerts::cli::ServeArgs::default())?;
    let opts = SeedOptions {
        org_id: args.org_id,
        projects: args.projects as usize,
        users_per_project: args.users_per_project as usize,
        certificates: args.certificates,
        hot_user_certificates: args.hot_user_certificates,
        batch: args.batch as usize,
        threads: args.threads as usize,
        key_ring: args.key_ring as usize,
        spread_days: args.spread_days,
    };
    // Two runtime threads: the writer and the store's own work; signing has threads of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let say = |line: &str| eprintln!("{line}");
    let report = runtime.block_on(seed(&settings, &opts, &say))?;
    println!("{}", report.json_line());
    Ok(())
}
