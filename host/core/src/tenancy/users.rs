//! User services: create and change users, with the role rules that stop privilege
//! escalation and the rule that a tenant always keeps an active owner. Each change
//! appends exactly one audit event in its transaction.
//!
//! Role rules: owners may grant any role and manage anyone; an admin may grant only
//! roles below admin and manage only users below admin (so no admin can make an
//! owner, touch an owner, or mint a key that acts as one).

use super::error::{TenancyError, TenancyResult};
use super::validate::{self, Problems};
use super::{Caller, event, snapshot};
use crate::manifest::Role;
use crate::store::Db;
use crate::store::audit::{self, Actor};
use crate::store::tenancy::{self as store, User};

/// User statuses.
pub const STATUSES: [&str; 2] = ["active", "disabled"];

/// Whether `caller` may give someone `role`.
pub fn can_grant(caller: Role, role: Role) -> bool {
    caller == Role::Owner || (caller.at_least(Role::Admin) && role < caller)
}

/// Whether `caller` may change (or act as, through a key) a user holding `target`.
pub fn can_manage(caller: Role, target: Role) -> bool {
    caller == Role::Owner || (caller.at_least(Role::Admin) && target < caller)
}

fn parse_role(raw: &str) -> Result<Role, String> {
    raw.parse::<Role>().map_err(|e| e.to_string())
}

fn parse_status(raw: &str) -> Result<String, String> {
    if STATUSES.contains(&raw) {
        Ok(raw.to_string())
    } else {
        Err("must be `active` or `disabled`".into())
    }
}

fn stored_role(u: &User) -> TenancyResult<Role> {
    u.role.parse::<Role>().map_err(|_| {
        TenancyError::Store(crate::store::StoreError::Corrupt(format!(
            "user {} has role {}",
            u.id, u.role
        )))
    })
}

/// Create a user (`admin` or higher; the role must be grantable by the caller).
pub async fn create_user(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    caller: Caller<'_>,
    email: &str,
    name: &str,
    role: &str,
) -> TenancyResult<User> {
    let mut problems = Problems::default();
    let email = problems.check("email", validate::email(email));
    let name = problems.check("name", validate::name(name));
    let role = problems.check("role", parse_role(role));
    problems.finish()?;
    let (Some(email), Some(name), Some(role)) = (email, name, role) else {
        return Err(TenancyError::invalid("body", "invalid user"));
    };
    if !caller.role.at_least(Role::Admin) {
        return Err(TenancyError::Forbidden(
            "creating users needs the admin role or higher".into(),
        ));
    }
    if !can_grant(caller.role, role) {
        return Err(TenancyError::Forbidden(format!(
            "a user with the {} role cannot create {role} users; only owners grant the owner and admin roles",
            caller.role
        )));
    }
    let mut tx = db.writer().begin().await?;
    let user = store::insert_user(&mut tx, tenant, &email, &name, role.as_str()).await?;
    let after = snapshot(&user);
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event("user.create", "user", &user.id, None, Some(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// A change to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// New display name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<String>,
    /// New status (`active` or `disabled`).
    pub status: Option<String>,
}

/// Change a user's name, role or status. Callers need `admin` or higher and may change
/// only users they manage (themselves included, within what they may grant); the last
/// active owner cannot be demoted or disabled. No change → no version bump or event.
/// Audited as `user.disable` when the user is being disabled, else `user.update`.
/// The caller must clear cached API-key resolutions afterwards (role or status may
/// have changed).
pub async fn update_user(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    caller: Caller<'_>,
    id: &str,
    if_match: Option<i64>,
    patch: UserPatch,
) -> TenancyResult<User> {
    let mut problems = Problems::default();
    let name = patch
        .name
        .as_deref()
        .and_then(|n| problems.check("name", validate::name(n)));
    let role = patch
        .role
        .as_deref()
        .and_then(|r| problems.check("role", parse_role(r)));
    let status = patch
        .status
        .as_deref()
        .and_then(|s| problems.check("status", parse_status(s)));
    problems.finish()?;
    if !caller.role.at_least(Role::Admin) {
        return Err(TenancyError::Forbidden(
            "changing users needs the admin role or higher".into(),
        ));
    }
    let mut tx = db.writer().begin().await?;
    let before = store::lock_user(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("user {id} not found")))?;
    if if_match.is_some_and(|v| v != before.version) {
        return Err(TenancyError::VersionMismatch {
            current: before.version,
        });
    }
    let current_role = stored_role(&before)?;
    let new_role = role.unwrap_or(current_role);
    let new_status = status.unwrap_or_else(|| before.status.clone());
    let new_name = name.unwrap_or_else(|| before.name.clone());
    if new_role == current_role && new_status == before.status && new_name == before.name {
        return Ok(before);
    }
    let is_self = before.id == caller.user_id;
    if !is_self && !can_manage(caller.role, current_role) {
        return Err(TenancyError::Forbidden(format!(
            "a user with the {} role cannot change a user with the {current_role} role",
            caller.role
        )));
    }
    if new_role != current_role && !can_grant(caller.role, new_role) {
        return Err(TenancyError::Forbidden(format!(
            "a user with the {} role cannot grant the {new_role} role",
            caller.role
        )));
    }
    let loses_ownership =
        current_role == Role::Owner && before.status == "active" && (new_role != Role::Owner || new_status != "active");
    if loses_ownership {
        let owners = store::lock_active_owners(&mut tx, tenant).await?;
        if owners.iter().all(|o| *o == before.id) {
            return Err(TenancyError::LastOwner(format!(
                "user {id} is the tenant's last active owner; make another user owner first"
            )));
        }
    }
    let after = store::update_user(&mut tx, tenant, id, &new_name, new_role.as_str(), &new_status).await?;
    let action = if new_status == "disabled" && before.status != "disabled" {
        "user.disable"
    } else {
        "user.update"
    };
    let (b, a) = (snapshot(&before), snapshot(&after));
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event(action, "user", id, Some(&b), Some(&a)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_grant_owner_and_admin() {
        assert!(can_grant(Role::Owner, Role::Owner));
        assert!(can_grant(Role::Owner, Role::Admin));
        assert!(!can_grant(Role::Admin, Role::Admin));
        assert!(!can_grant(Role::Admin, Role::Owner));
        assert!(can_grant(Role::Admin, Role::Manager));
        assert!(!can_grant(Role::Manager, Role::Member));
        assert!(!can_manage(Role::Admin, Role::Owner));
        assert!(!can_manage(Role::Admin, Role::Admin));
        assert!(can_manage(Role::Admin, Role::ReadOnly));
        assert!(can_manage(Role::Owner, Role::Owner));
        assert!(!can_manage(Role::Member, Role::ReadOnly));
    }
}
