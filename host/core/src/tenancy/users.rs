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

/// Who a user reports to and how their work is shown. In a [`UserPatch`] an absent
/// field (`None`) stays as it is and `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The user they report to (same tenant; no cycles).
    pub manager_id: Option<String>,
    /// Language tag (`de-DE`).
    pub locale: Option<String>,
    /// IANA time zone (`Europe/Berlin`).
    pub time_zone: Option<String>,
}

/// Create a user (`admin` or higher; the role must be grantable by the caller), with
/// their `profile`.
#[allow(clippy::too_many_arguments)]
pub async fn create_user(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    caller: Caller<'_>,
    email: &str,
    name: &str,
    role: &str,
    profile: &Profile,
) -> TenancyResult<User> {
    let mut problems = Problems::default();
    let email = problems.check("email", validate::email(email));
    let name = problems.check("name", validate::name(name));
    let role = problems.check("role", parse_role(role));
    let locale = profile
        .locale
        .as_deref()
        .and_then(|l| problems.check("locale", validate::locale(l)));
    let time_zone = profile
        .time_zone
        .as_deref()
        .and_then(|z| problems.check("time_zone", validate::time_zone(z)));
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
    let mut user = store::insert_user(&mut tx, tenant, &email, &name, role.as_str()).await?;
    if profile.manager_id.is_some() || locale.is_some() || time_zone.is_some() {
        if let Some(manager) = &profile.manager_id {
            check_manager(&mut tx, tenant, &user.id, manager).await?;
        }
        let next = User {
            manager_id: profile.manager_id.clone(),
            locale,
            time_zone,
            ..user
        };
        // The insert and this one write happen in one transaction: the user is
        // created at version 2, which nobody has seen at version 1.
        user = store::update_user(&mut tx, &next).await?;
    }
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
    /// New manager (`Some(None)` clears it).
    pub manager_id: Option<Option<String>>,
    /// New locale (`Some(None)` clears it).
    pub locale: Option<Option<String>>,
    /// New time zone (`Some(None)` clears it).
    pub time_zone: Option<Option<String>>,
}

/// Change a user's name, role, status, manager, locale or time zone. Callers need
/// `admin` or higher and may change
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
    let locale = patch.locale.clone().map(|l| match l {
        Some(l) => problems.check("locale", validate::locale(&l)),
        None => None,
    });
    let time_zone = patch.time_zone.clone().map(|z| match z {
        Some(z) => problems.check("time_zone", validate::time_zone(&z)),
        None => None,
    });
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
    let next = User {
        name: new_name,
        role: new_role.as_str().to_string(),
        status: new_status.clone(),
        manager_id: patch.manager_id.clone().unwrap_or_else(|| before.manager_id.clone()),
        locale: locale.unwrap_or_else(|| before.locale.clone()),
        time_zone: time_zone.unwrap_or_else(|| before.time_zone.clone()),
        ..before.clone()
    };
    if next == before {
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
    if let Some(manager) = next.manager_id.as_deref()
        && before.manager_id.as_deref() != Some(manager)
    {
        check_manager(&mut tx, tenant, id, manager).await?;
    }
    let after = store::update_user(&mut tx, &next).await?;
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

/// `manager` may manage `user`: a user of the tenant, and not `user` nor anyone below
/// `user` (the chain up from `manager` must not reach `user`). Changes of managers
/// take the tenant's row lock first (PostgreSQL), so two concurrent changes cannot
/// each pass this check and together close a loop.
async fn check_manager(tx: &mut crate::store::Tx<'_>, tenant: &str, user: &str, manager: &str) -> TenancyResult<()> {
    store::lock_tenant(tx, tenant).await?;
    if store::lock_user(tx, tenant, manager).await?.is_none() {
        return Err(TenancyError::invalid(
            "manager_id",
            format!("there is no user {manager} in this tenant"),
        ));
    }
    let chain = store::manager_chain(tx, tenant, manager, store::MAX_CHAIN).await?;
    let mut path = vec![manager.to_string()];
    if manager != user {
        match chain.iter().position(|u| u.id == user) {
            None => return Ok(()),
            Some(at) => path.extend(chain[..=at].iter().map(|u| u.id.clone())),
        }
    }
    Err(TenancyError::ManagerCycle {
        user: user.to_string(),
        manager: manager.to_string(),
        path,
    })
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
