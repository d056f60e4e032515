//! projects, dbusers, security customerCerts, orgs apiKeys and serviceAccounts: one API call
//! each (or two, to find a user's authentication database), printed as a table or JSON.

use std::io::IsTerminal;

use dbcerts_client::{
    AccessListRequest, ApiKey, ApiKeyUpdate, ClientError, DatabaseUser, DatabaseUserRole,
    DatabaseUserUpdate, EXTERNAL, NewApiKey, NewDatabaseUser, NewProject, NewServiceAccount, Page,
    Project, Secret, ServiceAccount, ServiceAccountUpdate, UserScope, X509Type,
};
use serde::Serialize;

use super::args::{
    AccessListsCommand, ApiKeysCommand, CustomerCertsCommand, DbusersCommand, OrgsCommand,
    ProjectsCommand, SecretsCommand, SecurityCommand, ServiceAccountsCommand, UserFields,
    X509TypeArg,
};
use super::output::{CliError, confirm, one_line, print_json, print_table, time};
use super::{Ctx, certs, list_options};

/// Prints a result: `json` as JSON, else the table or message `table` prints.
fn show<T: Serialize + ?Sized>(
    ctx: &Ctx,
    value: &T,
    table: impl FnOnce() -> Result<(), CliError>,
) -> Result<(), CliError> {
    if ctx.json() {
        print_json(value)
    } else {
        table()
    }
}

