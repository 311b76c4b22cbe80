//! Per-tenant plugin installations: active version, state, granted capabilities and
//! the version before the last upgrade. Every query is scoped by tenant, except the
//! operator-side lookup of installations by package digest (key revocation).

use serde::Serialize;
use sqlx::Row;

use super::{Db, StoreError, StoreResult, Tx, time};

/// Installation states.
pub mod state {
    /// Serving.
    pub const ENABLED: &str = "enabled";
    /// Switched off by the tenant: endpoints 404, events and timers held.
    pub const DISABLED: &str = "disabled";
    /// Switched off by the host because its signing key was revoked.
    pub const REVOKED: &str = "revoked";
    /// Removed; data kept until `purge_after` unless purged.
    pub const UNINSTALLED: &str = "uninstalled";
}

/// A tenant's installation of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installation {
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Active version.
    pub version: String,
    /// Its package digest.
    pub digest: String,
    /// `enabled`, `disabled`, `revoked` or `uninstalled`.
    pub state: String,
    /// Granted capability keys.
    pub grants: Vec<String>,
    /// Version before the last upgrade (rollback target).
    pub previous_version: Option<String>,
    /// Its digest.
    #[serde(skip)]
    pub previous_digest: Option<String>,
    /// Its grants.
    #[serde(skip)]
    pub previous_grants: Option<Vec<String>>,
    /// First installation.
    pub installed_at: String,
    /// Last change.
    pub updated_at: String,
    /// Uninstall time.
    pub uninstalled_at: Option<String>,
    /// When kept data may be purged.
    pub purge_after: Option<String>,
    /// Row version (optimistic concurrency between lifecycle steps).
    #[serde(skip)]
    pub row_version: i64,
}

const COLUMNS: &str = "tenant_id, plugin_id, version, digest, state, grants, previous_version, previous_digest, \
    previous_grants, installed_at, updated_at, uninstalled_at, purge_after, row_version";

fn list(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("grants: {e}")))
}

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Installation> {
    let grants: String = r.try_get("grants")?;
    let previous: Option<String> = r.try_get("previous_grants")?;
    Ok(Installation {
        tenant_id: r.try_get("tenant_id")?,
        plugin_id: r.try_get("plugin_id")?,
        version: r.try_get("version")?,
        digest: r.try_get("digest")?,
        state: r.try_get("state")?,
        grants: list(&grants)?,
        previous_version: r.try_get("previous_version")?,
        previous_digest: r.try_get("previous_digest")?,
        previous_grants: previous.as_deref().map(list).transpose()?,
        installed_at: r.try_get("installed_at")?,
        updated_at: r.try_get("updated_at")?,
        uninstalled_at: r.try_get("uninstalled_at")?,
        purge_after: r.try_get("purge_after")?,
        row_version: r.try_get("row_version")?,
    })
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl Db {
    /// A tenant's installation of `plugin` (any state), read inside `tx` when given.
    pub async fn installation(
        &self,
        tx: Option<&mut Tx<'_>>,
        tenant: &str,
        plugin: &str,
    ) -> StoreResult<Option<Installation>> {
        let q = format!("SELECT {COLUMNS} FROM installations WHERE tenant_id = $1 AND plugin_id = $2");
        let q = sqlx::query(&q).bind(tenant).bind(plugin);
        let row = match tx {
            Some(tx) => q.fetch_optional(&mut **tx).await?,
            None => q.fetch_optional(self.reader()).await?,
        };
        row.as_ref().map(from_row).transpose()
    }

    /// A tenant's installations (uninstalled ones included), by plugin id.
    pub async fn installations(&self, tenant: &str) -> StoreResult<Vec<Installation>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM installations WHERE tenant_id = $1 ORDER BY plugin_id"
        ))
        .bind(tenant)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Installations (in any tenant) whose active package is one of `digests`.
    pub async fn installations_of_digests(&self, digests: &[String]) -> StoreResult<Vec<Installation>> {
        let mut out = Vec::new();
        for d in digests {
            let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM installations WHERE digest = $1"))
                .bind(d)
                .fetch_all(self.reader())
                .await?;
            for r in &rows {
                out.push(from_row(r)?);
            }
        }
        Ok(out)
    }

    /// Create or overwrite (re-install) an installation row.
    pub async fn put_installation(&self, tx: &mut Tx<'_>, i: &Installation) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO installations (tenant_id, plugin_id, version, digest, state, grants, previous_version, \
             previous_digest, previous_grants, installed_at, updated_at, uninstalled_at, purge_after, row_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1) \
             ON CONFLICT (tenant_id, plugin_id) DO UPDATE SET version = excluded.version, digest = excluded.digest, \
             state = excluded.state, grants = excluded.grants, previous_version = excluded.previous_version, \
             previous_digest = excluded.previous_digest, previous_grants = excluded.previous_grants, \
             installed_at = excluded.installed_at, updated_at = excluded.updated_at, \
             uninstalled_at = excluded.uninstalled_at, purge_after = excluded.purge_after, \
             row_version = installations.row_version + 1",
        )
        .bind(&i.tenant_id)
        .bind(&i.plugin_id)
        .bind(&i.version)
        .bind(&i.digest)
        .bind(&i.state)
        .bind(json(&i.grants))
        .bind(&i.previous_version)
        .bind(&i.previous_digest)
        .bind(i.previous_grants.as_deref().map(json))
        .bind(&i.installed_at)
        .bind(time::now())
        .bind(&i.uninstalled_at)
        .bind(&i.purge_after)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Update an installation if its row is still at `i.row_version`; false otherwise.
    pub async fn update_installation(&self, tx: &mut Tx<'_>, i: &Installation) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE installations SET version = $3, digest = $4, state = $5, grants = $6, previous_version = $7, \
             previous_digest = $8, previous_grants = $9, updated_at = $10, uninstalled_at = $11, purge_after = $12, \
             row_version = row_version + 1 WHERE tenant_id = $1 AND plugin_id = $2 AND row_version = $13",
        )
        .bind(&i.tenant_id)
        .bind(&i.plugin_id)
        .bind(&i.version)
        .bind(&i.digest)
        .bind(&i.state)
        .bind(json(&i.grants))
        .bind(&i.previous_version)
        .bind(&i.previous_digest)
        .bind(i.previous_grants.as_deref().map(json))
        .bind(time::now())
        .bind(&i.uninstalled_at)
        .bind(&i.purge_after)
        .bind(i.row_version)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Remove an installation row (after a purge).
    pub async fn delete_installation(&self, tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM installations WHERE tenant_id = $1 AND plugin_id = $2")
            .bind(tenant)
            .bind(plugin)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Db {
    /// Delete everything a plugin stored for a tenant: documents and settings.
    pub async fn purge_plugin_data(&self, tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> StoreResult<()> {
        for table in ["plugin_documents", "plugin_settings"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND plugin_id = $2"))
                .bind(tenant)
                .bind(plugin)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}
