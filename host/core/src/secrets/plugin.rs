//! Per tenant+plugin secrets as a service: validation, sealing, audited changes.
//! Used by the REST endpoints (tenant admins) and the WIT `secrets` interface (the
//! plugin itself). No function here returns a value except [`get`], which only the
//! capability calls.

use serde_json::json;

use super::{Owner, Vault, VaultError};
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::secrets::{self as store, SecretMeta};
use crate::store::{Db, StoreError, time};

/// Largest secret value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most secrets per plugin in a tenant.
pub const MAX_SECRETS: usize = 100;

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name is malformed.
    #[error("secret names are 1–100 characters of A-Z a-z 0-9 . _ -")]
    InvalidName,
    /// The value is too large, or there are too many secrets.
    #[error("{0}")]
    Limit(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encryption failed, or the stored value does not open with this host's key.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Whether `name` is a valid secret name.
pub fn name_ok(name: &str) -> bool {
    (1..=100).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn owner<'a>(tenant: &'a str, plugin: &'a str, name: &'a str) -> Owner<'a> {
    Owner::PluginSecret { tenant, plugin, name }
}

/// Set (create or replace) a secret. Audited as `plugin_secret.set` without the
/// value.
pub async fn set(
    db: &Db,
    vault: &Vault,
    tenant: &str,
    plugin: &str,
    name: &str,
    value: &str,
    actor: &Actor,
) -> Result<(), SecretError> {
    if !name_ok(name) {
        return Err(SecretError::InvalidName);
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(SecretError::Limit("a secret is at most 64 KiB".into()));
    }
    let sealed = vault.seal(owner(tenant, plugin, name), value.as_bytes())?;
    let existing = store::list(db, tenant, plugin).await?;
    if existing.len() >= MAX_SECRETS && !existing.iter().any(|s| s.name == name) {
        return Err(SecretError::Limit(format!(
            "a plugin has at most {MAX_SECRETS} secrets"
        )));
    }
    let now = time::now();
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let created = store::put(&mut tx, tenant, plugin, name, &sealed, vault.key_id(), &now).await?;
    let entity = format!("{plugin}/{name}");
    let after = json!({ "plugin": plugin, "name": name, "created": created });
    let event = NewEvent {
        action: "plugin_secret.set",
        entity_type: "plugin_secret",
        entity_id: Some(&entity),
        before: None,
        after: Some(&after),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Remove a secret; false if it was not set. Audited as `plugin_secret.delete`.
pub async fn delete(db: &Db, tenant: &str, plugin: &str, name: &str, actor: &Actor) -> Result<bool, SecretError> {
    if !name_ok(name) {
        return Err(SecretError::InvalidName);
    }
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let existed = store::delete(&mut tx, tenant, plugin, name).await?;
    if existed {
        let entity = format!("{plugin}/{name}");
        let before = json!({ "plugin": plugin, "name": name });
        let event = NewEvent {
            action: "plugin_secret.delete",
            entity_type: "plugin_secret",
            entity_id: Some(&entity),
            before: Some(&before),
            after: None,
        };
        audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(existed)
}

/// Names and times of a plugin's secrets — never values.
pub async fn list(db: &Db, tenant: &str, plugin: &str) -> Result<Vec<SecretMeta>, SecretError> {
    Ok(store::list(db, tenant, plugin).await?)
}

/// A secret's value, for the plugin itself (the WIT `secrets` capability).
pub async fn get(
    db: &Db,
    vault: &Vault,
    tenant: &str,
    plugin: &str,
    name: &str,
) -> Result<Option<String>, SecretError> {
    if !name_ok(name) {
        return Err(SecretError::InvalidName);
    }
    let Some((sealed, key_id)) = store::get(db, tenant, plugin, name).await? else {
        return Ok(None);
    };
    match vault.open_string(owner(tenant, plugin, name), &sealed) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            tracing::error!(
                %tenant, %plugin, secret = %name, stored_key = %key_id, current_key = %vault.key_id(),
                "a plugin secret does not decrypt: was the secret key changed?"
            );
            Err(e.into())
        }
    }
}
