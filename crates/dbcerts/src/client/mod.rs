//! The client commands: the atlas CLI's X.509 user management against a dbcerts (or Atlas)
//! server, through [`dbcerts_client`], plus the chores scripts do around it.

pub mod args;
mod certs;
mod config_cmd;
pub mod crl;
mod mongod;
pub mod output;
pub mod profile;
mod resources;

use std::process::ExitCode;

use clap::CommandFactory;
use dbcerts_client::{Client, Credentials, ListOptions};

use args::{ClientCommand, Format, Opts, PageArgs};
use output::{CliError, Exit};
use profile::{ProfileFile, Resolved, TokenCache};

/// Runs a client command and returns its exit code; errors are printed as one line.
pub async fn run(command: ClientCommand) -> ExitCode {
    let result = match command {
        ClientCommand::Completion { shell } => {
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "dbcerts", &mut std::io::stdout());
            Ok(())
        }
        ClientCommand::Config { opts, command } => config_cmd::run(&opts, command),
        ClientCommand::Projects { opts, command } => {
            with_context(&opts, |ctx| resources::projects(ctx, command)).await
        }
        ClientCommand::Dbusers { opts, command } => {
            with_context(&opts, |ctx| resources::dbusers(ctx, command)).await
        }
        ClientCommand::Security { opts, command } => {
            with_context(&opts, |ctx| resources::security(ctx, command)).await
        }
        ClientCommand::Organizations { opts, command } => {
            with_context(&opts, |ctx| resources::orgs(ctx, command)).await
        }
        ClientCommand::ServiceAccounts { opts, command } => {
            with_context(&opts, |ctx| resources::service_accounts(ctx, command)).await
        }
        ClientCommand::MongodConfig {
            opts,
            project,
            ca_out,
            force,
        } => {
            with_context(&opts, |ctx| {
                mongod::run(ctx, project.project_id, ca_out, force)
            })
            .await
        }
    };
    exit_code(result)
}

/// A command's exit code; errors are printed as one line.
fn exit_code(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", output::one_line(&e.message));
            ExitCode::from(e.exit as u8)
        }
    }
}

/// `dbcerts ca crl` and `dbcerts ca crl sync` (a client command under the server's `ca`).
pub async fn crl_command(args: crl::CrlArgs) -> ExitCode {
    let result = match args.command {
        None => {
            with_context(&args.opts, |ctx| {
                crl::once(ctx, args.project.project_id, args.out)
            })
            .await
        }
        Some(crl::CrlCommand::Sync {
            project,
            out,
            every,
            exec,
        }) => {
            with_context(&args.opts, |ctx| {
                crl::sync(ctx, project.project_id, out, every.into(), exec)
            })
            .await
        }
    };
    exit_code(result)
}

/// What a command works with: the client and the resolved defaults.
pub struct Ctx {
    pub client: Client,
    pub settings: Resolved,
    pub format: Format,
}

impl Ctx {
    /// The project: the flag, else the environment, else the profile.
    pub fn project(&self, flag: Option<String>) -> Result<String, CliError> {
        flag.or_else(|| self.settings.project_id.clone())
            .ok_or_else(|| {
                CliError::usage(
                    "no project: pass --projectId, set MONGODB_ATLAS_PROJECT_ID, or run \
                     `dbcerts config set project_id <ID>`",
                )
            })
    }

    /// The organization: the flag, else the environment, else the profile.
    pub fn org(&self, flag: Option<String>) -> Result<String, CliError> {
        flag.or_else(|| self.settings.org_id.clone())
            .ok_or_else(|| {
                CliError::usage(
                    "no organization: pass --orgId, set MONGODB_ATLAS_ORG_ID, or run \
                 `dbcerts config set org_id <ID>`",
                )
            })
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

/// Paging flags as the client's options (counted, as the atlas CLI asks).
pub fn list_options(page: PageArgs) -> ListOptions {
    ListOptions {
        page_num: page.page,
        items_per_page: page.limit,
        include_count: Some(true),
    }
}

/// How long one call may wait out 429s: `DBCERTS_RATE_LIMIT_WAIT` seconds, default 60 (Atlas
/// limits count per minute), 0 to fail at once.
fn rate_limit_wait(env: profile::Env) -> Result<std::time::Duration, CliError> {
    match env("DBCERTS_RATE_LIMIT_WAIT") {
        None => Ok(std::time::Duration::from_secs(60)),
        Some(text) => text
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| {
                CliError::usage(format!(
                    "DBCERTS_RATE_LIMIT_WAIT {text:?}: expected whole seconds"
                ))
            }),
    }
}

/// Builds the client from the profile and environment, runs `body`, and keeps a service
/// account's token for the next run.
async fn with_context<F, Fut>(opts: &Opts, body: F) -> Result<(), CliError>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    let env = profile::process_env;
    let name = profile::profile_name(opts.profile.as_deref(), &env);
    let file = ProfileFile::load()?;
    let profile = file.profiles.get(&name);
    if profile.is_none() && (opts.profile.is_some() || env("DBCERTS_PROFILE").is_some()) {
        return Err(CliError::usage(format!(
            "no profile {name:?} in {}; create it with `dbcerts config init -P {name}`",
            file.path.display()
        )));
    }
    let settings = profile::resolve(name, profile, &env)?;
    let format = match (opts.output, settings.output.as_deref()) {
        (Some(f), _) => f,
        (None, None) => Format::Table,
        (None, Some(text)) => Format::from_setting(text)?,
    };
    let Some(credentials) = settings.credentials.clone() else {
        return Err(CliError::new(
            Exit::Auth,
            "no credentials: run `dbcerts config init`, or set MONGODB_ATLAS_PUBLIC_API_KEY and \
             MONGODB_ATLAS_PRIVATE_API_KEY (or MONGODB_ATLAS_CLIENT_ID and \
             MONGODB_ATLAS_CLIENT_SECRET)",
        ));
    };
    let cache = match &credentials {
        Credentials::ServiceAccount { client_id, .. } => {
            TokenCache::new(&settings.base_url, client_id)
        }
        _ => None,
    };
    let mut builder = Client::builder(&settings.base_url)
        .credentials(credentials)
        .user_agent(concat!("dbcerts-cli/", env!("CARGO_PKG_VERSION")))
        .retry_rate_limited(rate_limit_wait(&env)?);
    let seed = cache.as_ref().and_then(TokenCache::load);
    if let Some(token) = seed.clone() {
        builder = builder.cached_token(token);
    }
    let client = builder.build()?;
    let result = body(Ctx {
        client: client.clone(),
        settings,
        format,
    })
    .await;
    if let (Some(cache), Some(now)) = (&cache, client.cached_token().await) {
        let unchanged = seed
            .as_ref()
            .is_some_and(|s| s.token.expose() == now.token.expose());
        if !unchanged && let Err(e) = cache.store(&now) {
            eprintln!("Warning: could not keep the access token: {}", e.message);
        }
    }
    result
}
