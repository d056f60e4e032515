//! The role matrix: every operation in scope, called by five callers on two projects, each cell
//! checked against the spec's role requirements.
//!
//! The callers are the Organization Owner (bootstrap key), a Project Owner, a Project Read Only, a
//! Project Database Access Admin and a key with no roles. Each of the last four is an
//! Organization Member that holds its role in P1 ("my project") only. P2 is "someone else's
//! project". The expectations are built here from the spec's `x-rolesRequirements`
//! (the Atlas behaviour reference, §9, `spec-keys.md` §3.2, the README for the CA extension) and the
//! documented hierarchy. They are never taken from the server's code:
//! * Organization Owner implies Project Owner in every project of its organization.
//! * Project Owner implies every other project role.
//! * Every project role implies Project Read Only.
//! * A project the caller holds no role in answers 404 `GROUP_NOT_FOUND`, exactly as a
//!   nonexistent project does.
//! * A visible project where the caller lacks the role answers 401 `USER_UNAUTHORIZED`.
//!
//! Each cell also checks the stored state. A refused write changes nothing, and an allowed one
//! takes effect. A read of P1 returns P1's data and none of P2's. No refused cell returns
//! anything of P2.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use common::{Harness, Reply, V2};
use dbcerts_ca::sealing::MasterKey;
use dbcerts_store::{Page, ProjectGrant, Store, UserSecurityRecord};
use serde_json::Value;

/// The only version of the service-account operations.
const V2024: &str = "application/vnd.atlas.2024-08-05+json";
/// Every row a test store holds.
const ALL: Page = Page {
    offset: 0,
    limit: 10_000,
};
/// A well-formed project id that no project has.
const NO_SUCH_GROUP: &str = "0123456789abcdef01234567";

// ---- the model: callers, projects, requirements ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    OrgOwner,
    ProjectOwner,
    ProjectReadOnly,
    DatabaseAccessAdmin,
    NoRoles,
}

const CALLERS: [Who; 5] = [
    Who::OrgOwner,
    Who::ProjectOwner,
    Who::ProjectReadOnly,
    Who::DatabaseAccessAdmin,
    Who::NoRoles,
];

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::OrgOwner => "OrgOwner",
            Who::ProjectOwner => "ProjectOwner",
            Who::ProjectReadOnly => "ProjectReadOnly",
            Who::DatabaseAccessAdmin => "DbAccessAdmin",
            Who::NoRoles => "NoRoles",
        }
    }

    /// The project role granted to this caller in P1. Every caller but the Organization Owner
    /// has the organization role `ORG_MEMBER` only.
    fn p1_role(self) -> Option<&'static str> {
        match self {
            Who::ProjectOwner => Some("GROUP_OWNER"),
            Who::ProjectReadOnly => Some("GROUP_READ_ONLY"),
            Who::DatabaseAccessAdmin => Some("GROUP_DATABASE_ACCESS_ADMIN"),
            Who::OrgOwner | Who::NoRoles => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// P1, where the project-scoped callers hold their role.
    Mine,
    /// P2, where only the Organization Owner holds a role (through its organization role).
    Theirs,
}

/// The project role a caller effectively holds in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Owner,
    ReadOnly,
    DatabaseAccessAdmin,
}

/// The role `who` holds in `target`, hierarchy applied. `None` means the project is invisible to
/// the caller.
fn held(who: Who, target: Target) -> Option<Held> {
    match (who, target) {
        (Who::OrgOwner, _) => Some(Held::Owner),
        (Who::NoRoles, _) | (_, Target::Theirs) => None,
        (Who::ProjectOwner, Target::Mine) => Some(Held::Owner),
        (Who::ProjectReadOnly, Target::Mine) => Some(Held::ReadOnly),
        (Who::DatabaseAccessAdmin, Target::Mine) => Some(Held::DatabaseAccessAdmin),
    }
}

/// An operation's `x-rolesRequirements`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// None listed (listGroups). Any caller may ask, and sees the projects it holds a role in.
    Unlisted,
    ProjectReadOnly,
    ProjectOwner,
    /// "Project Database Access Admin, Project Stream Processing Owner".
    ProjectDatabaseWriter,
    /// Project Access Manager. It has no API role name, so only Project Owner implies it here.
    ProjectAccessManager,
    /// Organization Owner, on a project path (inviteGroupServiceAccount).
    OrgOwnerOnProject,
    OrgMember,
    OrgReadOnly,
    OrgOwner,
}

impl Need {
    fn project_scoped(self) -> bool {
        !matches!(
            self,
            Need::Unlisted | Need::OrgMember | Need::OrgReadOnly | Need::OrgOwner
        )
    }
}

/// Whether `who`, holding `held` in a project, meets the project requirement `need`.
fn meets_project(who: Who, held: Held, need: Need) -> bool {
    match need {
        Need::ProjectReadOnly => true,
        Need::ProjectOwner | Need::ProjectAccessManager => held == Held::Owner,
        Need::ProjectDatabaseWriter => matches!(held, Held::Owner | Held::DatabaseAccessAdmin),
        Need::OrgOwnerOnProject => who == Who::OrgOwner,
        Need::Unlisted | Need::OrgMember | Need::OrgReadOnly | Need::OrgOwner => {
            unreachable!("organization-level requirement")
        }
    }
}