/// Prints a page: JSON as Atlas sends it, or a table of `row`s.
fn show_page<T: Serialize>(
    ctx: &Ctx,
    page: &Page<T>,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<(), CliError> {
    show(ctx, page, || {
        print_table(headers, &page.results.iter().map(row).collect::<Vec<_>>())
    })
}

/// Prints `message` unless the output is JSON, in which case `value` is printed.
fn done<T: Serialize + ?Sized>(ctx: &Ctx, value: &T, message: String) -> Result<(), CliError> {
    show(ctx, value, || {
        // Names in the message come from the server: one clean line each.
        for line in message.lines() {
            println!("{}", one_line(line));
        }
        Ok(())
    })
}

// ---- projects ----

const PROJECT_HEADERS: [&str; 4] = ["ID", "NAME", "ORG ID", "CREATED"];

fn project_row(p: &Project) -> Vec<String> {
    vec![
        p.id.clone(),
        p.name.clone(),
        p.org_id.clone(),
        time(&p.created),
    ]
}

pub async fn projects(ctx: Ctx, command: ProjectsCommand) -> Result<(), CliError> {
    let c = &ctx.client;
    match command {
        ProjectsCommand::List { page } => {
            let page = c.list_groups(list_options(page)).await?;
            show_page(&ctx, &page, &PROJECT_HEADERS, project_row)
        }
        ProjectsCommand::Create { name, org } => {
            let org_id = ctx.org(org.org_id)?;
            let p = c.create_group(&NewProject::new(name, org_id)).await?;
            done(&ctx, &p, format!("Project '{}' created: {}", p.name, p.id))
        }
        ProjectsCommand::Describe { id } => {
            let p = c.get_group(&id).await?;
            show(&ctx, &p, || {
                print_table(&PROJECT_HEADERS, &[project_row(&p)])
            })
        }
        ProjectsCommand::Delete { id, force } => {
            confirm(force.force, &format!("Delete project '{id}'?"))?;
            c.delete_group(&id).await?;
            deleted(&ctx, format!("Project '{id}' deleted"))
        }
    }
}

/// What a delete prints: a line, or `{}` for JSON.
fn deleted(ctx: &Ctx, message: String) -> Result<(), CliError> {
    done(ctx, &serde_json::json!({}), message)
}

// ---- database users ----

const USER_HEADERS: [&str; 4] = ["USERNAME", "DATABASE", "X509 TYPE", "ROLES"];

fn user_row(u: &DatabaseUser) -> Vec<String> {
    vec![
        u.username.clone(),
        u.database_name.clone(),
        u.x509_type.as_str().to_owned(),
        u.roles.iter().map(role_text).collect::<Vec<_>>().join(", "),
    ]
}

/// `roleName@db[.collection]`, as `--role` takes it.
pub fn role_text(r: &DatabaseUserRole) -> String {
    match &r.collection_name {
        Some(c) => format!("{}@{}.{}", r.role_name, r.database_name, c),
        None => format!("{}@{}", r.role_name, r.database_name),
    }
}

/// Reads `roleName@dbName[.collection]`; without `@db` the role is on `admin`.
pub fn parse_role(text: &str) -> Result<DatabaseUserRole, CliError> {
    let bad = || {
        CliError::usage(format!(
            "--role {text:?}: expected roleName@dbName[.collection]"
        ))
    };
    let (role, target) = text.split_once('@').unwrap_or((text, "admin"));
    let (db, collection) = match target.split_once('.') {
        Some((db, coll)) => (db, Some(coll)),
        None => (target, None),
    };
    if role.is_empty() || db.is_empty() || collection.is_some_and(str::is_empty) {
        return Err(bad());
    }
    Ok(DatabaseUserRole {
        collection_name: collection.map(str::to_owned),
        database_name: db.to_owned(),
        role_name: role.to_owned(),
    })
}

/// Reads `name[:CLUSTER|DATA_LAKE]` (default CLUSTER).
fn parse_scope(text: &str) -> Result<UserScope, CliError> {
    let (name, kind) = text.split_once(':').unwrap_or((text, "CLUSTER"));
    if name.is_empty() || !matches!(kind, "CLUSTER" | "DATA_LAKE") {
        return Err(CliError::usage(format!(
            "--scope {text:?}: expected name[:CLUSTER|DATA_LAKE]"
        )));
    }
    Ok(UserScope {
        name: name.to_owned(),
        kind: kind.to_owned(),
    })
}

fn x509(t: X509TypeArg) -> X509Type {
    match t {
        X509TypeArg::None => X509Type::None,
        X509TypeArg::Managed => X509Type::Managed,
        X509TypeArg::Customer => X509Type::Customer,
    }
}

fn parsed<T>(items: &[String], parse: fn(&str) -> Result<T, CliError>) -> Result<Vec<T>, CliError> {
    items.iter().map(|s| parse(s)).collect()
}

/// The password of a SCRAM user: the flag, else asked for on a terminal.
fn password(flag: Option<String>) -> Result<Secret, CliError> {
    if let Some(p) = flag {
        return Ok(Secret::new(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "a NONE (SCRAM) user needs --password (or a terminal to ask for it)",
        ));
    }
    dialoguer::Password::new()
        .with_prompt("Password")
        .with_confirmation("Confirm password", "The passwords differ")
        .interact()
        .map(Secret::new)
        .map_err(|e| CliError::usage(format!("no password: {e}")))
}

/// The user `username` on `auth_db`, or, when none is given, on `admin` and then on
/// `$external` (X.509 users live there).
async fn find_user(
    ctx: &Ctx,
    group_id: &str,
    username: &str,
    auth_db: Option<&str>,
) -> Result<DatabaseUser, CliError> {
    if let Some(db) = auth_db {
        return Ok(ctx.client.get_database_user(group_id, db, username).await?);
    }
    match ctx
        .client
        .get_database_user(group_id, "admin", username)
        .await
    {
        // Only a missing user is worth a second look; a missing project is final.
        Err(ClientError::NotFound(first)) if first.error_code == "USERNAME_NOT_FOUND" => {
            match ctx
                .client
                .get_database_user(group_id, EXTERNAL, username)
                .await
            {
                // On neither: the miss on admin, as the atlas CLI would report it.
                Err(ClientError::NotFound(second)) if second.error_code == "USERNAME_NOT_FOUND" => {
                    Err(ClientError::NotFound(first).into())
                }
                other => Ok(other?),
            }
        }
        other => Ok(other?),
    }
}

pub async fn dbusers(ctx: Ctx, command: DbusersCommand) -> Result<(), CliError> {
    let c = &ctx.client;
    match command {
        DbusersCommand::List { project, page } => {
            let g = ctx.project(project.project_id)?;
            let page = c.list_database_users(&g, list_options(page)).await?;
            show_page(&ctx, &page, &USER_HEADERS, user_row)
        }
        DbusersCommand::Create {
            built_in_roles,
            username,
            x509_type,
            delete_after,
            fields,
            project,
        } => {
            let g = ctx.project(project.project_id)?;
            let mut roles: Vec<DatabaseUserRole> = built_in_roles
                .iter()
                .map(|r| DatabaseUserRole::new(r.name(), "admin"))
                .collect();
            roles.extend(parsed(&fields.roles, parse_role)?);
            if roles.is_empty() {
                return Err(CliError::usage(
                    "a database user needs a role: a builtInRole argument or --role",
                ));
            }
            let scram = x509_type == X509TypeArg::None;
            if !scram && fields.password.is_some() {
                return Err(CliError::usage(
                    "X.509 users authenticate with certificates: --password does not apply",
                ));
            }
            let delete_after_date = delete_after
                .as_deref()
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map(|d| d.to_utc())
                        .map_err(|e| CliError::usage(format!("--deleteAfter {t:?}: {e}")))
                })
                .transpose()?;
            let user = NewDatabaseUser {
                aws_iam_type: None,
                database_name: if scram { "admin" } else { EXTERNAL }.to_owned(),
                delete_after_date,
                description: fields.description,
                group_id: g.clone(),
                labels: None,
                ldap_auth_type: None,
                oidc_auth_type: None,
                password: if scram {
                    Some(password(fields.password)?)
                } else {
                    None
                },
                roles,
                scopes: (!fields.scopes.is_empty())
                    .then(|| parsed(&fields.scopes, parse_scope))
                    .transpose()?,
                username,
                x509_type: Some(x509(x509_type)),
            };
            let u = c.create_database_user(&user).await?;
            done(&ctx, &u, format!("Database user '{}' created.", u.username))
        }
        DbusersCommand::Describe {
            username,
            auth_db,
            project,
        } => {
            let g = ctx.project(project.project_id)?;
            let u = find_user(&ctx, &g, &username, auth_db.as_deref()).await?;
            show(&ctx, &u, || print_table(&USER_HEADERS, &[user_row(&u)]))
        }
        DbusersCommand::Update {
            username,
            auth_db,
            x509_type,
            fields,
            project,
        } => {
            let g = ctx.project(project.project_id)?;
            let found = find_user(&ctx, &g, &username, auth_db.as_deref()).await?;
            let update = user_update(fields, x509_type)?;
            let u = c
                .update_database_user(&g, &found.database_name, &username, &update)
                .await?;
            done(&ctx, &u, format!("Database user '{}' updated.", u.username))
        }
        DbusersCommand::Delete {
            username,
            auth_db,
            force,
            project,
        } => {
            let g = ctx.project(project.project_id)?;
            let found = find_user(&ctx, &g, &username, auth_db.as_deref()).await?;
            confirm(
                force.force,
                &format!(
                    "Delete database user '{username}' ({})?",
                    found.database_name
                ),
            )?;
            c.delete_database_user(&g, &found.database_name, &username)
                .await?;
            deleted(&ctx, format!("Database user '{username}' deleted"))
        }
        DbusersCommand::Certs { command } => certs::run(ctx, command).await,
    }
}

