//! The client commands' command line: the atlas CLI's nouns, verbs and flag spellings
//! (`--projectId`, `--username`, `--monthsUntilExpiration`, `--x509Type`, `--casFile`, `-o json`),
//! plus the chores (`dbusers certs expiring|renew`, `mongod-config`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Options every client command takes, wherever they appear on its command line.
#[derive(Debug, Clone, Default, Args)]
pub struct Opts {
    /// Profile to use, from `dbcerts config init` [env: DBCERTS_PROFILE] [default: default]
    #[arg(short = 'P', long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Output format [default: the profile's `output`, else table]
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, for machines.
    Json,
}

impl Format {
    /// The name `-o` takes and a profile's `output` holds.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
        }
    }

    /// A profile's or the environment's `output` setting.
    pub fn from_setting(text: &str) -> Result<Format, super::output::CliError> {
        <Format as ValueEnum>::from_str(text, true).map_err(|_| {
            super::output::CliError::usage(format!("output {text:?}: must be table or json"))
        })
    }
}

/// `--projectId`: the project (group) to work in.
#[derive(Debug, Clone, Default, Args)]
pub struct ProjectArg {
    /// Project ID [env: DBCERTS_PROJECT_ID, MONGODB_ATLAS_PROJECT_ID] [default: the profile's
    /// project_id]
    #[arg(long = "projectId", value_name = "ID")]
    pub project_id: Option<String>,
}

/// `--projectId` of the sweeps (`expiring`, `renew`), which default to every project.
#[derive(Debug, Clone, Default, Args)]
pub struct SweepProjectArg {
    /// Only this project [default: every project the credentials can see; the profile's and
    /// the environment's project are not applied]
    #[arg(long = "projectId", value_name = "ID")]
    pub project_id: Option<String>,
}

/// `--orgId`: the organization to work in.
#[derive(Debug, Clone, Default, Args)]
pub struct OrgArg {
    /// Organization ID [env: DBCERTS_ORG_ID, MONGODB_ATLAS_ORG_ID] [default: the profile's
    /// org_id]
    #[arg(long = "orgId", value_name = "ID")]
    pub org_id: Option<String>,
}

/// `--page`/`--limit` of list commands.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct PageArgs {
    /// Page number (1-based)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page: Option<u32>,
    /// Items per page, 1 to 500 [default: 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,
}

/// `--secretExpiresAfterHours`: the lifetime of a new service-account secret.
#[derive(Debug, Clone, Copy, Args)]
pub struct SecretLifetime {
    /// Lifetime of the new secret in hours
    #[arg(
        long = "secretExpiresAfterHours",
        value_name = "HOURS",
        default_value_t = 2160
    )]
    pub hours: u32,
}