/// Whether `who` meets the organization-level requirement `need`. Every caller is a member of
/// the one organization; only the bootstrap key is its Owner.
fn meets_org(who: Who, need: Need) -> bool {
    match need {
        Need::Unlisted | Need::OrgMember => true,
        Need::OrgReadOnly | Need::OrgOwner => who == Who::OrgOwner,
        _ => unreachable!("project-level requirement"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    GetGroup,
    DeleteGroup,
    ListGroups,
    ListDatabaseUsers,
    GetDatabaseUser,
    CreateDatabaseUser,
    UpdateDatabaseUser,
    DeleteDatabaseUser,
    ListDatabaseUserCerts,
    CreateDatabaseUserCert,
    GetUserSecurity,
    UpdateUserSecurity,
    DisableCustomerX509,
    ListGroupApiKeys,
    CreateGroupApiKey,
    AddGroupApiKey,
    UpdateGroupApiKeyRoles,
    RemoveGroupApiKey,
    ListGroupServiceAccounts,
    CreateGroupServiceAccount,
    GetGroupServiceAccount,
    UpdateGroupServiceAccount,
    DeleteGroupServiceAccount,
    InviteGroupServiceAccount,
    GetProjectCa,
    RevokeDatabaseUserCert,
    RevokeAllDatabaseUserCerts,
    ListDatabaseUserCertStatuses,
    ListProjectCaGenerations,
    RotateProjectCa,
    RetireProjectCaGeneration,
    ListOrgApiKeys,
    GetOrgApiKey,
    CreateOrgApiKey,
    UpdateOrgApiKey,
    DeleteOrgApiKey,
    ListOrgServiceAccounts,
    CreateOrgServiceAccount,
}

const OPS: [Op; 38] = [
    Op::GetGroup,
    Op::ListGroups,
    Op::ListDatabaseUsers,
    Op::GetDatabaseUser,
    Op::CreateDatabaseUser,
    Op::UpdateDatabaseUser,
    Op::DeleteDatabaseUser,
    Op::ListDatabaseUserCerts,
    Op::CreateDatabaseUserCert,
    Op::GetUserSecurity,
    Op::UpdateUserSecurity,
    Op::DisableCustomerX509,
    Op::ListGroupApiKeys,
    Op::CreateGroupApiKey,
    Op::AddGroupApiKey,
    Op::UpdateGroupApiKeyRoles,
    Op::RemoveGroupApiKey,
    Op::ListGroupServiceAccounts,
    Op::CreateGroupServiceAccount,
    Op::GetGroupServiceAccount,
    Op::UpdateGroupServiceAccount,
    Op::DeleteGroupServiceAccount,
    Op::InviteGroupServiceAccount,
    Op::GetProjectCa,
    Op::RevokeDatabaseUserCert,
    Op::RevokeAllDatabaseUserCerts,
    Op::ListDatabaseUserCertStatuses,
    Op::ListOrgApiKeys,
    Op::GetOrgApiKey,
    Op::CreateOrgApiKey,
    Op::UpdateOrgApiKey,
    Op::DeleteOrgApiKey,
    Op::ListOrgServiceAccounts,
    Op::CreateOrgServiceAccount,
    Op::ListProjectCaGenerations,
    Op::RotateProjectCa,
    Op::RetireProjectCaGeneration,
    Op::DeleteGroup,
];

impl Op {
    /// operationId, requirement, and success status. The statuses are the documented ones, or
    /// the observed ones where Atlas differs from its spec (`BEHAVIOUR.md` §7, `spec-keys.md` §0).
    fn spec(self) -> (&'static str, Need, u16) {
        use Need::*;
        match self {
            Op::GetGroup => ("getGroup", ProjectReadOnly, 200),
            Op::DeleteGroup => ("deleteGroup", ProjectOwner, 202),
            Op::ListGroups => ("listGroups", Unlisted, 200),
            Op::ListDatabaseUsers => ("listDatabaseUsers", ProjectReadOnly, 200),
            Op::GetDatabaseUser => ("getDatabaseUser", ProjectReadOnly, 200),
            Op::CreateDatabaseUser => ("createDatabaseUser", ProjectDatabaseWriter, 201),
            Op::UpdateDatabaseUser => ("updateDatabaseUser", ProjectDatabaseWriter, 200),
            Op::DeleteDatabaseUser => ("deleteDatabaseUser", ProjectDatabaseWriter, 204),
            Op::ListDatabaseUserCerts => ("listDatabaseUserCerts", ProjectReadOnly, 200),
            Op::CreateDatabaseUserCert => ("createDatabaseUserCert", ProjectOwner, 201),
            Op::GetUserSecurity => ("getUserSecurity", ProjectOwner, 200),
            Op::UpdateUserSecurity => ("updateUserSecurity", ProjectOwner, 202),
            Op::DisableCustomerX509 => ("disableCustomerX509", ProjectOwner, 202),
            Op::ListGroupApiKeys => ("listGroupApiKeys", ProjectReadOnly, 200),
            Op::CreateGroupApiKey => ("createGroupApiKey", ProjectAccessManager, 200),
            Op::AddGroupApiKey => ("addGroupApiKey", ProjectOwner, 204),
            Op::UpdateGroupApiKeyRoles => ("updateGroupApiKeyRoles", ProjectAccessManager, 200),
            Op::RemoveGroupApiKey => ("removeGroupApiKey", ProjectAccessManager, 204),
            Op::ListGroupServiceAccounts => ("listGroupServiceAccounts", ProjectReadOnly, 200),
            Op::CreateGroupServiceAccount => ("createGroupServiceAccount", ProjectOwner, 201),
            Op::GetGroupServiceAccount => ("getGroupServiceAccount", ProjectReadOnly, 200),
            Op::UpdateGroupServiceAccount => ("updateGroupServiceAccount", ProjectOwner, 200),
            Op::DeleteGroupServiceAccount => ("deleteGroupServiceAccount", ProjectOwner, 204),
            Op::InviteGroupServiceAccount => ("inviteGroupServiceAccount", OrgOwnerOnProject, 200),
            // README: "GET /api/dbcerts/v1/groups/{groupId}/ca (Digest auth, Project Read Only)".
            Op::GetProjectCa => ("getProjectCa (dbcerts)", ProjectReadOnly, 200),
            // Issue 17: revoking needs Project Owner, as issuing does; reading statuses, Read Only.
            Op::RevokeDatabaseUserCert => ("revokeDatabaseUserCert (dbcerts)", ProjectOwner, 200),
            Op::RevokeAllDatabaseUserCerts => {
                ("revokeAllDatabaseUserCerts (dbcerts)", ProjectOwner, 200)
            }
            Op::ListDatabaseUserCertStatuses => (
                "listDatabaseUserCertStatuses (dbcerts)",
                ProjectReadOnly,
                200,
            ),
            // Issue 17: reading the generations is Project Read Only, changing them is Project
            // Owner (like revocation).
            Op::ListProjectCaGenerations => {
                ("listProjectCaGenerations (dbcerts)", ProjectReadOnly, 200)
            }
            Op::RotateProjectCa => ("rotateProjectCa (dbcerts)", ProjectOwner, 201),
            Op::RetireProjectCaGeneration => {
                ("retireProjectCaGeneration (dbcerts)", ProjectOwner, 200)
            }
            Op::ListOrgApiKeys => ("listOrgApiKeys", OrgMember, 200),
            Op::GetOrgApiKey => ("getOrgApiKey", OrgMember, 200),
            Op::CreateOrgApiKey => ("createOrgApiKey", OrgOwner, 200),
            Op::UpdateOrgApiKey => ("updateOrgApiKey", OrgOwner, 200),
            Op::DeleteOrgApiKey => ("deleteOrgApiKey", OrgOwner, 204),
            Op::ListOrgServiceAccounts => ("listOrgServiceAccounts", OrgReadOnly, 200),
            Op::CreateOrgServiceAccount => ("createOrgServiceAccount", OrgOwner, 201),
        }
    }

    fn name(self) -> &'static str {
        self.spec().0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed(u16),
    /// 401 `USER_UNAUTHORIZED`: the project (or organization) is visible, the role is missing.
    Unauthorized,
    /// 404 `GROUP_NOT_FOUND`: the project is invisible to the caller.
    GroupNotFound,
}

impl Expect {
    fn status(self) -> u16 {
        match self {
            Expect::Allowed(s) => s,
            Expect::Unauthorized => 401,
            Expect::GroupNotFound => 404,
        }
    }

    fn code(self) -> Option<&'static str> {
        match self {
            Expect::Allowed(_) => None,
            Expect::Unauthorized => Some("USER_UNAUTHORIZED"),
            Expect::GroupNotFound => Some("GROUP_NOT_FOUND"),
        }
    }

    fn allowed(self) -> bool {
        matches!(self, Expect::Allowed(_))
    }

    fn show(self) -> String {
        match self.code() {
            None => self.status().to_string(),
            Some(code) => format!("{} {code}", self.status()),
        }
    }
}

/// One cell of the matrix. `project` is `None` for organization-level operations.
#[derive(Debug, Clone, Copy)]
struct Cell {
    op: Op,
    who: Who,
    project: Option<Target>,
    expect: Expect,
}

impl Cell {
    fn project_label(&self) -> &'static str {
        match self.project {
            Some(Target::Mine) => "P1 (mine)",
            Some(Target::Theirs) => "P2 (theirs)",
            None => "-",
        }
    }
}

