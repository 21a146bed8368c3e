//! A person's roles follow their groups: the provider's rules map groups to organisation
//! administrator and to project roles, applied at each sign-in and refresh. A provider with no
//! rules leaves roles to KMS's administrators. A lost role ends the sessions it allowed, like any
//! revocation (cause `role_changed` or `membership_removed`).

use std::collections::BTreeMap;

use crate::kms::api::{GroupRule, ProjectRole, RoleTarget};
use crate::server::edge::error::ApiError;
use crate::server::edge::state::{now, AppState};
use crate::server::lifecycle::ending::end_sessions;
use crate::server::store::{ActiveSessions, StoreError, UserRecord};
use crate::session::EndCause;

/// What a person's groups give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    /// Organisation administrator.
    pub(crate) admin: bool,
    /// A role per project name.
    pub(crate) projects: BTreeMap<String, ProjectRole>,
}

/// Rank when several groups give one project different roles: administrator, then member,
/// then auditor.
fn rank(role: ProjectRole) -> u8 {
    match role {
        ProjectRole::Admin => 3,
        ProjectRole::Member => 2,
        ProjectRole::Auditor => 1,
        _ => 0,
    }
}

/// The roles `groups` earn under `rules`.
pub(crate) fn roles_for(rules: &[GroupRule], groups: &[String]) -> Roles {
    let mut roles = Roles::default();
    for rule in rules.iter().filter(|r| groups.contains(&r.group)) {
        match &rule.target {
            RoleTarget::OrgAdmin => roles.admin = true,
            RoleTarget::Project { project, role } => {
                let entry = roles.projects.entry(project.clone()).or_insert(*role);
                if rank(*role) > rank(*entry) {
                    *entry = *role;
                }
            }
        }
    }
    roles
}

/// Makes `user`'s roles `wanted` and ends the sessions a lost role allowed. Projects the rules
/// name that do not exist are skipped (logged). Returns the user as they now are.
pub(crate) async fn apply(
    state: &AppState,
    user: &UserRecord,
    wanted: &Roles,
    by: &str,
) -> Result<UserRecord, ApiError> {
    if user.admin != wanted.admin {
        state.store.set_user_admin(&user.id, wanted.admin).await?;
        tracing::info!(user = %user.name, admin = wanted.admin, %by, "organisation administrator set from groups");
    }
    let had_admin = user.admin;
    let current = state.store.memberships(&user.id).await?;
    let mut losses: Vec<(String, EndCause, bool)> = Vec::new();
    for (project, role) in &current {
        if !wanted.projects.contains_key(&project.name) {
            match state.store.remove_member(&project.id, &user.id).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(user = %user.name, project = %project.name, role = %role, %by, "membership removed: no group gives it");
            losses.push((project.id.clone(), EndCause::MembershipRemoved, false));
        }
    }
    for (name, role) in &wanted.projects {
        let project = match state.store.project(name).await {
            Ok(project) => project,
            Err(StoreError::NotFound(_)) => {
                tracing::warn!(project = %name, user = %user.name, "a group rule names a project that does not exist; skipped");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let previous = current
            .iter()
            .find(|(p, _)| p.id == project.id)
            .map(|(_, r)| *r);
        if previous == Some(*role) {
            continue;
        }
        state
            .store
            .set_member(&project.id, &user.id, *role, now())
            .await?;
        tracing::info!(user = %user.name, project = %name, role = %role, %by, "membership set from groups");
        match (previous.or(had_admin.then_some(ProjectRole::Admin)), role) {
            (Some(ProjectRole::Admin), ProjectRole::Member) => {
                losses.push((project.id.clone(), EndCause::RoleChanged, true));
            }
            (Some(_), ProjectRole::Auditor) => {
                losses.push((project.id.clone(), EndCause::RoleChanged, false));
            }
            _ => {}
        }
    }
    // An administrator keeps every right whatever the memberships say; one who just lost it
    // loses the sessions their role in each project no longer allows: all of them where they
    // are no member or an auditor, those no grant allowed where they are a member (whether or
    // not they were a member already: as an administrator they needed no grant).
    if had_admin && !wanted.admin {
        for project in state.store.projects().await? {
            match wanted.projects.get(&project.name) {
                Some(ProjectRole::Admin) => {}
                Some(ProjectRole::Member) => {
                    losses.push((project.id.clone(), EndCause::RoleChanged, true));
                }
                _ => losses.push((project.id.clone(), EndCause::RoleChanged, false)),
            }
        }
    }
    if !wanted.admin {
        for (project_id, cause, without_grant_only) in losses {
            let which = ActiveSessions {
                project_id: Some(project_id),
                user_id: Some(user.id.clone()),
                without_grant: without_grant_only,
                ..ActiveSessions::default()
            };
            end_sessions(state, which, cause, by).await?;
        }
    }
    Ok(state.store.user_by_name(&user.name).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> GroupRule {
        text.parse().unwrap()
    }

    #[test]
    fn groups_map_to_the_highest_role_per_project_and_admin() {
        let rules = [
            rule("k8s-admins=org-admin"),
            rule("sre=prod:admin"),
            rule("dev=prod:member"),
            rule("audit=prod:auditor"),
            rule("dev=staging:member"),
        ];
        let of = |groups: &[&str]| {
            roles_for(
                &rules,
                &groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            )
        };
        let roles = of(&["dev", "audit"]);
        assert!(!roles.admin);
        assert_eq!(roles.projects["prod"], ProjectRole::Member);
        assert_eq!(roles.projects["staging"], ProjectRole::Member);
        assert_eq!(of(&["audit", "sre"]).projects["prod"], ProjectRole::Admin);
        assert!(of(&["k8s-admins"]).admin);
        assert_eq!(of(&["unknown"]), Roles::default());
        assert_eq!(of(&[]), Roles::default());
    }
}