/// `--force`: skip the confirmation a destructive command asks for.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ForceArg {
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Manage profiles: the server's URL, credentials and default project.
    #[command(after_help = "Examples:
  dbcerts config init
  dbcerts config init --baseUrl https://dbcerts.example.com --publicApiKey abcdefgh \\
      --privateApiKey \"$KEY\" --projectId 5efda6aea3f2ed2e7dd6ce05
  dbcerts config describe")]
    Config {
        #[command(flatten)]
        opts: Opts,
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Projects (groups).
    #[command(after_help = "Examples:
  dbcerts projects list
  dbcerts projects create payments --orgId 5efda682a3f2ed2e7dd6cde4")]
    Projects {
        #[command(flatten)]
        opts: Opts,
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// Database users, and the X.509 certificates of MANAGED users.
    #[command(after_help = "Examples:
  dbcerts dbusers create --username alice --x509Type MANAGED --role readWrite@sales
  dbcerts dbusers certs create --username alice --monthsUntilExpiration 3 --out alice.pem")]
    Dbusers {
        #[command(flatten)]
        opts: Opts,
        #[command(subcommand)]
        command: DbusersCommand,
    },
    /// Database access security: self-managed (customer) X.509 CAs.
    #[command(after_help = "Example:
  dbcerts security customerCerts create --casFile ca.pem")]
    Security {
        #[command(flatten)]
        opts: Opts,
        #[command(subcommand)]
        command: SecurityCommand,
    },
    /// Organizations: programmatic API keys and their access lists.
    #[command(
        name = "organizations",
        visible_alias = "orgs",
        after_help = "Example:
  dbcerts orgs apiKeys create --role ORG_READ_ONLY --desc \"monitoring\""
    )]
    Organizations {
        #[command(flatten)]
        opts: Opts,
        #[command(subcommand)]
        command: OrgsCommand,
    },
    /// Organization service accounts (OAuth 2.0 client credentials) and their secrets.
    #[command(
        name = "serviceAccounts",
        after_help = "Example:
  dbcerts serviceAccounts create --name ci --desc \"CI pipeline\" --role ORG_MEMBER"
    )]
    ServiceAccounts {
        #[command(flatten)]
        opts: Opts,
        #[command(subcommand)]
        command: ServiceAccountsCommand,
    },
    /// What a self-managed mongod needs to admit a project's MANAGED X.509 users: the project
    /// CA, the net.tls settings, and a createUser command per user with its roles.
    #[command(
        name = "mongod-config",
        after_help = "Examples:
  dbcerts mongod-config --projectId 5efda6aea3f2ed2e7dd6ce05
  dbcerts mongod-config --ca-out /etc/mongodb/dbcerts-ca.pem > mongod-setup.txt"
    )]
    MongodConfig {
        #[command(flatten)]
        opts: Opts,
        #[command(flatten)]
        project: ProjectArg,
        /// Write the CA PEM to FILE (and name FILE as net.tls.CAFile) instead of printing it
        #[arg(long = "ca-out", value_name = "FILE")]
        ca_out: Option<PathBuf>,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  dbcerts completion bash > /etc/bash_completion.d/dbcerts
  dbcerts completion zsh > \"${fpath[1]}/_dbcerts\"
  dbcerts completion fish > ~/.config/fish/completions/dbcerts.fish")]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create or replace a profile: base URL, credentials (API key pair or service account),
    /// default organization and project. Asks for what the flags leave out when stdin is a
    /// terminal. The file is written with mode 0600. `-o json` makes JSON the profile's
    /// default output.
    #[command(after_help = "Examples:
  dbcerts config init
  dbcerts config init --baseUrl http://127.0.0.1:8080 --publicApiKey abcdefgh \\
      --privateApiKey \"$PRIVATE_KEY\" --projectId 5efda6aea3f2ed2e7dd6ce05
  dbcerts config init -P ci --clientId mdb_sa_id_... --clientSecret \"$SECRET\"")]
    Init(ConfigInit),
    /// List the profiles.
    #[command(after_help = "Example:
  dbcerts config list")]
    List,
    /// Show a profile's settings (secrets masked).
    #[command(after_help = "Example:
  dbcerts config describe ci")]
    Describe {
        /// The profile [default: the selected one]
        name: Option<String>,
    },
    /// Set one setting of the selected profile.
    #[command(after_help = "Examples:
  dbcerts config set project_id 5efda6aea3f2ed2e7dd6ce05
  dbcerts config set output json -P ci")]
    Set {
        /// base_url, public_api_key, private_api_key, client_id, client_secret, org_id,
        /// project_id or output
        property: String,
        /// The new value.
        value: String,
    },
    /// Delete a profile.
    #[command(after_help = "Example:
  dbcerts config delete old --force")]
    Delete {
        /// The profile.
        name: String,
        #[command(flatten)]
        force: ForceArg,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct ConfigInit {
    /// The dbcerts (or Atlas) base URL [default: http://127.0.0.1:8080]
    #[arg(long = "baseUrl", value_name = "URL")]
    pub base_url: Option<String>,
    /// Public API key (with --privateApiKey)
    #[arg(long = "publicApiKey", value_name = "KEY", conflicts_with_all = ["client_id", "client_secret"])]
    pub public_api_key: Option<String>,
    /// Private API key (prefer the prompt: flags show up in the process list)
    #[arg(
        long = "privateApiKey",
        value_name = "KEY",
        requires = "public_api_key"
    )]
    pub private_api_key: Option<String>,
    /// Service account client ID (with --clientSecret)
    #[arg(long = "clientId", value_name = "ID")]
    pub client_id: Option<String>,
    /// Service account secret (prefer the prompt: flags show up in the process list)
    #[arg(long = "clientSecret", value_name = "SECRET", requires = "client_id")]
    pub client_secret: Option<String>,
    /// Default organization ID
    #[arg(long = "orgId", value_name = "ID")]
    pub org_id: Option<String>,
    /// Default project ID
    #[arg(long = "projectId", value_name = "ID")]
    pub project_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// List the projects the credentials can see.
    #[command(after_help = "Examples:
  dbcerts projects list
  dbcerts projects list --limit 500 -o json")]
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a project.
    #[command(after_help = "Example:
  dbcerts projects create payments --orgId 5efda682a3f2ed2e7dd6cde4")]
    Create {
        /// The project's name.
        name: String,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Show a project.
    #[command(after_help = "Example:
  dbcerts projects describe 5efda6aea3f2ed2e7dd6ce05 -o json")]
    Describe {
        /// The project ID.
        id: String,
    },
    /// Delete a project (it must have no database users).
    #[command(after_help = "Example:
  dbcerts projects delete 5efda6aea3f2ed2e7dd6ce05 --force")]
    Delete {
        /// The project ID.
        id: String,
        #[command(flatten)]
        force: ForceArg,
    },
}

