//! Tenancy and identity services: tenants, users, API keys, hierarchical groups,
//! memberships and record shares. Every change is validated, checked against the
//! caller's role, and appended to the tenant's audit ledger in the same transaction
//! (no change without its event). API keys and operator tokens are 256 random bits,
//! shown once, stored only as SHA-256.
//!
//! The REST handlers (`api::tenancy`, `api::groups`, `api::operator`) and the WIT
//! `sharing` capability call these services; SQL stays in `store`.

mod error;
pub mod groups;
pub mod keys;
pub mod shares;
pub mod tenants;
pub mod users;
pub mod validate;

pub use error::{TenancyError, TenancyResult};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::manifest::Role;
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::tenancy::{self, ApiKey, NewKey, Tenant, User};
use crate::store::{Db, StoreResult};
use validate::Problems;

/// The authenticated user a service acts for, for its role checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// The user.
    pub user_id: &'a str,
    /// Their tenant role.
    pub role: Role,
}

/// The JSON snapshot of an entity for audit `before`/`after` (never holds secrets:
/// the types snapshotted here have none).
pub(crate) fn snapshot<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// An audit event about one entity.
pub(crate) fn event<'a>(
    action: &'a str,
    entity_type: &'a str,
    entity_id: &'a str,
    before: Option<&'a serde_json::Value>,
    after: Option<&'a serde_json::Value>,
) -> NewEvent<'a> {
    NewEvent {
        action,
        entity_type,
        entity_id: Some(entity_id),
        before,
        after,
    }
}

/// Prefix of API key secrets (so leaked keys are recognisable by scanners).
pub const KEY_PREFIX: &str = "plk_";
/// Prefix of operator token secrets.
pub const OPERATOR_PREFIX: &str = "plo_";

/// A freshly generated secret: the plaintext (to show once) and its hash (to store).
#[derive(Debug, Clone)]
pub struct Secret {
    /// Shown to the user once, never stored.
    pub plaintext: String,
    /// SHA-256 hex of the plaintext.
    pub hash: String,
}

/// Generate a secret `<prefix><43 chars of base64url>` from 32 random bytes.
pub fn new_secret(prefix: &str) -> Secret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let plaintext = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&plaintext);
    Secret { plaintext, hash }
}

/// SHA-256 hex of a presented secret, the form it is looked up by.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The display prefix of a key: enough to recognise it, useless to an attacker.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(KEY_PREFIX.len() + 6).collect()
}

/// The result of creating a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Its owner user.
    pub owner: User,
    /// The owner's first API key (metadata).
    pub key: ApiKey,
    /// The key's secret — shown once.
    pub api_key: String,
}

/// Create a tenant with an owner user and an API key for them, audited in the new
/// tenant's ledger (`tenant.create`, `user.create`, `api_key.create`), all in one
/// transaction. Names and the email are validated (fields `name`, `owner_email`,
/// `owner_name`, `default_api_version`).
pub async fn create_tenant(
    db: &Db,
    name: &str,
    owner_email: &str,
    owner_name: &str,
    default_api_version: &str,
    actor: &Actor,
) -> TenancyResult<CreatedTenant> {
    let mut problems = Problems::default();
    let name = problems.check("name", validate::name(name));
    let owner_email = problems.check("owner_email", validate::email(owner_email));
    let owner_name = problems.check("owner_name", validate::name(owner_name));
    problems.check("default_api_version", validate::api_version(default_api_version));
    problems.finish()?;
    let (Some(name), Some(owner_email), Some(owner_name)) = (name, owner_email, owner_name) else {
        return Err(TenancyError::invalid("body", "invalid tenant"));
    };
    let mut tx = db.writer().begin().await?;
    let tenant = tenancy::insert_tenant(&mut tx, &name, default_api_version).await?;
    let owner = tenancy::insert_user(&mut tx, &tenant.id, &owner_email, &owner_name, "owner").await?;
    let secret = new_secret(KEY_PREFIX);
    let key = tenancy::insert_key(
        &mut tx,
        &tenant.id,
        NewKey {
            user_id: &owner.id,
            name: "owner key",
            secret_hash: &secret.hash,
            prefix: &display_prefix(&secret.plaintext),
            api_version: None,
            created_by: None,
            expires_at: None,
        },
    )
    .await?;
    let d = db.dialect();
    let tenant_json = serde_json::to_value(&tenant).unwrap_or_default();
    audit::append(
        &mut tx,
        d,
        &tenant.id,
        actor,
        created("tenant.create", "tenant", &tenant.id, &tenant_json),
    )
    .await?;
    let owner_json = serde_json::to_value(&owner).unwrap_or_default();
    audit::append(
        &mut tx,
        d,
        &tenant.id,
        actor,
        created("user.create", "user", &owner.id, &owner_json),
    )
    .await?;
    let key_json = serde_json::to_value(&key).unwrap_or_default();
    audit::append(
        &mut tx,
        d,
        &tenant.id,
        actor,
        created("api_key.create", "api_key", &key.id, &key_json),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedTenant {
        tenant,
        owner,
        key,
        api_key: secret.plaintext,
    })
}

fn created<'a>(action: &'a str, entity_type: &'a str, id: &'a str, after: &'a serde_json::Value) -> NewEvent<'a> {
    event(action, entity_type, id, None, Some(after))
}

/// Create an operator token; returns the secret (shown once).
pub async fn create_operator_token(db: &Db) -> StoreResult<String> {
    let secret = new_secret(OPERATOR_PREFIX);
    db.insert_operator_token(&secret.hash).await?;
    Ok(secret.plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_hashed() {
        let a = new_secret(KEY_PREFIX);
        let b = new_secret(KEY_PREFIX);
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with("plk_"));
        assert_eq!(a.plaintext.len(), 4 + 43);
        assert_eq!(a.hash, hash_secret(&a.plaintext));
        assert_eq!(a.hash.len(), 64);
        assert!(!display_prefix(&a.plaintext).contains(&a.plaintext[10..]));
    }
}
