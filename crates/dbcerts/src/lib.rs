//! The `dbcerts` program: commands, configuration, startup and shutdown. Tests drive the same
//! builder ([`app::App`]) that `serve` uses.

pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod operator;

use std::process::ExitCode;

use cli::{ApikeyCommand, AuditCommand, CaCommand, Cli, Command, GlobalArgs};

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
        let settings = |store: &GlobalArgs| {
            init_logging("text");
            config::Settings::resolve(store, &Default::default())
        };
        match cli.command {
            Command::Client(command) => return Ok(Some(client::run(command).await)),
            Command::Serve { store, serve } => {
                let cfg = config::Settings::resolve(&store, &serve)?;
                init_logging(&cfg.log_format);
                app::serve(cfg).await?;
            }
            Command::Ca {
                command:
                    CaCommand::Export {
                        project,
                        out,
                        force,
                        store,
                    },
            } => {
                if let Some(path) = &out {
                    operator::check_replaceable(path, force)?;
                }
                let pem = app::export_ca(&settings(&store)?, &project).await?;
                match out {
                    Some(path) => operator::write_certificate_file(&path, &pem, force)?,
                    None => print!("{pem}"),
                }
            }
            Command::Ca {
                command: CaCommand::Crl(args),
            } => return Ok(Some(client::crl_command(args).await)),
            Command::Ca {
                command: CaCommand::Rotate { project, store },
            } => {
                let generation = app::rotate_ca(&settings(&store)?, &project).await?;
                println!("{}", serde_json::to_string_pretty(&generation)?);
            }
            Command::Ca {
                command:
                    CaCommand::Retire {
                        project,
                        generation,
                        store,
                    },
            } => {
                let retired = app::retire_ca(&settings(&store)?, &project, generation).await?;
                println!("{}", serde_json::to_string_pretty(&retired)?);
            }
            Command::Audit { command } => {
                let store = match &command {
                    AuditCommand::Verify { store, .. } | AuditCommand::List { store, .. } => store,
                };
                run_audit(&settings(store)?, command).await?;
            }
            Command::Backup { to, store } => {
                println!("{}", operator::backup(&settings(&store)?, &to).await?);
            }
            Command::Restore { from, store } => {
                println!("{}", operator::restore(&settings(&store)?, &from).await?);
            }
            Command::Apikey { command } => {
                let creds = match command {
                    ApikeyCommand::Create {
                        org,
                        roles,
                        project_roles,
                        description,
                        store,
                    } => {
                        operator::create_api_key(
                            &settings(&store)?,
                            org.as_deref(),
                            &description,
                            &roles,
                            &project_roles,
                        )
                        .await?
                    }
                    ApikeyCommand::RotateBootstrap { store } => {
                        operator::rotate_bootstrap(&settings(&store)?).await?
                    }
                };
                println!("{}", serde_json::to_string_pretty(&creds)?);
            }
        }
        anyhow::Ok(None)
    });
    match result {
        Ok(Some(code)) => code,
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbcerts: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `dbcerts audit verify [--checkpoint]`: the verdict, each chain, the root digest, and the
/// checkpoint appended when asked.
async fn verify_audit(store: &dyn dbcerts_store::Store, checkpoint: bool) -> anyhow::Result<()> {
    use dbcerts_store::{AuditEntry, ChainCheck};
    let (entries, chains, held_to) = match dbcerts_store::verify_audit_chains(store).await? {
        ChainCheck::Intact {
            entries,
            chains,
            checkpoint,
        } => (entries, chains, checkpoint),
        ChainCheck::Broken { seq, chain, reason } => anyhow::bail!(
            "audit log broken at entry {seq} ({}): {reason}",
            operator::chain_label(&chain)
        ),
    };
    println!(
        "audit log intact: {entries} entries in {} chains",
        chains.len()
    );
    for c in &chains {
        println!(
            "  {}: {} linked, last at entry {}",
            operator::chain_label(&c.chain),
            c.entries,
            c.last_seq
        );
    }
    match held_to {
        Some(seq) => println!("held to the checkpoint at entry {seq}"),
        None => println!("no checkpoint yet (dbcerts audit verify --checkpoint writes one)"),
    }
    println!(
        "root digest: {}",
        AuditEntry::hex(&dbcerts_store::root_digest(&chains))
    );
    if checkpoint {
        let now = chrono::Utc::now().timestamp_millis();
        let entry = store
            .append_audit(&dbcerts_store::checkpoint_event(&chains, now, "operator"))
            .await?;
        println!(
            "checkpoint written at entry {} (store chain entry {}), hash {}",
            entry.seq,
            entry.chain_seq,
            AuditEntry::hex(&entry.hash)
        );
    }
    Ok(())
}

async fn run_audit(cfg: &config::Settings, command: AuditCommand) -> anyhow::Result<()> {
    let (store, _) = app::open_checked_store(cfg).await?;
    let result = match command {
        AuditCommand::Verify { checkpoint, .. } => verify_audit(store.store(), checkpoint).await,
        AuditCommand::List {
            project,
            actor,
            since,
            until,
            limit,
            json,
            ..
        } => {
            let filter = dbcerts_store::AuditFilter {
                chain: None,
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
        .with_ansi(colour_logs())
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Colour codes only for a person at a terminal: a log redirected to a file or a pipe (a
/// service manager, `2> server.log`) gets plain text. `NO_COLOR` turns colour off everywhere.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
