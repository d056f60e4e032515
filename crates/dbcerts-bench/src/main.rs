//! `dbcerts-bench`: the dbcerts benchmark load generator and chart drawer.

use clap::{Parser, Subcommand};
use dbcerts_bench::cli;

#[derive(Debug, Parser)]
#[command(name = "dbcerts-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One arm per subcommand; each calls the `main` of its module in `dbcerts_bench::cli`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Send a fixed number of requests to a loopback HTTP server and measure it.
    Load(Box<cli::load::LoadArgs>),
    /// Draw an SVG line chart.
    Chart(cli::chart::ChartArgs),
    /// Fill a dbcerts store (server stopped) with benchmark projects, users and certificates.
    Seed(Box<cli::seed::SeedArgs>),
    /// Measure the raw key-generation rate of this machine (the limit for RSA issuance).
    Keygen(cli::keygen::KeygenArgs),
    /// Time building one CA's CRL over many revoked certificates (store, signing, publishing).
    Crl(Box<cli::crl::CrlArgs>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Load(args) => cli::load::main(*args),
        Command::Chart(args) => cli::chart::main(args),
        Command::Seed(args) => cli::seed::main(*args),
        Command::Keygen(args) => cli::keygen::main(args),
        Command::Crl(args) => cli::crl::main(*args),
    }
}
