//! `dbcerts mongod-config`: what a self-managed `mongod` needs to admit a project's MANAGED
//! X.509 users. The project CA (to verify their certificates), the `net.tls` settings, and the
//! mongosh commands that create each user on `$external` as `CN=<username>` with its Atlas
//! roles translated to MongoDB's.
//!
//! Translation: roles MongoDB has built in (`readWriteAnyDatabase`, `read`, `readWrite`,
//! `dbAdmin`, …) keep their name and database. `atlasAdmin` is Atlas's own; its documented
//! built-in parts are granted (`readWriteAnyDatabase`, `readAnyDatabase`,
//! `dbAdminAnyDatabase`, `clusterMonitor`) and the output says what is left out. A role on one
//! collection (Atlas allows `read` and `readWrite` there) has no built-in equivalent, so a
//! custom role with the same actions on that collection is created first.

use std::path::{Path, PathBuf};

use dbcerts_client::{DatabaseUser, DatabaseUserRole, X509Type};
use serde::Serialize;

use super::Ctx;
use super::output::{CliError, exists, print_json};
use super::resources::role_text;

/// Actions of MongoDB's `read` role that apply to a collection.
const READ_ACTIONS: [&str; 5] = [
    "find",
    "listIndexes",
    "collStats",
    "changeStream",
    "killCursors",
];
/// What `readWrite` adds on a collection.
const WRITE_ACTIONS: [&str; 9] = [
    "insert",
    "update",
    "remove",
    "createIndex",
    "dropIndex",
    "createCollection",
    "dropCollection",
    "convertToCapped",
    "renameCollectionSameDB",
];
/// MongoDB's built-in roles, which a user can be granted as they are.
const MONGODB_BUILT_IN: [&str; 16] = [
    "read",
    "readWrite",
    "dbAdmin",
    "dbOwner",
    "userAdmin",
    "clusterAdmin",
    "clusterManager",
    "clusterMonitor",
    "hostManager",
    "backup",
    "restore",
    "readAnyDatabase",
    "readWriteAnyDatabase",
    "userAdminAnyDatabase",
    "dbAdminAnyDatabase",
    "root",
];
/// The built-in parts of Atlas's `atlasAdmin`.
const ATLAS_ADMIN: [&str; 4] = [
    "readWriteAnyDatabase",
    "readAnyDatabase",
    "dbAdminAnyDatabase",
    "clusterMonitor",
];

/// A MongoDB role grant: `{role: …, db: …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub role: String,
    pub db: String,
}

/// A custom role to create on `admin` before the users that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    pub name: String,
    pub db: String,
    pub collection: String,
    pub actions: Vec<&'static str>,
}

/// One Atlas role in MongoDB's terms: the grants, any custom role they need, and a note.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translation {
    pub grants: Vec<Grant>,
    pub custom: Option<CustomRole>,
    pub note: Option<String>,
}

fn grant(role: &str, db: &str) -> Grant {
    Grant {
        role: role.to_owned(),
        db: db.to_owned(),
    }
}

/// Translates one Atlas role.
pub fn translate(r: &DatabaseUserRole) -> Translation {
    match (&r.collection_name, r.role_name.as_str()) {
        (None, "atlasAdmin") => Translation {
            grants: ATLAS_ADMIN.iter().map(|n| grant(n, "admin")).collect(),
            custom: None,
            note: Some(
                "atlasAdmin: Atlas also grants cleanupOrphaned, enableSharding, \
                 flushRouterConfig, moveChunk, splitChunk and viewUser; add clusterManager \
                 if this user needs them"
                    .into(),
            ),
        },
        (None, role) if MONGODB_BUILT_IN.contains(&role) => Translation {
            grants: vec![grant(role, &r.database_name)],
            ..Translation::default()
        },
        (None, _) => Translation {
            note: Some(format!(
                "{}: not a MongoDB built-in role (an Atlas custom role?); create it with \
                 createRole, then grant it with grantRolesToUser",
                role_text(r)
            )),
            ..Translation::default()
        },
        (Some(coll), role @ ("read" | "readWrite")) => {
            let mut actions = READ_ACTIONS.to_vec();
            if role == "readWrite" {
                actions.extend(WRITE_ACTIONS);
            }
            let name = format!("{role}@{}.{coll}", r.database_name);
            Translation {
                grants: vec![grant(&name, "admin")],
                custom: Some(CustomRole {
                    name,
                    db: r.database_name.clone(),
                    collection: coll.clone(),
                    actions,
                }),
                note: None,
            }
        }
        (Some(_), _) => Translation {
            note: Some(format!(
                "{}: MongoDB has no collection-level form of this role; not granted",
                role_text(r)
            )),
            ..Translation::default()
        },
    }
}