fn user_update(
    fields: UserFields,
    x509_type: Option<X509TypeArg>,
) -> Result<DatabaseUserUpdate, CliError> {
    let update = DatabaseUserUpdate {
        description: fields.description,
        password: fields.password.map(Secret::new),
        roles: (!fields.roles.is_empty())
            .then(|| parsed(&fields.roles, parse_role))
            .transpose()?,
        scopes: (!fields.scopes.is_empty())
            .then(|| parsed(&fields.scopes, parse_scope))
            .transpose()?,
        x509_type: x509_type.map(x509),
        ..DatabaseUserUpdate::default()
    };
    if update.description.is_none()
        && update.password.is_none()
        && update.roles.is_none()
        && update.scopes.is_none()
        && update.x509_type.is_none()
    {
        return Err(CliError::usage(
            "nothing to change: give --role, --scope, --desc, --password or --x509Type",
        ));
    }
    Ok(update)
}

// ---- security customerCerts ----

pub async fn security(ctx: Ctx, command: SecurityCommand) -> Result<(), CliError> {
    let SecurityCommand::CustomerCerts { command } = command;
    let c = &ctx.client;
    match command {
        CustomerCertsCommand::Create { cas_file, project } => {
            let g = ctx.project(project.project_id)?;
            let cas = std::fs::read_to_string(&cas_file)
                .map_err(|e| CliError::usage(format!("--casFile {}: {e}", cas_file.display())))?;
            let s = c.set_customer_cas(&g, &cas).await?;
            done(
                &ctx,
                &s,
                format!("Customer CA certificates saved for project {g}"),
            )
        }
        CustomerCertsCommand::Describe { project } => {
            let g = ctx.project(project.project_id)?;
            let s = c.get_user_security(&g).await?;
            show(&ctx, &s.customer_x509, || {
                match s.customer_x509.cas.as_deref().filter(|c| !c.is_empty()) {
                    Some(pem) => print!("{}{}", pem, if pem.ends_with('\n') { "" } else { "\n" }),
                    None => println!("No customer CA is set for project {g}"),
                }
                Ok(())
            })
        }
        CustomerCertsCommand::Disable { force, project } => {
            let g = ctx.project(project.project_id)?;
            confirm(
                force.force,
                &format!("Disable self-managed X.509 for project {g}?"),
            )?;
            let s = c.disable_customer_x509(&g).await?;
            done(
                &ctx,
                &s,
                format!("Self-managed X.509 disabled for project {g}"),
            )
        }
    }
}