/// Every cell, with its expectation derived from the requirement table above.
fn matrix() -> Vec<Cell> {
    let mut cells = Vec::new();
    for op in OPS {
        let (_, need, success) = op.spec();
        for who in CALLERS {
            if need.project_scoped() {
                for target in [Target::Mine, Target::Theirs] {
                    let expect = match held(who, target) {
                        None => Expect::GroupNotFound,
                        Some(h) if meets_project(who, h, need) => Expect::Allowed(success),
                        Some(_) => Expect::Unauthorized,
                    };
                    cells.push(Cell {
                        op,
                        who,
                        project: Some(target),
                        expect,
                    });
                }
            } else {
                let expect = if meets_org(who, need) {
                    Expect::Allowed(success)
                } else {
                    Expect::Unauthorized
                };
                cells.push(Cell {
                    op,
                    who,
                    project: None,
                    expect,
                });
            }
        }
    }
    cells
}

// ---- the world: a server with two populated projects and the five callers ----

#[derive(Debug, Clone)]
struct Key {
    id: String,
    public: String,
    private: String,
}

/// A project and what lives in it.
struct Proj {
    id: String,
    name: String,
    x509_user: String,
    scram_user: String,
    serial: i64,
    sa_client_id: String,
    sa_name: String,
    /// An API key that holds a role in this project only.
    key: Key,
    key_desc: String,
    ca_pem: String,
}

impl Proj {
    /// Strings that identify this project's data: what no caller without a role here may see.
    fn secrets(&self) -> Vec<String> {
        let ca_lines: Vec<&str> = self
            .ca_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        vec![
            self.name.clone(),
            self.x509_user.clone(),
            self.scram_user.clone(),
            self.serial.to_string(),
            self.sa_client_id.clone(),
            self.sa_name.clone(),
            self.key.public.clone(),
            self.key_desc.clone(),
            ca_lines[ca_lines.len() / 2].to_owned(),
        ]
    }
}

struct World {
    h: Harness,
    master: MasterKey,
    owner: Key,
    callers: Vec<(Who, Key)>,
    mine: Proj,
    theirs: Proj,
}

impl World {
    async fn new() -> World {
        let h = Harness::new().await;
        let key_text = std::fs::read_to_string(h.dir.path().join("master.key.b64")).unwrap();
        let master = MasterKey::from_base64(&key_text).unwrap();
        let owner = Key {
            id: h
                .store
                .get_api_key(&h.public_key)
                .await
                .unwrap()
                .unwrap()
                .id,
            public: h.public_key.clone(),
            private: h.private_key.clone(),
        };
        let mine = populate(&h, &master, "mine").await;
        let theirs = populate(&h, &master, "theirs").await;
        // A key with a role in both projects: spec-keys §3.3 says a key's `roles` lists every
        // assignment, so P1's key list shows P2's id for it (and nothing else of P2).
        new_key(
            &h,
            &master,
            "both-projects-key",
            &[
                (&mine.id, "GROUP_READ_ONLY"),
                (&theirs.id, "GROUP_READ_ONLY"),
            ],
        )
        .await;
        let mut callers = vec![(Who::OrgOwner, owner.clone())];
        for who in &CALLERS[1..] {
            let grants: Vec<(&str, &str)> = who
                .p1_role()
                .map(|r| (mine.id.as_str(), r))
                .into_iter()
                .collect();
            callers.push((*who, new_key(&h, &master, who.label(), &grants).await));
        }
        World {
            h,
            master,
            owner,
            callers,
            mine,
            theirs,
        }
    }

    fn key(&self, who: Who) -> &Key {
        &self.callers.iter().find(|(w, _)| *w == who).unwrap().1
    }

    fn proj(&self, target: Target) -> &Proj {
        match target {
            Target::Mine => &self.mine,
            Target::Theirs => &self.theirs,
        }
    }

    async fn as_caller(
        &self,
        who: Who,
        method: &str,
        uri: &str,
        accept: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let k = self.key(who);
        self.h
            .call_as(&k.public, &k.private, method, uri, accept, body)
            .await
    }

    /// A request as the Organization Owner, which must succeed with `want`.
    async fn owner(&self, method: &str, path: &str, accept: &str, body: &str, want: u16) -> Value {
        let r = self
            .h
            .call_as(
                &self.owner.public,
                &self.owner.private,
                method,
                &format!("/api/atlas/v2{path}"),
                Some(accept),
                Some(body),
            )
            .await;
        assert_eq!(r.status.as_u16(), want, "setup {method} {path}: {}", r.text);
        serde_json::from_str(&r.text).unwrap_or(Value::Null)
    }

    async fn scram_user(&self, project_id: &str, username: &str) {
        let body = format!(
            r#"{{"databaseName":"admin","groupId":"{project_id}","username":"{username}","password":"changeme123","roles":[{{"databaseName":"admin","roleName":"read"}}]}}"#
        );
        let path = format!("/groups/{project_id}/databaseUsers");
        self.owner("POST", &path, V2, &body, 201).await;
    }

    /// A new project service account in `project_id` (Project Read Only there); its client id.
    async fn group_service_account(&self, project_id: &str, name: &str) -> String {
        let body = format!(
            r#"{{"name":"{name}","description":"{name}","roles":["GROUP_READ_ONLY"],"secretExpiresAfterHours":8}}"#
        );
        let path = format!("/groups/{project_id}/serviceAccounts");
        let v = self.owner("POST", &path, V2024, &body, 201).await;
        v["clientId"].as_str().unwrap().to_owned()
    }

    async fn cert_count(&self, project_id: &str, username: &str) -> u64 {
        let now = chrono::Utc::now().timestamp();
        self.h
            .store
            .list_unexpired_certificates(project_id, username, now, ALL)
            .await
            .unwrap()
            .1
    }

