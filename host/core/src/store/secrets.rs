//! Per tenant+plugin secrets, stored sealed (the vault in `crate::secrets` encrypts
//! before anything reaches this module; no plaintext is ever bound to a query).

use serde::Serialize;
use sqlx::Row;

use super::{Db, StoreResult, Tx};

/// A secret's metadata: what the REST API may show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    /// Name.
    pub name: String,
    /// First set.
    pub created_at: String,
    /// Last set.
    pub updated_at: String,
}

/// Set a sealed secret; true if it was new.
pub async fn put(
    tx: &mut Tx<'_>,
    tenant: &str,
    plugin: &str,
    name: &str,
    sealed: &[u8],
    key_id: &str,
    now: &str,
) -> StoreResult<bool> {
    let existed =
        sqlx::query("SELECT 1 AS x FROM plugin_secrets WHERE tenant_id = $1 AND plugin_id = $2 AND name = $3")
            .bind(tenant)
            .bind(plugin)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
    sqlx::query(
        "INSERT INTO plugin_secrets (tenant_id, plugin_id, name, value, key_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (tenant_id, plugin_id, name) \
         DO UPDATE SET value = excluded.value, key_id = excluded.key_id, updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(plugin)
    .bind(name)
    .bind(sealed)
    .bind(key_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(!existed)
}

/// A sealed secret and the id of the key that sealed it.
pub async fn get(db: &Db, tenant: &str, plugin: &str, name: &str) -> StoreResult<Option<(Vec<u8>, String)>> {
    let row =
        sqlx::query("SELECT value, key_id FROM plugin_secrets WHERE tenant_id = $1 AND plugin_id = $2 AND name = $3")
            .bind(tenant)
            .bind(plugin)
            .bind(name)
            .fetch_optional(db.reader())
            .await?;
    row.map(|r| Ok((r.try_get("value")?, r.try_get("key_id")?))).transpose()
}

/// Metadata of every secret of a plugin in a tenant, by name.
pub async fn list(db: &Db, tenant: &str, plugin: &str) -> StoreResult<Vec<SecretMeta>> {
    let rows = sqlx::query(
        "SELECT name, created_at, updated_at FROM plugin_secrets WHERE tenant_id = $1 AND plugin_id = $2 ORDER BY name",
    )
    .bind(tenant)
    .bind(plugin)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SecretMeta {
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Remove a secret; true if it existed.
pub async fn delete(tx: &mut Tx<'_>, tenant: &str, plugin: &str, name: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM plugin_secrets WHERE tenant_id = $1 AND plugin_id = $2 AND name = $3")
        .bind(tenant)
        .bind(plugin)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Remove every secret of a plugin in a tenant (when its data is purged).
pub async fn delete_all(tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM plugin_secrets WHERE tenant_id = $1 AND plugin_id = $2")
        .bind(tenant)
        .bind(plugin)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}
