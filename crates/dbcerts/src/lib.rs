//! The `dbcerts` program: commands, configuration, startup and shutdown. Tests drive the same
//! builder ([`app::App`]) that `serve` uses.

pub mod app;
pub mod cli;
pub mod config;
pub mod operator;

use std::process::ExitCode;

use cli::{ApikeyCommand, AuditCommand, CaCommand, Cli, Command};

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
            Command::Audit { command } => {
                init_logging("text");
                let cfg = config::Settings::resolve(&cli.global, &Default::default())?;
                run_audit(&cfg, command).await
            }
            Command::Backup { to } => {
                init_logging("text");
                let cfg = config::Settings::resolve(&cli.global, &Default::default())?;
                let summary = operator::backup(&cfg, &to).await?;
                println!("{summary}");
                Ok(())
            }
            Command::Restore { from } => {
                init_logging("text");
                let cfg = config::Settings::resolve(&cli.global, &Default::default())?;
                let summary = operator::restore(&cfg, &from).await?;
                println!("{summary}");
                Ok(())
            }
            Command::Apikey { command } => {
                init_logging("text");
                let cfg = config::Settings::resolve(&cli.global, &Default::default())?;
                let creds = match command {
                    ApikeyCommand::Create {
                        org,
                        roles,
                        project_roles,
                        description,
                    } => {
                        operator::create_api_key(
                            &cfg,
                            org.as_deref(),
                            &description,
                            &roles,
                            &project_roles,
                        )
                        .await?
                    }
                    ApikeyCommand::RotateBootstrap => operator::rotate_bootstrap(&cfg).await?,
                };
                println!("{}", serde_json::to_string_pretty(&creds)?);
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

async fn run_audit(cfg: &config::Settings, command: AuditCommand) -> anyhow::Result<()> {
    let (store, _) = app::open_checked_store(cfg).await?;
    let result = match command {
        AuditCommand::Verify => match operator::verify_audit_chain(store.store()).await? {
            operator::ChainCheck::Intact { entries } => {
                println!("audit log intact: {entries} entries");
                Ok(())
            }
            operator::ChainCheck::Broken { seq, reason } => {
                Err(anyhow::anyhow!("audit log broken at entry {seq}: {reason}"))
            }
        },
        AuditCommand::List {
            project,
            actor,
            since,
            until,
            limit,
            json,
        } => {
            let filter = dbcerts_store::AuditFilter {
                project_id: project,
                actor,
                since_ms: since.as_deref().map(operator::parse_time_ms).transpose()?,
                until_ms: until.as_deref().map(operator::parse_time_ms).transpose()?,
            };
            let mut out = std::io::stdout().lock();
            operator::list_audit(store.store(), &filter, limit, json, &mut out)
                .await
                .map(|_| ())
        }
    };
    store.close().await;
    result
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
