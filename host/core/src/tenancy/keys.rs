//! API key services: create (the secret is returned once and only its SHA-256 is
//! stored) and revoke, each audited. Who may do what:
//! - any user but `read-only` creates and revokes keys for themselves;
//! - admins and owners create and revoke keys of the users they manage (see
//!   [`super::users::can_manage`]) — an admin can therefore never mint a key that
//!   acts as an owner or another admin.

use serde::Serialize;

use super::error::{TenancyError, TenancyResult};
use super::users::can_manage;
use super::validate::{self, Problems};
use super::{Caller, KEY_PREFIX, display_prefix, event, new_secret, snapshot};
use crate::manifest::Role;
use crate::store::Db;
use crate::store::audit::{self, Actor};
use crate::store::tenancy::{self as store, ApiKey, NewKey};

/// A new key: its metadata and its secret (shown once, never stored).
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    /// Metadata.
    pub key: ApiKey,
    /// The secret, `plk_…`.
    pub secret: String,
}

/// What a new key should look like.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest<'a> {
    /// Name (1–200 characters).
    pub name: &'a str,
    /// The user it acts as (the caller when `None`).
    pub user_id: Option<&'a str>,
    /// Expiry, RFC 3339, in the future.
    pub expires_at: Option<&'a str>,
    /// API version to pin requests made with the key to.
    pub api_version: Option<&'a str>,
}

fn role_of(role: &str, user: &str) -> TenancyResult<Role> {
    role.parse::<Role>().map_err(|_| {
        TenancyError::Store(crate::store::StoreError::Corrupt(format!(
            "user {user} has role {role}"
        )))
    })
}

/// Create a key for the caller or, for admins, for a user they manage.
pub async fn create_key(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    caller: Caller<'_>,
    req: KeyRequest<'_>,
) -> TenancyResult<CreatedKey> {
    let mut problems = Problems::default();
    let name = problems.check("name", validate::name(req.name));
    let expires_at = req
        .expires_at
        .and_then(|t| problems.check("expires_at", validate::future_time(t)));
    let api_version = req
        .api_version
        .and_then(|v| problems.check("api_version", validate::api_version(v)));
    problems.finish()?;
    let name = name.unwrap_or_default();
    if caller.role == Role::ReadOnly {
        return Err(TenancyError::Forbidden("read-only users cannot create API keys".into()));
    }
    let target = req.user_id.unwrap_or(caller.user_id);
    let for_other = target != caller.user_id;
    if for_other && !caller.role.at_least(Role::Admin) {
        return Err(TenancyError::Forbidden(
            "only admins and owners create keys for other users".into(),
        ));
    }
    let mut tx = db.writer().begin().await?;
    let user = store::lock_user(&mut tx, tenant, target)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("user {target} not found")))?;
    if for_other && !can_manage(caller.role, role_of(&user.role, &user.id)?) {
        return Err(TenancyError::Forbidden(format!(
            "a user with the {} role cannot create keys for a user with the {} role",
            caller.role, user.role
        )));
    }
    if user.status != "active" {
        return Err(TenancyError::Conflict(format!("user {target} is disabled")));
    }
    let secret = new_secret(KEY_PREFIX);
    let key = store::insert_key(
        &mut tx,
        tenant,
        NewKey {
            user_id: &user.id,
            name: &name,
            secret_hash: &secret.hash,
            prefix: &display_prefix(&secret.plaintext),
            api_version: api_version.as_deref(),
            created_by: Some(caller.user_id),
            expires_at: expires_at.as_deref(),
        },
    )
    .await?;
    let after = snapshot(&key);
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event("api_key.create", "api_key", &key.id, None, Some(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedKey {
        key,
        secret: secret.plaintext,
    })
}

/// Whether `caller` may see the key at all (its own, or any key for admins).
pub fn can_see(caller: Caller<'_>, key: &ApiKey) -> bool {
    key.user_id == caller.user_id || caller.role.at_least(Role::Admin)
}

/// Revoke a key now. Keys the caller may not see are not found; already revoked is a
/// conflict. The caller must clear cached key resolutions afterwards.
pub async fn revoke_key(db: &Db, tenant: &str, actor: &Actor, caller: Caller<'_>, id: &str) -> TenancyResult<ApiKey> {
    let mut tx = db.writer().begin().await?;
    let before = store::key(&mut tx, tenant, id)
        .await?
        .filter(|k| can_see(caller, k))
        .ok_or_else(|| TenancyError::NotFound(format!("API key {id} not found")))?;
    if caller.role == Role::ReadOnly {
        return Err(TenancyError::Forbidden("read-only users cannot revoke API keys".into()));
    }
    if before.user_id != caller.user_id {
        let user = store::lock_user(&mut tx, tenant, &before.user_id)
            .await?
            .ok_or_else(|| TenancyError::NotFound(format!("API key {id} not found")))?;
        if !can_manage(caller.role, role_of(&user.role, &user.id)?) {
            return Err(TenancyError::Forbidden(format!(
                "a user with the {} role cannot revoke keys of a user with the {} role",
                caller.role, user.role
            )));
        }
    }
    let after = store::revoke_key(&mut tx, tenant, id).await?;
    let (b, a) = (snapshot(&before), snapshot(&after));
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event("api_key.revoke", "api_key", id, Some(&b), Some(&a)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}
