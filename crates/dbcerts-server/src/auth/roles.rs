//! Atlas roles, and the authenticated caller that holds them.
//!
//! Organization roles sit on the API key or service account; project roles are grants per
//! project. The hierarchy: Organization Owner implies Project Owner in every project of the
//! organization, Organization Read Only implies Project Read Only in every project, and Project
//! Owner implies every other project role. Every project role implies Project Read Only.

use std::collections::HashMap;
use std::net::IpAddr;

use dbcerts_store::{Project, ProjectGrant};

use super::authority::Holdings;
use crate::error::AtlasError;

/// The organization roles of the spec's enum, in its order.
pub const ORG_ROLE_NAMES: [&str; 7] = [
    "ORG_OWNER",
    "ORG_MEMBER",
    "ORG_GROUP_CREATOR",
    "ORG_BILLING_ADMIN",
    "ORG_BILLING_READ_ONLY",
    "ORG_STREAM_PROCESSING_ADMIN",
    "ORG_READ_ONLY",
];

/// Project role names accepted in assignments. The spec has no enum for them; these are the
/// Atlas project roles of MongoDB's role reference (see docs/COMPATIBILITY.md).
pub const PROJECT_ROLE_NAMES: [&str; 11] = [
    "GROUP_OWNER",
    "GROUP_READ_ONLY",
    "GROUP_DATABASE_ACCESS_ADMIN",
    "GROUP_STREAM_PROCESSING_OWNER",
    "GROUP_CLUSTER_MANAGER",
    "GROUP_DATA_ACCESS_ADMIN",
    "GROUP_DATA_ACCESS_READ_WRITE",
    "GROUP_DATA_ACCESS_READ_ONLY",
    "GROUP_SEARCH_INDEX_EDITOR",
    "GROUP_OBSERVABILITY_VIEWER",
    "GROUP_BACKUP_MANAGER",
];

/// An organization role that gates something here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    Owner,
    GroupCreator,
    ReadOnly,
    /// Every other role of the enum: membership, billing, stream processing.
    Member,
}

impl OrgRole {
    pub fn parse(name: &str) -> Option<OrgRole> {
        match name {
            "ORG_OWNER" => Some(OrgRole::Owner),
            "ORG_GROUP_CREATOR" => Some(OrgRole::GroupCreator),
            "ORG_READ_ONLY" => Some(OrgRole::ReadOnly),
            n if ORG_ROLE_NAMES.contains(&n) => Some(OrgRole::Member),
            _ => None,
        }
    }
}

/// A project role as the spec's `x-rolesRequirements` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectRole {
    Owner,
    ReadOnly,
    DatabaseAccessAdmin,
    StreamProcessingOwner,
    /// Project Access Manager. Atlas documents no API name for it, so only Project Owner
    /// (held directly or through Organization Owner) satisfies it here.
    AccessManager,
    /// Project roles that gate nothing here beyond reading (cluster manager, data access, ...).
    Other,
}

impl ProjectRole {
    pub fn parse(name: &str) -> Option<ProjectRole> {
        match name {
            "GROUP_OWNER" => Some(ProjectRole::Owner),
            "GROUP_READ_ONLY" => Some(ProjectRole::ReadOnly),
            "GROUP_DATABASE_ACCESS_ADMIN" => Some(ProjectRole::DatabaseAccessAdmin),
            "GROUP_STREAM_PROCESSING_OWNER" => Some(ProjectRole::StreamProcessingOwner),
            n if PROJECT_ROLE_NAMES.contains(&n) => Some(ProjectRole::Other),
            _ => None,
        }
    }

    /// Whether holding `self` grants `needed`.
    pub fn implies(self, needed: ProjectRole) -> bool {
        self == needed || self == ProjectRole::Owner || needed == ProjectRole::ReadOnly
    }
}

/// What an organization-scoped operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgNeed {
    /// Organization Member: any role in the organization.
    Member,
    /// Organization Read Only (or Owner).
    ReadOnly,
    Owner,
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    ApiKey { id: String, public_key: String },
    ServiceAccount { client_id: String, jti: String },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub org_id: String,
    pub org_roles: Vec<OrgRole>,
    /// Project id to the project roles granted there.
    pub grants: HashMap<String, Vec<ProjectRole>>,
    /// The peer address of the connection, when known.
    pub ip: Option<IpAddr>,
    /// The same roles by name, for deciding whom the caller may manage (`auth::authority`).
    pub holdings: Holdings,
}

