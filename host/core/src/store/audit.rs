//! The audit ledger's storage: append within the caller's transaction, extending the
//! tenant's hash chain, plus the canonical form every hash is computed over.
//!
//! Chain: `hash = SHA-256("plinth-audit-v1\n" ‖ canonical(event))`, where the
//! canonical form is a JSON array of every stored column in a fixed order, including
//! `prev_hash` (the previous event's hash; 64 zeros for a tenant's first event).
//! Altering any stored column of any event therefore breaks the chain at that event.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::Row;

use super::{Dialect, StoreError, StoreResult, time};

/// The `prev_hash` of a tenant's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something, as recorded in audit events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The user, if any.
    pub user_id: Option<String>,
    /// The API key used, if any.
    pub key_id: Option<String>,
    /// The plugin, as `id@version`, when a plugin made the change.
    pub plugin: Option<String>,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// The API version of that request.
    pub api_version: Option<String>,
    /// The client (`X-Client-Name` or `User-Agent`).
    pub client: Option<String>,
}

impl Actor {
    /// The host itself (migrations, schedulers, operator CLI).
    pub fn system() -> Actor {
        Actor {
            client: Some("plinth".into()),
            ..Actor::default()
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent<'a> {
    /// What happened: `record.create`, `user.update`, `key.revoke`, `plugin.install`…
    pub action: &'a str,
    /// What kind of thing: `record:opportunity`, `user`, `api_key`, `group`…
    pub entity_type: &'a str,
    /// Which one.
    pub entity_id: Option<&'a str>,
    /// State before (`None` for creations).
    pub before: Option<&'a serde_json::Value>,
    /// State after (`None` for deletions).
    pub after: Option<&'a serde_json::Value>,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Tenant.
    pub tenant_id: String,
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    /// Unique id.
    pub id: String,
    /// When (RFC 3339, ms, UTC).
    pub occurred_at: String,
    /// Acting user.
    pub actor_user: Option<String>,
    /// Acting API key.
    pub actor_key: Option<String>,
    /// Acting plugin (`id@version`).
    pub actor_plugin: Option<String>,
    /// Action.
    pub action: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Option<String>,
    /// JSON state before.
    pub before_state: Option<String>,
    /// JSON state after.
    pub after_state: Option<String>,
    /// JSON array of changed top-level field names.
    pub changed_fields: String,
    /// Request id.
    pub request_id: Option<String>,
    /// API version.
    pub api_version: Option<String>,
    /// Client.
    pub client: Option<String>,
    /// Previous event's hash.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

impl AuditEvent {
    /// The canonical bytes the hash covers.
    pub fn canonical(&self) -> Vec<u8> {
        let fields = serde_json::json!([
            self.tenant_id,
            self.seq,
            self.id,
            self.occurred_at,
            self.actor_user,
            self.actor_key,
            self.actor_plugin,
            self.action,
            self.entity_type,
            self.entity_id,
            self.before_state,
            self.after_state,
            self.changed_fields,
            self.request_id,
            self.api_version,
            self.client,
            self.prev_hash,
        ]);
        let mut bytes = b"plinth-audit-v1\n".to_vec();
        bytes.extend_from_slice(fields.to_string().as_bytes());
        bytes
    }

    /// The hash this event should carry, recomputed from its contents.
    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical()))
    }

    /// Decode a row selected with [`EVENT_COLUMNS`].
    pub fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<AuditEvent> {
        Ok(AuditEvent {
            tenant_id: r.try_get("tenant_id")?,
            seq: r.try_get("seq")?,
            id: r.try_get("id")?,
            occurred_at: r.try_get("occurred_at")?,
            actor_user: r.try_get("actor_user")?,
            actor_key: r.try_get("actor_key")?,
            actor_plugin: r.try_get("actor_plugin")?,
            action: r.try_get("action")?,
            entity_type: r.try_get("entity_type")?,
            entity_id: r.try_get("entity_id")?,
            before_state: r.try_get("before_state")?,
            after_state: r.try_get("after_state")?,
            changed_fields: r.try_get("changed_fields")?,
            request_id: r.try_get("request_id")?,
            api_version: r.try_get("api_version")?,
            client: r.try_get("client")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }
}

/// Column list for selecting whole events.
pub const EVENT_COLUMNS: &str = "tenant_id, seq, id, occurred_at, actor_user, actor_key, actor_plugin, action, \
     entity_type, entity_id, before_state, after_state, changed_fields, request_id, api_version, client, prev_hash, hash";

/// Top-level keys whose values differ between `before` and `after` (all keys of
/// whichever exists when the other is absent), sorted.
pub fn changed_fields(before: Option<&serde_json::Value>, after: Option<&serde_json::Value>) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.and_then(|v| v.as_object()).unwrap_or(&empty);
    let a = after.and_then(|v| v.as_object()).unwrap_or(&empty);
    let mut keys: Vec<String> = b
        .keys()
        .chain(a.keys())
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl super::Db {
    /// The latest events about one entity, newest first (at most `limit`).
    pub async fn entity_events(
        &self,
        tenant: &str,
        entity_type: &str,
        entity_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3 \
             ORDER BY seq DESC LIMIT $4"
        ))
        .bind(tenant)
        .bind(entity_type)
        .bind(entity_id)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(AuditEvent::from_row).collect()
    }
}