// ---- organization API keys ----

const API_KEY_HEADERS: [&str; 4] = ["ID", "PUBLIC KEY", "DESCRIPTION", "ROLES"];

fn api_key_row(k: &ApiKey) -> Vec<String> {
    let roles: Vec<&str> = k.roles.iter().map(|r| r.role_name.as_str()).collect();
    vec![
        k.id.clone(),
        k.public_key.clone(),
        k.desc.clone(),
        roles.join(", "),
    ]
}

pub async fn orgs(ctx: Ctx, command: OrgsCommand) -> Result<(), CliError> {
    let OrgsCommand::ApiKeys { command } = command;
    let c = &ctx.client;
    match command {
        ApiKeysCommand::List { org, page } => {
            let o = ctx.org(org.org_id)?;
            let page = c.list_org_api_keys(&o, list_options(page)).await?;
            show_page(&ctx, &page, &API_KEY_HEADERS, api_key_row)
        }
        ApiKeysCommand::Create { roles, desc, org } => {
            let o = ctx.org(org.org_id)?;
            let k = c.create_org_api_key(&o, &NewApiKey { desc, roles }).await?;
            done(
                &ctx,
                &k,
                format!(
                    "API Key '{}' created.\nPublic API Key: {}\nPrivate API Key: {}\n\
                     The private key is shown this once.",
                    k.id,
                    k.public_key,
                    k.private_key.expose()
                ),
            )
        }
        ApiKeysCommand::Describe { id, org } => {
            let o = ctx.org(org.org_id)?;
            let k = c.get_org_api_key(&o, &id).await?;
            show(&ctx, &k, || {
                print_table(&API_KEY_HEADERS, &[api_key_row(&k)])
            })
        }
        ApiKeysCommand::Update {
            id,
            roles,
            desc,
            org,
        } => {
            let o = ctx.org(org.org_id)?;
            if roles.is_empty() && desc.is_none() {
                return Err(CliError::usage("nothing to change: give --role or --desc"));
            }
            let update = ApiKeyUpdate {
                desc,
                roles: (!roles.is_empty()).then_some(roles),
            };
            let k = c.update_org_api_key(&o, &id, &update).await?;
            done(&ctx, &k, format!("API Key '{}' updated.", k.id))
        }
        ApiKeysCommand::Delete { id, force, org } => {
            let o = ctx.org(org.org_id)?;
            confirm(force.force, &format!("Delete API key '{id}'?"))?;
            c.delete_org_api_key(&o, &id).await?;
            deleted(&ctx, format!("API Key '{id}' deleted"))
        }
        ApiKeysCommand::AccessLists { command } => access_lists(&ctx, command).await,
    }
}