impl Caller {
    pub fn new(
        principal: Principal,
        org_id: &str,
        org_roles: &[String],
        grants: &[ProjectGrant],
        ip: Option<IpAddr>,
    ) -> Caller {
        Caller {
            principal,
            org_id: org_id.to_owned(),
            org_roles: org_roles.iter().filter_map(|r| OrgRole::parse(r)).collect(),
            grants: grants
                .iter()
                .map(|g| {
                    let roles = g.roles.iter().filter_map(|r| ProjectRole::parse(r));
                    (g.project_id.clone(), roles.collect())
                })
                .collect(),
            ip,
            holdings: Holdings::new(org_id, org_roles.to_vec(), grants.to_vec()),
        }
    }

    /// The principal id that grants and access lists are keyed by.
    pub fn principal_id(&self) -> &str {
        match &self.principal {
            Principal::ApiKey { id, .. } => id,
            Principal::ServiceAccount { client_id, .. } => client_id,
        }
    }

    /// How the audit log names the caller.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::ApiKey { public_key, .. } => format!("api-key:{public_key}"),
            Principal::ServiceAccount { client_id, .. } => format!("service-account:{client_id}"),
        }
    }

    /// Whether the caller belongs to organization `org_id` at all.
    pub fn in_org(&self, org_id: &str) -> bool {
        self.org_id == org_id
    }

    fn has_org_role(&self, role: OrgRole) -> bool {
        self.org_roles.contains(&role)
    }

    /// Whether the caller meets `need` in organization `org_id`.
    pub fn meets_org(&self, org_id: &str, need: OrgNeed) -> bool {
        self.in_org(org_id)
            && match need {
                OrgNeed::Member => true,
                OrgNeed::ReadOnly => {
                    self.has_org_role(OrgRole::Owner) || self.has_org_role(OrgRole::ReadOnly)
                }
                OrgNeed::Owner => self.has_org_role(OrgRole::Owner),
            }
    }

    /// Fails with `USER_UNAUTHORIZED` unless the caller meets `need` in `org_id`.
    pub fn require_org(&self, org_id: &str, need: OrgNeed) -> Result<(), AtlasError> {
        if self.meets_org(org_id, need) {
            Ok(())
        } else {
            Err(AtlasError::user_unauthorized())
        }
    }

    /// Whether the caller sees every project of its organization (Owner or Read Only there).
    pub fn sees_whole_org(&self) -> bool {
        self.meets_org(&self.org_id, OrgNeed::ReadOnly)
    }

    /// The project roles the caller holds in `project`, organization roles included.
    pub fn project_roles(&self, project: &Project) -> Vec<ProjectRole> {
        if !self.in_org(&project.org_id) {
            return Vec::new();
        }
        let mut roles = Vec::new();
        if self.has_org_role(OrgRole::Owner) {
            roles.push(ProjectRole::Owner);
        }
        if self.has_org_role(OrgRole::ReadOnly) {
            roles.push(ProjectRole::ReadOnly);
        }
        if let Some(granted) = self.grants.get(&project.id) {
            roles.extend(granted);
        }
        roles
    }

    /// Whether `project` exists for this caller. A project it cannot see must answer exactly
    /// like one that does not exist.
    pub fn can_see(&self, project: &Project) -> bool {
        !self.project_roles(project).is_empty()
    }

    /// Fails with `USER_UNAUTHORIZED` unless the caller holds one of `any_of` in `project`.
    pub fn require(&self, project: &Project, any_of: &[ProjectRole]) -> Result<(), AtlasError> {
        let held = self.project_roles(project);
        if any_of
            .iter()
            .any(|need| held.iter().any(|h| h.implies(*need)))
        {
            Ok(())
        } else {
            Err(AtlasError::user_unauthorized())
        }
    }

    pub fn can_create_projects(&self, org_id: &str) -> bool {
        self.in_org(org_id)
            && (self.has_org_role(OrgRole::Owner) || self.has_org_role(OrgRole::GroupCreator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: &str, org: &str) -> Project {
        Project {
            id: id.into(),
            org_id: org.into(),
            name: "p".into(),
            created: 0,
            with_default_alerts_settings: true,
            tags_json: "[]".into(),
        }
    }

    fn caller(org_roles: &[&str], grants: &[(&str, &[&str])]) -> Caller {
        let grants: Vec<ProjectGrant> = grants
            .iter()
            .map(|(p, roles)| ProjectGrant {
                principal_id: "k".into(),
                project_id: (*p).into(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            })
            .collect();
        let roles: Vec<String> = org_roles.iter().map(|r| (*r).to_owned()).collect();
        Caller::new(
            Principal::ApiKey {
                id: "k".into(),
                public_key: "abcdefgh".into(),
            },
            "org-a",
            &roles,
            &grants,
            None,
        )
    }

    #[test]
    fn org_owner_implies_every_project_role_in_its_org_only() {
        let c = caller(&["ORG_OWNER"], &[]);
        let mine = project("p1", "org-a");
        for r in [
            ProjectRole::Owner,
            ProjectRole::ReadOnly,
            ProjectRole::DatabaseAccessAdmin,
            ProjectRole::AccessManager,
        ] {
            assert!(c.require(&mine, &[r]).is_ok());
        }
        let theirs = project("p2", "org-b");
        assert!(!c.can_see(&theirs));
        assert!(c.require(&theirs, &[ProjectRole::ReadOnly]).is_err());
    }

    #[test]
    fn org_read_only_reads_but_cannot_write() {
        let c = caller(&["ORG_READ_ONLY"], &[]);
        let p = project("p1", "org-a");
        assert!(c.require(&p, &[ProjectRole::ReadOnly]).is_ok());
        let e = c.require(&p, &[ProjectRole::Owner]).unwrap_err();
        assert_eq!(e.code, "USER_UNAUTHORIZED");
        assert!(!c.can_create_projects("org-a"));
    }

    #[test]
    fn project_grants_apply_to_their_project_only() {
        let c = caller(&["ORG_MEMBER"], &[("p1", &["GROUP_DATABASE_ACCESS_ADMIN"])]);
        let p1 = project("p1", "org-a");
        let p2 = project("p2", "org-a");
        assert!(c.require(&p1, &[ProjectRole::DatabaseAccessAdmin]).is_ok());
        assert!(c.require(&p1, &[ProjectRole::ReadOnly]).is_ok());
        assert!(c.require(&p1, &[ProjectRole::Owner]).is_err());
        assert!(!c.can_see(&p2));
        assert!(!c.sees_whole_org());
    }

    #[test]
    fn project_owner_implies_the_other_project_roles() {
        let c = caller(&["ORG_MEMBER"], &[("p1", &["GROUP_OWNER"])]);
        let p1 = project("p1", "org-a");
        for r in [
            ProjectRole::DatabaseAccessAdmin,
            ProjectRole::StreamProcessingOwner,
            ProjectRole::AccessManager,
            ProjectRole::ReadOnly,
        ] {
            assert!(c.require(&p1, &[r]).is_ok(), "{r:?}");
        }
    }

    #[test]
    fn member_sees_nothing_and_org_needs_are_ordered() {
        let c = caller(&["ORG_MEMBER"], &[]);
        assert!(!c.can_see(&project("p1", "org-a")));
        assert!(c.meets_org("org-a", OrgNeed::Member));
        assert!(!c.meets_org("org-a", OrgNeed::ReadOnly));
        assert!(!c.meets_org("org-b", OrgNeed::Member));
        let ro = caller(&["ORG_READ_ONLY"], &[]);
        assert!(ro.meets_org("org-a", OrgNeed::ReadOnly));
        assert!(!ro.meets_org("org-a", OrgNeed::Owner));
    }

    #[test]
    fn unknown_role_names_grant_nothing() {
        assert_eq!(OrgRole::parse("ORG_SUPERUSER"), None);
        assert_eq!(ProjectRole::parse("GROUP_GOD"), None);
        assert_eq!(OrgRole::parse("ORG_BILLING_ADMIN"), Some(OrgRole::Member));
    }
}