    /// A new MANAGED X.509 user in `project_id` with one certificate; its serial.
    async fn certified_user(&self, project_id: &str, username: &str) -> i64 {
        self.h.managed_user(project_id, username).await;
        let path = format!("/groups/{project_id}/databaseUsers/{username}/certs");
        self.owner("POST", &path, V2, "{}", 201).await;
        let now = chrono::Utc::now().timestamp();
        let (certs, _) = self
            .h
            .store
            .list_unexpired_certificates(project_id, username, now, ALL)
            .await
            .unwrap();
        certs[0].serial
    }

    async fn grant_roles(&self, principal_id: &str, project_id: &str) -> Option<Vec<String>> {
        self.h
            .store
            .list_grants(principal_id)
            .await
            .unwrap()
            .into_iter()
            .find(|g| g.project_id == project_id)
            .map(|g| g.roles)
    }
}

/// A new API key (Organization Member) with the given project roles, made in the store.
async fn new_key(h: &Harness, master: &MasterKey, desc: &str, grants: &[(&str, &str)]) -> Key {
    let (rec, private) = dbcerts_server::bootstrap::new_api_key(
        master,
        &h.org_id,
        desc,
        vec!["ORG_MEMBER".to_owned()],
    );
    let grants: Vec<ProjectGrant> = grants
        .iter()
        .map(|(project, role)| ProjectGrant {
            principal_id: rec.id.clone(),
            project_id: (*project).to_owned(),
            roles: vec![(*role).to_owned()],
        })
        .collect();
    h.store.create_api_key(&rec, &grants).await.unwrap();
    Key {
        id: rec.id.clone(),
        public: rec.public_key.clone(),
        private: String::clone(&private),
    }
}

/// The generation of the project's active CA, from the store.
async fn active_generation(h: &Harness, project_id: &str) -> u64 {
    h.store
        .get_active_ca(project_id)
        .await
        .unwrap()
        .map_or(0, |c| c.generation as u64)
}