async fn access_lists(ctx: &Ctx, command: AccessListsCommand) -> Result<(), CliError> {
    let c = &ctx.client;
    let headers = ["IP ADDRESS", "CIDR BLOCK", "CREATED"];
    let row = |e: &dbcerts_client::AccessListEntry| {
        vec![
            e.ip_address.clone().unwrap_or_default(),
            e.cidr_block.clone(),
            e.created.as_ref().map(time).unwrap_or_default(),
        ]
    };
    match command {
        AccessListsCommand::List { api_key, org } => {
            let o = ctx.org(org.org_id)?;
            let page = c
                .list_api_key_access_list(&o, &api_key, list_options(Default::default()))
                .await?;
            show_page(ctx, &page, &headers, row)
        }
        AccessListsCommand::Create {
            api_key,
            ip,
            cidr,
            org,
        } => {
            let o = ctx.org(org.org_id)?;
            let entry = match (ip, cidr) {
                (Some(ip), _) => AccessListRequest::ip(ip),
                (None, Some(cidr)) => AccessListRequest::cidr(cidr),
                (None, None) => return Err(CliError::usage("give --ip or --cidr")),
            };
            let page = c.create_api_key_access_list(&o, &api_key, &[entry]).await?;
            show_page(ctx, &page, &headers, row)
        }
        AccessListsCommand::Delete {
            entry,
            api_key,
            force,
            org,
        } => {
            let o = ctx.org(org.org_id)?;
            confirm(
                force.force,
                &format!("Remove {entry} from the access list of API key '{api_key}'?"),
            )?;
            c.delete_api_key_access_list_entry(&o, &api_key, &entry)
                .await?;
            deleted(ctx, format!("Access list entry '{entry}' deleted"))
        }
    }
}

// ---- service accounts ----

const SA_HEADERS: [&str; 4] = ["CLIENT ID", "NAME", "DESCRIPTION", "ROLES"];

fn sa_row(s: &ServiceAccount) -> Vec<String> {
    vec![
        s.client_id.clone(),
        s.name.clone(),
        s.description.clone(),
        s.roles.join(", "),
    ]
}