/// Atlas's built-in roles that `dbusers create` takes as positional arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "verbatim")]
pub enum BuiltInRole {
    /// atlasAdmin@admin
    #[value(name = "atlasAdmin")]
    AtlasAdmin,
    /// readWriteAnyDatabase@admin
    #[value(name = "readWriteAnyDatabase")]
    ReadWriteAnyDatabase,
    /// readAnyDatabase@admin
    #[value(name = "readAnyDatabase")]
    ReadAnyDatabase,
}

impl BuiltInRole {
    pub fn name(self) -> &'static str {
        match self {
            BuiltInRole::AtlasAdmin => "atlasAdmin",
            BuiltInRole::ReadWriteAnyDatabase => "readWriteAnyDatabase",
            BuiltInRole::ReadAnyDatabase => "readAnyDatabase",
        }
    }
}

/// The x509Type values, spelled as Atlas spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum X509TypeArg {
    /// Not an X.509 user (SCRAM, on admin).
    None,
    /// Certificates issued by dbcerts (this server's project CA).
    Managed,
    /// Certificates issued by the customer's CA (security customerCerts); the username is a DN.
    Customer,
}

#[derive(Debug, Clone, Default, Args)]
pub struct UserFields {
    /// Roles as roleName@dbName[.collection], comma-separated or repeated (replace all roles
    /// on update)
    #[arg(long = "role", value_name = "ROLE@DB[.COLL]", value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Clusters or data lakes the user is limited to, as name[:CLUSTER|DATA_LAKE],
    /// comma-separated or repeated
    #[arg(long = "scope", value_name = "NAME[:TYPE]", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Description (up to 100 characters)
    #[arg(long = "desc", value_name = "TEXT")]
    pub description: Option<String>,
    /// SCRAM password of a NONE user (asked for on a terminal when needed and missing)
    #[arg(short = 'p', long, value_name = "PASSWORD")]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DbusersCommand {
    /// List a project's database users.
    #[command(after_help = "Example:
  dbcerts dbusers list --projectId 5efda6aea3f2ed2e7dd6ce05 -o json")]
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a database user. X.509 users (--x509Type MANAGED or CUSTOMER) live on
    /// $external and have no password.
    #[command(after_help = "Examples:
  dbcerts dbusers create --username alice --x509Type MANAGED --role readWrite@sales
  dbcerts dbusers create readAnyDatabase --username 'CN=carol,OU=eng,O=Example' --x509Type CUSTOMER
  dbcerts dbusers create atlasAdmin --username admin --password \"$PASSWORD\"")]
    Create {
        /// Built-in roles on admin, in addition to --role
        #[arg(value_enum, value_name = "builtInRole")]
        built_in_roles: Vec<BuiltInRole>,
        /// The user name (for CUSTOMER users, the certificate's RFC 2253 subject)
        #[arg(short = 'u', long, value_name = "NAME")]
        username: String,
        /// X.509 authentication type
        #[arg(
            long = "x509Type",
            value_enum,
            value_name = "TYPE",
            default_value = "NONE"
        )]
        x509_type: X509TypeArg,
        /// Delete the (non-X.509) user at this time, RFC 3339, at most a week ahead
        #[arg(long = "deleteAfter", value_name = "TIME")]
        delete_after: Option<String>,
        #[command(flatten)]
        fields: UserFields,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Show a database user.
    #[command(after_help = "Example:
  dbcerts dbusers describe alice")]
    Describe {
        /// The user name.
        username: String,
        /// The authentication database, admin or $external [default: admin, then $external]
        #[arg(long = "authDB", value_name = "DB")]
        auth_db: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Change a database user; --role replaces all of its roles.
    #[command(after_help = "Example:
  dbcerts dbusers update alice --role read@sales --role readWrite@reports")]
    Update {
        /// The user name.
        username: String,
        /// The authentication database, admin or $external [default: admin, then $external]
        #[arg(long = "authDB", value_name = "DB")]
        auth_db: Option<String>,
        /// New X.509 authentication type
        #[arg(long = "x509Type", value_enum, value_name = "TYPE")]
        x509_type: Option<X509TypeArg>,
        #[command(flatten)]
        fields: UserFields,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Delete a database user (its certificates stay valid until they expire).
    #[command(after_help = "Example:
  dbcerts dbusers delete alice --authDB '$external' --force")]
    Delete {
        /// The user name.
        username: String,
        /// The authentication database, admin or $external [default: admin, then $external]
        #[arg(long = "authDB", value_name = "DB")]
        auth_db: Option<String>,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// X.509 certificates of MANAGED users.
    #[command(after_help = "Examples:
  dbcerts dbusers certs create --username alice --out alice.pem
  dbcerts dbusers certs expiring --within 30d
  dbcerts dbusers certs renew --expiring-within 30d --out-dir /etc/mongodb/clients
  dbcerts dbusers certs revoke --username alice --serial 4611686018427387904 --reason keyCompromise
  dbcerts dbusers certs status alice")]
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List a user's unexpired certificates.
    #[command(after_help = "Example:
  dbcerts dbusers certs list alice -o json")]
    List {
        /// The MANAGED user.
        username: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Issue a certificate and its private key. With --out the PEM goes to FILE (mode 0600);
    /// without it, to stdout, but only when stdout is not a terminal.
    #[command(after_help = "Examples:
  dbcerts dbusers certs create --username alice --monthsUntilExpiration 3 --out alice.pem
  dbcerts dbusers certs create --username alice > alice.pem   # the file is made 0600")]
    Create {
        /// The MANAGED user.
        #[arg(long, value_name = "NAME")]
        username: String,
        /// Months until the certificate expires, 1 to 24 [default: 3]
        #[arg(long = "monthsUntilExpiration", value_name = "N")]
        months: Option<u32>,
        /// Write the certificate and key to FILE (mode 0600)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Certificates of MANAGED users that expire within a window, in one project or in every
    /// project the credentials can see; soonest first.
    #[command(after_help = "Examples:
  dbcerts dbusers certs expiring --within 30d
  dbcerts dbusers certs expiring --within 2w --projectId 5efda6aea3f2ed2e7dd6ce05 -o json")]
    Expiring {
        /// The window, e.g. 30d, 2w, 12h
        #[arg(long, value_name = "DURATION", value_parser = parse_window)]
        within: std::time::Duration,
        #[command(flatten)]
        project: SweepProjectArg,
    },
    /// Issue a new certificate for every MANAGED user whose certificates all expire within
    /// the window, writing one 0600 file per user: DIR/<username>.pem with --projectId,
    /// DIR/<projectId>/<username>.pem otherwise. Continues past failures; exits 1 if any.
    /// Keep the window shorter than the new certificates' life (3 months by default), or they
    /// are due again at once and every run renews them again; renew warns when it is not.
    #[command(after_help = "Examples:
  dbcerts dbusers certs renew --expiring-within 30d --out-dir ./renewed
  dbcerts dbusers certs renew --expiring-within 2w --out-dir /etc/mongodb/clients \\
      --projectId 5efda6aea3f2ed2e7dd6ce05 --monthsUntilExpiration 6 --force")]
    Renew {
        /// The window, e.g. 30d, 2w, 12h
        #[arg(long = "expiring-within", value_name = "DURATION", value_parser = parse_window)]
        expiring_within: std::time::Duration,
        /// Directory for the PEM files (created with mode 0700 if missing)
        #[arg(long = "out-dir", value_name = "DIR")]
        out_dir: PathBuf,
        /// Months until the new certificates expire, 1 to 24 [default: 3]
        #[arg(long = "monthsUntilExpiration", value_name = "N")]
        months: Option<u32>,
        /// Replace existing files
        #[arg(long)]
        force: bool,
        /// Certificates requested at once
        #[arg(long, value_name = "N", default_value_t = 4,
              value_parser = clap::value_parser!(u32).range(1..=64))]
        parallel: u32,
        #[command(flatten)]
        project: SweepProjectArg,
    },
    /// Revoke one certificate (--serial), or every unexpired certificate of the user (--all),
    /// with an RFC 5280 reason. Needs Project Owner. Revoking again changes nothing: the first
    /// time and reason stay. Clients refuse the certificate once mongod reloads the CRL (see
    /// `dbcerts ca crl`) or asks the OCSP responder.
    #[command(after_help = "Examples:
  dbcerts dbusers certs revoke --username alice --serial 4611686018427387904 --reason keyCompromise
  dbcerts dbusers certs revoke --username alice --all --reason affiliationChanged -o json")]
    Revoke {
        /// The user the certificate was issued to.
        #[arg(long, value_name = "NAME")]
        username: String,
        /// The certificate's serial number (the ID column of `dbusers certs list`)
        #[arg(
            long,
            value_name = "SERIAL",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        serial: Option<i64>,
        /// Every unexpired certificate of the user
        #[arg(long)]
        all: bool,
        /// keyCompromise, superseded, cessationOfOperation, affiliationChanged or unspecified
        /// [default: unspecified]
        #[arg(long, value_name = "REASON", value_parser = [
            "unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation",
        ])]
        reason: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// List every certificate of a user, expired, revoked and deleted users' ones included,
    /// with its status: VALID, EXPIRING (within the server's cert-expiring-days, 30 by
    /// default), EXPIRED or REVOKED (with time and reason).
    #[command(after_help = "Example:
  dbcerts dbusers certs status alice -o json")]
    Status {
        /// The user.
        username: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// `30d`, `2w`, `12h`: a positive duration.
fn parse_window(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 30d, 2w, 12h)"))?;
    if d.is_zero() {
        return Err("the window must be longer than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum SecurityCommand {
    /// Self-managed X.509: the customer's CA certificates that MongoDB trusts for CUSTOMER
    /// users.
    #[command(
        name = "customerCerts",
        after_help = "Examples:
  dbcerts security customerCerts create --casFile ca.pem
  dbcerts security customerCerts disable --force"
    )]
    CustomerCerts {
        #[command(subcommand)]
        command: CustomerCertsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomerCertsCommand {
    /// Set the project's customer CA bundle (PEM), replacing any earlier one.
    #[command(after_help = "Example:
  dbcerts security customerCerts create --casFile ca.pem --projectId 5efda6aea3f2ed2e7dd6ce05")]
    Create {
        /// PEM file of one or more CA certificates
        #[arg(long = "casFile", value_name = "FILE")]
        cas_file: PathBuf,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Print the project's customer CA bundle.
    #[command(after_help = "Example:
  dbcerts security customerCerts describe > customer-ca.pem")]
    Describe {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Turn self-managed X.509 off and forget the customer CA bundle.
    #[command(after_help = "Example:
  dbcerts security customerCerts disable --force")]
    Disable {
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        project: ProjectArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Programmatic API keys of the organization.
    #[command(
        name = "apiKeys",
        after_help = "Examples:
  dbcerts orgs apiKeys list
  dbcerts orgs apiKeys create --role ORG_MEMBER --desc \"CI\""
    )]
    ApiKeys {
        #[command(subcommand)]
        command: ApiKeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// List the organization's API keys.
    #[command(after_help = "Example:
  dbcerts orgs apiKeys list --orgId 5efda682a3f2ed2e7dd6cde4")]
    List {
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create an API key; its private key is shown this once.
    #[command(after_help = "Example:
  dbcerts orgs apiKeys create --role ORG_READ_ONLY --desc \"monitoring\" -o json")]
    Create {
        /// Organization role (repeatable), e.g. ORG_OWNER, ORG_MEMBER, ORG_READ_ONLY
        #[arg(long = "role", required = true, value_name = "ROLE")]
        roles: Vec<String>,
        /// Description
        #[arg(long = "desc", required = true, value_name = "TEXT")]
        desc: String,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Show an API key.
    #[command(after_help = "Example:
  dbcerts orgs apiKeys describe 5f24084d8dbffa3ad3f21234")]
    Describe {
        /// The API key's ID.
        id: String,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Change an API key's roles or description.
    #[command(after_help = "Example:
  dbcerts orgs apiKeys update 5f24084d8dbffa3ad3f21234 --role ORG_OWNER")]
    Update {
        /// The API key's ID.
        id: String,
        /// New organization roles (repeatable; replaces all)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// New description
        #[arg(long = "desc", value_name = "TEXT")]
        desc: Option<String>,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Delete an API key.
    #[command(after_help = "Example:
  dbcerts orgs apiKeys delete 5f24084d8dbffa3ad3f21234 --force")]
    Delete {
        /// The API key's ID.
        id: String,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        org: OrgArg,
    },
    /// The addresses an API key may be used from.
    #[command(
        name = "accessLists",
        after_help = "Example:
  dbcerts orgs apiKeys accessLists create --apiKey 5f24084d8dbffa3ad3f21234 --cidr 10.0.0.0/8"
    )]
    AccessLists {
        #[command(subcommand)]
        command: AccessListsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessListsCommand {
    /// List an API key's access list.
    #[command(after_help = "Example:
  dbcerts orgs apiKeys accessLists list 5f24084d8dbffa3ad3f21234")]
    List {
        /// The API key's ID.
        api_key: String,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Allow an address or CIDR block.
    #[command(after_help = "Examples:
  dbcerts orgs apiKeys accessLists create --apiKey 5f24084d8dbffa3ad3f21234 --ip 192.0.2.10
  dbcerts orgs apiKeys accessLists create --apiKey 5f24084d8dbffa3ad3f21234 --cidr 10.0.0.0/8")]
    Create {
        /// The API key's ID.
        #[arg(long = "apiKey", value_name = "ID")]
        api_key: String,
        /// An IP address
        #[arg(
            long,
            value_name = "IP",
            conflicts_with = "cidr",
            required_unless_present = "cidr"
        )]
        ip: Option<String>,
        /// A CIDR block
        #[arg(long, value_name = "CIDR")]
        cidr: Option<String>,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Remove an address or CIDR block.
    #[command(after_help = "Example:
  dbcerts orgs apiKeys accessLists delete 192.0.2.10 --apiKey 5f24084d8dbffa3ad3f21234 --force")]
    Delete {
        /// The address or CIDR block, as listed.
        entry: String,
        /// The API key's ID.
        #[arg(long = "apiKey", value_name = "ID")]
        api_key: String,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        org: OrgArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceAccountsCommand {
    /// List the organization's service accounts.
    #[command(after_help = "Example:
  dbcerts serviceAccounts list -o json")]
    List {
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a service account; its first secret is shown this once.
    #[command(after_help = "Example:
  dbcerts serviceAccounts create --name ci --desc \"CI pipeline\" --role ORG_MEMBER \\
      --secretExpiresAfterHours 720")]
    Create {
        /// Name
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Description
        #[arg(long = "desc", value_name = "TEXT")]
        desc: String,
        /// Organization role (repeatable)
        #[arg(long = "role", required = true, value_name = "ROLE")]
        roles: Vec<String>,
        #[command(flatten)]
        lifetime: SecretLifetime,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Show a service account.
    #[command(after_help = "Example:
  dbcerts serviceAccounts describe mdb_sa_id_5f24084d8dbffa3ad3f21234")]
    Describe {
        /// The client ID.
        client_id: String,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Change a service account's name, description or roles.
    #[command(after_help = "Example:
  dbcerts serviceAccounts update mdb_sa_id_5f24084d8dbffa3ad3f21234 --role ORG_READ_ONLY")]
    Update {
        /// The client ID.
        client_id: String,
        /// New name
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// New description
        #[arg(long = "desc", value_name = "TEXT")]
        desc: Option<String>,
        /// New organization roles (repeatable; replaces all)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Delete a service account.
    #[command(after_help = "Example:
  dbcerts serviceAccounts delete mdb_sa_id_5f24084d8dbffa3ad3f21234 --force")]
    Delete {
        /// The client ID.
        client_id: String,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        org: OrgArg,
    },
    /// A service account's secrets.
    #[command(after_help = "Example:
  dbcerts serviceAccounts secrets create --clientId mdb_sa_id_5f24084d8dbffa3ad3f21234")]
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Add a secret; it is shown this once.
    #[command(after_help = "Example:
  dbcerts serviceAccounts secrets create --clientId mdb_sa_id_5f24084d8dbffa3ad3f21234 \\
      --secretExpiresAfterHours 720")]
    Create {
        /// The client ID.
        #[arg(long = "clientId", value_name = "ID")]
        client_id: String,
        #[command(flatten)]
        lifetime: SecretLifetime,
        #[command(flatten)]
        org: OrgArg,
    },
    /// Delete a secret.
    #[command(after_help = "Example:
  dbcerts serviceAccounts secrets delete 5f24084d8dbffa3ad3f29876 \\
      --clientId mdb_sa_id_5f24084d8dbffa3ad3f21234 --force")]
    Delete {
        /// The secret's ID.
        secret_id: String,
        /// The client ID.
        #[arg(long = "clientId", value_name = "ID")]
        client_id: String,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        org: OrgArg,
    },
}
