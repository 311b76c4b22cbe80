//! Record locks: one row per locked record, naming the plugin that holds it.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{Db, StoreError, StoreResult, Tx, time};

/// A lock on one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    /// Object of the record.
    pub object: String,
    /// The record.
    pub record_id: String,
    /// The plugin holding the lock.
    pub plugin: String,
    /// Why, in the plugin's words (shown to whoever is refused).
    pub reason: String,
    /// The user the plugin acted for when it locked, if any.
    pub locked_by: Option<String>,
    /// When.
    pub since: String,
}

fn lock_from(r: &sqlx::any::AnyRow) -> StoreResult<Lock> {
    Ok(Lock {
        object: r.try_get("object")?,
        record_id: r.try_get("record_id")?,
        plugin: r.try_get("plugin_id")?,
        reason: r.try_get("reason")?,
        locked_by: r.try_get("locked_by")?,
        since: r.try_get("created_at")?,
    })
}

const COLUMNS: &str = "object, record_id, plugin_id, reason, locked_by, created_at";

/// The lock on a record, if any, on any connection (a write checks it in its
/// transaction).
pub async fn lock_of(conn: &mut AnyConnection, tenant: &str, object: &str, id: &str) -> StoreResult<Option<Lock>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM record_locks WHERE tenant_id = $1 AND object = $2 AND record_id = $3"
    ))
    .bind(tenant)
    .bind(object)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(lock_from).transpose()
}

/// Lock a record for `plugin`, or change the reason of its own lock; returns the lock
/// before (if the plugin held one). A lock held by another plugin is a conflict.
pub async fn lock(
    tx: &mut Tx<'_>,
    tenant: &str,
    plugin: &str,
    object: &str,
    id: &str,
    reason: &str,
    locked_by: Option<&str>,
) -> StoreResult<(Option<Lock>, Lock)> {
    let before = lock_of(tx, tenant, object, id).await?;
    if let Some(held) = &before
        && held.plugin != plugin
    {
        return Err(StoreError::Conflict(format!(
            "{object} {id} is locked by the plugin `{}`: {}",
            held.plugin, held.reason
        )));
    }
    let now = time::now();
    sqlx::query(
        "INSERT INTO record_locks (tenant_id, object, record_id, plugin_id, reason, locked_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, object, record_id) DO UPDATE SET reason = excluded.reason",
    )
    .bind(tenant)
    .bind(object)
    .bind(id)
    .bind(plugin)
    .bind(reason)
    .bind(locked_by)
    .bind(&now)
    .execute(&mut **tx)
    .await?;
    let after = lock_of(tx, tenant, object, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("the lock on {object} {id} vanished")))?;
    Ok((before, after))
}

/// Release `plugin`'s lock on a record; the lock released, if it held one.
pub async fn unlock(tx: &mut Tx<'_>, tenant: &str, plugin: &str, object: &str, id: &str) -> StoreResult<Option<Lock>> {
    let held = lock_of(tx, tenant, object, id).await?;
    let Some(held) = held.filter(|l| l.plugin == plugin) else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM record_locks WHERE tenant_id = $1 AND object = $2 AND record_id = $3 AND plugin_id = $4")
        .bind(tenant)
        .bind(object)
        .bind(id)
        .bind(plugin)
        .execute(&mut **tx)
        .await?;
    Ok(Some(held))
}

/// Release every lock `plugin` holds in `tenant` (its uninstallation); how many.
pub async fn release_all(tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM record_locks WHERE tenant_id = $1 AND plugin_id = $2")
            .bind(tenant)
            .bind(plugin)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

impl Db {
    /// The lock on a record, if any.
    pub async fn record_lock(&self, tenant: &str, object: &str, id: &str) -> StoreResult<Option<Lock>> {
        let mut conn = self.reader().acquire().await?;
        lock_of(&mut conn, tenant, object, id).await
    }
}
