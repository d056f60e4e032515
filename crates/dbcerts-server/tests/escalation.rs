//! No caller gains a role it does not hold (issue: privilege escalation through credential
//! paths).
//!
//! A property test over every operation that creates, reveals or alters a credential, on the
//! organization's paths and on a project's: an API key, its project assignment and access list;
//! a service account, its secrets, assignment and access list. Each case draws a caller and a
//! target principal with random organization roles and random roles in two projects, an
//! operation, the project its path names and the roles it asks for, then makes the one call as
//! the caller over Digest, in process, against a real SQLite store.
//!
//! The expectation is built here, never from the server's code. A principal's *effective roles*
//! are the set of (scope, role) pairs its roles imply:
//! * `ORG_OWNER`: every organization role, and every project role in every project;
//! * any organization role: itself and `ORG_MEMBER`; `ORG_READ_ONLY` also `GROUP_READ_ONLY` in
//!   every project;
//! * `GROUP_OWNER` in a project: every project role there; any project role: itself and
//!   `GROUP_READ_ONLY` there.
//!
//! The property: a call succeeds exactly when the caller holds the operation's role, the target
//! is one the path can name, a project path's target is confined to that project (or the caller
//! is Organization Owner), and the caller's effective roles contain the target's both before
//! and after the call. A refused call changes nothing and hands out nothing; an allowed one has
//! exactly its effect. So no single call yields a credential, token or change whose effective
//! roles exceed the caller's.
//!
//! `PROPTEST_CASES` raises the number of cases (default 320).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Harness, V2};
use dbcerts_server::auth::roles::{ORG_ROLE_NAMES, PROJECT_ROLE_NAMES};
use dbcerts_store::{
    AccessListEntry, Page, ProjectGrant, ServiceAccountRecord, ServiceAccountSecretRecord, Store,
};
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

const V2024: &str = "application/vnd.atlas.2024-08-05+json";
const ALL: Page = Page {
    offset: 0,
    limit: 100_000,
};
/// The access-list entry every target starts with, and the one the add operations add.
const OLD_ENTRY: &str = "10.1.2.3";
const NEW_ENTRY: &str = "10.9.9.9";

/// Roles by name: organization roles, and roles in the two projects (index 0 and 1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Roles {
    org: BTreeSet<String>,
    projects: [BTreeSet<String>; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Key,
    Account,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateOrgKey,
    UpdateOrgKey,
    DeleteOrgKey,
    AddOrgKeyAccess,
    DeleteOrgKeyAccess,
    CreateGroupKey,
    AddGroupKey,
    UpdateGroupKey,
    RemoveGroupKey,
    CreateOrgAccount,
    UpdateOrgAccount,
    DeleteOrgAccount,
    CreateSecret,
    DeleteSecret,
    AddAccountAccess,
    DeleteAccountAccess,
    CreateGroupAccount,
    UpdateGroupAccount,
    RemoveGroupAccount,
    InviteGroupAccount,
}

/// Operations whose path exists on both the organization's and a project's paths, and which
/// `Case::on_project` picks between.
const EITHER: [Op; 4] = [
    Op::CreateSecret,
    Op::DeleteSecret,
    Op::AddAccountAccess,
    Op::DeleteAccountAccess,
];

const OPS: [Op; 20] = [
    Op::CreateOrgKey,
    Op::UpdateOrgKey,
    Op::DeleteOrgKey,
    Op::AddOrgKeyAccess,
    Op::DeleteOrgKeyAccess,
    Op::CreateGroupKey,
    Op::AddGroupKey,
    Op::UpdateGroupKey,
    Op::RemoveGroupKey,
    Op::CreateOrgAccount,
    Op::UpdateOrgAccount,
    Op::DeleteOrgAccount,
    Op::CreateSecret,
    Op::DeleteSecret,
    Op::AddAccountAccess,
    Op::DeleteAccountAccess,
    Op::CreateGroupAccount,
    Op::UpdateGroupAccount,
    Op::RemoveGroupAccount,
    Op::InviteGroupAccount,
];

impl Op {
    fn kind(self) -> Kind {
        use Op::*;
        match self {
            CreateOrgKey | UpdateOrgKey | DeleteOrgKey | AddOrgKeyAccess | DeleteOrgKeyAccess
            | CreateGroupKey | AddGroupKey | UpdateGroupKey | RemoveGroupKey => Kind::Key,
            _ => Kind::Account,
        }
    }

