//! Who may manage whom: the one rule for every path that creates, reveals or alters a credential
//! (an API key, a service account, a service-account secret, an IP access list, a project
//! assignment).
//!
//! A caller may manage a principal only if its own roles **cover every role the principal
//! holds**, in every organization and project, both before the call and after it. On a path
//! addressed to a project, the principal must also be **confined to that project** (organization
//! role `ORG_MEMBER` only, project roles in that project only), unless the caller is
//! Organization Owner. Nobody can mint a secret for a principal more powerful than themselves,
//! nor restrict, rename or re-role one. A refusal is 403 `ACCESS_FORBIDDEN` (docs/COMPATIBILITY.md).
//!
//! Coverage, per role name (a stricter reading than Atlas's full hierarchy, never a looser one):
//! * `ORG_OWNER` covers every organization role and every project role in the organization;
//! * any organization role covers itself and `ORG_MEMBER`; `ORG_READ_ONLY` also covers
//!   `GROUP_READ_ONLY` in every project;
//! * `GROUP_OWNER` in a project covers every project role there; any project role covers itself
//!   and `GROUP_READ_ONLY` there.
//!
//! This module decides; it never reads or writes the store. `routes::access::manage` loads a
//! principal's holdings and asks [`Caller::may_manage`].

use dbcerts_store::ProjectGrant;

use super::roles::Caller;
use crate::error::AtlasError;

const ORG_OWNER: &str = "ORG_OWNER";
const ORG_MEMBER: &str = "ORG_MEMBER";
const ORG_READ_ONLY: &str = "ORG_READ_ONLY";
const GROUP_OWNER: &str = "GROUP_OWNER";
const GROUP_READ_ONLY: &str = "GROUP_READ_ONLY";

/// Every role a principal holds: its organization roles and its project grants, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdings {
    pub org_id: String,
    pub org_roles: Vec<String>,
    pub grants: Vec<ProjectGrant>,
}

impl Holdings {
    pub fn new(org_id: &str, org_roles: Vec<String>, grants: Vec<ProjectGrant>) -> Holdings {
        Holdings {
            org_id: org_id.to_owned(),
            org_roles,
            grants,
        }
    }

    /// A principal with `ORG_MEMBER` and `roles` in `project_id`: what the project-scoped
    /// create operations make.
    pub fn project_member(
        org_id: &str,
        principal_id: &str,
        project_id: &str,
        roles: &[String],
    ) -> Holdings {
        Holdings::new(org_id, vec![ORG_MEMBER.to_owned()], Vec::new()).with_grant(
            principal_id,
            project_id,
            roles,
        )
    }

    /// The same holdings with `roles` as the whole grant in `project_id` (what assigning a
    /// principal to a project does).
    pub fn with_grant(mut self, principal_id: &str, project_id: &str, roles: &[String]) -> Self {
        self.grants.retain(|g| g.project_id != project_id);
        self.grants.push(ProjectGrant {
            principal_id: principal_id.to_owned(),
            project_id: project_id.to_owned(),
            roles: roles.to_vec(),
        });
        self
    }

    /// The same holdings with `roles` as the organization roles.
    pub fn with_org_roles(mut self, roles: &[String]) -> Self {
        self.org_roles = roles.to_vec();
        self
    }

    /// Whether every role is `ORG_MEMBER` or a role in `project_id`.
    fn confined_to(&self, project_id: &str) -> bool {
        self.org_roles.iter().all(|r| r == ORG_MEMBER)
            && self
                .grants
                .iter()
                .all(|g| g.project_id == project_id || g.roles.is_empty())
    }
}

/// Where a managing call was addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via<'a> {
    /// `/orgs/{orgId}/...`.
    Org,
    /// `/groups/{groupId}/...`, with the project's id.
    Project(&'a str),
}

fn org_role_covers(held: &str, needed: &str) -> bool {
    held == needed || held == ORG_OWNER || needed == ORG_MEMBER
}

fn project_role_covers(held: &str, needed: &str) -> bool {
    held == needed || held == GROUP_OWNER || needed == GROUP_READ_ONLY
}

impl Caller {
    fn holds_org_role(&self, name: &str) -> bool {
        self.holdings.org_roles.iter().any(|r| r == name)
    }

    /// Whether the caller holds `needed` in `project_id`, through its organization roles or its
    /// grant there.
    fn covers_project_role(&self, project_id: &str, needed: &str) -> bool {
        self.holds_org_role(ORG_OWNER)
            || (needed == GROUP_READ_ONLY && self.holds_org_role(ORG_READ_ONLY))
            || self
                .holdings
                .grants
                .iter()
                .filter(|g| g.project_id == project_id)
                .flat_map(|g| &g.roles)
                .any(|held| project_role_covers(held, needed))
    }

    /// Whether the caller's roles cover every role of `target`, which must belong to the
    /// caller's organization.
    pub fn covers(&self, target: &Holdings) -> bool {
        target.org_id == self.holdings.org_id
            && target.org_roles.iter().all(|needed| {
                self.holdings
                    .org_roles
                    .iter()
                    .any(|held| org_role_covers(held, needed))
            })
            && target.grants.iter().all(|g| {
                g.roles
                    .iter()
                    .all(|needed| self.covers_project_role(&g.project_id, needed))
            })
    }

