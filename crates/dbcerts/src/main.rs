//! The `dbcerts` binary: parse the command line and hand over to [`dbcerts::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    dbcerts::run(dbcerts::cli::Cli::parse())
}