    fn creates(self) -> bool {
        matches!(
            self,
            Op::CreateOrgKey | Op::CreateGroupKey | Op::CreateOrgAccount | Op::CreateGroupAccount
        )
    }

    /// Whether the path is a project's (for `EITHER` operations, the case decides).
    fn on_project(self, either: bool) -> bool {
        use Op::*;
        match self {
            CreateGroupKey | AddGroupKey | UpdateGroupKey | RemoveGroupKey | CreateGroupAccount
            | UpdateGroupAccount | RemoveGroupAccount | InviteGroupAccount => true,
            op if EITHER.contains(&op) => either,
            _ => false,
        }
    }

    /// Whether the operation sets organization roles (else, if it sets roles, project roles).
    fn sets_org_roles(self) -> bool {
        matches!(
            self,
            Op::CreateOrgKey | Op::UpdateOrgKey | Op::CreateOrgAccount | Op::UpdateOrgAccount
        )
    }

    fn sets_project_roles(self) -> bool {
        matches!(
            self,
            Op::CreateGroupKey
                | Op::AddGroupKey
                | Op::UpdateGroupKey
                | Op::CreateGroupAccount
                | Op::UpdateGroupAccount
                | Op::InviteGroupAccount
        )
    }
}

#[derive(Debug, Clone)]
struct Case {
    op: Op,
    /// For operations on both kinds of path: the project's.
    on_project: bool,
    /// Which project a project path names.
    project: usize,
    caller: Roles,
    target: Roles,
    /// The roles the call asks for, where it asks for any.
    asked: BTreeSet<String>,
}

fn names(
    all: &'static [&'static str],
    range: std::ops::RangeInclusive<usize>,
) -> BoxedStrategy<BTreeSet<String>> {
    subsequence(all.to_vec(), range)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
        .boxed()
}

fn just(roles: &[&str]) -> BoxedStrategy<BTreeSet<String>> {
    Just(roles.iter().map(|r| (*r).to_owned()).collect()).boxed()
}

/// Roles drawn from the whole space, weighted towards the cases the rule is about: members
/// with a project role, owners of one project, and organization owners. Callers lean towards
/// owning the first project (where most paths point), so that the rule, not the operation's
/// role requirement, decides most of their calls.
fn roles(owner_weight: u32, other_project_weight: u32) -> impl Strategy<Value = Roles> {
    let org = prop_oneof![
        3 => just(&["ORG_MEMBER"]),
        2 => names(&ORG_ROLE_NAMES, 1..=3),
        1 => just(&["ORG_OWNER"]),
    ];
    let project = |owner: u32, any: u32| {
        prop_oneof![
            2 => just(&[]),
            owner => just(&["GROUP_OWNER"]),
            any => names(&PROJECT_ROLE_NAMES, 1..=3),
        ]
    };
    let (first, second) = (project(owner_weight, 3), project(2, other_project_weight));
    (org, first, second).prop_map(|(org, p0, p1)| Roles {
        org,
        projects: [p0, p1],
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(OPS.to_vec()),
        any::<bool>(),
        prop_oneof![3 => Just(0usize), 1 => Just(1usize)],
        roles(8, 1),
        roles(2, 4),
        names(&ORG_ROLE_NAMES, 1..=2),
        prop_oneof![
            1 => just(&["GROUP_OWNER"]),
            2 => names(&PROJECT_ROLE_NAMES, 1..=2),
        ],
    )
        .prop_map(
            |(op, either, project, caller, target, org_ask, project_ask)| Case {
                op,
                on_project: op.on_project(either),
                project,
                caller,
                target,
                asked: if op.sets_org_roles() {
                    org_ask
                } else if op.sets_project_roles() {
                    project_ask
                } else {
                    BTreeSet::new()
                },
            },
        )
}

// ---- the oracle ----

/// The (scope, role) pairs that `roles` imply, with `projects` the ids of the two projects.
fn effective(roles: &Roles) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut project_role = |p: usize, r: &str| {
        out.insert((format!("p{p}"), r.to_owned()));
    };
    for (p, held) in roles.projects.iter().enumerate() {
        for r in held {
            project_role(p, r);
            project_role(p, "GROUP_READ_ONLY");
            if r == "GROUP_OWNER" {
                PROJECT_ROLE_NAMES
                    .iter()
                    .for_each(|all| project_role(p, all));
            }
        }
    }
    for r in &roles.org {
        match r.as_str() {
            "ORG_OWNER" => {
                for p in 0..2 {
                    PROJECT_ROLE_NAMES
                        .iter()
                        .for_each(|all| project_role(p, all));
                }
            }
            "ORG_READ_ONLY" => {
                for p in 0..2 {
                    project_role(p, "GROUP_READ_ONLY");
                }
            }
            _ => {}
        }
    }
    for r in &roles.org {
        out.insert(("org".into(), r.clone()));
        out.insert(("org".into(), "ORG_MEMBER".into()));
        if r == "ORG_OWNER" {
            for all in ORG_ROLE_NAMES {
                out.insert(("org".into(), all.to_owned()));
            }
        }
    }
    out
}

