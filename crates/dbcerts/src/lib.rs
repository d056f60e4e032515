//! The `dbcerts` program: commands, configuration, startup and shutdown. Tests drive the same
//! builder ([`app::App`]) that `serve` uses.

pub mod app;
pub mod cli;
pub mod config;

use std::process::ExitCode;

use cli::{CaCommand, Cli, Command};

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dbcerts: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let cfg = config::Settings::resolve(&cli.global, &args)?;
                init_logging(&cfg.log_format);
                app::serve(cfg).await
            }
            Command::Ca {
                command: CaCommand::Export { project },
            } => {
                init_logging("text");
                let cfg = config::Settings::resolve(&cli.global, &Default::default())?;
                let pem = app::export_ca(&cfg, &project).await?;
                print!("{pem}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbcerts: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DBCERTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