/// Makes project `<tag>-project` as the Organization Owner, with a MANAGED X.509 user holding
/// one certificate, a SCRAM user, a project service account and a key assigned there.
async fn populate(h: &Harness, master: &MasterKey, tag: &str) -> Proj {
    let name = format!("{tag}-project");
    let id = h.project(&name).await;
    let x509_user = format!("{tag}-x509");
    h.managed_user(&id, &x509_user).await;
    let scram_user = format!("{tag}-scram");
    let body = format!(
        r#"{{"databaseName":"admin","groupId":"{id}","username":"{scram_user}","password":"changeme123","roles":[{{"databaseName":"admin","roleName":"read"}}]}}"#
    );
    let r = h
        .v2("POST", &format!("/groups/{id}/databaseUsers"), Some(&body))
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let r = h
        .v2(
            "POST",
            &format!("/groups/{id}/databaseUsers/{x509_user}/certs"),
            Some("{}"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let now = chrono::Utc::now().timestamp();
    let (certs, _) = h
        .store
        .list_unexpired_certificates(&id, &x509_user, now, ALL)
        .await
        .unwrap();
    let sa_name = format!("{tag}-sa");
    let r = h
        .call(
            "POST",
            &format!("/api/atlas/v2/groups/{id}/serviceAccounts"),
            Some(V2024),
            Some(&format!(
                r#"{{"name":"{sa_name}","description":"{sa_name}","roles":["GROUP_READ_ONLY"],"secretExpiresAfterHours":8}}"#
            )),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let sa: Value = serde_json::from_str(&r.text).unwrap();
    let key_desc = format!("{tag}-key");
    let key = new_key(h, master, &key_desc, &[(&id, "GROUP_READ_ONLY")]).await;
    let r = h
        .call(
            "GET",
            &format!("/api/dbcerts/v1/groups/{id}/ca"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    Proj {
        id,
        name,
        x509_user,
        scram_user,
        serial: certs[0].serial,
        sa_client_id: sa["clientId"].as_str().unwrap().to_owned(),
        sa_name,
        key,
        key_desc,
        ca_pem: r.text,
    }
}

// ---- running a cell ----

/// The request of one cell and what it needs for the checks afterwards.
struct Plan {
    method: &'static str,
    uri: String,
    accept: Option<&'static str>,
    body: Option<String>,
    /// The project id in the request, if any.
    project_id: Option<String>,
    /// The object acted on: a user name, key id, client id or project id.
    subject: String,
    /// A value the request writes, unique to the cell.
    marker: String,
    /// A count taken before the request.
    before: u64,
    /// The serial of the certificate the request acts on, if any.
    serial: i64,
    /// Other-project data made for this cell only, which must not leak either.
    hidden: Vec<String>,
}

async fn plan(w: &World, cell: &Cell, n: usize) -> Plan {
    let marker = format!("cell{n:03}");
    let org = w.h.org_id.clone();
    let mut p = Plan {
        method: "GET",
        uri: String::new(),
        accept: Some(V2),
        body: None,
        project_id: None,
        subject: String::new(),
        marker: marker.clone(),
        before: 0,
        serial: 0,
        hidden: Vec::new(),
    };
    let Some(target) = cell.project else {
        let v2 = |path: &str| format!("/api/atlas/v2{path}");
        match cell.op {
            Op::ListGroups => p.uri = v2("/groups"),
            Op::ListOrgApiKeys => p.uri = v2(&format!("/orgs/{org}/apiKeys")),
            Op::GetOrgApiKey => p.uri = v2(&format!("/orgs/{org}/apiKeys/{}", w.owner.id)),
            Op::CreateOrgApiKey => {
                p.method = "POST";
                p.uri = v2(&format!("/orgs/{org}/apiKeys"));
                p.body = Some(format!(r#"{{"desc":"{marker}","roles":["ORG_MEMBER"]}}"#));
            }
            Op::UpdateOrgApiKey | Op::DeleteOrgApiKey => {
                let k = new_key(&w.h, &w.master, &format!("{marker}-victim"), &[]).await;
                if cell.op == Op::UpdateOrgApiKey {
                    p.method = "PATCH";
                    p.body = Some(format!(r#"{{"desc":"{marker}"}}"#));
                } else {
                    p.method = "DELETE";
                }
                p.uri = v2(&format!("/orgs/{org}/apiKeys/{}", k.id));
                p.subject = k.id;
            }
            Op::ListOrgServiceAccounts => {
                p.uri = v2(&format!("/orgs/{org}/serviceAccounts"));
                p.accept = Some(V2024);
            }
            Op::CreateOrgServiceAccount => {
                p.method = "POST";
                p.uri = v2(&format!("/orgs/{org}/serviceAccounts"));
                p.accept = Some(V2024);
                p.body = Some(format!(
                    r#"{{"name":"{marker}","description":"{marker}","roles":["ORG_MEMBER"],"secretExpiresAfterHours":8}}"#
                ));
            }
            other => unreachable!("{other:?} is project-scoped"),
        }
        return p;
    };
    let proj = w.proj(target);
    let theirs = target == Target::Theirs;
    let gid = proj.id.clone();
    let g = |rest: &str| format!("/api/atlas/v2/groups/{gid}{rest}");
    p.project_id = Some(gid.clone());
    match cell.op {
        Op::GetGroup => p.uri = g(""),
        Op::DeleteGroup => {
            // A throwaway project per cell: "mine" grants the caller its P1 role there.
            let name = format!("{marker}-{}", if theirs { "theirs" } else { "mine" });
            let id = w.h.project(&name).await;
            if let (Target::Mine, Some(role)) = (target, cell.who.p1_role()) {
                let grant = ProjectGrant {
                    principal_id: w.key(cell.who).id.clone(),
                    project_id: id.clone(),
                    roles: vec![role.to_owned()],
                };
                w.h.store.put_grant(&grant).await.unwrap();
            }
            if theirs {
                p.hidden.push(name);
            }
            p.method = "DELETE";
            p.uri = format!("/api/atlas/v2/groups/{id}");
            p.project_id = Some(id.clone());
            p.subject = id;
        }
        Op::ListDatabaseUsers => p.uri = g("/databaseUsers"),
        Op::GetDatabaseUser => p.uri = g(&format!("/databaseUsers/admin/{}", proj.scram_user)),
        Op::CreateDatabaseUser => {
            p.method = "POST";
            p.uri = g("/databaseUsers");
            p.body = Some(format!(
                r#"{{"databaseName":"admin","groupId":"{gid}","username":"{marker}","password":"changeme123","roles":[{{"databaseName":"admin","roleName":"read"}}]}}"#
            ));
            p.subject = marker.clone();
        }
        Op::UpdateDatabaseUser => {
            p.method = "PATCH";
            p.uri = g(&format!("/databaseUsers/admin/{}", proj.scram_user));
            p.body = Some(format!(r#"{{"description":"{marker}"}}"#));
            p.subject = proj.scram_user.clone();
        }
        Op::DeleteDatabaseUser => {
            let victim = format!("{marker}-victim");
            w.scram_user(&gid, &victim).await;
            if theirs {
                p.hidden.push(victim.clone());
            }
            p.method = "DELETE";
            p.uri = g(&format!("/databaseUsers/admin/{victim}"));
            p.subject = victim;
        }
        Op::ListDatabaseUserCerts => p.uri = g(&format!("/databaseUsers/{}/certs", proj.x509_user)),
        Op::CreateDatabaseUserCert => {
            p.method = "POST";
            p.uri = g(&format!("/databaseUsers/{}/certs", proj.x509_user));
            p.body = Some("{}".into());
            p.subject = proj.x509_user.clone();
            p.before = w.cert_count(&gid, &proj.x509_user).await;
        }
        Op::GetUserSecurity => p.uri = g("/userSecurity"),
        Op::UpdateUserSecurity => {
            p.method = "PATCH";
            p.uri = g("/userSecurity");
            p.marker = format!("{marker}.example.com");
            p.body = Some(format!(r#"{{"ldap":{{"hostname":"{}"}}}}"#, p.marker));
        }
        Op::DisableCustomerX509 => {
            // A customer CA to disable, put in place directly and removed again in `verify`.
            let mut rec = w.h.store.get_user_security(&gid).await.unwrap();
            rec.customer_cas = Some(format!("customer-ca-{marker}"));
            w.h.store.put_user_security(&gid, &rec).await.unwrap();
            if theirs {
                p.hidden.push(format!("customer-ca-{marker}"));
            }
            p.method = "DELETE";
            p.uri = g("/userSecurity/customerX509");
        }
        Op::ListGroupApiKeys => p.uri = g("/apiKeys"),
        Op::CreateGroupApiKey => {
            p.method = "POST";
            p.uri = g("/apiKeys");
            p.body = Some(format!(
                r#"{{"desc":"{marker}","roles":["GROUP_READ_ONLY"]}}"#
            ));
        }
        Op::AddGroupApiKey => {
            let k = new_key(&w.h, &w.master, &format!("{marker}-victim"), &[]).await;
            p.method = "POST";
            p.uri = g(&format!("/apiKeys/{}", k.id));
            p.body = Some(r#"[{"roles":["GROUP_READ_ONLY"]}]"#.into());
            p.subject = k.id;
        }
        Op::UpdateGroupApiKeyRoles | Op::RemoveGroupApiKey => {
            let desc = format!("{marker}-victim");
            let k = new_key(&w.h, &w.master, &desc, &[(&gid, "GROUP_READ_ONLY")]).await;
            if theirs {
                p.hidden.extend([k.public.clone(), desc]);
            }
            if cell.op == Op::UpdateGroupApiKeyRoles {
                p.method = "PATCH";
                p.body = Some(r#"{"roles":["GROUP_DATA_ACCESS_READ_ONLY"]}"#.into());
            } else {
                p.method = "DELETE";
            }
            p.uri = g(&format!("/apiKeys/{}", k.id));
            p.subject = k.id;
        }
        Op::ListGroupServiceAccounts => {
            p.uri = g("/serviceAccounts");
            p.accept = Some(V2024);
        }
        Op::CreateGroupServiceAccount => {
            p.method = "POST";
            p.uri = g("/serviceAccounts");
            p.accept = Some(V2024);
            p.body = Some(format!(
                r#"{{"name":"{marker}","description":"{marker}","roles":["GROUP_READ_ONLY"],"secretExpiresAfterHours":8}}"#
            ));
        }
        Op::GetGroupServiceAccount => {
            p.uri = g(&format!("/serviceAccounts/{}", proj.sa_client_id));
            p.accept = Some(V2024);
        }
        Op::UpdateGroupServiceAccount => {
            p.method = "PATCH";
            p.uri = g(&format!("/serviceAccounts/{}", proj.sa_client_id));
            p.accept = Some(V2024);
            p.body = Some(format!(r#"{{"description":"{marker}"}}"#));
            p.subject = proj.sa_client_id.clone();
        }
        Op::DeleteGroupServiceAccount => {
            let name = format!("{marker}-victim");
            let client_id = w.group_service_account(&gid, &name).await;
            if theirs {
                p.hidden.extend([client_id.clone(), name]);
            }
            p.method = "DELETE";
            p.uri = g(&format!("/serviceAccounts/{client_id}"));
            p.accept = Some(V2024);
            p.subject = client_id;
        }
        Op::InviteGroupServiceAccount => {
            let body = format!(
                r#"{{"name":"{marker}","description":"{marker}","roles":["ORG_MEMBER"],"secretExpiresAfterHours":8}}"#
            );
            let v = w
                .owner(
                    "POST",
                    &format!("/orgs/{org}/serviceAccounts"),
                    V2024,
                    &body,
                    201,
                )
                .await;
            let client_id = v["clientId"].as_str().unwrap().to_owned();
            p.method = "POST";
            p.uri = g(&format!("/serviceAccounts/{client_id}:invite"));
            p.accept = Some(V2024);
            p.body = Some(r#"{"roles":["GROUP_READ_ONLY"]}"#.into());
            p.subject = client_id;
        }
        Op::GetProjectCa => {
            p.uri = format!("/api/dbcerts/v1/groups/{gid}/ca");
            p.accept = None;
        }
        Op::RevokeDatabaseUserCert | Op::RevokeAllDatabaseUserCerts => {
            // A MANAGED user of its own with one certificate per cell, so each revocation is new.
            let victim = format!("{marker}-victim");
            p.serial = w.certified_user(&gid, &victim).await;
            if theirs {
                p.hidden.push(victim.clone());
            }
            let users = format!("/api/dbcerts/v1/groups/{gid}/databaseUsers/{victim}");
            p.method = "POST";
            p.uri = if cell.op == Op::RevokeDatabaseUserCert {
                format!("{users}/certs/{}:revoke", p.serial)
            } else {
                format!("{users}/certs:revoke")
            };
            p.accept = None;
            p.body = Some(r#"{"reason":"keyCompromise"}"#.into());
            p.subject = victim;
        }
        Op::ListDatabaseUserCertStatuses => {
            p.uri = format!(
                "/api/dbcerts/v1/groups/{gid}/databaseUsers/{}/certs",
                proj.x509_user
            );
            p.accept = None;
        }
        Op::ListProjectCaGenerations => {
            p.uri = format!("/api/dbcerts/v1/groups/{gid}/cas");
            p.accept = None;
        }
        Op::RotateProjectCa => {
            p.method = "POST";
            p.uri = format!("/api/dbcerts/v1/groups/{gid}/ca:rotate");
            p.accept = None;
            p.before = active_generation(&w.h, &gid).await;
        }
        Op::RetireProjectCaGeneration => {
            // The owner rotates first, so that the generation before the active one may go.
            let r =
                w.h.call_as(
                    &w.owner.public,
                    &w.owner.private,
                    "POST",
                    &format!("/api/dbcerts/v1/groups/{gid}/ca:rotate"),
                    None,
                    None,
                )
                .await;
            assert_eq!(r.status.as_u16(), 201, "setup rotation: {}", r.text);
            let retiring = active_generation(&w.h, &gid).await - 1;
            p.method = "POST";
            p.uri = format!("/api/dbcerts/v1/groups/{gid}/ca:retire");
            p.accept = None;
            p.body = Some(format!(r#"{{"generation":{retiring}}}"#));
            p.before = retiring;
        }
        other => unreachable!("{other:?} is organization-level"),
    }
    p
}

/// Checks the stored state after a cell: an allowed write took effect, a refused one changed
/// nothing. Also undoes what must not carry over to later cells.
async fn verify(w: &World, cell: &Cell, p: &Plan) -> Result<(), String> {
    let allowed = cell.expect.allowed();
    let gid = p.project_id.clone().unwrap_or_default();
    let store = &w.h.store;
    let check = |what: &str, changed: bool| {
        if changed == allowed {
            Ok(())
        } else if allowed {
            Err(format!("state: {what} did not happen"))
        } else {
            Err(format!("state: refused, yet {what} happened"))
        }
    };
    match cell.op {
        Op::DeleteGroup => {
            let gone = store.get_project(&p.subject).await.unwrap().is_none();
            if !gone {
                store.delete_project(&p.subject).await.unwrap();
            }
            check("the project deletion", gone)
        }
        Op::CreateDatabaseUser => {
            let made = store
                .get_database_user(&gid, "admin", &p.subject)
                .await
                .unwrap()
                .is_some();
            check("the user creation", made)
        }
        Op::UpdateDatabaseUser => {
            let rec = store
                .get_database_user(&gid, "admin", &p.subject)
                .await
                .unwrap()
                .expect("the user exists");
            check(
                "the user update",
                rec.doc.contains(&format!("\"{}\"", p.marker)),
            )
        }
        Op::DeleteDatabaseUser => {
            let gone = store
                .get_database_user(&gid, "admin", &p.subject)
                .await
                .unwrap()
                .is_none();
            check("the user deletion", gone)
        }
        Op::CreateDatabaseUserCert => {
            let after = w.cert_count(&gid, &p.subject).await;
            if after > p.before + 1 {
                return Err(format!("state: {} certificates issued", after - p.before));
            }
            check("the certificate issuance", after == p.before + 1)
        }
        Op::UpdateUserSecurity => {
            let rec = store.get_user_security(&gid).await.unwrap();
            let set = rec.ldap_json.is_some_and(|j| j.contains(&p.marker));
            check("the user security update", set)
        }
        Op::DisableCustomerX509 => {
            let rec = store.get_user_security(&gid).await.unwrap();
            let cleared = rec.customer_cas.is_none();
            let restored = UserSecurityRecord {
                customer_cas: None,
                ..rec
            };
            store.put_user_security(&gid, &restored).await.unwrap();
            check("the customer CA removal", cleared)
        }
        Op::CreateGroupApiKey | Op::CreateOrgApiKey => {
            let (keys, _) = store.list_api_keys(&w.h.org_id, ALL).await.unwrap();
            let made = keys.iter().find(|k| k.description == p.marker);
            if let (Some(k), Op::CreateGroupApiKey) = (made, cell.op) {
                let roles = w.grant_roles(&k.id, &gid).await;
                if roles != Some(vec!["GROUP_READ_ONLY".to_owned()]) {
                    return Err(format!("state: the new key's roles here are {roles:?}"));
                }
            }
            check("the key creation", made.is_some())
        }
        Op::AddGroupApiKey => {
            let assigned = w.grant_roles(&p.subject, &gid).await.is_some();
            check("the key assignment", assigned)
        }
        Op::UpdateGroupApiKeyRoles => {
            let roles = w.grant_roles(&p.subject, &gid).await;
            let updated = roles == Some(vec!["GROUP_DATA_ACCESS_READ_ONLY".to_owned()]);
            if !updated && roles != Some(vec!["GROUP_READ_ONLY".to_owned()]) {
                return Err(format!("state: the key's roles became {roles:?}"));
            }
            check("the role update", updated)
        }
        Op::RemoveGroupApiKey => {
            let removed = w.grant_roles(&p.subject, &gid).await.is_none();
            check("the key removal", removed)
        }
        Op::CreateGroupServiceAccount | Op::CreateOrgServiceAccount => {
            let (accounts, _) = store.list_service_accounts(&w.h.org_id, ALL).await.unwrap();
            let made = accounts.iter().find(|a| a.name == p.marker);
            if let (Some(a), Op::CreateGroupServiceAccount) = (made, cell.op)
                && w.grant_roles(&a.client_id, &gid).await.is_none()
            {
                return Err("state: the new service account has no role here".into());
            }
            check("the service account creation", made.is_some())
        }
        Op::UpdateGroupServiceAccount => {
            let a = store
                .get_service_account(&p.subject)
                .await
                .unwrap()
                .expect("the account exists");
            check("the service account update", a.description == p.marker)
        }
        Op::DeleteGroupServiceAccount => {
            let removed = w.grant_roles(&p.subject, &gid).await.is_none();
            check("the service account removal", removed)
        }
        Op::InviteGroupServiceAccount => {
            let assigned = w.grant_roles(&p.subject, &gid).await.is_some();
            check("the invitation", assigned)
        }
        Op::UpdateOrgApiKey => {
            let k = store
                .get_api_key_by_id(&p.subject)
                .await
                .unwrap()
                .expect("the key exists");
            check("the key update", k.description == p.marker)
        }
        Op::DeleteOrgApiKey => {
            let gone = store.get_api_key_by_id(&p.subject).await.unwrap().is_none();
            check("the key deletion", gone)
        }
        Op::RevokeDatabaseUserCert | Op::RevokeAllDatabaseUserCerts => {
            let cert = store
                .get_certificate(&gid, p.serial)
                .await
                .unwrap()
                .expect("the certificate exists");
            check("the revocation", cert.revocation.is_some())
        }
        Op::RotateProjectCa => {
            let now = active_generation(&w.h, &gid).await;
            check("the rotation", now == p.before + 1)
        }
        Op::RetireProjectCaGeneration => {
            let cas = store.list_project_cas(&gid).await.unwrap();
            let retired = cas
                .iter()
                .any(|c| c.generation as u64 == p.before && c.retired_at.is_some());
            check("the retirement", retired)
        }
        // Reads change nothing.
        Op::GetGroup
        | Op::ListGroups
        | Op::ListDatabaseUsers
        | Op::GetDatabaseUser
        | Op::ListDatabaseUserCerts
        | Op::GetUserSecurity
        | Op::ListGroupApiKeys
        | Op::ListGroupServiceAccounts
        | Op::GetGroupServiceAccount
        | Op::GetProjectCa
        | Op::ListDatabaseUserCertStatuses
        | Op::ListProjectCaGenerations
        | Op::ListOrgApiKeys
        | Op::GetOrgApiKey
        | Op::ListOrgServiceAccounts => Ok(()),
    }
}

/// For an allowed read: the answer holds the target project's data.
fn content(w: &World, cell: &Cell, r: &Reply) -> Result<(), String> {
    let has = |what: &str, s: &str| {
        if r.text.contains(s) {
            Ok(())
        } else {
            Err(format!("content: {what} `{s}` missing"))
        }
    };
    if cell.op == Op::ListGroups {
        return list_groups_content(w, cell.who, r);
    }
    let Some(target) = cell.project else {
        return match cell.op {
            Op::ListOrgApiKeys | Op::GetOrgApiKey => has("the owner key", &w.owner.public),
            Op::ListOrgServiceAccounts => {
                has("P1's service account", &w.mine.sa_name)?;
                has("P2's service account", &w.theirs.sa_name)
            }
            _ => Ok(()),
        };
    };
    let proj = w.proj(target);
    match cell.op {
        Op::GetGroup => has("the project name", &proj.name),
        Op::ListDatabaseUsers => {
            has("the X.509 user", &proj.x509_user)?;
            has("the SCRAM user", &proj.scram_user)
        }
        Op::GetDatabaseUser => has("the SCRAM user", &proj.scram_user),
        Op::ListDatabaseUserCerts => has("the certificate serial", &proj.serial.to_string()),
        Op::ListDatabaseUserCertStatuses => {
            has("the certificate serial", &proj.serial.to_string())?;
            has("its status", r#""status":"#)
        }
        Op::ListGroupApiKeys => has("the project's key", &proj.key.public),
        Op::ListGroupServiceAccounts => has("the project's service account", &proj.sa_name),
        Op::GetGroupServiceAccount => has("the service account", &proj.sa_client_id),
        Op::GetProjectCa if r.text != proj.ca_pem => {
            Err("content: not the project's CA certificate".into())
        }
        Op::ListProjectCaGenerations => {
            let first_line = proj.ca_pem.lines().nth(1).unwrap_or_default();
            has("the project's first CA", first_line)
        }
        _ => Ok(()),
    }
}

/// listGroups: exactly the projects the caller holds a role in, and a consistent `totalCount`.
fn list_groups_content(w: &World, who: Who, r: &Reply) -> Result<(), String> {
    let v: Value = serde_json::from_str(&r.text).map_err(|e| format!("content: {e}"))?;
    let seen: BTreeSet<String> = v["results"]
        .as_array()
        .ok_or("content: no results")?
        .iter()
        .map(|g| g["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut want = BTreeSet::new();
    for target in [Target::Mine, Target::Theirs] {
        if held(who, target).is_some() {
            want.insert(w.proj(target).id.clone());
        }
    }
    let name_of = |id: &String| {
        if *id == w.mine.id {
            "P1".to_owned()
        } else if *id == w.theirs.id {
            "P2".to_owned()
        } else {
            id.clone()
        }
    };
    if seen != want {
        return Err(format!(
            "content: sees {:?}, should see {:?}",
            seen.iter().map(name_of).collect::<Vec<_>>(),
            want.iter().map(name_of).collect::<Vec<_>>()
        ));
    }
    if v["totalCount"].as_u64() != Some(want.len() as u64) {
        return Err(format!(
            "content: totalCount {} for {} visible projects",
            v["totalCount"],
            want.len()
        ));
    }
    Ok(())
}

/// The strings of P2 this cell's answer must not contain, if the caller is not entitled to P2.
fn forbidden(w: &World, cell: &Cell, p: &Plan) -> Vec<String> {
    let mut out = match cell.project {
        // An answer about P1 has no reason to name P2 at all, not even its id. The one
        // exception: a key's `roles` list its assignments (spec-keys §3.3), and a caller who
        // can see P2 may see a P1 key's role there.
        Some(Target::Mine) => {
            let mut s = w.theirs.secrets();
            if !(cell.op == Op::ListGroupApiKeys && held(cell.who, Target::Theirs).is_some()) {
                s.push(w.theirs.id.clone());
            }
            s
        }
        // A refusal names the id it was asked about, and nothing else of P2.
        Some(Target::Theirs) if held(cell.who, Target::Theirs).is_none() => w.theirs.secrets(),
        None if cell.op == Op::ListGroups && held(cell.who, Target::Theirs).is_none() => {
            let mut s = w.theirs.secrets();
            s.push(w.theirs.id.clone());
            s
        }
        _ => Vec::new(),
    };
    if !out.is_empty() {
        out.extend(p.hidden.iter().cloned());
    }
    out
}

fn leaks(w: &World, cell: &Cell, p: &Plan, r: &Reply) -> Vec<String> {
    forbidden(w, cell, p)
        .into_iter()
        .filter(|s| r.text.contains(s.as_str()))
        .collect()
}

/// What a cell did.
struct Outcome {
    cell: Cell,
    plan: Plan,
    reply: Reply,
    problems: Vec<String>,
}

async fn run(w: &World, cells: &[Cell]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(cells.len());
    for (n, cell) in cells.iter().enumerate() {
        let p = plan(w, cell, n).await;
        let r = w
            .as_caller(cell.who, p.method, &p.uri, p.accept, p.body.as_deref())
            .await;
        let mut problems = Vec::new();
        let status = r.status.as_u16();
        let want = cell.expect;
        if status != want.status() {
            let excerpt: String = r.text.chars().take(200).collect();
            problems.push(format!(
                "status {status}, want {}: {excerpt}",
                want.status()
            ));
        }
        if let Some(code) = want.code() {
            let body_code = serde_json::from_str::<Value>(&r.text)
                .ok()
                .and_then(|v| v["errorCode"].as_str().map(str::to_owned));
            if r.error_code.as_deref() != Some(code) || body_code.as_deref() != Some(code) {
                problems.push(format!(
                    "errorCode {:?} (header {:?}), want {code}",
                    body_code, r.error_code
                ));
            }
        } else if status == want.status()
            && let Err(e) = content(w, cell, &r)
        {
            problems.push(e);
        }
        if let Err(e) = verify(w, cell, &p).await {
            problems.push(e);
        }
        let leaked = leaks(w, cell, &p, &r);
        if !leaked.is_empty() {
            problems.push(format!("leaks P2 data {leaked:?}"));
        }
        out.push(Outcome {
            cell: *cell,
            plan: p,
            reply: r,
            problems,
        });
    }
    out
}

fn got(r: &Reply) -> String {
    match &r.error_code {
        Some(code) => format!("{} {code}", r.status.as_u16()),
        None => r.status.as_u16().to_string(),
    }
}

/// The mismatches as a table, or `None` when every cell passed.
fn mismatch_table(outcomes: &[Outcome]) -> Option<String> {
    let bad: Vec<&Outcome> = outcomes.iter().filter(|o| !o.problems.is_empty()).collect();
    if bad.is_empty() {
        return None;
    }
    let mut t = format!(
        "{} of {} cells do not match the spec's role requirements:\n\n",
        bad.len(),
        outcomes.len()
    );
    let _ = writeln!(
        t,
        "| {:<38} | {:<15} | {:<11} | {:<24} | {:<24} | problem",
        "operation", "caller", "project", "expected", "got"
    );
    let _ = writeln!(t, "|{}", "-".repeat(152));
    for o in bad {
        let _ = writeln!(
            t,
            "| {:<38} | {:<15} | {:<11} | {:<24} | {:<24} | {}",
            o.cell.op.name(),
            o.cell.who.label(),
            o.cell.project_label(),
            o.cell.expect.show(),
            got(&o.reply),
            o.problems.join("; ")
        );
    }
    Some(t)
}

/// The whole matrix as answered, one row per operation and project, one column per caller.
fn grid(outcomes: &[Outcome]) -> String {
    let mut t = format!("| {:<38} | {:<11} |", "operation", "project");
    for who in CALLERS {
        let _ = write!(t, " {:<15} |", who.label());
    }
    t.push('\n');
    for chunk in outcomes.chunk_by(|a, b| a.cell.op == b.cell.op) {
        for project in [Some(Target::Mine), Some(Target::Theirs), None] {
            let row: Vec<&Outcome> = chunk.iter().filter(|o| o.cell.project == project).collect();
            if row.is_empty() {
                continue;
            }
            let _ = write!(
                t,
                "| {:<38} | {:<11} |",
                chunk[0].cell.op.name(),
                row[0].cell.project_label()
            );
            for who in CALLERS {
                let o = row.iter().find(|o| o.cell.who == who).unwrap();
                let mark = if o.problems.is_empty() { "" } else { " !!" };
                let _ = write!(t, " {:<15} |", format!("{}{mark}", o.reply.status.as_u16()));
            }
            t.push('\n');
        }
    }
    t
}

#[tokio::test]
async fn every_cell_meets_the_spec_role_requirements() {
    let cells = matrix();
    // 30 project operations x 5 callers x 2 projects, 8 organization operations x 5 callers.
    assert_eq!(cells.len(), 30 * 5 * 2 + 8 * 5);
    let w = World::new().await;
    let outcomes = run(&w, &cells).await;
    println!("{}", grid(&outcomes));
    if let Some(table) = mismatch_table(&outcomes) {
        panic!("{table}");
    }
}

#[tokio::test]
async fn no_refusal_about_someone_elses_project_reveals_it() {
    let cells: Vec<Cell> = matrix()
        .into_iter()
        .filter(|c| c.project == Some(Target::Theirs) && c.expect == Expect::GroupNotFound)
        .collect();
    assert_eq!(cells.len(), 30 * 4);
    let w = World::new().await;
    let outcomes = run(&w, &cells).await;
    let mut problems = String::new();
    for o in &outcomes {
        let cell = format!("{} as {} on P2", o.cell.op.name(), o.cell.who.label());
        let leaked: Vec<String> = w
            .theirs
            .secrets()
            .into_iter()
            .chain(o.plan.hidden.iter().cloned())
            .filter(|s| o.reply.text.contains(s.as_str()))
            .collect();
        if !leaked.is_empty() {
            let _ = writeln!(
                problems,
                "{cell}: body contains P2 data {leaked:?}: {}",
                o.reply.text
            );
        }
        // The same request about a project that does not exist gets the same answer, byte for
        // byte once the id is swapped back.
        let real = o.plan.project_id.as_deref().unwrap();
        let uri = o.plan.uri.replace(real, NO_SUCH_GROUP);
        let body = o.plan.body.as_ref().map(|b| b.replace(real, NO_SUCH_GROUP));
        let twin = w
            .as_caller(
                o.cell.who,
                o.plan.method,
                &uri,
                o.plan.accept,
                body.as_deref(),
            )
            .await;
        let twin_text = twin.text.replace(NO_SUCH_GROUP, real);
        if (o.reply.status, &o.reply.error_code, &o.reply.text)
            != (twin.status, &twin.error_code, &twin_text)
        {
            let _ = writeln!(
                problems,
                "{cell}: answers {} {}, a nonexistent project {} {}",
                o.reply.status, o.reply.text, twin.status, twin_text
            );
        }
    }
    assert!(problems.is_empty(), "\n{problems}");
}