pub async fn service_accounts(ctx: Ctx, command: ServiceAccountsCommand) -> Result<(), CliError> {
    let c = &ctx.client;
    match command {
        ServiceAccountsCommand::List { org, page } => {
            let o = ctx.org(org.org_id)?;
            let page = c.list_org_service_accounts(&o, list_options(page)).await?;
            show_page(&ctx, &page, &SA_HEADERS, sa_row)
        }
        ServiceAccountsCommand::Create {
            name,
            desc,
            roles,
            lifetime,
            org,
        } => {
            let o = ctx.org(org.org_id)?;
            let new = NewServiceAccount {
                name,
                description: desc,
                roles,
                secret_expires_after_hours: lifetime.hours,
            };
            let s = c.create_org_service_account(&o, &new).await?;
            let secret = s
                .secrets
                .iter()
                .find_map(|x| x.secret.as_ref())
                .map_or("", |x| x.expose());
            done(
                &ctx,
                &s,
                format!(
                    "Service account '{}' created.\nClient ID: {}\nClient Secret: {}\n\
                     The secret is shown this once.",
                    s.name, s.client_id, secret
                ),
            )
        }
        ServiceAccountsCommand::Describe { client_id, org } => {
            let o = ctx.org(org.org_id)?;
            let s = c.get_org_service_account(&o, &client_id).await?;
            show(&ctx, &s, || print_table(&SA_HEADERS, &[sa_row(&s)]))
        }
        ServiceAccountsCommand::Update {
            client_id,
            name,
            desc,
            roles,
            org,
        } => {
            let o = ctx.org(org.org_id)?;
            if name.is_none() && desc.is_none() && roles.is_empty() {
                return Err(CliError::usage(
                    "nothing to change: give --name, --desc or --role",
                ));
            }
            let update = ServiceAccountUpdate {
                description: desc,
                name,
                roles: (!roles.is_empty()).then_some(roles),
            };
            let s = c
                .update_org_service_account(&o, &client_id, &update)
                .await?;
            done(
                &ctx,
                &s,
                format!("Service account '{}' updated.", s.client_id),
            )
        }
        ServiceAccountsCommand::Delete {
            client_id,
            force,
            org,
        } => {
            let o = ctx.org(org.org_id)?;
            confirm(
                force.force,
                &format!("Delete service account '{client_id}'?"),
            )?;
            c.delete_org_service_account(&o, &client_id).await?;
            deleted(&ctx, format!("Service account '{client_id}' deleted"))
        }
        ServiceAccountsCommand::Secrets { command } => match command {
            SecretsCommand::Create {
                client_id,
                lifetime,
                org,
            } => {
                let o = ctx.org(org.org_id)?;
                let s = c
                    .create_service_account_secret(&o, &client_id, lifetime.hours)
                    .await?;
                let value = s.secret.as_ref().map_or("", |x| x.expose());
                done(
                    &ctx,
                    &s,
                    format!(
                        "Secret '{}' created, expires {}.\nClient Secret: {value}\n\
                         The secret is shown this once.",
                        s.id,
                        time(&s.expires_at)
                    ),
                )
            }
            SecretsCommand::Delete {
                secret_id,
                client_id,
                force,
                org,
            } => {
                let o = ctx.org(org.org_id)?;
                confirm(
                    force.force,
                    &format!("Delete secret '{secret_id}' of service account '{client_id}'?"),
                )?;
                c.delete_service_account_secret(&o, &client_id, &secret_id)
                    .await?;
                deleted(&ctx, format!("Secret '{secret_id}' deleted"))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_as_the_atlas_cli_writes_them() {
        let r = parse_role("readWrite@sales.orders.2026").unwrap();
        assert_eq!(
            (r.role_name.as_str(), r.database_name.as_str()),
            ("readWrite", "sales")
        );
        assert_eq!(r.collection_name.as_deref(), Some("orders.2026"));
        assert_eq!(role_text(&r), "readWrite@sales.orders.2026");
        let r = parse_role("atlasAdmin").unwrap();
        assert_eq!(role_text(&r), "atlasAdmin@admin");
        for bad in ["@sales", "read@", "read@sales.", ""] {
            assert!(parse_role(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_default_to_clusters() {
        let s = parse_scope("Cluster0").unwrap();
        assert_eq!((s.name.as_str(), s.kind.as_str()), ("Cluster0", "CLUSTER"));
        assert_eq!(parse_scope("lake:DATA_LAKE").unwrap().kind, "DATA_LAKE");
        assert!(parse_scope("x:BUCKET").is_err());
    }
}