/// A JavaScript string literal (JSON's rules are a subset of JavaScript's).
fn js(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn grants_js(grants: &[Grant]) -> String {
    let items: Vec<String> = grants
        .iter()
        .map(|g| format!("{{role: {}, db: {}}}", js(&g.role), js(&g.db)))
        .collect();
    format!("[{}]", items.join(", "))
}

fn create_role_js(c: &CustomRole) -> String {
    let actions: Vec<String> = c.actions.iter().map(|a| js(a)).collect();
    format!(
        "db.getSiblingDB(\"admin\").runCommand({{createRole: {}, privileges: [{{resource: \
         {{db: {}, collection: {}}}, actions: [{}]}}], roles: []}})",
        js(&c.name),
        js(&c.db),
        js(&c.collection),
        actions.join(", ")
    )
}

/// The mongosh commands for `users` (MANAGED ones only), custom roles first, and the notes.
pub fn commands(users: &[DatabaseUser]) -> (Vec<String>, Vec<String>) {
    let mut roles: Vec<String> = Vec::new();
    let mut creates = Vec::new();
    let mut notes = Vec::new();
    for u in users.iter().filter(|u| u.x509_type == X509Type::Managed) {
        let mut grants = Vec::new();
        for r in &u.roles {
            let t = translate(r);
            if let Some(c) = &t.custom {
                let cmd = create_role_js(c);
                if !roles.contains(&cmd) {
                    roles.push(cmd);
                }
            }
            if let Some(n) = t.note {
                notes.push(format!("{}: {n}", u.username));
            }
            for g in t.grants {
                if !grants.contains(&g) {
                    grants.push(g);
                }
            }
        }
        creates.push(format!(
            "db.getSiblingDB(\"$external\").runCommand({{createUser: {}, roles: {}}})",
            js(&dbcerts_ca::dn::managed_subject(&u.username)),
            grants_js(&grants)
        ));
    }
    roles.extend(creates);
    (roles, notes)
}

/// `net.tls` and the rest of mongod.conf that X.509 authentication needs, with the project's
/// CRL file (kept by `dbcerts ca crl sync`, reloaded with `rotateCertificates`).
pub fn mongod_conf(ca_file: &str, crl_file: &str, group_id: &str) -> String {
    format!(
        "net:\n  tls:\n    mode: requireTLS\n    # This mongod's own certificate and key (not issued by dbcerts).\n    \
         certificateKeyFile: /etc/mongodb/server.pem\n    # The project CA: verifies the \
         users' certificates. If this mongod's own certificate comes from\n    # another CA, \
         append that CA's certificate to this file too.\n    CAFile: {ca_file}\n    # \
         The project's CRLs: revoked certificates are refused. mongod refuses EVERY client\n    \
         # once this file's nextUpdate has passed, so keep it fresh with the sidecar:\n    \
         #   dbcerts ca crl sync --projectId {group_id} --out {crl_file} --every 1h \\\n    \
         #     --exec 'mongosh --quiet --tls --eval \"db.adminCommand({{rotateCertificates: 1}})\"'\n    \
         # (mongod 5.0+ reloads the same path on rotateCertificates; older ones need a restart.)\n    \
         CRLFile: {crl_file}\n    # \
         Uncomment if clients that authenticate with SCRAM connect without a certificate.\n    \
         # allowConnectionsWithoutCertificates: true\nsecurity:\n  authorization: \
         enabled\nsetParameter:\n  authenticationMechanisms: SCRAM-SHA-256,MONGODB-X509\n"
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    group_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_pem: Option<&'a str>,
    ca_file: String,
    mongod_conf: String,
    commands: Vec<String>,
    notes: Vec<String>,
}

pub async fn run(
    ctx: Ctx,
    project: Option<String>,
    ca_out: Option<PathBuf>,
    force: bool,
) -> Result<(), CliError> {
    let g = ctx.project(project)?;
    let users = ctx.client.list_all_database_users(&g).await?;
    let ca = ctx.client.get_project_ca(&g).await?;
    let ca_file = match &ca_out {
        Some(path) => {
            write_public_file(path, ca.as_bytes(), force)?;
            std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string()
        }
        None => format!("/etc/mongodb/dbcerts-{g}-ca.pem"),
    };
    let (commands, notes) = commands(&users);
    let out = Output {
        group_id: &g,
        ca_pem: ca_out.is_none().then_some(ca.as_str()),
        mongod_conf: mongod_conf(&ca_file, &format!("/etc/mongodb/dbcerts-{g}-crl.pem"), &g),
        ca_file,
        commands,
        notes,
    };
    if ctx.json() {
        return print_json(&out);
    }
    match out.ca_pem {
        Some(pem) => {
            println!("# 1. The CA of project {g}: save it as {}", out.ca_file);
            print!("{}{}", pem, if pem.ends_with('\n') { "" } else { "\n" });
        }
        None => println!("# 1. The CA of project {g} was written to {}", out.ca_file),
    }
    println!("\n# 2. mongod.conf\n{}", out.mongod_conf);
    println!("# 3. In mongosh, connected as a user administrator:");
    for c in &out.commands {
        println!("{c}");
    }
    for n in &out.notes {
        println!("// Note: {n}");
    }
    Ok(())
}

/// Writes a public file (the CA certificate), refusing to replace one without `force`.
fn write_public_file(path: &Path, bytes: &[u8], force: bool) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            CliError::local(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    file.write_all(bytes)
        .map_err(|e| CliError::local(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, db: &str, coll: Option<&str>) -> DatabaseUserRole {
        DatabaseUserRole {
            collection_name: coll.map(str::to_owned),
            database_name: db.into(),
            role_name: name.into(),
        }
    }

    fn managed(name: &str, roles: Vec<DatabaseUserRole>) -> DatabaseUser {
        serde_json::from_value(serde_json::json!({
            "databaseName": "$external", "groupId": "g", "username": name,
            "x509Type": "MANAGED", "roles": roles,
        }))
        .unwrap()
    }

    #[test]
    fn built_in_roles_keep_their_name_and_database() {
        let t = translate(&role("readWrite", "sales", None));
        assert_eq!(t.grants, [grant("readWrite", "sales")]);
        assert!(t.custom.is_none() && t.note.is_none());
    }

    #[test]
    fn roles_mongodb_does_not_have_are_notes_not_grants() {
        let t = translate(&role("myCustomRole", "admin", None));
        assert!(t.grants.is_empty());
        assert!(t.note.unwrap().contains("myCustomRole@admin"));
    }

    #[test]
    fn atlas_admin_becomes_its_built_in_parts_with_a_note() {
        let t = translate(&role("atlasAdmin", "admin", None));
        let names: Vec<&str> = t.grants.iter().map(|g| g.role.as_str()).collect();
        assert_eq!(names, ATLAS_ADMIN);
        assert!(t.note.unwrap().contains("clusterManager"));
    }

    #[test]
    fn collection_roles_become_custom_roles_created_once() {
        let users = [
            managed("alice", vec![role("readWrite", "sales", Some("orders"))]),
            managed("bob", vec![role("readWrite", "sales", Some("orders"))]),
        ];
        let (cmds, notes) = commands(&users);
        assert!(notes.is_empty());
        assert_eq!(cmds.len(), 3, "{cmds:#?}");
        assert!(cmds[0].starts_with(
            "db.getSiblingDB(\"admin\").runCommand({createRole: \"readWrite@sales.orders\""
        ));
        assert!(cmds[0].contains("\"insert\"") && cmds[0].contains("\"find\""));
        assert_eq!(
            cmds[1],
            "db.getSiblingDB(\"$external\").runCommand({createUser: \"CN=alice\", roles: \
             [{role: \"readWrite@sales.orders\", db: \"admin\"}]})"
        );
    }

    #[test]
    fn only_managed_users_are_listed_and_names_are_quoted() {
        let mut customer = managed("CN=carol,O=x", vec![role("read", "a", None)]);
        customer.x509_type = X509Type::Customer;
        let (cmds, _) = commands(&[customer, managed("d\"q", vec![role("read", "a", None)])]);
        assert_eq!(cmds.len(), 1);
        // The subject as the certificate has it (RFC 4514 escaping), as a JS string.
        assert!(
            cmds[0].contains(r#"createUser: "CN=d\\\"q""#),
            "{}",
            cmds[0]
        );
    }
}
