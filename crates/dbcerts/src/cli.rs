//! The command line. Server commands (`serve`, `ca`, `audit`, `apikey`, `backup`, `restore`)
//! work on the store directly; every one of their flags also reads a `DBCERTS_*` environment
//! variable, and both override the TOML config file, which overrides the defaults. Client
//! commands (`config`, `projects`, `dbusers`, `security`, `orgs`, `serviceAccounts`,
//! `mongod-config`, `completion`) talk to a server over HTTP; see [`crate::client`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dbcerts",
    version,
    about = "An Atlas-compatible X.509 certificate authority for MongoDB database users",
    after_help = "Examples:
  dbcerts serve --data-dir /var/lib/dbcerts
  dbcerts config init
  dbcerts dbusers certs create --username alice --out alice.pem

Client commands exit 0 on success, 1 on a local failure, 2 on a usage error, 3 when \
authentication fails, 4 when something is not found, 5 on a server error, 6 when the server \
cannot be reached."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command that opens the store shares.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// TOML config file.
    #[arg(long, env = "DBCERTS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, the generated master key and the bootstrap
    /// credentials [default: ./dbcerts-data]
    #[arg(long, env = "DBCERTS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite:///path/to/file.db, or postgres://user:password@host:port/db for
    /// several nodes on one database [default: sqlite://<data-dir>/dbcerts.db]
    #[arg(long, env = "DBCERTS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// File holding the base64 master key that seals CA keys and API-key secrets
    /// [default: <data-dir>/master.key, generated on first start]
    #[arg(long, env = "DBCERTS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Key algorithm of issued certificates and of new project CAs: rsa-4096 (Atlas), rsa-2048,
    /// ecdsa-p256, ecdsa-p384 [default: rsa-4096]
    #[arg(long, env = "DBCERTS_KEY_ALGORITHM")]
    pub key_algorithm: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Atlas-compatible HTTP server.
    Serve {
        #[command(flatten)]
        store: GlobalArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Work with the projects' managed certificate authorities.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Read and verify the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Create API keys and rotate the bootstrap key, directly on the store (no server needed).
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Write a consistent copy of the SQLite database while the server keeps running.
    ///
    /// The copy is useless without the master key: keep <data-dir>/master.key (or your
    /// --master-key-file) safe as well, but stored apart from the backups. For PostgreSQL use
    /// pg_dump (see README).
    ///
    /// Example: dbcerts backup --to /backups/dbcerts-2026-11-24.db
    Backup {
        /// The backup file to create (must not exist); written with mode 0600.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        store: GlobalArgs,
    },
    /// Replace the SQLite database with a backup, after checking the backup's integrity and
    /// that the master key opens it. The server must be stopped; the replaced database is kept
    /// beside it as <db>.pre-restore-<time>.
    ///
    /// Example: dbcerts restore --from /backups/dbcerts-2026-11-24.db
    Restore {
        /// A file written by `dbcerts backup`.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        #[command(flatten)]
        store: GlobalArgs,
    },
    #[command(flatten)]
    Client(crate::client::args::ClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the whole audit log; exits non-zero at the first broken link.
    ///
    /// Prints every chain and one root digest over their ends. With --checkpoint, an intact
    /// log gets a checkpoint entry in the store chain recording every chain's end, which later
    /// runs hold the chains to (so a chain deleted with its recorded head is found); keep the
    /// printed checkpoint hash outside the database.
    ///
    /// Example: dbcerts audit verify --checkpoint
    Verify {
        /// Append a checkpoint entry when the log is intact.
        #[arg(long)]
        checkpoint: bool,
        #[command(flatten)]
        store: GlobalArgs,
    },
    /// Print audit entries, oldest first.
    ///
    /// Example: dbcerts audit list --project 5efda6aea3f2ed2e7dd6ce05 --since 2026-11-01
    List {
        /// Only entries about this project (group) id.
        #[arg(long)]
        project: Option<String>,
        /// Only entries by this actor, e.g. api-key:abcdefgh or service-account:mdb_sa_id_...
        #[arg(long)]
        actor: Option<String>,
        /// Only entries at or after this time (RFC 3339, or a date).
        #[arg(long)]
        since: Option<String>,
        /// Only entries before this time (RFC 3339, or a date).
        #[arg(long)]
        until: Option<String>,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<u64>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: GlobalArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key and print its credentials (JSON) once.
    ///
    /// Example: dbcerts apikey create --role ORG_MEMBER --project-role 5efda6aea3f2ed2e7dd6ce05:GROUP_OWNER --description "CI"
    Create {
        /// Organization id [default: the one in bootstrap-credentials.json]
        #[arg(long)]
        org: Option<String>,
        /// Organization role (repeatable), e.g. ORG_OWNER, ORG_READ_ONLY, ORG_MEMBER.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Project role as PROJECT_ID:ROLE (repeatable), e.g. <id>:GROUP_READ_ONLY.
        #[arg(long = "project-role")]
        project_roles: Vec<String>,
        /// Description of the key.
        #[arg(long, default_value = "created by dbcerts apikey create")]
        description: String,
        #[command(flatten)]
        store: GlobalArgs,
    },
    /// Replace the bootstrap key with a new one holding the same roles; rewrites
    /// bootstrap-credentials.json (mode 0600), then deletes the old key.
    ///
    /// Example: dbcerts apikey rotate-bootstrap
    RotateBootstrap {
        #[command(flatten)]
        store: GlobalArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print a project's trust bundle (PEM: its managed CA, and after a rotation every CA
    /// generation not retired that still has an unexpired certificate), for `net.tls.CAFile` of
    /// mongod, or write it to a file with --out. Opens the store directly: run it with the
    /// --data-dir (and --database-url) that `dbcerts serve` uses.
    ///
    /// Example: dbcerts ca export --project 5efda6aea3f2ed2e7dd6ce05 --out dbcerts-ca.pem
    Export {
        /// The project (group) id.
        #[arg(long)]
        project: String,
        /// Write the PEM to FILE (mode 0644: a certificate is public) instead of stdout; FILE
        /// appears only once the export has succeeded, complete
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE if it exists
        #[arg(long, requires = "out")]
        force: bool,
        #[command(flatten)]
        store: GlobalArgs,
    },
    /// Fetch the project's certificate revocation lists (PEM) from a dbcerts server, for
    /// `net.tls.CRLFile` of mongod; `sync` keeps the file up to date. A client command: it uses
    /// the client profile (`dbcerts config init`), Project Read Only is enough.
    Crl(crate::client::crl::CrlArgs),
    /// Make a new generation of a project's managed CA active for new certificates; the
    /// previous one stays in the trust bundle (`ca export`) until its certificates expire or it
    /// is retired. Prints the new generation (JSON). Opens the store directly, as `ca export`.
    ///
    /// Example: dbcerts ca rotate --project 5efda6aea3f2ed2e7dd6ce05
    Rotate {
        /// The project (group) id.
        #[arg(long)]
        project: String,
        #[command(flatten)]
        store: GlobalArgs,
    },
    /// Take a generation of a project's CA out of the trust bundle: certificates it signed stop
    /// verifying once mongod's CAFile is refreshed. The active generation cannot be retired.
    /// Prints the retired generation (JSON).
    ///
    /// Example: dbcerts ca retire --project 5efda6aea3f2ed2e7dd6ce05 --generation 1
    Retire {
        /// The project (group) id.
        #[arg(long)]
        project: String,
        /// The generation to retire (1 is the project's first CA).
        #[arg(long)]
        generation: u32,
        #[command(flatten)]
        store: GlobalArgs,
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
    /// Base URL OCSP clients reach this server at; new leaves then carry an AIA OCSP URL
    /// <url>/api/dbcerts/v1/ocsp/<groupId> [default: none; leaves keep Atlas's profile]
    #[arg(long, env = "DBCERTS_OCSP_URL")]
    pub ocsp_url: Option<String>,
    /// Pre-generated keys kept in memory; 0 disables the pool [default: 16]
    #[arg(long, env = "DBCERTS_KEY_POOL_SIZE")]
    pub key_pool_size: Option<usize>,
    /// Threads that refill the key pool [default: 1]
    #[arg(long, env = "DBCERTS_KEY_POOL_WORKERS")]
    pub key_pool_workers: Option<usize>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "DBCERTS_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// PEM certificate chain (leaf first) to serve HTTPS with; needs --tls-key. Reloaded on
    /// SIGHUP
    #[arg(long, env = "DBCERTS_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1). Reloaded on SIGHUP
    #[arg(long, env = "DBCERTS_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address, for use behind a TLS-terminating proxy
    /// [default: false]
    #[arg(
        long,
        env = "DBCERTS_ALLOW_PLAINTEXT",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub allow_plaintext: Option<bool>,
    /// Address to serve `GET /metrics` (Prometheus) on; never the API's address, since metrics
    /// name every project of every organization [default: 127.0.0.1:8081]
    #[arg(long, env = "DBCERTS_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Serve from a data directory that group or others can enter (it holds the database, the
    /// master key and the bootstrap credentials); only if another layer protects it
    /// [default: false]
    #[arg(
        long,
        env = "DBCERTS_ALLOW_READABLE_DATA_DIR",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub allow_readable_data_dir: Option<bool>,
    /// Seconds a CRL is valid: its nextUpdate is this long after it is built. mongod refuses
    /// every client once the CRL file's nextUpdate has passed [default: 604800, 7 days]
    #[arg(long, env = "DBCERTS_CRL_VALIDITY_SECS", value_name = "SECS")]
    pub crl_validity_secs: Option<i64>,
    /// Seconds after which a CRL is rebuilt even if nothing was revoked; less than
    /// --crl-validity-secs [default: 86400, 1 day]
    #[arg(long, env = "DBCERTS_CRL_REFRESH_SECS", value_name = "SECS")]
    pub crl_refresh_secs: Option<i64>,
    /// Seconds a CRL's thisUpdate is set back from its build time, for verifiers whose clock
    /// runs behind [default: 300]
    #[arg(long, env = "DBCERTS_CRL_BACKDATE_SECS", value_name = "SECS")]
    pub crl_backdate_secs: Option<i64>,
    /// Also serve each project's CRLs without credentials at an unguessable URL, named in the
    /// Link header of GET /api/dbcerts/v1/groups/{groupId}/crl [default: false]
    #[arg(
        long,
        env = "DBCERTS_CRL_DISTRIBUTION",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub crl_distribution: Option<bool>,
    /// Deleting a MANAGED x.509 database user revokes its unexpired certificates (reason
    /// cessationOfOperation) [default: true]
    #[arg(
        long,
        env = "DBCERTS_REVOKE_ON_USER_DELETE",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub revoke_on_user_delete: Option<bool>,
    /// The certificate status list calls a valid certificate EXPIRING when it expires within
    /// this many days [default: 30]
    #[arg(long, env = "DBCERTS_CERT_EXPIRING_DAYS", value_name = "DAYS")]
    pub cert_expiring_days: Option<u32>,
    /// Rotate a project's CA before issuing a certificate that would end less than this many
    /// days before the CA does (0 to 1825) [default: 30]
    #[arg(long, env = "DBCERTS_CA_ROTATION_MARGIN_DAYS", value_name = "DAYS")]
    pub ca_rotation_margin_days: Option<u32>,
    /// Seconds a node may serve a credential, project, database user or user-security setting
    /// from its read cache without asking the database (0 to 300; 0 turns the cache off). Writes
    /// drop cached entries at once on every node that hears of them; this bounds staleness
    /// when one cannot [default: 5]
    #[arg(long, env = "DBCERTS_CACHE_TTL_SECONDS", value_name = "SECS")]
    pub cache_ttl_seconds: Option<u64>,
}