    /// Fails with 403 `ACCESS_FORBIDDEN` unless the caller may create, reveal or alter a
    /// credential of a principal holding `target`, through a path addressed `via`. Call it
    /// with the principal's holdings before the change and, when the call changes roles, after.
    pub fn may_manage(&self, via: Via<'_>, target: &Holdings) -> Result<(), AtlasError> {
        let confined = match via {
            Via::Org => true,
            Via::Project(project_id) => {
                self.holds_org_role(ORG_OWNER) || target.confined_to(project_id)
            }
        };
        if confined && self.covers(target) {
            Ok(())
        } else {
            Err(AtlasError::access_forbidden())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;

    fn grant(project: &str, roles: &[&str]) -> ProjectGrant {
        ProjectGrant {
            principal_id: "t".into(),
            project_id: project.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn holdings(org_roles: &[&str], grants: &[(&str, &[&str])]) -> Holdings {
        Holdings::new(
            "org",
            org_roles.iter().map(|r| (*r).to_owned()).collect(),
            grants.iter().map(|(p, r)| grant(p, r)).collect(),
        )
    }

    fn caller(org_roles: &[&str], grants: &[(&str, &[&str])]) -> Caller {
        let h = holdings(org_roles, grants);
        Caller::new(
            Principal::ApiKey {
                id: "c".into(),
                public_key: "abcdefgh".into(),
            },
            "org",
            &h.org_roles,
            &h.grants,
            None,
        )
    }

    #[test]
    fn the_reported_chain_is_refused_at_its_first_step() {
        // A Project Owner of P2 may not mint a secret for an Organization Owner account that
        // was invited to P2, nor rename or restrict it.
        let project_owner = caller(&["ORG_MEMBER"], &[("p2", &["GROUP_OWNER"])]);
        let org_owner_account = holdings(&["ORG_OWNER"], &[("p2", &["GROUP_READ_ONLY"])]);
        let e = project_owner
            .may_manage(Via::Project("p2"), &org_owner_account)
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "ACCESS_FORBIDDEN"));
    }

    #[test]
    fn a_project_path_manages_only_principals_confined_to_that_project() {
        let owner = caller(
            &["ORG_MEMBER"],
            &[("p1", &["GROUP_OWNER"]), ("p2", &["GROUP_OWNER"])],
        );
        let in_p1 = holdings(&["ORG_MEMBER"], &[("p1", &["GROUP_READ_ONLY"])]);
        let in_both = holdings(
            &["ORG_MEMBER"],
            &[("p1", &["GROUP_READ_ONLY"]), ("p2", &["GROUP_READ_ONLY"])],
        );
        assert!(owner.may_manage(Via::Project("p1"), &in_p1).is_ok());
        // Covered, but not confined to the path's project.
        assert!(owner.covers(&in_both));
        assert!(owner.may_manage(Via::Project("p1"), &in_both).is_err());
        assert!(owner.may_manage(Via::Project("p2"), &in_p1).is_err());
        // An Organization Owner may manage any principal of its organization from any path.
        let org_owner = caller(&["ORG_OWNER"], &[]);
        assert!(org_owner.may_manage(Via::Project("p1"), &in_both).is_ok());
        let other_owner = holdings(&["ORG_OWNER"], &[]);
        assert!(org_owner.may_manage(Via::Org, &other_owner).is_ok());
    }

    #[test]
    fn coverage_follows_the_role_hierarchy_and_nothing_more() {
        let c = caller(
            &["ORG_READ_ONLY", "ORG_BILLING_ADMIN"],
            &[("p1", &["GROUP_DATABASE_ACCESS_ADMIN"])],
        );
        let ok = [
            holdings(&["ORG_MEMBER"], &[]),
            holdings(&["ORG_BILLING_ADMIN", "ORG_READ_ONLY"], &[]),
            holdings(
                &[],
                &[("p1", &["GROUP_DATABASE_ACCESS_ADMIN", "GROUP_READ_ONLY"])],
            ),
            holdings(&[], &[("p9", &["GROUP_READ_ONLY"])]),
        ];
        for t in &ok {
            assert!(c.covers(t), "{t:?}");
        }
        let beyond = [
            holdings(&["ORG_OWNER"], &[]),
            holdings(&["ORG_GROUP_CREATOR"], &[]),
            holdings(&["ORG_BILLING_READ_ONLY"], &[]),
            holdings(&[], &[("p1", &["GROUP_OWNER"])]),
            holdings(&[], &[("p1", &["GROUP_DATA_ACCESS_READ_ONLY"])]),
            holdings(&[], &[("p2", &["GROUP_DATABASE_ACCESS_ADMIN"])]),
        ];
        for t in &beyond {
            assert!(!c.covers(t), "{t:?}");
        }
        let mut elsewhere = holdings(&["ORG_MEMBER"], &[]);
        elsewhere.org_id = "other-org".into();
        assert!(!caller(&["ORG_OWNER"], &[]).covers(&elsewhere));
    }

    #[test]
    fn role_changes_are_checked_on_the_result() {
        let owner = caller(&["ORG_MEMBER"], &[("p1", &["GROUP_OWNER"])]);
        let target = holdings(&["ORG_MEMBER"], &[]);
        assert!(owner.may_manage(Via::Project("p1"), &target).is_ok());
        let promoted = target.clone().with_org_roles(&["ORG_OWNER".to_owned()]);
        assert!(owner.may_manage(Via::Project("p1"), &promoted).is_err());
        let assigned = target.with_grant("t", "p1", &["GROUP_OWNER".to_owned()]);
        assert!(owner.may_manage(Via::Project("p1"), &assigned).is_ok());
    }
}