fn within(inner: &Roles, outer: &Roles) -> bool {
    effective(inner).is_subset(&effective(outer))
}

fn is_org_owner(r: &Roles) -> bool {
    r.org.contains("ORG_OWNER")
}

fn confined_to(r: &Roles, project: usize) -> bool {
    r.org.iter().all(|o| o == "ORG_MEMBER") && r.projects[1 - project].is_empty()
}

fn member_of(project: usize, roles: &BTreeSet<String>) -> Roles {
    let mut projects = [BTreeSet::new(), BTreeSet::new()];
    projects[project] = roles.clone();
    Roles {
        org: ["ORG_MEMBER".to_owned()].into(),
        projects,
    }
}

/// The target's roles after the call, were it allowed (`None`: the target is gone).
fn intended(c: &Case) -> Option<Roles> {
    let mut after = c.target.clone();
    match c.op {
        Op::CreateOrgKey | Op::CreateOrgAccount => {
            return Some(Roles {
                org: c.asked.clone(),
                projects: Default::default(),
            });
        }
        Op::CreateGroupKey | Op::CreateGroupAccount => return Some(member_of(c.project, &c.asked)),
        Op::UpdateOrgKey | Op::UpdateOrgAccount => after.org = c.asked.clone(),
        Op::AddGroupKey | Op::UpdateGroupKey | Op::UpdateGroupAccount | Op::InviteGroupAccount => {
            after.projects[c.project] = c.asked.clone();
        }
        Op::RemoveGroupKey | Op::RemoveGroupAccount => after.projects[c.project].clear(),
        Op::DeleteOrgKey | Op::DeleteOrgAccount => return None,
        _ => {}
    }
    Some(after)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    /// The caller holds the operation's role and the path names the target, but the target
    /// is beyond the caller: 403 `ACCESS_FORBIDDEN`.
    Beyond,
    /// Refused for another reason (the operation's role, a target the path cannot name).
    Refused,
}

/// What the call should come to.
fn verdict(c: &Case) -> Verdict {
    let owner_here = is_org_owner(&c.caller)
        || (c.on_project && c.caller.projects[c.project].contains("GROUP_OWNER"));
    let meets = match c.op {
        Op::InviteGroupAccount => is_org_owner(&c.caller),
        _ => owner_here,
    };
    // What the path can name: a project path's account must be assigned to the project, and
    // removing an assignment needs one.
    let assigned = !c.target.projects[c.project].is_empty();
    let nameable = match c.op {
        Op::RemoveGroupKey => assigned,
        op if op.kind() == Kind::Account && c.on_project && !op.creates() => {
            op == Op::InviteGroupAccount || assigned
        }
        _ => true,
    };
    let confined = !c.on_project
        || is_org_owner(&c.caller)
        || (c.op.creates() || confined_to(&c.target, c.project));
    let covered = (c.op.creates() || within(&c.target, &c.caller))
        && intended(c).is_none_or(|after| within(&after, &c.caller));
    match (meets && nameable, confined && covered) {
        (true, true) => Verdict::Allowed,
        (true, false) => Verdict::Beyond,
        (false, _) => Verdict::Refused,
    }
}

// ---- the world ----

struct World {
    h: Harness,
    master: dbcerts_ca::sealing::MasterKey,
    projects: [String; 2],
}