/// Create the chain head of a new tenant (inside the tenant-creation transaction).
pub async fn init_chain(tx: &mut sqlx::Transaction<'_, sqlx::Any>, tenant: &str) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2)")
        .bind(tenant)
        .bind(GENESIS_HASH)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Append one event to `tenant`'s chain inside `tx`: no change commits without its
/// event. Appends of one tenant are serialised by the update of its chain head.
pub async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    tenant: &str,
    actor: &Actor,
    event: NewEvent<'_>,
) -> StoreResult<AuditEvent> {
    append_all(tx, dialect, tenant, actor, &[event])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("an append stored no event".into()))
}

/// Events inserted per statement by [`append_all`] (18 parameters each).
const APPEND_BATCH: usize = 50;

/// Append `events`, in order, to `tenant`'s chain inside `tx` — the chain exactly as
/// that many [`append`]s would leave it, but with the chain head read and updated once
/// and the rows inserted [`APPEND_BATCH`] per statement (a call sharing 1,000 records
/// audits 1,000 changes).
pub async fn append_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    tenant: &str,
    actor: &Actor,
    events: &[NewEvent<'_>],
) -> StoreResult<Vec<AuditEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    let head = sqlx::query(&format!("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1{lock}"))
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant} has no audit chain")))?;
    let mut prev_seq: i64 = head.try_get("seq")?;
    let mut prev_hash: String = head.try_get("hash")?;
    let occurred_at = time::now();
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        let mut e = AuditEvent {
            tenant_id: tenant.to_string(),
            seq: prev_seq + 1,
            id: ulid::Ulid::new().to_string(),
            occurred_at: occurred_at.clone(),
            actor_user: actor.user_id.clone(),
            actor_key: actor.key_id.clone(),
            actor_plugin: actor.plugin.clone(),
            action: event.action.to_string(),
            entity_type: event.entity_type.to_string(),
            entity_id: event.entity_id.map(str::to_string),
            before_state: event.before.map(|v| v.to_string()),
            after_state: event.after.map(|v| v.to_string()),
            changed_fields: serde_json::to_string(&changed_fields(event.before, event.after))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            request_id: actor.request_id.clone(),
            api_version: actor.api_version.clone(),
            client: actor.client.clone(),
            prev_hash: std::mem::take(&mut prev_hash),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        prev_seq = e.seq;
        prev_hash = e.hash.clone();
        stored.push(e);
    }

    for chunk in stored.chunks(APPEND_BATCH) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let params: Vec<String> = (1..=18).map(|k| format!("${}", i * 18 + k)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit_events (tenant_id, seq, id, occurred_at, actor_user, actor_key, actor_plugin, action, \
             entity_type, entity_id, before_state, after_state, changed_fields, request_id, api_version, client, \
             prev_hash, hash) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(&e.tenant_id)
                .bind(e.seq)
                .bind(&e.id)
                .bind(&e.occurred_at)
                .bind(&e.actor_user)
                .bind(&e.actor_key)
                .bind(&e.actor_plugin)
                .bind(&e.action)
                .bind(&e.entity_type)
                .bind(&e.entity_id)
                .bind(&e.before_state)
                .bind(&e.after_state)
                .bind(&e.changed_fields)
                .bind(&e.request_id)
                .bind(&e.api_version)
                .bind(&e.client)
                .bind(&e.prev_hash)
                .bind(&e.hash);
        }
        q.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1")
        .bind(tenant)
        .bind(prev_seq)
        .bind(&prev_hash)
        .execute(&mut **tx)
        .await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_fields_compares_top_level_values() {
        let before = json!({"a": 1, "b": 2, "c": 3});
        let after = json!({"a": 1, "b": 5, "d": 4});
        assert_eq!(changed_fields(Some(&before), Some(&after)), vec!["b", "c", "d"]);
        assert_eq!(changed_fields(None, Some(&after)), vec!["a", "b", "d"]);
        assert!(changed_fields(Some(&before), Some(&before)).is_empty());
    }

    #[test]
    fn every_column_is_covered_by_the_hash() {
        let e = AuditEvent {
            tenant_id: "t".into(),
            seq: 1,
            id: "i".into(),
            occurred_at: "2026-01-01T00:00:00.000Z".into(),
            actor_user: Some("u".into()),
            actor_key: None,
            actor_plugin: None,
            action: "record.create".into(),
            entity_type: "record:account".into(),
            entity_id: Some("r".into()),
            before_state: None,
            after_state: Some("{}".into()),
            changed_fields: "[]".into(),
            request_id: None,
            api_version: None,
            client: None,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let h = e.compute_hash();
        let mut altered = e.clone();
        altered.actor_key = Some("k".into());
        assert_ne!(altered.compute_hash(), h);
        let mut altered = e.clone();
        altered.prev_hash = "1".repeat(64);
        assert_ne!(altered.compute_hash(), h);
        // `null` and the string "null" must not collide.
        let mut altered = e.clone();
        altered.actor_user = None;
        let mut other = e;
        other.actor_user = Some("null".into());
        assert_ne!(altered.compute_hash(), other.compute_hash());
    }
}
