//! Tenants, users and API keys: creating them (audited, in one transaction) and
//! the secrets involved. API keys and operator tokens are 256 random bits, shown
//! once, stored only as SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::store::audit::{self, Actor, NewEvent};
use crate::store::tenancy::{self, ApiKey, NewKey, Tenant, User};
use crate::store::{Db, StoreResult};

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
/// tenant's ledger, all in one transaction.
pub async fn create_tenant(
    db: &Db,
    name: &str,
    owner_email: &str,
    owner_name: &str,
    default_api_version: &str,
    actor: &Actor,
) -> StoreResult<CreatedTenant> {
    let mut tx = db.writer().begin().await?;
    let tenant = tenancy::insert_tenant(&mut tx, name, default_api_version).await?;
    let owner = tenancy::insert_user(&mut tx, &tenant.id, owner_email, owner_name, "owner").await?;
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
    NewEvent {
        action,
        entity_type,
        entity_id: Some(id),
        before: None,
        after: Some(after),
    }
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