/// What the store holds about one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    exists: bool,
    org: BTreeSet<String>,
    grants: BTreeMap<String, BTreeSet<String>>,
    text: String,
    access: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

impl World {
    fn grants(&self, principal_id: &str, r: &Roles) -> Vec<ProjectGrant> {
        (0..2)
            .filter(|&p| !r.projects[p].is_empty())
            .map(|p| ProjectGrant {
                principal_id: principal_id.to_owned(),
                project_id: self.projects[p].clone(),
                roles: r.projects[p].iter().cloned().collect(),
            })
            .collect()
    }

    async fn new_key(&self, desc: &str, r: &Roles) -> (String, String, String) {
        let (rec, private) = dbcerts_server::bootstrap::new_api_key(
            &self.master,
            &self.h.org_id,
            desc,
            r.org.iter().cloned().collect(),
        );
        let store = &self.h.store;
        store
            .create_api_key(&rec, &self.grants(&rec.id, r))
            .await
            .unwrap();
        (rec.id, rec.public_key, String::clone(&private))
    }

    async fn new_account(&self, name: &str, r: &Roles) -> (String, String) {
        let rec = ServiceAccountRecord {
            client_id: format!("mdb_sa_id_{}", dbcerts_server::bootstrap::new_object_id()),
            org_id: self.h.org_id.clone(),
            name: name.to_owned(),
            description: name.to_owned(),
            org_roles: r.org.iter().cloned().collect(),
            created: chrono::Utc::now().timestamp(),
        };
        let now = chrono::Utc::now().timestamp();
        let secret = ServiceAccountSecretRecord {
            id: dbcerts_server::bootstrap::new_object_id(),
            client_id: rec.client_id.clone(),
            secret_hash: dbcerts_server::auth::oauth::hash_secret("mdb_sa_sk_unused"),
            masked: "mdb_sa_sk_...used".into(),
            created: now,
            expires: now + 3600,
            last_used: None,
        };
        let store = &self.h.store;
        store.create_service_account(&rec, &secret).await.unwrap();
        for g in self.grants(&rec.client_id, r) {
            store.put_grant(&g).await.unwrap();
        }
        (rec.client_id, secret.id)
    }

    async fn snapshot(&self, kind: Kind, id: &str) -> Snapshot {
        let store = &self.h.store;
        let (exists, org, text, secrets) = match kind {
            Kind::Key => match store.get_api_key_by_id(id).await.unwrap() {
                Some(k) => (true, k.org_roles, k.description, BTreeSet::new()),
                None => (false, Vec::new(), String::new(), BTreeSet::new()),
            },
            Kind::Account => match store.get_service_account(id).await.unwrap() {
                Some(a) => {
                    let secrets = store.list_service_account_secrets(id).await.unwrap();
                    let text = format!("{}/{}", a.name, a.description);
                    (
                        true,
                        a.org_roles,
                        text,
                        secrets.into_iter().map(|s| s.id).collect(),
                    )
                }
                None => (false, Vec::new(), String::new(), BTreeSet::new()),
            },
        };
        let grants = store
            .list_grants(id)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.project_id, g.roles.into_iter().collect()))
            .collect();
        let access = store
            .list_access_list(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.cidr_block)
            .collect();
        Snapshot {
            exists,
            org: org.into_iter().collect(),
            grants,
            text,
            access,
            secrets,
        }
    }

    /// The roles a snapshot holds, in the oracle's terms.
    fn roles_of(&self, s: &Snapshot) -> Roles {
        let in_project = |p: usize| s.grants.get(&self.projects[p]).cloned().unwrap_or_default();
        Roles {
            org: s.org.clone(),
            projects: [in_project(0), in_project(1)],
        }
    }

    async fn principals(&self) -> (u64, u64) {
        let store = &self.h.store;
        let keys = store.list_api_keys(&self.h.org_id, ALL).await.unwrap().1;
        let accounts = store
            .list_service_accounts(&self.h.org_id, ALL)
            .await
            .unwrap()
            .1;
        (keys, accounts)
    }
}

fn json_list(roles: &BTreeSet<String>) -> String {
    serde_json::to_string(&roles.iter().collect::<Vec<_>>()).unwrap()
}

