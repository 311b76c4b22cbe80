//! Publishers and their keys (operator actions): register, add a key (rotation),
//! retire a key (it signs nothing new; what it signed stays valid), revoke a key
//! (everything it signed becomes untrusted: installed versions signed by it are
//! disabled in every tenant at once, audited in each tenant's ledger), and issue
//! upload tokens.

use serde_json::json;

use plinth_core::package::PublicKey;
use plinth_core::store::audit::{self, Actor, NewEvent};
use plinth_core::store::installations::state;
use plinth_core::store::marketplace::Publisher;
use plinth_core::store::{Db, StoreError, StoreResult};
use plinth_core::tenancy::{hash_secret, new_secret};

/// Prefix of publisher upload tokens.
pub const TOKEN_PREFIX: &str = "plp_";

/// Whether `id` is a valid publisher id (same rule as plugin ids).
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (2..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !id.ends_with('-')
        && !id.contains("--")
}

/// Register a publisher, optionally with its first key.
pub async fn register(db: &Db, id: &str, display_name: &str, key: Option<&PublicKey>) -> StoreResult<Publisher> {
    if !valid_id(id) {
        return Err(StoreError::Invalid(
            "a publisher id is 2–64 characters of a-z, 0-9 and single hyphens, starting with a letter".into(),
        ));
    }
    db.insert_publisher(id, display_name).await?;
    if let Some(key) = key {
        db.insert_publisher_key(id, key.key_id().as_str(), &key.to_text())
            .await?;
    }
    db.publisher(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("publisher {id}")))
}

/// Add a key to a publisher (key rotation: several keys may be active).
pub async fn add_key(db: &Db, publisher: &str, key: &PublicKey) -> StoreResult<Publisher> {
    let p = db
        .publisher(publisher)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no publisher `{publisher}`")))?;
    db.insert_publisher_key(&p.id, key.key_id().as_str(), &key.to_text())
        .await?;
    db.publisher(publisher)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("publisher {publisher}")))
}

/// Retire a key: it may no longer sign new packages; its packages stay installable.
pub async fn retire_key(db: &Db, publisher: &str, key_id: &str) -> StoreResult<Publisher> {
    let p = db
        .publisher(publisher)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no publisher `{publisher}`")))?;
    let key = p
        .keys
        .iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| StoreError::NotFound(format!("no key {key_id}")))?;
    if key.status == "revoked" {
        return Err(StoreError::Conflict(format!("key {key_id} is revoked")));
    }
    db.set_key_status(publisher, key_id, "retired").await?;
    db.publisher(publisher)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("publisher {publisher}")))
}

/// What a revocation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Revocation {
    /// The publisher.
    pub publisher: String,
    /// The key.
    pub key_id: String,
    /// Package digests signed by it.
    pub packages: Vec<String>,
    /// `(tenant, plugin, version)` installations disabled.
    pub disabled: Vec<(String, String, String)>,
}

/// Revoke a key: its packages can no longer be published or installed, and installed
/// versions signed by it are disabled in every tenant, each audited there. A running
/// host then drops what it cached of them ([`crate::plugins::PluginHost::forget_revoked`]); other
/// hosts notice within [`crate::plugins::CACHE_TTL`].
pub async fn revoke_key(db: &Db, publisher: &str, key_id: &str) -> StoreResult<Revocation> {
    let p = db
        .publisher(publisher)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no publisher `{publisher}`")))?;
    if !p.keys.iter().any(|k| k.key_id == key_id) {
        return Err(StoreError::NotFound(format!(
            "publisher `{publisher}` has no key {key_id}"
        )));
    }
    db.set_key_status(publisher, key_id, "revoked").await?;
    let packages = db.packages_signed_by(key_id).await?;
    let mut disabled = Vec::new();
    for installation in db.installations_of_digests(&packages).await? {
        if installation.state == state::UNINSTALLED || installation.state == state::REVOKED {
            continue;
        }
        let mut tx = db.writer().begin().await?;
        let after = plinth_core::store::installations::Installation {
            state: state::REVOKED.into(),
            ..installation.clone()
        };
        if !db.update_installation(&mut tx, &after).await? {
            continue;
        }
        let before_json =
            json!({ "plugin": installation.plugin_id, "version": installation.version, "state": installation.state });
        let after_json =
            json!({ "plugin": after.plugin_id, "version": after.version, "state": after.state, "revoked_key": key_id });
        let event = NewEvent {
            action: "plugin.revoked",
            entity_type: "plugin",
            entity_id: Some(&installation.plugin_id),
            before: Some(&before_json),
            after: Some(&after_json),
        };
        let recorded = audit::append(&mut tx, db.dialect(), &installation.tenant_id, &Actor::system(), event).await?;
        // Every affected tenant gets an alert (listed with the audit alerts).
        let alert = plinth_core::store::audit_policy::AlertRow {
            id: ulid::Ulid::new().to_string(),
            policy_id: "host:key-revocation".into(),
            policy_name: "Publisher key revoked".into(),
            kind: "key-revocation".into(),
            event_seq: recorded.seq,
            event_id: recorded.id.clone(),
            event_at: recorded.occurred_at.clone(),
            actor: None,
            message: format!(
                "{} {} was disabled: publisher `{publisher}` revoked the key {key_id} that signed it",
                installation.plugin_id, installation.version
            ),
            created_at: plinth_core::store::time::now(),
            acknowledged_at: None,
            acknowledged_by: None,
        };
        plinth_core::store::audit_policy::insert_alert(&mut tx, &installation.tenant_id, &alert).await?;
        tx.commit().await?;
        tracing::warn!(tenant = %installation.tenant_id, plugin = %installation.plugin_id, %key_id, "installed version disabled: its signing key was revoked");
        disabled.push((installation.tenant_id, installation.plugin_id, installation.version));
    }
    Ok(Revocation {
        publisher: publisher.into(),
        key_id: key_id.into(),
        packages,
        disabled,
    })
}

/// Issue an upload token for a publisher; the secret is returned once.
pub async fn issue_token(db: &Db, publisher: &str) -> StoreResult<String> {
    db.publisher(publisher)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no publisher `{publisher}`")))?;
    let secret = new_secret(TOKEN_PREFIX);
    db.insert_publisher_token(publisher, &secret.hash).await?;
    Ok(secret.plaintext)
}

/// The publisher an upload token belongs to.
pub async fn publisher_for_token(db: &Db, token: &str) -> StoreResult<Option<String>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    db.publisher_for_token(&hash_secret(token)).await
}
