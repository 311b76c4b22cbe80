//! Per-tenant settings of a plugin (backs the WIT `config` interface).

use sqlx::Row;

use super::{Db, Scope, StoreResult, time};

/// Repository for plugin settings, scoped by tenant and plugin.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    db: &'a Db,
    scope: Scope<'a>,
}

impl<'a> Settings<'a> {
    pub(super) fn new(db: &'a Db, scope: Scope<'a>) -> Self {
        Settings { db, scope }
    }

    /// One setting's JSON value.
    pub async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM plugin_settings WHERE tenant_id = $1 AND plugin_id = $2 AND setting_key = $3",
        )
        .bind(self.scope.tenant)
        .bind(self.scope.plugin)
        .bind(key)
        .fetch_optional(self.db.reader())
        .await?)
    }

    /// Every setting, sorted by key.
    pub async fn all(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT setting_key, value FROM plugin_settings WHERE tenant_id = $1 AND plugin_id = $2 ORDER BY setting_key",
        )
        .bind(self.scope.tenant)
        .bind(self.scope.plugin)
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Set (or with `None` remove) one setting inside `tx` (so the change and its
    /// audit event commit together).
    pub async fn set_in(&self, tx: &mut super::Tx<'_>, key: &str, value: Option<&str>) -> StoreResult<()> {
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO plugin_settings (tenant_id, plugin_id, setting_key, value, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, plugin_id, setting_key) \
                     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(self.scope.tenant)
                .bind(self.scope.plugin)
                .bind(key)
                .bind(v)
                .bind(time::now())
                .execute(&mut **tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM plugin_settings WHERE tenant_id = $1 AND plugin_id = $2 AND setting_key = $3")
                    .bind(self.scope.tenant)
                    .bind(self.scope.plugin)
                    .bind(key)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Set (or with `None` remove) one setting.
    pub async fn set(&self, key: &str, value: Option<&str>) -> StoreResult<()> {
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO plugin_settings (tenant_id, plugin_id, setting_key, value, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, plugin_id, setting_key) \
                     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(self.scope.tenant)
                .bind(self.scope.plugin)
                .bind(key)
                .bind(v)
                .bind(time::now())
                .execute(self.db.writer())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM plugin_settings WHERE tenant_id = $1 AND plugin_id = $2 AND setting_key = $3")
                    .bind(self.scope.tenant)
                    .bind(self.scope.plugin)
                    .bind(key)
                    .execute(self.db.writer())
                    .await?;
            }
        }
        Ok(())
    }
}