/// Runs one case; `n` makes its names unique.
async fn run(w: &World, n: usize, c: &Case) -> Result<(), TestCaseError> {
    let org = w.h.org_id.clone();
    let gid = w.projects[c.project].clone();
    let (_, caller_public, caller_private) = w.new_key(&format!("caller {n}"), &c.caller).await;
    let kind = c.op.kind();
    let (target, secret_id) = match kind {
        Kind::Key => (
            w.new_key(&format!("target {n}"), &c.target).await.0,
            String::new(),
        ),
        Kind::Account => w.new_account(&format!("target {n}"), &c.target).await,
    };
    let entry = AccessListEntry {
        principal_id: target.clone(),
        cidr_block: format!("{OLD_ENTRY}/32"),
        created: chrono::Utc::now().timestamp(),
    };
    w.h.store.add_access_list_entries(&[entry]).await.unwrap();

    let asked = json_list(&c.asked);
    let base = if c.on_project {
        format!("/groups/{gid}")
    } else {
        format!("/orgs/{org}")
    };
    let (method, path, body): (&str, String, Option<String>) = match c.op {
        Op::CreateOrgKey | Op::CreateGroupKey => (
            "POST",
            format!("{base}/apiKeys"),
            Some(format!(r#"{{"desc":"new {n}","roles":{asked}}}"#)),
        ),
        Op::UpdateOrgKey | Op::UpdateGroupKey => (
            "PATCH",
            format!("{base}/apiKeys/{target}"),
            Some(format!(r#"{{"desc":"renamed {n}","roles":{asked}}}"#)),
        ),
        Op::AddGroupKey => (
            "POST",
            format!("{base}/apiKeys/{target}"),
            Some(format!(r#"[{{"roles":{asked}}}]"#)),
        ),
        Op::DeleteOrgKey | Op::RemoveGroupKey => {
            ("DELETE", format!("{base}/apiKeys/{target}"), None)
        }
        Op::AddOrgKeyAccess => (
            "POST",
            format!("{base}/apiKeys/{target}/accessList"),
            Some(format!(r#"[{{"ipAddress":"{NEW_ENTRY}"}}]"#)),
        ),
        Op::DeleteOrgKeyAccess => (
            "DELETE",
            format!("{base}/apiKeys/{target}/accessList/{OLD_ENTRY}"),
            None,
        ),
        Op::CreateOrgAccount | Op::CreateGroupAccount => (
            "POST",
            format!("{base}/serviceAccounts"),
            Some(format!(
                r#"{{"name":"new {n}","description":"new","roles":{asked},"secretExpiresAfterHours":8}}"#
            )),
        ),
        Op::UpdateOrgAccount | Op::UpdateGroupAccount => (
            "PATCH",
            format!("{base}/serviceAccounts/{target}"),
            Some(format!(r#"{{"name":"renamed {n}","roles":{asked}}}"#)),
        ),
        Op::DeleteOrgAccount | Op::RemoveGroupAccount => {
            ("DELETE", format!("{base}/serviceAccounts/{target}"), None)
        }
        Op::InviteGroupAccount => (
            "POST",
            format!("{base}/serviceAccounts/{target}:invite"),
            Some(format!(r#"{{"roles":{asked}}}"#)),
        ),
        Op::CreateSecret => (
            "POST",
            format!("{base}/serviceAccounts/{target}/secrets"),
            Some(r#"{"secretExpiresAfterHours":8}"#.into()),
        ),
        Op::DeleteSecret => (
            "DELETE",
            format!("{base}/serviceAccounts/{target}/secrets/{secret_id}"),
            None,
        ),
        Op::AddAccountAccess => (
            "POST",
            format!("{base}/serviceAccounts/{target}/accessList"),
            Some(format!(r#"[{{"ipAddress":"{NEW_ENTRY}"}}]"#)),
        ),
        Op::DeleteAccountAccess => (
            "DELETE",
            format!("{base}/serviceAccounts/{target}/accessList/{OLD_ENTRY}"),
            None,
        ),
    };
    let accept = match kind {
        Kind::Key => V2,
        Kind::Account => V2024,
    };

    let before = w.snapshot(kind, &target).await;
    let counts = w.principals().await;
    let uri = format!("/api/atlas/v2{path}");
    let r =
        w.h.call_as(
            &caller_public,
            &caller_private,
            method,
            &uri,
            Some(accept),
            body.as_deref(),
        )
        .await;
    let after = w.snapshot(kind, &target).await;
    let expect = verdict(c);
    let what = format!("{method} {path} {body:?} -> {} {}", r.status, r.text);

    if expect != Verdict::Allowed {
        prop_assert!(
            r.status.as_u16() >= 400,
            "allowed but should be refused: {what}"
        );
        let e: Value = serde_json::from_str(&r.text).unwrap();
        prop_assert!(e["errorCode"].is_string(), "not Atlas's format: {what}");
        prop_assert!(!r.text.contains("privateKey") && !r.text.contains("\"secret\""));
        prop_assert_eq!(
            &after,
            &before,
            "a refused call changed the target: {}",
            what
        );
        prop_assert_eq!(
            w.principals().await,
            counts,
            "a refused call created one: {}",
            what
        );
        if expect == Verdict::Beyond {
            prop_assert_eq!(r.status.as_u16(), 403, "{}", what);
            prop_assert_eq!(
                e["errorCode"].as_str(),
                Some("ACCESS_FORBIDDEN"),
                "{}",
                what
            );
        }
        return Ok(());
    }

    prop_assert!(
        r.status.is_success(),
        "refused but should be allowed: {what}"
    );
    // Exactly the intended effect, and nothing beyond the caller's roles.
    let effect = if c.op.creates() {
        let v: Value = serde_json::from_str(&r.text).unwrap();
        let id = v["id"].as_str().or(v["clientId"].as_str()).unwrap();
        w.snapshot(kind, id).await
    } else {
        after.clone()
    };
    match intended(c) {
        None => prop_assert!(!effect.exists, "{what}"),
        Some(roles) => {
            prop_assert_eq!(&w.roles_of(&effect), &roles, "{}", what);
            prop_assert!(within(&w.roles_of(&effect), &c.caller), "{what}");
        }
    }
    prop_assert!(
        c.op.creates() || within(&w.roles_of(&before), &c.caller),
        "{what}"
    );
    match c.op {
        Op::AddOrgKeyAccess | Op::AddAccountAccess => {
            prop_assert!(after.access.contains(&format!("{NEW_ENTRY}/32")), "{what}")
        }
        Op::DeleteOrgKeyAccess | Op::DeleteAccountAccess => {
            prop_assert!(!after.access.contains(&format!("{OLD_ENTRY}/32")), "{what}")
        }
        Op::CreateSecret => prop_assert_eq!(after.secrets.len(), before.secrets.len() + 1),
        Op::DeleteSecret => prop_assert!(!after.secrets.contains(&secret_id), "{what}"),
        Op::UpdateOrgKey | Op::UpdateGroupKey | Op::UpdateOrgAccount | Op::UpdateGroupAccount => {
            prop_assert!(effect.text.contains("renamed"), "{what}")
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn no_call_yields_a_credential_beyond_the_callers_roles() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let w = rt.block_on(async {
        let h = Harness::new().await;
        let key_text = std::fs::read_to_string(h.dir.path().join("master.key.b64")).unwrap();
        let master = dbcerts_ca::sealing::MasterKey::from_base64(&key_text).unwrap();
        let projects = [h.project("p0").await, h.project("p1").await];
        World {
            h,
            master,
            projects,
        }
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(320);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::cell::Cell::new(0usize);
    let seen: std::cell::RefCell<BTreeMap<String, usize>> = Default::default();
    runner
        .run(&case(), |c| {
            n.set(n.get() + 1);
            *seen
                .borrow_mut()
                .entry(format!("{:?}", verdict(&c)))
                .or_default() += 1;
            rt.block_on(run(&w, n.get(), &c))
        })
        .unwrap();
    // Every side of the rule was exercised, not only refusals (at the default 320 cases,
    // about 30 %, 11 % and 59 %).
    let seen = seen.into_inner();
    eprintln!("{cases} cases: {seen:?}");
    for v in [Verdict::Allowed, Verdict::Beyond, Verdict::Refused] {
        let count = seen.get(&format!("{v:?}")).copied().unwrap_or(0);
        assert!(count >= cases as usize / 20, "{v:?}: {seen:?}");
    }
}
