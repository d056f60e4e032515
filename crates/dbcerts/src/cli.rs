//! The command line. Every `serve` flag also reads a `DBCERTS_*` environment variable; both
//! override the TOML config file, which overrides the defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dbcerts",
    version,
    about = "An Atlas-compatible X.509 certificate authority for MongoDB database users"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command that opens the store shares.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// TOML config file.
    #[arg(long, env = "DBCERTS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, the generated master key and the bootstrap
    /// credentials [default: ./dbcerts-data]
    #[arg(long, env = "DBCERTS_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL. Only `sqlite:` URLs are supported so far [default: <data-dir>/dbcerts.db]
    #[arg(long, env = "DBCERTS_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// File holding the base64 master key that seals CA keys and API-key secrets
    /// [default: <data-dir>/master.key, generated on first start]
    #[arg(long, env = "DBCERTS_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Key algorithm of issued certificates and of new project CAs: rsa-4096 (Atlas), rsa-2048,
    /// ecdsa-p256, ecdsa-p384 [default: rsa-4096]
    #[arg(long, env = "DBCERTS_KEY_ALGORITHM", global = true)]
    pub key_algorithm: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Atlas-compatible HTTP server.
    Serve(ServeArgs),
    /// Work with the projects' managed certificate authorities.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print a project's managed CA certificate (PEM), for `net.tls.CAFile` of mongod.
    ///
    /// Example: dbcerts ca export --project 5efda6aea3f2ed2e7dd6ce05 > atlas-managed-ca.pem
    Export {
        /// The project (group) id.
        #[arg(long)]
        project: String,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "DBCERTS_LISTEN")]
    pub listen: Option<String>,
    /// Public base URL for absolute links, e.g. https://dbcerts.example.com
    /// [default: taken from each request's Host header]
    #[arg(long, env = "DBCERTS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Pre-generated keys kept in memory; 0 disables the pool [default: 16]
    #[arg(long, env = "DBCERTS_KEY_POOL_SIZE")]
    pub key_pool_size: Option<usize>,
    /// Threads that refill the key pool [default: 1]
    #[arg(long, env = "DBCERTS_KEY_POOL_WORKERS")]
    pub key_pool_workers: Option<usize>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "DBCERTS_LOG_FORMAT")]
    pub log_format: Option<String>,
}
